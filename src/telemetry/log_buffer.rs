//! Log lines of a request thread, written to stderr together when the thread
//! goes idle instead of one `write` each. The access log writes a line a
//! request, and its own system call was most of what that line cost (issue
//! #29: 1.9 µs of a 15 µs GET on two cores).
//!
//! A thread buffers only once its runtime has told it that it idles
//! ([`idle`], the runtime's `on_thread_park` hook): from then on its lines
//! wait in a buffer of its own until it next idles, the buffer reaches
//! [`FLUSH_AT`] bytes, or the thread ends ([`flush`]). A request thread idles
//! whenever none of its tasks can run, which under load is every few
//! requests; under a load that never lets it idle, a line waits at most for
//! the [`FLUSH_AT`] bytes after it. Every other thread (SQLite's, the
//! blocking pool's, the main thread of a multi-threaded runtime) writes each
//! line at once, as before. Lines are buffered per thread, so buffering one
//! takes no lock; writing a buffer out takes stderr's, as every line did.

use std::cell::RefCell;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Buffered bytes that are written at once, busy or not.
pub const FLUSH_AT: usize = 16 * 1024;

thread_local! {
    /// This thread's waiting lines; `None` until the thread first idles.
    static WAITING: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The thread goes idle: its waiting lines are written, and from now on it
/// buffers. The runtime's `on_thread_park` hook.
pub fn idle() {
    with_waiting(|waiting| match waiting {
        Some(lines) => write_out(lines),
        None => *waiting = Some(Vec::with_capacity(FLUSH_AT)),
    });
}

/// Writes this thread's waiting lines and stops buffering: when its runtime
/// is done with it, before the process says its last word or exits.
pub fn flush() {
    with_waiting(|waiting| {
        if let Some(mut lines) = waiting.take() {
            write_out(&mut lines);
        }
    });
}

fn with_waiting(f: impl FnOnce(&mut Option<Vec<u8>>)) {
    // During thread teardown, or re-entered by a line written while writing:
    // there is nothing to do that `write` does not do directly.
    let _ = WAITING.try_with(|waiting| {
        if let Ok(mut waiting) = waiting.try_borrow_mut() {
            f(&mut waiting);
        }
    });
}

fn write_out(lines: &mut Vec<u8>) {
    if !lines.is_empty() {
        // Nowhere to report a failure to write to stderr.
        let _ = io::stderr().lock().write_all(lines);
        lines.clear();
    }
}

/// The log layer's writer: one formatted line per `write`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

impl Write for Stderr {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut buffered = false;
        with_waiting(|waiting| {
            if let Some(lines) = waiting {
                lines.extend_from_slice(line);
                if lines.len() >= FLUSH_AT {
                    write_out(lines);
                }
                buffered = true;
            }
        });
        if !buffered {
            io::stderr().lock().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> Option<usize> {
        WAITING.with(|w| w.borrow().as_ref().map(Vec::len))
    }

    /// A thread writes straight through until it first idles, then holds its
    /// lines until it idles again or holds `FLUSH_AT` bytes, and stops
    /// holding them once flushed.
    #[test]
    fn lines_wait_from_the_first_idle_until_the_next() {
        std::thread::spawn(|| {
            let line = b"a line of a request\n";
            Stderr.write_all(line).unwrap();
            assert_eq!(waiting(), None, "no idle yet: written at once");
            idle();
            Stderr.write_all(line).unwrap();
            Stderr.write_all(line).unwrap();
            assert_eq!(waiting(), Some(2 * line.len()));
            idle();
            assert_eq!(waiting(), Some(0), "written when the thread idles");
            let mut long = vec![b' '; FLUSH_AT];
            long[FLUSH_AT - 1] = b'\n';
            Stderr.write_all(&long).unwrap();
            assert_eq!(waiting(), Some(0), "written when full, busy or not");
            flush();
            assert_eq!(waiting(), None, "flushed: written at once again");
        })
        .join()
        .unwrap();
    }
}

//! `hulykvs`: parse the command line, set up logging, run the subcommand, map
//! the result to an exit code in one place.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use hulykvs::cli::{self, Cli, Command};
use hulykvs::config::{DbOptions, LogFormat, ServeConfig};
use hulykvs::exit::{Exit, Failure};
use hulykvs::telemetry;
use hulykvs::telemetry::traces::Tracing;

/// jemalloc instead of the system's malloc, for memory: hyper holds two 8 KiB
/// buffers per HTTP/1.1 connection, of which an idle watch stream touches a
/// page each. jemalloc keeps no header beside a block, so the rest is never
/// resident; glibc's headers and arenas make most of it so. 10,000 idle
/// streams: 240 MiB over HTTP/1.1 with glibc, 135 MiB with jemalloc
/// (docs/PERFORMANCE.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (the `malloc_conf`
/// string its documentation names, under the prefix this build of it uses;
/// `_RJEM_MALLOC_CONF` in the environment still overrides it). Freed pages
/// go back to the system after about a second instead of ten: with the
/// default, pages freed in one arena stayed resident while others grew, and
/// the server peaked at 66-99 MiB under 256 connections of mixed load
/// against 39-40 MiB with glibc; with this, 44 MiB (docs/PERFORMANCE.md).
#[cfg(not(target_env = "msvc"))]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_OPTIONS: JemallocOptions = JemallocOptions(c"dirty_decay_ms:1000".as_ptr());

/// A C string for jemalloc to read, as its `const char *malloc_conf`.
#[cfg(not(target_env = "msvc"))]
#[repr(transparent)]
struct JemallocOptions(*const std::ffi::c_char);

// SAFETY: it points at a string literal, immutable for the whole program.
#[cfg(not(target_env = "msvc"))]
unsafe impl Sync for JemallocOptions {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Migrate(args) => migrate(&args.db, args.status),
        Command::Reencrypt(args) => {
            telemetry::logs::init(LogFormat::Text, None);
            on_runtime(cli::reencrypt::run(&args))
        }
        Command::Dump(args) => {
            telemetry::logs::init(LogFormat::Text, None);
            on_runtime(cli::transfer::run_dump(&args))
        }
        Command::Restore(args) => {
            telemetry::logs::init(LogFormat::Text, None);
            on_runtime(cli::transfer::run_restore(&args))
        }
        Command::Copy(args) => {
            telemetry::logs::init(LogFormat::Text, None);
            on_runtime(cli::transfer::run_copy(&args))
        }
        Command::Put(args) => on_runtime(cli::client::put(&args)),
        Command::Get(args) => on_runtime(cli::client::get(&args)),
        Command::Delete(args) => on_runtime(cli::client::delete(&args)),
        Command::List(args) => on_runtime(cli::client::list(&args)),
        Command::Watch(args) => on_runtime(cli::client::watch(&args)),
        Command::Txn(args) => on_runtime(cli::client::txn(&args)),
        Command::Check(args) => on_runtime(cli::check::run(&args)),
        Command::Probe(args) => on_runtime(cli::client::probe(&args)),
        Command::Token(args) => cli::token::run(&args).and_then(|token| print_line(&token)),
        Command::Bench(args) => cli::bench::run(&args),
        Command::Acl(args) => cli::acl::run(&args),
        Command::Completions(args) => {
            cli::write_completions(args.shell, &mut std::io::stdout().lock())
                .or_else(ignore_broken_pipe)
                .map_err(|e| Failure::error(format!("cannot write completions: {e}")))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // An empty message: the subcommand said it on stdout already.
            if !failure.message.is_empty() {
                eprintln!("hulykvs: {}", failure.message);
            }
            failure.exit.into()
        }
    }
}

fn serve(args: &cli::serve::ServeArgs) -> Result<(), Failure> {
    let config = ServeConfig::from_args(args).map_err(|e| Failure::usage(e.to_string()))?;
    let tracing = match telemetry::traces::configured() {
        true => Some(Tracing::from_env().map_err(Failure::usage)?),
        false => None,
    };
    let format = config.log_format;
    telemetry::logs::init(format, tracing.as_ref());
    let served = on_runtime_of(config.worker_threads, async move {
        hulykvs::app::serve(config)
            .await
            .map_err(|e| Failure::error(format!("{e:#}")))
    });
    if let Some(tracing) = tracing {
        tracing.shutdown();
    }
    // Once logging is set up, the last word is a log line too: with JSON logs
    // a plain line would break the pipeline that parses them.
    served.map_err(|failure| match format {
        LogFormat::Text => failure,
        LogFormat::Json => {
            tracing::error!(error = %failure.message, "stopped");
            Failure::new(failure.exit, "")
        }
    })
}

fn migrate(args: &cli::serve::DbArgs, status: bool) -> Result<(), Failure> {
    telemetry::logs::init(LogFormat::Text, None);
    let db = DbOptions::from_args(args).map_err(|e| Failure::usage(e.to_string()))?;
    let lines = on_runtime(async move {
        hulykvs::app::migrate(db, status)
            .await
            .map_err(|e| Failure::error(format!("migrate: {e:#}")))
    })?;
    for line in lines {
        print_line(&line)?;
    }
    Ok(())
}

/// Runs `work` on a multi-threaded tokio runtime.
fn on_runtime<T>(
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    on_runtime_of(None, work)
}

/// Runs `work` on a tokio runtime of `threads` request threads (`None`: one
/// per CPU). One thread is a current-thread runtime: no other worker to wake
/// when a second task becomes ready and none to steal it, so a request costs
/// less CPU than on a multi-threaded runtime of one worker, and than on two
/// (issue #29; the figures are in docs/PERFORMANCE.md).
fn on_runtime_of<T>(
    threads: Option<usize>,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    // A request thread's log lines are written when it idles, and when it ends.
    let done = builder
        .enable_all()
        .on_thread_park(telemetry::log_buffer::idle)
        .on_thread_stop(telemetry::log_buffer::flush)
        .build()
        .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))?
        .block_on(work);
    // The current-thread runtime's one thread is this one.
    telemetry::log_buffer::flush();
    done
}

/// Prints one line to stdout; a closed stdout is not an error.
fn print_line(line: &str) -> Result<(), Failure> {
    writeln!(std::io::stdout().lock(), "{line}")
        .or_else(ignore_broken_pipe)
        .map_err(|e| Failure::new(Exit::Error, format!("cannot write to stdout: {e}")))
}

fn ignore_broken_pipe(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e)
    }
}

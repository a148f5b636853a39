//! Which HTTP a connection speaks, found before hyper reads from it: plain
//! TCP by a peek at its first bytes (the HTTP/2 preface or not), TLS by the
//! protocol ALPN chose; and the hyper builder for each.
//!
//! hyper-util's automatic builder finds out by reading the first bytes
//! itself and handing them back to hyper's HTTP/1 reader, whose next read
//! then doubles its buffer: 16 KiB held for the life of every HTTP/1.1
//! connection, a watch stream's included, where 8 KiB is enough. Told the
//! protocol, it reads nothing first.

use std::io;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;

/// What a client with prior knowledge of HTTP/2 sends first (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol of a connection, as far as it is known before serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Speaks {
    Http1,
    Http2,
    /// Not known yet (a few bytes of the preface so far, or TLS without ALPN):
    /// hyper-util finds out by reading.
    Either,
}

/// The connection builders, one per [`Speaks`], set up alike.
pub(super) struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    either: auto::Builder<TokioExecutor>,
}

impl Builders {
    /// The builders for connections with these timeouts.
    pub(super) fn new(header_timeout: Duration, idle_timeout: Duration) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // No header timer of hyper's: it would start as soon as a kept-alive
        // connection waits for its next request (closing idle connections
        // after the header timeout), and it costs a boxed timer armed and
        // dropped every request (issue #29). The watchdog in `Conn::drive`
        // (`http::activity`) times heads from their first byte instead.
        builder
            .http1()
            .header_read_timeout(None)
            .max_buf_size(64 * 1024);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256)
            .keep_alive_interval(Some(idle_timeout / 2))
            .keep_alive_timeout(header_timeout);
        Builders {
            http1: builder.clone().http1_only(),
            http2: builder.clone().http2_only(),
            either: builder,
        }
    }

    /// The builder for a connection that speaks `speaks`.
    pub(super) fn serving(&self, speaks: Speaks) -> &auto::Builder<TokioExecutor> {
        match speaks {
            Speaks::Http1 => &self.http1,
            Speaks::Http2 => &self.http2,
            Speaks::Either => &self.either,
        }
    }
}

/// Waits for the first bytes of a plain TCP connection and says what they
/// begin; nothing is consumed.
pub(super) async fn sniff(stream: &TcpStream) -> io::Result<Speaks> {
    let mut first = [0u8; PREFACE.len()];
    let n = stream.peek(&mut first).await?;
    Ok(judge(&first[..n]))
}

/// What a connection's first bytes say (all of them, or as many as arrived).
fn judge(first: &[u8]) -> Speaks {
    if first.len() >= PREFACE.len() && first[..PREFACE.len()] == *PREFACE {
        Speaks::Http2
    } else if !first.is_empty() && PREFACE.starts_with(first) {
        Speaks::Either
    } else {
        // HTTP/1 (or nothing, the client gone: hyper ends it at once).
        Speaks::Http1
    }
}

/// What the protocol ALPN chose on a TLS connection says.
pub(super) fn negotiated(alpn: Option<&[u8]>) -> Speaks {
    match alpn {
        Some(b"h2") => Speaks::Http2,
        Some(b"http/1.1") => Speaks::Http1,
        _ => Speaks::Either,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_http2_from_http1() {
        assert_eq!(judge(PREFACE), Speaks::Http2);
        assert_eq!(
            judge(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04"),
            Speaks::Http2
        );
        assert_eq!(judge(b"PRI * HTTP/2"), Speaks::Either);
        assert_eq!(judge(b"P"), Speaks::Either);
        assert_eq!(judge(b"PUT /api2/ws/ns/k HTTP/1.1\r\n"), Speaks::Http1);
        assert_eq!(judge(b"GET / HTTP/1.1\r\n"), Speaks::Http1);
        assert_eq!(judge(b"PRI * HTTP/1.1\r\n\r\n"), Speaks::Http1);
        assert_eq!(judge(b""), Speaks::Http1);
        assert_eq!(negotiated(Some(b"h2")), Speaks::Http2);
        assert_eq!(negotiated(Some(b"http/1.1")), Speaks::Http1);
        assert_eq!(negotiated(None), Speaks::Either);
    }
}

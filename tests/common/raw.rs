//! Raw HTTP/1.1 over TCP, for requests no well-behaved client sends:
//! unnormalized paths, lying lengths, trickled headers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is, reads until the server closes or 10 s pass, and parses
/// the first response (Content-Length framed or up to close).
pub async fn send(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_response(&mut stream).await
}

/// Reads one response from `stream`.
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(resp) = parse(&buf) {
            return resp;
        }
        let mut chunk = [0u8; 8192];
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => panic!(
                "no complete response within 10 s; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        };
        if n == 0 {
            return parse_at_close(&buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Header names and values, in order.
type Headers = Vec<(String, String)>;

/// The status, headers and where the body starts, once the head is complete.
fn split_head(buf: &[u8]) -> Option<(u16, Headers, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some((status, headers, end + 4))
}

fn parse(buf: &[u8]) -> Option<RawResponse> {
    let (status, headers, start) = split_head(buf)?;
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())?;
    if buf.len() < start + len {
        return None;
    }
    Some(RawResponse {
        status,
        headers,
        body: buf[start..start + len].to_vec(),
    })
}

fn parse_at_close(buf: &[u8]) -> RawResponse {
    match split_head(buf) {
        Some((status, headers, start)) => RawResponse {
            status,
            headers,
            body: buf[start..].to_vec(),
        },
        None => RawResponse {
            status: 0,
            headers: Vec::new(),
            body: buf.to_vec(),
        },
    }
}

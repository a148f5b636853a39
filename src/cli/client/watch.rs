//! `hulykvs watch`: the change feed of a namespace, one line per change,
//! reconnecting by itself from the last revision it printed when the
//! connection drops, the service restarts or the stream was too slow.
//! Ctrl-C ends it with exit code 0.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::args::WatchArgs;
use super::service::{refused, shown, Service};
use crate::exit::Failure;
use crate::wire::{parse_feed_frame as parse_frame, FeedData as Data};

/// Longest pause between reconnection attempts.
const MOST_DELAY: Duration = Duration::from_secs(10);

/// How one connection ended.
enum Ended {
    /// Reconnect at once, from the revision reached (`too_slow`, a new token).
    Resume,
    /// Reconnect after a pause: the connection or the service went away.
    Retry(String),
}

pub async fn watch(args: &WatchArgs) -> Result<(), Failure> {
    let what = format!("watch {}", shown(&args.namespace));
    let mut service = Service::streaming(&args.client)?;
    let mut since = args.since;
    let mut out = tokio::io::stdout();
    let mut delay = Duration::from_millis(200);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let followed = tokio::select! {
            ended = follow(&service, &what, args, &mut since, &mut out) => ended?,
            _ = &mut ctrl_c => return Ok(()),
        };
        match followed {
            Ended::Resume => {
                // A minted token is minted anew; a given one is sent again.
                service = Service::streaming(&args.client)?;
                delay = Duration::from_millis(200);
            }
            Ended::Retry(why) => {
                let from = since.map_or("now".to_owned(), |r| format!("revision {r}"));
                eprintln!("{what}: {why}; reconnecting in {delay:?} from {from}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = &mut ctrl_c => return Ok(()),
                }
                delay = (delay * 2).min(MOST_DELAY);
            }
        }
    }
}

/// One connection: prints its events and moves `since` past each.
async fn follow<W: AsyncWrite + Unpin>(
    service: &Service,
    what: &str,
    args: &WatchArgs,
    since: &mut Option<u64>,
    out: &mut W,
) -> Result<Ended, Failure> {
    let url = service.watch_url(what, &args.namespace, args.prefix.as_deref(), *since)?;
    let mut response = match service.request(Method::GET, url).send().await {
        Ok(response) => response,
        Err(e) => return Ok(Ended::Retry(service.transport(what, e).to_string())),
    };
    match response.status() {
        StatusCode::OK => {}
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
            return Ok(Ended::Retry(format!(
                "the service answered {}",
                response.status()
            )));
        }
        _ => return Err(refused(what, response, "").await),
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(Ended::Retry("the stream ended".to_owned())),
            Err(e) => return Ok(Ended::Retry(service.transport(what, e).to_string())),
        };
        buf.extend_from_slice(&chunk);
        let mut lines = Vec::new();
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buf.drain(..end + 2).collect();
            let Some((event, data)) = parse_frame(&frame) else {
                continue;
            };
            match event.as_str() {
                "sync" => {
                    *since = Some(data.revision);
                    if args.json {
                        lines.push(format!(
                            "{{\"op\":\"sync\",\"revision\":{}}}\n",
                            data.revision
                        ));
                    }
                }
                "error" => {
                    flush(what, out, &lines).await?;
                    return ended_by(what, args, since, data);
                }
                op => {
                    *since = Some(data.revision);
                    lines.push(line(op, &data, args.json));
                }
            }
        }
        flush(what, out, &lines).await?;
    }
}

/// What an `error` event means for the next connection.
fn ended_by(
    what: &str,
    args: &WatchArgs,
    since: &mut Option<u64>,
    data: Data,
) -> Result<Ended, Failure> {
    *since = Some(data.revision);
    match data.code.as_deref() {
        Some("too_slow") => Ok(Ended::Resume),
        Some("token_expired") if args.client.token.is_none() => Ok(Ended::Resume),
        Some("token_expired") => Err(Failure::error(format!(
            "{what}: the token expired (give a new --token, or HULY_TOKEN_SECRET to mint one)"
        ))),
        Some("revision_compacted") => Err(Failure::error(format!(
            "{what}: changes after revision {} are no longer kept; list the namespace again and watch from its Huly-Revision",
            data.revision
        ))),
        Some(other) => Ok(Ended::Retry(format!("the service ended the stream ({other})"))),
        None => Ok(Ended::Retry("the service ended the stream".to_owned())),
    }
}

/// `revision<TAB>op<TAB>key`, or the change as JSON.
fn line(op: &str, data: &Data, json: bool) -> String {
    let key = data.key.as_deref().unwrap_or_default();
    if json {
        let entry = serde_json::json!({
            "revision": data.revision,
            "op": op,
            "key": key,
            "etag": data.etag,
            "expire_at": data.expire_at,
        });
        format!("{entry}\n")
    } else {
        format!("{}\t{op}\t{key}\n", data.revision)
    }
}

async fn flush<W: AsyncWrite + Unpin>(
    what: &str,
    out: &mut W,
    lines: &[String],
) -> Result<(), Failure> {
    if lines.is_empty() {
        return Ok(());
    }
    let written = async {
        for line in lines {
            out.write_all(line.as_bytes()).await?;
        }
        out.flush().await
    };
    written
        .await
        .map_err(|e| Failure::error(format!("{what}: cannot write stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_lines() {
        let frame = b"id: 42\nevent: put\ndata: {\"key\":\"a b\",\"etag\":\"5d41402abc4b2a76b9719d911017c592\",\"revision\":42,\"expire_at\":null}\n\n";
        let (event, data) = parse_frame(frame).unwrap();
        assert_eq!(event, "put");
        assert_eq!(line(&event, &data, false), "42\tput\ta b\n");
        assert_eq!(
            line(&event, &data, true),
            "{\"etag\":\"5d41402abc4b2a76b9719d911017c592\",\"expire_at\":null,\"key\":\"a b\",\"op\":\"put\",\"revision\":42}\n"
        );
        assert!(parse_frame(b": keep-alive\n\n").is_none());
        let (event, data) = parse_frame(b"event: sync\ndata: {\"revision\":7}\n\n").unwrap();
        assert_eq!((event.as_str(), data.revision), ("sync", 7));
    }
}

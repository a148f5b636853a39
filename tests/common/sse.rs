//! A reader of Server-Sent Events for the change-feed tests.

use std::time::Duration;

/// One event of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Option<u64>,
    pub event: String,
    pub data: serde_json::Value,
}

impl Event {
    pub fn revision(&self) -> u64 {
        self.data["revision"].as_u64().expect("revision")
    }

    pub fn key(&self) -> &str {
        self.data["key"].as_str().expect("key")
    }
}

/// Reads events from a streaming response; comments are counted.
pub struct Events {
    resp: reqwest::Response,
    buf: Vec<u8>,
    pub comments: usize,
}

impl Events {
    pub fn new(resp: reqwest::Response) -> Events {
        assert_eq!(resp.status(), 200, "watch answered {}", resp.status());
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            resp,
            buf: Vec::new(),
            comments: 0,
        }
    }

    /// The next event within `limit`; `None` when the stream ended.
    pub async fn next_within(&mut self, limit: Duration) -> Option<Event> {
        tokio::time::timeout(limit, self.next())
            .await
            .unwrap_or_else(|_| panic!("no event within {limit:?}"))
    }

    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = find(&self.buf, b"\n\n") {
                let frame: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(frame).expect("UTF-8 frame");
                if text.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                return Some(parse(&text));
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Reads until the next comment; panics on an event or after `limit`.
    pub async fn next_comment_within(&mut self, limit: Duration) {
        let before = self.comments;
        let wait = async {
            loop {
                if let Some(end) = find(&self.buf, b"\n\n") {
                    let frame: Vec<u8> = self.buf.drain(..end + 2).collect();
                    let text = String::from_utf8(frame).expect("UTF-8 frame");
                    assert!(
                        text.starts_with(':'),
                        "an event instead of a comment: {text}"
                    );
                    self.comments += 1;
                    return;
                }
                match self.resp.chunk().await {
                    Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                    Ok(None) | Err(_) => panic!("the stream ended"),
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .unwrap_or_else(|_| panic!("no comment within {limit:?}"));
        assert_eq!(self.comments, before + 1);
    }

    /// Events until (and with) the first `sync`.
    pub async fn until_sync(&mut self) -> (Vec<Event>, u64) {
        let mut events = Vec::new();
        loop {
            let event = self
                .next_within(Duration::from_secs(20))
                .await
                .expect("stream ended before sync");
            if event.event == "sync" {
                return (events, event.revision());
            }
            events.push(event);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse(text: &str) -> Event {
    let mut event = Event {
        id: None,
        event: "message".to_owned(),
        data: serde_json::Value::Null,
    };
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("id: ") {
            event.id = Some(id.parse().expect("numeric id"));
        } else if let Some(name) = line.strip_prefix("event: ") {
            event.event = name.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            event.data = serde_json::from_str(data).expect("JSON data");
        }
    }
    event
}

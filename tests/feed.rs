//! The change feed (SPEC §12, issue #13) on both stores: revisions on every
//! write and listing, streams in order with nothing skipped or repeated
//! under concurrent writers, resume by `since` and `Last-Event-ID`,
//! list-then-watch, long polls, the `too_slow` cut, token expiry.
//! Process-level cases (expiry events, compaction, two instances) are in
//! `tests/feed_processes.rs`.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{config, keys_in, start, start_with, token_with, Kind, TestServer};
use common::sse::{Event, Events};
use hulykvs::auth::{now_secs, Claims, SYSTEM_ACCOUNT};
use reqwest::{Method, StatusCode};

const WS: &str = "0b0b0b0b-1111-4222-8333-444455556666";

suite!(
    writes_answer_revisions_and_listings_read_them_first,
    concurrent_writes_appear_once_each_in_revision_order,
    streams_resume_by_since_and_last_event_id,
    list_then_watch_misses_nothing,
    long_polls_answer_at_once_on_a_change_or_after_wait,
    unreadable_revisions_are_refused,
    a_slow_stream_is_cut_while_a_fast_one_continues,
    an_expiring_token_ends_its_stream,
    a_quiet_stream_gets_keep_alives,
    streams_of_a_watched_namespace_open_from_its_channel,
    a_replay_reaches_changes_its_channel_has_not_read,
);

fn k(key: &str) -> String {
    format!("/api2/{WS}/ns/{key}")
}

fn revision_of(resp: &reqwest::Response) -> u64 {
    resp.headers()["huly-revision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn put(s: &TestServer, key: &str, value: &str) -> reqwest::Response {
    s.req(Method::PUT, &k(key))
        .body(value.to_owned())
        .send()
        .await
        .unwrap()
}

async fn put_if_absent(s: &TestServer, key: &str) -> reqwest::Response {
    s.req(Method::PUT, &k(key))
        .header("If-None-Match", "*")
        .body("x")
        .send()
        .await
        .unwrap()
}

async fn watch(s: &TestServer, query: &str) -> Events {
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns?watch{query}"))
        .send()
        .await
        .unwrap();
    Events::new(resp)
}

async fn writes_answer_revisions_and_listings_read_them_first(kind: Kind) {
    let s = start(kind).await;
    let list = s
        .req(Method::GET, &format!("/api2/{WS}/ns"))
        .send()
        .await
        .unwrap();
    assert_eq!(revision_of(&list), 0, "a namespace starts at revision 0");
    assert_eq!(revision_of(&put(&s, "a", "1").await), 1);
    assert_eq!(revision_of(&put(&s, "b", "1").await), 2);
    let refused = put_if_absent(&s, "a").await;
    assert_eq!(refused.status(), 412);
    assert!(refused.headers().get("huly-revision").is_none());
    let created = put_if_absent(&s, "c").await;
    assert_eq!(
        (created.status(), revision_of(&created)),
        (StatusCode::CREATED, 3)
    );
    let deleted = s.req(Method::DELETE, &k("a")).send().await.unwrap();
    assert_eq!(
        (deleted.status(), revision_of(&deleted)),
        (StatusCode::NO_CONTENT, 4)
    );
    let missing = s.req(Method::DELETE, &k("a")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().get("huly-revision").is_none());
    let list = s
        .req(Method::GET, &format!("/api2/{WS}/ns?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(revision_of(&list), 4);
    let other = s
        .req(Method::PUT, &format!("/api2/{WS}/other/a"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(revision_of(&other), 1, "revisions count per namespace");
    let legacy = s
        .req(Method::POST, "/api/legacy/k")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (legacy.status(), revision_of(&legacy)),
        (StatusCode::NO_CONTENT, 1)
    );
    let legacy_list = s.req(Method::GET, "/api/legacy").send().await.unwrap();
    assert_eq!(revision_of(&legacy_list), 1);
}

async fn concurrent_writes_appear_once_each_in_revision_order(kind: Kind) {
    let s = Arc::new(start(kind).await);
    let mut events = watch(&s, "").await;
    let (_, start) = events.until_sync().await;
    assert_eq!(start, 0);
    let mut writers = Vec::new();
    for w in 0..16 {
        let s = Arc::clone(&s);
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40 {
                let key = format!("w{w}/{}", i % 7);
                let resp = if i % 5 == 4 {
                    s.req(Method::DELETE, &k(&key)).send().await.unwrap()
                } else {
                    put(&s, &key, &format!("{w}-{i}")).await
                };
                if resp.status().is_success() {
                    acked.push((revision_of(&resp), key));
                }
            }
            acked
        }));
    }
    let mut acknowledged = BTreeMap::new();
    for writer in writers {
        for (revision, key) in writer.await.unwrap() {
            assert!(
                acknowledged.insert(revision, key).is_none(),
                "revision {revision} acknowledged twice"
            );
        }
    }
    let last = *acknowledged.keys().last().unwrap();
    let mut seen = BTreeMap::new();
    let mut previous = 0;
    while previous < last {
        let event = events
            .next_within(Duration::from_secs(10))
            .await
            .expect("stream ended");
        let revision = event.revision();
        assert_eq!(event.id, Some(revision));
        assert_eq!(revision, previous + 1, "revisions follow one another");
        previous = revision;
        seen.insert(revision, event.key().to_owned());
    }
    assert_eq!(
        seen, acknowledged,
        "every acknowledged write, once, with its key"
    );
}

async fn streams_resume_by_since_and_last_event_id(kind: Kind) {
    let s = start(kind).await;
    for i in 1..=5 {
        put(&s, &format!("k{i}"), "v").await;
    }
    let mut events = watch(&s, "&since=2").await;
    let (replayed, synced) = events.until_sync().await;
    let revisions: Vec<u64> = replayed.iter().map(Event::revision).collect();
    assert_eq!((revisions, synced), (vec![3, 4, 5], 5));
    drop(events);
    put(&s, "k6", "v").await;
    s.req(Method::DELETE, &k("k1")).send().await.unwrap();
    // A reconnecting EventSource keeps its URL and sends Last-Event-ID: it wins.
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns?watch&since=0"))
        .header("Last-Event-ID", "5")
        .send()
        .await
        .unwrap();
    let mut events = Events::new(resp);
    let (replayed, synced) = events.until_sync().await;
    let got: Vec<(u64, String)> = replayed
        .iter()
        .map(|e| (e.revision(), e.event.clone()))
        .collect();
    assert_eq!(got, vec![(6, "put".to_owned()), (7, "delete".to_owned())]);
    assert_eq!(synced, 7);
    put(&s, "k7", "v").await;
    let live = events.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!((live.revision(), live.key()), (8, "k7"));
    let put_event = &replayed[0].data;
    assert_eq!(put_event["etag"], "9e3669d19b675bd57058fd4664205d2a");
    assert_eq!(put_event["expire_at"], serde_json::Value::Null);

    // A prefix: only its keys, and the legacy API streams the default workspace.
    let mut prefixed = watch(&s, "&since=0&prefix=k1").await;
    let (replayed, _) = prefixed.until_sync().await;
    let keys: Vec<&str> = replayed.iter().map(Event::key).collect();
    assert_eq!(keys, ["k1", "k1"]);
    let legacy = s
        .req(Method::GET, "/api/legacy?watch")
        .send()
        .await
        .unwrap();
    let mut legacy = Events::new(legacy);
    assert_eq!(legacy.until_sync().await.1, 0);
    s.req(Method::POST, "/api/legacy/x")
        .body("v")
        .send()
        .await
        .unwrap();
    let event = legacy.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!((event.event.as_str(), event.key()), ("put", "x"));
}

async fn list_then_watch_misses_nothing(kind: Kind) {
    let s = Arc::new(start(kind).await);
    for i in 0..50 {
        put(&s, &format!("k{i:02}"), "0").await;
    }
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            for i in 0..300 {
                let key = format!("k{:02}", (i * 7) % 60);
                if i % 3 == 0 {
                    s.req(Method::DELETE, &k(&key)).send().await.unwrap();
                } else {
                    put(&s, &key, &i.to_string()).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let listing = s
        .req(Method::GET, &format!("/api2/{WS}/ns"))
        .send()
        .await
        .unwrap();
    let from = revision_of(&listing);
    let mut keys: BTreeSet<String> = keys_in(&listing.json().await.unwrap())
        .into_iter()
        .collect();
    let mut events = watch(&s, &format!("&since={from}")).await;
    writer.await.unwrap();
    let end = revision_of(
        &s.req(Method::GET, &format!("/api2/{WS}/ns?limit=1"))
            .send()
            .await
            .unwrap(),
    );
    let mut at = from;
    while at < end {
        let event = events.next_within(Duration::from_secs(10)).await.unwrap();
        if event.event == "sync" {
            continue;
        }
        at = event.revision();
        match event.event.as_str() {
            "put" => keys.insert(event.key().to_owned()),
            _ => keys.remove(event.key()),
        };
    }
    let now: BTreeSet<String> = s
        .keys(&format!("/api2/{WS}/ns"))
        .await
        .into_iter()
        .collect();
    assert_eq!(keys, now, "the listing plus the feed is the namespace");
}

async fn poll(s: &TestServer, query: &str) -> (StatusCode, serde_json::Value) {
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns?changes{query}"))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn long_polls_answer_at_once_on_a_change_or_after_wait(kind: Kind) {
    let s = Arc::new(start(kind).await);
    for key in ["a1", "b1", "a2"] {
        put(&s, key, "v").await;
    }
    let (status, body) = poll(&s, "&since=0").await;
    assert_eq!(status, 200);
    assert_eq!(body["revision"], 3);
    assert_eq!(body["more"], false);
    assert_eq!(body["workspace"], WS);
    let changes = body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0]["op"], "put");
    assert_eq!(changes[0]["key"], "a1");
    assert_eq!(changes[0]["etag"], "9e3669d19b675bd57058fd4664205d2a");
    let (_, body) = poll(&s, "&since=0&limit=2").await;
    assert_eq!(
        (body["revision"].as_u64(), body["more"].as_bool()),
        (Some(2), Some(true))
    );
    let (_, body) = poll(&s, "&since=0&prefix=a").await;
    let keys: Vec<&str> = body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a1", "a2"]);

    let started = Instant::now();
    let (_, body) = poll(&s, "&since=3&wait=1s").await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        (
            body["revision"].as_u64(),
            body["changes"].as_array().unwrap().len()
        ),
        (Some(3), 0)
    );

    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            put(&s, "b2", "v").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            put(&s, "a3", "v").await;
        })
    };
    // Waits past the change of another prefix for the one it asked for.
    let (_, body) = poll(&s, "&since=3&prefix=a&wait=20s").await;
    writer.await.unwrap();
    assert_eq!(body["revision"], 5);
    assert_eq!(body["changes"][0]["key"], "a3");
    let legacy = s
        .req(Method::GET, "/api/ns?changes&since=0")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = legacy.json().await.unwrap();
    assert!(body.get("workspace").is_none());
    assert_eq!(body["revision"], 0);
}

async fn unreadable_revisions_are_refused(kind: Kind) {
    let s = start(kind).await;
    put(&s, "a", "v").await;
    for (query, code) in [
        ("?changes&since=2", "revision_ahead"),
        ("?watch&since=2", "revision_ahead"),
        ("?changes", "missing_since"),
        ("?changes&since=x", "invalid_revision"),
        ("?changes&since=0&wait=6m", "invalid_wait"),
        ("?changes&since=0&limit=0", "invalid_limit"),
    ] {
        let resp = s
            .req(Method::GET, &format!("/api2/{WS}/ns{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{query}");
    }
    let resp = s
        .req(Method::GET, &format!("/api2/{WS}/ns?watch"))
        .header("Last-Event-ID", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let other = "0c0c0c0c-1111-4222-8333-444455556666";
    let user = token_with(Claims {
        account: uuid::Uuid::new_v4(),
        workspace: Some(WS.parse().unwrap()),
        extra: Default::default(),
        exp: None,
        nbf: None,
    });
    let denied = s
        .client
        .get(s.url(&format!("/api2/{other}/ns?watch")))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403, "a watch is authorized as a listing");
    let unauthenticated = s
        .client
        .get(s.url(&format!("/api2/{WS}/ns?changes&since=0")))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

async fn a_slow_stream_is_cut_while_a_fast_one_continues(kind: Kind) {
    let s = Arc::new(start_with(kind, &["--watch-buffer", "500"]).await);
    let mut fast = watch(&s, "").await;
    assert_eq!(fast.until_sync().await.1, 0);
    let mut slow = watch(&s, "").await;
    assert_eq!(slow.until_sync().await.1, 0);
    // Events with 1,000-byte keys fill the slow client's socket buffers in a
    // few thousand writes; from then on its stream falls behind.
    let long = "x".repeat(990);
    let writes = 8000u64;
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for w in 0..8u64 {
                let s = Arc::clone(&s);
                let long = long.clone();
                tasks.push(tokio::spawn(async move {
                    for i in (w..writes).step_by(8) {
                        let resp = put(&s, &format!("{long}{i:05}"), "v").await;
                        assert!(resp.status().is_success());
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        })
    };
    let mut got = 0;
    while got < writes {
        let event = fast
            .next_within(Duration::from_secs(30))
            .await
            .expect("fast stream ended");
        assert_eq!(event.event, "put");
        got += 1;
    }
    writer.await.unwrap();
    let mut slow_events = 0u64;
    let last = loop {
        match slow.next_within(Duration::from_secs(30)).await {
            Some(event) if event.event == "put" => slow_events += 1,
            Some(event) => break event,
            None => panic!("the slow stream ended without an error event"),
        }
    };
    assert_eq!(last.event, "error");
    assert_eq!(last.data["code"], "too_slow");
    let resume = last.revision();
    assert_eq!(
        resume, slow_events,
        "resume from the last revision it was sent"
    );
    assert!(resume < writes, "the slow stream was cut before the end");
    assert!(
        slow.next().await.is_none(),
        "the stream ends after the error"
    );
    // Resuming from there gives the rest.
    let mut again = watch(&s, &format!("&since={resume}")).await;
    let (replayed, synced) = again.until_sync().await;
    assert_eq!(replayed.len() as u64, writes - resume);
    assert_eq!(synced, writes);
}

async fn an_expiring_token_ends_its_stream(kind: Kind) {
    let s = start(kind).await;
    let token = token_with(Claims {
        account: SYSTEM_ACCOUNT,
        workspace: None,
        extra: Default::default(),
        exp: Some(now_secs() + 2),
        nbf: None,
    });
    let resp = s
        .client
        .get(s.url(&format!("/api2/{WS}/ns?watch")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let mut events = Events::new(resp);
    events.until_sync().await;
    let started = Instant::now();
    let end = events.next_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        (end.event.as_str(), &end.data["code"]),
        ("error", &serde_json::json!("token_expired"))
    );
    assert!(started.elapsed() <= Duration::from_secs(4));
    assert!(events.next().await.is_none());
}

async fn a_quiet_stream_gets_keep_alives(kind: Kind) {
    let s = Arc::new(start(kind).await);
    // Changes of other keys flow, none of the prefix watched: the stream
    // sends nothing but must still show it is alive.
    let mut events = watch(&s, "&prefix=quiet/").await;
    events.until_sync().await;
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            for i in 0..40 {
                put(&s, &format!("loud/{i}"), "v").await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let started = Instant::now();
    events.next_comment_within(Duration::from_secs(17)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "not before it is due"
    );
    writer.abort();
}

async fn streams_of_a_watched_namespace_open_from_its_channel(kind: Kind) {
    let s = start(kind).await;
    put(&s, "before", "v").await;
    let mut first = watch(&s, "").await;
    assert_eq!(first.until_sync().await.1, 1);
    for key in ["a", "b", "c"] {
        put(&s, key, "v").await;
    }
    for _ in 0..3 {
        first.next_within(Duration::from_secs(5)).await.unwrap();
    }
    // The channel holds 2..=4: a stream from 2 is served from it, from 0
    // from the store, from now at its head; beyond the head is refused.
    let mut second = watch(&s, "&since=2").await;
    let (replayed, synced) = second.until_sync().await;
    assert_eq!(
        (
            replayed.iter().map(Event::revision).collect::<Vec<_>>(),
            synced
        ),
        (vec![3, 4], 4)
    );
    let mut third = watch(&s, "&since=0").await;
    let (replayed, synced) = third.until_sync().await;
    assert_eq!((replayed.len(), synced), (4, 4));
    let fourth = s
        .req(Method::GET, &format!("/api2/{WS}/ns?watch"))
        .send()
        .await
        .unwrap();
    assert_eq!(revision_of(&fourth), 4);
    let mut fourth = Events::new(fourth);
    assert_eq!(fourth.until_sync().await.1, 4);
    let ahead = s
        .req(Method::GET, &format!("/api2/{WS}/ns?watch&since=9"))
        .send()
        .await
        .unwrap();
    assert_eq!(ahead.status(), 400);
    put(&s, "d", "v").await;
    for events in [&mut first, &mut second, &mut third, &mut fourth] {
        let event = events.next_within(Duration::from_secs(5)).await.unwrap();
        assert_eq!((event.revision(), event.key()), (5, "d"));
    }
}

/// Writes `key` through a store of its own on the server's database, as
/// another process would: the server's feed is not told.
async fn put_elsewhere(s: &TestServer, key: &str) -> u64 {
    use hulykvs::config::DbTarget;
    use hulykvs::store::{NewValue, PgStore, PutCondition, PutOutcome, SqliteStore, Store};
    let config = config(&s.db_url, &[]);
    let item = hulykvs::store::ItemRef {
        workspace: WS.parse().unwrap(),
        namespace: "ns",
        key,
    };
    let value = NewValue::new(bytes::Bytes::from_static(b"v"), "text/plain".to_owned());
    let outcome = match &config.db.target {
        DbTarget::Postgres(url) => {
            let store = PgStore::open(url, &config.db).unwrap();
            store.migrate().await.unwrap();
            store.put(item, value, PutCondition::Always).await.unwrap()
        }
        DbTarget::Sqlite(path) => {
            let store = SqliteStore::open(path, &config.db).unwrap();
            store.migrate().await.unwrap();
            store.put(item, value, PutCondition::Always).await.unwrap()
        }
    };
    match outcome {
        PutOutcome::Stored(revision) => revision,
        other => panic!("{other:?}"),
    }
}

async fn a_replay_reaches_changes_its_channel_has_not_read(kind: Kind) {
    // Polls once a minute: only the second stream's opening makes the
    // channel read the change written elsewhere.
    let s = start_with(kind, &["--watch-poll", "60s"]).await;
    put(&s, "a", "v").await;
    let mut first = watch(&s, "").await;
    assert_eq!(first.until_sync().await.1, 1);
    assert_eq!(put_elsewhere(&s, "b").await, 2);
    let mut second = watch(&s, "&since=1").await;
    let (replayed, synced) = second.until_sync().await;
    let got: Vec<(u64, &str)> = replayed.iter().map(|e| (e.revision(), e.key())).collect();
    assert_eq!(
        (got, synced),
        (vec![(2, "b")], 2),
        "sync comes after what the store had"
    );
    let event = first.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!((event.revision(), event.key()), (2, "b"));
}

//! Moving data (SPEC §17, issue #17): `dump`, `restore` and `copy` as
//! processes against real stores: a SQLite → PostgreSQL → SQLite round trip
//! byte for byte, filters, gzip, interrupted and bad input, a dump taken
//! under writers being one snapshot, and copy's verification.

#[macro_use]
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use common::process::run_hulykvs;
use common::server::{fresh_db, start_on, Kind, TestServer};
use reqwest::Method;

const WS: &str = "0e0e0e0e-3333-4444-8555-666677778888";
const OTHER_WS: &str = "0e0e0e0e-3333-4444-8555-000000000000";

suite!(
    a_dump_is_one_snapshot_while_writers_run,
    filters_pick_workspaces_and_namespaces,
);

async fn put(s: &TestServer, ws: &str, path: &str, value: &[u8], headers: &[(&str, &str)]) {
    let mut req = s
        .req(Method::PUT, &format!("/api2/{ws}/{path}"))
        .body(value.to_vec());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
}

/// Runs `hulykvs ARGS` with `HULY_DB_CONNECTION=url`; exit code, stdout, stderr.
fn hulykvs(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = run_hulykvs(&[("HULY_DB_CONNECTION", url)], args, None);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dump_to(url: &str, file: &Path, extra: &[&str]) {
    let mut args = vec!["dump", "-o", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, _, stderr) = hulykvs(url, &args);
    assert_eq!(code, Some(0), "dump: {stderr}");
}

fn restore_from(url: &str, file: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["restore", "-i", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    hulykvs(url, &args)
}

/// The row lines of a dump file (gunzipped when it is gzip), the header left out.
fn rows_of(file: &Path) -> Vec<String> {
    let bytes = std::fs::read(file).unwrap();
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
            &mut text,
        )
        .unwrap();
        text
    } else {
        String::from_utf8(bytes).unwrap()
    };
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        (header["format"].as_str(), header["version"].as_u64()),
        (Some("hulykvs-dump"), Some(1))
    );
    lines.map(str::to_owned).collect()
}

/// Rows of every kind: empty, binary, 1 MB, Unicode, content types, expiries.
async fn fill(s: &TestServer) {
    let binary: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    put(s, WS, "ns/empty", b"", &[]).await;
    put(
        s,
        WS,
        "ns/binary",
        &binary,
        &[("Content-Type", "application/x-bin")],
    )
    .await;
    put(s, WS, "ns/big", &big, &[]).await;
    put(
        s,
        WS,
        "ns/ключ/ü",
        "значение ✓".as_bytes(),
        &[("Content-Type", "text/plain; charset=utf-8")],
    )
    .await;
    put(
        s,
        WS,
        "ns/expiring",
        b"soon",
        &[("Huly-Expire-At", "4102444800")],
    )
    .await;
    put(s, WS, "other/a", b"1", &[]).await;
    put(s, OTHER_WS, "ns/a", b"2", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_to_sqlite_round_trips_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (lite, _l) = fresh_db(Kind::Sqlite).await;
    let (pg, _p) = fresh_db(Kind::Postgres).await;
    let (back, _b) = fresh_db(Kind::Sqlite).await;
    let s = start_on(Kind::Sqlite, &lite, &[]).await;
    fill(&s).await;
    let (first, second, third) = (
        dir.path().join("1.jsonl"),
        dir.path().join("2.jsonl.gz"),
        dir.path().join("3.jsonl"),
    );
    dump_to(&lite, &first, &[]);
    let (code, out, err) = restore_from(&pg, &first, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("7 rows read, 7 written"), "{out}");
    dump_to(&pg, &second, &[]);
    assert!(
        std::fs::read(&second).unwrap().starts_with(&[0x1f, 0x8b]),
        "gzip by name"
    );
    let (code, _, err) = restore_from(&back, &second, &[]);
    assert_eq!(code, Some(0), "{err}");
    dump_to(&back, &third, &[]);
    let (a, b, c) = (rows_of(&first), rows_of(&second), rows_of(&third));
    assert_eq!(a.len(), 7);
    assert_eq!(a, c, "SQLite → PostgreSQL → SQLite is byte-identical");
    let (mut a_sorted, mut b_sorted) = (a.clone(), b.clone());
    a_sorted.sort();
    b_sorted.sort();
    assert_eq!(
        a_sorted, b_sorted,
        "PostgreSQL holds the same rows (in its own key order)"
    );
    let row = a.iter().find(|l| l.contains("\"binary\"")).unwrap();
    let row: serde_json::Value = serde_json::from_str(row).unwrap();
    let value = base64::engine::general_purpose::STANDARD
        .decode(row["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(value, (0..=255u8).collect::<Vec<_>>());
    assert_eq!(row["content_type"], "application/x-bin");
    assert_eq!(row["md5"], format!("{:x}", md5::compute(&value)));
    assert!(a.iter().any(|l| l.contains("\"expire_at\":4102444800")));
    // The values read back through the service of the last store.
    let t = start_on(Kind::Sqlite, &back, &[]).await;
    let got = t
        .req(Method::GET, &format!("/api2/{WS}/ns/ключ/ü"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(got.text().await.unwrap(), "значение ✓");
}

async fn filters_pick_workspaces_and_namespaces(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_db(kind).await;
    let s = start_on(kind, &url, &[]).await;
    fill(&s).await;
    let file = dir.path().join("f.jsonl");
    dump_to(&url, &file, &["-w", WS, "--namespace", "other"]);
    let rows = rows_of(&file);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("\"namespace\":\"other\""));
    dump_to(&url, &file, &["-w", OTHER_WS]);
    assert_eq!(rows_of(&file).len(), 1);
    dump_to(&url, &file, &["--namespace", "ns"]);
    assert_eq!(rows_of(&file).len(), 6);
    let (code, _, err) = hulykvs(&url, &["dump", "-w", "not-a-uuid"]);
    assert_eq!(code, Some(2), "{err}");
    // A database this release has not migrated is not dumped (nor migrated).
    let bare = format!("sqlite:{}", dir.path().join("bare.db").display());
    let (code, _, err) = hulykvs(&bare, &["dump"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("lacks migrations"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_restore_runs_again_and_bad_lines_stop_it_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _s) = fresh_db(Kind::Sqlite).await;
    let s = start_on(Kind::Sqlite, &source, &[]).await;
    for i in 0..2500 {
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
        put(
            &s,
            WS,
            &format!("ns/k{i:05}"),
            format!("value {i}").as_bytes(),
            &[],
        )
        .await;
    }
    let full = dir.path().join("full.jsonl");
    dump_to(&source, &full, &[]);
    let text = std::fs::read_to_string(&full).unwrap();
    // Cut in the middle of line 1,800: the restore stops there, naming it,
    // with the 1,798 rows before it written.
    let cut = text.match_indices('\n').nth(1798).unwrap().0 + 20;
    let partial = dir.path().join("partial.jsonl");
    std::fs::write(&partial, &text[..cut]).unwrap();
    let (target, _t) = fresh_db(Kind::Postgres).await;
    let (code, _, err) = restore_from(&target, &partial, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("line 1800"), "{err}");
    let check = dir.path().join("check.jsonl");
    dump_to(&target, &check, &[]);
    assert_eq!(
        rows_of(&check).len(),
        1798,
        "what came before the bad line is kept"
    );
    // Run again, whole: the same state as the source.
    let (code, out, err) = restore_from(&target, &full, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2500 rows read, 2500 written"), "{out}");
    dump_to(&target, &check, &[]);
    assert_eq!(rows_of(&check), rows_of(&full));
    // --skip-existing writes nothing that is there.
    let (code, out, _) = restore_from(&target, &full, &["--skip-existing"]);
    assert_eq!(
        (code, out.contains("2500 rows read, 0 written")),
        (Some(0), true),
        "{out}"
    );
    // A wrong md5 on line 4 and a line that is not JSON on line 3.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[3] = lines[3].replacen("\"md5\":\"", "\"md5\":\"00", 1);
    let wrong = dir.path().join("wrong.jsonl");
    std::fs::write(&wrong, lines[..10].join("\n")).unwrap();
    let (fresh, _f) = fresh_db(Kind::Sqlite).await;
    let (code, _, err) = restore_from(&fresh, &wrong, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("line 4") && err.contains("md5"), "{err}");
    dump_to(&fresh, &check, &[]);
    assert_eq!(
        rows_of(&check).len(),
        2,
        "lines 2 and 3 were written before line 4 stopped it"
    );
    lines[2] = "{\"workspace\": oops".to_owned();
    std::fs::write(&wrong, lines[..10].join("\n")).unwrap();
    let (fresh, _f) = fresh_db(Kind::Postgres).await;
    let (code, _, err) = restore_from(&fresh, &wrong, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("line 3"), "{err}");
    dump_to(&fresh, &check, &[]);
    assert_eq!(
        rows_of(&check).len(),
        1,
        "line 2 was written before line 3 stopped it"
    );
    let long_key = lines[1].replacen("\"key\":\"", &format!("\"key\":\"{}", "k".repeat(1100)), 1);
    std::fs::write(&wrong, format!("{}\n{long_key}\n", lines[0])).unwrap();
    let (code, _, err) = restore_from(&fresh, &wrong, &[]);
    assert!(
        code == Some(1) && err.contains("line 2") && err.contains("1024"),
        "{err}"
    );
    std::fs::write(&wrong, "not a dump\n").unwrap();
    let (code, _, err) = restore_from(&fresh, &wrong, &[]);
    assert!(code == Some(1) && err.contains("line 1"), "{err}");
}

/// Writers update pairs of keys (`a/i`, `b/i`) together in transactions
/// while the dump runs; a snapshot holds each pair equal, and holds every
/// value acknowledged before it started.
async fn a_dump_is_one_snapshot_while_writers_run(kind: Kind) {
    const PAIRS: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_db(kind).await;
    let s = Arc::new(start_on(kind, &url, &[]).await);
    let pad = "x".repeat(3000);
    for i in 0..PAIRS {
        for side in ["a", "b"] {
            put(
                &s,
                WS,
                &format!("ns/{side}/{i:05}"),
                format!("0 {pad}").as_bytes(),
                &[],
            )
            .await;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let generation = Arc::new(AtomicU64::new(1));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, stop, generation, pad) = (
            Arc::clone(&s),
            Arc::clone(&stop),
            Arc::clone(&generation),
            pad.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let i = (w * 389 + n * 7) % PAIRS;
                let g = generation.fetch_add(1, Ordering::Relaxed);
                let value = base64::engine::general_purpose::STANDARD.encode(format!("{g} {pad}"));
                let ops = serde_json::json!({"ops": [
                    {"op": "put", "namespace": "ns", "key": format!("a/{i:05}"), "value": value},
                    {"op": "put", "namespace": "ns", "key": format!("b/{i:05}"), "value": value},
                ]});
                let resp = s
                    .req(Method::POST, &format!("/api2/{WS}?txn"))
                    .json(&ops)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                n += 1;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let file = dir.path().join("snap.jsonl");
    let url2 = url.clone();
    let file2 = file.clone();
    tokio::task::spawn_blocking(move || dump_to(&url2, &file2, &[]))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let rows = rows_of(&file);
    assert_eq!(rows.len(), 2 * PAIRS);
    let mut a = std::collections::HashMap::new();
    let mut b = std::collections::HashMap::new();
    for line in &rows {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = row["key"].as_str().unwrap().to_owned();
        let value = row["value"].as_str().unwrap().to_owned();
        match key.split_once('/') {
            Some(("a", i)) => a.insert(i.to_owned(), value),
            Some(("b", i)) => b.insert(i.to_owned(), value),
            _ => panic!("unexpected key {key}"),
        };
    }
    let torn = a.iter().filter(|(i, v)| b.get(*i) != Some(*v)).count();
    assert_eq!(torn, 0, "{torn} pairs were read at two different moments");
    let changed = a.values().filter(|v| !v.starts_with("MCB4")).count();
    assert!(changed > 0, "the writers wrote before the dump began");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_verifies_every_namespace_and_fails_on_a_tampered_target() {
    let (lite, _l) = fresh_db(Kind::Sqlite).await;
    let (pg, _p) = fresh_db(Kind::Postgres).await;
    let s = start_on(Kind::Sqlite, &lite, &[]).await;
    fill(&s).await;
    let (code, out, err) = hulykvs(&lite, &["copy", "--from", &lite, "--to", &pg]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.matches("  same").count(), 3, "{out}");
    assert!(out.contains("7 rows read, 7 written"), "{out}");
    // Tamper with the target; a copy that keeps existing rows then differs.
    let (client, conn) = tokio_postgres::connect(&pg, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("UPDATE hulykvs.kvs SET value = 'tampered', md5 = decode(md5('tampered'), 'hex') WHERE key = 'a' AND namespace = 'other'")
        .await
        .unwrap();
    let (code, out, err) = hulykvs(
        &lite,
        &["copy", "--from", &lite, "--to", &pg, "--skip-existing"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("DIFFERS") && err.contains("1 namespaces differ"),
        "{out}{err}"
    );
    // Extra rows in a copied namespace of the target differ too.
    client
        .batch_execute(&format!("INSERT INTO hulykvs.kvs (workspace, namespace, key, md5, value) VALUES ('{OTHER_WS}', 'ns', 'extra', decode(md5(''), 'hex'), '')"))
        .await
        .unwrap();
    let (code, out, _) = hulykvs(
        &lite,
        &["copy", "--from", &lite, "--to", &pg, "-w", OTHER_WS],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(OTHER_WS) && out.contains("DIFFERS"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_rows_dump_as_plaintext_with_the_keys_and_restore_sealed() {
    const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = fresh_db(Kind::Sqlite).await;
    let s = start_on(Kind::Sqlite, &url, &["--encryption-keys", K1]).await;
    put(&s, WS, "ns/secret", b"mail token", &[]).await;
    let file = dir.path().join("d.jsonl");
    // More pages than the snapshot keeps in flight: a dump that fails on
    // the first still ends (the snapshot stops), and leaves no file.
    for i in 0..2500 {
        put(&s, WS, &format!("ns/many/{i:05}"), b"v", &[]).await;
    }
    let (code, _, err) = hulykvs(&url, &["dump", "-o", file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("sealed by key \"k1\""), "{err}");
    assert!(!file.exists() && !dir.path().join("d.jsonl.partial").exists());
    let keyed = |args: &[&str]| {
        let out = run_hulykvs(
            &[
                ("HULY_DB_CONNECTION", url.as_str()),
                ("HULY_ENCRYPTION_KEYS", K1),
            ],
            args,
            None,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    keyed(&["dump", "-o", file.to_str().unwrap()]);
    let rows = rows_of(&file);
    assert_eq!(rows.len(), 2501);
    let secret = rows
        .iter()
        .find(|l| l.contains("\"key\":\"secret\""))
        .unwrap();
    let row: serde_json::Value = serde_json::from_str(secret).unwrap();
    assert_eq!(
        row["value"],
        base64::engine::general_purpose::STANDARD.encode("mail token")
    );
    assert_eq!(row["md5"], format!("{:x}", md5::compute("mail token")));
    // Restored with the keys: sealed again in the target.
    let target = dir.path().join("t.db");
    let target_url = format!("sqlite:{}", target.display());
    let out = run_hulykvs(
        &[
            ("HULY_DB_CONNECTION", target_url.as_str()),
            ("HULY_ENCRYPTION_KEYS", K1),
        ],
        &["restore", "-i", file.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&target).unwrap();
    let (key_id, value): (Option<String>, Vec<u8>) = conn
        .query_row(
            "SELECT key_id, value FROM kvs WHERE key = 'secret'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(key_id.as_deref(), Some("k1"));
    assert!(!value.windows(10).any(|w| w == b"mail token"));
}

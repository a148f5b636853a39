//! Issue #10, through the real binary: what a deployment that swaps the
//! previous service's image for hulykvs meets on its first day. Browsers
//! (CORS), probes while migrations run or wait, rows the previous release
//! writes during a rolling upgrade, a schema named in another case, the
//! legacy API's leniency, the small contract gaps, settings that are wrong,
//! and `hulykvs token` without flags.

mod common;

use std::time::{Duration, Instant};

use common::pg;
use common::process::{
    run_hulykvs, spawn_listening, spawn_server, spawn_sqlite_server, ServerProcess,
};
use hulykvs::auth::{mint, Claims, Verifier, SYSTEM_ACCOUNT};
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};

const SECRET: &str = "drop-in-secret";
const WS: &str = "0d0d0d0d-1111-4222-8333-444455556666";
const ORIGIN: &str = "https://huly.example";

fn token() -> String {
    mint(
        &Claims::system("drop-in-test", Duration::from_secs(600)),
        SECRET,
    )
    .unwrap()
}

/// `hulykvs serve` on a new SQLite file, with `envs` on top.
fn sqlite_server(dir: &tempfile::TempDir, envs: &[(&str, &str)]) -> ServerProcess {
    spawn_sqlite_server(dir.path(), SECRET, envs)
}

/// Waits until `/readyz` answers 200.
async fn ready(server: &ServerProcess) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client
            .get(server.url("/readyz"))
            .send()
            .await
            .map(|r| r.status());
        if status.as_ref().is_ok_and(|s| *s == StatusCode::OK) {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JSON error code of a response.
async fn code(resp: reqwest::Response) -> String {
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    body["code"].as_str().unwrap_or_default().to_owned()
}

fn header<'r>(resp: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn preflight(client: &reqwest::Client, url: String, origin: &str) -> reqwest::RequestBuilder {
    client
        .request(Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "PUT")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
}

#[tokio::test]
async fn browsers_get_cors_from_any_origin_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &[]);
    ready(&server).await;
    let client = reqwest::Client::new();

    // A preflight carries no token and still gets 204 with the route's methods.
    for (path, methods) in [
        (format!("/api2/{WS}/ns/key"), "GET, HEAD, PUT, DELETE"),
        ("/api/ns/key".to_owned(), "GET, HEAD, POST, DELETE"),
        // DELETE with ?prefix: a preflight cannot see the query.
        (format!("/api2/{WS}/ns"), "GET, HEAD, DELETE"),
        ("/api/ns".to_owned(), "GET, HEAD"),
    ] {
        let resp = preflight(&client, server.url(&path), ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{path}");
        assert_eq!(header(&resp, "access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(
            header(&resp, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            header(&resp, "access-control-allow-methods"),
            Some(methods),
            "{path}"
        );
        assert_eq!(
            header(&resp, "access-control-allow-headers"),
            Some("authorization,content-type")
        );
        assert_eq!(header(&resp, "access-control-max-age"), Some("3600"));
        assert_eq!(header(&resp, "vary"), Some("Origin"));
    }

    // A credentialed write and read: the headers a script needs to see ETag.
    let url = server.url(&format!("/api2/{WS}/ns/key"));
    let put = client
        .put(&url)
        .bearer_auth(token())
        .header("Origin", ORIGIN)
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    assert_eq!(header(&put, "access-control-allow-origin"), Some(ORIGIN));
    let get = client
        .get(&url)
        .bearer_auth(token())
        .header("Origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(header(&get, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        header(&get, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(header(&get, "vary"), Some("Origin"));
    let exposed = header(&get, "access-control-expose-headers").unwrap_or_default();
    for name in [
        "ETag",
        "Huly-Revision",
        "Huly-Expire-At",
        "Huly-TTL",
        "Huly-Previous-ETag",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }
    // Errors reach the script too, or it could not read why.
    let missing = client
        .get(server.url(&format!("/api2/{WS}/ns/missing")))
        .bearer_auth(token())
        .header("Origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        header(&missing, "access-control-allow-origin"),
        Some("http://localhost:8080")
    );
    // No Origin, no CORS headers.
    let plain = client.get(&url).bearer_auth(token()).send().await.unwrap();
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_origins_can_be_listed_or_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let listed = sqlite_server(
        &dir,
        &[(
            "HULY_CORS_ORIGINS",
            "https://a.example, http://b.example:8080",
        )],
    );
    ready(&listed).await;
    let client = reqwest::Client::new();
    let url = listed.url("/api/ns/key");
    let allowed = preflight(&client, url.clone(), "http://b.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("http://b.example:8080")
    );
    let other = preflight(&client, url.clone(), "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        405,
        "another origin is not answered as a preflight"
    );
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let get = client
        .get(listed.url("/status"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(get.headers().get("access-control-allow-origin").is_none());
    drop(listed);

    let dir = tempfile::tempdir().unwrap();
    let off = sqlite_server(&dir, &[("HULY_CORS_ORIGINS", "off")]);
    ready(&off).await;
    let resp = preflight(&client, off.url("/api/ns/key"), ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn probes_answer_while_migrations_wait_for_another_instance() {
    let db = pg::fresh_database().await;
    let sql = db.connect().await;
    // Another instance holds the migration lease, as during its index build.
    sql.batch_execute(
        "CREATE SCHEMA hulykvs;
         CREATE TABLE hulykvs.hulykvs_migration_lock (id INT8 PRIMARY KEY,
             holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
         INSERT INTO hulykvs.hulykvs_migration_lock VALUES (1, 'another instance', now() + INTERVAL '1 hour');",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let server = spawn_listening(&[
        ("HULY_DB_CONNECTION", &db.url),
        ("HULY_TOKEN_SECRET", SECRET),
    ]);
    let client = reqwest::Client::new();
    for path in ["/livez", "/status"] {
        let resp = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let resp = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(code(resp).await, "migrating");
    let resp = client
        .get(server.url(&format!("/api2/{WS}/ns/key")))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(header(&resp, "retry-after"), Some("1"));
    assert_eq!(code(resp).await, "migrating");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "probes answered only after {:?}",
        started.elapsed()
    );

    // The other instance is done: this one migrates and becomes ready.
    sql.batch_execute("DELETE FROM hulykvs.hulykvs_migration_lock")
        .await
        .unwrap();
    ready(&server).await;
    let resp = client
        .put(server.url(&format!("/api2/{WS}/ns/key")))
        .bearer_auth(token())
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test]
async fn a_value_the_previous_release_overwrote_never_keeps_a_stale_type() {
    let db = pg::fresh_database().await;
    let server = spawn_server(&[
        ("HULY_DB_CONNECTION", &db.url),
        ("HULY_TOKEN_SECRET", SECRET),
    ]);
    ready(&server).await;
    let client = reqwest::Client::new();
    let url = server.url("/api/calendar/watch");
    let put = client
        .post(&url)
        .bearer_auth(token())
        .header("Content-Type", "application/json")
        .body("{\"v\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);

    // The previous release's upsert, as it runs it (its search_path is the schema).
    let sql = db.connect().await;
    sql.batch_execute("SET search_path TO hulykvs")
        .await
        .unwrap();
    let ws: uuid::Uuid = "11111111-2222-3333-4444-555555555555".parse().unwrap();
    let value = b"<binary written by the previous release>".to_vec();
    let md5 = md5::compute(&value).0.to_vec();
    sql.execute(
        "INSERT INTO kvs(workspace, namespace, key, md5, value)
            VALUES($1, $2, $3, $4, $5)
            ON CONFLICT (workspace, namespace, key)
            DO UPDATE SET
                md5 = excluded.md5,
                value = excluded.value",
        &[&ws, &"calendar", &"watch", &md5, &value],
    )
    .await
    .unwrap();
    let get = client.get(&url).bearer_auth(token()).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(
        header(&get, "content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(get.bytes().await.unwrap(), value);

    // Written by hulykvs again, the value has its type again.
    client
        .post(&url)
        .bearer_auth(token())
        .header("Content-Type", "text/plain")
        .body("again")
        .send()
        .await
        .unwrap();
    let get = client.get(&url).bearer_auth(token()).send().await.unwrap();
    assert_eq!(header(&get, "content-type"), Some("text/plain"));
}

#[tokio::test]
async fn a_schema_named_in_another_case_is_the_same_schema() {
    let db = pg::fresh_database().await;
    let url = format!("/api2/{WS}/ns/key");
    {
        let lower = spawn_server(&[
            ("HULY_DB_CONNECTION", &db.url),
            ("HULY_TOKEN_SECRET", SECRET),
            ("HULY_DB_SCHEME", "hulykvs"),
        ]);
        ready(&lower).await;
        let resp = reqwest::Client::new()
            .put(lower.url(&url))
            .bearer_auth(token())
            .body("kept")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    let mixed = spawn_server(&[
        ("HULY_DB_CONNECTION", &db.url),
        ("HULY_TOKEN_SECRET", SECRET),
        ("HULY_DB_SCHEME", "Hulykvs"),
    ]);
    ready(&mixed).await;
    let resp = reqwest::Client::new()
        .get(mixed.url(&url))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "kept");
    let schemas: i64 = db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE lower(schema_name) = 'hulykvs'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(schemas, 1, "no second schema was made");
}

#[tokio::test]
async fn the_legacy_api_ignores_headers_the_previous_service_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &[]);
    ready(&server).await;
    let client = reqwest::Client::new();
    let url = server.url("/api/ns/key");
    let odd_types = [
        HeaderValue::from_bytes(b"text/plain; charset=\xff").unwrap(),
        HeaderValue::from_str(&"x".repeat(300)).unwrap(),
    ];
    for odd in odd_types {
        let resp = client
            .post(&url)
            .bearer_auth(token())
            .header("Content-Type", odd)
            .body("stored")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let get = client.get(&url).bearer_auth(token()).send().await.unwrap();
        assert_eq!(
            header(&get, "content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(get.text().await.unwrap(), "stored");
    }
    let get = client
        .get(&url)
        .bearer_auth(token())
        .header("If-None-Match", "not a tag")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200, "a malformed If-None-Match is ignored");
    // API v2 keeps refusing what it cannot use.
    let v2 = client
        .get(server.url(&format!("/api2/{WS}/ns/key")))
        .bearer_auth(token())
        .header("If-None-Match", "not a tag")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.status(), 400);
}

#[tokio::test]
async fn an_empty_key_and_an_unusable_cursor_are_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = sqlite_server(&dir, &[]);
    ready(&server).await;
    let client = reqwest::Client::new();
    for (method, path) in [
        (Method::PUT, format!("/api2/{WS}/ns/")),
        (Method::DELETE, format!("/api2/{WS}/ns/")),
        (Method::POST, "/api/ns/".to_owned()),
        (Method::DELETE, "/api/ns/".to_owned()),
    ] {
        let resp = client
            .request(method.clone(), server.url(&path))
            .bearer_auth(token())
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{method} {path}");
        assert_eq!(code(resp).await, "invalid_key", "{method} {path}");
    }
    let list = client
        .get(server.url(&format!("/api2/{WS}/ns/")))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200, "GET on the trailing slash still lists");
    // base64url of "a\0b": decodes, but names no key there can be.
    let cursor = client
        .get(server.url(&format!("/api2/{WS}/ns?limit=10&cursor=YQBi")))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(cursor.status(), 400);
    assert_eq!(code(cursor).await, "invalid_cursor");
}

#[test]
fn every_bad_setting_is_one_line_naming_it_and_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
    for (command, var, value, says) in [
        ("serve", "HULY_BIND_PORT", "abc", "from 0 to 65535"),
        ("serve", "HULY_BIND_PORT", "70000", "from 0 to 65535"),
        ("serve", "HULY_DB_POOL_SIZE", "-1", "from 1 to 1000"),
        ("serve", "HULY_DB_POOL_SIZE", "100000", "from 1 to 1000"),
        ("migrate", "HULY_DB_POOL_SIZE", "0", "from 1 to 1000"),
        ("serve", "HULY_REQUIRE_SECRET", "maybe", "true or false"),
        (
            "serve",
            "HULY_MAX_CONNECTIONS",
            "99999999999999999999",
            "from 1 to 1000000",
        ),
        ("serve", "HULY_MAX_CONNECTIONS", "0", "from 1 to 1000000"),
        ("serve", "HULY_PAYLOAD_SIZE_LIMIT", "2gb", "1gb"),
        ("serve", "HULY_CORS_ORIGINS", "huly.example", "origin"),
        ("serve", "HULY_WATCH_BUFFER", "0", "from 1 to 1000000"),
        ("serve", "HULY_WATCH_POLL", "0s", "longer than zero"),
        ("serve", "HULY_CHANGES_RETENTION", "soon", "soon"),
        ("serve", "HULY_WORKER_THREADS", "0", "from 1 to 1024"),
        ("serve", "HULY_WORKER_THREADS", "many", "from 1 to 1024"),
        ("serve", "HULY_CONSOLE", "maybe", "true or false"),
    ] {
        let out = run_hulykvs(
            &[("HULY_DB_CONNECTION", &db), (var, value)],
            &[command],
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("{command} {var}={value}: {stderr}");
        assert_eq!(out.status.code(), Some(2), "{what}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{what}");
        assert!(
            stderr.starts_with(&format!("hulykvs: invalid {var}: ")),
            "{what}"
        );
        assert!(stderr.contains(says), "{what}");
    }
}

#[test]
fn token_without_flags_is_a_system_token() {
    let out = run_hulykvs(&[], &["token", "--secret", "s3"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = Verifier::new("s3").verify(token.trim()).unwrap();
    assert_eq!(claims.account, SYSTEM_ACCOUNT);
    // Contradictory flags stay an error.
    let both = run_hulykvs(
        &[],
        &["token", "--secret", "s3", "--system", "--account", WS],
        None,
    );
    assert_eq!(both.status.code(), Some(2));
    let help = run_hulykvs(&[], &["token", "--help"], None);
    assert!(String::from_utf8_lossy(&help.stdout).contains("[default: the system account]"));
}

//! The command line end to end: the real `hulykvs` binary against a real
//! `hulykvs serve` on an embedded SQLite database, checked as a user sees it:
//! exit codes, stdout bytes, the one stderr line.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Output, Stdio};
use std::time::Duration;

use base64::Engine;
use clap_complete::{Generator, Shell};
use common::certs::Ca;
use common::process::{run_hulykvs, spawn_server, ServerProcess};
use rand::RngCore;

const SECRET: &str = "cli-test-secret";
const SYSTEM_ACCOUNT: &str = "1749089e-22e6-48de-af4e-165e18fbd2f9";

/// A `hulykvs serve` of its own, on a free port and a fresh database; killed on drop.
struct Server {
    process: ServerProcess,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a plain HTTP server.
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with `envs` added to its environment (HTTPS if they
    /// name a certificate).
    fn start_with(envs: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite:{}", dir.path().join("kvs.db").display());
        let mut all = vec![
            ("HULY_DB_CONNECTION", db.as_str()),
            ("HULY_TOKEN_SECRET", SECRET),
        ];
        all.extend_from_slice(envs);
        let process = spawn_server(&all);
        let scheme = if envs.iter().any(|(k, _)| *k == "HULY_TLS_CERT") {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}", process.addr);
        Server {
            process,
            url,
            _dir: dir,
        }
    }

    /// Runs a client subcommand against this server with a minted system token.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Runs a client subcommand, feeding `stdin`.
    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        hulykvs(&[("HULY_KVS_URL", &self.url)], args, stdin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.process.stderr_text());
        }
    }
}

/// Runs `hulykvs ARGS` with `HULY_TOKEN_SECRET` set (so a system token is
/// minted) and `envs`, nothing else from the caller's environment.
fn hulykvs(envs: &[(&str, &str)], args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut all = vec![("HULY_TOKEN_SECRET", SECRET)];
    all.extend_from_slice(envs);
    run_hulykvs(&all, args, stdin)
}

/// Asserts the exit code and that stderr holds `stderr` (empty: stderr is empty).
#[track_caller]
fn assert_exit(output: &Output, code: i32, stderr: &str) {
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {:?}\nstderr: {err}",
        String::from_utf8_lossy(&output.stdout)
    );
    if stderr.is_empty() {
        assert!(err.is_empty(), "unexpected stderr: {err}");
    } else {
        assert!(err.contains(stderr), "stderr {err:?} lacks {stderr:?}");
        assert!(err.starts_with("hulykvs: "), "stderr: {err:?}");
        assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn workspace() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[test]
fn a_mebibyte_of_binary_survives_put_and_get() {
    let server = Server::start();
    let mut value = vec![0u8; 1 << 20];
    rand::thread_rng().fill_bytes(&mut value);
    let tag = format!("\"{:x}\"", md5::compute(&value));

    // Legacy API, value on stdin, value to stdout.
    let put = server.run_with_stdin(&["put", "bin", "blob"], Some(&value));
    assert_exit(&put, 0, "");
    let get = server.run(&["get", "bin", "blob"]);
    assert_exit(&get, 0, "");
    assert!(get.stdout == value, "the value came back different");

    // API v2, `-` for stdin, `--output` and `--etag`.
    let ws = workspace();
    let put = server.run_with_stdin(
        &["put", "-w", &ws, "bin", "blob", "-", "--etag"],
        Some(&value),
    );
    assert_eq!(put.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&put.stderr), format!("{tag}\n"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.bin");
    let file_arg = file.to_str().unwrap();
    let get = server.run(&["get", "-w", &ws, "bin", "blob", "--etag", "-o", file_arg]);
    assert_eq!(get.status.code(), Some(0));
    assert!(get.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&get.stderr).trim(), tag);
    assert!(std::fs::read(&file).unwrap() == value);

    // `--file`, and a value given as the argument.
    let put = server.run(&["put", "-w", &ws, "bin", "copy", "--file", file_arg]);
    assert_exit(&put, 0, "");
    let get = server.run(&["get", "-w", &ws, "bin", "copy"]);
    assert!(get.stdout == value);
    assert_exit(&server.run(&["put", "bin", "word", "hello"]), 0, "");
    assert_eq!(stdout(&server.run(&["get", "bin", "word"])), "hello");
}

#[test]
fn a_missing_key_exits_3() {
    let server = Server::start();
    let ws = workspace();
    let get = server.run(&["get", "ns", "missing"]);
    assert_exit(&get, 3, "get ns/missing: not found");
    assert_eq!(
        String::from_utf8_lossy(&get.stderr),
        "hulykvs: get ns/missing: not found\n"
    );
    assert!(get.stdout.is_empty());
    assert_exit(
        &server.run(&["get", "-w", &ws, "ns", "missing"]),
        3,
        "not found",
    );
    assert_exit(
        &server.run(&["delete", "-w", &ws, "ns", "missing"]),
        3,
        "delete ns/missing: not found",
    );

    // A missing key leaves an existing --output file alone.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keep");
    std::fs::write(&file, "old").unwrap();
    let get = server.run(&["get", "ns", "missing", "-o", file.to_str().unwrap()]);
    assert_exit(&get, 3, "not found");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "old");

    // Delete works, then the key is gone.
    assert_exit(&server.run(&["put", "ns", "k", "v"]), 0, "");
    assert_exit(&server.run(&["delete", "ns", "k"]), 0, "");
    assert_exit(&server.run(&["get", "ns", "k"]), 3, "not found");
}

#[test]
fn a_failed_precondition_exits_4() {
    let server = Server::start();
    let ws = workspace();
    let w = ["-w", ws.as_str()];
    let put = |extra: &[&str]| {
        let args: Vec<&str> = ["put"].iter().chain(&w).chain(extra).copied().collect();
        server.run(&args)
    };

    assert_exit(
        &put(&["ns", "k", "one", "--if-exists"]),
        4,
        "put ns/k: precondition failed",
    );
    assert_exit(&put(&["ns", "k", "one", "--if-absent"]), 0, "");
    let again = put(&["ns", "k", "two", "--if-absent"]);
    assert_exit(
        &again,
        4,
        "put ns/k: precondition failed (a value is already stored)",
    );

    let wrong = "00000000000000000000000000000000";
    assert_exit(
        &put(&["ns", "k", "two", "--if-match", wrong]),
        4,
        "put ns/k: precondition failed (ETag did not match)",
    );
    let tag_one = format!("{:x}", md5::compute("one"));
    assert_exit(&put(&["ns", "k", "two", "--if-match", &tag_one]), 0, "");
    let quoted_two = format!("\"{:x}\"", md5::compute("two"));
    assert_exit(
        &put(&["ns", "k", "three", "--if-match", &quoted_two]),
        0,
        "",
    );
    assert_exit(&put(&["ns", "k", "four", "--if-exists"]), 0, "");
    assert_eq!(stdout(&server.run(&["get", "-w", &ws, "ns", "k"])), "four");

    let delete = server.run(&["delete", "-w", &ws, "ns", "k", "--if-match", wrong]);
    assert_exit(&delete, 4, "delete ns/k: precondition failed");
    let tag_four = format!("{:x}", md5::compute("four"));
    let delete = server.run(&["delete", "-w", &ws, "ns", "k", "--if-match", &tag_four]);
    assert_exit(&delete, 0, "");

    // The legacy API has no conditional requests: refused before sending.
    let legacy = server.run(&["put", "ns", "k", "v", "--if-absent"]);
    assert_exit(&legacy, 2, "put ns/k: --if-absent needs -w WORKSPACE");
    let legacy = server.run(&["delete", "ns", "k", "--if-match", wrong]);
    assert_exit(&legacy, 2, "delete ns/k: --if-match needs -w WORKSPACE");
    assert_exit(&server.run(&["get", "ns", "k"]), 3, "not found");
    let bad_tag = server.run(&["delete", "-w", &ws, "ns", "k", "--if-match", "nope"]);
    assert_exit(&bad_tag, 2, "--if-match \"nope\"");
}

#[test]
fn a_wrong_token_exits_1_with_the_status() {
    let server = Server::start();
    let get = hulykvs(
        &[("HULY_KVS_URL", &server.url), ("HULY_TOKEN", "not.a.token")],
        &["get", "ns", "k"],
        None,
    );
    assert_exit(&get, 1, "get ns/k: 401");
    let signed_elsewhere = hulykvs(&[], &["token", "--system", "--secret", "other"], None);
    let token = stdout(&signed_elsewhere);
    let list = hulykvs(
        &[("HULY_KVS_URL", &server.url)],
        &["list", "ns", "--token", token.trim()],
        None,
    );
    assert_exit(&list, 1, "list ns: 401 Unauthorized");
}

#[test]
fn no_token_and_bad_flags_are_usage_errors() {
    let missing = run_hulykvs(&[], &["get", "ns", "k"], None);
    assert_exit(&missing, 2, "a token is needed");
    assert_exit(
        &hulykvs(&[], &["get", "-w", "nope", "ns", "k"], None),
        2,
        "--workspace \"nope\"",
    );
    assert_exit(
        &hulykvs(&[], &["get", "ns", ""], None),
        2,
        "the key is empty",
    );
    assert_exit(
        &hulykvs(&[], &["token", "--account", "12", "--secret", "s"], None),
        2,
        "--account \"12\": not a UUID",
    );
    assert_exit(
        &hulykvs(
            &[],
            &["token", "--system", "--extra", "x", "--secret", "s"],
            None,
        ),
        2,
        "--extra \"x\": expected K=V",
    );
    let no_secret = run_hulykvs(&[], &["token", "--system"], None);
    assert_eq!(no_secret.status.code(), Some(2));
}

#[test]
fn an_unreachable_server_exits_1() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let get = hulykvs(&[("HULY_KVS_URL", &url)], &["get", "ns", "k"], None);
    assert_exit(&get, 1, "cannot reach");
    assert_eq!(
        String::from_utf8_lossy(&get.stderr),
        format!("hulykvs: cannot reach {url}: connection refused\n")
    );
    let with_slash = format!("{url}/");
    let list = hulykvs(&[], &["list", "--url", &with_slash, "ns"], None);
    assert_exit(&list, 1, &format!("cannot reach {url}: connection refused"));
}

#[test]
fn list_follows_every_page() {
    let server = Server::start();
    let ws = workspace();
    let keys = ["k1", "k2", "k3", "k4", "k5"];
    for key in keys {
        assert_exit(&server.run(&["put", "-w", &ws, "ns", key, key]), 0, "");
        assert_exit(&server.run(&["put", "ns", key, key]), 0, "");
    }
    assert_exit(&server.run(&["put", "-w", &ws, "ns", "other", "x"]), 0, "");
    let want = "k1\nk2\nk3\nk4\nk5\n";

    let paged = server.run(&["list", "-w", &ws, "ns", "--prefix", "k", "--page-size", "2"]);
    assert_exit(&paged, 0, "");
    assert_eq!(stdout(&paged), want);

    let json = server.run(&[
        "list",
        "-w",
        &ws,
        "ns",
        "--prefix",
        "k",
        "--page-size",
        "2",
        "--json",
    ]);
    assert_exit(&json, 0, "");
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"workspace": ws, "namespace": "ns", "count": 5, "keys": keys})
    );

    let legacy = server.run(&["list", "ns", "--page-size", "2"]);
    assert_exit(&legacy, 0, "");
    assert_eq!(stdout(&legacy), want);
    let json = server.run(&["list", "ns", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"namespace": "ns", "count": 5, "keys": keys})
    );

    let empty = server.run(&["list", "-w", &ws, "nothing-here"]);
    assert_exit(&empty, 0, "");
    assert!(empty.stdout.is_empty());
}

#[test]
fn list_into_a_closed_pipe_exits_0() {
    let server = Server::start();
    let ws = workspace();
    // Far more than a pipe holds, so `list` is still writing when the reader goes.
    let keys: Vec<String> = (0..5000)
        .map(|i| format!("a-long-enough-key-name-{i:05}-padding-padding"))
        .collect();
    put_many(&server.url, &ws, "big", &keys);

    let mut child = common::process::hulykvs()
        .args(["list", "-w", &ws, "big"])
        .env("HULY_KVS_URL", &server.url)
        .env("HULY_TOKEN_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    assert_eq!(first.trim_end(), keys[0]);
    drop(reader);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");

    // And the whole listing is there for a reader that stays.
    let all = server.run(&["list", "-w", &ws, "big"]);
    assert_exit(&all, 0, "");
    assert_eq!(stdout(&all).lines().count(), keys.len());
}

/// Stores `keys` (value = key) through HTTP directly: 5,000 processes would be slow.
fn put_many(url: &str, ws: &str, namespace: &str, keys: &[String]) {
    use futures_util::StreamExt;
    let claims = hulykvs::auth::Claims {
        account: hulykvs::auth::SYSTEM_ACCOUNT,
        workspace: None,
        extra: Default::default(),
        exp: None,
        nbf: None,
    };
    let token = hulykvs::auth::mint(&claims, SECRET).unwrap();
    let http = reqwest::Client::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let statuses: Vec<u16> = futures_util::stream::iter(keys)
            .map(|key| {
                let request = http
                    .put(format!(
                        "{url}/api2/{ws}/{namespace}/{}",
                        hulykvs::wire::percent_encode(key)
                    ))
                    .bearer_auth(&token)
                    .body(key.clone());
                async move { request.send().await.unwrap().status().as_u16() }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == 204), "statuses: {statuses:?}");
    });
}

#[test]
fn minted_tokens_carry_the_claims_and_are_accepted() {
    let server = Server::start();
    let ws = workspace();
    let account = uuid::Uuid::new_v4().to_string();
    let minted = hulykvs(
        &[],
        &[
            "token",
            "--account",
            &account,
            "--workspace",
            &ws,
            "--service",
            "calendar",
            "--extra",
            "mode=test",
        ],
        None,
    );
    assert_exit(&minted, 0, "");
    let out = stdout(&minted);
    assert!(out.ends_with('\n') && out.lines().count() == 1, "{out:?}");
    let token = out.trim_end();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let decode = |part: &str| -> serde_json::Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert_eq!(decode(parts[0])["alg"], "HS256");
    assert_eq!(
        decode(parts[1]),
        serde_json::json!({
            "account": account,
            "workspace": ws,
            "extra": {"service": "calendar", "mode": "test"}
        })
    );

    // Accepted for its workspace (404: the key is absent, not 401)…
    let env = [("HULY_KVS_URL", server.url.as_str()), ("HULY_TOKEN", token)];
    assert_exit(
        &hulykvs(&env, &["get", "-w", &ws, "ns", "k"], None),
        3,
        "not found",
    );
    assert_exit(
        &hulykvs(&env, &["put", "-w", &ws, "ns", "k", "v"], None),
        0,
        "",
    );
    assert_eq!(
        stdout(&hulykvs(&env, &["get", "-w", &ws, "ns", "k"], None)),
        "v"
    );
    // …and refused for another.
    let other = workspace();
    let forbidden = hulykvs(&env, &["get", "-w", &other, "ns", "k"], None);
    assert_exit(&forbidden, 1, "get ns/k: 403 Forbidden");

    // A system token decodes to the system account with no workspace or expiry.
    let system = stdout(&hulykvs(&[], &["token", "--system"], None));
    let claims = decode(system.trim().split('.').nth(1).unwrap());
    assert_eq!(claims, serde_json::json!({"account": SYSTEM_ACCOUNT}));
}

#[test]
fn an_expired_token_is_refused() {
    let server = Server::start();
    let minted = hulykvs(&[], &["token", "--system", "--expires", "1s"], None);
    assert_exit(&minted, 0, "");
    let token = stdout(&minted);
    let env = [
        ("HULY_KVS_URL", server.url.as_str()),
        ("HULY_TOKEN", token.trim()),
    ];
    std::thread::sleep(Duration::from_millis(2100));
    assert_exit(
        &hulykvs(&env, &["get", "ns", "k"], None),
        1,
        "get ns/k: 401 Unauthorized",
    );
}

#[test]
fn awkward_keys_round_trip() {
    let server = Server::start();
    let ws = workspace();
    let mut keys = vec![
        "a/b/c",
        "/leading/slash",
        "trailing/",
        "x:y@z",
        "1+1=2",
        "100%",
        "%2F",
        "with space",
        "q?a=b&c#frag",
        "ключ/значение",
        "emoji 😀",
        "+",
        "a/../b",
    ];
    for api in [vec!["-w", ws.as_str()], vec![]] {
        for key in &keys {
            let put: Vec<&str> = ["put"]
                .iter()
                .copied()
                .chain(api.clone())
                .chain(["odd ns", key, key])
                .collect();
            assert_exit(&server.run(&put), 0, "");
            let get: Vec<&str> = ["get"]
                .iter()
                .copied()
                .chain(api.clone())
                .chain(["odd ns", key])
                .collect();
            let got = server.run(&get);
            assert_exit(&got, 0, "");
            assert_eq!(stdout(&got), *key);
        }
        let list: Vec<&str> = ["list"]
            .iter()
            .copied()
            .chain(api.clone())
            .chain(["odd ns"])
            .collect();
        let listed = server.run(&list);
        assert_exit(&listed, 0, "");
        keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(stdout(&listed).lines().collect::<Vec<_>>(), keys);
        let prefixed: Vec<&str> = list.iter().copied().chain(["--prefix", "100%"]).collect();
        assert_eq!(stdout(&server.run(&prefixed)), "100%\n");
    }
}

/// The committed scripts in `completions/` must match the command line.
/// Regenerate them with either of:
///
/// ```sh
/// UPDATE_COMPLETIONS=1 cargo test --test cli completions
/// for s in bash:hulykvs.bash zsh:_hulykvs fish:hulykvs.fish elvish:hulykvs.elv powershell:_hulykvs.ps1; do
///     cargo run -q -- completions "${s%%:*}" > "completions/${s#*:}"; done
/// ```
#[test]
fn completions_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let update = std::env::var_os("UPDATE_COMPLETIONS").is_some();
    let shells = [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ];
    let mut stale = Vec::new();
    for shell in shells {
        let mut script = Vec::new();
        hulykvs::cli::write_completions(shell, &mut script).unwrap();
        let path = dir.join(shell.file_name("hulykvs"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &script).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(script.as_slice()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale or missing completion scripts: {stale:?}\nregenerate them with\n    \
         UPDATE_COMPLETIONS=1 cargo test --test cli completions"
    );
    // The binary prints the committed scripts.
    for shell in shells {
        let printed = hulykvs(&[], &["completions", &shell.to_string()], None);
        assert_exit(&printed, 0, "");
        let committed = std::fs::read(dir.join(shell.file_name("hulykvs"))).unwrap();
        assert!(
            printed.stdout == committed,
            "`hulykvs completions {shell}` differs"
        );
    }
}

/// PEM files for HTTPS tests: a CA, the server's certificate, a client
/// certificate from the same CA, and a CA and client certificate of a stranger.
struct Certs {
    _dir: tempfile::TempDir,
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
    stranger_ca: String,
    stranger_cert: String,
    stranger_key: String,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: &str| -> String {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path.display().to_string()
        };
        let ca = Ca::new("hulykvs test ca");
        let stranger = Ca::new("stranger ca");
        let server = ca.server();
        let client = ca.client("alice");
        let strange_client = stranger.client("mallory");
        Certs {
            ca: write("ca.pem", &ca.cert_pem),
            server_cert: write("server.pem", &server.cert_pem),
            server_key: write("server.key", &server.key_pem),
            client_cert: write("client.pem", &client.cert_pem),
            client_key: write("client.key", &client.key_pem),
            stranger_ca: write("stranger-ca.pem", &stranger.cert_pem),
            stranger_cert: write("stranger.pem", &strange_client.cert_pem),
            stranger_key: write("stranger.key", &strange_client.key_pem),
            _dir: dir,
        }
    }

    /// A server with this certificate; with `mutual`, it wants client
    /// certificates from the CA.
    fn server(&self, mutual: bool) -> Server {
        let mut envs = vec![
            ("HULY_TLS_CERT", self.server_cert.as_str()),
            ("HULY_TLS_KEY", self.server_key.as_str()),
        ];
        if mutual {
            envs.push(("HULY_TLS_CLIENT_CA", self.ca.as_str()));
        }
        Server::start_with(&envs)
    }
}

#[test]
fn https_with_ca_cert_round_trips_and_without_it_fails() {
    let certs = Certs::new();
    let server = certs.server(false);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let ca = ["--ca-cert", certs.ca.as_str()];

    let put = server.run(&[&["put"][..], &ca, &["ns", "k", "over tls"]].concat());
    assert_exit(&put, 0, "");
    let get = server.run(&[&["get"][..], &ca, &["ns", "k"]].concat());
    assert_exit(&get, 0, "");
    assert_eq!(stdout(&get), "over tls");

    // The CA from the environment, and the certificate's other name.
    let port = server.process.addr.port();
    let by_name = format!("https://localhost:{port}");
    let env = [
        ("HULY_KVS_URL", by_name.as_str()),
        ("HULY_KVS_CA_CERT", certs.ca.as_str()),
    ];
    let listed = hulykvs(&env, &["list", "ns"], None);
    assert_exit(&listed, 0, "");
    assert_eq!(stdout(&listed), "k\n");

    // The built-in public roots do not vouch for a private CA…
    let untrusted = server.run(&["get", "ns", "k"]);
    assert_exit(
        &untrusted,
        1,
        &format!(
            "cannot reach {}: invalid peer certificate: UnknownIssuer",
            server.url
        ),
    );
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("--ca-cert"),
        "the line points to --ca-cert: {untrusted:?}"
    );
    assert!(untrusted.stdout.is_empty());
    // …and --ca-cert trusts only its own CA.
    let stranger = server.run(&["get", "--ca-cert", &certs.stranger_ca, "ns", "k"]);
    assert_exit(&stranger, 1, "invalid peer certificate: UnknownIssuer");
}

#[test]
fn mutual_tls_wants_a_client_certificate_from_its_ca() {
    let certs = Certs::new();
    let server = certs.server(true);
    let ca = ["--ca-cert", certs.ca.as_str()];
    let alice = [
        "--client-cert",
        certs.client_cert.as_str(),
        "--client-key",
        certs.client_key.as_str(),
    ];

    // Without a client certificate the service ends the connection; however
    // the request learns of it, the line says what to look at.
    let anonymous = server.run(&[&["put"][..], &ca, &["ns", "k", "v"]].concat());
    assert_exit(&anonymous, 1, "put ns/k: ");
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("client certificate"),
        "{anonymous:?}"
    );

    let put = server.run(&[&["put"][..], &ca, &alice, &["ns", "k", "mutual"]].concat());
    assert_exit(&put, 0, "");
    // The client certificate and key from the environment.
    let env = [
        ("HULY_KVS_URL", server.url.as_str()),
        ("HULY_KVS_CA_CERT", certs.ca.as_str()),
        ("HULY_KVS_CLIENT_CERT", certs.client_cert.as_str()),
        ("HULY_KVS_CLIENT_KEY", certs.client_key.as_str()),
    ];
    let get = hulykvs(&env, &["get", "ns", "k"], None);
    assert_exit(&get, 0, "");
    assert_eq!(stdout(&get), "mutual");

    // A certificate from another CA is refused like none at all.
    let mallory = [
        "--client-cert",
        certs.stranger_cert.as_str(),
        "--client-key",
        certs.stranger_key.as_str(),
    ];
    let refused = server.run(&[&["get"][..], &ca, &mallory, &["ns", "k"]].concat());
    assert_exit(&refused, 1, "get ns/k: ");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refuse the client certificate"),
        "{refused:?}"
    );
    assert!(refused.stdout.is_empty());
}

#[test]
fn client_certificate_flags_come_in_pairs() {
    let certs = Certs::new();
    // Checked before anything is sent: nothing listens at this URL.
    let url = ["--url", "https://127.0.0.1:9"];
    for (given, missing) in [
        (
            ["--client-cert", certs.client_cert.as_str()],
            "--client-key",
        ),
        (["--client-key", certs.client_key.as_str()], "--client-cert"),
    ] {
        let half = hulykvs(
            &[],
            &[&["get"][..], &url, &given, &["ns", "k"]].concat(),
            None,
        );
        assert_eq!(half.status.code(), Some(2), "{half:?}");
        let err = String::from_utf8_lossy(&half.stderr);
        assert!(err.contains(missing), "{given:?}: {err}");
    }
    // The same from the environment.
    let half = hulykvs(
        &[("HULY_KVS_CLIENT_CERT", certs.client_cert.as_str())],
        &[&["get"][..], &url, &["ns", "k"]].concat(),
        None,
    );
    assert_eq!(half.status.code(), Some(2), "{half:?}");
    assert!(String::from_utf8_lossy(&half.stderr).contains("--client-key"));
}

#[test]
fn unusable_tls_files_are_usage_errors_naming_the_file() {
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let missing = dir.path().join("missing.pem").display().to_string();
    let not_pem = file("notes.txt", "just some text\n");
    let cut = file("cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    let get = |flags: &[&str]| {
        let args = [
            &["get", "--url", "https://127.0.0.1:9"][..],
            flags,
            &["ns", "k"],
        ]
        .concat();
        hulykvs(&[], &args, None)
    };
    let pair = |cert: &str, key: &str| get(&["--client-cert", cert, "--client-key", key]);
    for (output, line) in [
        (
            get(&["--ca-cert", &missing]),
            format!("--ca-cert {missing:?}: cannot read: "),
        ),
        (
            get(&["--ca-cert", &not_pem]),
            format!("--ca-cert {not_pem:?}: holds no PEM certificate"),
        ),
        (
            get(&["--ca-cert", &certs.client_key]),
            format!("--ca-cert {:?}: holds no PEM certificate", certs.client_key),
        ),
        (
            get(&["--ca-cert", &cut]),
            format!("--ca-cert {cut:?}: not valid PEM"),
        ),
        (
            pair(&certs.client_key, &certs.client_key),
            format!(
                "--client-cert {:?}: holds no PEM certificate",
                certs.client_key
            ),
        ),
        (
            pair(&certs.client_cert, &certs.client_cert),
            format!(
                "--client-key {:?}: holds no PEM private key",
                certs.client_cert
            ),
        ),
        (
            pair(&certs.client_cert, &missing),
            format!("--client-key {missing:?}: cannot read: "),
        ),
        (
            pair(&certs.client_cert, &certs.stranger_key),
            format!(
                "--client-key {:?} does not fit --client-cert {:?}",
                certs.stranger_key, certs.client_cert
            ),
        ),
    ] {
        assert_exit(&output, 2, &line);
    }
}

#[test]
fn delete_by_prefix_prints_the_count_and_guards_the_whole_namespace() {
    let server = Server::start();
    let ws = workspace();
    for key in ["p/1", "p/2", "p/3", "q"] {
        assert_exit(&server.run(&["put", "-w", &ws, "ns", key, "v"]), 0, "");
    }
    let deleted = server.run(&["delete", "-w", &ws, "ns", "--prefix", "p/"]);
    assert_exit(&deleted, 0, "");
    assert_eq!(stdout(&deleted), "3\n");
    let whole = server.run(&["delete", "-w", &ws, "ns", "--prefix", ""]);
    assert_exit(&whole, 2, "add --yes");
    assert_eq!(stdout(&server.run(&["list", "-w", &ws, "ns"])), "q\n");
    let whole = server.run(&["delete", "-w", &ws, "ns", "--prefix", "", "--yes"]);
    assert_eq!(stdout(&whole), "1\n");
    let legacy = server.run(&["delete", "ns", "--prefix", "p"]);
    assert_exit(&legacy, 2, "--prefix needs -w WORKSPACE");
    // Usage errors of clap's own: exit 2.
    let both = server.run(&["delete", "-w", &ws, "ns", "k", "--prefix", "p"]);
    assert_eq!(both.status.code(), Some(2));
    let neither = server.run(&["delete", "-w", &ws, "ns"]);
    assert_eq!(neither.status.code(), Some(2));
    assert_eq!(stdout(&server.run(&["list", "-w", &ws, "ns"])), "");
}

#[test]
fn list_values_prints_a_line_per_value_across_pages() {
    let server = Server::start();
    let ws = workspace();
    let b64 = base64::engine::general_purpose::STANDARD;
    let binary: Vec<u8> = (0..=255u8).collect();
    assert_exit(
        &server.run_with_stdin(&["put", "-w", &ws, "ns", "bin"], Some(&binary)),
        0,
        "",
    );
    for key in ["a", "b", "c"] {
        let put = server.run(&[
            "put",
            "-w",
            &ws,
            "ns",
            key,
            key,
            "--content-type",
            "text/plain",
        ]);
        assert_exit(&put, 0, "");
    }
    let listed = server.run(&["list", "-w", &ws, "ns", "--values", "--page-size", "2"]);
    assert_exit(&listed, 0, "");
    let lines: Vec<serde_json::Value> = stdout(&listed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["a", "b", "bin", "c"], "every page, in order");
    assert_eq!(lines[0]["value"], b64.encode("a"));
    assert_eq!(lines[0]["content_type"], "text/plain");
    assert_eq!(
        b64.decode(lines[2]["value"].as_str().unwrap()).unwrap(),
        binary
    );
    assert_eq!(lines[2]["etag"], format!("{:x}", md5::compute(&binary)));
    let json = server.run(&[
        "list", "-w", &ws, "ns", "--values", "--json", "--prefix", "b",
    ]);
    assert_exit(&json, 0, "");
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(doc["count"], 2);
    assert_eq!(doc["items"][1]["key"], "bin");
    assert!(doc.get("cursor").is_none());
}

#[test]
fn txn_runs_ops_from_a_file_or_stdin_and_exits_4_on_a_failed_condition() {
    let server = Server::start();
    let ws = workspace();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ops.json");
    let ops = r#"{"ops":[{"op":"put","namespace":"ns","key":"k","value":"aGVsbG8=","if_none_match":"*"},
        {"op":"get","namespace":"ns","key":"k"}]}"#;
    std::fs::write(&file, ops).unwrap();
    let ran = server.run(&["txn", "-w", &ws, file.to_str().unwrap()]);
    assert_exit(&ran, 0, "");
    let answer: serde_json::Value = serde_json::from_str(&stdout(&ran)).unwrap();
    assert_eq!(
        answer["results"][0]["etag"],
        "5d41402abc4b2a76b9719d911017c592"
    );
    assert_eq!(
        answer["results"][1]["found"], false,
        "a get sees the state before"
    );
    assert_eq!(stdout(&server.run(&["get", "-w", &ws, "ns", "k"])), "hello");
    // Again from stdin: the key exists now, so op 0 fails and nothing is written.
    let again = server.run_with_stdin(&["txn", "-w", &ws], Some(ops.as_bytes()));
    assert_exit(
        &again,
        4,
        "txn: precondition failed (ops 0); nothing was written",
    );
    let bad = server.run_with_stdin(&["txn", "-w", &ws, "-"], Some(b"{\"ops\": ["));
    assert_exit(&bad, 2, "the ops are not JSON");
    let invalid = server.run_with_stdin(&["txn", "-w", &ws], Some(br#"{"ops":[{"op":"nope"}]}"#));
    assert_exit(&invalid, 1, "400 Bad Request: op 0:");
    let legacy = server.run_with_stdin(&["txn"], Some(ops.as_bytes()));
    assert_exit(&legacy, 2, "needs -w WORKSPACE");
}

#[test]
fn previous_prints_the_value_a_write_replaced() {
    let server = Server::start();
    let ws = workspace();
    let first = server.run(&["put", "-w", &ws, "ns", "k", "one", "--previous"]);
    assert_exit(&first, 0, "");
    assert_eq!(stdout(&first), "", "nothing was replaced");
    let second = server.run(&["put", "-w", &ws, "ns", "k", "two", "--previous"]);
    assert_exit(&second, 0, "");
    assert_eq!(stdout(&second), "one");
    let deleted = server.run(&["delete", "-w", &ws, "ns", "k", "--previous"]);
    assert_exit(&deleted, 0, "");
    assert_eq!(stdout(&deleted), "two");
    let again = server.run(&["delete", "-w", &ws, "ns", "k", "--previous"]);
    assert_exit(&again, 3, "not found");
    let legacy = server.run(&["put", "ns", "k", "v", "--previous"]);
    assert_exit(&legacy, 2, "--previous needs -w WORKSPACE");
}

#[test]
fn acl_check_says_allowed_or_denied_and_which_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl.toml");
    std::fs::write(
        &file,
        "# Huly\n[[allow]]\nservice = \"calendar\"\nnamespaces = [\"calendar\", \"calendar:*\"]\n\
         access = \"read-write\"\n\n[[allow]]\nservice = \"reporting\"\nnamespaces = [\"*\"]\n\
         access = \"read\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let check = |args: &[&str]| {
        let mut all = vec!["acl", "check", "--file", path];
        all.extend_from_slice(args);
        hulykvs(&[], &all, None)
    };
    let allowed = check(&["--service", "calendar", "calendar:events", "write"]);
    assert_exit(&allowed, 0, "");
    let line = stdout(&allowed);
    assert!(
        line.starts_with("allowed: write on namespace \"calendar:events\""),
        "{line}"
    );
    assert!(line.contains("rule 1 (line 2)"), "{line}");
    let denied = check(&["--service", "reporting", "calendar", "write"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(denied.stderr.is_empty(), "said on stdout only");
    assert!(stdout(&denied).starts_with("denied: write on namespace \"calendar\""));
    let read = check(&["--service", "reporting", "anything"]);
    assert_exit(&read, 0, "");
    assert!(stdout(&read).contains("rule 2 (line 7)"));
    // The service from a token (not verified: the policy is what is asked).
    let token = hulykvs(&[], &["token", "--service", "calendar"], None);
    let token = stdout(&token).trim().to_owned();
    assert_exit(&check(&["--token", &token, "calendar", "write"]), 0, "");
    assert_exit(&check(&["--token", &token, "gmail"]), 1, "");
    let person = check(&[
        "--account",
        "0e0e0e0e-1111-4222-8333-444455556666",
        "calendar",
    ]);
    assert_eq!(person.status.code(), Some(1));
    assert_exit(
        &check(&["--account", "nope", "calendar"]),
        2,
        "--account \"nope\"",
    );
    assert_exit(&check(&["--token", "x.y", "calendar"]), 2, "--token");
    std::fs::write(
        &file,
        "[[allow]]\nservice = \"x\"\nnamespaces = [\"a\"]\naccess = \"rw\"\n",
    )
    .unwrap();
    assert_exit(&check(&["--service", "x", "a"]), 1, "line 1: access \"rw\"");
}

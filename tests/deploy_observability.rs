//! Issue #28: the Grafana dashboard and the Prometheus alerting rules of
//! `deploy/`, each checked by the tool that consumes it.
//!
//! - The rules pass `promtool check rules`, and their unit tests pass
//!   `promtool test rules`: every rule has a case where it fires and one
//!   where it stays quiet.
//! - The dashboard is a well-formed Grafana model, and every query of every
//!   panel, run by a real Prometheus scraping a real hulykvs on PostgreSQL
//!   under known traffic, returns series with numbers, carrying the labels
//!   its legend names. Its variables find the job and the instance.
//! - The rules' series exist in that same Prometheus, and the rules that the
//!   traffic provokes (undecryptable values, 5xx, spans dropped and refused)
//!   hold on it, so a rule cannot test green on synthetic series while
//!   naming something hulykvs does not export.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::pg;
use common::process::{spawn_server, ServerProcess};
use common::prometheus::{tool, Prometheus};
use common::sse::Events;
use hulykvs::auth::{mint, Claims};

const SECRET: &str = "observability-secret";
const WS: &str = "0e0e0e0e-1111-4222-8333-444455556666";
/// What the dashboard's `$__rate_interval` stands for here: it covers the
/// whole test, and Prometheus scrapes every second.
const RATE_INTERVAL: &str = "1m";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    let path = deploy(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One alerting rule of `alerts.yaml`, read line by line: the file keeps to
/// `- alert:` blocks whose `expr:` is inline or a `|` block.
struct Rule {
    name: String,
    expr: String,
    text: String,
}

fn rules() -> Vec<Rule> {
    let text = read("prometheus/alerts.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with("- alert: "))
        .collect();
    let mut rules = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let block = &lines[start..starts.get(n + 1).copied().unwrap_or(lines.len())];
        let name = block[0].trim_start()["- alert: ".len()..].trim().to_owned();
        let at = block
            .iter()
            .position(|l| l.trim_start().starts_with("expr:"))
            .unwrap_or_else(|| panic!("{name}: no expr"));
        let inline = block[at].trim_start()["expr:".len()..].trim();
        let expr = if inline.starts_with('|') {
            let indent = block[at].len() - block[at].trim_start().len();
            block[at + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            inline.to_owned()
        };
        rules.push(Rule {
            name,
            expr: expr.trim().to_owned(),
            text: block.join("\n"),
        });
    }
    rules
}

#[test]
fn the_alert_rules_pass_promtool_and_each_fires_and_stays_quiet_in_its_unit_tests() {
    for args in [
        ["check", "rules", "alerts.yaml"],
        ["test", "rules", "alerts.test.yaml"],
    ] {
        let out = Command::new(tool("promtool"))
            .args(args)
            .current_dir(deploy("prometheus"))
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = rules();
    assert!(rules.len() >= 9, "{} rules", rules.len());
    for rule in &rules {
        for field in ["for: ", "severity: ", "summary: ", "description: "] {
            assert!(rule.text.contains(field), "{}: no `{field}`", rule.name);
        }
        assert!(
            rule.text.contains("severity: critical") || rule.text.contains("severity: warning"),
            "{}: severity is critical or warning",
            rule.name
        );
    }
    // Each rule is tested both ways: an `alertname:` followed by expected
    // alerts, and one followed by `exp_alerts: []`.
    let tests = read("prometheus/alerts.test.yaml");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut cases: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname: ") {
            let expected = lines[i + 1..].iter().find(|l| !l.is_empty()).copied();
            let case = cases.entry(name).or_default();
            match expected {
                Some("exp_alerts: []") => case.1 = true,
                Some("exp_alerts:") => case.0 = true,
                other => panic!("{name}: {other:?} after alertname"),
            }
        }
    }
    for rule in &rules {
        let (fires, quiet) = cases.get(rule.name.as_str()).copied().unwrap_or_default();
        assert!(fires, "{}: no unit test where it fires", rule.name);
        assert!(quiet, "{}: no unit test where it stays quiet", rule.name);
    }
}

/// One query of the dashboard.
struct Target {
    panel: String,
    ref_id: String,
    expr: String,
    legend: String,
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("grafana/hulykvs.json")).expect("the dashboard is JSON")
}

/// Every panel's queries, after checking the panels' shape as Grafana wants
/// it: unique ids, a title, a type, a place on the 24-column grid, the
/// `${datasource}` variable, and targets with an expression and a refId.
fn targets(dashboard: &serde_json::Value) -> Vec<Target> {
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "{title}: id {id} twice");
        let kind = panel["type"].as_str().unwrap_or_default();
        assert!(!kind.is_empty(), "{title}: no type");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        assert!(
            x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24)
                && grid["y"].is_u64()
                && grid["h"].as_u64().is_some_and(|h| h > 0),
            "{title}: gridPos {grid}"
        );
        if kind == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: datasource"
        );
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for target in targets {
            let ref_id = target["refId"].as_str().unwrap_or_default().to_owned();
            assert!(
                refs.insert(ref_id.clone()),
                "{title}: refId {ref_id:?} twice"
            );
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{title} {ref_id}: datasource"
            );
            let expr = target["expr"].as_str().unwrap_or_default().to_owned();
            assert!(!expr.trim().is_empty(), "{title} {ref_id}: no expr");
            // `or vector(0)` answers whatever the rest finds: such a query
            // could not fail the check against Prometheus.
            assert!(!expr.contains("vector("), "{title} {ref_id}: {expr}");
            out.push(Target {
                panel: title.clone(),
                ref_id,
                expr,
                legend: target["legendFormat"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    out
}

#[test]
fn the_dashboard_is_a_grafana_model_with_its_variables() {
    let dashboard = dashboard();
    assert_eq!(dashboard["schemaVersion"], 39);
    assert_eq!(dashboard["uid"], "hulykvs");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let by_name: BTreeMap<&str, &serde_json::Value> = variables
        .iter()
        .map(|v| (v["name"].as_str().expect("a variable name"), v))
        .collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        ["datasource", "instance", "job"]
    );
    assert_eq!(by_name["datasource"]["type"], "datasource");
    assert_eq!(by_name["datasource"]["query"], "prometheus");
    for name in ["job", "instance"] {
        assert_eq!(by_name[name]["type"], "query", "{name}");
        assert_eq!(
            by_name[name]["datasource"]["uid"], "${datasource}",
            "{name}"
        );
    }
    assert_eq!(by_name["instance"]["includeAll"], true);
    let targets = targets(&dashboard);
    assert!(targets.len() >= 20, "{} queries", targets.len());
    for t in &targets {
        let unknown = as_sent(&t.expr, "hulykvs", "127.0.0.1:1");
        assert!(
            !unknown.contains('$'),
            "{} {}: unknown variable in {}",
            t.panel,
            t.ref_id,
            t.expr
        );
        for variable in ["$job", "$instance"] {
            assert!(
                t.expr.contains(variable),
                "{} {}: does not select by {variable}",
                t.panel,
                t.ref_id
            );
        }
    }
}

/// `expr` as Grafana sends it with `job` and `instance` chosen.
fn as_sent(expr: &str, job: &str, instance: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$job", job)
        .replace("$instance", instance)
}

fn token() -> String {
    mint(
        &Claims::system("deploy-observability", Duration::from_secs(600)),
        SECRET,
    )
    .unwrap()
}

/// A port nothing listens on: the trace collector that refuses every span.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One round of known traffic: writes (one expiring in a second), batched
/// reads and writes, a hit, a miss, a listing, a readiness probe, five
/// values that do not open (`500 undecryptable`), and a watch stream that
/// sees a change and goes away.
async fn traffic(server: &ServerProcess, round: u32) {
    let client = reqwest::Client::new();
    let url = |path: &str| server.url(&format!("/api2/{WS}/{path}"));
    let put = |path: String, ttl: Option<&str>| {
        let mut req = client.put(url(&path)).bearer_auth(token()).body("v");
        if let Some(ttl) = ttl {
            req = req.header("Huly-TTL", ttl);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let get = |path: String| {
        let req = client.get(url(&path)).bearer_auth(token());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(put("ns/plain".into(), None).await, 204);
    assert_eq!(put(format!("ns/short-{round}"), Some("1")).await, 204);
    // Many at once against a pool of two: PostgreSQL batches them.
    let puts = (0..64).map(|i| put(format!("batch/k{i}"), None));
    assert!(futures_util::future::join_all(puts)
        .await
        .iter()
        .all(|s| *s == 204));
    let gets = (0..128).map(|i| get(format!("batch/k{}", i % 64)));
    assert!(futures_util::future::join_all(gets)
        .await
        .iter()
        .all(|s| *s == 200));
    assert_eq!(get("ns/plain".into()).await, 200);
    assert_eq!(get("ns/missing".into()).await, 404);
    assert_eq!(get("ns".into()).await, 200);
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    for _ in 0..5 {
        assert_eq!(get("ns/sealed".into()).await, 500);
    }
    let stream = client
        .get(url("ns?watch"))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    let mut events = Events::new(stream);
    events.until_sync().await;
    assert_eq!(put(format!("ns/watched-{round}"), None).await, 204);
    let event = events.next_within(Duration::from_secs(10)).await;
    assert_eq!(event.map(|e| e.event), Some("put".to_owned()));
}

/// A GET of Prometheus' HTTP API: its `data`, or why not.
async fn api(
    prometheus: &Prometheus,
    path: &str,
    params: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let url = format!("http://127.0.0.1:{}/api/v1/{path}", prometheus.port);
    let resp = reqwest::Client::new()
        .get(&url)
        .query(params)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let body: serde_json::Value = resp.json().await.map_err(|e| format!("{url}: {e}"))?;
    match body["status"].as_str() {
        Some("success") => Ok(body["data"].clone()),
        _ => Err(format!("{url} {params:?}: {body}")),
    }
}

/// What is wrong with a query's answer, if anything: no series, no number
/// (a quantile or ratio of nothing is NaN), or a legend naming a label that
/// no series carries.
fn fault(result: &[serde_json::Value], legend: &str) -> Option<String> {
    if result.is_empty() {
        return Some("no series".to_owned());
    }
    let numbers = result.iter().any(|series| {
        series["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    });
    if !numbers {
        return Some("only NaN".to_owned());
    }
    let labels: Vec<&str> = legend
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}").map(|(label, _)| label.trim()))
        .collect();
    let missing: Vec<&&str> = labels
        .iter()
        .filter(|label| !result.iter().any(|s| s["metric"].get(**label).is_some()))
        .collect();
    (!missing.is_empty()).then(|| format!("no series has the legend's {missing:?}"))
}

/// The selectors of a PromQL expression: each metric name written before
/// `{`, with the label names its matchers use.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !ident(chars[i]) || (i > 0 && ident(chars[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident(chars[i]) {
            i += 1;
        }
        if chars.get(i) != Some(&'{') {
            continue;
        }
        let name: String = chars[start..i].iter().collect();
        let mut labels = Vec::new();
        let mut label = String::new();
        let mut in_string = false;
        i += 1;
        while i < chars.len() && (in_string || chars[i] != '}') {
            match chars[i] {
                '\\' if in_string => i += 1,
                '"' => in_string = !in_string,
                c if !in_string && ident(c) => label.push(c),
                _ if !label.is_empty() => labels.push(std::mem::take(&mut label)),
                _ => {}
            }
            i += 1;
        }
        out.push((name, labels));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_and_rule_finds_the_series_of_a_real_hulykvs() {
    let started = Instant::now();
    let db = pg::fresh_database().await;
    let collector = format!("http://127.0.0.1:{}", closed_port());
    let url = db.url.clone();
    let server = tokio::task::spawn_blocking(move || {
        spawn_server(&[
            ("HULY_DB_CONNECTION", url.as_str()),
            ("HULY_TOKEN_SECRET", SECRET),
            ("HULY_DB_POOL_SIZE", "2"),
            ("HULY_EXPIRY_SWEEP", "100ms"),
            // Traces on, to a collector that refuses them, through a queue
            // of one: spans are refused and dropped.
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ])
    })
    .await
    .expect("start hulykvs");
    let instance = server.addr.to_string();
    // A value sealed by a key the server does not hold: it answers 500.
    let sealed = reqwest::Client::new()
        .put(server.url(&format!("/api2/{WS}/ns/sealed")))
        .bearer_auth(token())
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(sealed.status(), 204);
    db.connect()
        .await
        .batch_execute(
            "UPDATE hulykvs.kvs SET key_id = 'retired', md5 = decode(md5('elsewhere'), 'hex') \
             WHERE key = 'sealed'",
        )
        .await
        .unwrap();
    let prometheus = Prometheus::scraping(server.addr);
    // Traffic after a first scrape, twice, a few scrapes apart: a rate needs
    // two samples of a series, and a series is born with its first request.
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus
        .query("up{job=\"hulykvs\"} == 1")
        .await
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped {instance}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    traffic(&server, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    traffic(&server, 2).await;

    let dashboard = dashboard();
    let targets = targets(&dashboard);
    let deadline = Instant::now() + Duration::from_secs(20);
    let faults = loop {
        let mut faults = Vec::new();
        for t in &targets {
            let sent = as_sent(&t.expr, "hulykvs", &instance);
            let result = api(&prometheus, "query", &[("query", &sent)])
                .await
                .unwrap_or_else(|e| panic!("{} ({}): {e}", t.panel, t.ref_id));
            let result = result["result"].as_array().cloned().unwrap_or_default();
            if let Some(fault) = fault(&result, &t.legend) {
                faults.push(format!("{} ({}): {fault}: {}", t.panel, t.ref_id, t.expr));
            }
        }
        if faults.is_empty() || Instant::now() > deadline {
            break faults;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(faults.is_empty(), "panels without data: {faults:#?}");

    // The variables list the job, and the instance of the chosen job.
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(query) = variable["query"]["query"].as_str() else {
            continue;
        };
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{query}: not label_values(selector, label)"));
        let (selector, label) = inner.rsplit_once(',').expect("selector, label");
        let selector = as_sent(selector.trim(), "hulykvs", &instance);
        let values = api(
            &prometheus,
            &format!("label/{}/values", label.trim()),
            &[("match[]", &selector)],
        )
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
        let want = match variable["name"].as_str() {
            Some("job") => "hulykvs",
            _ => instance.as_str(),
        };
        assert!(
            values.as_array().unwrap().iter().any(|v| v == want),
            "{query} lists {values}, not {want}"
        );
    }

    // Every series the rules name exists, with the labels they match on.
    let rules = rules();
    let names = api(&prometheus, "label/__name__/values", &[])
        .await
        .unwrap();
    for rule in &rules {
        for (name, labels) in selectors(&rule.expr) {
            assert!(
                names.as_array().unwrap().iter().any(|n| n == name.as_str()),
                "{}: hulykvs exports no {name}",
                rule.name
            );
            let series = api(&prometheus, "series", &[("match[]", &name)])
                .await
                .unwrap();
            for label in labels {
                assert!(
                    series
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|s| s.get(&label).is_some()),
                    "{}: no series of {name} has the label {label}",
                    rule.name
                );
            }
        }
    }
    // What the traffic provokes, the rules see; what it does not, they do not.
    for rule in &rules {
        let holds = !prometheus.query(&rule.expr).await.is_empty();
        match rule.name.as_str() {
            "HulykvsUndecryptableValues"
            | "HulykvsErrorRatioHigh"
            | "HulykvsTraceSpansDropped"
            | "HulykvsTraceExportFailing" => {
                assert!(holds, "{} does not hold: {}", rule.name, rule.expr)
            }
            "HulykvsInstanceDown" | "HulykvsNotReady" => {
                assert!(!holds, "{} holds: {}", rule.name, rule.expr)
            }
            _ => {}
        }
    }
    drop(prometheus);
    drop(server);
    db.drop_db().await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

//! `hulykvs check` (SPEC §21): a drill against a running deployment.
//! Concurrent clients across the given instances make reads, plain and
//! conditional writes, deletes and transactions on a small key set while
//! watchers follow the namespace's feed; then every key is read once more,
//! the server's change log is read whole, and the history is judged against
//! the consistency model (`crate::check`). Exit 0: everything held; 1: a
//! violation; 3: the checker ran out of time.

mod drill;
mod page;
mod report;
mod watchers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rand::Rng;
use serde::Deserialize;
use tokio::sync::watch;

use self::drill::{client, perform, Target};
use crate::check::history::{Call, History};
use crate::check::watch::{Change, WatchLog};
use crate::cli::flags::{bearer_token, duration_flag, uuid_flag, Secret};
use crate::cli::progress::progress;
use crate::exit::{Exit, Failure};

/// Settings of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Base URL of an instance; repeat it (or separate with commas) to spread the clients and
    /// watchers across instances that share one database.
    #[arg(
        long = "url",
        env = "HULY_KVS_URL",
        value_delimiter = ',',
        required_unless_present = "judge"
    )]
    pub urls: Vec<String>,

    /// Bearer token; without one, a system token is minted from HULY_TOKEN_SECRET.
    #[arg(long, env = "HULY_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// HS256 secret to mint a system token with when no --token is given.
    #[arg(long, env = "HULY_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<Secret>,

    /// Workspace to drill in [default: a new random one]; the drill writes only a namespace of
    /// its own (`check-…`), deleted at the end unless --keep.
    #[arg(short = 'w', long)]
    pub workspace: Option<String>,

    /// How long the traffic runs.
    #[arg(long, default_value = "10s")]
    pub duration: String,

    /// Concurrent clients.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub clients: u16,

    /// Keys they share (collisions are the point).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub keys: u16,

    /// Watchers of the change feed (every second one through a prefix).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub watchers: u16,

    /// Longest wait for one answer; past it the operation's outcome is unknown.
    #[arg(long, default_value = "5s")]
    pub timeout: String,

    /// Longest the linearizability checker may search; past it the answer is "undecided" (exit 3).
    #[arg(long, default_value = "60s")]
    pub budget: String,

    /// Seed of the random choices, to replay a drill's shape.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Write the history (history.json) and a page with each key's operations on a timeline
    /// (report.html) to this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// Leave the drill's namespace in place.
    #[arg(long)]
    pub keep: bool,

    /// Judge the history an earlier drill wrote (its --report's history.json) instead of
    /// running one.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub judge: Option<PathBuf>,
}

/// What a drill recorded.
pub(super) struct Recording {
    pub(super) history: History,
    pub(super) watch: WatchLog,
    pub(super) elapsed: Duration,
}

/// Runs the drill, judges it, prints the summary, writes the report.
pub async fn run(args: &CheckArgs) -> Result<(), Failure> {
    let (recording, budget) = match &args.judge {
        Some(file) => (recorded(file)?, duration_flag("--budget", &args.budget)?),
        None => {
            let (target, settings) = setup(args)?;
            let recording = drill(Arc::clone(&target), &settings).await?;
            if !args.keep {
                // Best effort: a namespace left behind holds only the drill's values.
                let url = target.namespace_url(0, "prefix=");
                let _ = target
                    .http
                    .delete(url)
                    .bearer_auth(&target.token)
                    .send()
                    .await;
            }
            (recording, settings.budget)
        }
    };
    let verdict = report::judge(&recording, budget);
    report::print_summary(args, &recording, &verdict)?;
    if let Some(dir) = &args.report {
        write_report(dir, &recording, &verdict)?;
    }
    match verdict.exit() {
        Exit::Ok => Ok(()),
        exit => Err(Failure::new(exit, "")),
    }
}

/// `history.json` and `report.html` in `dir`.
fn write_report(
    dir: &Path,
    recording: &Recording,
    judgement: &report::Judgement,
) -> Result<(), Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::error(format!(
            "--report {}: cannot write {what}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("the directory", &e))?;
    let json = serde_json::json!({
        "history": recording.history,
        "watch": recording.watch,
        "verdict": judgement,
    });
    let text = serde_json::to_vec(&json).map_err(|e| fail("history.json", &e))?;
    std::fs::write(dir.join("history.json"), text).map_err(|e| fail("history.json", &e))?;
    let page = page::page(recording, judgement);
    std::fs::write(dir.join("report.html"), page).map_err(|e| fail("report.html", &e))?;
    Ok(())
}

/// What `--report` wrote of an earlier drill.
#[derive(Deserialize)]
struct Saved {
    history: History,
    watch: WatchLog,
}

/// The recording in a `history.json`.
fn recorded(file: &std::path::Path) -> Result<Recording, Failure> {
    let bad = |why: String| Failure::error(format!("--judge {}: {why}", file.display()));
    let text = std::fs::read(file).map_err(|e| bad(format!("cannot read: {e}")))?;
    let saved: Saved = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("not a drill's history.json: {e}")))?;
    Ok(Recording {
        history: saved.history,
        watch: saved.watch,
        elapsed: Duration::ZERO,
    })
}

/// The drill's shape, validated.
struct Settings {
    duration: Duration,
    clients: usize,
    watchers: usize,
    budget: Duration,
    seed: u64,
}

fn setup(args: &CheckArgs) -> Result<(Arc<Target>, Settings), Failure> {
    let urls: Vec<String> = args
        .urls
        .iter()
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .collect();
    for url in &urls {
        let ok = reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(Failure::usage(format!(
                "--url {url:?}: expected an http:// or https:// URL"
            )));
        }
    }
    let positive = |flag: &str, text: &str| {
        duration_flag(flag, text).and_then(|d| match d.is_zero() {
            true => Err(Failure::usage(format!(
                "{flag} {text:?}: must be longer than zero"
            ))),
            false => Ok(d),
        })
    };
    let timeout = positive("--timeout", &args.timeout)?;
    let settings = Settings {
        duration: positive("--duration", &args.duration)?,
        clients: usize::from(args.clients),
        watchers: usize::from(args.watchers),
        budget: positive("--budget", &args.budget)?,
        seed: args.seed.unwrap_or_else(|| rand::thread_rng().gen()),
    };
    let workspace = match &args.workspace {
        Some(text) => uuid_flag("--workspace", text)?,
        None => uuid::Uuid::new_v4(),
    };
    let lifetime = settings.duration + Duration::from_secs(3600);
    let token = bearer_token(
        args.token.as_ref(),
        args.token_secret.as_ref(),
        "hulykvs-check",
        lifetime,
    )?;
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure::error(format!("cannot set up HTTP: {e}")))?;
    let run = format!("{:016x}", settings.seed);
    let target = Target {
        http,
        urls,
        token,
        workspace: workspace.to_string(),
        namespace: format!("check-{}", &run[..8]),
        keys: (0..args.keys).map(|k| format!("k{k}")).collect(),
        started: Instant::now(),
        run,
    };
    Ok((Arc::new(target), settings))
}

/// The traffic, the final reads and the change log.
async fn drill(target: Arc<Target>, settings: &Settings) -> Result<Recording, Failure> {
    let start = start_revision(&target).await?;
    let (stop, stopped) = watch::channel(false);
    let watchers: Vec<_> = (0..settings.watchers)
        .map(|w| {
            let prefix = (w % 2 == 1).then(|| format!("k{}", w % target.keys.len().max(1)));
            let seed = settings.seed.wrapping_add(1_000 + w as u64);
            tokio::spawn(watchers::watcher(
                Arc::clone(&target),
                w,
                prefix,
                start,
                seed,
                stopped.clone(),
            ))
        })
        .collect();
    let until = Instant::now() + settings.duration;
    let clients: Vec<_> = (0..settings.clients)
        .map(|c| {
            tokio::spawn(client(
                Arc::clone(&target),
                c,
                settings.seed.wrapping_add(c as u64),
                until,
            ))
        })
        .collect();
    let bar = progress(None, "{spinner} check: {elapsed} of the drill's traffic");
    let ticking = async {
        loop {
            bar.tick();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let mut recorded = Vec::new();
    tokio::select! {
        all = futures_util::future::join_all(clients) => recorded = all,
        () = ticking => {}
    }
    bar.finish_and_clear();
    let (mut history, mut txn_revisions) = merged(&target, recorded)?;
    final_reads(&target, settings.clients, &mut history).await;
    history.operations.sort_by_key(|op| op.called);
    renumber(&mut history, &mut txn_revisions);
    let log = change_log(&target, start).await?;
    let _ = stop.send(true);
    let mut watched = Vec::new();
    for handle in watchers {
        watched.push(
            handle
                .await
                .map_err(|e| Failure::error(format!("a watcher failed: {e}")))?,
        );
    }
    Ok(Recording {
        history,
        watch: WatchLog {
            start,
            log,
            watchers: watched,
            txn_revisions,
        },
        elapsed: target.started.elapsed(),
    })
}

/// The clients' operations in one history, ids made unique.
fn merged(
    target: &Target,
    recorded: Vec<Result<drill::Recorded, tokio::task::JoinError>>,
) -> Result<(History, std::collections::BTreeMap<usize, Vec<u64>>), Failure> {
    let mut history = History {
        keys: target.keys.clone(),
        operations: Vec::new(),
    };
    let mut txn_revisions = std::collections::BTreeMap::new();
    for joined in recorded {
        let done = joined.map_err(|e| Failure::error(format!("a drill client failed: {e}")))?;
        let base = history.operations.len();
        for (id, revisions) in done.txn_revisions {
            txn_revisions.insert(base + id, revisions);
        }
        for mut op in done.operations {
            op.id += base;
            history.operations.push(op);
        }
    }
    Ok((history, txn_revisions))
}

/// Every key read once more after the traffic, from each instance in turn:
/// every acknowledged write must show in them.
async fn final_reads(target: &Target, client: usize, history: &mut History) {
    for key in 0..target.keys.len() as u16 {
        // Each instance in turn; one that is away is passed over.
        for attempt in 0..target.urls.len() {
            let instance = usize::from(key) + attempt;
            if let Some((mut op, _)) = perform(target, instance, Call::Get { key }, client, 0).await
            {
                // Unique in the merged list, as `renumber` wants.
                op.id = history.operations.len();
                history.operations.push(op);
                break;
            }
        }
    }
}

/// Ids in time order; the transaction revisions follow their operations.
fn renumber(
    history: &mut History,
    txn_revisions: &mut std::collections::BTreeMap<usize, Vec<u64>>,
) {
    let mut moved = std::collections::BTreeMap::new();
    for (new, op) in history.operations.iter_mut().enumerate() {
        // Before this, an id is the operation's place in the merged list.
        if let Some(revisions) = txn_revisions.remove(&op.id) {
            moved.insert(new, revisions);
        }
        op.id = new;
    }
    *txn_revisions = moved;
}

/// The namespace's revision before the first write (a listing's `Huly-Revision`).
async fn start_revision(target: &Target) -> Result<u64, Failure> {
    let url = target.namespace_url(0, "limit=1");
    let response = target
        .http
        .get(&url)
        .bearer_auth(&target.token)
        .send()
        .await
        .map_err(|e| Failure::error(format!("cannot reach {}: {e}", target.urls[0])))?;
    if !response.status().is_success() {
        return Err(Failure::error(format!(
            "listing {url} answered {}: is the token good for this workspace?",
            response.status()
        )));
    }
    response
        .headers()
        .get("huly-revision")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Failure::error(format!("{url} answered no Huly-Revision: is this hulykvs?")))
}

#[derive(Deserialize)]
struct ChangesPage {
    changes: Vec<ChangeJson>,
    more: bool,
}

#[derive(Deserialize)]
struct ChangeJson {
    revision: u64,
    op: String,
    key: String,
    etag: Option<String>,
}

/// The server's change log after `start`, read whole with long polls that do not wait.
async fn change_log(target: &Target, start: u64) -> Result<Vec<Change>, Failure> {
    let mut log: Vec<Change> = Vec::new();
    let mut since = start;
    for attempt in 0..100 {
        let url = target.namespace_url(
            attempt,
            &format!("changes&since={since}&limit=1000&wait=0s"),
        );
        let page = match target
            .http
            .get(&url)
            .bearer_auth(&target.token)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json::<ChangesPage>().await.ok(),
            _ => None,
        };
        let Some(page) = page else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        for c in page.changes {
            since = since.max(c.revision);
            log.push(Change {
                revision: c.revision,
                op: c.op,
                key: c.key,
                etag: c
                    .etag
                    .as_deref()
                    .and_then(crate::check::history::Tag::parse),
            });
        }
        if !page.more {
            return Ok(log);
        }
    }
    Err(Failure::error(
        "cannot read the change log from any instance",
    ))
}

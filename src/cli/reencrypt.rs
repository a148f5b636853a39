//! `hulykvs reencrypt`: rewrites, online, every row not sealed by the first
//! key of `HULY_ENCRYPTION_KEYS` (or with `--decrypt` every sealed row back
//! to plaintext), opening the store directly. Progress goes to stderr at a
//! terminal (indicatif, as the other long subcommands); the counts are printed
//! at the end.

use std::io::Write;
use std::sync::Arc;

use clap::Args;

use super::progress::progress;
use super::serve::{DbArgs, EncryptionArgs};
use crate::config::{DbOptions, DbTarget};
use crate::crypto::Keyring;
use crate::exit::Failure;
use crate::store::reseal::{self, Progress, Target};
use crate::store::{PgStore, SqliteStore, Store};

/// Settings of `reencrypt`.
#[derive(Debug, Clone, Args)]
pub struct ReencryptArgs {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(flatten)]
    pub encryption: EncryptionArgs,

    /// Rewrite every sealed row back to plaintext, so a release without encryption reads the
    /// database again (the keys are still needed to open the rows).
    #[arg(long)]
    pub decrypt: bool,

    /// Rows read and rewritten at a time (memory is about this many of the largest values).
    #[arg(
        long,
        default_value = "100",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub batch: u32,
}

/// Runs the pass; `Err` with the line for stderr (exit 1 when rows were
/// left undecryptable, 2 for bad settings).
pub async fn run(args: &ReencryptArgs) -> Result<(), Failure> {
    let db = DbOptions::from_args(&args.db).map_err(|e| Failure::usage(e.to_string()))?;
    let keys = args
        .encryption
        .keys()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let keys = Keyring::new(&keys).map(Arc::new).ok_or_else(|| {
        Failure::usage(
            "reencrypt needs HULY_ENCRYPTION_KEYS: the first key seals, every listed key opens",
        )
    })?;
    let target = match args.decrypt {
        true => Target::Plaintext,
        false => Target::FirstKey,
    };
    let batch = args.batch as usize;
    let done = match &db.target {
        DbTarget::Postgres(url) => {
            let store = PgStore::open(url, &db).map_err(store_failure)?;
            pass(store, &keys, target, batch).await?
        }
        DbTarget::Sqlite(path) => {
            let store = SqliteStore::open(path, &db).map_err(store_failure)?;
            pass(store, &keys, target, batch).await?
        }
    };
    let form = match (target, keys.sealing_id()) {
        (Target::FirstKey, Some(id)) => format!("sealed by key {id}"),
        _ => "plaintext".to_owned(),
    };
    let summary = format!(
        "reencrypt: {} rows rewritten ({form}), {} written meanwhile and left as written, {} undecryptable",
        done.rewritten, done.changed, done.undecryptable
    );
    writeln!(std::io::stdout().lock(), "{summary}")
        .map_err(|e| Failure::error(format!("cannot write to stdout: {e}")))?;
    if done.undecryptable > 0 {
        return Err(Failure::error(format!(
            "{} rows do not open with the keys given (logged above with their keys); they were left as they are",
            done.undecryptable
        )));
    }
    Ok(())
}

/// Applies pending migrations (the key id column may be new), then runs
/// the pass with progress at a terminal.
async fn pass<S: Store>(
    store: S,
    keys: &Keyring,
    target: Target,
    batch: usize,
) -> Result<Progress, Failure> {
    store.migrate().await.map_err(store_failure)?;
    let bar = progress(None, "{spinner} reencrypt: {msg}");
    let report = |p: &Progress| {
        bar.set_message(format!(
            "{} rows read, {} rewritten, {} written meanwhile, {} undecryptable",
            p.seen, p.rewritten, p.changed, p.undecryptable
        ));
        bar.tick();
    };
    let done = reseal::run(&store, Some(keys), target, batch, report).await;
    bar.finish_and_clear();
    done.map_err(store_failure)
}

fn store_failure(e: crate::store::StoreError) -> Failure {
    Failure::error(format!("reencrypt: {e}"))
}

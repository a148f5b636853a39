//! `hulykvs dump`, `restore` and `copy`: their flags, the files and pipes
//! they read and write (gzip by name or by magic), progress at a terminal,
//! and the store each opens directly (no server needed).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use indicatif::ProgressBar;
use uuid::Uuid;

use super::progress::progress;
use super::serve::{DbArgs, EncryptionArgs};
use crate::config::{DbOptions, DbTarget};
use crate::crypto::Keyring;
use crate::exit::{Exit, Failure};
use crate::store::sealed::Sealed;
use crate::store::snapshot::SnapshotFilter;
use crate::store::{PgStore, SqliteStore, Store, StoreError};
use crate::transfer::{copy, dump, restore, TransferError};

/// Settings of `dump`.
#[derive(Debug, Clone, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(flatten)]
    pub encryption: EncryptionArgs,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Write the dump to FILE (gzip-compressed when it ends in .gz) instead of stdout; it appears
    /// under its name only once complete.
    #[arg(short = 'o', long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub output: Option<PathBuf>,
}

/// Which rows `dump` and `copy` read.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only this workspace (repeat for more).
    #[arg(short = 'w', long = "workspace", value_name = "UUID")]
    pub workspaces: Vec<String>,

    /// Only this namespace (repeat for more).
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
}

/// Settings of `restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Keys to seal the restored values with (the first seals); unset: written unencrypted.
    #[command(flatten)]
    pub encryption: EncryptionArgs,

    /// Read the dump from FILE (gzip is recognized by its first bytes) instead of stdin.
    #[arg(short = 'i', long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub input: Option<PathBuf>,

    /// Write only keys that hold no live value; by default every row is upserted.
    #[arg(long)]
    pub skip_existing: bool,
}

/// Settings of `copy`.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// The store to read: postgresql://… or sqlite:PATH.
    #[arg(long, value_name = "URL")]
    pub from: String,

    /// The store to write: postgresql://… or sqlite:PATH (migrated first).
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Schema of the tables on PostgreSQL and CockroachDB, on both sides.
    #[arg(long, env = "HULY_DB_SCHEME", default_value = "hulykvs")]
    pub db_scheme: String,

    /// Keys that open the source's sealed values and seal the target's (the first seals).
    #[command(flatten)]
    pub encryption: EncryptionArgs,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Write only keys that hold no live value in the target.
    #[arg(long)]
    pub skip_existing: bool,
}

impl FilterArgs {
    fn filter(&self) -> Result<SnapshotFilter, Failure> {
        let workspaces = self
            .workspaces
            .iter()
            .map(|w| {
                Uuid::parse_str(w.trim())
                    .map_err(|e| Failure::usage(format!("--workspace {w:?} is not a UUID: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(SnapshotFilter {
            workspaces,
            namespaces: self.namespaces.clone(),
        })
    }
}

fn keyring(args: &EncryptionArgs) -> Result<Option<Arc<Keyring>>, Failure> {
    let keys = args.keys().map_err(|e| Failure::usage(e.to_string()))?;
    Ok(Keyring::new(&keys).map(Arc::new))
}

/// A transfer that failed: exit 1, a bad line of the input file too (it is
/// bad input, not a wrong command line, which exit 2 is kept for).
fn failure(what: &str, e: TransferError) -> Failure {
    Failure::error(format!("{what}: {e}"))
}

fn store_failure(what: &'static str) -> impl Fn(StoreError) -> Failure {
    move |e| Failure::error(format!("{what}: {e}"))
}

/// `dump`: opens the store, writes the dump, prints what it wrote.
pub async fn run_dump(args: &DumpArgs) -> Result<(), Failure> {
    let db = DbOptions::from_args(&args.db).map_err(|e| Failure::usage(e.to_string()))?;
    let filter = args.filter.filter()?;
    let keys = keyring(&args.encryption)?;
    let bar = progress(None, "{spinner} dump: {pos} rows, {msg}");
    let report = |d: dump::Dumped| {
        bar.set_position(d.rows);
        bar.set_message(format!("{} MB of values", d.bytes / 1_000_000));
    };
    let to = args.output.as_deref();
    let (done, out) = match &db.target {
        DbTarget::Postgres(url) => {
            let store = PgStore::open(url, &db).map_err(store_failure("dump"))?;
            dump_into(store, &filter, keys.as_deref(), to, report).await?
        }
        DbTarget::Sqlite(path) => {
            let store = SqliteStore::open(path, &db).map_err(store_failure("dump"))?;
            dump_into(store, &filter, keys.as_deref(), to, report).await?
        }
    };
    bar.finish_and_clear();
    let line = format!("dump: {} rows, {} bytes of values", done.rows, done.bytes);
    match out {
        Some(path) => say(&format!("{line}, written to {}", path.display())),
        None if std::io::stderr().is_terminal() => {
            eprintln!("{line}");
            Ok(())
        }
        None => Ok(()),
    }
}

/// Dumps `store` (fully migrated; nothing is written to it) to `to`
/// (stdout when `None`); a file that could not be completed is removed.
async fn dump_into<S: Store>(
    store: S,
    filter: &SnapshotFilter,
    keys: Option<&Keyring>,
    to: Option<&Path>,
    report: impl FnMut(dump::Dumped),
) -> Result<(dump::Dumped, Option<PathBuf>), Failure> {
    store.attach().await.map_err(store_failure("dump"))?;
    let mut out = Output::open(to)?;
    match dump::dump(&store, filter, keys, out.writer(), report).await {
        Ok(done) => Ok((done, out.finish()?)),
        Err(e) => {
            out.abandon();
            Err(failure("dump", e))
        }
    }
}

/// `restore`: reads the dump into the store, prints what it wrote.
pub async fn run_restore(args: &RestoreArgs) -> Result<(), Failure> {
    let db = DbOptions::from_args(&args.db).map_err(|e| Failure::usage(e.to_string()))?;
    let keys = keyring(&args.encryption)?;
    let (input, total) = Input::open(args.input.as_deref())?;
    let bar = progress(total, "{bar:30} {bytes}/{total_bytes} restore: {msg}");
    let input = input.counted(bar.clone())?;
    let report = |r: restore::Restoring| {
        bar.set_message(format!("{} rows written", r.written));
    };
    let done = match &db.target {
        DbTarget::Postgres(url) => {
            let store = PgStore::open(url, &db).map_err(store_failure("restore"))?;
            store.migrate().await.map_err(store_failure("restore"))?;
            let store = Sealed::new(store, keys);
            restore::restore(&store, input, args.skip_existing, report).await
        }
        DbTarget::Sqlite(path) => {
            let store = SqliteStore::open(path, &db).map_err(store_failure("restore"))?;
            store.migrate().await.map_err(store_failure("restore"))?;
            let store = Sealed::new(store, keys);
            restore::restore(&store, input, args.skip_existing, report).await
        }
    }
    .map_err(|e| failure("restore", e))?;
    bar.finish_and_clear();
    say(&format!(
        "restore: {} rows read, {} written, {} left out as expired",
        done.rows, done.written, done.expired
    ))
}

/// Prints one line to stdout.
pub(super) fn say(line: &str) -> Result<(), Failure> {
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| Failure::error(format!("cannot write to stdout: {e}")))
}

/// Where a dump goes: stdout, or a file written under a temporary name.
struct Output {
    writer: Box<dyn Write>,
    /// The temporary file and the final name.
    rename: Option<(PathBuf, PathBuf)>,
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Output, Failure> {
        let Some(path) = path else {
            return Ok(Output {
                writer: Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout())),
                rename: None,
            });
        };
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        // Only its owner may read it: a dump holds every value in plaintext,
        // also those the store keeps encrypted.
        let file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)
        }
        .map_err(|e| Failure::error(format!("dump: cannot create {}: {e}", partial.display())))?;
        let file = BufWriter::with_capacity(1 << 16, file);
        let gz = path.extension().is_some_and(|e| e == "gz");
        let writer: Box<dyn Write> = match gz {
            true => Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            false => Box::new(file),
        };
        Ok(Output {
            writer,
            rename: Some((partial, path.to_owned())),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        &mut *self.writer
    }

    /// Removes the file of a dump that could not be completed.
    fn abandon(self) {
        let Output { writer, rename } = self;
        drop(writer);
        if let Some((partial, _)) = rename {
            let _ = std::fs::remove_file(partial);
        }
    }

    /// Flushes (ending the gzip stream) and gives the file its name.
    fn finish(self) -> Result<Option<PathBuf>, Failure> {
        let Output { mut writer, rename } = self;
        writer
            .flush()
            .map_err(|e| Failure::error(format!("dump: cannot write: {e}")))?;
        // Dropping a GzEncoder writes its trailer; flushing first makes a
        // failure to write it visible above rather than lost in the drop.
        drop(writer);
        match rename {
            None => Ok(None),
            Some((partial, path)) => {
                std::fs::rename(&partial, &path).map_err(|e| {
                    Failure::error(format!("dump: cannot rename {}: {e}", partial.display()))
                })?;
                Ok(Some(path))
            }
        }
    }
}

/// Where a restore reads from: stdin or a file, gzip or not.
struct Input {
    raw: Box<dyn Read + Send>,
}

impl Input {
    /// The input and its size in bytes, when known.
    fn open(path: Option<&Path>) -> Result<(Input, Option<u64>), Failure> {
        let Some(path) = path else {
            return Ok((
                Input {
                    raw: Box::new(std::io::stdin()),
                },
                None,
            ));
        };
        let file = File::open(path).map_err(|e| {
            Failure::new(
                Exit::Error,
                format!("restore: cannot open {}: {e}", path.display()),
            )
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        Ok((
            Input {
                raw: Box::new(file),
            },
            size,
        ))
    }

    /// Lines of the input, its bytes counted on `bar`, gunzipped when it
    /// starts as gzip does.
    fn counted(self, bar: ProgressBar) -> Result<Box<dyn BufRead + Send>, Failure> {
        let mut buffered = BufReader::with_capacity(1 << 16, bar.wrap_read(self.raw));
        let head = buffered
            .fill_buf()
            .map_err(|e| Failure::error(format!("restore: cannot read the input: {e}")))?;
        if head.starts_with(&[0x1f, 0x8b]) {
            let gunzip = flate2::bufread::MultiGzDecoder::new(buffered);
            return Ok(Box::new(BufReader::with_capacity(1 << 16, gunzip)));
        }
        Ok(Box::new(buffered))
    }
}

/// `copy`: copies, verifies, prints the verification table.
pub async fn run_copy(args: &CopyArgs) -> Result<(), Failure> {
    let side = |url: &str| {
        let db = DbArgs {
            db_connection: Some(url.to_owned()),
            db_scheme: args.db_scheme.clone(),
            db_connect_timeout: "5s".to_owned(),
            db_pool_size: "4".to_owned(),
            db_pool_timeout: "30s".to_owned(),
            db_statement_timeout: "60s".to_owned(),
        };
        DbOptions::from_args(&db).map_err(|e| Failure::usage(e.to_string()))
    };
    let (from, to) = (side(&args.from)?, side(&args.to)?);
    let filter = args.filter.filter()?;
    let keys = keyring(&args.encryption)?;
    let work = CopyWork {
        filter: &filter,
        keys,
        skip_existing: args.skip_existing,
    };
    match &from.target {
        DbTarget::Postgres(url) => {
            let store = PgStore::open(url, &from).map_err(store_failure("copy"))?;
            work.from(store, &to).await
        }
        DbTarget::Sqlite(path) => {
            let store = SqliteStore::open(path, &from).map_err(store_failure("copy"))?;
            work.from(store, &to).await
        }
    }
}

/// What a copy needs besides its two stores.
struct CopyWork<'a> {
    filter: &'a SnapshotFilter,
    keys: Option<Arc<Keyring>>,
    skip_existing: bool,
}

impl CopyWork<'_> {
    async fn from<A: Store>(&self, source: A, to: &DbOptions) -> Result<(), Failure> {
        source.attach().await.map_err(store_failure("copy"))?;
        match &to.target {
            DbTarget::Postgres(url) => {
                let target = PgStore::open(url, to).map_err(store_failure("copy"))?;
                self.between(&source, target).await
            }
            DbTarget::Sqlite(path) => {
                let target = SqliteStore::open(path, to).map_err(store_failure("copy"))?;
                self.between(&source, target).await
            }
        }
    }

    async fn between<A: Store, B: Store>(&self, source: &A, target: B) -> Result<(), Failure> {
        target.migrate().await.map_err(store_failure("copy"))?;
        let target = Sealed::new(target, self.keys.clone());
        let bar = progress(None, "{spinner} copy: {pos} rows");
        let copied = copy::copy(
            source,
            &target,
            self.filter,
            self.keys.as_deref(),
            self.skip_existing,
            |d| bar.set_position(d.rows),
        )
        .await
        .map_err(|e| failure("copy", e))?;
        bar.finish_and_clear();
        print_copy(&copied)
    }
}

/// The verification table, then one line; `Err` (exit 1) when a namespace differs.
fn print_copy(copied: &copy::Copied) -> Result<(), Failure> {
    let mut table = format!(
        "{:<36}  {:<24}  {:>12}  {:>12}  {}\n",
        "workspace", "namespace", "source rows", "target rows", "digest"
    );
    for check in &copied.checks {
        let verdict = match check.holds() {
            true => "same",
            false => "DIFFERS",
        };
        table.push_str(&format!(
            "{:<36}  {:<24}  {:>12}  {:>12}  {verdict}\n",
            check.workspace, check.namespace, check.source.rows, check.target.rows
        ));
    }
    for (workspace, namespace) in &copied.only_in_target {
        table.push_str(&format!(
            "{workspace:<36}  {namespace:<24}  {:>12}  {:>12}  only in the target, not compared\n",
            "-", "-"
        ));
    }
    let differ = copied.checks.iter().filter(|c| !c.holds()).count();
    table.push_str(&format!(
        "copy: {} rows read, {} written, {} left out as expired; {} namespaces verified, {differ} differ",
        copied.read.rows,
        copied.written,
        copied.expired,
        copied.checks.len()
    ));
    say(&table)?;
    match differ {
        0 => Ok(()),
        n => Err(Failure::error(format!(
            "copy: {n} namespaces differ between the source and the target (see the table)"
        ))),
    }
}

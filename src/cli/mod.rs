//! The command line: the clap root and one room per subcommand, each with its
//! own flags beside its code. Flags fall back to environment variables, then
//! to defaults. Nothing outside `main` imports this module, and it feeds
//! [`crate::config`], never the other way round.

use clap::{Args, CommandFactory, Parser, Subcommand};

pub mod acl;
pub mod bench;
pub mod check;
pub mod client;
pub mod flags;
pub mod progress;
pub mod reencrypt;
pub mod serve;
pub mod token;
pub mod transfer;

use self::acl::AclArgs;
use self::bench::BenchArgs;
use self::check::CheckArgs;
use self::client::{DeleteArgs, GetArgs, ListArgs, ProbeArgs, PutArgs, TxnArgs, WatchArgs};
use self::reencrypt::ReencryptArgs;
use self::serve::{MigrateArgs, ServeArgs};
use self::token::TokenArgs;
use self::transfer::{CopyArgs, DumpArgs, RestoreArgs};

/// hulykvs: the Huly key-value service and its command-line client.
#[derive(Debug, Parser)]
#[command(name = "hulykvs", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (it answers probes at once and applies pending migrations beside).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(MigrateArgs),
    /// Rewrite stored values under the first encryption key (or back to plaintext), online.
    Reencrypt(ReencryptArgs),
    /// Write every row (or some workspaces and namespaces) as JSON Lines, from one snapshot.
    Dump(DumpArgs),
    /// Write the rows of a dump into a store, in batches.
    Restore(RestoreArgs),
    /// Copy one store into another, then verify each namespace.
    Copy(CopyArgs),
    /// Store a value.
    Put(PutArgs),
    /// Print a value's raw bytes.
    Get(GetArgs),
    /// Delete a value.
    Delete(DeleteArgs),
    /// List the keys of a namespace, one a line (with --values, their values too).
    List(ListArgs),
    /// Run a transaction: ops from a JSON file or stdin, all applied or none.
    Txn(TxnArgs),
    /// Follow the changes of a namespace, one a line, reconnecting by itself.
    Watch(WatchArgs),
    /// Print a signed HS256 token for the service.
    Token(TokenArgs),
    /// Test a namespace ACL policy: what it allows a token, and by which rule.
    Acl(AclArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Load-test a running service: throughput, latency percentiles, answers by status.
    Bench(BenchArgs),
    /// Drill a running deployment: concurrent clients and watchers, then the history checked
    /// against the consistency model (exit 0 held, 1 violated, 3 undecided).
    Check(CheckArgs),
    /// Health check: exit 0 when the service's /readyz answers 200, 1 otherwise (the image's
    /// HEALTHCHECK).
    Probe(ProbeArgs),
}

/// `completions`: print a completion script.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// Shell to complete for.
    pub shell: clap_complete::Shell,
}

/// Writes the completion script of `shell` for the whole command line.
/// A closed pipe (`hulykvs completions bash | head`) is not an error.
pub fn write_completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // Generate into memory first: clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hulykvs", &mut script);
    match out.write_all(&script).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}

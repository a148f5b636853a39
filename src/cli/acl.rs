//! `acl check`: asks a policy file what `serve` would decide for a token, a
//! namespace and an access, and which rule decides, so an operator can test
//! a policy before deploying it. Prints `allowed …` (exit 0) or `denied …`
//! (exit 1) on stdout; a file that does not load is an error naming its line.

use std::path::PathBuf;

use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};

use super::flags::{uuid_flag, Secret};
use crate::acl::{read_policy, Access, Identity};
use crate::auth::{Claims, SYSTEM_ACCOUNT};
use crate::exit::{Exit, Failure};

/// `acl`: work with namespace ACL policies.
#[derive(Debug, Clone, Args)]
pub struct AclArgs {
    #[command(subcommand)]
    pub command: AclCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AclCommand {
    /// Print whether a policy lets a token read or write a namespace, and the rule that decides.
    Check(CheckArgs),
}

/// The access `acl check` asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessArg {
    Read,
    Write,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The policy file to ask.
    #[arg(long, env = "HULY_ACL_FILE", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub file: PathBuf,
    /// A token to take the service (extra.service) and account from; its signature is not
    /// checked, as this asks the policy only.
    #[arg(long, conflicts_with_all = ["service", "account"])]
    pub token: Option<Secret>,
    /// The service (a token's extra.service) to ask for.
    #[arg(long, required_unless_present_any = ["token", "account"])]
    pub service: Option<String>,
    /// The account UUID to ask for [default: the system account, as Huly's services use].
    #[arg(long)]
    pub account: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// The access to ask about.
    #[arg(value_enum, default_value = "read")]
    pub access: AccessArg,
}

pub fn run(args: &AclArgs) -> Result<(), Failure> {
    match &args.command {
        AclCommand::Check(check) => run_check(check),
    }
}

fn run_check(args: &CheckArgs) -> Result<(), Failure> {
    let policy = read_policy(&args.file).map_err(|e| Failure::error(e.to_string()))?;
    let claims = match &args.token {
        Some(token) => Some(claims_of(token.expose())?),
        None => None,
    };
    let (service, account) = match &claims {
        Some(claims) => (
            claims.extra.get("service").map(String::as_str),
            claims.account,
        ),
        None => (
            args.service.as_deref(),
            match &args.account {
                Some(text) => uuid_flag("--account", text)?,
                None => SYSTEM_ACCOUNT,
            },
        ),
    };
    let who = Identity { service, account };
    let access = match args.access {
        AccessArg::Read => Access::Read,
        AccessArg::Write => Access::Write,
    };
    let asked = format!(
        "{} on namespace {:?} for {}",
        access.name(),
        args.namespace,
        shown(&who)
    );
    match policy.decide(&who, &args.namespace, access) {
        Some(rule) => {
            println!(
                "allowed: {asked}, by rule {} (line {}): {}",
                rule.number,
                rule.line,
                rule.describe()
            );
            Ok(())
        }
        None => {
            println!(
                "denied: {asked}: none of the {} rules of {} grants it",
                policy.rules().len(),
                args.file.display()
            );
            // Said on stdout already; the exit code tells a script.
            Err(Failure::new(Exit::Error, ""))
        }
    }
}

/// `service "x", account …` as a rule or a token names them.
fn shown(who: &Identity<'_>) -> String {
    match who.service {
        Some(service) => format!("service {service:?}, account {}", who.account),
        None => format!("account {} (no service)", who.account),
    }
}

/// The claims of a JWT, read without checking its signature.
fn claims_of(token: &str) -> Result<Claims, Failure> {
    let bad = |why: &str| Failure::usage(format!("--token: {why}"));
    let payload = token
        .trim()
        .split('.')
        .nth(1)
        .ok_or_else(|| bad("not a JWT (header.payload.signature)"))?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| bad("its payload is not base64url"))?;
    serde_json::from_slice(&json).map_err(|e| bad(&format!("its claims do not read: {e}")))
}

//! `hulykvs token`: mints an HS256 token with the claims Huly's services use
//! (`account`, optional `workspace`, `extra`, optional `exp`).

use std::collections::BTreeMap;

use clap::Args;

use super::flags::{uuid_flag, Secret};
use crate::auth::{self, Claims, SYSTEM_ACCOUNT};
use crate::config::parse_duration;
use crate::exit::Failure;

/// `token`: mint a JWT.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Sign for the system account, which may use every workspace (the default without --account).
    #[arg(long, conflicts_with = "account")]
    pub system: bool,
    /// Account UUID the token speaks for [default: the system account].
    #[arg(long)]
    pub account: Option<String>,
    /// Workspace UUID the token grants.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Service name, stored as extra.service.
    #[arg(long)]
    pub service: Option<String>,
    /// Extra claim K=V (repeatable).
    #[arg(long = "extra", value_name = "K=V")]
    pub extra: Vec<String>,
    /// Lifetime, such as 90s, 1h or 7d; without it the token does not expire.
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// HS256 secret.
    #[arg(long, env = "HULY_TOKEN_SECRET", hide_env_values = true)]
    pub secret: Secret,
}

/// Mints the token `args` describe and returns it (without a newline).
pub fn run(args: &TokenArgs) -> Result<String, Failure> {
    let secret = args.secret.expose();
    if secret.is_empty() {
        return Err(Failure::usage(
            "--secret (HULY_TOKEN_SECRET): must not be empty",
        ));
    }
    let claims = claims(args, auth::now_secs())?;
    auth::mint(&claims, secret).map_err(|e| Failure::error(format!("cannot sign the token: {e}")))
}

/// The claims of the token `args` describe, with `exp` counted from `now`.
fn claims(args: &TokenArgs, now: u64) -> Result<Claims, Failure> {
    let account = match &args.account {
        Some(text) if !args.system => uuid_flag("--account", text)?,
        _ => SYSTEM_ACCOUNT,
    };
    let workspace = args
        .workspace
        .as_deref()
        .map(|text| uuid_flag("--workspace", text))
        .transpose()?;

    let mut extra = BTreeMap::new();
    for pair in &args.extra {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| Failure::usage(format!("--extra {pair:?}: expected K=V")))?;
        if extra.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(Failure::usage(format!(
                "--extra {pair:?}: claim {key:?} is given twice"
            )));
        }
    }
    if let Some(service) = &args.service {
        if extra
            .insert("service".to_owned(), service.clone())
            .is_some()
        {
            return Err(Failure::usage(
                "--service: extra.service is also given with --extra",
            ));
        }
    }

    let exp = match &args.expires {
        None => None,
        Some(text) => {
            let lifetime =
                parse_duration(text).map_err(|why| Failure::usage(format!("--expires: {why}")))?;
            if lifetime.is_zero() {
                return Err(Failure::usage(format!(
                    "--expires {text:?}: must be longer than zero"
                )));
            }
            // A token lives at least as long as asked: round part-seconds up.
            let secs = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
            Some(now.saturating_add(secs))
        }
    };

    Ok(Claims {
        account,
        workspace,
        extra,
        exp,
        nbf: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::exit::Exit;
    use clap::Parser;
    use uuid::Uuid;

    fn args(extra: &[&str]) -> TokenArgs {
        let argv = ["hulykvs", "token", "--secret", "s3"]
            .into_iter()
            .chain(extra.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Token(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    const WS: &str = "9a1b2c3d-0000-4000-8000-000000000001";
    const ACCOUNT: &str = "5f0e7b4a-1111-4222-8333-444455556666";

    #[test]
    fn system_token_with_workspace_service_and_extras() {
        let c = claims(
            &args(&[
                "--system",
                "--workspace",
                WS,
                "--service",
                "calendar",
                "--extra",
                "mode=a=b",
                "--extra",
                "empty=",
            ]),
            1000,
        )
        .unwrap();
        assert_eq!(c.account, SYSTEM_ACCOUNT);
        assert_eq!(c.workspace, Some(Uuid::parse_str(WS).unwrap()));
        assert_eq!(c.extra["service"], "calendar");
        assert_eq!(c.extra["mode"], "a=b");
        assert_eq!(c.extra["empty"], "");
        assert_eq!(c.exp, None);
    }

    #[test]
    fn account_and_expiry() {
        let c = claims(&args(&["--account", ACCOUNT, "--expires", "1h"]), 1000).unwrap();
        assert_eq!(c.account, Uuid::parse_str(ACCOUNT).unwrap());
        assert_eq!(c.workspace, None);
        assert!(c.extra.is_empty());
        assert_eq!(c.exp, Some(1000 + 3600));
        let c = claims(&args(&["--system", "--expires", "1500ms"]), 1000).unwrap();
        assert_eq!(c.exp, Some(1002));
    }

    #[test]
    fn minted_token_verifies_with_the_secret() {
        let token = run(&args(&["--system", "--service", "x"])).unwrap();
        let claims = auth::Verifier::new("s3").verify(&token).unwrap();
        assert_eq!(claims.account, SYSTEM_ACCOUNT);
        assert_eq!(claims.extra["service"], "x");
    }

    #[test]
    fn bad_input_is_a_usage_error_naming_the_flag() {
        for (argv, flag) in [
            (&["--account", "nope"][..], "--account"),
            (&["--system", "--workspace", "12"][..], "--workspace"),
            (&["--system", "--extra", "novalue"][..], "--extra"),
            (&["--system", "--extra", "=v"][..], "--extra"),
            (
                &["--system", "--extra", "a=1", "--extra", "a=2"][..],
                "--extra",
            ),
            (
                &["--system", "--service", "s", "--extra", "service=t"][..],
                "--service",
            ),
            (&["--system", "--expires", "soon"][..], "--expires"),
            (&["--system", "--expires", "0s"][..], "--expires"),
        ] {
            let failure = run(&args(argv)).unwrap_err();
            assert_eq!(failure.exit, Exit::Usage, "{argv:?}");
            assert!(failure.message.starts_with(flag), "{argv:?}: {failure}");
        }
    }

    #[test]
    fn the_system_account_is_the_default_and_the_secret_is_hidden() {
        let plain = claims(&args(&[]), 1000).unwrap();
        assert_eq!(
            plain.account, SYSTEM_ACCOUNT,
            "neither --account nor --system"
        );
        assert_eq!(plain.exp, None);
        assert!(Cli::try_parse_from([
            "hulykvs",
            "token",
            "--secret",
            "s",
            "--system",
            "--account",
            ACCOUNT
        ])
        .is_err());
        assert!(!format!("{:?}", args(&["--system"])).contains("s3"));
        let empty = Cli::try_parse_from(["hulykvs", "token", "--secret", "", "--system"]);
        let Command::Token(args) = empty.unwrap().command else {
            panic!("not a token command");
        };
        assert_eq!(run(&args).unwrap_err().exit, Exit::Usage);
    }
}

//! What a bench run will do, validated from its flags before any I/O: the
//! workload and its mix, the request paths and headers built once, and the
//! random numbers that pick keys.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use uuid::Uuid;

use super::args::{BenchArgs, Workload};
use crate::cli::flags::{bearer_token, duration_flag, uuid_flag};
use crate::exit::Failure;
use crate::wire;

/// The workspace the bench uses through API v2 unless `--workspace` is given.
pub const BENCH_WORKSPACE: &str = "b0000000-0000-4000-8000-00000000be9c";

/// One operation of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Get,
    Put,
    Cas,
    List,
}

/// Shares of operations, as cumulative thresholds out of their total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mix {
    pub(super) steps: Vec<(u64, Op)>,
    pub(super) total: u64,
}

impl Mix {
    /// A single operation.
    pub(super) fn only(op: Op) -> Mix {
        Mix {
            steps: vec![(1, op)],
            total: 1,
        }
    }

    /// Parses `get=80,put=15,list=5`; shares are whole numbers, need not sum to 100.
    pub(super) fn parse(text: &str) -> Result<Mix, String> {
        let mut steps = Vec::new();
        let mut total = 0u64;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, share) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected OP=SHARE"))?;
            let op = match name.trim() {
                "get" => Op::Get,
                "put" => Op::Put,
                "cas" => Op::Cas,
                "list" => Op::List,
                other => {
                    return Err(format!(
                        "unknown operation {other:?} (use get, put, cas, list)"
                    ))
                }
            };
            if steps.iter().any(|&(_, seen)| seen == op) {
                return Err(format!("{:?} is given twice", name.trim()));
            }
            let share: u64 = share
                .trim()
                .parse()
                .ok()
                .filter(|&s| s <= 1_000_000)
                .ok_or_else(|| format!("{part:?}: the share must be a whole number"))?;
            if share > 0 {
                total += share;
                steps.push((total, op));
            }
        }
        if total == 0 {
            return Err("no operation has a share above zero".to_owned());
        }
        Ok(Mix { steps, total })
    }

    pub(super) fn has(&self, op: Op) -> bool {
        self.steps.iter().any(|&(_, o)| o == op)
    }

    pub(super) fn pick(&self, rng: &mut Rng) -> Op {
        if let [(_, op)] = self.steps[..] {
            return op;
        }
        let roll = rng.below(self.total);
        self.steps
            .iter()
            .find(|&&(upto, _)| roll < upto)
            .map_or(Op::Get, |&(_, op)| op)
    }
}

/// A small, fast generator (SplitMix64): the bench needs spread, not secrecy.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Everything a run needs, validated before any I/O.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) workload: Workload,
    pub(super) mix: Mix,
    pub(super) connections: usize,
    pub(super) threads: usize,
    pub(super) duration: Duration,
    pub(super) warmup: Duration,
    pub(super) json: bool,
    pub(super) seed: bool,
    /// `--url` as given, for messages.
    pub(super) url: String,
    pub(super) host: String,
    pub(super) port: u16,
    /// The `Host` header.
    pub(super) authority: HeaderValue,
    pub(super) authorization: HeaderValue,
    /// The method that writes a value: PUT (API v2) or POST (legacy).
    pub(super) write: Method,
    /// Paths of the keys that get, put and cas use.
    pub(super) keys: Arc<[Uri]>,
    /// Paths of the keys in the listed namespace (empty when nothing lists).
    pub(super) list_keys: Arc<[Uri]>,
    /// Path of the listing.
    pub(super) list: Uri,
    /// Path of `/readyz`.
    pub(super) readyz: Uri,
    pub(super) value_size: usize,
}

/// The requests `args.workload` makes.
fn mix_of(args: &BenchArgs) -> Result<Mix, Failure> {
    Ok(match args.workload {
        Workload::Get => Mix::only(Op::Get),
        Workload::Put => Mix::only(Op::Put),
        Workload::Cas => Mix::only(Op::Cas),
        Workload::List => Mix::only(Op::List),
        Workload::Mixed => {
            Mix::parse(&args.mix).map_err(|why| Failure::usage(format!("--mix: {why}")))?
        }
        // Streams are not requests: `bench::watch` runs them.
        Workload::Watch => {
            return Err(Failure::usage(
                "--workload watch runs streams, not requests",
            ))
        }
    })
}

impl Plan {
    pub(super) fn from_args(args: &BenchArgs) -> Result<Plan, Failure> {
        let workload = args.workload;
        let mix = mix_of(args)?;
        if args.legacy && mix.has(Op::Cas) {
            return Err(Failure::usage(
                "--legacy: the legacy API has no conditional writes, so no cas",
            ));
        }
        let duration = duration_flag("--duration", &args.duration)?;
        if duration.is_zero() {
            return Err(Failure::usage("--duration: must be longer than zero"));
        }
        let warmup = duration_flag("--warmup", &args.warmup)?;
        let (prefix, host, port, authority) = base_url(&args.url)?;
        let authorization = authorization(args, duration + warmup)?;

        let api = api_prefix(args, &prefix)?;
        let listing_only = workload == Workload::List;
        let default_namespace = if listing_only { "bench-list" } else { "bench" };
        let namespace = args.namespace.as_deref().unwrap_or(default_namespace);
        if namespace.is_empty() || namespace == "." || namespace == ".." {
            return Err(Failure::usage(format!(
                "--namespace {namespace:?}: cannot be sent in a URL path"
            )));
        }
        let key_count = args
            .keys
            .unwrap_or(if listing_only { 1000 } else { 10_000 });
        let (list_namespace, list_count) = if listing_only {
            (namespace.to_owned(), key_count)
        } else {
            (format!("{namespace}-list"), args.list_keys)
        };
        let data_namespace = wire::percent_encode(namespace);
        let list_namespace = wire::percent_encode(&list_namespace);
        let keys = if listing_only {
            Vec::new()
        } else {
            key_paths(&api, &data_namespace, key_count)?
        };
        let list_keys = if mix.has(Op::List) {
            key_paths(&api, &list_namespace, list_count)?
        } else {
            Vec::new()
        };
        Ok(Plan {
            workload,
            mix,
            connections: args.connections as usize,
            threads: args.threads as usize,
            duration,
            warmup,
            json: args.json,
            seed: !args.no_seed,
            url: args.url.clone(),
            host,
            port,
            authority,
            authorization,
            write: if args.legacy {
                Method::POST
            } else {
                Method::PUT
            },
            keys: keys.into(),
            list_keys: list_keys.into(),
            list: path_uri(&format!("{api}/{list_namespace}"))?,
            readyz: path_uri(&format!("{prefix}/readyz"))?,
            value_size: args.value_size,
        })
    }
}

/// The path every data route starts with: `/api`, or `/api2/{workspace}`.
fn api_prefix(args: &BenchArgs, prefix: &str) -> Result<String, Failure> {
    if args.legacy {
        return Ok(format!("{prefix}/api"));
    }
    let workspace = match &args.workspace {
        Some(text) => uuid_flag("--workspace", text)?,
        None => Uuid::parse_str(BENCH_WORKSPACE)
            .map_err(|e| Failure::error(format!("bench workspace: {e}")))?,
    };
    Ok(format!("{prefix}/api2/{}", workspace.hyphenated()))
}

/// Splits `--url` into the path prefix, host, port and `Host` header.
pub(super) fn base_url(url: &str) -> Result<(String, String, u16, HeaderValue), Failure> {
    let bad = |why: &str| Failure::usage(format!("--url {url:?}: {why}"));
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|_| bad("expected an http:// URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("the bench speaks plain http:// only")),
        _ => return Err(bad("expected an http:// URL")),
    }
    if uri.query().is_some() {
        return Err(bad("expected a URL without query"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user information is not supported"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(80);
    let header = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
    let prefix = uri.path().trim_end_matches('/').to_owned();
    Ok((prefix, host, port, header))
}

/// `Bearer <token>`: `--token`, or a system token minted from the secret.
pub(super) fn authorization(args: &BenchArgs, run: Duration) -> Result<HeaderValue, Failure> {
    // Seeding comes on top of the run; an hour more is plenty.
    let token = bearer_token(
        args.token.as_ref(),
        args.token_secret.as_ref(),
        "hulykvs-bench",
        run + Duration::from_secs(3600),
    )?;
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Failure::usage("--token: not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The key a bench index stands for.
pub fn key_name(index: u64) -> String {
    index.to_string()
}

pub(super) fn key_paths(api: &str, namespace: &str, count: u32) -> Result<Vec<Uri>, Failure> {
    (0..u64::from(count))
        .map(|i| path_uri(&format!("{api}/{namespace}/{}", key_name(i))))
        .collect()
}

pub(super) fn path_uri(path: &str) -> Result<Uri, Failure> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Uri::from_maybe_shared(Bytes::from(path.clone()))
        .map_err(|e| Failure::usage(format!("cannot make a request path of {path:?}: {e}")))
}

impl Plan {
    /// The shares of the mix, as `get=80,put=15,list=5`.
    pub(super) fn mix_text(&self) -> String {
        let mut below = 0;
        self.mix
            .steps
            .iter()
            .map(|&(upto, op)| {
                let share = upto - below;
                below = upto;
                let name = match op {
                    Op::Get => "get",
                    Op::Put => "put",
                    Op::Cas => "cas",
                    Op::List => "list",
                };
                format!("{name}={share}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth;
    use crate::cli::{Cli, Command};
    use crate::exit::Exit;
    use clap::Parser;

    fn plan(extra: &[&str]) -> Result<Plan, Failure> {
        let argv = ["hulykvs", "bench", "--token", "t", "--keys", "3"]
            .into_iter()
            .chain(extra.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Bench(args) => Plan::from_args(&args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn mix_parses_shares_and_refuses_nonsense() {
        let mix = Mix::parse("get=80, put=15,list=5").unwrap();
        assert_eq!(mix.total, 100);
        assert_eq!(
            mix.steps,
            vec![(80, Op::Get), (95, Op::Put), (100, Op::List)]
        );
        assert_eq!(Mix::parse("cas=1,get=0").unwrap().steps, vec![(1, Op::Cas)]);
        for bad in [
            "",
            "get",
            "get=x",
            "del=1",
            "get=1,get=2",
            "get=0",
            "put=-1",
        ] {
            assert!(Mix::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mix_picks_in_proportion() {
        let mix = Mix::parse("get=3,put=1").unwrap();
        let mut rng = Rng::new(7);
        let puts = (0..40_000)
            .filter(|_| mix.pick(&mut rng) == Op::Put)
            .count();
        assert!((9_000..11_000).contains(&puts), "{puts}");
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| rng.below(3) < 3));
    }

    #[test]
    fn paths_of_both_apis() {
        let v2 = plan(&["--url", "http://h:81/base/", "--namespace", "a b"]).unwrap();
        assert_eq!(v2.keys.len(), 3);
        assert_eq!(
            v2.keys[2].to_string(),
            format!("/base/api2/{BENCH_WORKSPACE}/a%20b/2")
        );
        assert_eq!(v2.authority, "h:81");
        assert_eq!(v2.readyz.to_string(), "/base/readyz");
        assert!(v2.list_keys.is_empty());
        assert_eq!(v2.write, Method::PUT);

        let legacy = plan(&["--legacy", "--workload", "mixed"]).unwrap();
        assert_eq!(legacy.keys[0].to_string(), "/api/bench/0");
        assert_eq!(legacy.list.to_string(), "/api/bench-list");
        assert_eq!(legacy.list_keys.len(), 1000);
        assert_eq!(legacy.write, Method::POST);
        assert_eq!(legacy.port, 8094);

        let list = plan(&[
            "--workload",
            "list",
            "-w",
            "0B0B0B0B-1111-4222-8333-444444444444",
        ])
        .unwrap();
        assert!(list.keys.is_empty());
        assert_eq!(list.list_keys.len(), 3);
        assert_eq!(
            list.list.to_string(),
            "/api2/0b0b0b0b-1111-4222-8333-444444444444/bench-list"
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for argv in [
            &["--url", "https://h"][..],
            &["--url", "localhost:8094"][..],
            &["--url", "http://h/?q=1"][..],
            &["--duration", "soon"][..],
            &["--duration", "0s"][..],
            &["-w", "nope"][..],
            &["--workload", "mixed", "--mix", "get=1,zap=2"][..],
            &["--workload", "cas", "--legacy"][..],
            &["--namespace", ".."][..],
        ] {
            let failure = plan(argv).err().unwrap();
            assert_eq!(failure.exit, Exit::Usage, "{argv:?}: {failure}");
        }
    }

    #[test]
    fn minted_token_is_a_system_token() {
        let argv = ["hulykvs", "bench", "--token-secret", "s3", "--keys", "1"];
        let Command::Bench(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not bench");
        };
        let header = authorization(&args, Duration::from_secs(10)).unwrap();
        let text = header.to_str().unwrap();
        let token = text.strip_prefix("Bearer ").unwrap();
        let claims = auth::Verifier::new("s3").verify(token).unwrap();
        assert_eq!(claims.account, crate::auth::SYSTEM_ACCOUNT);
        assert!(header.is_sensitive());
    }
}

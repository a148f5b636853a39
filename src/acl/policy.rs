//! An ACL policy (SPEC §14): `[[allow]]` rules read from TOML, each naming
//! who (`service`, the token's `extra.service`, and/or `account`), which
//! namespaces (globs) and what access (`read` or `read-write`). Compiled
//! once: rules are indexed by service and by account, and within those by
//! the shapes of their globs ([`Index`]), so deciding looks at only the
//! rules of the token's identity that could match, and allocates nothing.

use std::collections::HashMap;

use serde::Deserialize;
use uuid::Uuid;

use super::glob::Glob;
use super::index::Index;

/// What a request does to a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET, HEAD, listings, watch streams, long polls, `get` and `check` ops.
    Read,
    /// Everything else.
    Write,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// Who a token speaks for, as rules match it.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// `claims.extra.service`, when the token has one.
    pub service: Option<&'a str>,
    pub account: Uuid,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// 1-based, in file order.
    pub number: usize,
    /// The line of its `[[allow]]` in the file.
    pub line: usize,
    pub service: Option<String>,
    pub account: Option<Uuid>,
    namespaces: Vec<Glob>,
    /// The globs as the file writes them.
    patterns: Vec<String>,
    /// Whether it grants writes as well as reads.
    writes: bool,
}

impl Rule {
    /// The rule in words: who, what access, which namespaces.
    pub fn describe(&self) -> String {
        let mut who = Vec::new();
        if let Some(service) = &self.service {
            who.push(format!("service {service:?}"));
        }
        if let Some(account) = &self.account {
            who.push(format!("account {account}"));
        }
        let access = if self.writes { "read-write" } else { "read" };
        format!("{} may {access} {:?}", who.join(" with "), self.patterns)
    }

    /// Whether the rule is for `who` and grants `access` (its globs aside).
    fn permits(&self, who: &Identity<'_>, access: Access) -> bool {
        (self.writes || access == Access::Read)
            && self
                .service
                .as_deref()
                .map_or(true, |s| who.service == Some(s))
            && self.account.map_or(true, |a| a == who.account)
    }
}

/// A compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Rules that name a service, by that service.
    by_service: HashMap<String, Index>,
    /// Rules that name an account and no service, by that account.
    by_account: HashMap<Uuid, Index>,
}

/// Why a policy file cannot be used: its text, with the line it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PolicyError {
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    allow: Vec<toml::Spanned<RuleText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    service: Option<String>,
    account: Option<String>,
    namespaces: Vec<String>,
    access: String,
}

impl Policy {
    /// Parses and compiles a policy; the error names the line.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let file: File = toml::from_str(text).map_err(|e| PolicyError {
            line: e.span().map_or(1, |span| line_of(text, span.start)),
            message: e.message().to_owned(),
        })?;
        let mut policy = Policy::default();
        for (index, spanned) in file.allow.into_iter().enumerate() {
            let line = line_of(text, spanned.span().start);
            let rule = compile(spanned.into_inner(), index + 1, line)?;
            let bucket = match (&rule.service, rule.account) {
                (Some(service), _) => policy.by_service.entry(service.clone()).or_default(),
                (None, Some(account)) => policy.by_account.entry(account).or_default(),
                (None, None) => unreachable!("compile refuses a rule naming nobody"),
            };
            bucket.add(index, &rule.namespaces);
            policy.rules.push(rule);
        }
        Ok(policy)
    }

    /// The first rule (in file order) that grants `access` on `namespace`
    /// to `who`, or `None`: denied.
    pub fn decide(&self, who: &Identity<'_>, namespace: &str, access: Access) -> Option<&Rule> {
        let grants = |rule: usize| self.rules[rule].permits(who, access);
        let by_service = who
            .service
            .and_then(|s| self.by_service.get(s))
            .and_then(|index| index.first(namespace, grants));
        let by_account = self
            .by_account
            .get(&who.account)
            .and_then(|index| index.first(namespace, grants));
        // The earlier of the two in the file decides.
        let first = match (by_service, by_account) {
            (Some(a), Some(b)) => a.min(b),
            (Some(rule), None) | (None, Some(rule)) => rule,
            (None, None) => return None,
        };
        Some(&self.rules[first])
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether any rule is for `who`: one that is not can be refused
    /// without asking which namespace.
    pub fn knows(&self, who: &Identity<'_>) -> bool {
        who.service.is_some_and(|s| self.by_service.contains_key(s))
            || self.by_account.contains_key(&who.account)
    }
}

fn compile(text: RuleText, number: usize, line: usize) -> Result<Rule, PolicyError> {
    let bad = |message: String| PolicyError { line, message };
    let account = text
        .account
        .as_deref()
        .map(|a| Uuid::parse_str(a.trim()).map_err(|_| bad(format!("account {a:?} is not a UUID"))))
        .transpose()?;
    let service = text.service.filter(|s| !s.is_empty());
    if service.is_none() && account.is_none() {
        return Err(bad(
            "a rule names a service or an account (or both)".to_owned()
        ));
    }
    let writes = match text.access.as_str() {
        "read" => false,
        "read-write" => true,
        other => {
            return Err(bad(format!(
                "access {other:?} is neither \"read\" nor \"read-write\""
            )))
        }
    };
    if text.namespaces.is_empty() {
        return Err(bad(
            "namespaces is empty: the rule grants nothing".to_owned()
        ));
    }
    if let Some(empty) = text.namespaces.iter().find(|n| n.is_empty()) {
        return Err(bad(format!("namespace glob {empty:?} is empty")));
    }
    Ok(Rule {
        number,
        line,
        service,
        account,
        namespaces: text.namespaces.iter().map(|n| Glob::new(n)).collect(),
        patterns: text.namespaces,
        writes,
    })
}

/// The 1-based line of byte `at` of `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
# Huly's services
[[allow]]
service = "calendar"
namespaces = ["calendar", "calendar:*"]
access = "read-write"

[[allow]]
service = "reporting"
namespaces = ["*"]
access = "read"

[[allow]]
account = "0e0e0e0e-1111-4222-8333-444455556666"
namespaces = ["*:public"]
access = "read-write"

[[allow]]
service = "gmail"
account = "0e0e0e0e-1111-4222-8333-444455556666"
namespaces = ["gmail*"]
access = "read-write"
"#;

    fn who(service: Option<&str>, account: &str) -> Identity<'static> {
        Identity {
            service: service.map(|s| Box::leak(s.to_owned().into_boxed_str()) as &str),
            account: Uuid::parse_str(account).unwrap(),
        }
    }

    const ACCOUNT: &str = "0e0e0e0e-1111-4222-8333-444455556666";
    const OTHER: &str = "1749089e-22e6-48de-af4e-165e18fbd2f9";

    #[test]
    fn rules_grant_what_they_name_and_nothing_else() {
        let policy = Policy::parse(POLICY).unwrap();
        let decided = |service, account, ns, access| {
            policy
                .decide(&who(service, account), ns, access)
                .map(|rule| rule.number)
        };
        use Access::{Read, Write};
        assert_eq!(decided(Some("calendar"), OTHER, "calendar", Write), Some(1));
        assert_eq!(
            decided(Some("calendar"), OTHER, "calendar:x", Read),
            Some(1)
        );
        assert_eq!(decided(Some("calendar"), OTHER, "gmail", Read), None);
        assert_eq!(decided(Some("reporting"), OTHER, "gmail", Read), Some(2));
        assert_eq!(decided(Some("reporting"), OTHER, "gmail", Write), None);
        assert_eq!(decided(None, ACCOUNT, "x:public", Write), Some(3));
        assert_eq!(
            decided(None, OTHER, "x:public", Read),
            None,
            "no service, other account"
        );
        assert_eq!(decided(Some("gmail"), ACCOUNT, "gmail", Write), Some(4));
        assert_eq!(
            decided(Some("gmail"), OTHER, "gmail", Write),
            None,
            "both must match"
        );
        assert_eq!(
            decided(Some("gmail"), ACCOUNT, "a:public", Read),
            Some(3),
            "an account rule applies to any of its tokens"
        );
        assert_eq!(policy.rules()[0].line, 3);
        assert_eq!(policy.rules()[3].line, 18);
    }

    #[test]
    fn a_policy_knows_the_identities_its_rules_name() {
        let policy = Policy::parse(POLICY).unwrap();
        assert!(policy.knows(&who(Some("calendar"), OTHER)));
        assert!(policy.knows(&who(None, ACCOUNT)));
        assert!(
            policy.knows(&who(Some("gmail"), OTHER)),
            "named with an account too"
        );
        assert!(!policy.knows(&who(Some("telegram"), OTHER)));
        assert!(!policy.knows(&who(None, OTHER)));
    }

    #[test]
    fn an_empty_policy_denies_everything() {
        let policy = Policy::parse("").unwrap();
        assert!(policy
            .decide(&who(Some("calendar"), OTHER), "calendar", Access::Read)
            .is_none());
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "[[allow]]\nservice = \"x\"\nnamespaces = [\"a\"]\naccess = \"all\"\n",
                1,
                "neither",
            ),
            (
                "\n[[allow]]\nnamespaces = [\"a\"]\naccess = \"read\"\n",
                2,
                "names a service",
            ),
            (
                "[[allow]]\naccount = \"nope\"\nnamespaces = [\"a\"]\naccess = \"read\"\n",
                1,
                "not a UUID",
            ),
            (
                "[[allow]]\nservice = \"x\"\nnamespaces = []\naccess = \"read\"\n",
                1,
                "grants nothing",
            ),
            (
                "[[allow]]\nservice = \"x\"\nnamespaces = [\"a\"]\naccess = \"read\"\ncolour = 1\n",
                5,
                "unknown field",
            ),
            ("\n\n[[allow]\n", 3, ""),
            ("[[deny]]\nservice = \"x\"\n", 1, "unknown field"),
        ];
        for (text, line, says) in cases {
            let e = Policy::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
    }
}

/// `cargo test --release --lib -- --ignored decision_cost --nocapture`:
/// what one decision costs under 1,000-rule policies (figures in
/// docs/PERFORMANCE.md).
#[cfg(test)]
mod cost {
    use super::*;

    fn rules(service_of: impl Fn(usize) -> String) -> String {
        (1..=1000)
            .map(|i| {
                let (service, ns) = if i == 1000 {
                    ("hulykvs-bench".to_owned(), "bench".to_owned())
                } else {
                    (service_of(i), format!("ns-{i}"))
                };
                format!(
                    "[[allow]]\nservice = \"{service}\"\nnamespaces = [\"{ns}\", \"{ns}:*\", \"*:{ns}\"]\naccess = \"read-write\"\n"
                )
            })
            .collect()
    }

    #[test]
    #[ignore = "a measurement, run by hand"]
    fn decision_cost() {
        let who = Identity {
            service: Some("hulykvs-bench"),
            account: Uuid::nil(),
        };
        for (shape, text) in [
            ("one service a rule", rules(|i| format!("service-{i}"))),
            ("all for one service", rules(|_| "hulykvs-bench".to_owned())),
        ] {
            let policy = Policy::parse(&text).unwrap();
            for ns in ["bench", "bench:calendar-events", "gmail"] {
                let rounds = 1_000_000u32;
                let started = std::time::Instant::now();
                let mut granted = 0;
                for _ in 0..rounds {
                    let ns = std::hint::black_box(ns);
                    granted += usize::from(policy.decide(&who, ns, Access::Read).is_some());
                }
                let each = started.elapsed() / rounds;
                println!("{shape}: {ns:?}: {each:?} a decision (granted {granted})");
            }
        }
    }
}

//! Namespace globs: `*` stands for any run of characters (none included),
//! everything else for itself. Compiled once per policy into the shape that
//! matches fastest, and matched without allocating.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob {
    /// `*`: every namespace.
    Any,
    /// No `*`: this namespace only.
    Exact(String),
    /// `abc*`.
    Prefix(String),
    /// `*abc`.
    Suffix(String),
    /// Anything else: the literal parts between the stars; the first is
    /// anchored at the start, the last at the end.
    Parts(Vec<String>),
}

impl Glob {
    /// Compiles `pattern`; runs of stars count as one.
    pub fn new(pattern: &str) -> Glob {
        if !pattern.contains('*') {
            return Glob::Exact(pattern.to_owned());
        }
        let mut parts: Vec<String> = pattern.split('*').map(str::to_owned).collect();
        // Runs of stars: empty parts inside mean nothing.
        let (first, last) = (parts.remove(0), parts.pop().unwrap_or_default());
        parts.retain(|p| !p.is_empty());
        match (first.is_empty(), parts.is_empty(), last.is_empty()) {
            (true, true, true) => Glob::Any,
            (false, true, true) => Glob::Prefix(first),
            (true, true, false) => Glob::Suffix(last),
            _ => {
                let mut all = Vec::with_capacity(parts.len() + 2);
                all.push(first);
                all.extend(parts);
                all.push(last);
                Glob::Parts(all)
            }
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(exact) => name == exact,
            Glob::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Glob::Suffix(suffix) => name.ends_with(suffix.as_str()),
            Glob::Parts(parts) => matches_parts(parts, name),
        }
    }
}

/// `parts[0]*parts[1]*…*parts[n]`: the first part is a prefix, the last a
/// suffix, and the middle ones appear in order between them, each as early
/// as it can (the earliest place never rules out a later part).
fn matches_parts(parts: &[String], name: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return true;
    };
    if name.len() < first.len() + last.len()
        || !name.starts_with(first.as_str())
        || !name.ends_with(last.as_str())
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part.as_str()) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_compile_to_their_fastest_shape() {
        assert_eq!(Glob::new("*"), Glob::Any);
        assert_eq!(Glob::new("**"), Glob::Any);
        assert_eq!(Glob::new("calendar"), Glob::Exact("calendar".into()));
        assert_eq!(Glob::new("calendar:*"), Glob::Prefix("calendar:".into()));
        assert_eq!(Glob::new("*:sync"), Glob::Suffix(":sync".into()));
        assert_eq!(
            Glob::new("a*b*c"),
            Glob::Parts(vec!["a".into(), "b".into(), "c".into()])
        );
    }

    #[test]
    fn globs_match_any_run_of_characters() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("calendar", "calendar", true),
            ("calendar", "calendar2", false),
            ("calendar:*", "calendar:", true),
            ("calendar:*", "calendar:events", true),
            ("calendar:*", "calendar", false),
            ("*:sync", "gmail:sync", true),
            ("*:sync", "gmail:sync2", false),
            ("mail*sync", "mailsync", true),
            ("mail*sync", "mail-thread-sync", true),
            ("mail*sync", "mail-sync-x", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("a*b*b", "ab", false),
            ("a*b*b", "abb", true),
            ("*a*", "xay", true),
            ("*a*", "xy", false),
            ("ünï*cødé", "ünï-x-cødé", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(name),
                expected,
                "{pattern:?} on {name:?}"
            );
        }
    }
}

//! The rules of one identity (a service, or an account), indexed by their
//! globs' shapes, so that deciding costs about the length of the namespace
//! rather than the number of rules: exact globs and prefix and suffix globs
//! are looked up by the namespace and by its prefixes and suffixes of the
//! lengths the globs have (hashing borrowed slices, allocating nothing);
//! only `*` and globs with a star inside are tried one by one.

use std::collections::HashMap;

use super::glob::Glob;

/// Rule numbers (indexes into the policy's rules, in file order) by the
/// shape of the glob that may grant them.
#[derive(Debug, Clone, Default)]
pub struct Index {
    exact: HashMap<String, Vec<usize>>,
    prefix: HashMap<String, Vec<usize>>,
    suffix: HashMap<String, Vec<usize>>,
    /// The lengths (bytes) of the prefixes and suffixes above, each once,
    /// ascending: the only lengths worth looking up.
    prefix_lens: Vec<usize>,
    suffix_lens: Vec<usize>,
    /// Rules with a glob tried one by one (`*`, or a star inside), and the glob.
    others: Vec<(usize, Glob)>,
}

impl Index {
    /// Adds rule `rule` with its globs; rules are added in file order.
    pub fn add(&mut self, rule: usize, globs: &[Glob]) {
        for glob in globs {
            let list = match glob {
                Glob::Exact(text) => self.exact.entry(text.clone()).or_default(),
                Glob::Prefix(text) => {
                    insert_sorted(&mut self.prefix_lens, text.len());
                    self.prefix.entry(text.clone()).or_default()
                }
                Glob::Suffix(text) => {
                    insert_sorted(&mut self.suffix_lens, text.len());
                    self.suffix.entry(text.clone()).or_default()
                }
                Glob::Any | Glob::Parts(_) => {
                    self.others.push((rule, glob.clone()));
                    continue;
                }
            };
            if list.last() != Some(&rule) {
                list.push(rule);
            }
        }
    }

    /// The first rule in file order with a glob matching `namespace` for
    /// which `grants` holds.
    pub fn first(&self, namespace: &str, grants: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut consider = |list: &[usize]| {
            // Each list is in file order: its first granting rule is its best.
            let found = list
                .iter()
                .copied()
                .take_while(|&r| best.map_or(true, |b| r < b))
                .find(|&r| grants(r));
            if let Some(rule) = found {
                best = Some(best.map_or(rule, |b| b.min(rule)));
            }
        };
        if let Some(list) = self.exact.get(namespace) {
            consider(list);
        }
        let len = namespace.len();
        for &n in self.prefix_lens.iter().take_while(|&&n| n <= len) {
            if let Some(list) = namespace.get(..n).and_then(|p| self.prefix.get(p)) {
                consider(list);
            }
        }
        for &n in self.suffix_lens.iter().take_while(|&&n| n <= len) {
            if let Some(list) = namespace.get(len - n..).and_then(|p| self.suffix.get(p)) {
                consider(list);
            }
        }
        for (rule, glob) in &self.others {
            if best.is_some_and(|b| b < *rule) {
                break;
            }
            if glob.matches(namespace) && grants(*rule) {
                best = Some(best.map_or(*rule, |b| b.min(*rule)));
                break;
            }
        }
        best
    }
}

/// Adds `n` to the ascending list `lens` unless it is there.
fn insert_sorted(lens: &mut Vec<usize>, n: usize) {
    if let Err(at) = lens.binary_search(&n) {
        lens.insert(at, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(rules: &[&[&str]]) -> Index {
        let mut index = Index::default();
        for (rule, globs) in rules.iter().enumerate() {
            let globs: Vec<Glob> = globs.iter().map(|g| Glob::new(g)).collect();
            index.add(rule, &globs);
        }
        index
    }

    #[test]
    fn the_first_matching_rule_in_file_order_wins_whatever_its_shape() {
        let index = index(&[
            &["a*b"],
            &["calendar:*", "calendar"],
            &["*:public"],
            &["calendar:x"],
            &["*"],
        ]);
        let all = |_| true;
        assert_eq!(index.first("calendar:x", all), Some(1));
        assert_eq!(index.first("calendar", all), Some(1));
        assert_eq!(index.first("axb", all), Some(0));
        assert_eq!(index.first("n:public", all), Some(2));
        assert_eq!(index.first("other", all), Some(4));
        assert_eq!(
            index.first("calendar:x", |r| r != 1),
            Some(3),
            "the next granting rule"
        );
        assert_eq!(index.first("calendar:x", |r| r > 4), None);
        assert_eq!(index.first("", all), Some(4));
    }

    #[test]
    fn prefixes_and_suffixes_split_on_characters() {
        let index = index(&[&["é*"], &["*é"]]);
        assert_eq!(index.first("éa", |_| true), Some(0));
        assert_eq!(index.first("aé", |_| true), Some(1));
        assert_eq!(index.first("a", |_| true), None);
    }

    proptest::proptest! {
        /// The index finds what trying every rule's globs in file order finds.
        #[test]
        fn the_index_agrees_with_trying_every_rule(
            rules in proptest::collection::vec(
                proptest::collection::vec("[ab*:]{0,4}", 1..3), 0..12),
            names in proptest::collection::vec("[ab:]{0,5}", 1..8),
            denied in proptest::collection::vec(0usize..12, 0..4),
        ) {
            let rules: Vec<Vec<Glob>> = rules
                .iter()
                .map(|globs| globs.iter().filter(|g| !g.is_empty()).map(|g| Glob::new(g)).collect())
                .collect();
            let mut index = Index::default();
            for (rule, globs) in rules.iter().enumerate() {
                index.add(rule, globs);
            }
            let grants = |r: usize| !denied.contains(&r);
            for name in &names {
                let scanned = rules
                    .iter()
                    .enumerate()
                    .find(|(r, globs)| grants(*r) && globs.iter().any(|g| g.matches(name)))
                    .map(|(r, _)| r);
                proptest::prop_assert_eq!(index.first(name, grants), scanned, "{:?}", name);
            }
        }
    }
}

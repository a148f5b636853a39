//! The shape of `src/` that issue #9 set: every source file under about 800
//! lines and every function under about 80, no cycle between the top-level
//! modules nor between sibling modules at any depth (each room only looks
//! down), `config` importing nothing of the crate, and a layout map in
//! `src/lib.rs` with one line for every module and none for a module that is
//! gone. Reads the source text; builds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 80;

/// One source file of the library.
struct Source {
    /// `src/…` for messages.
    path: PathBuf,
    /// The module it holds: `["store", "postgres", "batch"]`; empty for `lib.rs`.
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    assert!(files.len() > 10, "found only {files:?} under {root:?}");
    files
        .into_iter()
        .filter(|path| path.file_name().is_some_and(|n| n != "main.rs"))
        .map(|path| {
            let relative = path.strip_prefix(&root).expect("under src");
            let mut module: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            Source {
                path: Path::new("src").join(relative),
                module,
                text,
            }
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text before the unit tests, which by convention close a file.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at])
}

/// The top-level modules a file names through `crate::…`, grouped imports included.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            found.extend(inner.split(',').filter_map(first_segment));
        } else if let Some(name) = first_segment(rest) {
            found.insert(name);
        }
    }
    found
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// Top-level module → the top-level modules its code (tests aside) uses.
fn module_graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources {
        let Some(top) = source.module.first() else {
            continue;
        };
        let uses = crate_references(without_tests(&source.text));
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(uses.into_iter().filter(|used| used != top));
    }
    graph
}

/// A cycle of the graph, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_source_file_is_over_800_lines() {
    let big: Vec<String> = sources()
        .iter()
        .map(|s| (s.path.display().to_string(), s.text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_FILE_LINES)
        .map(|(path, lines)| format!("{path}: {lines} lines"))
        .collect();
    assert!(big.is_empty(), "split these rooms: {big:#?}");
}

/// Every function with a body: (file, name, lines from `fn` to its closing brace).
fn functions(source: &Source) -> Vec<(String, usize)> {
    let lines: Vec<&str> = source.text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = line.len() - code.len();
        let signature = code
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("async ");
        let Some(rest) = signature.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A declaration without a body ends in `;` before any `{`.
        let Some(open) = (i..lines.len()).find(|&j| {
            let t = lines[j].trim_end();
            t.ends_with('{') || t.ends_with(';') || t.ends_with('}')
        }) else {
            continue;
        };
        if !lines[open].trim_end().ends_with('{') {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = (open + 1..lines.len()).find(|&j| lines[j] == close) {
            found.push((name, end - i + 1));
        }
    }
    found
}

#[test]
fn no_function_is_over_80_lines() {
    let sources = sources();
    let mut long = Vec::new();
    let mut seen = 0;
    for source in &sources {
        for (name, lines) in functions(source) {
            seen += 1;
            if lines > MAX_FN_LINES {
                long.push(format!(
                    "{}: fn {name}: {lines} lines",
                    source.path.display()
                ));
            }
        }
    }
    assert!(
        seen > 300,
        "found only {seen} functions: is the scan broken?"
    );
    assert!(long.is_empty(), "split these functions: {long:#?}");
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph(&sources());
    // The scan must see what is known to be there, or it proves nothing.
    assert!(graph["http"].contains("store"), "{graph:#?}");
    assert!(graph["cli"].contains("config"), "{graph:#?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "modules import each other in a circle: {}",
            cycle.join(" → ")
        );
    }
}

/// The module paths a file of module `module` names (`crate::a::b`,
/// `super::b`, `self::b`, one level of `{…}` groups), each as far as its
/// lower-case segments go: a path may run on into an item's name, which is
/// harmless where the graph is built (the first segment that differs counts).
/// Comment lines (doc links name modules without importing them) are left out.
fn module_references(module: &[String], text: &str) -> BTreeSet<Vec<String>> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    // `super` of a file `a/b.rs` (module a::b) and of `a/b/mod.rs` alike is `a`.
    let parent = &module[..module.len().saturating_sub(1)];
    let mut found = BTreeSet::new();
    for (prefix, base) in [
        ("crate::", &[][..]),
        ("super::", parent),
        ("self::", module),
    ] {
        for (at, _) in text.match_indices(prefix) {
            // `crate::` inside `super::crate::`, or a longer word ending in one, is not a path start.
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &text[at + prefix.len()..];
            let mut path: Vec<String> = base.to_vec();
            let mut rest = rest;
            loop {
                if let Some(group) = rest.strip_prefix('{') {
                    let inner = &group[..group.find('}').unwrap_or(group.len())];
                    for item in inner.split(',') {
                        let mut one = path.clone();
                        one.extend(lower_segments(item));
                        found.insert(one);
                    }
                    break;
                }
                let name = first_segment(rest);
                match name {
                    Some(name) if name.chars().all(|c| !c.is_ascii_uppercase()) => {
                        rest = &rest.trim_start()[name.len()..];
                        path.push(name);
                        match rest.strip_prefix("::") {
                            Some(next) => rest = next,
                            None => break,
                        }
                    }
                    _ => break,
                }
            }
            found.insert(path);
        }
    }
    found
}

/// The leading lower-case segments of `a::b::C`.
fn lower_segments(path: &str) -> Vec<String> {
    path.trim()
        .split("::")
        .map(str::trim)
        .take_while(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .filter(|s| *s != "self")
        .map(str::to_owned)
        .collect()
}

/// Sibling modules at every depth → the siblings their code (tests aside)
/// uses: a file in `store::sealed` naming `store::stored` is an edge
/// `store::sealed → store::stored`; one in `store::postgres::txn` naming
/// `store::txn` is `store::postgres → store::txn`.
fn sibling_graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources {
        for target in module_references(&source.module, without_tests(&source.text)) {
            let m = &source.module;
            let common = m.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if m.len() > common && target.len() > common {
                let from = m[..=common].join("::");
                let to = target[..=common].join("::");
                graph.entry(from).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn the_sibling_graph_sees_imports_at_every_depth() {
    let source = |path: &str, module: &[&str], text: &str| Source {
        path: PathBuf::from(path),
        module: module.iter().map(|m| m.to_string()).collect(),
        text: text.to_owned(),
    };
    // The circle this check was written after: sealed ↔ reseal.
    let sources = [
        source(
            "src/store/sealed.rs",
            &["store", "sealed"],
            "//! Uses [`super::snapshot`] in a doc link only.\nuse super::reseal::{Reseal, StoredRow};\n",
        ),
        source(
            "src/store/reseal.rs",
            &["store", "reseal"],
            "use super::{sealed::open_stored, Store};\n",
        ),
        source(
            "src/store/postgres/txn.rs",
            &["store", "postgres", "txn"],
            "use crate::store::txn::{Plan, Txn};\nuse super::sql::logged;\n",
        ),
    ];
    let graph = sibling_graph(&sources);
    assert!(
        graph["store::sealed"].contains("store::reseal"),
        "{graph:#?}"
    );
    assert!(
        !graph["store::sealed"].contains("store::snapshot"),
        "{graph:#?}"
    );
    assert!(
        graph["store::postgres"].contains("store::txn"),
        "{graph:#?}"
    );
    assert!(
        graph["store::postgres::txn"].contains("store::postgres::sql"),
        "{graph:#?}"
    );
    assert_eq!(
        find_cycle(&graph),
        Some(vec![
            "store::reseal".into(),
            "store::sealed".into(),
            "store::reseal".into()
        ])
    );
}

#[test]
fn sibling_modules_form_no_cycle_at_any_depth() {
    let graph = sibling_graph(&sources());
    // The scan must see what is known to be there, or it proves nothing.
    assert!(
        graph["store::sealed"].contains("store::stored"),
        "{graph:#?}"
    );
    assert!(
        graph["store::postgres"].contains("store::txn"),
        "{graph:#?}"
    );
    assert!(graph["http::router"].contains("http::state"), "{graph:#?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "modules import each other in a circle: {}",
            cycle.join(" → ")
        );
    }
}

#[test]
fn config_is_fed_by_the_command_line_and_imports_nothing() {
    let graph = module_graph(&sources());
    let used = &graph["config"];
    assert!(used.is_empty(), "config imports {used:?}");
    for (module, uses) in &graph {
        if module != "cli" {
            assert!(!uses.contains("cli"), "{module} imports cli");
        }
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_owned()].into());
    graph.insert("b".into(), ["c".to_owned()].into());
    graph.insert("c".into(), ["a".to_owned()].into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    graph.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
    assert_eq!(
        crate_references("use crate::{auth::Claims, config};\nlet x = crate::store::Item;"),
        ["auth", "config", "store"].map(String::from).into()
    );
}

#[test]
fn the_layout_map_names_every_module_and_only_those() {
    let sources = sources();
    let lib = sources
        .iter()
        .find(|s| s.module.is_empty())
        .expect("src/lib.rs");
    let mapped: BTreeSet<String> = lib
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .filter_map(|line| line.trim_start().strip_prefix("- `"))
        .filter_map(|entry| entry.split_once("`:").map(|(name, _)| name.to_owned()))
        .collect();
    let modules: BTreeSet<String> = sources
        .iter()
        .filter(|s| !s.module.is_empty())
        .map(|s| s.module.join("::"))
        .collect();
    let missing: Vec<_> = modules.difference(&mapped).collect();
    let stale: Vec<_> = mapped.difference(&modules).collect();
    assert!(missing.is_empty(), "src/lib.rs does not map {missing:?}");
    assert!(
        stale.is_empty(),
        "src/lib.rs maps modules that are gone: {stale:?}"
    );
}

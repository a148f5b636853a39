//! The shape of `src/` that issue #9 set: every source file under about 800
//! lines and every function under about 80, no cycle between the top-level
//! modules, `config` importing nothing of the crate, and a layout map in
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

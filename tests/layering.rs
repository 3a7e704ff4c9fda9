//! The layering the architecture notes promise, checked on the source text: the top-level
//! modules of `src/` import one another without cycles, no domain module imports the
//! application layer (`app`), `train` does not import `experiments`, and no source file grows past
//! ~500 lines.
//!
//! An import is any `crate::<module>` path outside a comment, including the members of a
//! `use crate::{a::x, b::y}` group, in any file below `src/<module>/` (or `src/<module>.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Source files longer than this are a sign that a module has two jobs.
const MAX_LINES: usize = 500;

/// Modules that stand above every other one: they may import anything, nothing imports them.
const APPLICATION: &[&str] = &["app", "cli", "main", "lib"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules of `src/`: each `src/x.rs` and `src/x/`.
fn top_modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in fs::read_dir(src).expect("read src") {
        let path = entry.expect("dir entry").path();
        let mut files = Vec::new();
        let name = if path.is_dir() {
            rust_files(&path, &mut files);
            path.file_name().map(|n| n.to_string_lossy().into_owned())
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path.clone());
            path.file_stem().map(|n| n.to_string_lossy().into_owned())
        } else {
            None
        };
        if let Some(name) = name {
            modules.insert(name, files);
        }
    }
    modules
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// First path segment of every `crate::` path in `code` (comments already removed).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !is_ident(c) && c != ':');
        rest = &rest[at + "crate::".len()..];
        if !before_ok {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b::{y, z}}`: the first segment of each member at depth 1.
            let mut depth = 1;
            let mut member = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => at_start = true,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && at_start {
                    if is_ident(c) {
                        member.push(c);
                    } else if !member.is_empty() {
                        out.push(std::mem::take(&mut member));
                        at_start = false;
                    }
                }
            }
            if !member.is_empty() {
                out.push(member);
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            out.push(name);
        }
    }
    out
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `module → modules it imports`, over every top-level module of `src/`.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = top_modules(src);
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (name, files) in &modules {
        let mut deps = BTreeSet::new();
        for file in files {
            let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for dep in crate_paths(&without_comments(&text)) {
                if &dep != name && names.contains(&dep) {
                    deps.insert(dep);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// One cycle of the graph, as a path `a → b → … → a`, if there is any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(dep, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn crate_paths_reads_single_paths_and_groups() {
    let code = "use crate::config::Config;\nuse crate::{data::npy, model::{Mlp, MlpSpec}};\n\
                let x = crate::stats::median(&v); let y = mycrate::nope::z;";
    assert_eq!(crate_paths(code), ["config", "data", "model", "stats"]);
}

#[test]
fn find_cycle_finds_a_cycle_and_accepts_a_dag() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default();
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    let cycle = find_cycle(&g).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}

#[test]
fn top_level_modules_import_without_cycles() {
    let graph = import_graph(&src_dir());
    assert!(graph.len() > 10, "expected the crate's modules, found {:?}", graph.keys());
    let domain: BTreeMap<_, _> = graph
        .iter()
        .filter(|(m, _)| !APPLICATION.contains(&m.as_str()))
        .map(|(m, d)| (m.clone(), d.clone()))
        .collect();
    if let Some(cycle) = find_cycle(&domain) {
        panic!("import cycle between top-level modules: {}", cycle.join(" → "));
    }
}

#[test]
fn no_domain_module_imports_the_application_layer() {
    let graph = import_graph(&src_dir());
    for (module, deps) in &graph {
        if APPLICATION.contains(&module.as_str()) {
            continue;
        }
        for up in APPLICATION {
            assert!(
                !deps.contains(*up),
                "domain module `{module}` imports the application layer `{up}`"
            );
        }
    }
    let train = graph.get("train").expect("src/train");
    assert!(!train.contains("experiments"), "`train` imports `experiments` (an upward import)");
}

#[test]
fn no_source_file_is_over_the_line_budget() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = fs::read_to_string(f).ok()?.lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "source files over {MAX_LINES} lines: {long:?}");
}

//! The README's Commands table is the contract of what each command writes, and its "Output
//! files" tables the contract of what is in them. For every command that writes a run
//! directory, one run through the binary checks:
//! - both ways, the entries: each file of the row's first code span is written, and each entry
//!   the run writes is named in the row (a `<name>` part of a pattern stands for any text, a
//!   trailing `/` names a directory);
//! - every CSV it writes: its header is the README's columns for that file, in order;
//! - every `metrics.jsonl` in it or its subdirectories: each line's keys are the README's fields,
//!   in order, the first group always and the later groups only as a whole;
//! - its summary.json: the top-level keys of the README's row, the same way (in any order), and
//!   every object inside it (at any depth) against the README's nested-objects table.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{batchscope, stderr};
use common::tmpdir;

fn readme() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&p).expect("read README.md")
}

/// The cells of a Markdown table row (`\|` inside a cell is not a separator).
fn cells(row: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = row.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("a cell").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("a cell").push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
}

/// The "writes" cell of the Commands row of `command`.
fn writes_cell(text: &str, command: &str) -> String {
    let head = format!("| `batchscope {command}");
    let row = text
        .lines()
        .find(|l| l.starts_with(&head) && matches!(l[head.len()..].chars().next(), Some(' ' | '`')))
        .unwrap_or_else(|| panic!("no Commands row for `batchscope {command}` in README.md"));
    let cells = cells(row);
    assert_eq!(cells.len(), 3, "the row of {command} has 3 cells: {row}");
    cells[2].clone()
}

/// The code spans of a cell, in order.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// A name of the table: literal text, or a prefix and suffix around one `<...>` part.
struct Pattern {
    prefix: String,
    suffix: String,
    wild: bool,
}

impl Pattern {
    fn new(token: &str) -> Pattern {
        match (token.find('<'), token.find('>')) {
            (Some(a), Some(b)) if a < b => {
                Pattern { prefix: token[..a].into(), suffix: token[b + 1..].into(), wild: true }
            }
            _ => Pattern { prefix: token.into(), suffix: String::new(), wild: false },
        }
    }
    fn matches(&self, name: &str) -> bool {
        match self.wild {
            false => name == self.prefix,
            true => {
                name.len() > self.prefix.len() + self.suffix.len()
                    && name.starts_with(&self.prefix)
                    && name.ends_with(&self.suffix)
            }
        }
    }
}

/// The entries of a run directory: files by name, directories with a trailing `/`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the run directory")
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                format!("{name}/")
            } else {
                name
            }
        })
        .collect();
    names.sort();
    names
}

/// Run `batchscope command args... --out DIR` and hold DIR against the README row of `command`.
fn check(command: &str, args: &[&str], env: &[(&str, &Path)]) {
    // One scratch directory per call: tests of one command run side by side.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = tmpdir(&format!("{command}-{call}"));
    let out = scratch.join("run");
    let mut c = batchscope(&format!("writes-{command}"));
    c.arg(command).args(args).arg("--out").arg(&out);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run batchscope");
    assert!(o.status.success(), "batchscope {command} {args:?}: {}", stderr(&o));

    let cell = writes_cell(&readme(), command);
    let spans = code_spans(&cell);
    let required: Vec<&str> = spans.first().map(|s| s.split_whitespace().collect()).unwrap_or_default();
    let named: Vec<Pattern> =
        spans.iter().flat_map(|s| s.split_whitespace()).map(Pattern::new).collect();
    let written = entries(&out);
    let missing: Vec<&&str> = required.iter().filter(|r| !written.iter().any(|w| w == *r)).collect();
    assert!(
        missing.is_empty(),
        "{command}: the README says it writes {missing:?}; it wrote {written:?}"
    );
    let unnamed: Vec<&String> = written.iter().filter(|w| !named.iter().any(|p| p.matches(w))).collect();
    assert!(
        unnamed.is_empty(),
        "{command} wrote {unnamed:?}, which its README row does not name: {cell}"
    );
    for name in written.iter().filter(|w| w.ends_with(".csv")) {
        check_csv_header(&out.join(name), name);
    }
    let kind = if command == "rnn" { "rnn" } else { "train" };
    for jsonl in metrics_files(&out) {
        check_metrics_keys(&jsonl, kind);
    }
    // A sweep of several precisions writes another summary (the `sweep --precision` row).
    let row = match command == "sweep" && args.contains(&"--precision") {
        true => format!("{command} --precision"),
        false => command.to_string(),
    };
    check_summary_keys(&out.join("summary.json"), &row);
}

/// The top-level keys of a summary.json against the README's row `row` of the summary table,
/// then every object inside it against the nested-objects table ([`check_nested`]).
fn check_summary_keys(path: &Path, row: &str) {
    let text = readme();
    let cells = table_rows(&text, "| command | keys |")
        .into_iter()
        .find(|c| c[0] == row)
        .unwrap_or_else(|| panic!("the README's summary.json table has no row `{row}`"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read summary.json")).expect("JSON");
    let keys: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
    check_key_groups(&keys, &cells[1], row);
    let nested = table_rows(&text, "| object | keys |");
    check_nested(&v, "", row, &nested);
}

/// The body rows of the README table whose header row is `head`, as cells.
fn table_rows(text: &str, head: &str) -> Vec<Vec<String>> {
    let start = text.find(head).unwrap_or_else(|| panic!("no table `{head}` in README.md"));
    text[start..].lines().skip(2).take_while(|l| l.starts_with('|')).map(cells).collect()
}

/// An object's keys against a README cell of key groups: every key of the first code span, and
/// the later spans only whole. Spans that name a setting or a flag (`train.workers`, `--mpi`)
/// are no keys.
fn check_key_groups(keys: &[&str], cell: &str, what: &str) {
    let groups: Vec<Vec<&str>> = code_spans(cell)
        .into_iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>())
        .filter(|g| !g.iter().any(|k| k.starts_with("--") || k.contains('.') || k.contains('=')))
        .collect();
    let mut keys = keys.to_vec();
    let always = &groups[0];
    let missing: Vec<&&str> = always.iter().filter(|k| !keys.contains(k)).collect();
    assert!(missing.is_empty(), "{what}: summary.json lacks {missing:?} of the README's keys");
    keys.retain(|k| !always.contains(k));
    for g in &groups[1..] {
        let present = g.iter().filter(|k| keys.contains(k)).count();
        assert!(present == 0 || present == g.len(), "{what}: summary.json has part of the group {g:?}");
        keys.retain(|k| !g.contains(k));
    }
    assert!(keys.is_empty(), "{what}: summary.json keys {keys:?} are not in the README's row");
}

/// Every object inside `v` (reached by `path`: `.key`, `[]` for each array element) against the
/// README row of the nested-objects table that names `<row> <path>`: its key groups, or nothing
/// below it where the row says "a map" (its keys are data).
fn check_nested(v: &serde_json::Value, path: &str, row: &str, table: &[Vec<String>]) {
    match v {
        serde_json::Value::Object(map) => {
            if !path.is_empty() {
                let name = format!("{row} {path}");
                let cells = table
                    .iter()
                    .find(|c| code_spans(&c[0]).contains(&name.as_str()))
                    .unwrap_or_else(|| panic!("summary.json has `{name}`, which the README's nested-objects table does not name"));
                if cells[1].starts_with("a map") {
                    return;
                }
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                check_key_groups(&keys, &cells[1], &name);
            }
            for (k, x) in map {
                let inner = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                check_nested(x, &inner, row, table);
            }
        }
        serde_json::Value::Array(items) => {
            for x in items {
                check_nested(x, &format!("{path}[]"), row, table);
            }
        }
        _ => {}
    }
}

/// The row of the README table that starts `| file | columns |` (or `| run | fields |`) whose
/// first cell names `name` in a code span.
fn output_row(text: &str, head: &str, name: &str) -> Vec<String> {
    table_rows(text, head)
        .into_iter()
        .find(|c| {
            code_spans(&c[0]).iter().any(|s| Pattern::new(s).matches(name)) || c[0].starts_with(name)
        })
        .unwrap_or_else(|| panic!("the README's `{head}` table has no row for {name}"))
}

/// A CSV's header against the README's columns for its file: the first code span, or it and
/// the second (the columns an option adds).
fn check_csv_header(path: &Path, name: &str) {
    let text = std::fs::read_to_string(path).expect("read csv");
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split(',').collect();
    let row = output_row(&readme(), "| file | columns |", name);
    let spans = code_spans(&row[1]);
    let base: Vec<&str> = spans.first().map(|s| s.split_whitespace().collect()).unwrap_or_default();
    let mut with_extra = base.clone();
    if let Some(extra) = spans.get(1) {
        with_extra.extend(extra.split_whitespace());
    }
    assert!(
        header == base || header == with_extra,
        "{name}: header {header:?}, the README says {base:?} (or then {:?})",
        &with_extra[base.len()..]
    );
}

/// Every `metrics.jsonl` under `dir`.
fn metrics_files(dir: &Path) -> Vec<PathBuf> {
    let files = common::cli::snapshot(dir).into_keys();
    files.filter(|p| p.file_name().is_some_and(|n| n == "metrics.jsonl")).collect()
}

/// The top-level keys of a JSON object, in the order written.
fn keys_in_order(line: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert!(v.is_object(), "not an object: {line}");
    let (mut keys, mut depth, mut in_str, mut esc, mut cur) =
        (Vec::new(), 0, false, false, String::new());
    let after_key = |depth: i32, cur: &str, rest: &str| {
        depth == 1 && !cur.is_empty() && rest.trim_start().starts_with(':')
    };
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => {
                    in_str = false;
                    if after_key(depth, &cur, &line[i + 1..]) {
                        keys.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                }
                (false, _) => cur.push(c as char),
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    keys
}

/// Each line of a metrics.jsonl against the README's fields of `kind` (`train` or `rnn`): the
/// first code span in order, then whole later spans, in their order.
fn check_metrics_keys(path: &Path, kind: &str) {
    let row = output_row(&readme(), "| run | fields |", kind);
    let spans: Vec<Vec<String>> = code_spans(&row[1])
        .iter()
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        // Spans that name a setting (`train.workers`, `model.precision = "f16"`) are no fields.
        .filter(|v: &Vec<String>| !v.iter().any(|k| k.contains('.') || k.contains('=')))
        .collect();
    let text = std::fs::read_to_string(path).expect("read metrics.jsonl");
    assert!(!text.is_empty(), "{} is empty", path.display());
    for line in text.lines() {
        let keys = keys_in_order(line);
        let mut rest: &[String] = &keys;
        let base = &spans[0];
        assert!(
            rest.starts_with(base),
            "{}: keys {keys:?} do not start with the README's {base:?}",
            path.display()
        );
        rest = &rest[base.len()..];
        for group in &spans[1..] {
            if rest.starts_with(group) {
                rest = &rest[group.len()..];
            }
        }
        assert!(
            rest.is_empty(),
            "{}: keys {rest:?} of a line are not README fields in order: {line}",
            path.display()
        );
    }
}

fn config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name).display().to_string()
}

/// The tiny MLP config, written once per test.
fn tiny(tag: &str) -> String {
    let d = tmpdir(&format!("{tag}-config"));
    let p: PathBuf = d.join("tiny.toml");
    std::fs::write(&p, common::tiny_config(1, 4, 1)).expect("write config");
    p.display().to_string()
}

#[test]
fn the_pattern_and_row_readers_read_the_table() {
    let row = "| `batchscope x --backend auto\\|cpu` | what | `a.csv b_<k>.svg`, and `<v>/` |";
    let row = cells(row);
    assert_eq!(row.len(), 3);
    let spans = code_spans(&row[2]);
    assert_eq!(spans, ["a.csv b_<k>.svg", "<v>/"]);
    assert!(Pattern::new("b_<k>.svg").matches("b_f16.svg"));
    assert!(!Pattern::new("b_<k>.svg").matches("b_.svg"));
    assert!(!Pattern::new("b_<k>.svg").matches("b_f16.csv"));
    assert!(Pattern::new("<v>/").matches("tanh_1.0/"));
    assert!(!Pattern::new("<v>/").matches("tanh_1.0"));
    assert!(Pattern::new("a.csv").matches("a.csv") && !Pattern::new("a.csv").matches("a.csvx"));
}

#[test]
fn train_writes_what_the_readme_says() {
    // With the curvature monitor on: its plot is one of the files the row names.
    let args = [
        "--config",
        &tiny("train"),
        "--set",
        "monitor.curvature_every=2",
        "--backend",
        "cpu",
        "--quiet",
    ];
    check("train", &args, &[]);
    // Two workers in f16: the data_parallel object and the loss scaler's keys.
    let args = [
        "--config",
        &tiny("train-workers"),
        "--workers",
        "2",
        "--set",
        "model.precision=\"f16\"",
        "--backend",
        "cpu",
        "--quiet",
    ];
    check("train", &args, &[]);
}

#[test]
fn sweep_writes_what_the_readme_says() {
    check("sweep", &["--config", &tiny("sweep"), "--backend", "cpu", "--quiet"], &[]);
}

#[test]
fn sweep_with_workers_and_precisions_writes_what_the_readme_says() {
    let workers =
        ["--config", &tiny("sweep-workers"), "--backend", "cpu", "--workers", "1,2", "--quiet"];
    check("sweep", &workers, &[]);
    let precisions =
        ["--config", &tiny("sweep-precision"), "--backend", "cpu", "--precision", "f32,f16", "--quiet"];
    check("sweep", &precisions, &[]);
}

#[test]
fn profile_writes_what_the_readme_says() {
    check(
        "profile",
        &["--config", &tiny("profile"), "--backend", "cpu", "--batch", "4", "--quiet"],
        &[],
    );
}

#[test]
fn compare_writes_what_the_readme_says() {
    check("compare", &["--config", &tiny("compare"), "--max-batch", "2", "--quiet"], &[]);
}

#[test]
fn curvature_writes_what_the_readme_says() {
    check("curvature", &["--config", &tiny("curvature"), "--backend", "cpu", "--quiet"], &[]);
}

/// With `--batch`, on a linear regression: batches.csv, batch_spread.svg and the summary's
/// `batches[]` and `reference` objects, which the README did not name.
#[test]
fn curvature_on_batches_of_a_linear_model_writes_what_the_readme_says() {
    let d = tmpdir("curvature-linear-config");
    let p = d.join("linear.toml");
    let text = "[model]\nhidden = []\nactivation = \"identity\"\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\nn_train = 128\nn_val = 16\ndim = 4\noutputs = 1\n";
    std::fs::write(&p, text).expect("write config");
    let args = ["--config", p.to_str().expect("path"), "--backend", "cpu", "--batch", "16", "--quiet"];
    check("curvature", &args, &[]);
}

#[test]
fn noise_writes_what_the_readme_says() {
    let args = ["--config", &tiny("noise"), "--backend", "cpu", "--max-n", "64", "--quiet"];
    check("noise", &args, &[]);
}

#[test]
fn rnn_writes_what_the_readme_says() {
    check("rnn", &["--config", &config("long_term.toml"), "--backend", "cpu", "--quiet"], &[]);
}

#[test]
fn depth_writes_what_the_readme_says() {
    check("depth", &["--config", &config("deep_tanh.toml"), "--backend", "cpu", "--quiet"], &[]);
}

#[test]
fn landscape_writes_what_the_readme_says() {
    check("landscape", &["--config", &config("landscape.toml"), "--backend", "cpu", "--quiet"], &[]);
}

#[test]
fn time_to_target_writes_what_the_readme_says() {
    let args = ["--config", &config("time_to_target.toml"), "--backend", "cpu", "--quiet"];
    check("time-to-target", &args, &[]);
}

#[test]
fn gemm_writes_what_the_readme_says() {
    // Both precisions and the ceilings: every object gemm's summary can hold on any adapter.
    check("gemm", &["--sizes", "32", "--precision", "f32,f16", "--ceilings"], &[]);
}

#[test]
fn tune_writes_what_the_readme_says() {
    let cache = tmpdir("tune-cache").join("autotune.json");
    check(
        "tune",
        &["--config", &tiny("tune"), "--batch-sizes", "4"],
        &[("BATCHSCOPE_AUTOTUNE_CACHE", &cache)],
    );
}

//! The `BATCHSCOPE_*` environment variables (src/backend/knobs.rs): every one the sources,
//! scripts and README name is in the table, the README lists the table, and the binary refuses
//! a misspelled name or a malformed value with one error line before it does anything, and
//! records the set ones in a measuring command's summary.json.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use batchscope::backend::knobs::{find, KNOBS, PREFIX};
use common::cli::{assert_clean_error, stderr};
use common::tmpdir;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| ["rs", "sh", "py", "md", "toml"].contains(&x.to_str().unwrap_or("")))
        {
            out.push(p);
        }
    }
}

/// Every `BATCHSCOPE_[A-Z0-9_]+` token of `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let tail = &rest[at + PREFIX.len()..];
        let len = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if len > 0 {
            out.insert(format!("{PREFIX}{}", &tail[..len]));
        }
        rest = &tail[len..];
    }
    out
}

#[test]
fn every_variable_the_sources_and_scripts_name_is_in_the_table() {
    let mut files = vec![root().join("README.md")];
    for d in ["src", "tests", "benches", ".ci", "docs", "configs"] {
        files_under(&root().join(d), &mut files);
    }
    // The two files that name wrong variables on purpose.
    let own = [root().join("src/backend/knobs.rs"), root().join("tests/knobs.rs")];
    let mut unknown = Vec::new();
    for f in files.iter().filter(|f| !own.contains(f)) {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for name in names_in(&text) {
            if find(&name).is_none() {
                unknown.push(format!("{name} in {}", f.display()));
            }
        }
    }
    assert!(files.len() > 100, "the sources were not found: {} files", files.len());
    assert!(unknown.is_empty(), "variables missing from src/backend/knobs.rs's KNOBS: {unknown:#?}");
}

#[test]
fn the_readme_lists_every_variable() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section =
        readme.split("## Environment variables").nth(1).expect("an \"Environment variables\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    for k in KNOBS {
        assert!(section.contains(&format!("| `{}` |", k.name)), "README's table lacks {}", k.name);
    }
}

fn sweep_cpu(dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, common::tiny_config(4, 8, 1)).expect("config");
    let out = dir.join("run");
    let mut c = common::cli::batchscope("knobs");
    c.args(["sweep", "--backend", "cpu", "--config"]).arg(&cfg).arg("--out").arg(&out);
    // Only what the test sets: none of the caller's own.
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with(PREFIX)) {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run batchscope")
}

#[test]
fn a_misspelled_variable_or_a_malformed_value_stops_the_command_before_it_runs() {
    let d = tmpdir("refused");
    for (env, needles) in [
        (
            ("BATCHSCOPE_COOP_LOAD", "vec8"),
            &["BATCHSCOPE_COOP_LOAD ", "did you mean BATCHSCOPE_COOP_LOADS?"][..],
        ),
        (
            ("BATCHSCOPE_COOP_LOADS", "vec16"),
            &["BATCHSCOPE_COOP_LOADS=\"vec16\"", "halves, vec4 or vec8"][..],
        ),
        (("BATCHSCOPE_SKINNY_MAX_K", "ten"), &["BATCHSCOPE_SKINNY_MAX_K", "a whole number"][..]),
        (("BATCHSCOPE_F16_KERNEL", "coop_v16"), &["BATCHSCOPE_F16_KERNEL", "coop_staged"][..]),
        (("BATCHSCOPE_MPI_TIMEOUT", "1e20"), &["BATCHSCOPE_MPI_TIMEOUT", "at most 1e9"][..]),
        // A misspelt BLAS, or a file that is no library, ran on the built-in kernels.
        (("BATCHSCOPE_BLAS", "openblsa"), &["BATCHSCOPE_BLAS=\"openblsa\"", "a shared library"][..]),
        (("BATCHSCOPE_BLAS", "MKL"), &["BATCHSCOPE_BLAS", "auto, mkl, openblas"][..]),
        (("BATCHSCOPE_BLAS", "/etc/passwd"), &["BATCHSCOPE_BLAS", "a path that exists"][..]),
        (("BATCHSCOPE_BLAS", "/nonexistent/libmkl_rt.so.2"), &["BATCHSCOPE_BLAS"][..]),
    ] {
        let o = sweep_cpu(&d, &[env]);
        assert_clean_error(&o, needles);
        assert!(!d.join("run").exists(), "{env:?}: a run directory was made");
    }
}

#[test]
fn the_set_variables_are_announced_and_recorded_in_the_summary() {
    let d = tmpdir("recorded");
    let o = sweep_cpu(&d, &[("BATCHSCOPE_SPLITK", "0"), ("BATCHSCOPE_SPIRV_VAL", "/nowhere/spirv-val")]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.lines().any(|l| l == "environment: BATCHSCOPE_SPLITK=0"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/summary.json")).expect("summary"))
            .expect("json");
    // The tooling variable is no setting of the run: not recorded.
    assert_eq!(summary["environment"], serde_json::json!({"BATCHSCOPE_SPLITK": "0"}));
}

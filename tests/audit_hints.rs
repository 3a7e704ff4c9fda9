//! Messages found by the audit of report 76 that sent the user the wrong way: a follow-up
//! command that dropped the config, errors that blamed the file or a variant for a `--set`,
//! and hints that did not fit their case.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::cli::{assert_clean_error, stderr};
use common::tmpdir;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `args` with `--out` under a new scratch directory `name`: the scratch directory and the output.
fn run_out(name: &str, args: &[&str]) -> (PathBuf, Output) {
    let dir = tmpdir(name);
    let out = dir.join("run");
    let mut argv = args.to_vec();
    argv.extend(["--out", s(&out)]);
    let o = common::cli::batchscope("audit-hints").args(&argv).output().expect("run batchscope");
    (dir, o)
}

/// `noise` printed `batchscope sweep --policy time_to_target:B` alone: pasted, it swept the
/// embedded default model with the B_noise of another. It repeats the config, each `--set`
/// (shell-quoted) and the backend.
#[test]
fn noise_prints_a_sweep_of_the_same_model() {
    let dir = tmpdir("noise-next");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, common::tiny_config(1, 2, 1)).expect("config");
    let args = ["noise", "--backend", "cpu", "--quiet", "--max-n", "4", "--draws", "4"];
    let set = ["--config", s(&config), "--set", "model.hidden=[6]", "--set", "data.seed=3"];
    let (scratch, o) = run_out("noise-next-run", &[&args[..], &set].concat());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = out.lines().find(|l| l.starts_with("time_to_target policy:")).expect("the policy line");
    let want = format!(
        "batchscope sweep --config {} --set 'model.hidden=[6]' --set data.seed=3 --backend cpu --policy time_to_target:",
        s(&config)
    );
    assert!(line.contains(&want), "`{line}` should contain `{want}`");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// An unknown section given by `--set` was blamed on the config file ("config
/// configs/default.toml (embedded): `trian`: unknown field"), where an unknown key named its
/// `--set`: it names the `--set` too, with the embedded default and with a file, and the
/// section it is closest to.
#[test]
fn an_unknown_section_from_set_names_the_set() {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml");
    for config in [&[][..], &["--config", s(&quickstart)]] {
        let args = [&["train", "--backend", "cpu", "--set", "trian.lr=0.1"][..], config].concat();
        let (dir, o) = run_out("unknown-section-set", &args);
        assert_clean_error(&o, &["`trian`", "(given by --set trian.lr)", "did you mean `train`?"]);
        assert!(!dir.join("run").exists(), "{args:?}: no run directory");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// An unknown section written in a config file: its line and the section it is closest to.
#[test]
fn an_unknown_section_in_a_file_gets_a_suggestion() {
    let dir = tmpdir("unknown-section-file");
    let config = dir.join("typo.toml");
    std::fs::write(&config, "[model]\nhidden = [8]\n[swep]\nmin_batch = 2\n").expect("config");
    let (scratch, o) =
        run_out("unknown-section-file-run", &["train", "--backend", "cpu", "--config", s(&config)]);
    assert_clean_error(&o, &["`swep`", "(line 3)", "did you mean `sweep`?"]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A `file:` direction that does not exist was "checkpoint … does not exist (is it a checkpoint
/// of this config's model?)": it names the key and the direction, without the model hint.
#[test]
fn a_missing_direction_file_names_its_key() {
    let set = "landscape.line_directions=[\"gradient\",\"file:/nonexist.safetensors\"]";
    let (dir, o) =
        run_out("missing-direction", &["landscape", "--backend", "cpu", "--quiet", "--set", set]);
    assert_clean_error(
        &o,
        &["`landscape.line_directions`: a file: direction", "/nonexist.safetensors does not exist"],
    );
    assert!(!stderr(&o).contains("this config's model"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An MLP config given to `rnn` was "[[variant]] run: `data`: unknown field", of a file with no
/// `[[variant]]` ("run" is the name of its one run): it says which commands read `[data]`, as
/// an RNN section given to `train` does, and names no variant. A file without variants names
/// none in its value errors either.
#[test]
fn rnn_of_an_mlp_config_names_who_reads_the_section() {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml");
    let (dir, o) = run_out("rnn-mlp-config", &["rnn", "--backend", "cpu", "--config", s(&quickstart)]);
    assert_clean_error(&o, &["a [data] section is read by the MLP commands", "`train`", "(line 9)"]);
    assert!(!stderr(&o).contains("[[variant]]"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
    let dir = tmpdir("rnn-no-variant");
    let config = dir.join("rnn.toml");
    std::fs::write(&config, "[rnn]\nhidden = 0\n").expect("config");
    let (scratch, o) =
        run_out("rnn-no-variant-run", &["rnn", "--backend", "cpu", "--config", s(&config)]);
    assert_clean_error(&o, &["`rnn.hidden`", "must be ≥ 1"]);
    assert!(!stderr(&o).contains("[[variant]]"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `depth --set depth.layers=2` blamed the embedded file's first `[[variant]]`
/// (`tanh_gain_1.0`) for the user's own `--set`: it names the `--set`. Where `model.hidden`
/// gives the layers, the error names what gave it: a variant's `set` list, which wins over a
/// `--set` of the key in its run.
#[test]
fn depth_names_what_set_too_few_layers() {
    let (dir, o) =
        run_out("depth-layers-set", &["depth", "--backend", "cpu", "--set", "depth.layers=2"]);
    assert_clean_error(&o, &["`depth.layers` set on the command line", "at least 3, got 2"]);
    assert!(!stderr(&o).contains("[[variant]]"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
    let dir = tmpdir("depth-variant-hidden");
    let config = dir.join("depth.toml");
    let text = "[depth]\nlayers = 0\n[model]\nhidden = [4, 4, 4]\n\
                [[variant]]\nname = \"a\"\nset = [\"model.hidden=[4]\"]\n\
                [[variant]]\nname = \"b\"\nset = [\"model.activation=\\\"relu\\\"\"]\n";
    std::fs::write(&config, text).expect("config");
    let args = ["depth", "--backend", "cpu", "--config", s(&config), "--set", "model.hidden=[5,5,5]"];
    let (scratch, o) = run_out("depth-variant-hidden-run", &args);
    assert_clean_error(&o, &["[[variant]] a: `model.hidden` has 1 hidden layer,", "at least 3"]);
    assert!(!stderr(&o).contains("set on the command line"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A `data.dim` the `.npy` features contradict said "or leave it out to take it from the
/// file", which the embedded default (it writes `dim = 784`) makes impossible: the hint is
/// `data.dim = 0`, and following it runs.
#[test]
fn a_wrong_npy_dim_hints_a_way_that_works() {
    let dir = tmpdir("npy-dim-hint");
    let x: Vec<u8> = (0..120).flat_map(|i| ((i % 11) as f32 / 11.0).to_le_bytes()).collect();
    let y: Vec<u8> = (0..40i64).flat_map(|i| (i % 3).to_le_bytes()).collect();
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    let npy = common::cli::npy_bytes;
    std::fs::write(&xp, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (40, 3), }", &x))
        .expect("x");
    std::fs::write(&yp, npy("{'descr': '<i8', 'fortran_order': False, 'shape': (40,), }", &y))
        .expect("y");
    let (features, labels) =
        (format!("data.features=\"{}\"", s(&xp)), format!("data.labels=\"{}\"", s(&yp)));
    let train = [
        &["train", "--backend", "cpu", "--quiet", "--set", "data.kind=\"npy\""][..],
        &[
            "--set",
            &features,
            "--set",
            &labels,
            "--set",
            "model.hidden=[4]",
            "--set",
            "train.steps=2",
            "--set",
            "train.batch_size=8",
        ],
    ]
    .concat();
    let (scratch, o) = run_out("npy-dim-hint-refused", &train);
    assert_clean_error(
        &o,
        &["`data.dim`", "= 784", "holds 3 features", "or data.dim = 0 to take it from the file"],
    );
    assert!(!stderr(&o).contains("leave it out"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&scratch);
    let (scratch, o) = run_out("npy-dim-hint-run", &[&train[..], &["--set", "data.dim=0"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&scratch);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Bad input to the binary, table-driven: every case exits 2 with exactly one `error:` line on
//! stderr, never panics, and leaves an existing run directory (one tiny CPU train, made once)
//! byte for byte as it was. Plus the run-directory safety fixes that are not errors: `--out`
//! through `..` lands beside the run, a resume of a finished run changes nothing, and the
//! divergence guard's step and checkpoint.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::cli::{assert_clean_error, snapshot};
use common::tmpdir;

fn tiny_toml() -> String {
    common::tiny_config(8, 16, 1)
}

/// The MLP commands (the ones that read a `Config`), with flags that keep them small.
const MLP_COMMANDS: [&str; 7] =
    ["train", "sweep", "compare", "profile", "curvature", "noise", "time-to-target"];
/// The commands with their own config schema (embedded defaults).
const OWN_CONFIG_COMMANDS: [&str; 3] = ["rnn", "depth", "landscape"];

fn bin() -> Command {
    common::cli::batchscope("bad-input")
}

fn run(args: &[String]) -> Output {
    bin().args(args).output().expect("run batchscope")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The shared fixture: a scratch directory, the tiny config and one finished run in `run`.
struct Fixture {
    dir: PathBuf,
    tiny: String,
    run: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tmpdir("fixture");
        let tiny = dir.join("tiny.toml");
        std::fs::write(&tiny, tiny_toml()).expect("write tiny.toml");
        let run_dir = dir.join("run");
        let o = run(&args(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            &s(&tiny),
            "--out",
            &s(&run_dir),
        ]));
        assert!(o.status.success(), "fixture train: {}", String::from_utf8_lossy(&o.stderr));
        Fixture { dir, tiny: s(&tiny), run: run_dir }
    })
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

/// One bad invocation and a substring its error line must hold (`""`: any).
struct Case {
    name: String,
    args: Vec<String>,
    needle: &'static str,
}

fn case(name: impl Into<String>, a: Vec<String>, needle: &'static str) -> Case {
    Case { name: name.into(), args: a, needle }
}

/// Exit 2, exactly one `error:` line (holding the needle), no panic, the run untouched.
fn check(cases: &[Case]) {
    let f = fixture();
    let before = snapshot(&f.run);
    let mut failures = Vec::new();
    for c in cases {
        let o = run(&c.args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        let ok = o.status.code() == Some(2)
            && !err.contains("panicked")
            && errors.len() == 1
            && errors[0].contains(c.needle);
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, stderr:\n{err}\nargs: {:?}",
                c.name,
                o.status.code(),
                c.args
            ));
        }
        assert!(snapshot(&f.run) == before, "{}: the existing run directory changed", c.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `cmd --backend cpu --quiet` plus the small-model flags of `cmd`.
fn base(cmd: &str) -> Vec<String> {
    // compare runs both backends: no --backend.
    let mut a = if cmd == "compare" {
        args(&[cmd, "--quiet"])
    } else {
        args(&[cmd, "--backend", "cpu", "--quiet"])
    };
    match cmd {
        "time-to-target" => a.extend(args(&["--set", "train.target_val_error=0.5"])),
        "profile" => a.extend(args(&["--batch", "4"])),
        "noise" => a.extend(args(&["--max-n", "4", "--draws", "2", "--no-curvature"])),
        "curvature" => {
            a.extend(args(&["--lanczos-steps", "4", "--slq-runs", "1", "--power-iters", "4"]))
        }
        _ => {}
    }
    a
}

fn with(mut a: Vec<String>, more: &[&str]) -> Vec<String> {
    a.extend(args(more));
    a
}

#[test]
fn every_command_rejects_missing_configs_unknown_keys_bad_sets_and_out_in_a_run() {
    let f = fixture();
    let d = tmpdir("commands");
    let missing = s(&d.join("missing.toml"));
    let unknown = d.join("unknown.toml");
    std::fs::write(&unknown, "[train]\nlearning_rate = 0.1\n").expect("write");
    let unknown = s(&unknown);
    let into_run = s(&f.run.join("metrics.jsonl"));
    let mut cases = Vec::new();
    for cmd in MLP_COMMANDS.iter().chain(&OWN_CONFIG_COMMANDS) {
        let out = s(&d.join(format!("out-{cmd}")));
        let tiny: Vec<&str> =
            if MLP_COMMANDS.contains(cmd) { vec!["--config", &f.tiny] } else { vec![] };
        cases.push(case(
            format!("{cmd}: missing config"),
            with(base(cmd), &["--config", &missing, "--out", &out]),
            "missing.toml",
        ));
        cases.push(case(
            format!("{cmd}: unknown key"),
            with(base(cmd), &["--config", &unknown, "--out", &out]),
            "learning_rate",
        ));
        cases.push(case(
            format!("{cmd}: bad --set"),
            with(with(base(cmd), &tiny), &["--set", "nonsense", "--out", &out]),
            "nonsense",
        ));
        cases.push(case(
            format!("{cmd}: --set of an unknown key"),
            with(with(base(cmd), &tiny), &["--set", "train.no_such_key=1", "--out", &out]),
            "no_such_key",
        ));
        cases.push(case(
            format!("{cmd}: --out is a file inside an existing run"),
            with(with(base(cmd), &tiny), &["--out", &into_run]),
            "metrics.jsonl",
        ));
    }
    check(&cases);
    for cmd in MLP_COMMANDS.iter().chain(&OWN_CONFIG_COMMANDS) {
        assert!(!d.join(format!("out-{cmd}")).exists(), "{cmd}: a failed config made its run directory");
    }
}

#[test]
fn missing_checkpoints_resumes_and_inits_are_errors() {
    let f = fixture();
    let d = tmpdir("missing-ckpt");
    let nope = s(&d.join("nope.safetensors"));
    let out = |n: &str| s(&d.join(n));
    let cases = vec![
        case(
            "train --init missing",
            with(base("train"), &["--config", &f.tiny, "--init", &nope, "--out", &out("a")]),
            "nope.safetensors",
        ),
        case("train --resume missing dir", with(base("train"), &["--resume", &out("no-run")]), "no-run"),
        case(
            "train --resume of a non-run dir",
            with(base("train"), &["--resume", &s(&d)]),
            "config.toml",
        ),
        case(
            "noise --checkpoint missing",
            with(base("noise"), &["--config", &f.tiny, "--checkpoint", &nope, "--out", &out("b")]),
            "nope.safetensors",
        ),
        case(
            "curvature --checkpoint missing",
            with(base("curvature"), &["--config", &f.tiny, "--checkpoint", &nope, "--out", &out("c")]),
            "nope.safetensors",
        ),
        case(
            "landscape --checkpoint missing",
            with(base("landscape"), &["--checkpoint", &nope, "--out", &out("e")]),
            "nope.safetensors",
        ),
        case(
            "train --resume with --out",
            with(base("train"), &["--resume", &s(&f.run), "--out", &out("f")]),
            "--out",
        ),
    ];
    check(&cases);
}

#[test]
fn bad_flag_values_are_errors() {
    let f = fixture();
    let d = tmpdir("flags");
    let out = |n: &str| s(&d.join(n));
    let t = &f.tiny;
    let cases = vec![
        case(
            "sweep --min-batch 0",
            with(base("sweep"), &["--config", t, "--min-batch", "0", "--out", &out("a")]),
            "must be ≥ 1, got 0",
        ),
        case(
            "sweep --max-batch < min",
            with(
                base("sweep"),
                &["--config", t, "--min-batch", "16", "--max-batch", "4", "--out", &out("b")],
            ),
            "batch range",
        ),
        case(
            "sweep --policy nonsense",
            with(base("sweep"), &["--config", t, "--policy", "nonsense", "--out", &out("c")]),
            "nonsense",
        ),
        case(
            "compare --min-batch 0",
            with(base("compare"), &["--config", t, "--min-batch", "0", "--out", &out("d")]),
            "must be ≥ 1, got 0",
        ),
        case(
            "profile --batch 0",
            with(base("profile"), &["--config", t, "--batch", "0", "--out", &out("e")]),
            "batch",
        ),
        case(
            "train --backend nonsense",
            args(&["train", "--backend", "nonsense", "--config", t]),
            "nonsense",
        ),
        case(
            "sweep --adapter no-such",
            args(&[
                "sweep",
                "--backend",
                "gpu",
                "--quiet",
                "--adapter",
                "no-such-adapter",
                "--config",
                t,
                "--out",
                &out("f"),
            ]),
            "no-such-adapter",
        ),
        case(
            "train --set of an unknown key names the --set",
            with(base("train"), &["--config", t, "--set", "train.zzz=1", "--out", &out("f1")]),
            "given by --set train.zzz",
        ),
        // Keys of the experiments' own sections name the section and the --set that gave them.
        case(
            "landscape --set of an unknown key",
            with(base("landscape"), &["--set", "landscape.zzz=1", "--out", &out("f4")]),
            "`landscape.zzz`: unknown field `zzz`",
        ),
        case(
            "landscape --set of a wrong type names the --set",
            with(base("landscape"), &["--set", "landscape.points=\"a\"", "--out", &out("f5")]),
            "(given by --set landscape.points)",
        ),
        case(
            "depth --set of an unknown key names the --set",
            with(base("depth"), &["--set", "depth.zzz=0", "--out", &out("f6")]),
            "`depth.zzz`: unknown field `zzz`, expected `layers` or `width` (given by --set depth.zzz)",
        ),
        case(
            "rnn --set of an unknown key blames the command line, not a [[variant]]",
            with(base("rnn"), &["--set", "rnn.zzz=0", "--out", &out("f7")]),
            "long_term.toml (embedded): `rnn.zzz`",
        ),
        case(
            "train --workers 2 --adapter ,,",
            with(
                base("train"),
                &["--config", t, "--workers", "2", "--adapter", ",,", "--out", &out("f2")],
            ),
            "an empty entry",
        ),
        case(
            "train --workers 2 --adapter with an index past u64",
            args(&[
                "train",
                "--backend",
                "gpu",
                "--quiet",
                "--workers",
                "2",
                "--adapter",
                "0,18446744073709551616",
                "--config",
                t,
                "--out",
                &out("f3"),
            ]),
            "--adapter 18446744073709551616",
        ),
        case(
            "train out-of-range value",
            with(base("train"), &["--config", t, "--set", "train.lr=-0.5", "--out", &out("g")]),
            "train.lr",
        ),
        case(
            "train batch_size 0",
            with(base("train"), &["--config", t, "--set", "train.batch_size=0", "--out", &out("h")]),
            "train.batch_size",
        ),
        case(
            "train accumulate 0",
            with(base("train"), &["--config", t, "--set", "train.accumulate=0", "--out", &out("dp1")]),
            "train.accumulate",
        ),
        case(
            "train accumulate not dividing the batch",
            with(base("train"), &["--config", t, "--set", "train.accumulate=5", "--out", &out("dp2")]),
            "train.accumulate",
        ),
        case(
            "train --workers 0",
            with(base("train"), &["--config", t, "--workers", "0", "--out", &out("dp3")]),
            "--workers: worker counts must be in 1..=1024",
        ),
        case(
            "train --workers not dividing the batch",
            with(base("train"), &["--config", t, "--workers", "3", "--out", &out("dp4")]),
            "train.workers",
        ),
        case(
            "train --workers with accumulate not dividing the share",
            with(
                base("train"),
                &["--config", t, "--workers", "4", "--set", "train.accumulate=16", "--out", &out("dp5")],
            ),
            "train.accumulate",
        ),
        case(
            "sweep --precision f8",
            with(base("sweep"), &["--config", t, "--precision", "f8", "--out", &out("p1")]),
            "f8",
        ),
        case(
            "sweep --precision f16,f16",
            with(base("sweep"), &["--config", t, "--precision", "f16,f16", "--out", &out("p2")]),
            "twice",
        ),
        case(
            "train --precision f32,f16",
            with(base("train"), &["--config", t, "--precision", "f32,f16", "--out", &out("p3")]),
            "takes one precision",
        ),
        case(
            "compare --precision f32,f16",
            with(base("compare"), &["--config", t, "--precision", "f32,f16", "--out", &out("p4")]),
            "takes one precision",
        ),
        case(
            "rnn --precision f16",
            with(base("rnn"), &["--precision", "f16", "--out", &out("p6")]),
            "f32 only",
        ),
        case(
            "sweep --precision f32,f16 --workers 1,2",
            with(
                base("sweep"),
                &["--config", t, "--precision", "f32,f16", "--workers", "1,2", "--out", &out("p5")],
            ),
            "--workers",
        ),
        case(
            "sweep --workers 0",
            with(base("sweep"), &["--config", t, "--workers", "1,0", "--out", &out("dp6")]),
            "--workers",
        ),
        case(
            "overlay --out RUN/metrics.jsonl",
            args(&[
                "overlay",
                &s(&f.run),
                "--field",
                "train_loss",
                "--out",
                &s(&f.run.join("metrics.jsonl")),
            ]),
            "metrics.jsonl",
        ),
        case(
            "overlay --out RUN/loss.svg",
            args(&[
                "overlay",
                &s(&f.run),
                "--field",
                "train_loss",
                "--out",
                &s(&f.run.join("loss.svg")),
            ]),
            "loss.svg",
        ),
        case(
            "overlay of a non-run",
            args(&["overlay", &s(&d), "--out", &out("o.svg")]),
            "metrics.jsonl",
        ),
    ];
    check(&cases);
    assert!(f.run.join("loss.svg").exists(), "the fixture run has a loss.svg to protect");
}

#[test]
fn bad_configs_npy_and_checkpoints_are_errors() {
    use batchscope::data::npy::{write_npy_f32, write_npy_labels};
    let f = fixture();
    let d = tmpdir("files");
    let out = |n: &str| s(&d.join(n));
    let t = &f.tiny;
    let malformed = d.join("bad.toml");
    std::fs::write(&malformed, "[train\nlr = 1").expect("write");
    // .npy inputs: good features, labels with one out of range, float64, rank 3, short rows.
    let feats = d.join("x.npy");
    write_npy_f32(&feats, &[10, 3], &[0.5; 30]).expect("x");
    let labels = d.join("y.npy");
    write_npy_labels(&labels, &[0, 1, 2, 0, 1, 2, 0, 1, 2, 0]).expect("y");
    let bad_labels = d.join("yrange.npy");
    write_npy_labels(&bad_labels, &[0, 1, 2, 0, 1, 2, 0, 1, 2, 7]).expect("y");
    let rank3 = d.join("x3.npy");
    write_npy_f32(&rank3, &[10, 3, 1], &[0.5; 30]).expect("x3");
    let short = d.join("x9.npy");
    write_npy_f32(&short, &[9, 3], &[0.5; 27]).expect("x9");
    let f8 = d.join("x64.npy");
    common::cli::write_f64_npy(&f8);
    let targets = d.join("t.npy");
    write_npy_f32(&targets, &[10, 3], &[0.25; 30]).expect("t");
    let npy_cfg = |name: &str, x: &Path, y: &Path| {
        let p = d.join(name);
        std::fs::write(
            &p,
            format!(
                "[model]\nhidden = [4]\n[data]\nkind = \"npy\"\ndim = 3\nclasses = 3\nfeatures = \"{}\"\nlabels = \"{}\"\nval_fraction = 0.2\n[train]\nbatch_size = 2\nepochs = 1\n",
                x.display(),
                y.display()
            ),
        )
        .expect("write npy config");
        s(&p)
    };
    // Checkpoints: another shape (the fixture's with hidden = [5]), corrupted, truncated.
    let last = f.run.join("last.safetensors");
    let mut ck = std::fs::read(&last).expect("read last");
    let n = ck.len();
    ck[n - 3] ^= 0x5a;
    let corrupt = d.join("corrupt.safetensors");
    std::fs::write(&corrupt, &ck).expect("write");
    let trunc = d.join("trunc.safetensors");
    std::fs::write(&trunc, &ck[..n / 2]).expect("write");
    let afile = d.join("afile");
    std::fs::write(&afile, "x").expect("write");
    let train = |extra: &[&str]| with(base("train"), extra);
    let cases = vec![
        case("malformed config", train(&["--config", &s(&malformed), "--out", &out("a")]), "bad.toml"),
        case(
            "npy label out of range",
            train(&["--config", &npy_cfg("r.toml", &feats, &bad_labels), "--out", &out("b")]),
            "yrange.npy",
        ),
        case(
            "npy float64",
            train(&["--config", &npy_cfg("f8.toml", &f8, &labels), "--out", &out("c")]),
            "x64.npy",
        ),
        case(
            "npy rank 3",
            train(&["--config", &npy_cfg("r3.toml", &rank3, &labels), "--out", &out("d")]),
            "x3.npy",
        ),
        case(
            "npy rows disagree",
            train(&["--config", &npy_cfg("rows.toml", &short, &labels), "--out", &out("e")]),
            "",
        ),
        case(
            "npy missing file",
            train(&[
                "--config",
                &npy_cfg("miss.toml", &d.join("none.npy"), &labels),
                "--out",
                &out("f"),
            ]),
            "none.npy",
        ),
        case(
            "checkpoint of another shape",
            train(&[
                "--config",
                t,
                "--set",
                "model.hidden=[5]",
                "--init",
                &s(&last),
                "--out",
                &out("g"),
            ]),
            "layers.0.weight",
        ),
        case(
            "corrupted checkpoint",
            train(&["--config", t, "--init", &s(&corrupt), "--out", &out("h")]),
            "corrupt.safetensors",
        ),
        case(
            "truncated checkpoint",
            train(&["--config", t, "--init", &s(&trunc), "--out", &out("i")]),
            "trunc.safetensors",
        ),
        case(
            "curvature on a truncated checkpoint",
            with(base("curvature"), &["--config", t, "--checkpoint", &s(&trunc), "--out", &out("j")]),
            "trunc.safetensors",
        ),
        case(
            "unwritable --out (parent is a file)",
            train(&["--config", t, "--out", &s(&afile.join("sub"))]),
            "afile",
        ),
        case("--resume of a file", train(&["--resume", &s(&afile)]), "afile"),
        // Refused before a run directory exists (each used to fail once the run had started,
        // leaving config.toml and metrics.jsonl behind, or after training, for the landscape).
        case(
            "npy f32 targets with softmax_xent (train)",
            train(&["--config", &npy_cfg("t.toml", &feats, &targets), "--out", &out("k")]),
            "needs integer class labels",
        ),
        case(
            "npy f32 targets with softmax_xent (sweep)",
            with(
                base("sweep"),
                &["--config", &npy_cfg("t2.toml", &feats, &targets), "--out", &out("l")],
            ),
            "needs integer class labels",
        ),
        case(
            "sign flips of ReLU units",
            with(
                base("landscape"),
                &["--set", "landscape.sign_flips=true", "--set", "data.n_train=64", "--out", &out("m")],
            ),
            "ReLU is not odd",
        ),
        // The hint names the setting to change, whichever the config already has (it said
        // "use sign_flips" to a config that set it, and whose rescale was the cause).
        case(
            "rescaled tanh units",
            with(
                base("landscape"),
                &[
                    "--set",
                    "landscape.sign_flips=true",
                    "--set",
                    "model.activation=\"tanh\"",
                    "--set",
                    "landscape.rescale=2.0",
                    "--set",
                    "data.n_train=64",
                    "--out",
                    &out("m2"),
                ],
            ),
            "set landscape.rescale = 1",
        ),
        case(
            "sweep starting past the training set",
            with(
                base("sweep"),
                &["--config", t, "--min-batch", "512", "--max-batch", "1024", "--out", &out("n")],
            ),
            "data.n_train = 256",
        ),
        case(
            "npy file named for generated data",
            train(&["--config", t, "--set", "data.features=\"x.npy\"", "--out", &out("o")]),
            "data.features",
        ),
        case("negative batch size", train(&["--config", t, "--set", "train.batch_size=-1"]), "got -1"),
        case(
            "fractional batch size",
            train(&["--config", t, "--set", "train.batch_size=0.5"]),
            "got 0.5",
        ),
    ];
    check(&cases);
    for gone in ["k", "l", "m", "n", "o"] {
        assert!(!d.join(gone).exists(), "--out {gone}: a refused command left its run directory");
    }
}

/// A fixed batch size past the training set is a config error naming where it was given (the
/// file or the command line), before any run directory exists; a sweep picks its own sizes.
#[test]
fn batch_size_past_the_training_set_names_where_it_was_given() {
    let f = fixture();
    let d = tmpdir("batch-past-data");
    let big = d.join("big.toml");
    std::fs::write(&big, tiny_toml().replace("batch_size = 32", "batch_size = 4096")).expect("write");
    let out = |n: &str| s(&d.join(n));
    let train = |cfg: &str, more: &[&str], o: &str| {
        with(with(base("train"), &["--config", cfg, "--out", &out(o)]), more)
    };
    check(&[
        case("--set", train(&f.tiny, &["--set", "train.batch_size=4096"], "a"), "`train.batch_size` set on the command line is 4096, more than the 256 training examples (data.n_train)"),
        case("file", train(&s(&big), &[], "b"), "big.toml: `train.batch_size` is 4096"),
        case("data.n_train", train(&f.tiny, &["--set", "data.n_train=16"], "c"), "is 32, more than the 16 training examples"),
        case(
            "landscape",
            with(base("landscape"), &["--set", "train.batch_size=100000", "--out", &out("d")]),
            "`train.batch_size` set on the command line is 100000",
        ),
    ]);
    for o in ["a", "b", "c", "d"] {
        assert!(!d.join(o).exists(), "a refused run made {o}");
    }
    // The sweep does not train at train.batch_size: the same config sweeps.
    let o = run(&with(base("sweep"), &["--config", &s(&big), "--out", &out("sweep")]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn out_that_holds_a_run_is_refused_by_name_and_left_as_it_was() {
    let f = fixture();
    let mut cases = Vec::new();
    // The run itself, and the run reached through a missing directory and `..`.
    for cmd in MLP_COMMANDS.iter().chain(&OWN_CONFIG_COMMANDS) {
        let tiny: Vec<&str> =
            if MLP_COMMANDS.contains(cmd) { vec!["--config", &f.tiny] } else { vec![] };
        cases.push(case(
            format!("{cmd} --out RUN"),
            with(with(base(cmd), &tiny), &["--out", &s(&f.run)]),
            "already holds files",
        ));
    }
    for (cmd, sub) in [("train", "sub"), ("sweep", "sub2")] {
        let out = format!("{}/{sub}/..", s(&f.run));
        cases.push(case(
            format!("{cmd} --out RUN/{sub}/.."),
            with(base(cmd), &["--config", &f.tiny, "--out", &out]),
            "already holds files",
        ));
    }
    check(&cases);
    for sub in ["sub", "sub2"] {
        assert!(!f.run.join(sub).exists(), "made {sub} inside the run");
    }
    // train makes its directory after the backend opens and an automatic batch size is swept:
    // a reused --out is refused before either.
    let o = run(&with(
        base("train"),
        &["--config", &f.tiny, "--set", "train.batch_size=\"auto\"", "--out", &s(&f.run)],
    ));
    assert_clean_error(&o, &["already holds files"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("sweeping") && !err.contains("notice"),
        "refused after opening a backend: {err}"
    );
    // No sibling was made in its place: the results never go somewhere the caller did not name.
    let siblings: Vec<String> = std::fs::read_dir(&f.dir)
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("run-"))
        .collect();
    assert!(siblings.is_empty(), "refused runs made {siblings:?} beside the run");
    // A resume still trains the original config (it was not replaced).
    assert!(std::fs::read_to_string(f.run.join("config.toml"))
        .expect("config")
        .contains("hidden = [8]"));
}

/// A run stopped after its last checkpoint and before its summary (killed, disk full) has no
/// summary.json, or an earlier session's: its resume writes it without training (every resume
/// said "already complete", exit 0, and nothing could rebuild it); then it is complete.
#[test]
fn resume_of_a_finished_run_without_its_summary_writes_it() {
    let f = fixture();
    let d = tmpdir("resume-summary");
    let r = d.join("run");
    let o = run(&with(base("train"), &["--config", &f.tiny, "--out", &s(&r)]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(r.join("summary.json")).expect("summary")).expect("json")
    };
    let finished = read();
    let last = std::fs::read(r.join("last.safetensors")).expect("checkpoint");
    for (what, damage) in [
        ("missing", None),
        (
            "an earlier session's",
            Some(finished.to_string().replacen("\"steps\":", "\"steps\":0,\"was\":", 1)),
        ),
    ] {
        match &damage {
            None => std::fs::remove_file(r.join("summary.json")).expect("rm"),
            Some(text) => std::fs::write(r.join("summary.json"), text).expect("write"),
        }
        let o = run(&with(base("train"), &["--resume", &s(&r)]));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.contains("writing it"), "{what}: {err}");
        let summary = read();
        for key in [
            "steps",
            "epochs_completed",
            "examples_seen",
            "final_val_loss",
            "final_train_loss",
            "stopped_reason",
        ] {
            assert_eq!(summary[key], finished[key], "{what}: {key}");
        }
        assert_eq!(
            std::fs::read(r.join("last.safetensors")).expect("checkpoint"),
            last,
            "{what}: no step taken"
        );
        let o = run(&with(base("train"), &["--resume", &s(&r)]));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("already complete"),
            "{what}: then complete"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn resume_of_a_finished_run_changes_nothing() {
    let f = fixture();
    let d = tmpdir("resume-done");
    let r = d.join("run");
    let o = run(&with(base("train"), &["--config", &f.tiny, "--out", &s(&r)]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = snapshot(&r);
    let o = run(&with(base("train"), &["--resume", &s(&r)]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("already complete"), "{err}");
    assert!(snapshot(&r) == before, "a resume of a finished run rewrote files");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.join("summary.json")).expect("summary")).expect("json");
    assert!(summary["final_train_loss"].as_f64().is_some(), "{summary}");
    // More epochs extend it, and summary.json keeps a final train loss.
    let o = run(&with(base("train"), &["--resume", &s(&r), "--set", "train.epochs=2"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.join("summary.json")).expect("summary")).expect("json");
    assert!(summary["final_train_loss"].as_f64().is_some(), "{summary}");
    assert_eq!(summary["epochs_completed"].as_u64(), Some(2), "{summary}");
}

/// `lr = 1e37`: the guard names the first non-finite step (not the next logged one) and a
/// checkpoint that is finite, or none; no checkpoint on disk holds a non-finite value.
#[test]
fn divergence_is_reported_at_its_step_with_a_finite_checkpoint() {
    let f = fixture();
    let d = tmpdir("diverge");
    for (i, every) in ["1", "25"].iter().enumerate() {
        let r = d.join(format!("run{i}"));
        let o = run(&with(
            base("train"),
            &[
                "--config",
                &f.tiny,
                "--set",
                "train.lr=1e37",
                "--set",
                "train.log_every=10",
                "--set",
                &format!("train.checkpoint_every={every}"),
                "--out",
                &s(&r),
            ],
        ));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        assert!(line.contains("diverged"), "{line}");
        let step: u64 = line
            .split("step ")
            .nth(1)
            .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!((1..=2).contains(&step), "reported step {step}, not the blow-up's: {line}");
        let last = r.join("last.safetensors");
        if last.exists() {
            let ck = batchscope::train::checkpoint::load(&last).expect("load");
            for t in &ck.tensors {
                assert!(t.data.iter().all(|v| v.is_finite()), "{} holds a non-finite value", t.name);
            }
            assert!(line.contains("last.safetensors"), "{line}");
        } else {
            assert!(line.contains("none"), "{line}");
        }
    }
}

/// Counts with no other bound (replicas, contour levels) past their limit: refused by name
/// before any backend or replica is opened (`sweep --workers 18446744073709551615` panicked
/// with a capacity overflow after the sweep, `--workers 1000000` opened a million backends).
#[test]
fn counts_past_their_limits_are_errors() {
    let f = fixture();
    let d = tmpdir("counts");
    let out = |n: &str| s(&d.join(n));
    let t = &f.tiny;
    let cases = vec![
        case(
            "sweep --workers u64::MAX",
            with(
                base("sweep"),
                &["--config", t, "--workers", "18446744073709551615", "--out", &out("a")],
            ),
            "1..=1024",
        ),
        case(
            "sweep --workers 1000000",
            with(base("sweep"), &["--config", t, "--workers", "1,1000000", "--out", &out("b")]),
            "1000000",
        ),
        case(
            "train --workers 2048",
            with(
                base("train"),
                &[
                    "--config",
                    t,
                    "--workers",
                    "2048",
                    "--set",
                    "train.batch_size=2048",
                    "--out",
                    &out("c"),
                ],
            ),
            "--workers: worker counts must be in 1..=1024",
        ),
        case(
            "train --workers past the limit with an automatic batch",
            with(
                base("train"),
                &[
                    "--config",
                    t,
                    "--workers",
                    "1048576",
                    "--set",
                    "train.batch_size=\"auto\"",
                    "--out",
                    &out("d"),
                ],
            ),
            "--workers: worker counts must be in 1..=1024",
        ),
        case(
            "landscape.contours huge",
            with(
                base("landscape"),
                &["--config", t, "--set", "landscape.contours=4294967296", "--out", &out("e")],
            ),
            "landscape.contours",
        ),
    ];
    check(&cases);
    for n in ["a", "b", "c", "d", "e"] {
        assert!(!d.join(n).exists(), "{n}: a refused request made its run directory");
    }
}

/// Iteration counts past their bounds (`noise --draws`, `curvature --repeats`, `--slq-runs`,
/// `--lanczos-steps`, `--power-iters`, `--trace-samples`: hours of work, or a run until killed,
/// and a Lanczos basis past the host's memory) are one error line
/// before anything runs; counts at the bounds start and run (they once reserved `draws` slots
/// up front, an abort, or overflowed the progress total) until killed: no panic, no abort in the
/// first seconds.
#[test]
fn huge_iteration_counts_are_bounded_and_run_without_panicking() {
    let f = fixture();
    let d = tmpdir("iterations");
    let curvature = |flag: &str, value: &str, out: &str| {
        with(
            args(&["curvature", "--backend", "cpu", "--quiet", "--lanczos-steps", "4"]),
            &["--config", &f.tiny, flag, value, "--out", &s(&d.join(out))],
        )
    };
    let noise = |value: &str, out: &str| {
        with(
            args(&["noise", "--backend", "cpu", "--quiet", "--no-curvature", "--max-n", "2"]),
            &["--config", &f.tiny, "--draws", value, "--out", &s(&d.join(out))],
        )
    };
    check(&[
        case(
            "noise --draws u64::MAX",
            noise("18446744073709551615", "e1"),
            "--draws 18446744073709551615 is past 1000000",
        ),
        case("noise --draws 10^6 + 1", noise("1000001", "e2"), "is past 1000000"),
        case("curvature --repeats", curvature("--repeats", "1001", "e3"), "--repeats 1001 is past 1000"),
        case("curvature --slq-runs", curvature("--slq-runs", "1000000000000", "e4"), "--slq-runs"),
        case("curvature --power-iters", curvature("--power-iters", "100001", "e5"), "--power-iters"),
        // 10^9 ran for minutes: clamped to the parameters, each step reorthogonalised.
        case(
            "curvature --lanczos-steps",
            with(
                args(&["curvature", "--backend", "cpu", "--quiet", "--lanczos-steps", "1000000000"]),
                &["--config", &f.tiny, "--out", &s(&d.join("e5l"))],
            ),
            "--lanczos-steps 1000000000 is past 10000",
        ),
        // The basis of a wide model's 10^4 steps: 10^4 × 1.7·10^7 parameters × 4 bytes.
        case(
            "curvature --lanczos-steps past the host's memory",
            with(
                args(&["curvature", "--backend", "cpu", "--quiet", "--set", "model.hidden=[4096,4096]"]),
                &["--config", &f.tiny, "--lanczos-steps", "10000", "--out", &s(&d.join("e5m"))],
            ),
            "the Lanczos basis (10000 vectors of",
        ),
        case(
            "curvature --trace-samples",
            curvature("--trace-samples", "100001", "e6"),
            "--trace-samples",
        ),
        // Counts below what the estimates need ran one (two) anyway and wrote the result.
        case(
            "curvature --power-iters 0",
            curvature("--power-iters", "0", "e7"),
            "--power-iters must be ≥ 1",
        ),
        case("curvature --slq-runs 0", curvature("--slq-runs", "0", "e8"), "--slq-runs must be ≥ 1"),
        case("curvature --trace-samples 1", curvature("--trace-samples", "1", "e9"), "must be ≥ 2"),
        // An empty list of top eigenvalues, "Lanczos top -", was written as a result.
        case("curvature --top-k 0", curvature("--top-k", "0", "e9k"), "--top-k must be ≥ 1"),
        // A batch larger than the examples was skipped with a note only --quiet hid.
        case(
            "curvature --batch past n",
            curvature("--batch", "100000", "e10"),
            "--batch 100000 exceeds",
        ),
    ]);
    let runs: [(&str, Vec<String>); 2] = [
        ("noise --draws 10^6", noise("1000000", "n")),
        ("curvature --slq-runs 1000", curvature("--slq-runs", "1000", "c")),
    ];
    for (name, a) in runs {
        let mut child = bin()
            .args(&a)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut exited = None;
        for _ in 0..60 {
            if let Some(st) = child.try_wait().expect("wait") {
                exited = Some(st);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if exited.is_none() {
            let _ = child.kill();
        }
        let o = child.wait_with_output().expect("output");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{name}: {err}");
        if let Some(st) = exited {
            assert!(st.success(), "{name}: exit {st:?}: {err}");
        }
    }
}

/// An error whose message already ends with its cause prints the cause once (`cannot read
/// checkpoint X: Is a directory (os error 21)`, not the OS message twice).
#[test]
fn error_lines_name_their_cause_once() {
    let f = fixture();
    let d = tmpdir("cause-once");
    let dir_ckpt = d.join("ckpt.safetensors");
    std::fs::create_dir_all(&dir_ckpt).expect("mkdir");
    let bad_utf8 = d.join("bad.toml");
    std::fs::write(&bad_utf8, b"\xff\xfe[model]\n").expect("write");
    for a in [
        with(base("train"), &["--config", &f.tiny, "--init", &s(&dir_ckpt), "--out", &s(&d.join("a"))]),
        with(base("train"), &["--config", &s(&bad_utf8), "--out", &s(&d.join("b"))]),
    ] {
        let o = run(&a);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{err}");
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        let cause = line.rsplit(": ").next().unwrap_or_default();
        assert!(!cause.is_empty() && line.matches(cause).count() == 1, "cause repeated: {line}");
    }
}

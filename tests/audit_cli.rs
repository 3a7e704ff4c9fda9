//! Config and flag inputs found by the audit of 2026-12-07, each once taken without a word or
//! refused in misleading words: now one `error:` line naming the key and what it takes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::cli::{assert_clean_error, stderr};
use common::tmpdir;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(args: &[&str]) -> Output {
    common::cli::batchscope("audit-cli").args(args).output().expect("run batchscope")
}

/// `args` with `--out` a new directory: one `error:` line naming each of `needles`, exit 2, and
/// no run directory left.
fn refused(name: &str, args: &[&str], needles: &[&str]) {
    let (dir, out, o) = run_out(name, args);
    assert_clean_error(&o, needles);
    assert!(!out.exists(), "{args:?}: no run directory");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `args` with `--out` a new directory: the scratch directory, the run directory, the output.
fn run_out(name: &str, args: &[&str]) -> (PathBuf, PathBuf, Output) {
    let dir = tmpdir(name);
    let out = dir.join("run");
    let mut argv = args.to_vec();
    argv.extend(["--out", s(&out)]);
    let o = run(&argv);
    (dir, out, o)
}

/// `depth` and `rnn` read a file a `[landscape]` section may share with `landscape`: the
/// section was set aside unchecked (`--set landscape.bogus=1`, a NaN range: exit 0).
#[test]
fn depth_and_rnn_check_a_shared_landscape_section() {
    let dir = tmpdir("shared-landscape");
    for (command, config) in [("depth", "configs/deep_tanh.toml"), ("rnn", "configs/long_term.toml")] {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
        for (set, needle) in [("landscape.bogus=1", "bogus"), ("landscape.range=nan", "landscape.range")]
        {
            let out = dir.join(format!("{command}-{}", set.len()));
            let o = run(&[
                command,
                "--backend",
                "cpu",
                "--config",
                s(&config),
                "--set",
                set,
                "--out",
                s(&out),
            ]);
            assert_clean_error(&o, &[needle]);
            assert!(!out.exists(), "{command} {set}: no run directory");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `--set` every `[[variant]]` replaces changed no run and was written unchecked into the
/// run's config.toml (`--set rnn.w_scale=nan`: exit 0).
#[test]
fn a_set_every_variant_replaces_is_refused() {
    let dir = tmpdir("variant-set");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/deep_tanh.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let key = "model.init_scale";
    let variants = text.lines().filter(|l| l.trim() == "[[variant]]").count();
    let setting = text.lines().filter(|l| l.contains(&format!("\"{key}="))).count();
    assert!(variants > 1 && setting == variants, "every variant of deep_tanh.toml sets {key}");
    let out = dir.join("run");
    let o = run(&[
        "depth",
        "--backend",
        "cpu",
        "--config",
        s(&config),
        "--set",
        &format!("{key}=nan"),
        "--out",
        s(&out),
    ]);
    assert_clean_error(&o, &[key, "every [[variant]]", "changes no run"]);
    assert!(!out.exists() && !stderr(&o).contains("WARN"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flag and a `--set` of the key it stands for: the flag won (or, for `--workers`, the
/// flag's own `--set`) without a word.
#[test]
fn a_flag_and_a_set_of_its_key_are_refused() {
    let cases: [(&[&str], &str); 5] = [
        (&["sweep", "--min-batch", "8", "--set", "sweep.min_batch=16"], "sweep.min_batch"),
        // knee:F's fraction won over the key's unsaid (a bare `knee` takes the key's).
        (&["sweep", "--policy", "Knee:0.8", "--set", "sweep.knee_fraction=0.5"], "sweep.knee_fraction"),
        (&["sweep", "--policy", "knee", "--set", "sweep.policy=\"largest_fit\""], "sweep.policy"),
        (&["train", "--workers", "2", "--set", "train.workers=4"], "train.workers"),
        (&["train", "--precision", "f16", "--set", "model.precision=\"f32\""], "model.precision"),
    ];
    for (args, key) in cases {
        let argv = [args, &["--backend", "cpu"]].concat();
        refused("flag-and-set", &argv, &[args[1], key, "give one"]);
    }
}

/// Two `--set`s of one key with different values: the last won without a word. The same value
/// twice (as written, or as the loader reads it) changes nothing and runs.
#[test]
fn two_sets_of_one_key_are_refused_unless_they_agree() {
    let argv = [
        "train",
        "--backend",
        "cpu",
        "--set",
        "train.lr=0.1",
        "--set",
        "train.steps=2",
        "--set",
        " train.lr=0.2",
    ];
    refused(
        "set-twice",
        &argv,
        &["--set train.lr=0.1", "--set train.lr=0.2", "both set train.lr", "give one"],
    );
    let dir = tmpdir("set-twice-agree");
    let out = dir.join("run");
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--set",
        "model.hidden=[4]",
        "--set",
        "data.n_train=64",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.epochs=1",
        "--set",
        "data.n_train=64",
        // The same value written another way.
        "--set",
        "data.kind=gaussian_mixture",
        "--set",
        "data.kind=\"gaussian_mixture\"",
        "--quiet",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One training example is its own full-data gradient: `noise` wrote a table of one size, a
/// NaN slope and B_noise = 0, and exited 0; so did one example repeated, and a gradient that is
/// not finite.
#[test]
fn noise_over_one_example_is_refused() {
    let noise = ["noise", "--backend", "cpu", "--set"];
    refused("noise-one", &[&noise[..], &["data.n_train=1"]].concat(), &["at least 2 distinct", "has 1"]);
    // 64 copies of one example: an infinite error reduction and a meaningless slope.
    let copies = [&noise[..], &["data.n_train=64", "--set", "data.duplicates=64"]].concat();
    refused("noise-copies", &copies, &["2 distinct training examples", "data.duplicates = 64"]);
    // Weights whose gradient overflows: every figure was NaN, with exit 0.
    let overflow = [&noise[..], &["model.init_scale=1e30"]].concat();
    refused("noise-overflow", &overflow, &["full-data gradient", "not finite"]);
}

/// A sweep that timed no batch size (each predicted not to fit) said "no batch size chosen"
/// and exited 0: scripts took it for a choice. It fails now, its table and files kept.
#[test]
fn a_sweep_that_times_no_batch_size_fails() {
    let (dir, out, o) = run_out(
        "sweep-none",
        &[
            "sweep",
            "--backend",
            "gpu",
            "--set",
            "model.hidden=[65536]",
            "--min-batch",
            "1024",
            "--max-batch",
            "2048",
        ],
    );
    assert_clean_error(&o, &["no batch size chosen", "2 skipped"]);
    let csv = std::fs::read_to_string(out.join("sweep.csv")).expect("sweep.csv is kept");
    assert_eq!(csv.matches("predicted not to fit").count(), 2, "{csv}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `compare` with every batch size skipped on both backends printed "the GPU is not faster
/// than the CPU at any measured B" and exited 0.
#[test]
fn a_compare_that_times_nothing_fails() {
    let (dir, out, o) = run_out(
        "compare-none",
        &[
            "compare",
            "--max-batch",
            "8",
            "--set",
            "sweep.memory_budget_mib=1",
            "--set",
            "model.hidden=[1024,1024]",
            "--set",
            "data.dim=512",
        ],
    );
    assert_clean_error(&o, &["no batch size was timed on both backends"]);
    assert!(out.join("summary.json").exists(), "its files are kept");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A time-to-target whose sweep timed one batch size (the others skipped by the time budget)
/// trained it alone, left the others out of its table unsaid, and exited 0.
#[test]
fn a_time_to_target_of_one_timed_batch_size_is_refused() {
    let dir = tmpdir("ttt-one");
    let cfg = dir.join("ttt.toml");
    std::fs::write(
        &cfg,
        "[model]\nhidden = [8]\n[data]\nkind = \"gaussian_mixture\"\nn_train = 64\nn_val = 16\ndim = 4\nclasses = 3\n\
         [train]\noptimizer = \"sgd\"\nepochs = 0\nsteps = 50\ntarget_val_error = 0.3\neval_every = 4\n\
         [sweep]\nmin_batch = 1\nmax_batch = 16\nwarmup_steps = 1\ntimed_steps = 2\ntime_budget_s = 1e-9\n",
    )
    .expect("config");
    let out = dir.join("run");
    let o = run(&["time-to-target", "--backend", "cpu", "--config", s(&cfg), "--out", s(&out)]);
    assert_clean_error(&o, &["timed 1 of 5 batch sizes", "sweep.time_budget_s", "at least 2"]);
    assert!(!out.join("B00001").exists(), "nothing trained");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `overlay --log-y` left out values ≤ 0 unsaid (a validation error reaching 0), and drew an
/// empty plot when all were; a label with a control character made an SVG XML parsers refuse.
#[test]
fn overlay_says_what_a_log_axis_leaves_out_and_writes_xml() {
    let dir = tmpdir("overlay-log");
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).expect("dir");
    let line = |x: u32, e: f64| format!("{{\"examples_seen\":{x},\"val_error\":{e},\"neg\":{}}}\n", -e);
    let text: String = [(64, 0.5), (128, 0.0), (192, 0.25)].iter().map(|&(x, e)| line(x, e)).collect();
    std::fs::write(run_dir.join("metrics.jsonl"), text).expect("metrics");
    let svg = dir.join("o.svg");
    let o = run(&["overlay", s(&run_dir), "--log-y", "--label", "a\u{1}b", "--out", s(&svg)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("leaves out 1 value(s) of `val_error` ≤ 0"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).expect("svg");
    assert!(!text.contains('\u{1}') && text.contains("a\u{FFFD}b"), "control character in the SVG");
    let o = run(&["overlay", s(&run_dir), "--log-y", "--field", "neg", "--out", s(&dir.join("n.svg"))]);
    assert_clean_error(&o, &["every value of `neg` is ≤ 0"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `overlay --field` with a field no record has listed nothing ("no values of `val_erorr`"): it
/// names the closest field and the numeric fields the file has (by name, at most 20); a
/// `--label` count that does not match the runs said "given 1 times".
#[test]
fn overlay_lists_the_fields_a_file_has() {
    let dir = tmpdir("overlay-fields");
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).expect("dir");
    let line = |x: u32| format!("{{\"examples_seen\":{x},\"val_error\":0.5,\"note\":\"text\"}}\n");
    std::fs::write(run_dir.join("metrics.jsonl"), line(64) + &line(128)).expect("metrics");
    let out = |n: &str| dir.join(n).display().to_string();
    let o = run(&["overlay", s(&run_dir), "--field", "val_erorr", "--out", &out("a.svg")]);
    assert_clean_error(
        &o,
        &["no values of `val_erorr`", "did you mean `val_error`?", "examples_seen, val_error"],
    );
    assert!(!stderr(&o).contains("note"), "a text field is no plottable one: {}", stderr(&o));
    // Many fields: the first 20, then how many more.
    let wide = dir.join("wide");
    std::fs::create_dir_all(&wide).expect("dir");
    let fields: String = (0..25).map(|i| format!(",\"f{i}\":{i}")).collect();
    std::fs::write(wide.join("metrics.jsonl"), format!("{{\"examples_seen\":1{fields}}}\n"))
        .expect("metrics");
    let o = run(&["overlay", s(&wide), "--field", "zzz", "--out", &out("b.svg")]);
    assert_clean_error(&o, &["no values of `zzz`", "f24, f3 and 6 more"]);
    assert!(!stderr(&o).contains("did you mean"), "{}", stderr(&o));
    let o = run(&["overlay", s(&run_dir), s(&wide), "--label", "one", "--out", &out("c.svg")]);
    assert_clean_error(&o, &["--label given 1 time for 2 runs"]);
    assert!(!dir.join("a.svg").exists() && !dir.join("c.svg").exists(), "a refused overlay wrote");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `profile` timed batch sizes a run cannot train at (`--batch 100000000` on 64 examples ran
/// for minutes); the defaults past the training set are said and left out.
#[test]
fn profile_stops_at_the_training_set() {
    let args = ["profile", "--backend", "cpu", "--set", "data.n_train=64", "--batch", "100000000"];
    refused("profile-set", &args, &["--batch 100000000", "data.n_train = 64"]);
}

/// A batch size given twice is profiled once (every row of profile.csv and summary.json was
/// doubled), in the order first given.
#[test]
fn profile_times_a_repeated_batch_size_once() {
    let args = [
        "profile",
        "--backend",
        "cpu",
        "--quiet",
        "--set",
        "data.n_train=64",
        "--set",
        "model.hidden=[8]",
    ];
    let (dir, out, o) = run_out(
        "profile-twice",
        &[&args[..], &["--batch", "3", "--batch", "2", "--batch", "3"]].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = common::read_csv(&out.join("profile.csv"));
    let batch = header.iter().position(|h| h == "batch").expect("batch column");
    let mut order: Vec<&str> = rows.iter().map(|r| r[batch].as_str()).collect();
    order.dedup();
    assert_eq!(order, ["3", "2"], "each size once, in the order given");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["batches"].as_array().map(Vec::len), Some(2), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A size skipped by the sweep's time budget kept no memory prediction (0 bytes, though the
/// model costs nothing to evaluate), and summary.json ended without a line feed.
#[test]
fn a_time_budget_skip_keeps_its_memory_prediction() {
    let (dir, out, o) = run_out(
        "budget-bytes",
        &["sweep", "--backend", "cpu", "--max-batch", "64", "--set", "sweep.time_budget_s=1e-9"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = common::read_csv(&out.join("sweep.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (note, bytes) = (col("skipped"), col("bytes_predicted"));
    let skipped: Vec<_> = rows.iter().filter(|r| r[note].contains("sweep.time_budget_s")).collect();
    assert!(!skipped.is_empty(), "the budget skips sizes");
    for r in skipped {
        assert!(r[bytes].parse::<u64>().expect("bytes") > 0, "{r:?}");
    }
    let summary = std::fs::read_to_string(out.join("summary.json")).expect("summary");
    assert!(summary.ends_with("}\n"), "summary.json ends with a line feed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `curvature --examples` past the training set was named a host-memory problem (2^64 − 1
/// examples "cannot fit the host").
#[test]
fn curvature_examples_past_the_training_set_say_so() {
    for n in ["65", "18446744073709551615"] {
        let args = ["curvature", "--backend", "cpu", "--set", "data.n_train=64", "--examples", n];
        let needle = format!("--examples {n} exceeds the training set (data.n_train = 64)");
        refused("curvature-set", &args, &[&needle]);
    }
}

/// `depth` over fewer than 3 hidden layers fit no growth (null) and exited 0; `curvature` with
/// few Lanczos steps reported Ritz values as the spectrum's ends unsaid.
#[test]
fn depth_needs_three_hidden_layers_and_few_lanczos_steps_are_said() {
    let dir = tmpdir("depth-few");
    let out = dir.join("run");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/deep_tanh.toml");
    let depth_with = |set: &str| {
        run(&["depth", "--backend", "cpu", "--config", s(&config), "--set", set, "--out", s(&out)])
    };
    assert_clean_error(&depth_with("depth.layers=2"), &["at least 3, got 2"]);
    assert!(!out.exists(), "no run directory");
    // It trains train.steps whatever train.epochs says (5 epochs or 1 trained the same 60 steps).
    assert_clean_error(&depth_with("train.epochs=5"), &["does not use train.epochs"]);
    assert_clean_error(&depth_with("sweep.max_batch=64"), &["does not use the [sweep] section"]);
    assert!(!out.exists(), "no run directory");
    let o = run(&[
        "curvature",
        "--backend",
        "cpu",
        "--quiet",
        "--set",
        "data.n_train=64",
        "--lanczos-steps",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("--top-k 5 is past the 2 Ritz values") && err.contains("λmin from above"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sweep --workers` timed every batch size past `sweep.time_budget_s` that the sweep itself
/// skipped; now each worker count's smallest batch is timed and the rest are said skipped.
#[test]
fn the_worker_scaling_keeps_the_sweep_time_budget() {
    let (dir, out, o) = run_out(
        "workers-budget",
        &[
            "sweep",
            "--backend",
            "cpu",
            "--quiet",
            "--max-batch",
            "64",
            "--workers",
            "1,2",
            "--set",
            "sweep.time_budget_s=1e-9",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = common::read_csv(&out.join("workers.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let points: Vec<(&str, &str)> =
        rows.iter().map(|r| (r[col("workers")].as_str(), r[col("per_worker_batch")].as_str())).collect();
    assert_eq!(points, [("1", "1"), ("2", "1")], "one point per worker count within the budget");
    assert!(stderr(&o).contains("skipped (sweep.time_budget_s"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `train.max_seconds` (Lightning's `max_time`): a budget in wall time, not steps. The run
/// stops at the first step past it, says so, and a resume of it is complete until the budget
/// grows; it bounds a run with no other stop, and is refused under `--mpi` (tests/mpi.rs).
#[test]
fn train_max_seconds_stops_a_run_in_time() {
    let (dir, out, o) = run_out(
        "max-seconds",
        &[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--set",
            "train.epochs=0",
            "--set",
            "train.max_seconds=1e-6",
            "--set",
            "data.n_train=512",
            "--set",
            "train.batch_size=32",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["steps"], 1, "{summary}");
    let reason = summary["stopped_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("reached train.max_seconds = 0.000001"), "{reason}");
    assert!(out.join("last.safetensors").exists());
    let resume =
        |set: &str| run(&["train", "--backend", "cpu", "--quiet", "--resume", s(&out), "--set", set]);
    // A complete run's resume says so (exit 0) and trains nothing.
    let o = resume("train.max_seconds=1e-6");
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(
        o.status.success() && said.contains("already complete at step 1 (reached train.max_seconds"),
        "{said}"
    );
    refused(
        "max-seconds-bad",
        &["train", "--backend", "cpu", "--set", "train.max_seconds=-1"],
        &["train.max_seconds"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An error echoes what it refuses: a 100 kB `--set` value, config path or flag value made a
/// 100 kB error line. Words past 240 characters now show their head and tail only.
#[test]
fn an_error_line_elides_the_middle_of_a_huge_value() {
    let huge = "x".repeat(100_000);
    let lr = format!("train.lr={huge}");
    let activation = format!("model.activation=\"{huge}\"");
    let config = format!("/nonexistent/{huge}.toml");
    for args in [
        vec!["train", "--backend", "cpu", "--set", lr.as_str()],
        vec!["train", "--backend", "cpu", "--set", activation.as_str()],
        vec!["train", "--backend", "cpu", "--config", config.as_str()],
        vec!["sweep", "--min-batch", huge.as_str()],
    ] {
        let o = run(&args);
        let err = stderr(&o);
        assert_clean_error(&o, &["characters elided"]);
        assert!(err.len() < 2_000, "{} bytes of error", err.len());
        assert!(err.contains("xxxxxxxxxx…["), "the head of the value is kept: {err}");
    }
}

/// The one-adapter commands refuse an empty `--adapter` by name (every adapter's name contains
/// the empty string: adapter 0 ran without a word), as `train` does.
#[test]
fn an_empty_adapter_name_is_refused_by_every_command() {
    for command in ["gemm", "tune", "sweep"] {
        for empty in ["", "  "] {
            let (dir, out, o) =
                run_out(&format!("empty-adapter-{command}"), &[command, "--adapter", empty]);
            assert_clean_error(&o, &["--adapter", "an empty name"]);
            assert!(!out.exists(), "{command}: a refused run left its directory");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// `tune --out D` with the autotune cache inside D is refused before any timing: the cache
/// was rewritten into D, and the run then refused D for holding it.
#[test]
fn tune_refuses_an_out_directory_that_would_hold_the_autotune_cache() {
    let dir = tmpdir("tune-cache-inside-out");
    let out = dir.join("run");
    let cache = out.join("cache.json");
    let o = common::cli::batchscope("audit-cli")
        .args(["tune", "--batch-sizes", "1", "--out", s(&out)])
        .env("BATCHSCOPE_AUTOTUNE_CACHE", &cache)
        .output()
        .expect("run batchscope");
    assert_clean_error(&o, &["--out", "autotune cache", "lies inside it"]);
    assert!(!out.exists(), "the refused tune wrote into --out");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `--workers` past the limit is named as the flag (it was blamed on a `--set
/// train.workers=…` never typed), and a one-adapter command given a list says it takes one.
#[test]
fn worker_and_adapter_errors_name_what_was_typed() {
    refused(
        "huge-workers",
        &["train", "--backend", "cpu", "--workers", "18446744073709551615"],
        &["--workers", "1..=1024"],
    );
    let (dir, _, o) = run_out("huge-workers-text", &["train", "--backend", "cpu", "--workers", "5000"]);
    assert!(!stderr(&o).contains("--set"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
    refused("adapter-list", &["gemm", "--adapter", "0,0", "--sizes", "8"], &["opens one adapter"]);
}

/// The commands that measure the f32 loss refuse f16 from a `--set` or a config file as they
/// refuse `--precision f16` (they measured f32 and wrote f16 in their config.toml; landscape
/// trained its model in f16).
#[test]
fn f32_only_commands_refuse_f16_from_the_config() {
    let dir = tmpdir("f32-only");
    let config = dir.join("f16.toml");
    std::fs::write(&config, "[model]\nhidden = [8]\nprecision = \"f16\"\n[data]\nn_train = 256\nn_val = 64\ndim = 4\nclasses = 3\n").expect("config");
    for command in ["curvature", "noise", "landscape"] {
        let set = ["--set", "model.precision=\"f16\""];
        refused(
            &format!("{command}-set"),
            &[&[command, "--backend", "cpu"][..], &set].concat(),
            &["model.precision", command],
        );
        refused(
            &format!("{command}-file"),
            &[command, "--backend", "cpu", "--config", s(&config)],
            &["model.precision", command],
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `curvature` and `noise` measure the loss alone: with `train.weight_decay` set they say so
/// (λmax, 2/λmax, ε_max and B_noise were the same bits with and without it, unsaid).
#[test]
fn measurements_of_the_loss_alone_name_the_weight_decay_they_leave_out() {
    let dir = tmpdir("weight-decay-notice");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, common::tiny_config(1, 2, 1)).expect("config");
    for (command, extra) in [
        ("noise", &["--max-n", "4", "--draws", "4"][..]),
        (
            "curvature",
            &["--examples", "32", "--lanczos-steps", "4", "--slq-runs", "1", "--power-iters", "4"][..],
        ),
    ] {
        let out = dir.join(command);
        let mut args = vec![command, "--backend", "cpu", "--quiet", "--config", s(&config)];
        args.extend(extra);
        args.extend(["--set", "train.weight_decay=0.1", "--out", s(&out)]);
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{command}: {err}");
        assert!(err.contains("notice: train.weight_decay = 0.1 is not in"), "{command}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An A/B knob that changes nothing on the adapter says so: summary.json's `environment`
/// records every knob, so an A/B table once said it timed a cooperative-matrix kernel on an
/// adapter with none, or a fused backward whose fused update was off. Each notice is given
/// where it holds (on an adapter with cooperative matrices, or a GPU that fuses the update by
/// default, the knob does act, and nothing is said).
#[test]
fn inert_kernel_knobs_are_said_to_change_nothing() {
    let devices = run(&["devices", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&devices.stdout).expect("devices --json");
    let adapter = &v["adapters"][0];
    let coop = adapter["cooperative_matrices"].as_array().is_some_and(|c| !c.is_empty());
    let cpu_adapter = adapter["device_type"] == "Cpu";
    let dir = tmpdir("inert-knobs");
    let config = dir.join("tiny.toml");
    std::fs::write(&config, common::tiny_config(1, 8, 1)).expect("config");
    for (var, value, notice, said) in [
        (
            "BATCHSCOPE_F16_KERNEL",
            "coop",
            "BATCHSCOPE_F16_KERNEL asks for a cooperative-matrix kernel",
            !coop,
        ),
        ("BATCHSCOPE_COOP64", "force", "BATCHSCOPE_COOP64=force asks for", !coop),
        ("BATCHSCOPE_FUSED_BACKWARD", "1", "BATCHSCOPE_FUSED_BACKWARD=1 extends the fused", cpu_adapter),
        ("BATCHSCOPE_FUSED_UPDATE", "0", "notice: BATCHSCOPE", false),
    ] {
        let out = dir.join(format!("{var}-{value}"));
        let o = common::cli::batchscope("audit-cli")
            .env("RUST_LOG", "warn")
            .env(var, value)
            .args([
                "profile",
                "--backend",
                "gpu",
                "--config",
                s(&config),
                "--batch",
                "8",
                "--out",
                s(&out),
            ])
            .output()
            .expect("run batchscope");
        assert!(o.status.success(), "{var}={value}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.matches(notice).count(), usize::from(said), "{var}={value}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sweep --policy time_to_target:auto` measures B_noise as `time-to-target` and `noise` do
/// with the same settings: 128 draws seeded by `train.seed`, printed with its standard error
/// (it took 32 draws with seed 1 fixed, the same estimate every run, 14 % under a 4000-draw
/// one, and no ±).
#[test]
fn time_to_target_auto_measures_b_noise_with_its_standard_error() {
    let dir = tmpdir("ttt-auto");
    let cfg = dir.join("t.toml");
    std::fs::write(
        &cfg,
        "[model]\nhidden = [8]\n[data]\nkind = \"gaussian_mixture\"\nn_train = 256\nn_val = 16\ndim = 4\nclasses = 3\n\
         [train]\nseed = 11\n[sweep]\nmin_batch = 1\nmax_batch = 4\nwarmup_steps = 1\ntimed_steps = 2\n",
    )
    .expect("config");
    let sweep = dir.join("sweep");
    let o = run(&[
        "sweep",
        "--backend",
        "cpu",
        "--config",
        s(&cfg),
        "--policy",
        "time_to_target:auto",
        "--out",
        s(&sweep),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stderr(&o).lines().find(|l| l.starts_with("measured B_noise")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no B_noise line: {}", stderr(&o)));
    assert!(line.contains(" ± ") && line.contains("(128 draws)"), "{line}");
    // The pick's resampling draws B_noise with that standard error, and says so.
    let swept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("summary.json")).expect("summary"))
            .expect("json");
    let se = swept["choice_stability"]["b_noise_se"].as_f64().expect("b_noise_se");
    assert!(line.contains(&format!(" ± {se:.1} ")), "{line} vs choice_stability's {se}");
    let said = format!("of B_noise (SE {se:.2}) pick B = {} again", swept["chosen_batch"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&said),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let noise = dir.join("noise");
    let o = run(&[
        "noise",
        "--backend",
        "cpu",
        "--config",
        s(&cfg),
        "--max-n",
        "2",
        "--draws",
        "128",
        "--seed",
        "11",
        "--out",
        s(&noise),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(noise.join("summary.json")).expect("summary"))
            .expect("json");
    let bn = summary["b_noise"].as_f64().expect("b_noise");
    // A model this small takes its Hessian over every example, and says so.
    assert_eq!(summary["hessian_examples"], summary["examples"], "{summary}");
    assert!(line.contains(&format!("B_noise = {bn:.1} ± ")), "{line} vs noise's {bn}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An epoch is ⌊N/B⌋ full minibatches: with one kept order (`train.shuffle = "once"` or
/// `"none"`) the same N mod B rows are left out of every epoch, which was not said.
#[test]
fn rows_a_kept_order_never_trains_on_are_said() {
    let dir = tmpdir("never-trained");
    let cfg = dir.join("t.toml");
    std::fs::write(
        &cfg,
        "[model]\nhidden = [4]\n[data]\nkind = \"gaussian_mixture\"\nn_train = 100\nn_val = 16\ndim = 4\nclasses = 3\n\
         [train]\nbatch_size = 32\nepochs = 1\n",
    )
    .expect("config");
    let train = |name: &str, set: &[&str]| {
        let mut args = vec!["train", "--backend", "cpu", "--config", s(&cfg), "--out"];
        let out = dir.join(name);
        args.push(s(&out));
        for kv in set {
            args.extend(["--set", kv]);
        }
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
            .lines()
            .filter(|l| l.contains("never trained on"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for shuffle in ["once", "none"] {
        let said = train(shuffle, &[&format!("train.shuffle=\"{shuffle}\"")]);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("the same 4 of the 100 training rows (4.0 %)"), "{}", said[0]);
    }
    assert!(train("epoch", &[]).is_empty(), "each epoch leaves out other rows");
    assert!(train("divides", &["train.shuffle=\"once\"", "train.batch_size=25"]).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

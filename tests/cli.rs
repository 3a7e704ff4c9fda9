//! The binary: bad input gets one `error: ...` line and exit code 2 (never a panic, never a
//! clobbered file); devices, sweep and compare run on the GPU adapter and the CPU backend.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{read_csv, tmpdir};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batchscope"));
    c.env("RUST_LOG", "error");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run batchscope")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2, an `error:` line naming `needle`, no panic.
fn assert_clean_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code for {needle}: stderr = {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let line =
        err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains(needle), "error line `{line}` should name `{needle}`");
}

fn tiny() -> String {
    common::tiny_config(1, 256, 2)
}

/// `batchscope train --quiet --resume dir --set train.epochs=2`, with `extra` flags.
fn resume_to_two_epochs(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--quiet", "--resume", dir.to_str().unwrap_or_default()];
    args.extend(["--set", "train.epochs=2"]);
    args.extend(extra);
    run(&args)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// A usage error (an unknown flag or subcommand, a flag's bad value, a negative count) is one
/// `error:` line naming the command's `--help`, with clap's hints in it: clap printed it over
/// five lines with a usage block. Help still prints in full and exits 0.
#[test]
fn usage_errors_are_one_line() {
    for (argv, needles) in [
        (&["curvature", "--examples", "-1"][..], &["'-1'", "try 'batchscope curvature --help'"][..]),
        (&["train", "--precison", "f16"], &["similar argument exists: '--precision'", "train --help"]),
        (&["train", "--precision", "f64"], &["(possible values: f32, f16)", "train --help"]),
        (&["trian"], &["similar subcommand exists: 'train'", "try 'batchscope --help'"]),
        (&["sweep", "--min-batch", "x"], &["--min-batch", "sweep --help"]),
        (&[], &["no command given", "try 'batchscope --help'"]),
    ] {
        let o = run(argv);
        assert_eq!(o.status.code(), Some(2), "{argv:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{argv:?}: {err}");
        assert!(err.starts_with("error: "), "{argv:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{argv:?}: `{err}` does not name {n}");
        }
    }
    let o = run(&["train", "--help"]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Usage: batchscope train")
    );
}

#[test]
fn bad_configs_are_one_line_errors() {
    let d = tmpdir("configs");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--config".into(), d.join("missing.toml").display().to_string()], "missing.toml"),
        (
            vec!["--config".into(), write(&d, "bad.toml", "[train\nlr = 1").display().to_string()],
            "bad.toml",
        ),
        (
            vec![
                "--config".into(),
                write(&d, "unknown.toml", "[train]\nlearning_rate = 0.1\n").display().to_string(),
            ],
            "learning_rate",
        ),
        (
            vec![
                "--config".into(),
                write(&d, "range.toml", "[train]\nlr = -0.5\n").display().to_string(),
            ],
            "train.lr",
        ),
        (vec!["--set".into(), "train.batch_size=0".into()], "train.batch_size"),
        (vec!["--set".into(), "nonsense".into()], "nonsense"),
    ];
    for (args, needle) in cases {
        let mut full = vec![
            "train".to_string(),
            "--backend".into(),
            "cpu".into(),
            "--quiet".into(),
            "--out".into(),
        ];
        full.push(d.join("out").display().to_string());
        full.extend(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let o = run(&refs);
        assert_clean_error(&o, needle);
    }
    assert!(!d.join("out").exists(), "a failed config must not create the run directory");
}

#[test]
fn bad_npy_files_are_one_line_errors() {
    use batchscope::data::npy::{write_npy_f32, write_npy_labels};
    let d = tmpdir("npy");
    let feats = d.join("x.npy");
    write_npy_f32(&feats, &[10, 3], &[0.5; 30]).expect("x");
    let labels = d.join("y.npy");
    write_npy_labels(&labels, &[0, 1, 2, 0, 1, 2, 0, 1, 2, 7]).expect("y");
    let wrong_dtype = d.join("x64.npy");
    common::cli::write_f64_npy(&wrong_dtype); // float64, 10x3 zeros
    let cfg = |f: &Path, l: &Path| {
        format!(
            "[model]\nhidden = [4]\n[data]\nkind = \"npy\"\ndim = 3\nclasses = 3\nfeatures = \"{}\"\nlabels = \"{}\"\nval_fraction = 0.2\n[train]\nbatch_size = 2\nepochs = 1\n",
            f.display(),
            l.display()
        )
    };
    let c1 = write(&d, "range.toml", &cfg(&feats, &labels));
    assert_clean_error(
        &run(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            c1.to_str().unwrap_or_default(),
            "--out",
            d.join("o1").to_str().unwrap_or_default(),
        ]),
        "y.npy",
    );
    let c2 = write(&d, "dtype.toml", &cfg(&wrong_dtype, &labels));
    assert_clean_error(
        &run(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            c2.to_str().unwrap_or_default(),
            "--out",
            d.join("o2").to_str().unwrap_or_default(),
        ]),
        "x64.npy",
    );
}

/// An f64 features file is refused when the config is resolved, as a wrong labels dtype is:
/// one line naming the file and `data.features`, before the data line and the run directory
/// (it printed both, then made and removed the directory).
#[test]
fn wrong_dtype_features_are_refused_before_the_run_directory() {
    use batchscope::data::npy::write_npy_labels;
    let d = tmpdir("npy-f64-features");
    let x64 = d.join("x64.npy");
    common::cli::write_f64_npy(&x64);
    let labels = d.join("y.npy");
    write_npy_labels(&labels, &[0, 1, 2, 0, 1, 2, 0, 1, 2, 0]).expect("y");
    let cfg = write(
        &d,
        "f64.toml",
        &format!(
            "[model]\nhidden = [4]\n[data]\nkind = \"npy\"\nclasses = 3\nfeatures = \"{}\"\nlabels = \"{}\"\n[train]\nbatch_size = 2\nepochs = 1\n",
            x64.display(),
            labels.display()
        ),
    );
    let out = d.join("out");
    let o = common::cli::batchscope("npy-f64")
        .args(["train", "--backend", "cpu", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run batchscope");
    common::cli::assert_clean_error(&o, &["x64.npy", "data.features", "f32"]);
    let err = stderr(&o);
    assert!(!err.contains("run directory") && !err.contains("data: "), "too late: {err}");
    assert!(!out.exists(), "the refused run made its directory");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_checkpoints_and_dirs_are_one_line_errors() {
    let d = tmpdir("ckpt");
    let c = write(&d, "tiny.toml", &tiny());
    let cs = c.to_str().unwrap_or_default();
    let run1 = d.join("run1");
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        cs,
        "--out",
        run1.to_str().unwrap_or_default(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let last = run1.join("last.safetensors");
    assert!(last.exists());
    // A checkpoint of another model shape.
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        cs,
        "--set",
        "model.hidden=[5]",
        "--init",
        last.to_str().unwrap_or_default(),
        "--out",
        d.join("r2").to_str().unwrap_or_default(),
    ]);
    assert_clean_error(&o, "layers.0.weight");
    // A corrupted checkpoint: flip a byte near the end (tensor data).
    let mut bytes = std::fs::read(&last).expect("read");
    let n = bytes.len();
    bytes[n - 3] ^= 0x5a;
    let bad = d.join("corrupt.safetensors");
    std::fs::write(&bad, &bytes).expect("write");
    assert_clean_error(
        &run(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            cs,
            "--init",
            bad.to_str().unwrap_or_default(),
            "--out",
            d.join("r3").to_str().unwrap_or_default(),
        ]),
        "corrupt.safetensors",
    );
    // A truncated checkpoint.
    let trunc = d.join("trunc.safetensors");
    std::fs::write(&trunc, &bytes[..n / 2]).expect("write");
    assert_clean_error(
        &run(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            cs,
            "--init",
            trunc.to_str().unwrap_or_default(),
            "--out",
            d.join("r4").to_str().unwrap_or_default(),
        ]),
        "trunc.safetensors",
    );
    // An output directory that cannot be created (its parent is a file).
    let file = write(&d, "afile", "x");
    assert_clean_error(
        &run(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            cs,
            "--out",
            file.join("sub").to_str().unwrap_or_default(),
        ]),
        "afile",
    );
    // Resume of a directory that is not a run.
    assert_clean_error(
        &run(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--resume",
            d.join("nope").to_str().unwrap_or_default(),
        ]),
        "nope",
    );
    // The first run's files are untouched by all of the above.
    assert_eq!(std::fs::read(&last).expect("read").len(), n);
    let o = resume_to_two_epochs(&run1, &["--backend", "cpu"]);
    assert!(o.status.success(), "resume: {}", stderr(&o));
}

/// Where no desktop session exists (SSH, containers, CI) Mesa's device-select layer made the
/// Wayland library print `error: XDG_RUNTIME_DIR is invalid or not set in the environment.`
/// twice on every command that looks for adapters; batchscope turns that layer off for itself.
#[test]
fn no_desktop_session_prints_no_spurious_error() {
    let o = common::cli::batchscope("no-session")
        .arg("devices")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .expect("run batchscope devices");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.lines().any(|l| l.starts_with("error")), "stderr of `devices`: {err}");
}

#[test]
fn devices_lists_the_adapter_with_limits() {
    let o = run(&["devices", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let list = v["adapters"].as_array().expect("adapters array");
    // The CPU backend too, with its threads.
    assert!(v["cpu"]["name"].as_str().is_some_and(|n| n.starts_with("CPU (")), "{v}");
    assert!(v["cpu"]["threads"].as_u64().is_some_and(|t| t >= 1), "{v}");
    for (i, a) in list.iter().enumerate() {
        assert_eq!(a["index"].as_u64(), Some(i as u64), "indices are --adapter's: {a}");
    }
    assert!(
        !list.is_empty(),
        "no GPU adapter: install a Vulkan driver (apt-get install -y mesa-vulkan-drivers)"
    );
    for a in list {
        assert!(a["limits"]["max_storage_buffer_binding_size"].as_u64().unwrap_or(0) > 0);
        assert!(a["name"].as_str().is_some_and(|s| !s.is_empty()));
        // Tensor cores: the configurations offered, and why the f16 kernels cannot use them
        // (null where they can).
        let configs = a["cooperative_matrices"].as_array().expect("cooperative_matrices");
        let why = &a["tensor_f16_unavailable"];
        assert!(why.is_null() || why.as_str().is_some_and(|w| !w.is_empty()), "{a}");
        // 16x16 tiles on GPUs, 8x8 on Mesa 26's lavapipe (backend/gpu/coop_shape.rs).
        let side = a["tensor_f16_tile"].as_u64();
        assert_eq!(why.is_null(), side.is_some(), "a tile side exactly where they can run: {a}");
        if let Some(t) = side {
            let config = format!("{t}x{t}x{t} f16*f16->f32");
            assert!([8, 16].contains(&t), "{a}");
            assert!(configs.iter().any(|c| c.as_str().is_some_and(|c| c.starts_with(&config))), "{a}");
        }
    }
    let o = run(&["devices"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("max_storage_buffer_binding_size"), "{text}");
    assert!(
        text.contains("cooperative matrices: ") && text.contains("f16 products on tensor cores: "),
        "{text}"
    );
    // The CPU backend last, with its threads (and the system BLAS, where one is loaded).
    let cpu = text.lines().last().unwrap_or_default();
    assert!(cpu.starts_with("[cpu] CPU (") && cpu.contains(" threads"), "{text}");
}

/// `--adapter` with digits only is an index of `batchscope devices` (never a name substring: "1"
/// is in "LLVM 15.0.6"), for one worker as for a `--workers` list; and it is refused, not
/// ignored, next to `--backend cpu`.
#[test]
fn adapter_digits_are_indices_and_cpu_refuses_an_adapter() {
    let d = tmpdir("adapter-index");
    let c = write(&d, "tiny.toml", &tiny());
    // `train --backend BACKEND --adapter ADAPTER` of the tiny config into `d/NAME`.
    let train = |backend: &str, adapter: &str, name: &str| {
        let out = d.join(name);
        let o = run(&[
            "train",
            "--backend",
            backend,
            "--quiet",
            "--config",
            c.to_str().expect("utf-8"),
            "--adapter",
            adapter,
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        (o, out)
    };
    let o = run(&["devices", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let n = v["adapters"].as_array().map_or(0, Vec::len);
    assert!(n > 0, "no GPU adapter: install a Vulkan driver (apt-get install -y mesa-vulkan-drivers)");
    let (o, _) = train("gpu", &n.to_string(), "past");
    assert_clean_error(&o, &format!("no adapter matches `--adapter {n}`"));
    assert!(stderr(&o).contains("0: "), "the error lists the indices: {}", stderr(&o));
    let (o, _) = train("gpu", "0", "first");
    assert!(o.status.success(), "--adapter 0: {}", stderr(&o));
    // A part of a name that two adapters hold is refused with the matches (it took the first):
    // here lavapipe (Vulkan) and llvmpipe (GL) are both `llvmpipe (…)`.
    let names: Vec<String> = v["adapters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["name"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    let shared: String = match names.as_slice() {
        [a, b, ..] => {
            a.chars().zip(b.chars()).take_while(|(x, y)| x == y).map(|p| p.0).take(4).collect()
        }
        _ => String::new(),
    };
    if !shared.is_empty() && !names.contains(&shared) {
        let (o, out) = train("gpu", &shared, "shared");
        assert_clean_error(&o, &format!("`--adapter {shared}` matches"));
        assert!(stderr(&o).contains("0: ") && stderr(&o).contains("1: "), "{}", stderr(&o));
        assert!(!out.exists(), "a refused run leaves no directory");
    } else {
        eprintln!("one adapter, or no shared name: the ambiguous --adapter case is not run");
    }
    let (o, out) = train("cpu", "0", "cpu");
    assert_clean_error(&o, "--backend is cpu");
    assert!(!out.exists(), "a refused run leaves no directory");
}

#[test]
fn sweep_on_the_gpu_writes_sane_csv_and_plots() {
    let d = tmpdir("sweep");
    let c = write(&d, "tiny.toml", &tiny());
    let out = d.join("s");
    let o = run(&[
        "sweep",
        "--backend",
        "gpu",
        "--quiet",
        "--config",
        c.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = read_csv(&out.join("sweep.csv"));
    for col in [
        "batch",
        "ms_per_step_median",
        "ms_min",
        "ms_max",
        "examples_per_s",
        "gflops",
        "fraction_of_peak",
        "host_overhead_ms",
        "bytes_predicted",
        "timing",
    ] {
        assert!(header.iter().any(|h| h == col), "column {col} missing");
    }
    assert_eq!(rows.len(), 9, "B = 1..256");
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    for r in &rows {
        for name in
            ["ms_per_step_median", "examples_per_s", "gflops", "fraction_of_peak", "bytes_predicted"]
        {
            let v: f64 = r[col(name)].parse().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{name} = {} in {r:?}", r[col(name)]);
        }
    }
    for f in ["summary.json", "throughput.svg", "utilization.svg", "ms_per_step.svg", "config.toml"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert!(s["chosen_batch"].as_u64().is_some(), "{s}");
}

#[test]
fn tiny_memory_budget_skips_large_batches_with_a_reason() {
    let d = tmpdir("budget");
    let c = write(&d, "tiny.toml", &tiny());
    let out = d.join("s");
    // 1 MiB: the model fits at small B, its activations do not at large B.
    let o = run(&[
        "sweep",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        c.to_str().unwrap_or_default(),
        "--set",
        "model.hidden=[512]",
        "--set",
        "sweep.memory_budget_mib=1",
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = read_csv(&out.join("sweep.csv"));
    let skipped = header.iter().position(|h| h == "skipped").expect("skipped column");
    let reasons: Vec<&String> = rows.iter().map(|r| &r[skipped]).filter(|s| !s.is_empty()).collect();
    assert!(!reasons.is_empty(), "some batch sizes must be skipped");
    assert!(reasons.iter().all(|r| r.contains("budget")), "{reasons:?}");
    assert!(rows[0][skipped].is_empty(), "B = 1 fits");
}

/// Both backends' rows; `sweep.peak_gflops` is the GPU's peak, and the CPU's "% of peak" is
/// against its own measured one (one given peak was applied to both devices).
#[test]
fn compare_runs_both_backends() {
    let d = tmpdir("compare");
    let c = write(&d, "tiny.toml", &tiny());
    let out = d.join("c");
    let o = run(&[
        "compare",
        "--quiet",
        "--config",
        c.to_str().unwrap_or_default(),
        "--max-batch",
        "16",
        "--set",
        "sweep.peak_gflops=12345",
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("sweep.peak_gflops = 12345 is the GPU's peak"), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("JSON");
    assert_eq!(summary["gpu"]["peak_gflops"], 12345.0);
    let cpu_peak = summary["cpu"]["peak_gflops"].as_f64().expect("the CPU's peak");
    assert!(cpu_peak > 0.0 && cpu_peak != 12345.0, "{cpu_peak}");
    let (header, rows) = read_csv(&out.join("sweep.csv"));
    let b = header.iter().position(|h| h == "backend").expect("backend column");
    assert!(rows.iter().any(|r| r[b] == "gpu") && rows.iter().any(|r| r[b] == "cpu"));
    assert!(out.join("compare.svg").exists() && out.join("speedup.svg").exists());
    assert!(String::from_utf8_lossy(&o.stdout).contains("speedup CI"));
    // Each speedup comes with its bootstrap interval, around it (a percentile interval need not
    // hold its point estimate exactly: 5 % slack).
    let speedups = summary["speedup"].as_array().expect("speedup");
    assert!(!speedups.is_empty());
    for s in speedups {
        let f = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} in {s}"));
        let (lo, point, hi) = (f("ci_low"), f("gpu_over_cpu"), f("ci_high"));
        assert!(0.0 < lo && lo <= hi && lo <= 1.05 * point && 0.95 * point <= hi, "{s}");
    }
}

#[test]
fn sweep_time_budget_skips_what_would_overrun() {
    let d = tmpdir("time-budget");
    let c = write(&d, "tiny.toml", &tiny());
    let out = d.join("s");
    let o = run(&[
        "sweep",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        c.to_str().unwrap_or_default(),
        "--set",
        "sweep.time_budget_s=0.000001",
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = read_csv(&out.join("sweep.csv"));
    let skipped = header.iter().position(|h| h == "skipped").expect("skipped column");
    assert!(rows[0][skipped].is_empty(), "the first batch size is always measured");
    assert!(rows[1..].iter().all(|r| r[skipped].contains("time_budget_s")), "{rows:?}");
}

/// `--resume` on `--backend auto` goes on where the run was trained: a run on the (software)
/// GPU adapter went on on the CPU backend, which `auto` prefers to a software adapter, without
/// a word, and was no longer the run it began as, bit for bit.
#[test]
fn a_resume_goes_on_on_the_backend_the_run_was_trained_on() {
    let d = tmpdir("resume-backend");
    let cfg = write(&d, "c.toml", &tiny());
    let (cs, gpu_run, cpu_run) = (cfg.to_str().unwrap_or_default(), d.join("gpu"), d.join("cpu"));
    for (backend, dir) in [("gpu", &gpu_run), ("cpu", &cpu_run)] {
        let o = run(&[
            "train",
            "--backend",
            backend,
            "--quiet",
            "--config",
            cs,
            "--set",
            "train.epochs=1",
            "--out",
            dir.to_str().unwrap_or_default(),
        ]);
        assert!(o.status.success(), "{backend}: {}", stderr(&o));
    }
    let device = |dir: &Path| {
        let s = std::fs::read_to_string(dir.join("summary.json")).expect("summary");
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        v["backend"].as_str().map(str::to_string).expect("backend")
    };
    let trained = (device(&gpu_run), device(&cpu_run));
    for dir in [&gpu_run, &cpu_run] {
        let o = resume_to_two_epochs(dir, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!((device(&gpu_run), device(&cpu_run)), trained, "each went on where it began");
    let _ = std::fs::remove_dir_all(&d);
}

//! Requests that cannot fit (huge widths, dimensions, classes, batch sizes), `.npy` shapes to
//! infer, and a bare `batchscope`, through the binary. Each impossible request is exit 2 with
//! exactly one `error:` line and no panic, is refused before anything big is allocated (the
//! child's peak RSS stays under 200 MiB), and leaves an existing run directory byte-identical.

mod common;
use common::cli::{assert_clean_error, snapshot, stderr};
use common::tmpdir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn tiny() -> String {
    common::tiny_config(1, 64, 2)
}

const MAX_RSS_KIB: u64 = 200 * 1024;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batchscope"));
    c.env("RUST_LOG", "error");
    c
}

/// VmHWM (peak resident set) of a running process, KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run to completion, polling the child's peak RSS: `(output, peak KiB seen)`.
fn run_measured(args: &[&str]) -> (Output, u64) {
    run_measured_with(args, &[])
}

/// [`run_measured`] with environment variables set.
fn run_measured_with(args: &[&str], env: &[(&str, &str)]) -> (Output, u64) {
    let mut child = bin()
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn batchscope");
    let pid = child.id();
    let mut peak = 0;
    // Pipes are small and errors are one line, so polling before reading cannot deadlock here;
    // a child still running after two minutes is a failure in itself.
    for _ in 0..24_000 {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if child.try_wait().expect("wait").is_none() {
        let _ = child.kill();
        panic!("batchscope {args:?} still running after two minutes");
    }
    let out = child.wait_with_output().expect("output");
    (out, peak)
}

/// A tiny CPU train run: its directory and config path.
fn existing_run(d: &Path) -> (PathBuf, PathBuf) {
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, tiny()).expect("write config");
    let run = d.join("run");
    let o = bin()
        .args(["train", "--backend", "cpu", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&run)
        .output()
        .expect("train");
    assert!(o.status.success(), "{}", stderr(&o));
    (run, cfg)
}

#[test]
fn no_command_is_one_error_line() {
    let o = bin().output().expect("run");
    assert_clean_error(&o, &["no command", "--help"]);
    assert!(stderr(&o).lines().count() <= 4, "short usage only: {}", stderr(&o));
}

#[test]
fn impossible_sizes_are_refused_before_allocating() {
    let d = tmpdir("huge");
    let (run, cfg) = existing_run(&d);
    let before = snapshot(&run);
    let cfg = cfg.to_str().unwrap_or_default();
    let out = run.to_str().unwrap_or_default();
    let cases: &[(&[&str], &str, &[&str])] = &[
        (&["train"], "model.hidden=[1000000000]", &["1000000000", "bytes"]),
        (&["train"], "model.hidden=[100000,100000]", &["100000", "bytes"]),
        // The class means' table past what the host generates, named by its larger factor.
        (&["train"], "data.dim=1000000000", &["data.dim", "1000000000", "2^28"]),
        (&["train"], "data.classes=1000000000", &["data.classes", "1000000000", "2^28"]),
        (&["sweep"], "model.hidden=[1000000000]", &["bytes"]),
        (&["noise"], "model.hidden=[1000000000]", &["bytes"]),
        (&["curvature"], "model.hidden=[1000000000]", &["bytes"]),
        (&["time-to-target"], "model.hidden=[1000000000]", &["bytes"]),
        (&["profile"], "model.hidden=[1000000000]", &["bytes"]),
        (&["compare"], "model.hidden=[1000000000]", &["bytes"]),
    ];
    for (cmd, set, needles) in cases {
        let mut args: Vec<&str> = cmd.to_vec();
        if cmd[0] != "compare" {
            args.extend(["--backend", "cpu"]);
        }
        args.extend(["--quiet", "--config", cfg, "--set", set, "--out", out]);
        let (o, peak) = run_measured(&args);
        assert_clean_error(&o, needles);
        assert!(peak < MAX_RSS_KIB, "{cmd:?} {set}: peak RSS {peak} KiB");
        assert_eq!(snapshot(&run), before, "{cmd:?} {set} changed the run directory");
    }
}

#[test]
fn cpu_sweep_skips_batches_past_host_memory() {
    let d = tmpdir("sweep-host");
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, tiny()).expect("write config");
    let out = d.join("s");
    let o = bin()
        .args(["sweep", "--backend", "cpu", "--quiet", "--config"])
        .arg(&cfg)
        .args(["--max-batch", "1099511627776", "--set", "sweep.time_budget_s=2"])
        // A streamed training set of 2^40 examples: every batch size up to it is trainable, so
        // the sweep goes there (it stops at the training set) and must skip, not allocate.
        .args(["--set", "data.mode=\"stream\"", "--set", "data.n_train=1099511627776", "--out"])
        .arg(&out)
        .output()
        .expect("sweep");
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = common::read_csv(&out.join("sweep.csv"));
    let skipped = header.iter().position(|h| h == "skipped").expect("skipped column");
    let batch = header.iter().position(|h| h == "batch").expect("batch column");
    let last = rows.last().expect("rows");
    assert_eq!(last[batch], "1099511627776");
    // Skipped before anything is allocated (the time budget, checked first, or host memory).
    assert!(!last[skipped].is_empty(), "{last:?}");
}

fn write_npy(d: &Path, n: usize, dim: usize, classes: u32) -> (PathBuf, PathBuf) {
    let x: Vec<f32> = (0..n * dim).map(|i| ((i * 37 % 11) as f32 - 5.0) / 5.0).collect();
    let y: Vec<u32> = (0..n as u32).map(|i| i % classes).collect();
    let (fx, fy) = (d.join("x.npy"), d.join("y.npy"));
    batchscope::data::npy::write_npy_f32(&fx, &[n, dim], &x).expect("features");
    batchscope::data::npy::write_npy_labels(&fy, &y).expect("labels");
    (fx, fy)
}

#[test]
fn npy_dim_and_classes_are_inferred_and_the_split_printed() {
    let d = tmpdir("npy-infer");
    let (fx, fy) = write_npy(&d, 128, 5, 3);
    let cfg = d.join("npy.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\nhidden = [8]\n[data]\nkind = \"npy\"\ndim = 0\nfeatures = {:?}\nlabels = {:?}\n\
             [train]\nbatch_size = 16\nepochs = 1\n",
            fx.to_str().unwrap_or_default(),
            fy.to_str().unwrap_or_default()
        ),
    )
    .expect("write config");
    let out = d.join("run");
    let o = bin()
        .args(["train", "--backend", "cpu", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("train");
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let split: Vec<&str> = err.lines().filter(|l| l.starts_with("data: 128 rows from")).collect();
    assert_eq!(split.len(), 1, "{err}");
    assert!(split[0].contains("115 train / 13 validation (data.val_fraction = 0.1)"), "{}", split[0]);
    let written = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    assert!(written.contains("dim = 5"), "{written}");
    assert!(written.contains("classes = 3"), "{written}");
}

#[test]
fn npy_labels_past_given_classes_still_fail_cleanly() {
    let d = tmpdir("npy-classes");
    let (fx, fy) = write_npy(&d, 32, 4, 5);
    let cfg = d.join("npy.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\nhidden = [8]\n[data]\nkind = \"npy\"\ndim = 0\nclasses = 3\nfeatures = {:?}\nlabels = {:?}\n\
             [train]\nbatch_size = 8\nepochs = 1\n",
            fx.to_str().unwrap_or_default(),
            fy.to_str().unwrap_or_default()
        ),
    )
    .expect("write config");
    let o = bin()
        .args(["train", "--backend", "cpu", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(d.join("run"))
        .output()
        .expect("train");
    assert_clean_error(&o, &["y.npy"]);
}

#[test]
fn cpu_train_batch_past_host_memory_is_refused() {
    // `--backend cpu`, and `auto` where no GPU adapter is found (the Vulkan loader pointed at no
    // driver, on any machine): both refuse the step before the run directory exists; `auto`
    // once it has resolved to the CPU, as the notice says.
    let no_gpu = [
        ("WGPU_BACKEND", "vulkan"),
        ("VK_ICD_FILENAMES", "/nonexistent"),
        ("VK_DRIVER_FILES", "/nonexistent"),
    ];
    for (backend, env) in [("cpu", &[][..]), ("auto", &no_gpu[..])] {
        let d = tmpdir(&format!("big-batch-{backend}"));
        let cfg = d.join("tiny.toml");
        std::fs::write(&cfg, tiny()).expect("write config");
        let out = d.join("run");
        let (o, peak) = run_measured_with(
            &[
                "train",
                "--backend",
                backend,
                "--quiet",
                "--config",
                cfg.to_str().unwrap_or_default(),
                "--set",
                "train.batch_size=1000000000000",
                // A streamed training set as large as the batch: the batch fits the data, not
                // the host.
                "--set",
                "data.mode=\"stream\"",
                "--set",
                "data.n_train=2000000000000",
                "--out",
                out.to_str().unwrap_or_default(),
            ],
            env,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        if backend == "auto" {
            assert!(
                err.contains("running on the CPU backend"),
                "auto did not resolve to the CPU: {err}"
            );
        }
        assert_clean_error(&o, &["1000000000000", "bytes"]);
        assert!(peak < MAX_RSS_KIB, "{backend}: peak RSS {peak} KiB");
        assert!(!out.exists(), "{backend}: {} was created", out.display());
        assert!(!err.contains("removed"), "{backend}: the run directory was made, then removed: {err}");
    }
}

#[test]
fn impossible_rnn_sizes_are_refused_before_allocating() {
    let d = tmpdir("rnn-huge");
    let (run, _) = existing_run(&d);
    let before = snapshot(&run);
    let out = run.to_str().unwrap_or_default();
    let fresh = d.join("fresh");
    let fresh_out = fresh.to_str().unwrap_or_default();
    // The embedded rnn default (4 variants), with one size made impossible. A product that
    // overflows 64 bits says so ("byte count"); the others name the bytes and the limit.
    let cases: &[(&[&str], &[&str])] = &[
        (&["rnn.hidden=1000000000"], &["rnn.hidden = 1000000000", "byte"]),
        (&["rnn.hidden=100000000"], &["rnn.hidden = 100000000", "bytes"]),
        (&["rnn.hidden=4000000000"], &["rnn.hidden = 4000000000", "byte"]),
        (
            &["sequence.length=10000", "sequence.n_train=1000000000"],
            &["sequence.length = 10000", "bytes"],
        ),
        (&["sequence.task=\"copy\"", "sequence.symbols=1000000000"], &["1000000001 inputs", "bytes"]),
        (&["train.batch_size=1000000000000", "sequence.n_train=1000000000000"], &["bytes"]),
    ];
    for backend in ["cpu", "gpu"] {
        for (sets, needles) in cases {
            for target in [out, fresh_out] {
                let mut args = vec!["rnn", "--backend", backend, "--quiet", "--out", target];
                for s in *sets {
                    args.extend(["--set", s]);
                }
                let (o, peak) = run_measured(&args);
                assert_clean_error(&o, needles);
                assert!(peak < MAX_RSS_KIB, "{backend} {sets:?}: peak RSS {peak} KiB");
                assert_eq!(snapshot(&run), before, "{sets:?} changed the run directory");
                assert!(!fresh.exists(), "{sets:?} created {}", fresh.display());
            }
        }
    }
}

/// `profile --batch N` past what the device (here the host: the CPU backend) holds: one error
/// naming the flag before anything is allocated or the run directory made (it panicked with a
/// capacity overflow, or aborted allocating 137 GB).
#[test]
fn profile_batches_that_cannot_fit_are_refused_before_allocating() {
    let d = tmpdir("profile-huge");
    let (run, cfg) = existing_run(&d);
    let before = snapshot(&run);
    let cfg = cfg.to_str().unwrap_or_default();
    let fresh = d.join("fresh");
    for batch in ["1099511627776", "4294967296", "18446744073709551615"] {
        for target in [&run, &fresh] {
            let (o, peak) = run_measured(&[
                "profile",
                "--backend",
                "cpu",
                "--quiet",
                "--config",
                cfg,
                "--batch",
                "4",
                "--batch",
                batch,
                "--out",
                target.to_str().unwrap_or_default(),
            ]);
            assert_clean_error(&o, &["--batch", batch]);
            assert!(peak < MAX_RSS_KIB, "--batch {batch}: peak RSS {peak} KiB");
            assert_eq!(snapshot(&run), before, "--batch {batch} changed the run directory");
            assert!(!fresh.exists(), "--batch {batch} created {}", fresh.display());
        }
    }
}

/// Replicas on a software adapter (lavapipe) each hold the data in host memory, as CPU replicas
/// do: `--workers 4` of 3.1 GB each under a 12 GB address-space limit is refused before the run
/// directory on both backends (on lavapipe it was admitted, and lost its device to an
/// out-of-memory error 39 s in). A hardware adapter keeps them in its own memory.
#[test]
fn software_adapter_replicas_count_their_data_copies_against_host_memory() {
    use batchscope::backend::Backend;
    let gpu_on_host = common::gpu().buffers_in_host_memory();
    let d = tmpdir("replica-copies");
    for backend in ["cpu", "gpu"] {
        if backend == "gpu" && !gpu_on_host {
            println!("the GPU adapter keeps its buffers in its own memory: only the CPU case applies");
            continue;
        }
        let out = d.join(backend);
        let o = Command::new("sh")
            .args(["-c", "ulimit -v 12000000 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_batchscope")])
            .args(["train", "--backend", backend, "--quiet", "--workers", "4"])
            .args(["--set", "data.n_train=1000000", "--set", "data.dim=784"])
            .args(["--set", "train.batch_size=64", "--out", out.to_str().expect("utf-8")])
            .env("RUST_LOG", "error")
            .env("XDG_RUNTIME_DIR", &d)
            .output()
            .expect("run batchscope under ulimit");
        assert_clean_error(&o, &["train.workers = 4 replicas", "host memory"]);
        assert!(!out.exists(), "{backend}: a refused run left its directory");
        if backend == "gpu" {
            assert!(stderr(&o).contains("whose buffers are host memory"), "{}", stderr(&o));
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

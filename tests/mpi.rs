//! Many hosts through MPI (issue 15 item 3), on one host: `mpirun --allow-run-as-root
//! --oversubscribe -np 2 batchscope train ... --mpi` on the CPU backend (and lavapipe).
//!
//! - 2 ranks reproduce the one-worker 100-step trajectory within 1e-6 relative, run bitwise the
//!   same twice, and equal `--workers 2` in one process bitwise (same summation order);
//! - `kill -9` of one rank ends the job on every rank within the timeout, a resume with another
//!   rank count is refused, and `--resume` with 2 ranks is bitwise the uninterrupted run;
//! - a rank on a different config, or whose device fails, ends every rank with one error line;
//! - f16 (issue 16) from an overflowing loss scale: 2 ranks equal `--workers 2` in one process
//!   bitwise (losses, scales, skipped steps, parameters, scaler state), and `--resume` with 2
//!   ranks is bitwise the uninterrupted 2-rank run.
//!
//! Run with `cargo test --release --locked --features mpi --test mpi` (needs Open MPI's mpirun).
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use batchscope::train::checkpoint;
use common::tmpdir;

const BIN: &str = env!("CARGO_BIN_EXE_batchscope");

use common::SMALL_PARALLEL_TOML as SMALL;

/// Collective timeout of the tests' jobs, seconds.
const TIMEOUT_S: u64 = 30;

fn config(d: &Path, text: &str) -> String {
    let p = d.join("c.toml");
    std::fs::write(&p, text).expect("write config");
    p.to_str().expect("utf-8").to_string()
}

/// `batchscope train --backend cpu --quiet ARGS` in one process.
fn train(args: &[&str]) -> Output {
    let o = Command::new(BIN)
        .args(["train", "--backend", "cpu", "--quiet"])
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run batchscope");
    o
}

/// `mpirun` over the per-rank argument lists `ranks` (one process each, `:`-separated).
fn mpirun(ranks: &[Vec<String>]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe"]);
    for (i, args) in ranks.iter().enumerate() {
        if i > 0 {
            c.arg(":");
        }
        c.args(["-np", "1", BIN, "train", "--quiet"]).args(args).arg("--mpi");
    }
    c.env("RUST_LOG", "error").env("BATCHSCOPE_MPI_TIMEOUT", TIMEOUT_S.to_string());
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Two ranks with the same `args` on the CPU backend.
fn two_ranks(args: &[&str]) -> Command {
    let mut a: Vec<String> = vec!["--backend".into(), "cpu".into()];
    a.extend(args.iter().map(|s| s.to_string()));
    mpirun(&[a.clone(), a])
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn assert_ok(what: &str, o: &Output) {
    assert!(o.status.success(), "{what} failed:\n{}", text(o));
    assert!(!text(o).contains("panicked"), "{what}:\n{}", text(o));
}

/// metrics.jsonl as JSON values without wall times and per-process byte counts.
fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let o = v.as_object_mut().expect("object");
            for k in ["elapsed_s", "allreduce_us", "allreduce_bytes"] {
                o.remove(k);
            }
            v
        })
        .collect()
}

fn loss(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key).and_then(|x| x.as_f64())
}

/// The bits of every tensor of `dir/last.safetensors`.
fn last_tensors(dir: &Path) -> Vec<(String, Vec<u32>)> {
    checkpoint::load(&dir.join("last.safetensors"))
        .expect("last.safetensors")
        .tensors
        .into_iter()
        .map(|t| (t.name, t.data.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// The `error: rank R:` lines of a job's output, per rank.
fn error_lines(out: &str, rank: usize) -> Vec<String> {
    let tag = format!("error: rank {rank}:");
    out.lines().filter(|l| l.starts_with(&tag)).map(str::to_string).collect()
}

#[test]
fn two_ranks_reproduce_one_worker_and_equal_two_workers_bitwise() {
    let d = tmpdir("trajectory");
    let c = config(&d, SMALL);
    let out = |n: &str| d.join(n).to_str().expect("utf-8").to_string();
    assert_ok("1 worker", &train(&["--config", &c, "--out", &out("one")]));
    assert_ok("--workers 2", &train(&["--config", &c, "--workers", "2", "--out", &out("w2")]));
    for run in ["mpi-a", "mpi-b"] {
        let o = two_ranks(&["--config", &c, "--out", &out(run)]).output().expect("mpirun");
        assert_ok("2 ranks", &o);
    }
    let (one, w2) = (metrics(&d.join("one")), metrics(&d.join("w2")));
    let (a, b) = (metrics(&d.join("mpi-a")), metrics(&d.join("mpi-b")));
    assert_eq!(one.len(), 100, "100 logged steps");
    assert_eq!(a.len(), one.len());
    let mut worst = 0.0f64;
    for (r, o) in one.iter().zip(&a) {
        assert_eq!(r["step"], o["step"]);
        for key in ["train_loss", "val_loss"] {
            if let (Some(x), Some(y)) = (loss(r, key), loss(o, key)) {
                let rel = (x - y).abs() / x.abs().max(1e-30);
                worst = worst.max(rel);
                assert!(rel <= 1e-6, "step {}: {key} {x} vs {y} ({rel:.2e})", r["step"]);
            }
        }
    }
    println!("2 ranks vs 1 worker: 100 steps within {worst:.2e} relative");
    assert_eq!(a, b, "2 ranks run twice differ");
    assert_eq!(a, w2, "2 ranks differ from --workers 2 in one process");
    assert_eq!(last_tensors(&d.join("mpi-a")), last_tensors(&d.join("w2")));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("mpi-a/summary.json")).expect("summary"))
            .expect("summary json");
    let dp = &s["data_parallel"];
    assert_eq!((dp["ranks"].as_u64(), dp["workers"].as_u64()), (Some(2), Some(2)), "{dp}");
    assert_eq!(dp["reducer"], "mpi");
    assert_eq!(dp["replicas_identical"], true);
}

/// Processes whose parent is `parent` and whose environment names MPI rank `rank`.
fn rank_pid(parent: u32, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // "pid (comm) state ppid ...": the fields after the last ')'.
        let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1));
        if ppid.and_then(|p| p.parse::<u32>().ok()) != Some(parent) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Wait for `child` up to `limit`; kill it and fail if it runs longer.
fn wait_for(mut child: Child, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return (child.wait_with_output().expect("output"), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!("the job still ran {limit:?} after the kill:\n{}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_of_a_rank_ends_the_job_and_resume_with_2_ranks_is_bitwise() {
    let d = tmpdir("kill");
    let long = SMALL.replace("steps = 100", "steps = 3000").replace("log_every = 1", "log_every = 10")
        + "checkpoint_every = 20\n";
    let c = config(&d, &long);
    let (full, part) = (d.join("full"), d.join("part"));
    let o =
        two_ranks(&["--config", &c, "--out", full.to_str().expect("utf-8")]).output().expect("mpirun");
    assert_ok("uninterrupted 2 ranks", &o);

    let child =
        two_ranks(&["--config", &c, "--out", part.to_str().expect("utf-8")]).spawn().expect("mpirun");
    let start = Instant::now();
    while !part.join("last.safetensors").exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint written");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = rank_pid(child.id(), 1).expect("rank 1's process");
    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
    assert!(killed.success());
    let (o, took) = wait_for(child, Duration::from_secs(TIMEOUT_S + 30));
    let out = text(&o);
    assert!(!o.status.success(), "the job succeeded after kill -9 of rank 1:\n{out}");
    assert_eq!(error_lines(&out, 0).len(), 1, "rank 0 reports once:\n{out}");
    println!("kill -9 of rank 1: the job ended after {took:?}");
    let steps = metrics(&part).len();
    assert!(steps < metrics(&full).len(), "the kill landed after the run ended");

    // Another rank count: refused, the run directory unchanged.
    let before = common::cli::snapshot(&part);
    let o = train(&["--resume", part.to_str().expect("utf-8")]);
    assert!(!o.status.success());
    assert!(text(&o).contains("trained on 2 MPI ranks, this job has one process"), "{}", text(&o));
    assert_eq!(before, common::cli::snapshot(&part), "a refused resume changed the run directory");

    let o = two_ranks(&["--resume", part.to_str().expect("utf-8")]).output().expect("mpirun");
    assert_ok("resume with 2 ranks", &o);
    assert_eq!(metrics(&part), metrics(&full), "resumed metrics differ");
    assert_eq!(last_tensors(&part), last_tensors(&full), "resumed parameters differ");
}

#[test]
fn a_rank_on_another_config_fails_every_rank_with_one_line() {
    let d = tmpdir("mismatch");
    let c = config(&d, SMALL);
    let out = d.join("run");
    let rank = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> =
            ["--backend", "cpu", "--config", &c, "--out", out.to_str().expect("utf-8")]
                .iter()
                .map(|s| s.to_string())
                .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let start = Instant::now();
    let o = mpirun(&[rank(&[]), rank(&["--set", "train.lr=0.1"])]).output().expect("mpirun");
    let out_text = text(&o);
    assert!(!o.status.success(), "{out_text}");
    assert!(start.elapsed() < Duration::from_secs(TIMEOUT_S), "took {:?}", start.elapsed());
    for r in 0..2 {
        let lines = error_lines(&out_text, r);
        assert_eq!(lines.len(), 1, "rank {r}: one error line:\n{out_text}");
        assert!(lines[0].contains("the ranks disagree on the config"), "{}", lines[0]);
    }
    assert!(!out.exists(), "a run directory was created");
}

#[test]
fn a_rank_whose_device_fails_ends_every_rank_with_one_line() {
    let d = tmpdir("device");
    let c = config(&d, SMALL);
    let out = d.join("run");
    let common: Vec<String> =
        ["--config", &c, "--out", out.to_str().expect("utf-8")].iter().map(|s| s.to_string()).collect();
    let mut good = vec!["--backend".to_string(), "cpu".to_string()];
    good.extend(common.clone());
    let mut bad: Vec<String> =
        ["--backend", "gpu", "--adapter", "no-such-adapter"].iter().map(|s| s.to_string()).collect();
    bad.extend(common);
    let start = Instant::now();
    let o = mpirun(&[good, bad]).output().expect("mpirun");
    let out_text = text(&o);
    assert!(!o.status.success(), "{out_text}");
    assert!(start.elapsed() < Duration::from_secs(TIMEOUT_S), "took {:?}", start.elapsed());
    let (r0, r1) = (error_lines(&out_text, 0), error_lines(&out_text, 1));
    assert_eq!((r0.len(), r1.len()), (1, 1), "one error line per rank:\n{out_text}");
    assert!(r1[0].contains("no-such-adapter"), "{}", r1[0]);
    assert!(r0[0].contains("rank 1 failed"), "{}", r0[0]);
}

/// `train.max_seconds` under MPI: each rank's clock would stop it at another step and the
/// others would wait on its gradients for ever, so every rank refuses it.
/// Two ranks training SMALL with `--set SET`: refused with one error line per rank holding
/// `want`, and no run directory.
fn refused_on_every_rank(tag: &str, set: &str, want: &str) {
    let d = tmpdir(tag);
    let c = config(&d, SMALL);
    let out = d.join("run");
    let args = ["--config", &c, "--set", set, "--out", out.to_str().expect("utf-8")];
    let o = two_ranks(&args).output().expect("mpirun");
    let out_text = text(&o);
    assert!(!o.status.success(), "{out_text}");
    for r in 0..2 {
        let lines = error_lines(&out_text, r);
        assert_eq!(lines.len(), 1, "rank {r}: one error line:\n{out_text}");
        assert!(lines[0].contains(want), "{}", lines[0]);
    }
    assert!(!out.exists(), "a run directory was created");
}

#[test]
fn max_seconds_is_refused_on_every_rank() {
    refused_on_every_rank(
        "max-seconds",
        "train.max_seconds=10",
        "--mpi does not take train.max_seconds",
    );
}

/// The curvature monitor's R-operator pass is whole-batch, one process's: with ranks it never
/// ran, and every monitored line said gᵀHg = 0 and a predicted ΔL of 0.
#[test]
fn the_curvature_monitor_is_refused_with_ranks() {
    refused_on_every_rank("monitor-ranks", "monitor.curvature_every=2", "monitor.curvature_every");
}

#[test]
fn a_plain_train_started_by_mpirun_is_refused() {
    let d = tmpdir("plain");
    let c = config(&d, SMALL);
    let o = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2", BIN, "train", "--backend", "cpu"])
        .args(["--quiet", "--config", &c, "--out", d.join("run").to_str().expect("utf-8")])
        .output()
        .expect("mpirun");
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("started by mpirun as one of 2 processes without --mpi"), "{out}");
    assert!(!d.join("run").exists(), "a run directory was created");
}

#[test]
fn two_lavapipe_ranks_equal_two_workers_bitwise() {
    let d = tmpdir("gpu");
    let c = config(&d, &SMALL.replace("steps = 100", "steps = 20"));
    let w2: PathBuf = d.join("w2");
    let o = Command::new(BIN)
        .args(["train", "--backend", "gpu", "--quiet", "--config", &c, "--workers", "2"])
        .args(["--out", w2.to_str().expect("utf-8")])
        .env("RUST_LOG", "error")
        .output()
        .expect("run batchscope");
    assert_ok("--workers 2 on lavapipe", &o);
    let mpi = d.join("mpi");
    let a: Vec<String> = ["--backend", "gpu", "--config", &c, "--out", mpi.to_str().expect("utf-8")]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let o = mpirun(&[a.clone(), a]).output().expect("mpirun");
    assert_ok("2 lavapipe ranks", &o);
    assert_eq!(metrics(&mpi), metrics(&w2), "2 lavapipe ranks differ from --workers 2");
}

/// SMALL in f16 from a loss scale of 2^40 (every f16 gradient overflows: the first steps are
/// skipped, the scale halving) with growth every 4 clean steps, so the scaler moves all run long.
fn f16_small() -> String {
    SMALL.replace("[model]\n", "[model]\nprecision = \"f16\"\n")
        + "loss_scale = 1099511627776.0\nloss_scale_growth_interval = 4\ncheckpoint_every = 10\n"
}

/// The loss-scaler state in `dir/last.safetensors`' metadata.
fn scaler_meta(dir: &Path) -> Vec<String> {
    let ck = checkpoint::load(&dir.join("last.safetensors")).expect("last.safetensors");
    ["amp.loss_scale", "amp.clean_steps", "amp.skipped_steps"]
        .iter()
        .map(|k| ck.metadata.get(*k).cloned().unwrap_or_else(|| panic!("{k} in the checkpoint")))
        .collect()
}

fn skipped(v: &serde_json::Value) -> u64 {
    v["skipped_steps"].as_u64().expect("skipped_steps in an f16 metrics line")
}

/// f16 on 2 ranks × n workers × k micro-batches: every micro-batch's loss is scaled by
/// S/(2·n·k), the loss-scaled gradients of both ranks are gathered and summed in replica order
/// as `--workers 2n` sums them, and every rank unscales the same sum from the same scale (one
/// found-inf decision), so the run equals the in-process one bitwise, skips and all.
#[test]
fn f16_two_ranks_equal_two_workers_bitwise_through_overflow() {
    let d = tmpdir("f16");
    let c = config(&d, &f16_small());
    let out = |n: &str| d.join(n).to_str().expect("utf-8").to_string();
    for (n, k) in [(1, 1), (2, 2)] {
        let (local, acc) = (n.to_string(), format!("train.accumulate={k}"));
        let (tag, total) = (format!("n{n}k{k}"), (2 * n).to_string());
        let (w, r) = (format!("w-{tag}"), format!("mpi-{tag}"));
        let one = ["--config", &c, "--workers", &total, "--set", &acc, "--out", &out(&w)];
        assert_ok(&format!("f16 --workers {total}, {acc}"), &train(&one));
        let o = two_ranks(&["--config", &c, "--workers", &local, "--set", &acc, "--out", &out(&r)])
            .output()
            .expect("mpirun");
        assert_ok(&format!("f16 on 2 ranks × {n} workers, {acc}"), &o);
        let (inproc, mpi) = (metrics(&d.join(&w)), metrics(&d.join(&r)));
        assert_eq!(mpi.len(), 100, "100 logged steps");
        let last = mpi.last().expect("a line");
        assert!(skipped(last) >= 10, "2^40 overflows f16 for many halvings: {last}");
        let scales: Vec<f64> = mpi.iter().filter_map(|v| loss(v, "loss_scale")).collect();
        assert_eq!(scales.len(), mpi.len(), "every f16 line has loss_scale");
        assert!(scales.windows(2).any(|w| w[1] < w[0]), "the scale halves");
        assert!(scales.windows(2).any(|w| w[1] > w[0]), "the scale grows");
        for (a, b) in inproc.iter().zip(&mpi) {
            assert_eq!(
                (&a["step"], &a["train_loss"], &a["loss_scale"], &a["skipped_steps"]),
                (&b["step"], &b["train_loss"], &b["loss_scale"], &b["skipped_steps"]),
                "{tag}"
            );
        }
        assert_eq!(mpi, inproc, "f16 on 2 ranks ({tag}) differs from --workers {total} in one process");
        assert_eq!(last_tensors(&d.join(&r)), last_tensors(&d.join(&w)), "{tag}: parameters differ");
        assert_eq!(scaler_meta(&d.join(&r)), scaler_meta(&d.join(&w)), "{tag}: scaler state differs");
        println!(
            "f16 2 ranks × {n} workers × {k} = --workers {total} bitwise: {} skipped steps, final scale {}",
            skipped(last),
            last["loss_scale"]
        );
    }
}

/// An f16 run stopped at step 45 and resumed on 2 ranks: rank 0 reads the checkpoint's scaler
/// state (a scale far below the configured 2^40, which would overflow again) and every rank
/// takes it, so the run continues bitwise as the uninterrupted 2-rank run.
#[test]
fn f16_resume_with_2_ranks_is_bitwise() {
    let d = tmpdir("f16-resume");
    let c = config(&d, &f16_small());
    let (full, part) = (d.join("full"), d.join("part"));
    let o =
        two_ranks(&["--config", &c, "--out", full.to_str().expect("utf-8")]).output().expect("mpirun");
    assert_ok("uninterrupted f16 on 2 ranks", &o);
    let o =
        two_ranks(&["--config", &c, "--set", "train.steps=45", "--out", part.to_str().expect("utf-8")])
            .output()
            .expect("mpirun");
    assert_ok("f16 on 2 ranks to step 45", &o);
    let at45 = scaler_meta(&part);
    let scale: f64 = at45[0].parse().expect("amp.loss_scale");
    assert!(scale < 1e9 && at45[2] != "0", "step 45's scaler has moved: {at45:?}");
    let o = two_ranks(&["--resume", part.to_str().expect("utf-8"), "--set", "train.steps=100"])
        .output()
        .expect("mpirun");
    assert_ok("f16 resume with 2 ranks", &o);
    assert_eq!(metrics(&part), metrics(&full), "resumed f16 metrics differ");
    assert_eq!(last_tensors(&part), last_tensors(&full), "resumed f16 parameters differ");
    assert_eq!(scaler_meta(&part), scaler_meta(&full), "resumed f16 scaler state differs");
    // A new starting scale on resume is refused on every rank (it was written and ignored).
    let before = common::cli::snapshot(&part);
    let resume = ["--resume", part.to_str().expect("utf-8"), "--set", "train.loss_scale=8"];
    let o = two_ranks(&resume).output().expect("mpirun");
    assert!(!o.status.success() && text(&o).contains("train.loss_scale on --resume"), "{}", text(&o));
    assert_eq!(before, common::cli::snapshot(&part), "a refused resume changed the run directory");
}

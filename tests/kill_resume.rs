//! `kill -9` at seeded random moments of `batchscope train --backend cpu` (checkpoints every few
//! steps, so some kills land mid-write), then `--resume`: the final checkpoint's tensors and the
//! metrics lines (elapsed_s aside) are bitwise those of an uninterrupted run, and no temporary
//! file of an interrupted write is left in the run directory. Ctrl-C (SIGINT) or SIGTERM on both
//! backends (on the GPU the signal lands while the host waits on the device): the run stops at
//! the step in flight, saves itself and exits 130 (143), and its resume is bitwise too.

mod common;
use common::tmpdir;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use batchscope::train::checkpoint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small MLP, 192 steps, a checkpoint every 2 steps.
const CONFIG: &str = "[model]\nhidden = [24]\nactivation = \"tanh\"\n[data]\nkind = \"gaussian_mixture\"\nn_train = 1536\nn_val = 256\ndim = 12\nclasses = 4\nseed = 5\n[train]\nbatch_size = 16\nepochs = 2\nlog_every = 2\neval_every = 24\ncheckpoint_every = 2\n";

const KILLS: usize = 10;

fn train(args: &[&str]) -> Command {
    train_on("cpu", args)
}

/// `batchscope train --backend <backend>` (a GPU run without an adapter fails with the fix).
fn train_on(backend: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batchscope"));
    c.args(["train", "--backend", backend, "--quiet"]).args(args).env("RUST_LOG", "error");
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn run_ok(mut c: Command) {
    let o = c.output().expect("run batchscope");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("panicked"), "{err}");
}

/// metrics.jsonl lines without `elapsed_s`.
fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v.as_object_mut().expect("object").remove("elapsed_s");
            v
        })
        .collect()
}

/// Each tensor of a checkpoint: name, shape, and values as bits.
type Tensors = Vec<(String, Vec<usize>, Vec<u32>)>;

/// `(name, shape, bits)` of every tensor of `dir/last.safetensors`.
fn last_tensors(dir: &Path) -> Tensors {
    checkpoint::load(&dir.join("last.safetensors"))
        .expect("last.safetensors")
        .tensors
        .into_iter()
        .map(|t| (t.name, t.shape, t.data.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read run dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Wait (at most 30 s) until the run in `dir` has its first checkpoint, or `child` ended.
fn wait_for_checkpoint(child: &mut std::process::Child, dir: &Path) {
    let (last, waited) = (dir.join("last.safetensors"), Instant::now());
    while !last.exists() && waited.elapsed() < Duration::from_secs(30) {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The run directory `dir`, resumed to its end on `backend`, equals the uninterrupted run's.
fn resume_equals(
    backend: &str,
    dir: &Path,
    case: &str,
    want_metrics: &[serde_json::Value],
    want_tensors: &[(String, Vec<usize>, Vec<u32>)],
) {
    run_ok(train_on(backend, &["--resume", dir.to_str().expect("utf-8")]));
    assert_eq!(temporaries(dir), Vec::<String>::new(), "{case}: temporary files left after resume");
    let got = metrics(dir);
    assert_eq!(got.len(), want_metrics.len(), "{case}: metric lines");
    for (i, (a, b)) in want_metrics.iter().zip(&got).enumerate() {
        assert_eq!(a, b, "{case}: metrics line {i} differs");
    }
    assert!(
        last_tensors(dir) == want_tensors,
        "{case}: last.safetensors differs from the uninterrupted run"
    );
}

/// The uninterrupted run of `config` on `backend` in `d`: the config's path, the run's wall
/// time, its metrics lines and last tensors.
fn reference_run(
    backend: &str,
    d: &Path,
    config: &str,
) -> (String, f64, Vec<serde_json::Value>, Tensors) {
    let cfg = d.join("config.toml");
    std::fs::write(&cfg, config).expect("config");
    let cs = cfg.to_str().expect("utf-8").to_string();
    let full = d.join("full");
    let start = Instant::now();
    run_ok(train_on(backend, &["--config", &cs, "--out", full.to_str().expect("utf-8")]));
    let full_s = start.elapsed().as_secs_f64();
    (cs, full_s, metrics(&full), last_tensors(&full))
}

#[cfg(unix)]
#[test]
fn ctrl_c_or_sigterm_saves_the_run_and_its_resume_equals_the_uninterrupted_run() {
    for backend in ["cpu", "gpu"] {
        interrupts_then_resume(backend);
    }
}

/// Four interrupts (SIGINT, SIGTERM alternately) at seeded moments of runs on `backend`.
#[cfg(unix)]
fn interrupts_then_resume(backend: &str) {
    let d = tmpdir(&format!("sigint_{backend}"));
    // Four times the steps of CONFIG: the interrupts land well inside the run.
    let (cs, full_s, want_metrics, want_tensors) =
        reference_run(backend, &d, &CONFIG.replace("epochs = 2", "epochs = 8"));
    let cs = cs.as_str();
    let mut r = ChaCha8Rng::seed_from_u64(0x5191);
    let mut interrupted = 0;
    for k in 0..4 {
        let case = format!("{backend}: interrupt {k}");
        let dir = d.join(format!("int{k}"));
        let mut child = train_on(backend, &["--config", cs, "--out", dir.to_str().expect("utf-8")])
            .spawn()
            .expect("spawn");
        wait_for_checkpoint(&mut child, &dir);
        std::thread::sleep(Duration::from_secs_f64(r.random_range(0.0..0.5) * full_s));
        // Ctrl-C, or a scheduler's SIGTERM.
        let (signal, name, status) =
            if k % 2 == 0 { (libc::SIGINT, "SIGINT", 130) } else { (libc::SIGTERM, "SIGTERM", 143) };
        // SAFETY: kill(2) with a child's id and a signal number.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let o = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{case}: {err}");
        let summary = std::fs::read_to_string(dir.join("summary.json"))
            .unwrap_or_else(|e| panic!("{case}: summary.json: {e}: {err}"));
        match o.status.code() {
            Some(code) if code == status => {
                interrupted += 1;
                let reason = format!("\"stopped_reason\": \"interrupted ({name})\"");
                assert!(summary.contains(&reason), "{case}: {summary}");
                let how = format!("batchscope train --resume {}", dir.display());
                assert!(err.contains(&how), "{case}: it says how to go on, naming the run: {err}");
            }
            Some(0) => assert!(!summary.contains("interrupted"), "{case}: {summary}"),
            other => panic!("{case}: exit {other:?}: {err}"),
        }
        assert!(
            !dir.join(".batchscope.lock").exists() && temporaries(&dir).is_empty(),
            "{case}: left files"
        );
        resume_equals(backend, &dir, &case, &want_metrics, &want_tensors);
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(interrupted > 0, "{backend}: no interrupt landed inside a run ({full_s:.2} s each)");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn kill_9_then_resume_equals_the_uninterrupted_run() {
    let t0 = Instant::now();
    let d = tmpdir("runs");
    let (cs, full_s, want_metrics, want_tensors) = reference_run("cpu", &d, CONFIG);
    let cs = cs.as_str();
    assert!(want_metrics.len() > 50, "{} metric lines", want_metrics.len());

    let mut r = ChaCha8Rng::seed_from_u64(0x6b11);
    let (mut left_temporaries, mut finished_first) = (0, 0);
    for k in 0..KILLS {
        let dir = d.join(format!("kill{k}"));
        let mut child =
            train(&["--config", cs, "--out", dir.to_str().expect("utf-8")]).spawn().expect("spawn");
        // Resuming needs a first checkpoint: wait for it, then a seeded random share of the run.
        wait_for_checkpoint(&mut child, &dir);
        std::thread::sleep(Duration::from_secs_f64(r.random_range(0.0..0.9) * full_s));
        if child.try_wait().expect("try_wait").is_some() {
            finished_first += 1;
        } else {
            child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on unix
        }
        let _ = child.wait();
        left_temporaries += temporaries(&dir).len();
        resume_equals("cpu", &dir, &format!("kill {k}"), &want_metrics, &want_tensors);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "{KILLS} kills ({finished_first} after the run had finished, {left_temporaries} temporary files left by them) \
         in {:.1} s; uninterrupted run {full_s:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&d);
}

//! Two processes and one run directory: a run holds its directory (the operating system's
//! lock on `.batchscope.lock`, as a resumed run always did) from the moment it claims it, so a
//! second `train` into the same `--out` and a `--resume` of the run while it trains are refused
//! with one error line, and the running run finishes with its own files. Two runs into one new
//! `--out` used to both pass the "holds no files" check: one's clean-up then deleted the
//! other's files, or its config.toml replaced the other's; a `--resume` of a running run
//! trained beside it, both exiting 0 with the files mixed.

mod common;
use common::cli::{assert_clean_error, stderr};
use common::tmpdir;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A run of about 3 s on a 2-core CPU: 150 epochs of 384 steps, logged every 8th (7 200 lines).
const LONG: &str = "[model]\nhidden = [128, 128]\n[data]\nkind = \"gaussian_mixture\"\nn_train = 6144\nn_val = 256\ndim = 16\nclasses = 4\nseed = 5\n[train]\nbatch_size = 16\nepochs = 150\nlog_every = 8\neval_every = 512\ncheckpoint_every = 512\n";

/// A run of a few hundredths of a second: one epoch of 64 steps.
const SHORT: &str = "[model]\nhidden = [32]\n[data]\nkind = \"gaussian_mixture\"\nn_train = 1024\nn_val = 256\ndim = 16\nclasses = 4\nseed = 5\n[train]\nbatch_size = 16\nepochs = 1\nlog_every = 1\neval_every = 16\ncheckpoint_every = 8\n";

fn train(config: &Path, args: &[&str]) -> Command {
    let mut c = common::cli::batchscope("concurrent");
    c.args(["train", "--backend", "cpu", "--quiet", "--config"]).arg(config).args(args);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Wait until `dir/metrics.jsonl` has a line (the run is training), or panic.
fn wait_for_training(dir: &Path, child: &mut Child) {
    let start = Instant::now();
    while std::fs::read_to_string(dir.join("metrics.jsonl")).map_or(true, |m| m.is_empty()) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the first run ended before training was seen: {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the first run did not start training");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("wait for batchscope")
}

#[test]
fn a_running_run_refuses_a_second_train_and_a_resume_into_its_directory() {
    let d = tmpdir("running");
    let config = d.join("c.toml");
    std::fs::write(&config, LONG).expect("config");
    let out = d.join("run");
    let mut first = train(&config, &["--out", s(&out)]).spawn().expect("start the first run");
    wait_for_training(&out, &mut first);
    let second = train(&config, &["--set", "train.lr=0.01", "--out", s(&out)]).output().expect("run");
    assert_clean_error(&second, &[s(&out)]);
    let mut resume = common::cli::batchscope("concurrent");
    resume.args([
        "train",
        "--resume",
        s(&out),
        "--backend",
        "cpu",
        "--quiet",
        "--set",
        "train.log_every=7",
    ]);
    let resumed = resume.output().expect("run the resume");
    assert_clean_error(&resumed, &["another batchscope", "is running this run"]);
    let o = finish(first);
    assert!(o.status.success(), "the first run: {}", stderr(&o));
    let config_toml = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    assert!(!config_toml.contains("lr = 0.01"), "another process's config.toml: {config_toml}");
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
    assert_eq!(lines.lines().count(), 7200, "one run's 7 200 logged steps, each once");
    assert!(out.join("summary.json").exists() && !out.join(".batchscope.lock").exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// Two runs started together into one new `--out`: one runs there, the other is refused with
/// one error line (or, where it came second, finds the directory holding the first's files);
/// the directory ends up the winner's, whole.
#[test]
fn two_runs_started_together_into_one_new_out_leave_one_whole_run() {
    let d = tmpdir("race");
    let config = d.join("c.toml");
    std::fs::write(&config, SHORT).expect("config");
    for round in 0..6 {
        let out = d.join(format!("run{round}"));
        let a = train(&config, &["--out", s(&out)]).spawn().expect("start a");
        let b = train(&config, &["--set", "train.lr=0.01", "--out", s(&out)]).spawn().expect("start b");
        let (a, b) = (finish(a), finish(b));
        let won: Vec<&Output> = [&a, &b].into_iter().filter(|o| o.status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: a: {} b: {}", stderr(&a), stderr(&b));
        let lost = if a.status.success() { &b } else { &a };
        assert_clean_error(lost, &[s(&out)]);
        let lr_b = b.status.success();
        let config_toml = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
        assert_eq!(config_toml.contains("lr = 0.01"), lr_b, "round {round}: the loser's config.toml");
        let first = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
        let lr = if lr_b { "\"lr\":0.01" } else { "\"lr\":0.05" };
        assert!(first.lines().all(|l| l.contains(lr)), "round {round}: metrics of both runs");
        assert!(out.join("summary.json").exists() && out.join("last.safetensors").exists());
    }
    let _ = std::fs::remove_dir_all(&d);
}

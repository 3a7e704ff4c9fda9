//! The stop rules of a training run, exactly at their thresholds: early stopping stops after
//! `train.patience` evaluations without improvement (not one more), and a validation error equal
//! to `train.target_val_error` reaches the target.

mod common;

use std::path::Path;

use batchscope::config::Config;
use batchscope::train::{run_train, MetricsLine, TrainOptions};
use common::tmpdir;

/// Noisy labels and a large step on a Gaussian mixture: validation error wanders, so early
/// stopping ends the run. 256 validation examples: every 0-1 error is k/256, exact in f32.
const NOISY: &str = r#"
[model]
hidden = [32]
activation = "relu"
[data]
kind = "gaussian_mixture"
n_train = 2048
n_val = 256
dim = 16
classes = 4
separation = 4.0
label_noise = 0.4
seed = 3
[train]
batch_size = 64
optimizer = "momentum"
lr = 0.3
epochs = 30
log_every = 8
eval_every = 16
"#;

fn config(extra: &[&str]) -> Config {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = tmpdir(&format!("cfg{k}"));
    let p = dir.join("c.toml");
    std::fs::write(&p, NOISY).expect("write config");
    let sets: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    Config::load(Some(&p), &sets).expect("config")
}

fn metrics(dir: &Path) -> Vec<MetricsLine> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics line"))
        .collect()
}

/// The summary.json the run wrote, as JSON.
fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"))
        .expect("summary json")
}

/// A run stopped by patience P has exactly P evaluations after its best one in metrics.jsonl,
/// and stops at the P-th (`>` in place of `>=` waited for one more).
#[test]
fn early_stopping_waits_exactly_patience_evaluations() {
    let b = common::cpu();
    for patience in [2u64, 3] {
        let dir = tmpdir(&format!("patience{patience}"));
        let c = config(&[&format!("train.patience={patience}")]);
        let s = run_train(&b, &c, &TrainOptions::default(), &dir).expect("train");
        assert!(s.stopped_reason.starts_with("early stopping"), "{}", s.stopped_reason);
        let best = s.best_step.expect("best step");
        let m = metrics(&dir);
        let evals: Vec<u64> = m.iter().filter(|l| l.val_error.is_some()).map(|l| l.step).collect();
        let after: Vec<u64> = evals.iter().copied().filter(|&st| st > best).collect();
        println!("patience {patience}: best at {best}, evaluations after it at {after:?}");
        assert_eq!(after.len() as u64, patience, "evaluations after the best (step {best}): {after:?}");
        assert_eq!(after.last().copied(), Some(s.steps), "the run stops at the last of them");
        assert_eq!(summary(&dir)["best_step"].as_u64(), Some(best));
    }
}

/// A run whose evaluation lands exactly on `train.target_val_error` stops there: the target is
/// reached at `<=` (`<` trained on past it).
#[test]
fn a_validation_error_equal_to_the_target_stops_the_run() {
    let b = common::cpu();
    // First run, no target: its first evaluation's error.
    let dir = tmpdir("target-free");
    let c = config(&["train.epochs=1"]);
    run_train(&b, &c, &TrainOptions::default(), &dir).expect("train");
    let (step, e) =
        metrics(&dir).iter().find_map(|l| Some((l.step, l.val_error?))).expect("an evaluation");
    assert!(e > 0.0, "a target of 0 is off: the first error must be positive");
    let t = e as f32;
    assert_eq!(t as f64, e, "the error {e} (k/256) is exact in f32");
    // Second run: the target is that error, written out in full (TOML parses it into f32).
    let dir = tmpdir("target-hit");
    let c = config(&[&format!("train.target_val_error={t:?}")]);
    assert_eq!(c.train.target_val_error, t, "the config holds the target exactly");
    let s = run_train(&b, &c, &TrainOptions::default(), &dir).expect("train");
    println!("first evaluation at step {step}: error {e}; stopped: {}", s.stopped_reason);
    assert!(s.stopped_reason.starts_with("reached train.target_val_error"), "{}", s.stopped_reason);
    assert_eq!(s.steps, step, "stops at the evaluation that reached the target");
    let js = summary(&dir);
    assert_eq!(js["steps"].as_u64(), Some(step));
    assert!(js["stopped_reason"].as_str().is_some_and(|r| r.starts_with("reached")), "{js}");
    let last = metrics(&dir).iter().rev().find_map(|l| l.val_error).expect("an evaluation");
    assert_eq!(last, e);
}

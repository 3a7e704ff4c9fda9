//! End-to-end training on both backends: accuracy, early stopping, bitwise resume, clipping,
//! the NaN guard.

mod common;

use std::path::Path;

use batchscope::backend::{Activation, Backend};
use batchscope::config::Config;
use batchscope::model::{LossKind, Mlp, MlpSpec, Targets};
use batchscope::train::{run_train, Clip, MetricsLine, Optimizer, TrainError, TrainOptions, TrainState};
use common::{indices, tmpdir, uniform};

const SMALL: &str = r#"
[model]
hidden = [32]
activation = "relu"
[data]
kind = "gaussian_mixture"
n_train = 4096
n_val = 512
dim = 16
classes = 4
separation = 4.0
seed = 3
[train]
batch_size = 64
optimizer = "momentum"
lr = 0.05
epochs = 3
log_every = 8
"#;

fn cfg(extra: &[&str]) -> Config {
    config_of(SMALL, extra)
}

/// `toml` written to a file of its own, loaded with `extra` as `--set`s.
fn config_of(toml: &str, extra: &[&str]) -> Config {
    // One directory per call: the tests run in parallel threads.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sets: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let dir = tmpdir(&format!("cfg{k}"));
    let p = dir.join("c.toml");
    std::fs::write(&p, toml).expect("write config");
    Config::load(Some(&p), &sets).expect("config")
}

fn metrics(dir: &Path) -> Vec<MetricsLine> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics line"))
        .collect()
}

fn reaches_95_percent<B: Backend>(b: &B) {
    let dir = tmpdir(&format!("acc-{:?}", b.kind()));
    let s = run_train(b, &cfg(&[]), &TrainOptions::default(), &dir).expect("train");
    let err = s.final_val_error.expect("val error");
    println!("{}: validation accuracy {:.2}%", b.device_name(), 100.0 * (1.0 - err));
    assert!(err <= 0.05, "validation error {err} > 5%");
    for f in ["metrics.jsonl", "summary.json", "last.safetensors", "loss.svg", "error.svg"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    assert!(std::fs::read_to_string(dir.join("loss.svg")).expect("loss.svg").contains("NLL"));
    let m = metrics(&dir);
    assert!(m.iter().all(|l| l.train_loss.is_finite() && l.grad_norm.is_finite()));
    assert!(m.iter().any(|l| l.val_error.is_some()));
}
both_backends!(gaussian_mixture_reaches_95_percent_validation_accuracy, reaches_95_percent);

fn early_stopping_restores_best<B: Backend>(b: &B) {
    let dir = tmpdir(&format!("es-{:?}", b.kind()));
    // Noisy labels and a large step: validation error wanders, so patience 2 stops the run.
    let c = cfg(&[
        "data.label_noise=0.4",
        "train.lr=0.3",
        "train.epochs=30",
        "train.eval_every=16",
        "train.patience=2",
    ]);
    let s = run_train(b, &c, &TrainOptions::default(), &dir).expect("train");
    assert!(s.stopped_reason.starts_with("early stopping"), "{}", s.stopped_reason);
    assert!(s.restored_best);
    // The final evaluation runs on the restored parameters: it equals the best one.
    assert_eq!(
        s.final_val_error, s.best_val_error,
        "restored parameters must give the best validation error"
    );
    assert!(dir.join("best.safetensors").exists());
    let m = metrics(&dir);
    let last_eval = m.iter().rev().find_map(|l| l.val_error).expect("evaluations");
    assert!(last_eval >= s.best_val_error.unwrap_or(0.0));
}
both_backends!(early_stopping_restores_the_best_parameters, early_stopping_restores_best);

/// A regression: 64 examples of 48 inputs with noisy targets, which it overfits, so the
/// validation loss turns up.
const REGRESSION: &str = r#"
[model]
hidden = [32]
activation = "relu"
loss = "mse"
[data]
kind = "linear_regression"
n_train = 64
n_val = 256
dim = 48
noise_std = 1.0
seed = 5
[train]
batch_size = 16
optimizer = "sgd"
lr = 0.05
epochs = 400
log_every = 8
eval_every = 8
patience = 5
"#;

fn regression_cfg(extra: &[&str]) -> Config {
    config_of(REGRESSION, extra)
}

/// A regression has no 0-1 error: its best parameters and early stopping follow the validation
/// loss (Lightning's `monitor="val_loss"`), best.safetensors holds them, its checkpoints record
/// `best_val_loss`, and a run resumed part way stops where the uninterrupted one does, on the
/// same bits.
fn regression_early_stopping<B: Backend>(b: &B) {
    let dir = tmpdir(&format!("es-mse-{:?}", b.kind()));
    let s = run_train(b, &regression_cfg(&[]), &TrainOptions::default(), &dir).expect("train");
    assert!(s.stopped_reason.starts_with("early stopping: validation loss"), "{}", s.stopped_reason);
    assert!(s.restored_best && dir.join("best.safetensors").exists());
    assert_eq!(s.best_val_error, None, "a regression has no 0-1 error");
    let best = s.best_val_loss.expect("the best validation loss");
    assert_eq!(s.final_val_loss, Some(best), "the restored parameters give the best loss");
    let losses: Vec<(u64, f64)> =
        metrics(&dir).iter().filter_map(|l| Some((l.step, l.val_loss?))).collect();
    let lowest = losses.iter().map(|&(_, v)| v).fold(f64::INFINITY, f64::min);
    assert_eq!(lowest, best, "the best is the lowest logged validation loss");
    assert_eq!(losses.iter().find(|&&(_, v)| v == best).map(|&(st, _)| st), s.best_step);
    let (_, last) = losses.last().copied().expect("evaluations");
    assert!(last > best, "the run stopped on a loss that had turned up: {last} vs {best}");
    let ck = batchscope::checkpoint::load(&dir.join("best.safetensors")).expect("best checkpoint");
    assert!(ck.metadata.contains_key("best_val_loss") && !ck.metadata.contains_key("best_val_error"));
    let plot = std::fs::read_to_string(dir.join("loss.svg")).expect("loss.svg");
    assert!(plot.contains("squared error") && !plot.contains("NLL"), "loss.svg names the loss it plots");

    // Stopped part way, then resumed: the same evaluations, the same stop.
    let part = tmpdir(&format!("es-mse-part-{:?}", b.kind()));
    let steps = s.best_step.expect("best step") + 8;
    let first = run_train(
        b,
        &regression_cfg(&[&format!("train.steps={steps}")]),
        &TrainOptions::default(),
        &part,
    )
    .expect("first part");
    assert!(first.stopped_reason.contains("train.steps"), "{}", first.stopped_reason);
    let resumed = TrainOptions { resume: true, ..Default::default() };
    let r = run_train(b, &regression_cfg(&[]), &resumed, &part).expect("resumed");
    assert_eq!((r.steps, r.best_step, r.best_val_loss), (s.steps, s.best_step, s.best_val_loss));
    assert_eq!(strip(metrics(&dir)), strip(metrics(&part)), "the resumed run differs");
}
both_backends!(a_regression_stops_early_on_its_validation_loss, regression_early_stopping);

fn strip(m: Vec<MetricsLine>) -> Vec<String> {
    m.into_iter()
        .map(|mut l| {
            l.elapsed_s = 0.0;
            serde_json::to_string(&l).expect("json")
        })
        .collect()
}

fn resume_is_bitwise<B: Backend>(b: &B) {
    let full = tmpdir(&format!("full-{:?}", b.kind()));
    let part = tmpdir(&format!("part-{:?}", b.kind()));
    let extra = [
        "train.epochs=0",
        "train.steps=100",
        "train.eval_every=10",
        "train.log_every=5",
        "train.clip_norm=0.5",
    ];
    let mut c = cfg(&extra);
    c.train.steps = 100;
    run_train(b, &c, &TrainOptions::default(), &full).expect("uninterrupted");
    c.train.steps = 45;
    run_train(b, &c, &TrainOptions::default(), &part).expect("first half");
    c.train.steps = 100;
    run_train(b, &c, &TrainOptions { resume: true, ..Default::default() }, &part).expect("resumed");
    let (a, r) = (strip(metrics(&full)), strip(metrics(&part)));
    assert_eq!(a.len(), r.len(), "same number of metric lines");
    for (x, y) in a.iter().zip(&r) {
        assert_eq!(x, y, "resumed run differs from the uninterrupted one");
    }
    println!("resume bitwise equal on {} over {} lines", b.device_name(), a.len());
}
both_backends!(resume_equals_uninterrupted_run_bitwise, resume_is_bitwise);

/// With SGD, lr = 1 and clip_norm = c, the update of all parameters has norm ≤ c; with
/// clip_value = v, no component moves by more than v.
fn clipping_bounds_the_update<B: Backend>(b: &B) {
    let spec =
        MlpSpec { sizes: vec![8, 16, 3], activation: Activation::Tanh, loss: LossKind::SoftmaxXent };
    let rows = 32;
    let x = b.upload(&uniform(1, rows * 8, 30.0)).expect("x");
    let y = b.upload_idx(&indices(2, rows, 3)).expect("y");
    let opt = Optimizer::Sgd { weight_decay: 0.0 };
    for (clip, bound_norm) in
        [(Clip { norm: 0.01, value: 0.0 }, true), (Clip { norm: 0.0, value: 0.001 }, false)]
    {
        let mlp = Mlp::new(spec.clone()).expect("mlp");
        let p = mlp.init(b, 5).expect("init");
        let mut st = TrainState::new(b, mlp, p, rows, &opt).expect("state");
        let before = st.params.to_flat(b).expect("read");
        st.record_step(b, &x, &Targets::Classes(&y), &opt, 1.0, &clip).expect("step");
        let after = st.params.to_flat(b).expect("read");
        let m = st.read_metrics(b).expect("metrics");
        let delta: Vec<f64> = before.iter().zip(&after).map(|(a, c)| (*c - *a) as f64).collect();
        if bound_norm {
            let norm = delta.iter().map(|d| d * d).sum::<f64>().sqrt();
            assert!(m.grad_norm > 0.01, "test needs a gradient larger than the clip");
            assert!(norm <= 0.01 * (1.0 + 1e-4), "update norm {norm} > clip 0.01");
            assert!(norm >= 0.01 * 0.99, "clipped update should have the clip norm, got {norm}");
            assert_eq!(m.clip_events, 1);
        } else {
            let max = delta.iter().fold(0.0f64, |a, d| a.max(d.abs()));
            assert!(max <= 0.001 * (1.0 + 1e-5), "largest component move {max} > 0.001");
        }
    }
}
both_backends!(clipping_bounds_the_update, clipping_bounds_the_update);

fn nan_guard<B: Backend>(b: &B) {
    let dir = tmpdir(&format!("nan-{:?}", b.kind()));
    let c = cfg(&["train.lr=1e30", "train.optimizer=\"sgd\"", "train.log_every=1"]);
    match run_train(b, &c, &TrainOptions::default(), &dir) {
        Err(TrainError::Diverged { step, .. }) => assert!(step >= 1),
        other => panic!("expected divergence, got {other:?}"),
    }
    let summary = std::fs::read_to_string(dir.join("summary.json")).expect("summary");
    assert!(summary.contains("diverged"));
    assert!(!dir.join("last.safetensors").exists(), "no checkpoint of diverged parameters");
    // The keys of a finished run's summary (it held 7 of them), and the plots up to there.
    let s: serde_json::Value = serde_json::from_str(&summary).expect("json");
    for key in
        ["backend", "epochs_completed", "final_val_error", "best_step", "elapsed_s", "examples_per_s"]
    {
        assert!(s.get(key).is_some(), "summary.json lacks {key}: {summary}");
    }
    assert!(dir.join("loss.svg").exists(), "the loss plot up to the divergence");
}
both_backends!(nan_guard_stops_with_a_clear_error, nan_guard);

/// On a quadratic (linear model, squared error) eq. 8.10 is exact for any step d: the
/// monitor's predicted ΔL̂ = gᵀd + ½ dᵀHd equals the actual change of the minibatch loss, for
/// an SGD step (d = −ε g) and for the step momentum, weight decay and clipping take (the
/// prediction used to be −ε gᵀg + ½ε² gᵀHg whatever the optimizer, and missed a momentum step
/// that raised the loss).
fn monitor_predicts_delta_loss<B: Backend>(b: &B) {
    let optimizers: [&[&str]; 4] = [
        &["train.optimizer=\"sgd\"", "train.lr=0.01"],
        &[
            "train.optimizer=\"momentum\"",
            "train.momentum=0.9",
            "train.lr=0.01",
            "train.weight_decay=0.01",
        ],
        &["train.optimizer=\"momentum\"", "train.momentum=0.9", "train.lr=0.05", "train.clip_norm=0.5"],
        // Momentum at a rate that overshoots: some steps raise the loss, and say so.
        &["train.optimizer=\"momentum\"", "train.momentum=0.9", "train.lr=0.3"],
    ];
    let mut too_large = 0;
    for (run, optimizer) in optimizers.iter().enumerate() {
        let dir = tmpdir(&format!("mon-{:?}-{run}", b.kind()));
        let mut sets: Vec<String> = [
            "model.hidden=[]",
            "model.loss=\"mse\"",
            "data.kind=\"linear_regression\"",
            "data.dim=8",
            "data.outputs=2",
            "data.condition_number=50",
            "data.n_train=1024",
            "data.n_val=64",
            "train.epochs=0",
            "train.steps=30",
            "monitor.curvature_every=3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sets.extend(optimizer.iter().map(|s| s.to_string()));
        let cfg = Config::load(None, &sets).expect("config");
        let s = run_train(b, &cfg, &TrainOptions::default(), &dir).expect("train");
        if run == 2 {
            assert!(s.clip_events > 0, "the clipped run clipped");
        }
        let m = metrics(&dir);
        let monitored: Vec<&MetricsLine> = m.iter().filter(|l| l.gthg.is_some()).collect();
        assert_eq!(monitored.len(), 10, "every 3rd of 30 steps");
        for l in monitored {
            let p = l.predicted_delta_loss.flatten().unwrap_or(f64::NAN);
            let a = l.actual_delta_loss.flatten().unwrap_or(f64::NAN);
            assert!(
                l.gthg.flatten().unwrap_or(-1.0) > 0.0,
                "a quadratic with positive definite Hessian"
            );
            assert!(
                (p - a).abs() <= 2e-3 * p.abs() + 1e-6,
                "{optimizer:?} step {}: predicted {p} vs actual {a}",
                l.step
            );
            assert_eq!(l.step_too_large, Some(Some(p > 0.0)), "{optimizer:?} step {}: ΔL̂ {p}", l.step);
            too_large += usize::from(p > 0.0);
            if run == 0 {
                assert_eq!(l.step_too_large, Some(Some(false)), "an SGD step of ε < 2/λmax");
            }
        }
        assert!(dir.join("curvature.svg").exists());
    }
    println!("{}: {too_large} monitored steps predicted to raise the loss", b.device_name());
    assert!(too_large > 0, "the overshooting momentum run has steps that raise the loss");
}
both_backends!(curvature_monitor_predicts_the_loss_change_on_a_quadratic, monitor_predicts_delta_loss);

/// Only scheduled evaluations count for the best: a run that ends between them (here
/// `train.steps` short of `eval_every`) reports its final evaluation, but has no best from it.
/// (The final evaluation used to count, and a run stopped between evaluations and resumed then
/// kept a best, and an early-stopping count, that the uninterrupted run never had.)
fn only_scheduled_evaluations_count<B: Backend>(b: &B) {
    let dir = tmpdir(&format!("final-best-{:?}", b.kind()));
    let c = cfg(&["train.epochs=0", "train.steps=20", "train.eval_every=1000", "train.log_every=5"]);
    let s = run_train(b, &c, &TrainOptions::default(), &dir).expect("train");
    assert!(s.final_val_error.is_some(), "the final parameters are evaluated");
    assert_eq!((s.best_val_error, s.best_step), (None, None), "no scheduled evaluation, no best");
    assert!(!dir.join("best.safetensors").exists());
    // With evaluations on schedule, the best is theirs, at one of their steps.
    let dir = tmpdir(&format!("final-best2-{:?}", b.kind()));
    let c = cfg(&["train.epochs=0", "train.steps=23", "train.eval_every=10", "train.log_every=5"]);
    let s = run_train(b, &c, &TrainOptions::default(), &dir).expect("train");
    let evals: Vec<(u64, f64)> =
        metrics(&dir).iter().filter_map(|l| l.val_error.map(|e| (l.step, e))).collect();
    assert_eq!(evals.iter().map(|e| e.0).collect::<Vec<_>>(), vec![10, 20]);
    let scheduled = evals.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
    assert_eq!(s.best_val_error, Some(scheduled));
    assert_eq!(s.best_step, evals.iter().find(|e| e.1 == scheduled).map(|e| e.0));
}
both_backends!(only_scheduled_evaluations_count_for_the_best, only_scheduled_evaluations_count);

/// A run that stops mid-epoch (early stopping, or its target reached) stops where it is: the
/// summary counts the epochs it completed, and its checkpoint holds that step, so a resume
/// that asks for more (no target) goes on exactly as the uninterrupted run (it skipped to the
/// next epoch, and from there took other minibatches). Likewise a run stopped between
/// evaluations by `train.steps` and resumed equals the uninterrupted one, its best and
/// early-stopping step included.
fn mid_epoch_stops_resume_exactly<B: Backend>(b: &B) {
    let base = [
        "train.epochs=30",
        "train.log_every=4",
        "train.eval_every=4",
        "data.label_noise=0.4",
        "train.lr=0.3",
    ];
    let with = |extra: &[&str]| cfg(&[&base[..], extra].concat());
    // 4096 / 64 = 64 steps an epoch; evaluations every 4 steps.
    let full = tmpdir(&format!("mid-full-{:?}", b.kind()));
    let s = run_train(b, &with(&["train.patience=6"]), &TrainOptions::default(), &full).expect("train");
    assert!(s.stopped_reason.starts_with("early stopping"), "{}", s.stopped_reason);
    assert_eq!(s.epochs_completed, s.steps / 64, "epochs completed of {} steps", s.steps);
    let last = batchscope::checkpoint::load(&full.join("last.safetensors")).expect("checkpoint");
    let meta = |k: &str| last.metadata.get(k).and_then(|v| v.parse::<u64>().ok());
    assert_eq!((meta("epoch"), meta("step_in_epoch")), (Some(s.steps / 64), Some(s.steps % 64)));
    // Stopped mid-epoch by a target error reached at the first evaluation (step 4), then
    // resumed without it: the uninterrupted run, step for step.
    let first_eval = metrics(&full).iter().find_map(|l| l.val_error).expect("an evaluation");
    let target = format!("train.target_val_error={}", first_eval + 1e-4);
    let part = tmpdir(&format!("mid-part-{:?}", b.kind()));
    let first = run_train(b, &with(&["train.patience=6", &target]), &TrainOptions::default(), &part)
        .expect("first");
    assert_eq!((first.steps, first.epochs_completed), (4, 0), "{}", first.stopped_reason);
    let resumed = TrainOptions { resume: true, ..Default::default() };
    let r = run_train(b, &with(&["train.patience=6"]), &resumed, &part).expect("resumed");
    assert_eq!((r.steps, r.best_step, r.best_val_error), (s.steps, s.best_step, s.best_val_error));
    assert_eq!(strip(metrics(&full)), strip(metrics(&part)), "the resumed run differs");
    // Stopped by train.steps between evaluations (step 30: evaluations at 28 and 32).
    let cut = tmpdir(&format!("mid-cut-{:?}", b.kind()));
    run_train(b, &with(&["train.patience=6", "train.steps=30"]), &TrainOptions::default(), &cut)
        .expect("cut");
    let r = run_train(b, &with(&["train.patience=6"]), &resumed, &cut).expect("resumed");
    assert_eq!((r.steps, r.best_step, r.best_val_error), (s.steps, s.best_step, s.best_val_error));
    // The cut run logged its last step, 30, off the schedule; every other line is the same.
    let scheduled: Vec<MetricsLine> = metrics(&cut).into_iter().filter(|l| l.step != 30).collect();
    assert_eq!(strip(metrics(&full)), strip(scheduled), "the run resumed after train.steps differs");
}
both_backends!(a_mid_epoch_stop_resumes_exactly, mid_epoch_stops_resume_exactly);

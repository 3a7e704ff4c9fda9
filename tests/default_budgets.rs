//! Every command's embedded defaults stay small enough to finish within a few minutes on two CPU
//! cores without a GPU (README "Running on a CPU-only machine"). Nothing is timed: the work of
//! each command is estimated from its embedded config and CLI defaults, in floating-point
//! operations, and must stay under [`BUDGET_FLOPS`].
//!
//! The model: an MLP with P parameters costs 2P per example forward, 6P for forward and
//! backward (a gradient) and 12P for a Hessian-vector product (R-op forward and backward, with
//! the forward activations cached); an Elman RNN costs the same per example and time step with
//! P = H² + H·D. Iterations that may stop early (power iteration, Hutchinson) count at their
//! most.

use batchscope::app::profile::DEFAULT_BATCHES;
use batchscope::config::{
    deserialize, BatchSize, Config, ConfigText, DepthConfig, LandscapeConfig, RnnConfig,
    DEPTH_DEFAULT_TOML, LANDSCAPE_DEFAULT_TOML, RNN_DEFAULT_TOML, TIME_TO_TARGET_DEFAULT_TOML,
};
use batchscope::curvature::budget::{budget_examples, CURVATURE_WORK_BUDGET, HESSIAN_WORK_BUDGET};
use batchscope::curvature::CurvatureOptions;
use batchscope::model::Mlp;
use batchscope::schedule::powers_of_two;

/// 2 TFLOP. Two quiet cores sustain 40 GFLOP/s on the default model's training step at B = 128
/// (docs/CPU_PERF.md: 3 717 examples/s × 6 × 1.86 M parameters) but only about 10 GFLOP/s per
/// core on Hessian-vector products over a few hundred examples: 2 TFLOP is under a minute of
/// training and under two minutes of curvature.
const BUDGET_FLOPS: f64 = 2e12;

const FWD: f64 = 2.0;
const GRAD: f64 = 6.0;
const HVP: f64 = 12.0;

/// `batchscope noise` CLI defaults (`--max-n`, `--draws`).
const NOISE_MAX_N: usize = 1024;
const NOISE_DRAWS: usize = 32;

fn params(cfg: &Config) -> f64 {
    Mlp::new(cfg.mlp_spec()).expect("model").num_params() as f64
}

fn batch(cfg: &Config) -> f64 {
    match cfg.train.batch_size {
        BatchSize::Fixed(b) => b as f64,
        BatchSize::Auto => 128.0,
    }
}

/// Training steps of a `train` config (`train.steps`, else epochs over the training set).
fn train_steps(cfg: &Config) -> f64 {
    if cfg.train.steps > 0 {
        return cfg.train.steps as f64;
    }
    let per_epoch = (cfg.data.n_train as f64 / batch(cfg)).ceil();
    cfg.train.epochs as f64 * per_epoch
}

/// Training: the steps, and a validation pass at every log step (an upper bound).
fn train_work(cfg: &Config) -> f64 {
    let p = params(cfg);
    let steps = train_steps(cfg);
    let evals = (steps / cfg.train.log_every.max(1) as f64).ceil() + 1.0;
    steps * batch(cfg) * GRAD * p + evals * cfg.data.n_val as f64 * FWD * p
}

fn sweep_work(cfg: &Config) -> f64 {
    let steps = (cfg.sweep.warmup_steps + cfg.sweep.timed_steps) as f64;
    let examples: f64 =
        powers_of_two(cfg.sweep.min_batch, cfg.sweep.max_batch).iter().map(|&b| b as f64).sum();
    steps * examples * GRAD * params(cfg)
}

fn profile_work(cfg: &Config) -> f64 {
    // Warm-up, then timed steps twice (plain and profiled).
    let steps = (cfg.sweep.warmup_steps.max(1) + 2 * cfg.sweep.timed_steps.max(1)) as f64;
    let examples: f64 = DEFAULT_BATCHES.iter().map(|&b| b as f64).sum();
    steps * examples * GRAD * params(cfg)
}

fn curvature_work(cfg: &Config) -> f64 {
    let o = CurvatureOptions::default();
    let p = params(cfg);
    let n = budget_examples(p as usize, cfg.data.n_train as usize, CURVATURE_WORK_BUDGET) as f64;
    let steps = o.lanczos_steps as f64;
    let products =
        1.0 + steps + o.power_iters as f64 + steps * (o.slq_runs as f64 - 1.0) + o.trace_samples as f64;
    // The gradient, the products, the fully reorthogonalised Lanczos runs (two passes over the
    // basis per step) and the HVP-vs-gradient timing at the train batch size.
    let reorth = o.slq_runs as f64 * 4.0 * steps * steps / 2.0 * p;
    n * GRAD * p + products * n * HVP * p + reorth + 5.0 * batch(cfg) * (HVP + GRAD) * p
}

fn noise_work(cfg: &Config) -> f64 {
    let p = params(cfg);
    let n_total = cfg.data.n_train as usize;
    let k = budget_examples(p as usize, n_total, HESSIAN_WORK_BUDGET) as f64;
    let draws = NOISE_DRAWS as f64;
    let minibatches: f64 = powers_of_two(1, NOISE_MAX_N.min(n_total)).iter().map(|&n| n as f64).sum();
    n_total as f64 * GRAD * p + (1.0 + draws) * k * HVP * p + draws * minibatches * GRAD * p
}

fn rnn_work() -> f64 {
    let mut text = ConfigText::load(None, RNN_DEFAULT_TOML, "long_term", &[]).expect("rnn default");
    text.take("landscape");
    let mut total = 0.0;
    for (name, t) in text.variants("run").expect("variants") {
        let c = RnnConfig::from_table(t, &name).expect("rnn config");
        let spec = c.rnn_spec();
        let (h, d, k) = (spec.hidden as f64, spec.inputs as f64, spec.outputs as f64);
        let per_example = spec.steps as f64 * (h * h + h * d) + k * h;
        let steps = c.train.steps as f64;
        let logs = (steps / c.train.log_every as f64).ceil() + 1.0;
        let evals = (steps / c.train.eval_every.max(1) as f64).ceil() + 1.0;
        // Steps, validation passes, and ρ(W), σ₁(W) by power iteration at every log step.
        total += steps * c.train.batch_size as f64 * GRAD * per_example
            + evals * c.sequence.n_val as f64 * FWD * per_example
            + logs * 2.0 * c.diagnostics.power_iters as f64 * 4.0 * h * h;
    }
    total
}

fn depth_work() -> f64 {
    let mut text = ConfigText::load(None, DEPTH_DEFAULT_TOML, "deep_tanh", &[]).expect("depth default");
    let Some(toml::Value::Table(d)) = text.take("depth") else { panic!("[depth] section") };
    let dc: DepthConfig = deserialize(d, "deep_tanh").expect("depth");
    let mut total = 0.0;
    for (name, mut t) in text.variants("run").expect("variants") {
        if let (Some(toml::Value::Table(m)), Some(hidden)) = (t.get_mut("model"), dc.hidden()) {
            m.insert("hidden".into(), toml::Value::try_from(hidden).expect("hidden"));
        }
        let c = Config::from_table(t, &name).expect("depth variant");
        // The measurement at initialisation (one gradient over the training set) and training.
        total += c.data.n_train as f64 * GRAD * params(&c) + train_work(&c);
    }
    total
}

fn landscape_work() -> f64 {
    let mut text =
        ConfigText::load(None, LANDSCAPE_DEFAULT_TOML, "landscape", &[]).expect("landscape default");
    let Some(toml::Value::Table(l)) = text.take("landscape") else { panic!("[landscape] section") };
    let lc: LandscapeConfig = deserialize(l, "landscape").expect("landscape");
    let c = Config::from_table(text.table, "landscape").expect("model");
    let p = params(&c);
    let n = lc.eval_train as f64;
    // Lines, the plane, the path and the symmetry path (with margins), and the Hessian direction
    // by at most 100 power-iteration products.
    let evals = (lc.line_directions.len() + 2) as f64 * lc.points as f64 * 2.0
        + (lc.grid * lc.grid) as f64
        + 1.0;
    train_work(&c) + evals * n * FWD * p + 100.0 * n * HVP * p
}

#[test]
fn every_default_command_fits_the_cpu_budget() {
    let default = Config::embedded_default().expect("embedded default");
    let works = [
        ("train", train_work(&default)),
        ("sweep", sweep_work(&default)),
        // The same sweep on the GPU (or its software stand-in) and on the CPU.
        ("compare", 2.0 * sweep_work(&default)),
        ("profile", profile_work(&default)),
        ("curvature", curvature_work(&default)),
        ("noise", noise_work(&default)),
        ("rnn", rnn_work()),
        ("depth", depth_work()),
        ("landscape", landscape_work()),
    ];
    let mut over = Vec::new();
    for (cmd, w) in works {
        assert!(w.is_finite() && w > 0.0, "{cmd}: {w}");
        eprintln!("{cmd:>10}: {:8.3} TFLOP", w / 1e12);
        if w > BUDGET_FLOPS {
            over.push(format!("{cmd}: {:.2} TFLOP", w / 1e12));
        }
    }
    assert!(over.is_empty(), "over the {} TFLOP budget: {over:?}", BUDGET_FLOPS / 1e12);
}

#[test]
fn the_hessian_budget_is_what_cut_curvature_and_noise() {
    // Without the example budget the default's Hessian work alone is far over: the guard above
    // depends on it.
    let default = Config::embedded_default().expect("embedded default");
    let p = params(&default);
    let all = default.data.n_train as f64;
    let n = default.data.n_train as usize;
    assert!(budget_examples(p as usize, n, HESSIAN_WORK_BUDGET) < n);
    assert!(budget_examples(p as usize, n, CURVATURE_WORK_BUDGET) < n);
    assert!(64.0 * all * HVP * p > BUDGET_FLOPS);
}

#[test]
fn time_to_target_has_an_embedded_default_with_a_target() {
    // Its runs stop when they reach the target (80–2 600 steps of a 9.6 k-parameter MLP; 11 s
    // on two CPU cores), so a step count bounds nothing useful: check that the default exists,
    // loads and sets a target, which the MLP default does not.
    let cfg = Config::from_toml(TIME_TO_TARGET_DEFAULT_TOML, "time_to_target.toml").expect("config");
    assert!(cfg.train.target_val_error > 0.0);
    assert!(params(&cfg) < 1e5, "{}", params(&cfg));
    assert!(Config::embedded_default().expect("default").train.target_val_error <= 0.0);
}

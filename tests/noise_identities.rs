//! The gradient-noise and curvature figures are the formulas they name: the probe's full-data
//! gradient weights each chunk by its rows; the in-training noise monitor's |G|² and tr Σ come
//! from the squared minibatch gradient norm; the curvature monitor's ε* is gᵀg / gᵀHg; and the
//! `noise` experiment's tr Σ, B_simple, B_simple (two-batch), B_noise, ε_max and ε_opt are the
//! ratios of its own measured parts.

mod common;

use std::path::Path;

use batchscope::backend::Backend;
use batchscope::config::Config;
use batchscope::data::device::DeviceDataset;
use batchscope::model::Mlp;
use batchscope::noise::{measure, two_batch_estimates, GradProbe, NoiseArgs};
use batchscope::train::{run_train, MetricsLine, TrainOptions};

fn load(sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(None, &sets).expect("config")
}

fn metrics(dir: &Path) -> Vec<MetricsLine> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics line"))
        .collect()
}

/// A probe over the training set of `cfg` at its initialization.
fn probe<'a, B: Backend>(b: &'a B, cfg: &Config) -> GradProbe<'a, B> {
    let model = Mlp::new(cfg.mlp_spec()).expect("model");
    let params = model.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale).expect("init");
    let (train, _) = batchscope::data::build_resident(&cfg.data, cfg.data_outputs()).expect("data");
    let data = DeviceDataset::upload(b, &train).expect("upload");
    GradProbe::new(b, model, params, data)
}

/// Largest elementwise difference of `a` from `r`, relative to the largest |r|.
fn max_rel_diff(a: &[f64], r: &[f64]) -> f64 {
    let scale = r.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(r).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

/// 1500 examples in chunks of 1024: the short last chunk (476 rows) counts 476/1500, so the
/// full-data gradient equals the one from chunks of 500 (all full) and the mean of the
/// single-example gradients. Weighting it by the chunk size (1024/1500) gave another vector.
#[test]
fn full_gradient_weights_a_short_last_chunk_by_its_rows() {
    let b = common::cpu();
    let cfg = load(&[
        "model.hidden=[16]",
        "data.dim=8",
        "data.classes=3",
        "data.n_train=1500",
        "data.n_val=16",
    ]);
    let mut p = probe(&b, &cfg);
    let ragged = p.full_grad(1024).expect("G in chunks of 1024");
    let even = p.full_grad(500).expect("G in chunks of 500");
    let mut mean = vec![0.0; ragged.len()];
    for i in 0..1500u32 {
        let gi = p.grad(&[i]).expect("g_i");
        mean.iter_mut().zip(&gi).for_each(|(m, g)| *m += g / 1500.0);
    }
    let (d_even, d_mean) = (max_rel_diff(&ragged, &even), max_rel_diff(&ragged, &mean));
    println!("G (chunks of 1024) against chunks of 500: {d_even:.2e}, per-example mean: {d_mean:.2e}");
    assert!(d_even < 1e-5, "chunks of 1024 vs 500: relative difference {d_even}");
    assert!(d_mean < 1e-5, "chunks of 1024 vs the per-example mean: relative difference {d_mean}");
    assert!(ragged.iter().map(|v| v * v).sum::<f64>() > 0.0);
}

/// The noise monitor (`monitor.noise_every = 1`) at parameters a learning rate of 10⁻⁹ leaves
/// fixed: on every line its two-batch estimates give back the minibatch's squared gradient norm,
/// noise_g2 + noise_trace·(N − B)/(B(N − 1)) = grad_norm² (the estimators' identity for batches
/// drawn without replacement from N rows, exact), and over 320 steps
/// the mean noise_g2 is the full-data |G|² and the mean noise_trace is tr Σ from the per-example
/// gradients (±20 %).
#[test]
fn noise_monitor_estimates_g2_and_trace_sigma() {
    let b = common::cpu();
    let batch = 64.0;
    let cfg = load(&[
        "model.hidden=[16]",
        "data.dim=8",
        "data.classes=3",
        "data.n_train=2048",
        "data.n_val=64",
        "train.batch_size=64",
        "train.optimizer=\"sgd\"",
        "train.lr=1e-9",
        "train.epochs=0",
        "train.steps=320",
        "train.log_every=1",
        "train.eval_every=0",
        "monitor.noise_every=1",
        "monitor.noise_small_batch=8",
    ]);
    let dir = common::tmpdir("noise-monitor");
    run_train(&b, &cfg, &TrainOptions::default(), &dir).expect("train");
    let lines = metrics(&dir);
    let mut est = Vec::new();
    for l in &lines {
        let (Some(Some(g2)), Some(Some(tr))) = (l.noise_g2, l.noise_trace) else { continue };
        let want = l.grad_norm * l.grad_norm;
        // An epoch's minibatches are drawn without replacement from the 2048 rows.
        let rows = 2048.0;
        let got = g2 + tr * (rows - batch) / (batch * (rows - 1.0));
        let scale = g2.abs() + tr.abs() / batch + want;
        assert!(
            (got - want).abs() <= 1e-9 * scale,
            "step {}: g2 + tr/B = {got}, |g_B|² = {want}",
            l.step
        );
        est.push((g2, tr));
    }
    assert_eq!(est.len(), 320, "every step measured");
    let n = est.len() as f64;
    let mean_g2 = est.iter().map(|e| e.0).sum::<f64>() / n;
    let mean_tr = est.iter().map(|e| e.1).sum::<f64>() / n;

    // |G|² and tr Σ at the initialization (the parameters have not moved).
    let mut p = probe(&b, &cfg);
    let g = p.full_grad(1024).expect("G");
    let g2: f64 = g.iter().map(|v| v * v).sum();
    let mut tr = 0.0;
    for i in 0..2048u32 {
        let gi = p.grad(&[i]).expect("g_i");
        tr += gi.iter().zip(&g).map(|(a, c)| (a - c) * (a - c)).sum::<f64>();
    }
    tr /= 2048.0;
    println!("monitor: |G|² {mean_g2:.5} (full data {g2:.5}), tr Σ {mean_tr:.4} (per-example {tr:.4})");
    assert!((mean_g2 - g2).abs() < 0.2 * g2, "mean noise_g2 {mean_g2} vs |G|² {g2}");
    assert!((mean_tr - tr).abs() < 0.2 * tr, "mean noise_trace {mean_tr} vs tr Σ {tr}");
}

/// The curvature monitor on a linear regression (Hessian eigenvalues 1/κ..1, and 1 for the bias):
/// every monitored line has ε* = gᵀg / gᵀHg, and ε* lies in [1/λmax, 1/λmin] (with a factor 2 for
/// the minibatch's own Hessian).
#[test]
fn curvature_monitor_eps_star_is_gtg_over_gthg() {
    let b = common::cpu();
    let kappa = 10.0;
    let cfg = load(&[
        "model.hidden=[]",
        "model.loss=\"mse\"",
        "data.kind=\"linear_regression\"",
        "data.dim=8",
        "data.outputs=2",
        "data.condition_number=10",
        "data.n_train=2048",
        "data.n_val=64",
        "train.batch_size=256",
        "train.optimizer=\"sgd\"",
        "train.lr=0.1",
        "train.epochs=0",
        "train.steps=24",
        "monitor.curvature_every=1",
    ]);
    let dir = common::tmpdir("eps-star");
    run_train(&b, &cfg, &TrainOptions::default(), &dir).expect("train");
    let mut monitored = 0;
    for l in metrics(&dir) {
        let (Some(Some(gtg)), Some(Some(gthg)), Some(Some(eps))) = (l.gtg, l.gthg, l.eps_star) else {
            continue;
        };
        let want = gtg / gthg;
        assert!((eps - want).abs() <= 1e-9 * want, "step {}: ε* {eps}, gᵀg/gᵀHg {want}", l.step);
        assert!(
            (0.5..=2.0 * kappa).contains(&eps),
            "step {}: ε* {eps} outside [1/λmax, 1/λmin]",
            l.step
        );
        monitored += 1;
    }
    assert_eq!(monitored, 24, "every step monitored");
}

/// Near a saddle (a tanh net at 1/1000 of the usual scale, `configs/saddle.toml`) the minibatch
/// gradient meets negative curvature on some steps: there ε* is null (the quadratic model has no
/// minimum along −g; it was logged as gᵀg/gᵀHg < 0), and elsewhere it is gᵀg/gᵀHg.
#[test]
fn curvature_monitor_eps_star_is_null_where_the_gradient_meets_negative_curvature() {
    let b = common::cpu();
    let cfg = load(&[
        "model.hidden=[16]",
        "model.activation=\"tanh\"",
        "model.init_scale=0.001",
        "model.init_seed=5",
        "data.kind=\"gaussian_mixture\"",
        "data.n_train=4096",
        "data.n_val=64",
        "data.dim=20",
        "data.classes=4",
        "data.separation=3.0",
        "data.seed=8",
        "train.batch_size=64",
        "train.optimizer=\"sgd\"",
        "train.lr=0.1",
        "train.epochs=0",
        "train.steps=128",
        "monitor.curvature_every=1",
    ]);
    let dir = common::tmpdir("eps-star-saddle");
    run_train(&b, &cfg, &TrainOptions::default(), &dir).expect("train");
    let (mut negative, mut positive) = (0, 0);
    for l in metrics(&dir) {
        let (Some(Some(gtg)), Some(Some(gthg)), Some(eps)) = (l.gtg, l.gthg, l.eps_star) else {
            continue;
        };
        if gthg > 0.0 {
            let eps = eps.unwrap_or_else(|| panic!("step {}: no ε* at gᵀHg = {gthg} > 0", l.step));
            assert!((eps - gtg / gthg).abs() <= 1e-9 * eps.abs(), "step {}: ε* {eps}", l.step);
            positive += 1;
        } else {
            assert_eq!(eps, None, "step {}: gᵀHg = {gthg}", l.step);
            negative += 1;
        }
    }
    println!("{negative} of {} monitored steps with gᵀHg ≤ 0", negative + positive);
    assert!(negative > 0 && positive > 0, "{negative} steps with gᵀHg ≤ 0, {positive} above");
}

/// `batchscope noise`'s summary figures are the ratios of its measured parts: tr Σ the mean of
/// n·E‖g_n − G‖² over the sizes, B_simple = tr Σ / |G|², the two-batch B_simple = tr Σ / |G|²
/// from the smallest and largest sizes' E‖g_n‖², B_noise = tr(HΣ) / GᵀHG, ε_max = |G|² / GᵀHG,
/// ε_opt(B) = ε_max / (1 + B_noise / B); on a linear regression ε_max lies in [1/λmax, 1/λmin].
fn experiment_identities<B: Backend>(b: &B) {
    let cfg = load(&[
        "model.hidden=[]",
        "model.loss=\"mse\"",
        "data.kind=\"linear_regression\"",
        "data.dim=6",
        "data.outputs=2",
        "data.condition_number=10",
        "data.noise_std=0.5",
        "data.n_train=4096",
        "data.n_val=16",
    ]);
    let args = NoiseArgs { checkpoint: None, max_n: 16, draws: 16, seed: 5, curvature: true };
    let s = measure(b, &cfg, &args).expect("noise");
    let close = |what: &str, got: f64, want: f64| {
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1e-300), "{what}: {got} vs {want}");
    };
    assert_eq!(s.rows.iter().map(|r| r.n).collect::<Vec<_>>(), [1, 2, 4, 8, 16]);
    let tr = s.rows.iter().map(|r| r.n as f64 * r.mean_sq_error).sum::<f64>() / s.rows.len() as f64;
    close("tr Σ", s.trace_sigma, tr);
    close("B_simple", s.b_simple, s.trace_sigma / s.full_grad_norm_sq);
    let (lo, hi) = (&s.rows[0], &s.rows[s.rows.len() - 1]);
    let (g2e, tre) = two_batch_estimates(lo.n as f64, lo.mean_sq_norm, hi.n as f64, hi.mean_sq_norm)
        .expect("two sizes");
    close("B_simple (two-batch)", s.b_simple_two_batch.expect("two-batch B_simple"), tre / g2e);
    let (ghg, ths) = (s.g_h_g.expect("GᵀHG"), s.trace_h_sigma.expect("tr(HΣ)"));
    let (bn, em) = (s.b_noise.expect("B_noise"), s.eps_max.expect("ε_max"));
    close("B_noise", bn, ths / ghg);
    close("ε_max", em, s.full_grad_norm_sq / ghg);
    for &(batch, e) in &s.eps_opt {
        close(&format!("ε_opt({batch})"), e, em / (1.0 + bn / batch as f64));
    }
    println!(
        "{}: tr Σ {:.3}, B_simple {:.2} (two-batch {:.2}), B_noise {bn:.2}, ε_max {em:.3}",
        b.device_name(),
        s.trace_sigma,
        s.b_simple,
        tre / g2e
    );
    // The two-batch B_simple estimates the same figure, from 16 draws: the same order.
    assert!(
        (0.25..=4.0).contains(&(tre / g2e / s.b_simple)),
        "two-batch {} vs {}",
        tre / g2e,
        s.b_simple
    );
    // Hessian eigenvalues 1/κ..1 (1 for the biases): |G|²/GᵀHG in [1, κ], with 20 % for the
    // sample's own covariance.
    assert!((0.8..=12.0).contains(&em), "ε_max {em} outside [1/λmax, 1/λmin]");
}
both_backends!(noise_summary_is_the_ratio_of_its_parts, experiment_identities);

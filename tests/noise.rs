//! Gradient noise on both backends: the minibatch error falls as σ²/n (slope −1), and on
//! linear regression B_simple matches its closed form.

mod common;

use batchscope::backend::Backend;
use batchscope::config::Config;
use batchscope::data::device::DeviceDataset;
use batchscope::data::synth::{hessian_eigenvalues, w_star};
use batchscope::model::{Mlp, ParamSet};
use batchscope::noise::GradProbe;
use batchscope::noise::{measure, NoiseArgs};

fn slope_is_minus_one<B: Backend>(b: &B) {
    let cfg = Config::load(
        None,
        &[
            "model.hidden=[16]".into(),
            "data.dim=8".into(),
            "data.classes=3".into(),
            "data.n_train=8192".into(),
            "data.n_val=16".into(),
        ],
    )
    .expect("config");
    let s = measure(
        b,
        &cfg,
        &NoiseArgs { checkpoint: None, max_n: 128, draws: 24, seed: 3, curvature: true },
    )
    .expect("noise");
    println!("{}: slope {:.3}, B_simple {:.1}", b.device_name(), s.variance_slope, s.b_simple);
    assert!((s.variance_slope + 1.0).abs() < 0.1, "slope {} should be −1", s.variance_slope);
    assert!(s.b_simple.is_finite() && s.b_simple > 0.0);
    let (bn, em) = (s.b_noise.expect("B_noise"), s.eps_max.expect("ε_max"));
    println!("B_noise {bn:.2}, ε_max {em:.4}");
    assert!(bn.is_finite() && bn > 0.0 && em.is_finite() && em > 0.0);
    assert!(s.eps_opt.windows(2).all(|w| w[1].1 >= w[0].1), "ε_opt(B) grows with B");
    // Each estimate has its standard error over the draws: positive, and a fraction of it.
    let se = s.b_noise_se.expect("B_noise's standard error");
    assert!(se > 0.0 && se < bn, "B_noise {bn} ± {se}");
    assert!(
        s.b_simple_se > 0.0 && s.b_simple_se < s.b_simple,
        "B_simple {} ± {}",
        s.b_simple,
        s.b_simple_se
    );
    assert!((s.trace_sigma_se / s.b_simple_se - s.full_grad_norm_sq).abs() < 1e-9 * s.full_grad_norm_sq);
    // The two-batch estimate (n = 1 and 128 alone, G estimated too) has its own, larger error,
    // and agrees with B_simple within it.
    let (two, two_se) =
        (s.b_simple_two_batch.expect("two-batch"), s.b_simple_two_batch_se.expect("its SE"));
    println!("two-batch B_simple {two:.1} ± {two_se:.1}");
    assert!(two_se > s.b_simple_se, "two-batch ± {two_se}, B_simple ± {}", s.b_simple_se);
    assert!((two - s.b_simple).abs() < 4.0 * two_se, "two-batch {two} ± {two_se} vs {}", s.b_simple);
}
both_backends!(minibatch_error_falls_as_one_over_n, slope_is_minus_one);

/// At W = 0 for `t = W* x + ε`, x ~ N(0, S), ε ~ N(0, σ²), loss ½‖Wx + b − t‖²:
/// g = (Wx + b − t) xᵀ = −t xᵀ (weights) and −t (bias). With w_k the rows of W*:
/// G_W = −W* S, G_b = 0, so |G|² = Σ_k w_kᵀ S² w_k;
/// E‖t xᵀ‖² = Σ_k (w_kᵀ S w_k) tr S + 2 w_kᵀ S² w_k + σ² tr S  and  E‖t‖² = Σ_k w_kᵀ S w_k + σ²,
/// so tr Σ = Σ_k [(w_kᵀ S w_k)(tr S + 1) + w_kᵀ S² w_k + σ² (tr S + 1)].
fn b_simple_closed_form<B: Backend>(b: &B) {
    let cfg = Config::load(
        None,
        &[
            "model.hidden=[]".into(),
            "model.loss=\"mse\"".into(),
            "data.kind=\"linear_regression\"".into(),
            "data.dim=6".into(),
            "data.outputs=2".into(),
            "data.condition_number=10".into(),
            "data.noise_std=0.5".into(),
            "data.n_train=65536".into(),
            "data.n_val=16".into(),
        ],
    )
    .expect("config");
    let (train, _) = batchscope::data::build_resident(&cfg.data, cfg.data_outputs()).expect("data");
    let model = Mlp::new(cfg.mlp_spec()).expect("model");
    let (names, shapes) = model.param_layout();
    let params = ParamSet::zeros(b, &names, &shapes).expect("params");
    let data = DeviceDataset::upload(b, &train).expect("upload");
    let mut probe = GradProbe::new(b, model, params, data);
    let g = probe.full_grad(4096).expect("G");
    let g2: f64 = g.iter().map(|v| v * v).sum();
    // tr Σ from single-example gradients.
    let n = 4096usize;
    let mut tr = 0.0;
    for i in 0..n {
        let gi = probe.grad(&[(i * 13 % train.n) as u32]).expect("g_i");
        tr += gi.iter().zip(&g).map(|(a, c)| (a - c) * (a - c)).sum::<f64>();
    }
    tr /= n as f64;
    let s: Vec<f64> = hessian_eigenvalues(&cfg.data)[..6].to_vec();
    let w = w_star(cfg.data.seed, 2, 6);
    let tr_s: f64 = s.iter().sum();
    let sigma2 = 0.25;
    let (mut g2_cf, mut tr_cf) = (0.0, 0.0);
    for k in 0..2 {
        let wk: Vec<f64> = (0..6).map(|j| w[k * 6 + j] as f64).collect();
        let wsw: f64 = (0..6).map(|j| wk[j] * s[j] * wk[j]).sum();
        let ws2w: f64 = (0..6).map(|j| wk[j] * s[j] * s[j] * wk[j]).sum();
        g2_cf += ws2w;
        tr_cf += wsw * (tr_s + 1.0) + ws2w + sigma2 * (tr_s + 1.0);
    }
    let (bs, bs_cf) = (tr / g2, tr_cf / g2_cf);
    println!("{}: |G|² {g2:.4} (closed form {g2_cf:.4}), tr Σ {tr:.4} ({tr_cf:.4}), B_simple {bs:.2} ({bs_cf:.2})", b.device_name());
    assert!((g2 - g2_cf).abs() < 0.1 * g2_cf, "|G|²");
    assert!((tr - tr_cf).abs() < 0.1 * tr_cf, "tr Σ");
    assert!((bs - bs_cf).abs() < 0.15 * bs_cf, "B_simple {bs} vs closed form {bs_cf}");
    // The experiment's tr Σ (at W ≈ 0: init_scale 10⁻⁶) lies within 4 of its standard errors
    // of the closed form.
    let mut at_zero = cfg.clone();
    at_zero.model.init_scale = 1e-6;
    let args = NoiseArgs { checkpoint: None, max_n: 16, draws: 64, seed: 5, curvature: false };
    let m = measure(b, &at_zero, &args).expect("noise");
    let z = (m.trace_sigma - tr_cf) / m.trace_sigma_se;
    println!("tr Σ {:.4} ± {:.4} (closed form {tr_cf:.4}, z = {z:.2})", m.trace_sigma, m.trace_sigma_se);
    assert!(z.abs() < 4.0, "tr Σ {} ± {} vs {tr_cf}", m.trace_sigma, m.trace_sigma_se);
    assert!(m.trace_sigma_se < 0.2 * tr_cf);
}
both_backends!(b_simple_matches_closed_form_on_linear_regression, b_simple_closed_form);

/// The in-training estimate (`monitor.noise_every`) logs B_simple from the unbiased two-batch
/// estimators on every k-th step, with tr Σ > 0 on average.
fn noise_scale_during_training<B: Backend>(b: &B) {
    let dir = common::tmpdir(&format!("train-{:?}", b.kind()));
    let cfg = Config::load(
        None,
        &[
            "model.hidden=[16]".into(),
            "data.dim=8".into(),
            "data.classes=3".into(),
            "data.n_train=2048".into(),
            "data.n_val=64".into(),
            "train.batch_size=64".into(),
            "train.epochs=2".into(),
            "monitor.noise_every=4".into(),
            "monitor.noise_small_batch=8".into(),
        ],
    )
    .expect("config");
    batchscope::train::run_train(b, &cfg, &Default::default(), &dir).expect("train");
    let lines: Vec<batchscope::train::MetricsLine> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    // Every noise-monitor line carries the three keys, `null` where nothing was measured (a
    // smoothed |G|² not yet positive leaves B_simple undefined): they were left out, and a
    // reader selecting `b_simple` found no such column.
    let raw = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics");
    for line in raw.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")) {
        let monitored = line["step"].as_u64().is_some_and(|s| s % 4 == 0);
        for k in ["b_simple", "noise_g2", "noise_trace"] {
            assert_eq!(line.get(k).is_some(), monitored, "{k} on {line}");
        }
    }
    let noisy: Vec<_> = lines.iter().filter(|l| l.noise_trace.is_some()).collect();
    assert_eq!(noisy.len(), 16, "every 4th of 64 steps");
    assert!(noisy.iter().all(|l| l.step % 4 == 0));
    let mean_tr = noisy.iter().filter_map(|l| l.noise_trace.flatten()).sum::<f64>() / noisy.len() as f64;
    assert!(mean_tr > 0.0, "tr Σ estimates average positive: {mean_tr}");
    let last = noisy.last().and_then(|l| l.b_simple.flatten()).expect("B_simple");
    println!("{}: B_simple during training {last:.2}", b.device_name());
    assert!(last.is_finite());
}
both_backends!(noise_scale_is_estimated_during_training, noise_scale_during_training);

/// The experiment measures at the configured initialization: it drew the weights at scale 1
/// whatever `model.init_scale` said (|G|² and B_noise were those of another point).
fn noise_at_the_configured_init_scale<B: Backend>(b: &B) {
    let at = |scale: &str| {
        let cfg = Config::load(
            None,
            &[
                "model.hidden=[16]".into(),
                "data.dim=8".into(),
                "data.classes=3".into(),
                "data.n_train=512".into(),
                "data.n_val=16".into(),
                format!("model.init_scale={scale}"),
            ],
        )
        .expect("config");
        let args = NoiseArgs { checkpoint: None, max_n: 4, draws: 2, seed: 3, curvature: false };
        let s = measure(b, &cfg, &args).expect("noise");
        let model = Mlp::new(cfg.mlp_spec()).expect("model");
        let params = model.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale).expect("init");
        let (train, _) = batchscope::data::build_resident(&cfg.data, cfg.data_outputs()).expect("data");
        let data = DeviceDataset::upload(b, &train).expect("upload");
        let g = GradProbe::new(b, model, params, data).full_grad(1024).expect("G");
        let g2: f64 = g.iter().map(|v| v * v).sum();
        assert!(
            (s.full_grad_norm_sq - g2).abs() <= 1e-9 * g2,
            "{scale}: {} vs {g2}",
            s.full_grad_norm_sq
        );
        g2
    };
    let (small, unit) = (at("0.01"), at("1.0"));
    assert!(small < 0.5 * unit, "|G|² at init_scale 0.01 ({small}) is not that at 1 ({unit})");
}
both_backends!(noise_is_measured_at_the_configured_init_scale, noise_at_the_configured_init_scale);

/// The in-training estimates are unbiased for the training set's |G|² and tr Σ: minibatches
/// are drawn without replacement from its N rows, and the i.i.d. two-batch formulas read |G|²
/// low by tr Σ/(N − 1) (B_simple 35 % high on a 256-row linear model, and |G|² < 0 on average
/// once B_simple passed N). Linear regression, N = 32, B = 16, b = 4, at a learning rate too
/// small to move the weights: the mean over 4000 monitored steps against the exact moments
/// (the i.i.d. formulas' bias is 10 standard errors there).
#[test]
fn noise_monitor_is_unbiased_for_a_finite_training_set() {
    let b = common::cpu();
    let dir = common::tmpdir("noise-finite-population");
    let cfg = Config::load(
        None,
        &[
            "model.hidden=[]".into(),
            "model.loss=\"mse\"".into(),
            "data.kind=\"linear_regression\"".into(),
            "data.dim=4".into(),
            "data.outputs=1".into(),
            "data.noise_std=0.5".into(),
            "data.n_train=32".into(),
            "data.n_val=16".into(),
            "train.optimizer=\"sgd\"".into(),
            "train.lr=1e-12".into(),
            "train.batch_size=16".into(),
            "train.epochs=2000".into(),
            "train.eval_every=0".into(),
            "monitor.noise_every=1".into(),
            "monitor.noise_small_batch=4".into(),
        ],
    )
    .expect("config");
    batchscope::train::run_train(&b, &cfg, &Default::default(), &dir).expect("train");
    let lines: Vec<batchscope::train::MetricsLine> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    let mean_se = |xs: &[f64]| {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, (var / n).sqrt())
    };
    let g2s: Vec<f64> = lines.iter().filter_map(|l| l.noise_g2.flatten()).collect();
    let trs: Vec<f64> = lines.iter().filter_map(|l| l.noise_trace.flatten()).collect();
    assert!(g2s.len() >= 3900, "{} estimates", g2s.len());
    let ((g2, g2_se), (tr, tr_se)) = (mean_se(&g2s), mean_se(&trs));
    // The exact moments over the 32 rows at the initial weights.
    let model = Mlp::new(cfg.mlp_spec()).expect("model");
    let params = model.init_scaled(&b, cfg.model.init_seed, cfg.model.init_scale).expect("init");
    let (train, _) = batchscope::data::build_resident(&cfg.data, cfg.data_outputs()).expect("data");
    let n = train.n;
    let data = DeviceDataset::upload(&b, &train).expect("upload");
    let mut probe = GradProbe::new(&b, model, params, data);
    let g = probe.full_grad(n).expect("G");
    let g2_exact: f64 = g.iter().map(|v| v * v).sum();
    let mut tr_exact = 0.0;
    for i in 0..n {
        let gi = probe.grad(&[i as u32]).expect("g_i");
        tr_exact += gi.iter().zip(&g).map(|(a, c)| (a - c) * (a - c)).sum::<f64>() / n as f64;
    }
    let bias = tr_exact / (n as f64 - 1.0);
    println!("|G|² {g2:.5} ± {g2_se:.5} (exact {g2_exact:.5}, i.i.d. bias −{bias:.5}); tr Σ {tr:.4} ± {tr_se:.4} ({tr_exact:.4})");
    assert!(bias > 8.0 * g2_se, "the test tells the corrected estimate from the i.i.d. one");
    assert!((g2 - g2_exact).abs() < 4.0 * g2_se, "|G|² {g2} ± {g2_se} vs {g2_exact}");
    assert!((tr - tr_exact).abs() < 4.0 * tr_se, "tr Σ {tr} ± {tr_se} vs {tr_exact}");
}

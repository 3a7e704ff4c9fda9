//! The Elman RNN on both backends: BPTT gradients equal f64 central differences; GPU gradients,
//! losses and per-step norms equal the CPU's; an identity RNN with W = λI (or λQ) has
//! ‖∂L/∂h_t‖ = λ^(T−t) ‖∂L/∂h_T‖; clipping bounds the update; the training loop logs it all.

mod common;

use batchscope::backend::{Activation, Backend};
use batchscope::config::RnnConfig;
use batchscope::data::sequences::SeqTask;
use batchscope::model::rnn::tensor;
use batchscope::model::{LossKind, ParamSet, Rnn, RnnInit, RnnSpec, Targets, WInit};
use batchscope::train::diagnostics::backward_growth_per_step;
use batchscope::train::rnn::{run_rnn, RnnTrainState};
use batchscope::train::{Clip, Optimizer};
use common::{assert_close, cpu, gpu, indices, tmpdir, uniform};

const ROWS: usize = 4;

fn spec(act: Activation, loss: LossKind, steps: usize) -> RnnSpec {
    let outputs = if loss == LossKind::SoftmaxXent { 3 } else { 2 };
    RnnSpec { inputs: 3, hidden: 4, outputs, steps, activation: act, loss }
}

struct Case {
    /// `xs[t]` is `x_t [ROWS, 3]`.
    xs: Vec<Vec<f32>>,
    labels: Vec<u32>,
    targets: Vec<f32>,
}

fn case(steps: usize) -> Case {
    Case {
        xs: (0..steps).map(|t| uniform(100 + t as u64, ROWS * 3, 1.0)).collect(),
        labels: indices(90, ROWS, 3),
        targets: uniform(91, ROWS * 2, 1.0),
    }
}

/// Host parameters: W ~ N(0, 0.9²/H), Glorot U and V, and nonzero biases so `b` and `c` matter.
fn host_params(rnn: &Rnn) -> Vec<Vec<f32>> {
    let mut p = rnn.init_host(&RnnInit { w_init: WInit::Normal, w_scale: 0.9, seed: 5 });
    p[tensor::B] = uniform(7, rnn.spec.hidden, 0.3);
    p[tensor::C] = uniform(8, rnn.spec.outputs, 0.3);
    p
}

/// f64 reference: the mean loss of the RNN with host params (W, U, b, V, c).
fn reference_loss(s: &RnnSpec, p: &[Vec<f64>], c: &Case) -> f64 {
    let (d, h, k) = (s.inputs, s.hidden, s.outputs);
    let (w, u, b, v, cb) = (&p[0], &p[1], &p[2], &p[3], &p[4]);
    let mut total = 0.0;
    for r in 0..ROWS {
        let mut hs = vec![0.0f64; h];
        for x in &c.xs {
            // h_t = φ(W h_{t-1} + U x_t + b)
            hs = (0..h)
                .map(|i| {
                    let z = b[i]
                        + (0..h).map(|j| w[i * h + j] * hs[j]).sum::<f64>()
                        + (0..d).map(|j| u[i * d + j] * x[r * d + j] as f64).sum::<f64>();
                    match s.activation {
                        Activation::Tanh => z.tanh(),
                        _ => z,
                    }
                })
                .collect();
        }
        // y = V h_T + c
        let y: Vec<f64> =
            (0..k).map(|o| cb[o] + (0..h).map(|j| v[o * h + j] * hs[j]).sum::<f64>()).collect();
        total += match s.loss {
            LossKind::SoftmaxXent => {
                let m = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + y.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                lse - y[c.labels[r] as usize]
            }
            LossKind::Mse => {
                0.5 * (0..k).map(|o| (y[o] - c.targets[r * k + o] as f64).powi(2)).sum::<f64>()
            }
        };
    }
    total / ROWS as f64
}

/// Gradients, per-example losses and `‖∂L/∂h_t‖²` of one minibatch on `b`.
fn backend_grads<B: Backend>(
    b: &B,
    rnn: &Rnn,
    params: &[Vec<f32>],
    c: &Case,
) -> (Vec<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (names, shapes) = rnn.param_layout();
    let p = ParamSet::from_host(b, &names, &shapes, params).unwrap();
    let mut grads = p.zeros_like(b).unwrap();
    let mut ws = rnn.workspace(b, ROWS).unwrap();
    let xs: Vec<B::Buf> = c.xs.iter().map(|x| b.upload(x).unwrap()).collect();
    let labels = b.upload_idx(&c.labels).unwrap();
    let t = b.upload(&c.targets).unwrap();
    let targets = match rnn.spec.loss {
        LossKind::SoftmaxXent => Targets::Classes(&labels),
        LossKind::Mse => Targets::Values(&t),
    };
    let mut norms = b.zeros(rnn.spec.steps).unwrap();
    rnn.loss_and_grad(b, &p, &xs, &targets, &mut ws, &mut grads, Some((&mut norms, 0))).unwrap();
    (grads.to_host(b).unwrap(), b.read(&ws.loss).unwrap(), b.read(&norms).unwrap())
}

fn all_specs(steps: usize) -> Vec<RnnSpec> {
    let mut v = Vec::new();
    for act in [Activation::Tanh, Activation::Identity] {
        for loss in [LossKind::SoftmaxXent, LossKind::Mse] {
            v.push(spec(act, loss, steps));
        }
    }
    v
}

/// BPTT gradients of the mean loss = central differences of the f64 reference (h = 1e-6).
fn gradients_match_finite_differences<B: Backend>(b: &B) {
    let steps = 5;
    let c = case(steps);
    for s in all_specs(steps) {
        let rnn = Rnn::new(s.clone()).unwrap();
        let host = host_params(&rnn);
        let (grads, _, _) = backend_grads(b, &rnn, &host, &c);
        let p64: Vec<Vec<f64>> = host.iter().map(|t| t.iter().map(|&v| v as f64).collect()).collect();
        let h = 1e-6;
        for (ti, tensor) in p64.iter().enumerate() {
            let fd: Vec<f32> = (0..tensor.len())
                .map(|j| {
                    let (mut plus, mut minus) = (p64.clone(), p64.clone());
                    plus[ti][j] += h;
                    minus[ti][j] -= h;
                    ((reference_loss(&s, &plus, &c) - reference_loss(&s, &minus, &c)) / (2.0 * h)) as f32
                })
                .collect();
            assert_close(
                &format!(
                    "{} grad of {} ({:?}, {:?}) vs f64 central differences",
                    b.device_name(),
                    rnn.param_layout().0[ti],
                    s.activation,
                    s.loss
                ),
                &fd,
                &grads[ti],
                2e-5,
                1e-3,
            );
        }
    }
}
both_backends!(rnn_gradients_equal_finite_differences, gradients_match_finite_differences);

#[test]
fn gpu_gradients_losses_and_step_norms_equal_cpu() {
    let (c, g) = (cpu(), gpu());
    let steps = 7;
    let data = case(steps);
    for s in all_specs(steps) {
        let rnn = Rnn::new(s.clone()).unwrap();
        let host = host_params(&rnn);
        let (gc, lc, nc) = backend_grads(&c, &rnn, &host, &data);
        let (gg, lg, ng) = backend_grads(&g, &rnn, &host, &data);
        for (i, (a, b)) in gc.iter().zip(&gg).enumerate() {
            assert_close(&format!("{:?}/{:?} grad tensor {i}", s.activation, s.loss), a, b, 1e-5, 1e-4);
        }
        assert_close(&format!("{:?}/{:?} per-example loss", s.activation, s.loss), &lc, &lg, 1e-5, 1e-5);
        assert_close(&format!("{:?}/{:?} ‖∂L/∂h_t‖²", s.activation, s.loss), &nc, &ng, 1e-7, 1e-4);
    }
}

/// Identity RNN, W = λI or λQ: ‖∂L/∂h_t‖ = λ^(T−t) ‖∂L/∂h_T‖ (exact in exact arithmetic).
fn step_norms_scale_as_lambda_power<B: Backend>(b: &B) {
    let steps = 12;
    let c = case(steps);
    for w_init in [WInit::Diag, WInit::Orthogonal] {
        for lambda in [0.8f32, 1.0, 1.25] {
            let s = RnnSpec { hidden: 6, ..spec(Activation::Identity, LossKind::Mse, steps) };
            let rnn = Rnn::new(s).unwrap();
            let host = rnn.init_host(&RnnInit { w_init, w_scale: lambda, seed: 3 });
            let (_, _, sq) = backend_grads(b, &rnn, &host, &c);
            let norms: Vec<f64> = sq.iter().map(|&v| (v as f64).sqrt()).collect();
            let last = norms[steps - 1];
            assert!(last > 0.0);
            for (i, &n) in norms.iter().enumerate() {
                let want = (lambda as f64).powi((steps - 1 - i) as i32);
                let got = n / last;
                assert!(
                    (got - want).abs() <= 2e-4 * want,
                    "{w_init:?} λ = {lambda}: ‖∂L/∂h_{}‖/‖∂L/∂h_T‖ = {got}, want λ^(T−t) = {want}",
                    i + 1
                );
            }
            let g = backward_growth_per_step(&norms).unwrap();
            assert!(
                (g - (lambda as f64).ln()).abs() < 2e-5,
                "{w_init:?} λ = {lambda}: growth {g} vs ln λ {}",
                (lambda as f64).ln()
            );
        }
    }
}
both_backends!(identity_rnn_step_norms_scale_as_lambda_power, step_norms_scale_as_lambda_power);

/// With global-norm clipping at c, one SGD step moves the parameters by at most lr·c, and the
/// step counts as a clip event; without clipping it moves by lr·‖g‖.
fn clipping_bounds_the_update<B: Backend>(b: &B) {
    let steps = 10;
    let c = case(steps);
    let s = spec(Activation::Identity, LossKind::Mse, steps);
    let rnn = Rnn::new(s).unwrap();
    // λ = 1.5: ‖∂L/∂h_1‖ is 1.5⁹ ≈ 38 × ‖∂L/∂h_T‖, a cliff.
    let init = RnnInit { w_init: WInit::Orthogonal, w_scale: 1.5, seed: 2 };
    let (lr, max_norm) = (0.01f32, 0.5f32);
    let xs: Vec<B::Buf> = c.xs.iter().map(|x| b.upload(x).unwrap()).collect();
    let t = b.upload(&c.targets).unwrap();
    let opt = Optimizer::Sgd { weight_decay: 0.0 };
    for clip in [Clip { norm: max_norm, value: 0.0 }, Clip::default()] {
        let p = rnn.init(b, &init).unwrap();
        let before = p.to_flat(b).unwrap();
        let mut st = RnnTrainState::new(b, rnn.clone(), p, ROWS, &opt).unwrap();
        st.record_step(b, &xs, &Targets::Values(&t), &opt, lr, &clip, true).unwrap();
        let m = st.read_metrics(b).unwrap();
        let after = st.params.to_flat(b).unwrap();
        let moved = before.iter().zip(&after).map(|(x, y)| ((y - x) as f64).powi(2)).sum::<f64>().sqrt();
        assert!(
            m.grad_norm > 10.0 * max_norm as f64,
            "the cliff gradient should be large, got {}",
            m.grad_norm
        );
        if clip.norm > 0.0 {
            assert!(
                moved <= (lr * max_norm) as f64 * (1.0 + 1e-4),
                "clipped step moved {moved} > lr·c = {}",
                lr * max_norm
            );
            assert!(
                moved >= (lr * max_norm) as f64 * (1.0 - 1e-3),
                "clipped step should move lr·c, moved {moved}"
            );
            assert_eq!(m.clip_events, 1);
        } else {
            let want = lr as f64 * m.grad_norm;
            assert!(
                (moved - want).abs() <= 1e-3 * want,
                "unclipped step moved {moved}, lr·‖g‖ = {want}"
            );
            assert_eq!(m.clip_events, 0);
        }
    }
}
both_backends!(rnn_clipping_bounds_the_update, clipping_bounds_the_update);

fn tiny_config(task: &str, extra: &str) -> RnnConfig {
    let text = format!(
        "[rnn]\nhidden = 8\nactivation = \"tanh\"\nw_scale = 1.0\n[sequence]\ntask = \"{task}\"\nlength = 6\nsymbols = 3\nn_train = 256\nn_val = 64\n\
         [train]\nbatch_size = 32\noptimizer = \"momentum\"\nlr = 0.05\nsteps = 24\nlog_every = 4\neval_every = 12\n{extra}"
    );
    RnnConfig::from_table(toml::from_str(&text).unwrap(), "test").unwrap()
}

/// The training loop logs per-step norms and the spectrum, learns the copy task, and leaves
/// checkpoints; GPU and CPU follow the same trajectory.
#[test]
fn training_loop_logs_diagnostics_and_gpu_follows_cpu() {
    let cfg = tiny_config("copy", "clip_norm = 1.0\n");
    assert_eq!(cfg.sequence.task, SeqTask::Copy);
    let (dc, dg) = (tmpdir("cpu"), tmpdir("gpu"));
    let (sc, lc) = run_rnn(&cpu(), &cfg, "cpu", &dc, false).unwrap();
    let (sg, lg) = run_rnn(&gpu(), &cfg, "gpu", &dg, false).unwrap();
    assert_eq!(lc.len(), 7, "logged at step 1 and every 4 steps");
    for l in &lc {
        assert_eq!(l.dh_norms.len(), 6);
        assert!(l.dh_norms.iter().all(|v| v.is_finite() && *v > 0.0));
        assert!(l.spectral_radius > 0.0 && l.top_singular >= l.spectral_radius * (1.0 - 1e-3));
    }
    assert!(
        (sc.spectral_radius_init - 1.0).abs() < 1e-4,
        "orthogonal W of scale 1: ρ = {}",
        sc.spectral_radius_init
    );
    let first = lc[0].train_loss;
    assert!((first - 3f64.ln()).abs() < 0.3, "initial loss {first} should be near ln 3");
    assert!(
        sc.final_val_loss.unwrap() < first,
        "validation loss {:?} should fall below {first}",
        sc.final_val_loss
    );
    for (a, b) in lc.iter().zip(&lg) {
        assert!(
            (a.train_loss - b.train_loss).abs() <= 2e-4 * a.train_loss.max(1.0),
            "cpu {} vs gpu {} at step {}",
            a.train_loss,
            b.train_loss,
            a.step
        );
        assert_eq!(a.clip_events, b.clip_events);
    }
    assert_eq!(sc.clip_events, sg.clip_events);
    for f in ["metrics.jsonl", "summary.json", "init.safetensors", "last.safetensors"] {
        assert!(dc.join(f).exists(), "{f} missing");
    }
    let _ = (std::fs::remove_dir_all(&dc), std::fs::remove_dir_all(&dg));
}

/// A variant that diverges stops where its loss becomes non-finite and leaves no checkpoint of
/// its non-finite parameters (one was written, which batchscope then refused to load).
#[test]
fn a_diverged_run_writes_no_non_finite_checkpoint() {
    let text = "[rnn]\nhidden = 16\nactivation = \"identity\"\nw_scale = 3.0\n[sequence]\ntask = \"adding\"\nlength = 60\nn_train = 256\nn_val = 64\n\
                [train]\nbatch_size = 32\nlr = 1.0\nsteps = 40\nlog_every = 1\n";
    let cfg = RnnConfig::from_table(toml::from_str(text).unwrap(), "test").unwrap();
    let dir = tmpdir("diverged");
    let (summary, lines) = run_rnn(&cpu(), &cfg, "boom", &dir, false).unwrap();
    let at = summary.diverged_at.expect("w_scale = 3 over 60 steps diverges");
    assert_eq!(lines.last().map(|l| l.step), Some(at));
    assert!(dir.join("init.safetensors").exists() && dir.join("summary.json").exists());
    assert!(!dir.join("last.safetensors").exists(), "no checkpoint of non-finite parameters");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A long run returns per-t norms for a bounded few of its logged lines, evenly spaced, the
/// first and last included (it held every line's, 800 MB at 10⁶ logged steps of T = 100);
/// metrics.jsonl keeps every line's, and the summary's final norms are the last line's.
#[test]
fn long_runs_keep_per_step_norms_of_a_bounded_few_lines() {
    let mut cfg = tiny_config("copy", "");
    (cfg.train.steps, cfg.train.log_every) = (600, 1);
    let d = tmpdir("rnn-kept-norms");
    let (summary, lines) = run_rnn(&cpu(), &cfg, "long", &d, false).unwrap();
    assert_eq!(lines.len(), 600);
    let kept: Vec<u64> = lines.iter().filter(|l| !l.dh_norms.is_empty()).map(|l| l.step).collect();
    assert!(kept.len() <= batchscope::train::rnn::KEPT_DH_NORMS as usize + 2, "{kept:?}");
    assert!(kept.len() >= 32, "{kept:?}");
    assert_eq!((kept[0], kept.last().copied()), (1, Some(600)));
    let gaps: Vec<u64> = kept.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[..gaps.len() - 1].iter().all(|&g| g == gaps[0]), "evenly spaced: {gaps:?}");
    assert_eq!(summary.dh_norms_final, lines[599].dh_norms);
    let logged = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let with_norms = logged.lines().filter(|l| l.contains("\"dh_norms\":[")).count();
    assert_eq!(with_norms, 600, "metrics.jsonl keeps every line's norms");
}

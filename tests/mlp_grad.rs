//! MLP gradients equal f64 central finite differences on both backends; GPU gradients,
//! per-example losses and 0-1 values equal the CPU's.

mod common;

use batchscope::backend::{Activation, Backend};
use batchscope::model::{LossKind, Mlp, MlpSpec, Targets};
use common::{assert_close, cpu, gpu, indices, uniform};

const ROWS: usize = 9;

fn spec(act: Activation, loss: LossKind) -> MlpSpec {
    MlpSpec { sizes: vec![5, 7, 4, 3], activation: act, loss }
}

struct Case {
    x: Vec<f32>,
    labels: Vec<u32>,
    targets: Vec<f32>,
}

fn case() -> Case {
    Case {
        x: uniform(70, ROWS * 5, 1.5),
        labels: indices(71, ROWS, 3),
        targets: uniform(72, ROWS * 3, 1.0),
    }
}

/// Backend gradients, per-example loss and correctness for one minibatch.
fn backend_grads<B: Backend>(b: &B, mlp: &Mlp, c: &Case) -> (Vec<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let p = mlp.init(b, 7).unwrap();
    let mut grads = p.zeros_like(b).unwrap();
    let mut ws = mlp.workspace(b, ROWS).unwrap();
    let x = b.upload(&c.x).unwrap();
    let labels = b.upload_idx(&c.labels).unwrap();
    let t = b.upload(&c.targets).unwrap();
    let targets = match mlp.spec.loss {
        LossKind::SoftmaxXent => Targets::Classes(&labels),
        LossKind::Mse => Targets::Values(&t),
    };
    mlp.loss_and_grad(b, &p, &x, &targets, &mut ws, &mut grads).unwrap();
    (grads.to_host(b).unwrap(), b.read(&ws.loss).unwrap(), b.read(&ws.correct).unwrap())
}

fn all_specs() -> Vec<MlpSpec> {
    let mut v = Vec::new();
    for act in [Activation::Tanh, Activation::Relu, Activation::Identity] {
        for loss in [LossKind::SoftmaxXent, LossKind::Mse] {
            v.push(spec(act, loss));
        }
    }
    v
}

/// Gradients of the mean loss = central differences of the f64 reference (h = 1e-6).
fn gradients_match_finite_differences<B: Backend>(b: &B) {
    let c = case();
    for s in all_specs() {
        let mlp = Mlp::new(s.clone()).unwrap();
        let (grads, _, _) = backend_grads(b, &mlp, &c);
        let params64: Vec<Vec<f64>> =
            mlp.init_host(7).iter().map(|t| t.iter().map(|&v| v as f64).collect()).collect();
        let x64: Vec<f64> = c.x.iter().map(|&v| v as f64).collect();
        let t64: Vec<f64> = c.targets.iter().map(|&v| v as f64).collect();
        let h = 1e-6;
        for (ti, tensor) in params64.iter().enumerate() {
            let mut fd = vec![0f32; tensor.len()];
            for j in 0..tensor.len() {
                let mut plus = params64.clone();
                plus[ti][j] += h;
                let mut minus = params64.clone();
                minus[ti][j] -= h;
                let d = (common::reference_loss(&s, &plus, &x64, &c.labels, &t64)
                    - common::reference_loss(&s, &minus, &x64, &c.labels, &t64))
                    / (2.0 * h);
                fd[j] = d as f32;
            }
            assert_close(
                &format!(
                    "{} grad of tensor {ti} ({:?}, {:?}) vs f64 central differences",
                    b.device_name(),
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
    println!("gradcheck ok on {}", b.device_name());
}
both_backends!(mlp_gradients_equal_finite_differences, gradients_match_finite_differences);

#[test]
fn gpu_gradients_losses_and_01_equal_cpu() {
    let (c, g) = (cpu(), gpu());
    let data = case();
    for s in all_specs() {
        let mlp = Mlp::new(s.clone()).unwrap();
        let (gc, lc, cc) = backend_grads(&c, &mlp, &data);
        let (gg, lg, cg) = backend_grads(&g, &mlp, &data);
        for (i, (a, b)) in gc.iter().zip(&gg).enumerate() {
            assert_close(&format!("{:?}/{:?} grad tensor {i}", s.activation, s.loss), a, b, 1e-5, 1e-4);
        }
        assert_close(&format!("{:?}/{:?} per-example loss", s.activation, s.loss), &lc, &lg, 1e-5, 1e-5);
        if s.loss == LossKind::SoftmaxXent {
            assert_eq!(cc, cg, "per-example 0-1 values differ");
        }
    }
    println!("parity ok: MLP gradients, per-example losses and 0-1 values, GPU = CPU");
}

/// Submit counts where the backend has them.
trait Submits {
    fn submits(&self) -> Option<u64>;
}
impl Submits for batchscope::backend::cpu::CpuBackend {
    fn submits(&self) -> Option<u64> {
        None
    }
}
impl Submits for batchscope::backend::gpu::GpuBackend {
    fn submits(&self) -> Option<u64> {
        Some(self.dev.submit_count())
    }
}

#[test]
fn training_steps_on_gpu_follow_cpu_and_take_one_submit_each() {
    use batchscope::train::{Clip, Optimizer, TrainState};
    let (c, g) = (cpu(), gpu());
    let s =
        MlpSpec { sizes: vec![20, 33, 10], activation: Activation::Relu, loss: LossKind::SoftmaxXent };
    let rows = 17;
    let x = uniform(80, rows * 20, 1.0);
    let y = indices(81, rows, 10);
    let opt = Optimizer::Momentum { mu: 0.9, weight_decay: 1e-4 };
    let run = |b_cpu: Option<&batchscope::backend::cpu::CpuBackend>| -> Vec<f64> {
        let mut losses = Vec::new();
        macro_rules! go {
            ($b:expr) => {{
                let b = $b;
                let mlp = Mlp::new(s.clone()).unwrap();
                let p = mlp.init(b, 3).unwrap();
                let mut st = TrainState::new(b, mlp, p, rows, &opt).unwrap();
                let xb = b.upload(&x).unwrap();
                let yb = b.upload_idx(&y).unwrap();
                for _ in 0..5 {
                    let before = b.submits();
                    st.record_step(b, &xb, &Targets::Classes(&yb), &opt, 0.05, &Clip::default())
                        .unwrap();
                    b.flush().unwrap();
                    if let Some(n) = before {
                        assert_eq!(
                            b.submits().unwrap() - n,
                            1,
                            "a training step must be one queue.submit"
                        );
                    }
                    losses.push(st.read_metrics(b).unwrap().loss);
                }
            }};
        }
        match b_cpu {
            Some(b) => go!(b),
            None => go!(&g),
        }
        losses
    };
    let lc = run(Some(&c));
    let lg = run(None);
    assert!(lc[4] < lc[0], "loss should fall on a fixed batch: {lc:?}");
    for (a, b) in lc.iter().zip(&lg) {
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "cpu {lc:?} vs gpu {lg:?}");
    }
}

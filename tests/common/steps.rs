//! Helpers of the fused-step tests (tests/wgrad_update.rs, tests/linear_xent.rs,
//! tests/dgrad_wgrad_update.rs): float bits, the update rules they sweep, a bitwise comparison of
//! named outputs, and the bits of a short training run.

use batchscope::backend::{Activation, Backend, MomentumStep, UpdateRule};
use batchscope::model::{LossKind, Mlp, MlpSpec, Targets};
use batchscope::train::{Clip, Optimizer, TrainState};

use super::{indices, uniform};

/// Every output of one op call, named.
pub type Outputs = Vec<(&'static str, Vec<f32>)>;

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// SGD with and without weight decay, and momentum with it.
pub const RULES: [UpdateRule; 3] = [
    UpdateRule::Sgd { lr: 0.1, weight_decay: 0.01 },
    UpdateRule::Sgd { lr: 0.05, weight_decay: 0.0 },
    UpdateRule::Momentum(MomentumStep { lr: 0.05, mu: 0.9, weight_decay: 0.001 }),
];

/// `fused` and `unfused` hold the same outputs bit for bit.
pub fn assert_bitwise(case: &str, fused: &Outputs, unfused: &Outputs) {
    assert_eq!(fused.len(), unfused.len());
    for ((name, f), (_, u)) in fused.iter().zip(unfused) {
        assert_eq!(bits(f), bits(u), "{case}: {name}, fused vs unfused");
    }
}

/// A classifier MLP of `sizes` with `act` (softmax cross-entropy, seeded parameters) and a
/// seeded minibatch of `rows` examples for it.
pub fn mlp_run<B: Backend>(
    b: &B,
    sizes: &[usize],
    act: Activation,
    rows: usize,
    opt: &Optimizer,
) -> (TrainState<B>, B::Buf, B::IdxBuf) {
    let spec = MlpSpec { sizes: sizes.to_vec(), activation: act, loss: LossKind::SoftmaxXent };
    let mlp = Mlp::new(spec).unwrap();
    let p = mlp.init(b, 3).unwrap();
    let mut st = TrainState::new(b, mlp, p, rows, opt).unwrap();
    st.measure_grad_norm = true;
    let x = b.upload(&uniform(80, rows * sizes[0], 1.0)).unwrap();
    let y = b.upload_idx(&indices(81, rows, *sizes.last().unwrap() as u32)).unwrap();
    (st, x, y)
}

/// Everything a training run keeps after 4 steps of `st` on the minibatch `x`, `y` (learning
/// rate 0.05 / step): each step's metrics (loss, error, gradient norm) as bits, then the
/// parameters, gradients and velocities.
pub fn four_steps_bits<B: Backend>(
    b: &B,
    st: &mut TrainState<B>,
    (x, y): (&B::Buf, &B::IdxBuf),
    opt: &Optimizer,
) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for step in 0..4 {
        let lr = 0.05 / (1 + step) as f32;
        st.record_step(b, x, &Targets::Classes(y), opt, lr, &Clip::default()).unwrap();
        let m = st.read_metrics(b).unwrap();
        let f64_bits = |v: f64| [v.to_bits() as u32, (v.to_bits() >> 32) as u32];
        out.push([m.loss, m.error, m.grad_norm].into_iter().flat_map(f64_bits).collect());
    }
    out.push(bits(&st.params.to_flat(b).unwrap()));
    out.push(bits(&st.grads.to_flat(b).unwrap()));
    if let Some(v) = &st.velocity {
        out.push(bits(&v.to_flat(b).unwrap()));
    }
    out
}

/// The loss of each of `steps` training steps of `st` on the minibatch `x`, `y` (learning rate
/// 0.05 / step), as read back after each.
pub fn losses<B: Backend>(
    b: &B,
    st: &mut TrainState<B>,
    (x, y): (&B::Buf, &B::IdxBuf),
    opt: &Optimizer,
    steps: usize,
) -> Vec<f32> {
    (0..steps)
        .map(|step| {
            let lr = 0.05 / (1 + step) as f32;
            st.record_step(b, x, &Targets::Classes(y), opt, lr, &Clip::default()).unwrap();
            st.read_metrics(b).unwrap().loss as f32
        })
        .collect()
}

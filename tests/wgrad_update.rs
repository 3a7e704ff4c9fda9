//! `Backend::wgrad_update`, the optimizer step fused into the backward pass: the GPU's one
//! dispatch (gW, gb and the step of W and b) equals the unfused product and update bit for bit
//! and the CPU within float tolerance, on ragged shapes; the CPU's blocked version (product and
//! step a block of rows at a time) equals its unfused path bit for bit; bad operands are typed
//! errors; and a training step with the fused update equals the unfused step bit for bit on both
//! backends.

mod common;

use batchscope::backend::gpu::wgrad_update::{fuses, WGRAD_UPDATE_MAX_K};
use batchscope::backend::{
    layer_step, Activation, Backend, Gemm, LayerStep, MomentumStep, ParamState, UpdateRule,
};
use batchscope::train::{Clip, Optimizer};
use common::steps::{bits, four_steps_bits, mlp_run, Outputs, RULES};
use common::{assert_close, uniform};

/// `gW [m, n] = alpha · dzᵀ · x` over k rows, `gb = Σ dz`, then `rule` on W and b (seeded):
/// by `Backend::wgrad_update`, or (`unfused`) by the default every implementation must equal.
fn wgrad_update_on<B: Backend>(
    b: &B,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    rule: &UpdateRule,
    unfused: bool,
) -> Outputs {
    let seed = (m * 1000 + n * 10 + k) as u64;
    let dz = b.upload(&uniform(seed, k * m, 1.0)).unwrap();
    let x = b.upload(&uniform(seed + 1, k * n, 1.0)).unwrap();
    // Garbage in the gradients: the op overwrites them.
    let mut gw = b.upload(&uniform(seed + 2, m * n, 9.0)).unwrap();
    let mut gb = b.upload(&uniform(seed + 3, m, 9.0)).unwrap();
    let mut w = b.upload(&uniform(seed + 4, m * n, 0.5)).unwrap();
    let mut bias = b.upload(&uniform(seed + 5, m, 0.5)).unwrap();
    let mut vw = b.upload(&uniform(seed + 6, m * n, 0.1)).unwrap();
    let mut vb = b.upload(&uniform(seed + 7, m, 0.1)).unwrap();
    let momentum = matches!(rule, UpdateRule::Momentum(_));
    let g = Gemm::nn(m, n, k).trans(true, false).scaled(alpha, 0.0);
    let step = LayerStep {
        rule: *rule,
        weight: ParamState { param: &mut w, velocity: momentum.then_some(&mut vw) },
        bias: ParamState { param: &mut bias, velocity: momentum.then_some(&mut vb) },
    };
    match unfused {
        false => b.wgrad_update(&g, &dz, &x, &mut gw, &mut gb, step).unwrap(),
        true => layer_step::unfused(b, &g, &dz, &x, &mut gw, &mut gb, step).unwrap(),
    }
    let mut out = vec![
        ("gW", b.read(&gw).unwrap()),
        ("gb", b.read(&gb).unwrap()),
        ("W", b.read(&w).unwrap()),
        ("b", b.read(&bias).unwrap()),
    ];
    if momentum {
        out.push(("vW", b.read(&vw).unwrap()));
        out.push(("vb", b.read(&vb).unwrap()));
    }
    out
}

fn wgrad_update_case<B: Backend>(
    b: &B,
    shape: (usize, usize, usize),
    alpha: f32,
    rule: &UpdateRule,
) -> Outputs {
    wgrad_update_on(b, shape, alpha, rule, false)
}

/// Shapes `(m, n, k)`: one element, ragged edges of the 64x64 blocks and of the 4x4 per
/// invocation, depths 1, 7, 8, 31 and 32 (the last of one dispatch; 33 and 64 take the unfused
/// path), and the MLP's skinny layer shapes.
const SHAPES: [(usize, usize, usize); 10] = [
    (1, 1, 1),
    (5, 3, 7),
    (65, 130, 8),
    (64, 64, 31),
    (130, 67, 32),
    (10, 784, 1),
    (257, 19, 16),
    (3, 200, 9),
    (70, 70, 33),
    (33, 40, 64),
];

/// The fused GPU dispatch equals the unfused GPU path bit for bit, and the CPU (the reference)
/// within float tolerance, for every shape, rule and alpha.
#[test]
fn fused_wgrad_update_matches_unfused_and_cpu_on_ragged_shapes() {
    let (fused, unfused, cpu) = (common::gpu(), common::gpu(), common::cpu());
    fused.set_fused_update(true);
    unfused.set_fused_update(false);
    for shape in SHAPES {
        let (m, n, k) = shape;
        assert_eq!(
            fuses(&Gemm::nn(m, n, k).trans(true, false), WGRAD_UPDATE_MAX_K),
            k <= WGRAD_UPDATE_MAX_K,
            "{shape:?}"
        );
        for rule in &RULES {
            for alpha in [1.0, 0.5] {
                let case = format!("{shape:?} {rule:?} alpha {alpha}");
                let f = wgrad_update_case(&fused, shape, alpha, rule);
                let u = wgrad_update_case(&unfused, shape, alpha, rule);
                let c = wgrad_update_case(&cpu, shape, alpha, rule);
                assert_eq!(f.len(), u.len());
                for ((name, fv), (_, uv)) in f.iter().zip(&u) {
                    assert_eq!(bits(fv), bits(uv), "{case}: {name}, fused vs unfused on the GPU");
                }
                for ((name, cv), (_, fv)) in c.iter().zip(&f) {
                    assert_close(&format!("{case}: {name}, cpu vs gpu"), cv, fv, 1e-5, 1e-5);
                }
            }
        }
    }
    println!("parity ok: wgrad_update, {} shapes x {} rules x 2 alphas", SHAPES.len(), RULES.len());
}

/// The CPU fuses where its weight gradient runs on the rows kernel (k = 1 to 16, 1 to 8 where
/// oneMKL is in the table; at least 16 rows): each block of gW's rows and the step of the same
/// rows of W in one task. Bit for bit the unfused default, serial and parallel (past 65 536
/// elements), every rule and alpha.
#[test]
fn cpu_fused_wgrad_update_equals_unfused() {
    use batchscope::backend::cpu::layer_step::fuses as cpu_fuses;
    let cpu = common::cpu();
    use batchscope::backend::cpu::matmul::{Machine, ROWS_MAX_K, ROWS_MAX_K_MKL};
    let max_k = if Machine::this().mkl { ROWS_MAX_K_MKL } else { ROWS_MAX_K };
    let shapes = [
        (16, 3, 2),
        (37, 50, 3),
        (100, 17, 4),
        (300, 257, 3),
        (1024, 784, 4),
        (33, 1, 2),
        (50, 40, 1),
        (1024, 1024, 1),
        (129, 70, 7),
        (1024, 784, 8),
        (45, 333, 13),
        (1024, 1024, 16),
    ];
    for shape in shapes.into_iter().filter(|s| s.2 <= max_k) {
        let (m, n, k) = shape;
        assert!(cpu_fuses(&Gemm::nn(m, n, k).trans(true, false)), "{shape:?}");
        for rule in &RULES {
            for alpha in [1.0, 0.5] {
                let f = wgrad_update_on(&cpu, shape, alpha, rule, false);
                let u = wgrad_update_on(&cpu, shape, alpha, rule, true);
                assert_eq!(f.len(), u.len());
                for ((name, fv), (_, uv)) in f.iter().zip(&u) {
                    assert_eq!(bits(fv), bits(uv), "{shape:?} {rule:?} alpha {alpha}: {name}");
                }
            }
        }
    }
    // k past the table's limit and fewer than 16 rows run the unfused path.
    for (m, n, k) in [(64, 64, max_k + 1), (15, 64, 3)] {
        assert!(!cpu_fuses(&Gemm::nn(m, n, k).trans(true, false)), "{:?}", (m, n, k));
    }
}

/// Past [`WGRAD_UPDATE_MAX_K`] (where the unfused path is product, `col_sum` and update) the
/// kernel computes the same bits when told to fuse (`set_fused_update_max_k`, for A/B timing on
/// a device): k = 33 to 300 on ragged shapes, every rule. Where the unfused product would run
/// split-k (k ≥ 512 on few tiles: partial sums in another order) it does not fuse, and the
/// results are still the unfused path's.
#[test]
fn fused_wgrad_update_is_exact_past_the_default_depth() {
    let (fused, unfused) = (common::gpu(), common::gpu());
    fused.set_fused_update_max_k(4096);
    unfused.set_fused_update(false);
    let fusing = [(70, 70, 33), (33, 40, 64), (129, 65, 100), (64, 200, 256), (10, 31, 300)];
    let split = [(64, 200, 512), (70, 70, 1024), (10, 784, 600)];
    for shape in fusing.into_iter().chain(split) {
        let (m, n, k) = shape;
        let g = Gemm::nn(m, n, k).trans(true, false);
        assert!(fuses(&g, fused.fused_update_max_k()), "{shape:?}");
        assert_eq!(fused.fuses_wgrad_update(&g).unwrap(), !split.contains(&shape), "{shape:?}");
        for rule in &RULES {
            let f = wgrad_update_case(&fused, shape, 1.0, rule);
            let u = wgrad_update_case(&unfused, shape, 1.0, rule);
            for ((name, fv), (_, uv)) in f.iter().zip(&u) {
                assert_eq!(bits(fv), bits(uv), "{shape:?} {rule:?}: {name}, fused vs unfused");
            }
        }
    }
}

/// A product the backend runs in another summation order (the skinny kernel, chosen here as
/// the autotuner may choose it for a thin weight gradient) keeps its kernel: the step does not
/// fuse, so turning the fused update on never changes a bit; with the default choice (the tiled
/// kernel for a weight gradient) the same shape fuses.
#[test]
fn fused_wgrad_update_keeps_a_product_summed_in_another_order() {
    use batchscope::backend::gpu::MatmulVariant;
    let (fused, unfused) = (common::gpu(), common::gpu());
    fused.set_fused_update(true);
    unfused.set_fused_update(false);
    let shape = (10, 70, 17);
    let g = Gemm::nn(10, 70, 17).trans(true, false);
    for (variant, fuses_there) in [(MatmulVariant::Skinny, false), (MatmulVariant::Auto, true)] {
        fused.set_matmul_variant(variant);
        unfused.set_matmul_variant(variant);
        assert_eq!(fused.fuses_wgrad_update(&g).unwrap(), fuses_there, "{variant:?}");
        for rule in &RULES {
            let f = wgrad_update_case(&fused, shape, 1.0, rule);
            let u = wgrad_update_case(&unfused, shape, 1.0, rule);
            for ((name, fv), (_, uv)) in f.iter().zip(&u) {
                assert_eq!(bits(fv), bits(uv), "{variant:?} {rule:?}: {name}, fused vs unfused");
            }
        }
    }
}

/// Operands the op cannot take are typed errors on both backends, fused or not: momentum
/// without a velocity, a wrong-length operand, and a product that is not a weight gradient.
fn bad_operands_are_errors<B: Backend>(b: &B, (m, n, k): (usize, usize, usize)) {
    let dz = b.upload(&uniform(1, k * m, 1.0)).unwrap();
    let x = b.upload(&uniform(2, k * n, 1.0)).unwrap();
    let (mut gw, mut gb) = (b.zeros(m * n).unwrap(), b.zeros(m).unwrap());
    let (mut w, mut bias, mut short) =
        (b.zeros(m * n).unwrap(), b.zeros(m).unwrap(), b.zeros(m - 1).unwrap());
    let g = Gemm::nn(m, n, k).trans(true, false);
    let momentum = UpdateRule::Momentum(MomentumStep { lr: 0.1, mu: 0.9, weight_decay: 0.0 });
    let no_velocity = LayerStep {
        rule: momentum,
        weight: ParamState { param: &mut w, velocity: None },
        bias: ParamState { param: &mut bias, velocity: None },
    };
    let e = b.wgrad_update(&g, &dz, &x, &mut gw, &mut gb, no_velocity).unwrap_err().to_string();
    assert!(e.contains("velocity"), "{e}");
    let sgd = UpdateRule::Sgd { lr: 0.1, weight_decay: 0.0 };
    let short_bias = LayerStep {
        rule: sgd,
        weight: ParamState { param: &mut w, velocity: None },
        bias: ParamState { param: &mut short, velocity: None },
    };
    assert!(b.wgrad_update(&g, &dz, &x, &mut gw, &mut gb, short_bias).is_err(), "bias of m - 1");
    let not_wgrad = LayerStep {
        rule: sgd,
        weight: ParamState { param: &mut w, velocity: None },
        bias: ParamState { param: &mut bias, velocity: None },
    };
    let e = b.wgrad_update(&Gemm::nn(m, n, k), &dz, &x, &mut gw, &mut gb, not_wgrad).unwrap_err();
    assert!(e.to_string().contains("trans_a"), "{e}");
}

#[test]
fn bad_operands_are_errors_on_cpu() {
    // Unfused (6 rows) and fused (20 rows at k = 2: the rows kernel).
    for shape in [(6, 5, 4), (20, 5, 2)] {
        bad_operands_are_errors(&common::cpu(), shape);
    }
}

#[test]
fn bad_operands_are_errors_on_gpu_fused_and_unfused() {
    let g = common::gpu();
    for on in [true, false] {
        g.set_fused_update(on);
        bad_operands_are_errors(&g, (6, 5, 4));
    }
}

/// The bits of 4 steps of an MLP 20-70-33-10 (tanh) at `rows` rows, the update fused or not.
fn train_bits<B: Backend>(b: &B, rows: usize, opt: &Optimizer, fuse: bool) -> Vec<Vec<u32>> {
    let (mut st, x, y) = mlp_run(b, &[20, 70, 33, 10], Activation::Tanh, rows, opt);
    st.fuse_update = fuse;
    assert_eq!(st.fuses_update(&Clip::default()), fuse);
    four_steps_bits(b, &mut st, (&x, &y), opt)
}

/// The fused step (each layer's update right after its gradient, inside the backward pass)
/// equals backward-then-update bit for bit: parameters, velocities, gradients and metrics, at
/// batches the GPU fuses into one dispatch per layer (1, 3 and 17 rows; the CPU fuses at 1 and
/// 3) and one neither fuses (40).
fn fused_step_equals_unfused_step<B: Backend>(b: &B) {
    let opts =
        [Optimizer::Momentum { mu: 0.9, weight_decay: 1e-4 }, Optimizer::Sgd { weight_decay: 1e-3 }];
    for opt in &opts {
        for rows in [1, 3, 17, 40] {
            let (fused, unfused) = (train_bits(b, rows, opt, true), train_bits(b, rows, opt, false));
            assert_eq!(fused.len(), unfused.len());
            for (i, (f, u)) in fused.iter().zip(&unfused).enumerate() {
                assert_eq!(
                    f, u,
                    "{opt:?} rows {rows}: record {i} (4 steps' metrics, params, grads, velocity)"
                );
            }
        }
    }
}

#[test]
fn fused_step_equals_unfused_step_on_cpu() {
    fused_step_equals_unfused_step(&common::cpu());
}

/// On the GPU with the one-dispatch kernel on (lavapipe's default is off: see
/// `GpuBackend::set_fused_update`).
#[test]
fn fused_step_equals_unfused_step_on_gpu() {
    let g = common::gpu();
    g.set_fused_update(true);
    fused_step_equals_unfused_step(&g);
}

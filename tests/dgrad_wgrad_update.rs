//! `Backend::dgrad_wgrad_update`, a hidden-input layer's whole backward-and-update as one op:
//! the GPU's one dispatch (`shaders/dgrad_wgrad_update.wgsl`: dz_prev = (dz·W) ⊙ φ'(z) with the
//! old W, gW, gb, and the step of W and b) equals the unfused dgrad product and `wgrad_update`
//! bit for bit and the CPU (the reference) within float tolerance, on ragged shapes, every
//! activation and rule; shapes it does not fuse fall back with the same bits; bad operands are
//! typed errors; and training steps with it equal steps without it bit for bit.

mod common;

use batchscope::backend::gpu::auto_rule::AutoRule;
use batchscope::backend::gpu::MatmulVariant;
use batchscope::backend::{
    layer_step, Activation, Backend, Dgrad, Gemm, LayerStep, MomentumStep, ParamState, UpdateRule,
};
use batchscope::train::Optimizer;
use common::steps::{assert_bitwise, four_steps_bits, mlp_run, Outputs, RULES};
use common::{assert_close, uniform};

/// `dz_prev [k, n] = (dz [k, m] · W [m, n]) ⊙ φ'(z)`, then `gW = alpha · dzᵀ · x`, `gb = Σ dz`
/// and `rule` on W and b (seeded): by `Backend::dgrad_wgrad_update`, or (`unfused`) by the
/// default every implementation must equal.
fn dgrad_wgrad_on<B: Backend>(
    b: &B,
    (m, n, k): (usize, usize, usize),
    act: Activation,
    (alpha, rule): (f32, &UpdateRule),
    unfused: bool,
) -> Outputs {
    let seed = (m * 1000 + n * 10 + k) as u64;
    let dz = b.upload(&uniform(seed, k * m, 1.0)).unwrap();
    let x = b.upload(&uniform(seed + 1, k * n, 1.0)).unwrap();
    let z = b.upload(&uniform(seed + 2, k * n, 2.0)).unwrap();
    // Garbage in the outputs: the op overwrites them.
    let mut dz_prev = b.upload(&uniform(seed + 3, k * n, 9.0)).unwrap();
    let mut scratch = b.upload(&uniform(seed + 4, k * n, 9.0)).unwrap();
    let mut gw = b.upload(&uniform(seed + 5, m * n, 9.0)).unwrap();
    let mut gb = b.upload(&uniform(seed + 6, m, 9.0)).unwrap();
    let mut w = b.upload(&uniform(seed + 7, m * n, 0.5)).unwrap();
    let mut bias = b.upload(&uniform(seed + 8, m, 0.5)).unwrap();
    let mut vw = b.upload(&uniform(seed + 9, m * n, 0.1)).unwrap();
    let mut vb = b.upload(&uniform(seed + 10, m, 0.1)).unwrap();
    let momentum = matches!(rule, UpdateRule::Momentum(_));
    let g = Gemm::nn(m, n, k).trans(true, false).scaled(alpha, 0.0);
    let dgrad = Dgrad { act, z: &z, scratch: &mut scratch, dz_prev: &mut dz_prev };
    let step = LayerStep {
        rule: *rule,
        weight: ParamState { param: &mut w, velocity: momentum.then_some(&mut vw) },
        bias: ParamState { param: &mut bias, velocity: momentum.then_some(&mut vb) },
    };
    match unfused {
        false => b.dgrad_wgrad_update(&g, &dz, &x, dgrad, &mut gw, &mut gb, step).unwrap(),
        true => layer_step::unfused_with_dgrad(b, &g, &dz, &x, dgrad, &mut gw, &mut gb, step).unwrap(),
    }
    let mut out = vec![
        ("dz_prev", b.read(&dz_prev).unwrap()),
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

const ACTS: [Activation; 3] = [Activation::Relu, Activation::Tanh, Activation::Identity];

/// Shapes `(m, n, k)` (outputs, inputs, rows): one element; column blocks of 8 ragged (1, 3,
/// 13, 70, 130 inputs); depths of the dgrad's 8 k-lanes ragged (1, 5, 10, 33, 300 outputs);
/// rows 1 to 32 across the row slots and groups of phase 1 and the padding of gW's chain; the
/// MLP's output layer (10 x 1024) and a hidden one (257 x 200).
const SHAPES: [(usize, usize, usize); 10] = [
    (1, 1, 1),
    (5, 3, 7),
    (10, 1024, 1),
    (10, 1024, 32),
    (33, 13, 8),
    (300, 70, 17),
    (257, 200, 4),
    (64, 130, 31),
    (2, 9, 25),
    (70, 70, 12),
];

/// The fused GPU dispatch equals the unfused GPU path bit for bit, and the CPU within float
/// tolerance, for every shape, activation, rule and alpha.
#[test]
fn dgrad_wgrad_update_matches_unfused_and_cpu_on_ragged_shapes() {
    let (fused, unfused, cpu) = (common::gpu(), common::gpu(), common::cpu());
    for g in [&fused, &unfused] {
        g.set_fused_update(true);
    }
    fused.set_fused_backward(true);
    unfused.set_fused_backward(false);
    for shape in SHAPES {
        let (m, n, k) = shape;
        let g = Gemm::nn(m, n, k).trans(true, false);
        assert!(fused.fuses_dgrad_wgrad_update(&g).unwrap(), "{shape:?}");
        assert!(!unfused.fuses_dgrad_wgrad_update(&g).unwrap(), "{shape:?}");
        for act in ACTS {
            for rule in &RULES {
                for alpha in [1.0, 0.5] {
                    let case = format!("{shape:?} {act:?} {rule:?} alpha {alpha}");
                    let f = dgrad_wgrad_on(&fused, shape, act, (alpha, rule), false);
                    assert_bitwise(
                        &case,
                        &f,
                        &dgrad_wgrad_on(&unfused, shape, act, (alpha, rule), false),
                    );
                    let c = dgrad_wgrad_on(&cpu, shape, act, (alpha, rule), false);
                    for ((name, cv), (_, fv)) in c.iter().zip(&f) {
                        assert_close(&format!("{case}: {name}, cpu vs gpu"), cv, fv, 2e-5, 2e-5);
                    }
                }
            }
        }
    }
    println!(
        "parity ok: dgrad_wgrad_update, {} shapes x 3 activations x 3 rules x 2 alphas",
        SHAPES.len()
    );
}

/// Where either half would not be one dispatch with the fused kernel's float operations (more
/// than 32 rows: the dgrad leaves the skinny kernel; the fused update off or past its depth; a
/// forced tiled product), the op does not fuse, and turning the fusion on changes no bit.
#[test]
fn dgrad_wgrad_update_falls_back_with_the_same_bits() {
    let (fused, unfused) = (common::gpu(), common::gpu());
    fused.set_fused_backward(true);
    unfused.set_fused_backward(false);
    // Shapes past the skinny kernel's rows under the rule these cases were written against
    // (32 rows, no column reach): the product the fused kernel repeats is not skinny there.
    let old = AutoRule { skinny_max_m: 32, skinny_max_n: 0, ..AutoRule::default() };
    fused.set_auto_rule(old);
    unfused.set_auto_rule(old);
    let rule = &RULES[2];
    // (shape, fused update max depth, variant)
    let cases = [
        ((20, 40, 33), 4096, MatmulVariant::Auto),
        ((20, 40, 16), 0, MatmulVariant::Auto),
        ((20, 40, 16), 8, MatmulVariant::Auto),
        ((20, 40, 16), 32, MatmulVariant::Tiled),
    ];
    for (shape, max_k, variant) in cases {
        for g in [&fused, &unfused] {
            g.set_fused_update_max_k(max_k);
            g.set_matmul_variant(variant);
        }
        let (m, n, k) = shape;
        let g = Gemm::nn(m, n, k).trans(true, false);
        assert!(!fused.fuses_dgrad_wgrad_update(&g).unwrap(), "{shape:?} max k {max_k} {variant:?}");
        let case = format!("{shape:?} max k {max_k} {variant:?}");
        let f = dgrad_wgrad_on(&fused, shape, Activation::Relu, (1.0, rule), false);
        assert_bitwise(&case, &f, &dgrad_wgrad_on(&unfused, shape, Activation::Relu, (1.0, rule), true));
    }
}

/// Operands the op cannot take are typed errors on both backends, fused or not: momentum
/// without a velocity, a short dz_prev, z or bias, and a product that is not a weight gradient.
fn bad_operands_are_errors<B: Backend>(b: &B) {
    let (m, n, k) = (6, 5, 4);
    let (dz, x) =
        (b.upload(&uniform(1, k * m, 1.0)).unwrap(), b.upload(&uniform(2, k * n, 1.0)).unwrap());
    let momentum = UpdateRule::Momentum(MomentumStep { lr: 0.1, mu: 0.9, weight_decay: 0.0 });
    let sgd = UpdateRule::Sgd { lr: 0.1, weight_decay: 0.0 };
    let wgrad = Gemm::nn(m, n, k).trans(true, false);
    // (what is wrong, rule, z's length, dz_prev's length, bias's length, product)
    let cases = [
        ("velocity", momentum, k * n, k * n, m, wgrad),
        ("short z", sgd, k * n - 1, k * n, m, wgrad),
        ("short dz_prev", sgd, k * n, k * n - 1, m, wgrad),
        ("short bias", sgd, k * n, k * n, m - 1, wgrad),
        ("trans_a", sgd, k * n, k * n, m, Gemm::nn(m, n, k)),
    ];
    for (what, rule, nz, nd, nb, g) in cases {
        let z = b.zeros(nz).unwrap();
        let (mut dz_prev, mut scratch) = (b.zeros(nd).unwrap(), b.zeros(k * n).unwrap());
        let (mut gw, mut gb, mut w, mut bias) = (
            b.zeros(m * n).unwrap(),
            b.zeros(m).unwrap(),
            b.zeros(m * n).unwrap(),
            b.zeros(nb).unwrap(),
        );
        let dgrad = Dgrad { act: Activation::Relu, z: &z, scratch: &mut scratch, dz_prev: &mut dz_prev };
        let step = LayerStep {
            rule,
            weight: ParamState { param: &mut w, velocity: None },
            bias: ParamState { param: &mut bias, velocity: None },
        };
        let e = b.dgrad_wgrad_update(&g, &dz, &x, dgrad, &mut gw, &mut gb, step);
        assert!(e.is_err(), "{what} is an error");
        if what == "velocity" || what == "trans_a" {
            let e = e.unwrap_err().to_string();
            assert!(e.contains(what), "{what}: {e}");
        }
    }
}

#[test]
fn bad_operands_are_errors_on_cpu() {
    bad_operands_are_errors(&common::cpu());
}

#[test]
fn bad_operands_are_errors_on_gpu_fused_and_unfused() {
    let g = common::gpu();
    g.set_fused_update(true);
    for on in [true, false] {
        g.set_fused_backward(on);
        bad_operands_are_errors(&g);
    }
}

/// The bits of 4 training steps of an MLP 20-70-33-10 with `act` at `rows` rows.
fn train_bits<B: Backend>(b: &B, rows: usize, act: Activation, opt: &Optimizer) -> Vec<Vec<u32>> {
    let (mut st, x, y) = mlp_run(b, &[20, 70, 33, 10], act, rows, opt);
    four_steps_bits(b, &mut st, (&x, &y), opt)
}

/// Training with the fused layer backward equals training without it bit for bit on the GPU
/// (metrics, parameters, gradients, velocities), with the fused head on and off, both rules,
/// relu and tanh, at batches it fuses (1, 5, 32) and one it does not (40).
#[test]
fn training_with_the_fused_backward_equals_training_without() {
    let (fused, unfused) = (common::gpu(), common::gpu());
    for g in [&fused, &unfused] {
        g.set_fused_update(true);
    }
    fused.set_fused_backward(true);
    unfused.set_fused_backward(false);
    let opts =
        [Optimizer::Momentum { mu: 0.9, weight_decay: 1e-4 }, Optimizer::Sgd { weight_decay: 0.0 }];
    for head in [true, false] {
        fused.set_fused_head(head);
        unfused.set_fused_head(head);
        for (opt, act) in opts.iter().zip([Activation::Relu, Activation::Tanh]) {
            for rows in [1, 5, 32, 40] {
                let (f, u) = (train_bits(&fused, rows, act, opt), train_bits(&unfused, rows, act, opt));
                for (i, (fv, uv)) in f.iter().zip(&u).enumerate() {
                    assert_eq!(fv, uv, "{opt:?} {act:?} rows {rows}, head {head}: record {i}");
                }
            }
        }
    }
}

/// A layer whose fused kernels would walk more loop iterations per invocation than the adapter
/// may allow (llvmpipe on Debian 12 stops each after 65 535) runs unfused there, the same bits
/// as fused, rather than cut short: a 60 000-output layer's fused backward at 32 rows, and a
/// fused update raised to 30 000 rows.
#[test]
fn the_fused_kernels_decline_past_the_loop_budget() {
    let g = common::gpu();
    g.set_fused_update(true);
    g.set_fused_backward(true);
    let small = Gemm::nn(20, 40, 16).trans(true, false);
    assert!(g.fuses_dgrad_wgrad_update(&small).unwrap());
    let capped = g.adapter().loop_iteration_limit().is_some();
    println!("{}: loop cap possible: {capped}", g.adapter().name);
    let wide = Gemm::nn(60_000, 4, 32).trans(true, false);
    println!("60 000 outputs fuse: {}", g.fuses_dgrad_wgrad_update(&wide).unwrap());
    assert!(!(capped && g.fuses_dgrad_wgrad_update(&wide).unwrap()));
    g.set_fused_update_max_k(30_000);
    let deep = Gemm::nn(4096, 4096, 30_000).trans(true, false);
    println!("30 000 rows fuse: {}", g.fuses_wgrad_update(&deep).unwrap());
    assert!(!(capped && g.fuses_wgrad_update(&deep).unwrap()));
    let shallow = Gemm::nn(64, 64, 32).trans(true, false);
    assert!(g.fuses_wgrad_update(&shallow).unwrap());
}

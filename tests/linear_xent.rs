//! `Backend::linear_xent_sums`, a classifier's output layer and its loss as one op: the GPU's one
//! dispatch (`shaders/linear_xent.wgsl`: logits = x·Wᵀ + b, softmax cross-entropy with d logits,
//! the step's sums) equals the unfused product and loss bit for bit and the CPU (the reference)
//! within float tolerance, on ragged shapes; shapes it does not fuse fall back with the same
//! bits; bad operands are typed errors; and training steps with the fused head equal steps
//! without it bit for bit.

mod common;

use batchscope::backend::gpu::auto_rule::AutoRule;
use batchscope::backend::gpu::linear_xent::fuses_shape;
use batchscope::backend::gpu::MatmulVariant;
use batchscope::backend::{linear_xent, Activation, Backend, Gemm, StepSums, XentOutputs};
use batchscope::train::Optimizer;
use common::steps::{assert_bitwise, four_steps_bits, mlp_run, Outputs};
use common::{assert_close, indices, uniform};

/// What one call of the op is given: its shape, its loss slots, and whether row 1 has an
/// out-of-range label (its loss and the loss sum NaN on the GPU).
#[derive(Clone, Copy, Debug)]
struct Case {
    rows: usize,
    classes: usize,
    k: usize,
    loss_slots: &'static [usize],
    poison: bool,
}

/// `logits [rows, classes] = x [rows, k] · Wᵀ + b` (seeded), then the loss and its sums: by
/// `Backend::linear_xent_sums`, or (`unfused`) by the default every implementation must equal.
fn linear_xent_on<B: Backend>(b: &B, c: Case, unfused: bool) -> Outputs {
    let seed = (c.rows * 10_000 + c.classes * 100 + c.k) as u64;
    let x = b.upload(&uniform(seed, c.rows * c.k, 1.0)).unwrap();
    // Weights scaled so that the logits spread over a few units at every depth.
    let w = b.upload(&uniform(seed + 1, c.classes * c.k, 3.0 / (c.k as f32).sqrt())).unwrap();
    let bias = b.upload(&uniform(seed + 2, c.classes, 0.5)).unwrap();
    let mut lab = indices(seed + 3, c.rows, c.classes as u32);
    if c.poison && c.rows > 1 {
        lab[1] = c.classes as u32;
    }
    let labels = b.upload_idx(&lab).unwrap();
    // Garbage in the outputs: the op overwrites them.
    let mut logits = b.upload(&uniform(seed + 4, c.rows * c.classes, 9.0)).unwrap();
    let mut loss = b.upload(&uniform(seed + 5, c.rows, 9.0)).unwrap();
    let mut correct = b.upload(&uniform(seed + 6, c.rows, 9.0)).unwrap();
    let mut dlogits = b.upload(&uniform(seed + 7, c.rows * c.classes, 9.0)).unwrap();
    let mut out = b.upload(&[-1.0; 6]).unwrap();
    let g = Gemm::nn(c.rows, c.classes, c.k).trans(false, true);
    let xent = XentOutputs {
        labels: &labels,
        grad_scale: 1.0 / c.rows as f32,
        loss: &mut loss,
        correct: &mut correct,
        dlogits: &mut dlogits,
    };
    let mut sums = StepSums { out: &mut out, loss_slots: c.loss_slots, correct_slot: 2 };
    let operands = [&x, &w, &bias];
    match unfused {
        false => b.linear_xent_sums(&g, operands, &mut logits, xent, &mut sums).unwrap(),
        true => linear_xent::unfused(b, &g, operands, &mut logits, xent, &mut sums).unwrap(),
    }
    vec![
        ("logits", b.read(&logits).unwrap()),
        ("loss", b.read(&loss).unwrap()),
        ("correct", b.read(&correct).unwrap()),
        ("dlogits", b.read(&dlogits).unwrap()),
        ("sums", b.read(&out).unwrap()),
    ]
}

/// Shapes `(rows, classes, k)`: one element; the skinny kernel's row blocks (1, 4 and 8 rows;
/// 9, 17 and 32 ragged over blocks of 8) and column blocks (1, 3, 8, 10, 13, 37 and 100
/// classes); depths below, at and past the 32 k-lanes, and the default model's 1024.
const SHAPES: [(usize, usize, usize); 11] = [
    (1, 1, 1),
    (1, 10, 784),
    (3, 10, 1024),
    (4, 3, 7),
    (5, 8, 32),
    (8, 13, 33),
    (9, 37, 100),
    (17, 10, 31),
    (24, 100, 64),
    (32, 10, 1024),
    (32, 2, 5),
];

/// The fused GPU dispatch equals the unfused GPU path bit for bit, and the CPU within float
/// tolerance, for every shape, with one and two loss slots.
#[test]
fn linear_xent_matches_unfused_and_cpu_on_ragged_shapes() {
    let (fused, unfused, cpu) = (common::gpu(), common::gpu(), common::cpu());
    fused.set_fused_head(true);
    unfused.set_fused_head(false);
    for (rows, classes, k) in SHAPES {
        let g = Gemm::nn(rows, classes, k).trans(false, true);
        assert!(fused.fuses_linear_xent(&g, 2).unwrap(), "{:?}", (rows, classes, k));
        assert!(!unfused.fuses_linear_xent(&g, 2).unwrap());
        for loss_slots in [&[4usize][..], &[4, 1]] {
            let c = Case { rows, classes, k, loss_slots, poison: false };
            let case = format!("{c:?}");
            let f = linear_xent_on(&fused, c, false);
            assert_bitwise(&case, &f, &linear_xent_on(&unfused, c, false));
            for ((name, cv), (_, fv)) in linear_xent_on(&cpu, c, false).iter().zip(&f) {
                assert_close(&format!("{case}: {name}, cpu vs gpu"), cv, fv, 2e-5, 2e-5);
            }
        }
    }
    println!("parity ok: linear_xent, {} shapes x 2 slot sets", SHAPES.len());
}

/// An out-of-range label poisons its row's loss and the loss sum (NaN, for the host's guard)
/// the same way fused and unfused on the GPU; the CPU refuses it with a typed error.
#[test]
fn an_out_of_range_label_poisons_the_loss_the_same_way() {
    let (fused, unfused) = (common::gpu(), common::gpu());
    fused.set_fused_head(true);
    unfused.set_fused_head(false);
    let c = Case { rows: 6, classes: 10, k: 40, loss_slots: &[4, 1], poison: true };
    let f = linear_xent_on(&fused, c, false);
    assert_bitwise("poisoned row 1", &f, &linear_xent_on(&unfused, c, false));
    assert!(f[1].1[1].is_nan() && f[4].1[4].is_nan(), "row 1's loss and the loss sum are NaN");
    let cpu = common::cpu();
    let x = cpu.upload(&[0.5; 12]).unwrap();
    let w = cpu.upload(&[0.25; 18]).unwrap();
    let bias = cpu.zeros(3).unwrap();
    let labels = cpu.upload_idx(&[0, 3]).unwrap();
    let (mut logits, mut loss, mut correct, mut dl, mut out) = (
        cpu.zeros(6).unwrap(),
        cpu.zeros(2).unwrap(),
        cpu.zeros(2).unwrap(),
        cpu.zeros(6).unwrap(),
        cpu.zeros(3).unwrap(),
    );
    let xent = XentOutputs {
        labels: &labels,
        grad_scale: 0.5,
        loss: &mut loss,
        correct: &mut correct,
        dlogits: &mut dl,
    };
    let mut sums = StepSums { out: &mut out, loss_slots: &[0], correct_slot: 1 };
    let g = Gemm::nn(2, 3, 6).trans(false, true);
    let e = cpu.linear_xent_sums(&g, [&x, &w, &bias], &mut logits, xent, &mut sums).unwrap_err();
    assert!(e.to_string().contains("label 3"), "{e}");
}

/// Where the unfused product is not the skinny kernel (more than 32 rows; a forced tiled or
/// naive variant, as a data-parallel worker runs), or the loss has three slots, or the product
/// is not `x·Wᵀ`, the op does not fuse; turning the fusion on then changes no bit.
#[test]
fn linear_xent_falls_back_with_the_same_bits() {
    let (fused, unfused) = (common::gpu(), common::gpu());
    fused.set_fused_head(true);
    unfused.set_fused_head(false);
    // Shapes past the skinny kernel's rows under the rule these cases were written against
    // (32 rows, no column reach): the product the fused kernel repeats is not skinny there.
    let old = AutoRule { skinny_max_m: 32, skinny_max_n: 0, ..AutoRule::default() };
    fused.set_auto_rule(old);
    unfused.set_auto_rule(old);
    let cases = [
        (Case { rows: 33, classes: 10, k: 64, loss_slots: &[4, 1], poison: false }, MatmulVariant::Auto),
        (Case { rows: 100, classes: 7, k: 20, loss_slots: &[4], poison: false }, MatmulVariant::Auto),
        (Case { rows: 8, classes: 10, k: 64, loss_slots: &[4, 1], poison: false }, MatmulVariant::Tiled),
        (Case { rows: 8, classes: 10, k: 64, loss_slots: &[4, 1], poison: false }, MatmulVariant::Naive),
        (
            Case { rows: 8, classes: 10, k: 64, loss_slots: &[4, 1, 3], poison: false },
            MatmulVariant::Auto,
        ),
    ];
    for (c, variant) in cases {
        fused.set_matmul_variant(variant);
        unfused.set_matmul_variant(variant);
        let g = Gemm::nn(c.rows, c.classes, c.k).trans(false, true);
        assert!(!fused.fuses_linear_xent(&g, c.loss_slots.len()).unwrap(), "{c:?} {variant:?}");
        let case = format!("{c:?} {variant:?}");
        assert_bitwise(&case, &linear_xent_on(&fused, c, false), &linear_xent_on(&unfused, c, false));
    }
    fused.set_matmul_variant(MatmulVariant::Auto);
    for g in [
        Gemm::nn(8, 10, 64),
        Gemm::nn(8, 10, 64).trans(true, true),
        Gemm::nn(8, 10, 64).trans(false, true).scaled(0.5, 0.0),
        Gemm::nn(8, 10, 64).trans(false, true).scaled(1.0, 1.0),
        Gemm::nn(0, 10, 64).trans(false, true),
        Gemm::nn(257, 10, 64).trans(false, true),
    ] {
        assert!(!fuses_shape(&g), "{g:?}");
        assert!(!fused.fuses_linear_xent(&g, 1).unwrap(), "{g:?}");
    }
}

/// Operands the op cannot take are typed errors on both backends, fused or not: a short input,
/// weight, bias, logits or d logits, too few labels, and a loss slot past the sums' buffer.
fn bad_operands_are_errors<B: Backend>(b: &B) {
    let (rows, classes, k) = (4, 3, 5);
    let g = Gemm::nn(rows, classes, k).trans(false, true);
    let full = |n: usize| b.upload(&uniform(n as u64, n, 1.0)).unwrap();
    let labels = b.upload_idx(&indices(9, rows, classes as u32)).unwrap();
    let few_labels = b.upload_idx(&[0, 1]).unwrap();
    // One operand wrong per case: one element short, two labels, or the 0-1 sum's slot past
    // the sums' three.
    for what in ["x", "w", "bias", "logits", "dlogits", "labels", "out"] {
        let len = |name: &str, n: usize| if what == name { n - 1 } else { n };
        let (nx, nw, nb) = (len("x", rows * k), len("w", classes * k), len("bias", classes));
        let (nl, nd) = (len("logits", rows * classes), len("dlogits", rows * classes));
        let (enough_labels, correct_slot) = (what != "labels", if what == "out" { 9 } else { 2 });
        let (x, w, bias) = (full(nx), full(nw), full(nb));
        let (mut logits, mut dl) = (b.zeros(nl).unwrap(), b.zeros(nd).unwrap());
        let (mut loss, mut correct, mut out) =
            (b.zeros(rows).unwrap(), b.zeros(rows).unwrap(), b.zeros(3).unwrap());
        let xent = XentOutputs {
            labels: if enough_labels { &labels } else { &few_labels },
            grad_scale: 0.25,
            loss: &mut loss,
            correct: &mut correct,
            dlogits: &mut dl,
        };
        let mut sums = StepSums { out: &mut out, loss_slots: &[0], correct_slot };
        let r = b.linear_xent_sums(&g, [&x, &w, &bias], &mut logits, xent, &mut sums);
        assert!(r.is_err(), "a wrong {what} is an error");
    }
}

#[test]
fn bad_operands_are_errors_on_cpu() {
    bad_operands_are_errors(&common::cpu());
}

#[test]
fn bad_operands_are_errors_on_gpu_fused_and_unfused() {
    let g = common::gpu();
    for on in [true, false] {
        g.set_fused_head(on);
        bad_operands_are_errors(&g);
    }
}

/// The bits of 4 momentum steps of an MLP of `sizes` (tanh; `[in, out]` is softmax regression,
/// whose head reads the minibatch itself) at `rows` rows, the update fused or not.
fn train_bits<B: Backend>(b: &B, rows: usize, sizes: &[usize], fuse_update: bool) -> Vec<Vec<u32>> {
    let opt = Optimizer::Momentum { mu: 0.9, weight_decay: 1e-4 };
    let (mut st, x, y) = mlp_run(b, sizes, Activation::Tanh, rows, &opt);
    st.fuse_update = fuse_update;
    four_steps_bits(b, &mut st, (&x, &y), &opt)
}

/// Training with the fused head equals training without it bit for bit on the GPU (metrics,
/// parameters, gradients, velocities), with and without the fused update, at batches it fuses
/// (1, 7, 32) and one it does not (40), for a 3-layer MLP and softmax regression.
#[test]
fn training_with_the_fused_head_equals_training_without() {
    let (fused, unfused) = (common::gpu(), common::gpu());
    fused.set_fused_head(true);
    unfused.set_fused_head(false);
    for sizes in [&[20usize, 70, 33, 10][..], &[30, 7]] {
        for fuse_update in [true, false] {
            for rows in [1, 7, 32, 40] {
                let f = train_bits(&fused, rows, sizes, fuse_update);
                let u = train_bits(&unfused, rows, sizes, fuse_update);
                for (i, (fv, uv)) in f.iter().zip(&u).enumerate() {
                    assert_eq!(
                        fv, uv,
                        "{sizes:?} rows {rows}, fused update {fuse_update}: record {i} (metrics, \
                         params, grads, velocity)"
                    );
                }
            }
        }
    }
}

//! Every GPU op equals its CPU twin on seeded random inputs, ragged shapes included.
//! Each op is one generic body run on both backends; the CPU result is the reference.
//! One test per kernel family, named `<family>_matches_cpu` after `shaders/<family>.wgsl`,
//! `backend/gpu/<family>.rs` and `backend/cpu/<family>.rs` (datagen's is in tests/data.rs).

mod common;

use batchscope::backend::{
    Activation, Backend, Epilogue, Gemm, GlobalNorm, MomentumStep, ParamUpdate, StepSums, UpdateRule,
};
use common::{assert_close, cpu, gpu, indices, uniform};

/// Ragged sizes: not multiples of any tile.
const SIZES: [usize; 6] = [1, 3, 17, 63, 65, 257];

macro_rules! compare {
    ($what:expr, $atol:expr, $rtol:expr, $body:ident $(, $arg:expr)*) => {{
        let c = cpu();
        let g = gpu();
        let reference = $body(&c $(, $arg)*);
        let out = $body(&g $(, $arg)*);
        assert_eq!(reference.len(), out.len());
        for ((name, r), (_, o)) in reference.iter().zip(&out) {
            assert_close(&format!("{} {}", $what, name), r, o, $atol, $rtol);
        }
        println!("parity ok: {}", $what);
    }};
}

type Outputs = Vec<(&'static str, Vec<f32>)>;

fn matmul_case<B: Backend>(b: &B, g: Gemm, seed: u64, nan_c: bool) -> Outputs {
    let a = b.upload(&uniform(seed, g.m * g.k, 1.0)).unwrap();
    let bb = b.upload(&uniform(seed + 1, g.k * g.n, 1.0)).unwrap();
    let c0 = if nan_c { vec![f32::NAN; g.m * g.n] } else { uniform(seed + 2, g.m * g.n, 1.0) };
    let mut c = b.upload(&c0).unwrap();
    b.matmul(&g, &a, &bb, &mut c).unwrap();
    vec![("C", b.read(&c).unwrap())]
}

#[test]
fn matmul_matches_cpu() {
    let c = cpu();
    let g = gpu();
    let mut cases = 0;
    for (i, &m) in SIZES.iter().enumerate() {
        for (j, &n) in SIZES.iter().enumerate() {
            let k = SIZES[(i + 2 * j) % SIZES.len()];
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (alpha, beta, nan_c) =
                    if (i + j) % 2 == 0 { (1.0, 0.0, true) } else { (0.5, 0.25, false) };
                let gm = Gemm::nn(m, n, k).trans(ta, tb).scaled(alpha, beta);
                let seed = (i * 100 + j * 10) as u64;
                for variant in [
                    batchscope::backend::gpu::MatmulVariant::Naive,
                    batchscope::backend::gpu::MatmulVariant::Tiled,
                    batchscope::backend::gpu::MatmulVariant::Skinny,
                    batchscope::backend::gpu::MatmulVariant::Auto,
                ] {
                    g.set_matmul_variant(variant);
                    let r = matmul_case(&c, gm, seed, nan_c);
                    let o = matmul_case(&g, gm, seed, nan_c);
                    let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                    assert_close(
                        &format!("matmul {variant:?} {m}x{n}x{k} ta={ta} tb={tb} α={alpha} β={beta}"),
                        &r[0].1,
                        &o[0].1,
                        tol,
                        1e-4,
                    );
                    cases += 1;
                }
            }
        }
    }
    println!("parity ok: matmul naive+tiled+skinny+auto, {cases} ragged cases");
}

fn elementwise_case<B: Backend>(b: &B, rows: usize, cols: usize) -> Outputs {
    let n = rows * cols;
    let x = b.upload(&uniform(1, n, 2.0)).unwrap();
    let bias = b.upload(&uniform(2, cols, 1.0)).unwrap();
    let mut y = b.upload(&uniform(3, n, 1.0)).unwrap();
    b.axpy(n, -0.75, &x, &mut y).unwrap();
    let axpy = b.read(&y).unwrap();
    b.scale(n, 1.5, &mut y).unwrap();
    let scale = b.read(&y).unwrap();
    b.add_bias(rows, cols, &mut y, &bias).unwrap();
    let bias_out = b.read(&y).unwrap();
    let mut z = b.zeros(n).unwrap();
    b.copy(&x, &mut z).unwrap();
    let copy = b.read(&z).unwrap();
    b.fill(&mut z, 0.125).unwrap();
    let fill = b.read(&z).unwrap();
    vec![("axpy", axpy), ("scale", scale), ("add_bias", bias_out), ("copy", copy), ("fill", fill)]
}

#[test]
fn elementwise_matches_cpu() {
    for &r in &SIZES {
        for &c in &[1usize, 10, 65] {
            compare!(format!("elementwise {r}x{c}"), 1e-6, 1e-6, elementwise_case, r, c);
        }
    }
}

fn act_case<B: Backend>(b: &B, act: Activation, n: usize) -> Outputs {
    // Include large |z| so tanh saturates, and exact zeros for relu's kink.
    let mut zh = uniform(10, n, 4.0);
    if n > 2 {
        zh[0] = 0.0;
        zh[1] = 40.0;
        zh[2] = -40.0;
    }
    let z = b.upload(&zh).unwrap();
    let dy = b.upload(&uniform(11, n, 1.0)).unwrap();
    let rz = b.upload(&uniform(12, n, 1.0)).unwrap();
    let mut y = b.zeros(n).unwrap();
    b.act_forward(act, n, &z, &mut y).unwrap();
    let mut dz = b.zeros(n).unwrap();
    b.act_backward(act, n, &z, &dy, &mut dz).unwrap();
    let mut acc = b.upload(&uniform(13, n, 1.0)).unwrap();
    b.act_second(act, n, &z, &dy, &rz, &mut acc).unwrap();
    vec![
        ("forward", b.read(&y).unwrap()),
        ("backward", b.read(&dz).unwrap()),
        ("second", b.read(&acc).unwrap()),
    ]
}

fn bias_act_case<B: Backend>(b: &B, act: Activation, rows: usize, cols: usize) -> Outputs {
    let n = rows * cols;
    let mut z = b.upload(&uniform(14, n, 4.0)).unwrap();
    let bias = b.upload(&uniform(15, cols, 1.0)).unwrap();
    let mut y = b.upload(&uniform(16, n, 1.0)).unwrap();
    b.add_bias_act(act, rows, cols, &mut z, &bias, &mut y).unwrap();
    vec![("z", b.read(&z).unwrap()), ("y", b.read(&y).unwrap())]
}

/// The fused bias + activation (one GPU dispatch) equals the CPU's add_bias then act_forward,
/// and on the GPU it equals its own two-dispatch form bit for bit.
#[test]
fn bias_act_matches_cpu() {
    for act in [Activation::Identity, Activation::Relu, Activation::Tanh] {
        for &(r, c) in &[(1usize, 1usize), (3, 17), (17, 257), (65, 63), (257, 3)] {
            compare!(format!("bias_act {} {r}x{c}", act.name()), 2e-6, 2e-6, bias_act_case, act, r, c);
            let g = gpu();
            let fused = bias_act_case(&g, act, r, c);
            let mut z = g.upload(&uniform(14, r * c, 4.0)).unwrap();
            let bias = g.upload(&uniform(15, c, 1.0)).unwrap();
            let mut y = g.upload(&uniform(16, r * c, 1.0)).unwrap();
            g.add_bias(r, c, &mut z, &bias).unwrap();
            g.act_forward(act, r * c, &z, &mut y).unwrap();
            let parts = [g.read(&z).unwrap(), g.read(&y).unwrap()];
            for ((name, f), p) in fused.iter().zip(&parts) {
                assert!(
                    f.iter().zip(p).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "bias_act {name} {r}x{c}"
                );
            }
        }
    }
}

#[test]
fn act_matches_cpu() {
    for act in [Activation::Identity, Activation::Relu, Activation::Tanh] {
        for &n in &[1usize, 3, 17, 257, 70_001] {
            compare!(format!("act {} n={n}", act.name()), 2e-6, 2e-6, act_case, act, n);
        }
    }
}

fn xent_case<B: Backend>(b: &B, rows: usize, classes: usize) -> Outputs {
    let logits_h = uniform(20, rows * classes, 6.0);
    let logits = b.upload(&logits_h).unwrap();
    let labels = b.upload_idx(&indices(21, rows, classes as u32)).unwrap();
    let mut loss = b.zeros(rows).unwrap();
    let mut correct = b.zeros(rows).unwrap();
    let mut dl = b.zeros(rows * classes).unwrap();
    let s = 1.0 / rows as f32;
    b.softmax_xent(rows, classes, &logits, &labels, s, &mut loss, &mut correct, &mut dl).unwrap();
    let rl = b.upload(&uniform(22, rows * classes, 1.0)).unwrap();
    let mut rop = b.zeros(rows * classes).unwrap();
    b.softmax_xent_rop(rows, classes, &logits, &rl, s, &mut rop).unwrap();
    vec![
        ("xent loss", b.read(&loss).unwrap()),
        ("xent correct", b.read(&correct).unwrap()),
        ("xent dlogits", b.read(&dl).unwrap()),
        ("xent rop", b.read(&rop).unwrap()),
    ]
}

/// Rows whose largest logit is tied: the first of the tied classes is the prediction (the CPU's
/// `first_argmax`), so a label on a later one is wrong. Zero logits (a zero-initialised head),
/// a pair of 3s with the label on either, and a tie of the last two classes.
fn xent_ties_case<B: Backend>(b: &B) -> Outputs {
    let logits_h = [0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 0.0, 3.0, 1.0, 3.0, 0.0, 3.0, 2.0, -1.0, 5.0, 5.0];
    let (rows, classes) = (4, 4);
    let logits = b.upload(&logits_h).unwrap();
    let labels = b.upload_idx(&[0, 3, 1, 3]).unwrap();
    let (mut loss, mut correct) = (b.zeros(rows).unwrap(), b.zeros(rows).unwrap());
    let mut dl = b.zeros(rows * classes).unwrap();
    b.softmax_xent(rows, classes, &logits, &labels, 1.0, &mut loss, &mut correct, &mut dl).unwrap();
    let got = b.read(&correct).unwrap();
    assert_eq!(got, [1.0, 0.0, 1.0, 0.0], "the first of tied logits is the prediction");
    vec![("ties loss", b.read(&loss).unwrap()), ("ties correct", got)]
}

#[test]
fn xent_ties_predict_the_first_class_on_both_backends() {
    compare!("xent ties", 1e-6, 1e-6, xent_ties_case);
}

/// `softmax_xent_sums` (fused or not) on `b`, or with `fused == false` its definition:
/// `softmax_xent`, then `sums` of the losses into `slots[..n_loss]` and of the 0-1 values into
/// the last slot. With `poison`, row 1 has an out-of-range label (its loss is NaN, and so is
/// the loss sum).
fn xent_sums_case<B: Backend>(b: &B, rows: usize, n_loss: usize, fused: bool, poison: bool) -> Outputs {
    let classes = 10;
    let logits = b.upload(&uniform(30, rows * classes, 6.0)).unwrap();
    let mut lab = indices(31, rows, classes as u32);
    if poison && rows > 1 {
        lab[1] = classes as u32;
    }
    let labels = b.upload_idx(&lab).unwrap();
    let (mut loss, mut correct) = (b.zeros(rows).unwrap(), b.zeros(rows).unwrap());
    let mut dl = b.zeros(rows * classes).unwrap();
    let mut out = b.upload(&[-1.0; 6]).unwrap();
    let loss_slots = &[4usize, 1][..n_loss];
    let s = 1.0 / rows as f32;
    if fused {
        let mut sums = StepSums { out: &mut out, loss_slots, correct_slot: 2 };
        b.softmax_xent_sums(
            rows,
            classes,
            &logits,
            &labels,
            s,
            &mut loss,
            &mut correct,
            &mut dl,
            &mut sums,
        )
        .unwrap();
    } else {
        b.softmax_xent(rows, classes, &logits, &labels, s, &mut loss, &mut correct, &mut dl).unwrap();
        let mut terms: Vec<_> = loss_slots.iter().map(|&k| (&loss, k)).collect();
        terms.push((&correct, 2));
        b.sums(rows, &terms, &mut out).unwrap();
    }
    vec![
        ("loss", b.read(&loss).unwrap()),
        ("correct", b.read(&correct).unwrap()),
        ("dlogits", b.read(&dl).unwrap()),
        ("sums", b.read(&out).unwrap()),
    ]
}

/// The loss with the step's sums: on the GPU one dispatch up to 256 rows (the loss's float
/// operations, then `sums_small`'s), bit for bit equal to `softmax_xent` followed by `sums`, for
/// one and two loss slots, and past 256 rows (the unfused pair); and equal to the CPU's.
#[test]
fn xent_sums_equal_xent_then_sums_bitwise() {
    let g = gpu();
    for rows in [1usize, 3, 64, 255, 256, 257, 1000] {
        for (n_loss, poison) in [(1, false), (2, false), (2, true)] {
            let fused = xent_sums_case(&g, rows, n_loss, true, poison);
            let plain = xent_sums_case(&g, rows, n_loss, false, poison);
            for ((name, f), (_, p)) in fused.iter().zip(&plain) {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(f),
                    bits(p),
                    "rows {rows}, {n_loss} loss slots, poison {poison}: {name}"
                );
            }
        }
        compare!(format!("xent sums rows={rows}"), 2e-5, 2e-5, xent_sums_case, rows, 2, true, false);
    }
}

fn mse_case<B: Backend>(b: &B, rows: usize, cols: usize) -> Outputs {
    let pred = b.upload(&uniform(20, rows * cols, 6.0)).unwrap();
    let target = b.upload(&uniform(23, rows * cols, 1.0)).unwrap();
    let mut mloss = b.zeros(rows).unwrap();
    let mut dpred = b.zeros(rows * cols).unwrap();
    let s = 1.0 / rows as f32;
    b.mse(rows, cols, &pred, &target, s, &mut mloss, &mut dpred).unwrap();
    vec![("mse loss", b.read(&mloss).unwrap()), ("mse dpred", b.read(&dpred).unwrap())]
}

#[test]
fn xent_matches_cpu() {
    for &rows in &SIZES {
        for &classes in &[1usize, 2, 10, 17, 100] {
            compare!(
                format!("xent rows={rows} classes={classes}"),
                2e-5,
                2e-5,
                xent_case,
                rows,
                classes
            );
        }
    }
}

/// Confident right answers, the rows of a converged classifier: t = Σ_{c≠y} exp(z_c − z_y) far
/// below f32's rounding of 1. Their loss log(1 + t) ≈ t and their label's gradient −t/(1 + t)
/// are small, not 0: the GPU computed m + log(s) − z_y and q_y − 1, exact zeros below
/// t ≈ 6e-8 (a converged run's minibatch loss read 0.0, its full-batch loss 13 % low). Both
/// backends, plain and with the step's sums, against f64.
#[test]
fn xent_keeps_the_small_loss_and_gradient_of_confident_rows() {
    let (rows, classes) = (37usize, 10usize);
    let labels: Vec<u32> = (0..rows as u32).map(|r| (r * 7) % classes as u32).collect();
    let mut logits = uniform(40, rows * classes, 1.0);
    for (r, &y) in labels.iter().enumerate() {
        // Margins 2 .. 38: t from about 1e0 down to 1e-16.
        logits[r * classes + y as usize] = 2.0 + r as f32;
    }
    let scale = 0.25f32;
    let case = |b: &dyn Fn(bool) -> (Vec<f32>, Vec<f32>), what: &str| {
        for fused in [false, true] {
            let (loss, dl) = b(fused);
            for (r, &y) in labels.iter().enumerate() {
                let z = &logits[r * classes..(r + 1) * classes];
                let zy = z[y as usize] as f64;
                let t: f64 =
                    (0..classes).filter(|&c| c != y as usize).map(|c| (z[c] as f64 - zy).exp()).sum();
                let close = |got: f32, want: f64, name: &str| {
                    let err = (got as f64 - want).abs() / want.abs().max(1e-37);
                    assert!(
                        err < 1e-4,
                        "{what} fused={fused} row {r} (t = {t:e}): {name} {got:e}, f64 {want:e}"
                    );
                };
                close(loss[r], t.ln_1p(), "loss");
                close(
                    dl[r * classes + y as usize],
                    -(scale as f64) * t / (1.0 + t),
                    "dlogit of the label",
                );
                let c = (y as usize + 1) % classes;
                close(
                    dl[r * classes + c],
                    scale as f64 * (z[c] as f64 - zy).exp() / (1.0 + t),
                    "another dlogit",
                );
            }
        }
    };
    fn run<B: Backend>(
        b: &B,
        rows: usize,
        classes: usize,
        logits: &[f32],
        labels: &[u32],
        scale: f32,
        fused: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let z = b.upload(logits).unwrap();
        let y = b.upload_idx(labels).unwrap();
        let (mut loss, mut correct) = (b.zeros(rows).unwrap(), b.zeros(rows).unwrap());
        let mut dl = b.zeros(rows * classes).unwrap();
        if fused {
            let mut out = b.zeros(3).unwrap();
            let mut sums = StepSums { out: &mut out, loss_slots: &[0], correct_slot: 1 };
            b.softmax_xent_sums(
                rows,
                classes,
                &z,
                &y,
                scale,
                &mut loss,
                &mut correct,
                &mut dl,
                &mut sums,
            )
            .unwrap();
        } else {
            b.softmax_xent(rows, classes, &z, &y, scale, &mut loss, &mut correct, &mut dl).unwrap();
        }
        assert!(b.read(&correct).unwrap().iter().all(|&c| c == 1.0));
        (b.read(&loss).unwrap(), b.read(&dl).unwrap())
    }
    let (c, g) = (cpu(), gpu());
    case(&|f| run(&c, rows, classes, &logits, &labels, scale, f), "cpu");
    case(&|f| run(&g, rows, classes, &logits, &labels, scale, f), "gpu");
}

/// The loop cap the probe reports is the one a long kernel meets: a naive 1×1×140 000 product of
/// ones (one invocation walking k) reads 140 000 where nothing caps loops (sid's Mesa 26); where
/// the driver stops it (Debian 12's llvmpipe: 65 535) the product is refused, naming its depth,
/// rather than cut short to the cap.
#[test]
fn the_naive_product_past_the_loop_cap_is_refused_not_cut_short() {
    let g = gpu();
    let limit = g.loop_iteration_limit().expect("loop probe");
    g.set_matmul_variant(batchscope::backend::gpu::MatmulVariant::Naive);
    let k = 140_000;
    let ones = g.upload(&vec![1.0; k]).unwrap();
    let mut c = g.zeros(1).unwrap();
    let done = g.matmul(&Gemm::nn(1, 1, k), &ones, &ones, &mut c);
    match limit {
        Some(cap) => {
            let e = done.unwrap_err().to_string();
            assert!(e.contains("depth 140000") && e.contains(&format!("after {cap}")), "{e}");
            assert!(e.contains("--backend cpu"), "{e}");
        }
        None => {
            done.unwrap();
            assert_eq!(g.read(&c).unwrap()[0], k as f32, "{}", g.adapter().name);
        }
    }
}

/// Every kernel that walks a product's depth in one pass is refused past the loop cap, naming
/// its depth, and runs up to it: the skinny kernel's 1×8×k of ones (8 of k a step, and its lane
/// sum) reads k in full at 524 000 and was cut to 65 534 at 524 272 on Debian 12's llvmpipe,
/// with 32 lanes (B transposed) 2 090 000 and 2 100 000 (cut to 65 535). Where nothing caps
/// loops every one reads k.
#[test]
fn one_pass_products_run_to_the_loop_cap_and_are_refused_past_it() {
    let g = gpu();
    let capped = g.loop_iteration_limit().expect("loop probe").is_some();
    g.set_matmul_variant(batchscope::backend::gpu::MatmulVariant::Skinny);
    for (k, tb, past_cap) in [
        (524_000, false, false),
        (524_272, false, true),
        (2_090_000, true, false),
        (2_100_000, true, true),
    ] {
        let shape = Gemm::nn(1, 8, k).trans(false, tb);
        let (a, bm) = (g.upload(&vec![1.0; k]).unwrap(), g.upload(&vec![1.0; 8 * k]).unwrap());
        let mut c = g.zeros(8).unwrap();
        match (g.matmul(&shape, &a, &bm, &mut c), capped && past_cap) {
            (Err(e), true) => {
                let e = e.to_string();
                assert!(
                    e.contains(&format!("depth {k} in one pass")) && e.contains("after 65535"),
                    "{e}"
                );
            }
            (Ok(()), false) => assert_eq!(g.read(&c).unwrap(), vec![k as f32; 8], "k = {k}, tb = {tb}"),
            (done, refused) => panic!("k = {k}, tb = {tb}: {done:?}, expected refused = {refused}"),
        }
    }
}

/// A weight gradient `dzᵀ·x` of a `rows`-row batch with its bias gradient `Σ_rows dz`
/// (`Epilogue::BiasGrad`): at 600 000 rows the split-k reduce runs the column sums.
fn bias_grad_case<B: Backend>(b: &B, rows: usize, cols: usize) -> Outputs {
    let inputs = 5;
    let dz = b.upload(&uniform(42, rows * cols, 1.0)).unwrap();
    let x = b.upload(&uniform(43, rows * inputs, 1.0)).unwrap();
    let g = Gemm { trans_a: true, ..Gemm::nn(cols, inputs, rows) };
    let (mut gw, mut gb) = (b.zeros(cols * inputs).unwrap(), b.zeros(cols).unwrap());
    b.matmul_epilogue(&g, &dz, &x, &mut gw, Epilogue::BiasGrad { s: &dz, bias_grad: &mut gb }).unwrap();
    vec![("gW", b.read(&gw).unwrap()), ("gb", b.read(&gb).unwrap())]
}

/// Column sums longer than a lane may walk on llvmpipe (8 rows a step, 65 535 steps): the CPU's
/// sums where nothing caps loops; where the driver does, an error naming the rows, for col_sum
/// and for the bias gradient fused into a product, never a sum cut short (a 600 000-row
/// batch's bias gradient summed 524 280 of its rows).
#[test]
fn long_column_sums_match_cpu_or_refuse_past_the_loop_budget() {
    let g = gpu();
    let limit = g.loop_iteration_limit().expect("loop probe");
    let (rows, cols) = (600_000, 3);
    if limit.is_none_or(|l| (rows as u64).div_ceil(8) + 5 <= l) {
        compare!(
            format!("col_sum {rows}x{cols}"),
            1e-5 * (rows as f32).sqrt() * 4.0,
            1e-5,
            col_sum_case,
            rows,
            cols
        );
        compare!(format!("bias gradient of {rows} rows"), 2e-2, 1e-4, bias_grad_case, rows, cols);
        return;
    }
    let expect_refusal = |e: String| {
        assert!(
            e.contains(&format!("column sum over {rows} rows")) && e.contains("--backend cpu"),
            "{e}"
        );
    };
    let x = g.upload(&uniform(40, rows * cols, 1.0)).unwrap();
    let mut out = g.zeros(cols).unwrap();
    expect_refusal(g.col_sum(rows, cols, 1.0, &x, 0.0, &mut out).unwrap_err().to_string());
    let xs = g.upload(&uniform(43, rows * 5, 1.0)).unwrap();
    let gemm = Gemm { trans_a: true, ..Gemm::nn(cols, 5, rows) };
    let (mut gw, mut gb) = (g.zeros(cols * 5).unwrap(), g.zeros(cols).unwrap());
    let e = g.matmul_epilogue(&gemm, &x, &xs, &mut gw, Epilogue::BiasGrad { s: &x, bias_grad: &mut gb });
    expect_refusal(e.unwrap_err().to_string());
}

/// Many classes: up to the loop budget of the adapter the same as the CPU's; past it (on
/// llvmpipe, which stops an invocation after 65 535 loop iterations: a 32 768-class row's
/// softmax wrote 1 of its gradients) an error naming the classes, not a wrong result.
#[test]
fn xent_matches_cpu_or_refuses_past_the_loop_budget() {
    let g = gpu();
    let limit = g.loop_iteration_limit().expect("loop probe");
    println!("loop iterations per invocation: {limit:?} on {}", g.adapter().name);
    for &(rows, classes) in &[(3usize, 16_384usize), (3, 32_768), (2, 100_000)] {
        if limit.is_some_and(|l| 4 * classes as u64 > l) {
            let logits = g.upload(&uniform(30, rows * classes, 6.0)).unwrap();
            let labels = g.upload_idx(&indices(31, rows, classes as u32)).unwrap();
            let (mut loss, mut correct) = (g.zeros(rows).unwrap(), g.zeros(rows).unwrap());
            let mut dl = g.zeros(rows * classes).unwrap();
            let mut rop = g.zeros(rows * classes).unwrap();
            let e = g
                .softmax_xent_rop(rows, classes, &logits, &logits, 1.0, &mut rop)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("{classes} classes")) && e.contains("--backend cpu"), "{e}");
            if 3 * classes as u64 > limit.unwrap_or(u64::MAX) {
                let e = g.softmax_xent(
                    rows,
                    classes,
                    &logits,
                    &labels,
                    1.0,
                    &mut loss,
                    &mut correct,
                    &mut dl,
                );
                assert!(e.unwrap_err().to_string().contains(&format!("{classes} classes")));
            }
            continue;
        }
        compare!(format!("xent rows={rows} classes={classes}"), 2e-5, 2e-5, xent_case, rows, classes);
        compare!(
            format!("xent sums rows={rows} classes={classes}"),
            2e-5,
            2e-5,
            xent_sums_case_wide,
            rows,
            classes
        );
    }
}

fn xent_sums_case_wide<B: Backend>(b: &B, rows: usize, classes: usize) -> Outputs {
    let logits = b.upload(&uniform(30, rows * classes, 6.0)).unwrap();
    let labels = b.upload_idx(&indices(31, rows, classes as u32)).unwrap();
    let (mut loss, mut correct) = (b.zeros(rows).unwrap(), b.zeros(rows).unwrap());
    let mut dl = b.zeros(rows * classes).unwrap();
    let mut out = b.zeros(3).unwrap();
    let mut sums = StepSums { out: &mut out, loss_slots: &[0], correct_slot: 1 };
    b.softmax_xent_sums(
        rows,
        classes,
        &logits,
        &labels,
        1.0,
        &mut loss,
        &mut correct,
        &mut dl,
        &mut sums,
    )
    .unwrap();
    vec![
        ("loss", b.read(&loss).unwrap()),
        ("dlogits", b.read(&dl).unwrap()),
        ("sums", b.read(&out).unwrap()),
    ]
}

#[test]
fn mse_matches_cpu() {
    for &rows in &SIZES {
        for &cols in &[1usize, 2, 10, 17, 100] {
            compare!(format!("mse rows={rows} cols={cols}"), 2e-5, 2e-5, mse_case, rows, cols);
        }
    }
}

fn reduce_case<B: Backend>(b: &B, n: usize) -> Outputs {
    let x = b.upload(&uniform(30, n, 1.0)).unwrap();
    let y = b.upload(&uniform(31, n, 1.0)).unwrap();
    let mut out = b.zeros(4).unwrap();
    b.sum(n, &x, &mut out, 0).unwrap();
    b.dot(n, &x, &y, &mut out, 1).unwrap();
    b.sum_sq(n, &x, &mut out, 3).unwrap();
    vec![("sum/dot/sumsq", b.read(&out).unwrap())]
}

#[test]
fn reduce_matches_cpu() {
    for &n in &[1usize, 3, 17, 255, 256, 257, 65_537, 1_000_003] {
        let tol = 1e-6 * (n as f32).sqrt() * 4.0;
        compare!(format!("reduce n={n}"), tol, 1e-5, reduce_case, n);
    }
}

#[test]
fn reduce_is_bitwise_deterministic_on_gpu() {
    let g = gpu();
    let a = reduce_case(&g, 1_000_003);
    let b = reduce_case(&g, 1_000_003);
    assert_eq!(
        a[0].1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b[0].1.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

fn col_sum_case<B: Backend>(b: &B, rows: usize, cols: usize) -> Outputs {
    let x = b.upload(&uniform(40, rows * cols, 1.0)).unwrap();
    let mut out = b.upload(&uniform(41, cols, 1.0)).unwrap();
    b.col_sum(rows, cols, 0.5, &x, 0.25, &mut out).unwrap();
    let accum = b.read(&out).unwrap();
    let mut fresh = b.upload(&vec![f32::NAN; cols]).unwrap();
    b.col_sum(rows, cols, 1.0, &x, 0.0, &mut fresh).unwrap();
    vec![("col_sum α=.5 β=.25", accum), ("col_sum β=0 over NaN", b.read(&fresh).unwrap())]
}

#[test]
fn reduce_col_sum_matches_cpu() {
    for &r in &SIZES {
        for &c in &SIZES {
            compare!(
                format!("col_sum {r}x{c}"),
                1e-5 * (r as f32).sqrt() * 4.0,
                1e-5,
                col_sum_case,
                r,
                c
            );
        }
    }
}

fn update_case<B: Backend>(b: &B, n: usize) -> Outputs {
    let g = b.upload(&uniform(50, n, 1.0)).unwrap();
    let mut p = b.upload(&uniform(51, n, 1.0)).unwrap();
    b.sgd_update(n, 0.1, 0.01, &g, &mut p).unwrap();
    let sgd = b.read(&p).unwrap();
    let mut v = b.upload(&uniform(52, n, 1.0)).unwrap();
    b.momentum_update(n, &MomentumStep { lr: 0.05, mu: 0.9, weight_decay: 0.001 }, &g, &mut v, &mut p)
        .unwrap();
    vec![
        ("sgd", sgd),
        ("momentum param", b.read(&p).unwrap()),
        ("momentum velocity", b.read(&v).unwrap()),
    ]
}

#[test]
fn update_matches_cpu() {
    for &n in &[1usize, 3, 257, 100_003] {
        compare!(format!("updates n={n}"), 1e-6, 1e-6, update_case, n);
    }
}

/// Three steps of `rule` over tensors of `lens` through [`Backend::update_params`] (the GPU: two
/// tensors per dispatch) and through one update per tensor; both results, per tensor.
fn update_params_case<B: Backend>(b: &B, lens: &[usize], rule: &UpdateRule) -> (Outputs, Outputs) {
    let run = |many: bool| -> Outputs {
        let seeded = |s: u64, n: usize| b.upload(&uniform(s, n.max(1), 1.0)).unwrap();
        let grads: Vec<_> = lens.iter().enumerate().map(|(i, &n)| seeded(60 + i as u64, n)).collect();
        let mut params: Vec<_> =
            lens.iter().enumerate().map(|(i, &n)| seeded(80 + i as u64, n)).collect();
        let mut vels: Vec<_> =
            lens.iter().enumerate().map(|(i, &n)| seeded(100 + i as u64, n)).collect();
        for _ in 0..3 {
            if many {
                let mut ts: Vec<ParamUpdate<'_, B::Buf>> = params
                    .iter_mut()
                    .zip(vels.iter_mut())
                    .zip(&grads)
                    .zip(lens)
                    .map(|(((param, v), grad), &n)| ParamUpdate { n, grad, velocity: Some(v), param })
                    .collect();
                b.update_params(rule, &mut ts).unwrap();
            } else {
                for (i, &n) in lens.iter().enumerate() {
                    match rule {
                        UpdateRule::Sgd { lr, weight_decay } => {
                            b.sgd_update(n, *lr, *weight_decay, &grads[i], &mut params[i]).unwrap()
                        }
                        UpdateRule::Momentum(step) => {
                            b.momentum_update(n, step, &grads[i], &mut vels[i], &mut params[i]).unwrap()
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (p, v) in params.iter().zip(&vels) {
            out.push(("param", b.read(p).unwrap()));
            out.push(("velocity", b.read(v).unwrap()));
        }
        out
    };
    (run(true), run(false))
}

/// `update_params` (two tensors per dispatch on the GPU, the workgroups of a dispatch split
/// between them) gives each tensor the bits of its own update, on ragged lengths, an odd tensor
/// count and empty tensors; and it equals the CPU.
#[test]
fn update_params_match_per_tensor_updates_and_cpu() {
    let rules = [
        UpdateRule::Sgd { lr: 0.1, weight_decay: 0.01 },
        UpdateRule::Momentum(MomentumStep { lr: 0.05, mu: 0.9, weight_decay: 0.001 }),
    ];
    let shapes: [&[usize]; 5] = [&[], &[5], &[300, 17], &[1, 0, 257, 3, 65], &[100_003, 256, 255, 1024]];
    let (paired, single) = (gpu(), gpu());
    paired.set_update_pairs(true);
    single.set_update_pairs(false);
    for rule in &rules {
        for lens in shapes {
            let runs = [
                ("gpu, two tensors per dispatch", update_params_case(&paired, lens, rule)),
                ("gpu, one tensor per dispatch", update_params_case(&single, lens, rule)),
                ("cpu", update_params_case(&cpu(), lens, rule)),
            ];
            for (what, (many, single)) in runs {
                for ((name, m), (_, s)) in many.iter().zip(&single) {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(m), bits(s), "{what} {rule:?} lens {lens:?}: {name}");
                }
            }
            let c = update_params_case(&cpu(), lens, rule).0;
            let g = update_params_case(&paired, lens, rule).0;
            for ((name, r), (_, o)) in c.iter().zip(&g) {
                assert_close(&format!("update_params {rule:?} {lens:?} {name}"), r, o, 1e-6, 1e-6);
            }
        }
    }
    println!("parity ok: update_params");
}

fn gather_case<B: Backend>(b: &B, src_rows: usize, rows: usize, cols: usize) -> Outputs {
    let src = b.upload(&uniform(60, src_rows * cols, 1.0)).unwrap();
    let idx = b.upload_idx(&indices(61, rows, src_rows as u32)).unwrap();
    let mut dst = b.zeros(rows * cols).unwrap();
    b.gather_rows(rows, cols, &src, &idx, &mut dst).unwrap();
    let labels = b.upload_idx(&indices(62, src_rows, 10)).unwrap();
    let mut picked = b.upload_idx(&vec![0; rows]).unwrap();
    b.gather_idx(rows, &labels, &idx, &mut picked).unwrap();
    let picked = b.read_idx(&picked).unwrap().into_iter().map(|v| v as f32).collect();
    vec![("gather_rows", b.read(&dst).unwrap()), ("gather_idx", picked)]
}

#[test]
fn gather_matches_cpu_exactly() {
    for &src_rows in &[1usize, 17, 257] {
        for &rows in &SIZES {
            for &cols in &[1usize, 3, 784] {
                compare!(
                    format!("gather {src_rows}->{rows}x{cols}"),
                    0.0,
                    0.0,
                    gather_case,
                    src_rows,
                    rows,
                    cols
                );
            }
        }
    }
}

fn clip_case<B: Backend>(b: &B, n: usize) -> Outputs {
    // Norm slots 2..6 hold squared norms; slots 0 and 1 count clip events (mod 2²⁴, / 2²⁴).
    let mut stats = b.upload(&[0.0, 0.0, 0.5, 2.0, 1.5, 0.0]).unwrap();
    let mut x = b.upload(&uniform(90, n, 3.0)).unwrap();
    let norm = |max_norm| GlobalNorm { max_norm, first: 2, count: 4, count_slot: Some(0) };
    b.clip_by_global_norm(n, &norm(1.0), &mut stats, &mut x).unwrap();
    let clipped = b.read(&x).unwrap();
    let mut y = b.upload(&uniform(91, n, 3.0)).unwrap();
    b.clip_by_global_norm(n, &norm(100.0), &mut stats, &mut y).unwrap();
    let unclipped = b.read(&y).unwrap();
    b.clip_by_value(n, 0.5, &mut y).unwrap();
    vec![
        ("clip_by_global_norm", clipped),
        ("not clipped", unclipped),
        ("clip_by_value", b.read(&y).unwrap()),
        ("clip events", b.read(&stats).unwrap()),
    ]
}

#[test]
fn clip_matches_cpu() {
    for &n in &[1usize, 3, 257, 70_001] {
        compare!(format!("clip n={n}"), 1e-6, 1e-6, clip_case, n);
    }
}

/// The clip-event count carries into its second slot at 2²⁴ (one f32 slot stopped counting at
/// 16 777 216 clipped steps, 2 hours of small-batch steps on a GPU), on both backends.
#[test]
fn clip_events_count_past_f32_integers() {
    fn count<B: Backend>(b: &B, low: f32, high: f32) -> (Vec<f32>, u64) {
        let mut stats = b.upload(&[9.0, low, high, 4.0]).unwrap();
        let mut x = b.upload(&[1.0, -2.0, 3.0]).unwrap();
        let norm = GlobalNorm { max_norm: 1.0, first: 3, count: 1, count_slot: Some(1) };
        b.clip_by_global_norm(3, &norm, &mut stats, &mut x).unwrap();
        let s = b.read(&stats).unwrap();
        let events = GlobalNorm::count_events(&s, 1);
        (s, events)
    }
    let (c, g) = (cpu(), gpu());
    for (low, high, want) in
        [(16_777_215.0, 0.0, 1u64 << 24), (16_777_215.0, 7.0, 8 << 24), (41.0, 3.0, (3 << 24) + 42)]
    {
        for (name, (s, events)) in [("cpu", count(&c, low, high)), ("gpu", count(&g, low, high))] {
            assert_eq!(events, want, "{name}: {low} + {high}·2²⁴ + 1 read {s:?}");
            assert_eq!((s[0], s[3]), (9.0, 4.0), "{name}: only the counter's slots change");
        }
    }
    let overlapping = GlobalNorm { max_norm: 1.0, first: 2, count: 2, count_slot: Some(1) };
    let mut stats = c.upload(&[0.0; 4]).unwrap();
    let mut x = c.upload(&[1.0]).unwrap();
    assert!(
        c.clip_by_global_norm(1, &overlapping, &mut stats, &mut x).is_err(),
        "the high slot overlaps a norm"
    );
}

fn gather_window_case<B: Backend>(b: &B, n: usize, window: usize, rows: usize, cols: usize) -> Outputs {
    let host = uniform(95, n * cols, 1.0);
    let idx = b.upload_idx(&indices(96, rows, n as u32)).unwrap();
    let mut dst = b.upload(&vec![-7.0; rows * cols]).unwrap();
    let mut first = 0;
    while first < n {
        let w = window.min(n - first);
        let src = b.upload(&host[first * cols..(first + w) * cols]).unwrap();
        b.gather_rows_window(rows, cols, &src, first, w, &idx, &mut dst).unwrap();
        first += w;
    }
    vec![("gather_rows_window", b.read(&dst).unwrap())]
}

#[test]
fn gather_window_matches_cpu_and_covers_every_row() {
    for &(n, window) in &[(1usize, 1usize), (17, 5), (257, 64), (1000, 999)] {
        for &(rows, cols) in &[(1usize, 1usize), (65, 3), (63, 784)] {
            compare!(
                format!("gather window n={n} w={window} {rows}x{cols}"),
                0.0,
                0.0,
                gather_window_case,
                n,
                window,
                rows,
                cols
            );
            let out = gather_window_case(&cpu(), n, window, rows, cols);
            assert!(out[0].1.iter().all(|&v| v != -7.0), "every row is written by one window");
        }
    }
}

/// The ceilings (`batchscope gemm --ceilings`) equal their CPU twin bit for bit: the fp32 ones
/// on every adapter, over ragged workgroup counts and iteration counts of both parities (the
/// slice buffers alternate), up to the exact range's end; the tensor-core ones where the
/// adapter offers cooperative matrices (f16_parity's `cooperative_matrix_availability` says
/// loudly where it does not), else each says why it cannot run.
#[test]
fn ceilings_matches_cpu() {
    use batchscope::backend::ceiling::Ceiling;
    use batchscope::backend::gpu::ceilings::{measure, outputs, unavailable};
    let g = gpu();
    let mut ran = 0;
    for ceiling in Ceiling::ALL {
        if let Some(why) = unavailable(&g.dev, ceiling) {
            assert!(ceiling.is_coop(), "{}: {why}", ceiling.name());
            let err = outputs(&g.dev, ceiling, 1, 1).expect_err("a ceiling that cannot run");
            assert!(err.to_string().contains("cannot run here"), "{err}");
            println!("ceiling {} not run here: {why}", ceiling.name());
            continue;
        }
        for (workgroups, iters) in [(1, 1), (3, 2), (5, 7)] {
            let (got, want) = outputs(&g.dev, ceiling, workgroups, iters).unwrap();
            assert_eq!(got.len(), want.len(), "{}", ceiling.name());
            for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                assert!(
                    x.to_bits() == y.to_bits(),
                    "{} {workgroups}x{iters} [{i}]: {x} vs {y}",
                    ceiling.name()
                );
            }
        }
        // The end of the exact range, where a lost low bit would show, on one workgroup; timed.
        let run = measure(&g.dev, ceiling, 1, ceiling.max_iters()).unwrap();
        assert!(run.exact && run.ms > 0.0 && run.tflops > 0.0, "{run:?}");
        ran += 1;
    }
    assert!(ran >= 2, "the fp32 ceilings run on every adapter");
    // Out of range: one clear error each, nothing run.
    for (w, i) in [(0, 1), (1, 0), (1, Ceiling::Fp32Fma.max_iters() + 1)] {
        let err = outputs(&g.dev, Ceiling::Fp32Fma, w, i).expect_err("out of range");
        assert!(err.to_string().contains("ceiling"), "{err}");
    }
    println!("parity ok: ceilings ({ran} of {} run here)", Ceiling::ALL.len());
}

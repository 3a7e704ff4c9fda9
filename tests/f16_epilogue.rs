//! The fused f16 epilogues of `Backend::matmul_half_epilogue` (bias, bias + φ, `⊙ φ'(z)`, the
//! bias gradient, each
//! with and without the f16 copy of its result): on the GPU bit for bit against the unfused ops
//! (`half_epilogue::unfused`: the same product, then the element-wise kernels and `to_half`),
//! and against the CPU twin: the epilogue exactly on the same product, the whole op within the
//! products' f16 tolerance. Ragged shapes with odd `n`, so that two halves of one packed word
//! come from different invocations (and workgroups).

mod common;

use batchscope::backend::cpu::CpuBackend;
use batchscope::backend::gpu::GpuBackend;
use batchscope::backend::half::scaler;
use batchscope::backend::{half_epilogue, Activation, Backend, Gemm};
use common::half::{data, half_of, ops, run, Data, Kind};
use common::{cpu, uniform};

/// The GPU backend with the packed kernel's col_sum workgroups on (off by default on a CPU
/// adapter such as lavapipe, where CI runs): the kernel is tested on every adapter.
fn gpu() -> GpuBackend {
    let g = common::gpu();
    g.set_col_sum_workgroups(true);
    g
}

const ACTS: [Activation; 3] = [Activation::Identity, Activation::Relu, Activation::Tanh];

fn kinds() -> Vec<Kind> {
    let mut out = vec![Kind::Bias];
    out.extend(ACTS.map(Kind::BiasAct));
    out.extend(ACTS.map(Kind::ActGrad));
    out.push(Kind::BiasGrad);
    out
}

/// Ragged shapes (m, n, k): odd and even n, not multiples of the 64x64 tile; the bias gradient
/// is summed serially per invocation where k ≤ 32 (the second and third), else by col_sum
/// workgroups after the product's (one row of them, or several when m/32 exceeds the column
/// blocks: the last).
const SHAPES: [(usize, usize, usize); 5] =
    [(1, 37, 67), (5, 130, 31), (63, 65, 17), (70, 129, 100), (130, 37, 45)];

/// Every transpose of every shape with every epilogue, with and without the f16 copy; scaling
/// alternates between (1, 0) and (0.5, 0.25) (beta = 0 for the activation gradient).
fn cases() -> Vec<(Gemm, Kind, bool)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    for &(m, n, k) in &SHAPES {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for kind in kinds() {
                i += 1;
                let (alpha, beta) = if i.is_multiple_of(2) { (1.0, 0.0) } else { (0.5, 0.25) };
                let beta = if matches!(kind, Kind::ActGrad(_)) { 0.0 } else { beta };
                let g = Gemm::nn(m, n, k).trans(ta, tb).scaled(alpha, beta);
                out.push((g, kind, !i.is_multiple_of(3)));
            }
        }
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn fused_f16_epilogues_equal_the_unfused_ops_bitwise() {
    let be = gpu();
    let mut failures = Vec::new();
    for (i, (g, kind, with_half)) in cases().into_iter().enumerate() {
        assert!(be.fuses_half_epilogue(&g).expect("kernel choice"), "{g:?}: the packed kernel fuses");
        assert!(be.fuses_half_bias_grad(&g).expect("kernel choice"), "{g:?}: at every k");
        let d = data(&g, 100 * i as u64);
        let fused = run(&be, &g, kind, with_half, &d, true);
        let plain = run(&be, &g, kind, with_half, &d, false);
        for (what, f, p) in
            [("C", 0, 0), ("y", 1, 1), ("f16", 2, 2)].map(|(w, f, p)| (w, &fused[f], &plain[p]))
        {
            if let Some(at) = bits(f).iter().zip(bits(p)).position(|(x, y)| *x != y) {
                failures.push(format!("{g:?} {kind:?}: {what}[{at}] fused {} unfused {}", f[at], p[at]));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The CPU twin's epilogue on the GPU's own product (`C = alpha op(A) op(B) + beta C` from
/// `matmul_half`), then `[C, y, f16 copy]` as [`run`] returns them.
fn cpu_epilogue_on(gpu: &GpuBackend, cpu: &CpuBackend, g: &Gemm, kind: Kind, d: &Data) -> [Vec<f32>; 3] {
    let (ha, hb) = (half_of(gpu, &d.a), half_of(gpu, &d.b));
    let mut p = gpu.upload(&d.c).expect("upload");
    ops(gpu).matmul_half(g, &ha, &hb, &mut p).expect("matmul_half");
    let prod = gpu.read(&p).expect("read");
    let (mut c, mut y) = (cpu.upload(&prod).expect("upload"), vec![0.0; g.m * g.n]);
    let n = g.m * g.n;
    match kind {
        Kind::Bias => cpu.add_bias(g.m, g.n, &mut c, &d.bias).expect("add_bias"),
        Kind::BiasAct(f) => cpu.add_bias_act(f, g.m, g.n, &mut c, &d.bias, &mut y).expect("bias_act"),
        Kind::ActGrad(f) => {
            let dy = c.clone();
            cpu.act_backward(f, n, &d.z, &dy, &mut c).expect("act_backward")
        }
        // The GPU's own col_sum: the fused column sums must equal it bit for bit.
        Kind::BiasGrad => {
            let mut gb = gpu.zeros(g.m).expect("zeros");
            gpu.col_sum(g.k, g.m, 1.0, &gpu.upload(&d.s).expect("upload"), 0.0, &mut gb)
                .expect("col_sum");
            y[..g.m].copy_from_slice(&gpu.read(&gb).expect("read")[..g.m]);
        }
    }
    let src = if matches!(kind, Kind::BiasAct(_)) { &y } else { &c };
    let mut half = ops(cpu).zeros_half(n).expect("zeros_half");
    ops(cpu).to_half(n, src, &mut half).expect("to_half");
    let copy = ops(cpu).read_half(&half).expect("read_half");
    [c, y, copy]
}

#[test]
fn fused_f16_epilogues_match_the_cpu_twin() {
    let (gp, cp) = (gpu(), cpu());
    let mut failures = Vec::new();
    let mut compared = 0usize;
    for (i, (g, kind, _)) in cases().into_iter().enumerate() {
        let d = data(&g, 100 * i as u64 + 7);
        let got = run(&gp, &g, kind, true, &d, true);
        // (1) The epilogue is exact: the CPU twin's element-wise ops on the GPU's product. tanh
        // is the one exception: the GPU's `exp` (WGSL leaves its ulps to the adapter) and the
        // CPU's differ in the last bits; 1 - t² (φ') amplifies that near |t| = 1, and the f16
        // copy may then round one half ulp apart. The bias gradient is compared with the GPU's
        // own col_sum, bit for bit.
        let exact = cpu_epilogue_on(&gp, &cp, &g, kind, &d);
        let inexact = matches!(kind, Kind::BiasAct(Activation::Tanh) | Kind::ActGrad(Activation::Tanh));
        for (what, o, w, rel) in [
            ("C", &got[0], &exact[0], 1e-4),
            ("y", &got[1], &exact[1], 1e-4),
            ("f16", &got[2], &exact[2], 2e-3),
        ] {
            let off = |(o, w): (&f32, &f32)| match inexact {
                false => o.to_bits() != w.to_bits(),
                true => (o - w).abs().is_nan() || (o - w).abs() > rel * w.abs() + 1e-7,
            };
            if let Some(at) = o.iter().zip(w.iter()).position(off) {
                failures.push(format!("exact {g:?} {kind:?}: {what}[{at}] gpu {} cpu {}", o[at], w[at]));
            }
        }
        // (2) The whole op against the CPU twin's: the products differ in summation order only
        // (f32 sums of the same exact half products), the f16 copy by one rounding more.
        let want = run(&cp, &g, kind, true, &d, true);
        let tol = 1e-4 * (g.k as f32).sqrt();
        for (what, o, w, rel) in [
            ("C", &got[0], &want[0], 1e-4),
            ("y", &got[1], &want[1], 1e-4),
            ("f16", &got[2], &want[2], 2e-3),
        ] {
            let far = |(o, w): (&f32, &f32)| {
                let err = (o - w).abs();
                err.is_nan() || err > tol + rel * w.abs()
            };
            if let Some(at) = o.iter().zip(w.iter()).position(far) {
                failures.push(format!("{g:?} {kind:?}: {what}[{at}] gpu {} cpu {}", o[at], w[at]));
            }
        }
        compared += 1;
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    println!("parity ok: {compared} fused f16 epilogue cases (exact epilogue, f16-tolerant products)");
}

/// The weight gradient of a single-replica f16 step, unscaled in its product's store
/// (`Backend::matmul_half_bias_grad_unscaled`): `[gW, gb, scaler state]` of one case on `b`,
/// fused or by the unfused default (the product with its bias gradient, then `amp_unscale`).
/// `poison`: 0 none, 1 an inf in A (so gW overflows), 2 a NaN in s (so gb is NaN).
fn run_unscaled<B: Backend>(
    b: &B,
    g: &Gemm,
    d: &Data,
    scale: f32,
    poison: u8,
    fused: bool,
) -> [Vec<f32>; 3] {
    let (mut a, mut s) = (d.a.clone(), d.s.clone());
    let (mid, last) = (a.len() / 2, s.len() - 1);
    match poison {
        1 => a[mid] = f32::INFINITY,
        2 => s[last] = f32::NAN,
        _ => {}
    }
    let (ha, hb) = (half_of(b, &a), half_of(b, &d.b));
    let up = |v: &[f32]| b.upload(v).expect("upload");
    let (mut c, s, mut gb) = (up(&d.c), up(&s), up(&vec![7.0; g.m]));
    let mut state = vec![0.0; scaler::LEN];
    state[scaler::SCALE] = scale;
    let mut st = up(&state);
    let r = match fused {
        true => b.matmul_half_bias_grad_unscaled(g, [&ha, &hb], &mut c, &s, &mut gb, &mut st),
        false => half_epilogue::unfused_unscaled(b, g, [&ha, &hb], &mut c, &s, &mut gb, &mut st),
    };
    r.unwrap_or_else(|e| panic!("{g:?}: {e}"));
    [b.read(&c).expect("read"), b.read(&gb).expect("read"), b.read(&st).expect("read")]
}

/// Weight-gradient shapes (m = out, n = in, k = rows; A = dz stored [k, m]): k ≤ 32 (the bias
/// gradient summed per invocation) and past it (col_sum workgroups), ragged, m past one tile.
const WGRAD_SHAPES: [(usize, usize, usize); 6] =
    [(10, 37, 1), (70, 129, 31), (130, 37, 45), (5, 200, 300), (128, 64, 64), (10, 128, 64)];

/// Every case: each shape as a weight gradient (A transposed) and once untransposed, a
/// power-of-two scale and one whose reciprocal rounds, clean and with an inf or a NaN.
fn unscaled_cases() -> Vec<(Gemm, f32, u8)> {
    let mut out = Vec::new();
    for (i, &(m, n, k)) in WGRAD_SHAPES.iter().enumerate() {
        for (j, scale) in [65536.0, 3.0].into_iter().enumerate() {
            for poison in 0..3u8 {
                let trans = (i + j + poison as usize) % 4 != 3;
                out.push((Gemm::nn(m, n, k).trans(trans, false), scale, poison));
            }
        }
    }
    out
}

/// The first element of `[gW, gb, state]` where `fused` and `plain` differ in bits, as a
/// failure line naming `case`.
fn first_difference(case: &str, fused: &[Vec<f32>; 3], plain: &[Vec<f32>; 3]) -> Option<String> {
    ["gW", "gb", "state"].iter().zip(fused.iter().zip(plain)).find_map(|(what, (f, p))| {
        let at = bits(f).iter().zip(bits(p)).position(|(x, y)| *x != y)?;
        Some(format!("{case}: {what}[{at}] fused {} unfused {}", f[at], p[at]))
    })
}

#[test]
fn unscaled_weight_gradients_equal_the_unfused_ops_bitwise() {
    use batchscope::backend::gpu::matmul_f16::{self, HalfKernel};
    let be = gpu();
    // The packed kernel on every adapter: it fuses the bias gradient at every k (a cooperative
    // kernel, the rule's choice for the shapes that are multiples of 16 where the adapter has
    // cooperative matrices, fuses it only up to k = 32; see the rule's pass at the end).
    be.set_half_kernel(Some(HalfKernel::Packed));
    let mut failures = Vec::new();
    for (i, (g, scale, poison)) in unscaled_cases().into_iter().enumerate() {
        assert!(be.fuses_half_bias_grad(&g).expect("kernel choice"), "{g:?}: the packed kernel fuses");
        let d = data(&g, 300 + 10 * i as u64);
        let fused = run_unscaled(&be, &g, &d, scale, poison, true);
        let plain = run_unscaled(&be, &g, &d, scale, poison, false);
        failures.extend(first_difference(&format!("{g:?} S {scale} poison {poison}"), &fused, &plain));
        // The flag is up exactly when something overflowed, and the scale is untouched.
        let flag = fused[2][scaler::FOUND_INF];
        assert_eq!(flag, if poison == 0 { 0.0 } else { 1.0 }, "{g:?} poison {poison}: flag");
        assert_eq!(fused[2][scaler::SCALE], scale, "{g:?}");
    }
    // Unfused by the switch: the same path as the default.
    be.set_fused_unscale(false);
    let (g, scale, poison) = unscaled_cases()[1];
    let d = data(&g, 99);
    let off = run_unscaled(&be, &g, &d, scale, poison, true);
    be.set_fused_unscale(true);
    let on = run_unscaled(&be, &g, &d, scale, poison, true);
    for (o, n) in off.iter().zip(&on) {
        assert_eq!(bits(o), bits(n), "set_fused_unscale(false) computes the same bits");
    }
    // The bias gradient in a dispatch after the product (`amp_col_sum_unscale`) past k = 32,
    // as CPU adapters run it: the same bits as the col_sum workgroups, every shape and poison.
    be.set_col_sum_workgroups(false);
    for (i, (g, scale, poison)) in unscaled_cases().into_iter().enumerate() {
        let d = data(&g, 700 + i as u64);
        let after = run_unscaled(&be, &g, &d, scale, poison, true);
        be.set_col_sum_workgroups(true);
        let within = run_unscaled(&be, &g, &d, scale, poison, true);
        be.set_col_sum_workgroups(false);
        for (what, a, w) in [
            ("gW", &after[0], &within[0]),
            ("gb", &after[1], &within[1]),
            ("state", &after[2], &within[2]),
        ] {
            if bits(a) != bits(w) {
                failures
                    .push(format!("{g:?} S {scale} poison {poison}: {what}: col_sum after ≠ within"));
            }
        }
    }
    be.set_col_sum_workgroups(true);
    // The rule's kernel where it is a cooperative one (none on an adapter without cooperative
    // matrices): the bias gradient fused up to k = 32, else `amp_col_sum_unscale` after the
    // product; the same bits as unfused.
    be.set_half_kernel(None);
    for (i, (g, scale, poison)) in unscaled_cases().into_iter().enumerate() {
        if matmul_f16::choose(&be.dev, &g).coop_block().is_none() {
            continue;
        }
        let fuses = be.fuses_half_bias_grad(&g).expect("kernel choice");
        assert_eq!(fuses, g.k <= 32, "{g:?}: a cooperative kernel fuses the bias gradient up to k = 32");
        let d = data(&g, 900 + i as u64);
        let fused = run_unscaled(&be, &g, &d, scale, poison, true);
        let plain = run_unscaled(&be, &g, &d, scale, poison, false);
        let case = format!("{g:?} S {scale} poison {poison}, the rule's cooperative kernel");
        failures.extend(first_difference(&case, &fused, &plain));
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn unscaled_weight_gradients_match_the_cpu_twin() {
    let (gp, cp) = (gpu(), cpu());
    let mut failures = Vec::new();
    for (i, (g, scale, poison)) in unscaled_cases().into_iter().enumerate() {
        let d = data(&g, 500 + 10 * i as u64);
        let got = run_unscaled(&gp, &g, &d, scale, poison, true);
        let want = run_unscaled(&cp, &g, &d, scale, poison, true);
        // The state (scale, flag) exactly; the gradients within the products' summation-order
        // tolerance (the column sums too: f32 sums of the same values in another order).
        if bits(&got[2]) != bits(&want[2]) {
            failures.push(format!(
                "{g:?} S {scale} poison {poison}: state gpu {:?} cpu {:?}",
                got[2], want[2]
            ));
        }
        let tol = 1e-4 * (g.k as f32).sqrt() / scale;
        for (what, o, w) in [("gW", &got[0], &want[0]), ("gb", &got[1], &want[1])] {
            let far = |(o, w): (&f32, &f32)| match o.is_finite() || w.is_finite() {
                true => (o - w).abs().is_nan() || (o - w).abs() > tol + 1e-4 * w.abs(),
                // inf and NaN where the CPU has them (the sign of an inf as well)
                false => o.is_nan() != w.is_nan() || (o.is_infinite() && o != w),
            };
            if let Some(at) = o.iter().zip(w.iter()).position(far) {
                failures.push(format!(
                    "{g:?} S {scale} poison {poison}: {what}[{at}] gpu {} cpu {}",
                    o[at], w[at]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// `amp_col_sum_unscale` (the bias gradient of a cooperative product past k = 32, whose product
/// unscales its own store) equals `col_sum` then `amp_unscale` bit for bit, flag included, on
/// ragged shapes (no rows, one, a partial lane, many; column blocks partial and several), clean
/// and with an inf or a NaN in a column.
#[test]
fn col_sum_unscale_equals_col_sum_then_unscale_bitwise() {
    use batchscope::backend::gpu::amp::amp_col_sum_unscale;
    let be = gpu();
    for (i, &(rows, cols)) in
        [(0, 5), (1, 1), (7, 31), (33, 33), (300, 100), (64, 1024)].iter().enumerate()
    {
        for (poison, scale) in [(0u8, 65536.0f32), (1, 3.0), (2, 65536.0)] {
            let mut x = uniform(700 + i as u64, rows * cols, 1.0);
            match poison {
                1 if rows > 0 => x[rows * cols / 2] = f32::NEG_INFINITY,
                2 if rows > 0 => x[0] = f32::NAN,
                _ => {}
            }
            let mut state = vec![0.0; scaler::LEN];
            state[scaler::SCALE] = scale;
            let xb = be.upload(&x).expect("x");
            let (mut want, mut want_state) =
                (be.zeros(cols).expect("zeros"), be.upload(&state).expect("state"));
            be.col_sum(rows, cols, 1.0, &xb, 0.0, &mut want).expect("col_sum");
            ops(&be).amp_unscale(cols, &mut want_state, &mut want).expect("amp_unscale");
            let (got, got_state) =
                (be.upload(&vec![7.0; cols]).expect("got"), be.upload(&state).expect("state"));
            amp_col_sum_unscale(&be.dev, rows, cols, &got_state.0, &xb.0, &got.0)
                .expect("col_sum_unscale");
            let case = format!("{rows} x {cols}, poison {poison}, S {scale}");
            assert_eq!(
                bits(&be.read(&got).expect("read")),
                bits(&be.read(&want).expect("read")),
                "{case}"
            );
            let got_state = be.read(&got_state).expect("read");
            assert_eq!(bits(&got_state), bits(&be.read(&want_state).expect("read")), "{case}: state");
            assert_eq!(
                got_state[scaler::FOUND_INF],
                if poison > 0 && rows > 0 { 1.0 } else { 0.0 },
                "{case}"
            );
        }
    }
}

/// The cooperative-matrix kernel's fused epilogue against its own product followed by the CPU
/// twin's element-wise ops (exact but for tanh, as above), on shapes with odd multiples of 16
/// (the clamped last blocks, whose elements must see the epilogue once). Hardware-gated like
/// `f16_parity`'s `matmul_coop_matches_cpu`: it fails where the adapter lacks the feature, and
/// `cooperative_matrix_availability` there says loudly that it did not run.
#[test]
#[ignore = "needs 16x16 (subgroups of 32) or 8x8 (subgroups of 8) f16 cooperative matrices: see f16_parity's cooperative_matrix_availability; .ci/coop_lavapipe.sh runs it"]
fn coop_fused_f16_epilogues_match_the_cpu_twin() {
    use batchscope::backend::gpu::matmul_f16::{self, HalfKernel};
    let (gp, cp) = (gpu(), cpu());
    let mut failures = Vec::new();
    // By the rule the first two shapes run the 32x32 blocks, the others (m, n ≥ 64) the 64x64
    // ones, whose last blocks clamp at 80 and 144; then every shape runs each cooperative kernel
    // set by name (the staged one's 128x128 blocks clamp at all four).
    // And odd tile counts in the adapter's tiles (8x8 on lavapipe: the clamps above are even).
    let t =
        batchscope::backend::gpu::matmul_coop::coop_shape(&gp.dev.ctx).map_or(16, |s| s.tile as usize);
    let shapes = [
        (16, 16, 16),
        (48, 80, 32),
        (96, 64, 784),
        (80, 144, 32),
        (3 * t, 5 * t, 3 * t),
        (9 * t, 3 * t, t),
    ];
    // The rule's kernel, then each cooperative kernel by name (every block and load width).
    let forced: Vec<Option<HalfKernel>> =
        std::iter::once(None).chain(batchscope::backend::gpu::coop_check::KERNELS.map(Some)).collect();
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (ta, tb, kind, kernel) in [(false, false), (false, true), (true, false), (true, true)]
            .into_iter()
            .flat_map(|(ta, tb)| kinds().into_iter().map(move |kind| (ta, tb, kind)))
            .flat_map(|(ta, tb, kind)| forced.iter().map(move |&f| (ta, tb, kind, f)))
        {
            let g = Gemm::nn(m, n, k).trans(ta, tb);
            let want = matmul_f16::coop_kernel_for(&g);
            assert_eq!(matmul_f16::choose(&gp.dev, &g), want, "{g:?}: coop runs here");
            if let Some(k) = kernel {
                assert!(gp.half_kernel_runs(k, &g), "{g:?}: {k:?} runs here");
            }
            gp.set_half_kernel(kernel);
            let d = data(&g, 31 * i as u64 + 5);
            let got = run(&gp, &g, kind, true, &d, true);
            gp.set_half_kernel(None);
            let want = cpu_epilogue_on(&gp, &cp, &g, kind, &d);
            let inexact =
                matches!(kind, Kind::BiasAct(Activation::Tanh) | Kind::ActGrad(Activation::Tanh));
            for (what, o, w) in
                [("C", &got[0], &want[0]), ("y", &got[1], &want[1]), ("f16", &got[2], &want[2])]
            {
                let off = |(o, w): (&f32, &f32)| match inexact {
                    false => o.to_bits() != w.to_bits(),
                    true => (o - w).abs().is_nan() || (o - w).abs() > 2e-3 * w.abs() + 1e-7,
                };
                if let Some(at) = o.iter().zip(w.iter()).position(off) {
                    failures.push(format!(
                        "{g:?} {kind:?} {kernel:?}: {what}[{at}] coop {} cpu {}",
                        o[at], w[at]
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// `set_half_kernel` (`BATCHSCOPE_F16_KERNEL`) runs the named kernel where it can run the
/// product, and the usual one where it cannot: on an adapter without cooperative matrices a
/// named cooperative kernel changes no bit, and the packed kernel can always be named.
#[test]
fn a_named_f16_kernel_runs_where_it_can_and_falls_back_where_not() {
    use batchscope::backend::gpu::matmul_f16::{self, HalfKernel};
    let gp = gpu();
    let g = Gemm::nn(96, 144, 80);
    let d = data(&g, 77);
    let kind = Kind::BiasAct(Activation::Relu);
    let usual = matmul_f16::choose(&gp.dev, &g);
    let default = run(&gp, &g, kind, true, &d, true);
    let coop = batchscope::backend::gpu::coop_check::KERNELS;
    for k in std::iter::once(HalfKernel::Packed).chain(coop) {
        let runs = gp.half_kernel_runs(k, &g);
        assert!(runs || k != HalfKernel::Packed, "the packed kernel runs everywhere");
        gp.set_half_kernel(Some(k));
        let got = run(&gp, &g, kind, true, &d, true);
        gp.set_half_kernel(None);
        // Where it cannot run, or is the usual kernel anyway, nothing changes.
        if !runs || k == usual {
            for (o, w) in got.iter().zip(&default) {
                assert_eq!(bits(o), bits(w), "{k:?}: the usual kernel's bits");
            }
        }
    }
}

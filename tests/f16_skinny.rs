//! The f16 skinny kernel (`matmul_f16_skinny`, `HalfKernel::Skinny`: a side of C too short for
//! a tile) against its CPU twin on seeded ragged shapes (m, n, k off every tile and lane count;
//! n = 1, 10, 17 among them), every transpose pair, alpha/beta scaling and NaN in an unread C;
//! its fused epilogues bit for bit against the unfused ops and exactly as the CPU twin's on the
//! same product; the rule that routes the output layer's products to it; its entry point under
//! naga with the bindings the host binds; and the autotuner timing it for such shapes.

mod common;

use batchscope::backend::gpu::kernels::{Access, Shader, WG_1D};
use batchscope::backend::gpu::matmul_f16::{self, HalfKernel};
use batchscope::backend::gpu::{matmul_coop, GpuBackend};
use batchscope::backend::half::scaler;
use batchscope::backend::{half_epilogue, Activation, Backend, Gemm};
use common::half::{data, half_of, ops, run, Kind};
use common::{cpu, gpu, uniform};

/// Unit roundoff of f32.
const U32: f64 = 1.0 / 16_777_216.0;

/// Ragged (m, n, k): the output layer's n = 10 and its weight gradient's m = 10, one row and
/// one column, n = 17 (two column blocks of 16 with one column in the second), k off the lane
/// counts and long enough for the lanes to multiply (k ≥ 16 · lanes), m past a row block.
const SHAPES: [(usize, usize, usize); 12] = [
    (1, 1, 1),
    (1, 10, 37),
    (3, 17, 5),
    (9, 10, 1030),
    (33, 10, 100),
    (10, 1, 300),
    (10, 17, 2047),
    (10, 130, 33),
    (17, 1, 4099),
    (7, 300, 130),
    (130, 10, 70),
    (10, 65, 2500),
];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `Σ_p |op(A)[i,p]| |op(B)[p,j]|` (f64) of the operands as rounded to f16 by `round`.
fn magnitudes(g: &Gemm, a: &[f32], b: &[f32], round: &dyn Fn(f32) -> f32) -> Vec<f64> {
    let (m, n, k) = (g.m, g.n, g.k);
    let at = |i: usize, p: usize| if g.trans_a { a[p * m + i] } else { a[i * k + p] };
    let bt = |p: usize, j: usize| if g.trans_b { b[j * k + p] } else { b[p * n + j] };
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| (round(at(i, p)) as f64 * round(bt(p, j)) as f64).abs()).sum();
            out[i * n + j] = g.alpha.abs() as f64 * s;
        }
    }
    out
}

/// C of `g` on the GPU's skinny kernel (named, not chosen) from C0 `c0`.
fn skinny_product(gp: &GpuBackend, g: &Gemm, a: &[f32], b: &[f32], c0: &[f32]) -> Vec<f32> {
    let (ha, hb) = (half_of(gp, a), half_of(gp, b));
    let c = gp.upload(c0).expect("upload");
    let (wa, wb) = (&ha.words.0, &hb.words.0);
    matmul_f16::matmul_half(&gp.dev, HalfKernel::Skinny, g, wa, ha.len, wb, hb.len, &c.0)
        .unwrap_or_else(|e| panic!("{g:?}: {e}"));
    gp.read(&c).expect("read")
}

/// C of `g` on the CPU twin.
fn cpu_product(g: &Gemm, a: &[f32], b: &[f32], c0: &[f32]) -> Vec<f32> {
    let c = cpu();
    let (ha, hb) = (half_of(&c, a), half_of(&c, b));
    let mut out = c0.to_vec();
    ops(&c).matmul_half(g, &ha, &hb, &mut out).expect("cpu matmul_half");
    out
}

/// Every shape, every transpose pair, (alpha, beta) = (1, 0) with C0 all NaN (beta = 0 never
/// reads C) or (0.5, 0.25): within `2 γ_k(f32) Σ|a||b| + |β C0| 2u` of the CPU twin (both sum
/// f32 products of the same exact halves, in other orders); and with operands that are small
/// multiples of 1/8 (every sum exact in f32) bit for bit.
#[test]
fn skinny_matches_the_cpu_twin_on_ragged_shapes() {
    let gp = gpu();
    let round = |x: f32| half::f16::from_f32(x).to_f32();
    let mut cases = 0;
    for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
        for (t, (ta, tb)) in
            [(false, false), (false, true), (true, false), (true, true)].into_iter().enumerate()
        {
            let plain = (s + t) % 2 == 0;
            let (alpha, beta) = if plain { (1.0, 0.0) } else { (0.5, 0.25) };
            let g = Gemm::nn(m, n, k).trans(ta, tb).scaled(alpha, beta);
            let seed = 1000 * s as u64 + 10 * t as u64;
            let (a, b) = (uniform(seed, m * k, 1.0), uniform(seed + 1, k * n, 3.0));
            let c0 = if plain { vec![f32::NAN; m * n] } else { uniform(seed + 2, m * n, 1.0) };
            let (got, want) = (skinny_product(&gp, &g, &a, &b, &c0), cpu_product(&g, &a, &b, &c0));
            let mag = magnitudes(&g, &a, &b, &round);
            let kf = k as f64 + 2.0;
            let gamma = 2.0 * kf * U32 / (1.0 - kf * U32);
            for (idx, (&o, &w)) in got.iter().zip(&want).enumerate() {
                let beta_c = if plain { 0.0 } else { (beta * c0[idx]).abs() as f64 };
                let tol = 2.0 * gamma * mag[idx] + 4.0 * U32 * beta_c + 1e-30;
                let err = (o as f64 - w as f64).abs();
                assert!(err <= tol, "{g:?} [{idx}]: gpu {o} cpu {w} (tol {tol:e})");
            }
            // Exact operands: i/8 for small i, so every product and partial sum is exact.
            let exact = |seed: u64, len: usize| -> Vec<f32> {
                uniform(seed, len, 8.0).iter().map(|v| v.round() / 8.0).collect()
            };
            let (a, b) = (exact(seed + 3, m * k), exact(seed + 4, k * n));
            let c0 = exact(seed + 5, m * n);
            let (got, want) = (skinny_product(&gp, &g, &a, &b, &c0), cpu_product(&g, &a, &b, &c0));
            assert_eq!(bits(&got), bits(&want), "{g:?}: exact operands");
            cases += 1;
        }
    }
    println!("parity ok: matmul_f16_skinny, {cases} ragged cases, tolerant and exact");
}

/// `[C, y (or the bias gradient in its first m), f16 copy widened]` of one case on `b`: the
/// fused op through the trait, or the unfused default.
fn epilogue_case<B: Backend>(b: &B, g: &Gemm, kind: Kind, seed: u64, fused: bool) -> [Vec<f32>; 3] {
    run(b, g, kind, !matches!(kind, Kind::BiasGrad), &data(g, seed), fused)
}

/// The epilogues the f16 step fuses into the skinny kernel's store (the output layer's bias,
/// a hidden layer's bias + φ with the f16 copy of a, φ' with the f16 copy of dz, the bias
/// gradient summed per invocation up to k = 32 and by col_sum workgroups past it): the fused op
/// bit for bit as the unfused ops on the same kernel, on shapes with odd n (words of the f16
/// copy straddling invocations and workgroups), with the col_sum workgroups on and off.
#[test]
fn skinny_fused_epilogues_equal_the_unfused_ops_bitwise() {
    let gp = gpu();
    gp.set_half_kernel(Some(HalfKernel::Skinny));
    let kinds = [
        Kind::Bias,
        Kind::BiasAct(Activation::Relu),
        Kind::BiasAct(Activation::Tanh),
        Kind::ActGrad(Activation::Relu),
        Kind::BiasGrad,
    ];
    let shapes = [(5, 10, 33), (10, 37, 31), (33, 17, 1030), (10, 130, 64), (1, 1, 3)];
    let mut failures = Vec::new();
    for col_sums in [true, false] {
        gp.set_col_sum_workgroups(col_sums);
        for (i, &(m, n, k)) in shapes.iter().enumerate() {
            for (ta, tb) in [(false, true), (true, false), (false, false)] {
                for (j, &kind) in kinds.iter().enumerate() {
                    let g = Gemm::nn(m, n, k).trans(ta, tb);
                    let seed = 50 * i as u64 + 7 * j as u64;
                    let fused = epilogue_case(&gp, &g, kind, seed, true);
                    let plain = epilogue_case(&gp, &g, kind, seed, false);
                    for (what, f, p) in [("C", 0, 0), ("y", 1, 1), ("f16", 2, 2)] {
                        let (f, p) = (&fused[f], &plain[p]);
                        if let Some(at) = bits(f).iter().zip(bits(p)).position(|(x, y)| *x != y) {
                            failures.push(format!(
                                "{g:?} {kind:?} col_sums {col_sums}: {what}[{at}] fused {} unfused {}",
                                f[at], p[at]
                            ));
                        }
                    }
                }
            }
        }
    }
    gp.set_col_sum_workgroups(true);
    gp.set_half_kernel(None);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The fused epilogues (relu, no tanh: the CPU's `exp` differs in the last bits) exactly as the
/// CPU twin's element-wise ops and rounding on the skinny kernel's own product, and the whole
/// op within the products' tolerance of the CPU twin's.
#[test]
fn skinny_fused_epilogues_match_the_cpu_twin() {
    let (gp, cp) = (gpu(), cpu());
    gp.set_half_kernel(Some(HalfKernel::Skinny));
    let kinds = [Kind::Bias, Kind::BiasAct(Activation::Relu), Kind::ActGrad(Activation::Relu)];
    for (i, &(m, n, k)) in [(4, 10, 100), (17, 10, 33), (10, 17, 5)].iter().enumerate() {
        for (j, &kind) in kinds.iter().enumerate() {
            let g = Gemm::nn(m, n, k).trans(false, true);
            let seed = 900 + 10 * i as u64 + j as u64;
            let got = epilogue_case(&gp, &g, kind, seed, true);
            let want = epilogue_case(&cp, &g, kind, seed, true);
            let tol = 1e-4 * (k as f32).sqrt();
            for (what, o, w, rel) in [
                ("C", &got[0], &want[0], 1e-4),
                ("y", &got[1], &want[1], 1e-4),
                ("f16", &got[2], &want[2], 2e-3),
            ] {
                let far =
                    |(o, w): (&f32, &f32)| (o - w).abs().is_nan() || (o - w).abs() > tol + rel * w.abs();
                if let Some(at) = o.iter().zip(w.iter()).position(far) {
                    panic!("{g:?} {kind:?}: {what}[{at}] gpu {} cpu {}", o[at], w[at]);
                }
            }
        }
    }
    gp.set_half_kernel(None);
}

/// The weight gradient of the output layer unscaled in the skinny kernel's store (the f16 step's
/// `matmul_half_bias_grad_unscaled`), with an inf in dz: bit for bit as the unfused product,
/// col_sum and `amp_unscale`, flag included; with the col_sum workgroups and without them.
#[test]
fn skinny_unscaled_weight_gradient_equals_the_unfused_ops_bitwise() {
    let gp = gpu();
    for (k, poison) in [(31usize, false), (300, false), (300, true), (4099, false)] {
        let g = Gemm::nn(10, 65, k).trans(true, false);
        assert_eq!(matmul_f16::choose(&gp.dev, &g), HalfKernel::Skinny, "{g:?}");
        for col_sums in [true, false] {
            gp.set_col_sum_workgroups(col_sums);
            let run = |fused: bool| -> Vec<Vec<f32>> {
                let mut dz = uniform(k as u64, k * 10, 1.0);
                if poison {
                    dz[17] = f32::INFINITY;
                }
                let (ha, hb) = (half_of(&gp, &dz), half_of(&gp, &uniform(3, k * 65, 1.0)));
                let s = gp.upload(&dz).expect("upload");
                let (mut c, mut gb) = (gp.zeros(10 * 65).expect("zeros"), gp.zeros(10).expect("zeros"));
                let mut state = vec![0.0; scaler::LEN];
                state[scaler::SCALE] = 3.0;
                let mut st = gp.upload(&state).expect("upload");
                let r = match fused {
                    true => {
                        gp.matmul_half_bias_grad_unscaled(&g, [&ha, &hb], &mut c, &s, &mut gb, &mut st)
                    }
                    false => half_epilogue::unfused_unscaled(
                        &gp,
                        &g,
                        [&ha, &hb],
                        &mut c,
                        &s,
                        &mut gb,
                        &mut st,
                    ),
                };
                r.unwrap_or_else(|e| panic!("{g:?}: {e}"));
                [&c, &gb, &st].iter().map(|x| gp.read(x).expect("read")).collect()
            };
            let (fused, plain) = (run(true), run(false));
            for (what, f, p) in [("gW", 0, 0), ("gb", 1, 1), ("state", 2, 2)] {
                assert_eq!(bits(&fused[f]), bits(&plain[p]), "{g:?} col_sums {col_sums}: {what}");
            }
            assert_eq!(fused[2][scaler::FOUND_INF], if poison { 1.0 } else { 0.0 }, "{g:?}: flag");
        }
    }
    gp.set_col_sum_workgroups(true);
}

/// The rule: a side of C of at most 32 and no cooperative kernel for the shape → skinny (the
/// output layer's three products at every batch, every product of a batch of 8); else packed
/// where no cooperative kernel runs. Every such shape is an autotuner candidate with the packed
/// kernel, and the tuner's check finds both exact on this adapter.
#[test]
fn the_rule_and_the_tuner_take_skinny_for_a_short_side() {
    let gp = gpu();
    let nt = |m, n, k| Gemm::nn(m, n, k).trans(false, true);
    let tn = |m, n, k| Gemm::nn(m, n, k).trans(true, false);
    let short =
        [nt(32, 10, 1024), nt(4096, 10, 1024), tn(10, 1024, 4096), tn(10, 1024, 32), nt(8, 1024, 784)];
    for g in short {
        // In 8x8 tiles (lavapipe from Mesa 26) a side of 8 has a cooperative kernel.
        let coop = matmul_coop::available(&gp.dev.ctx) && matmul_coop::eligible(&g, &gp.dev);
        let want = if coop { matmul_f16::coop_kernel_for(&g) } else { HalfKernel::Skinny };
        assert_eq!(matmul_f16::choose(&gp.dev, &g), want, "{g:?}");
        assert!(gp.half_kernel_runs(HalfKernel::Skinny, &g));
    }
    // dgrad of the output layer (k = 10) past B = 32, and a square product: no short side.
    for g in [Gemm::nn(4096, 1024, 10), Gemm::nn(64, 64, 64)] {
        let k = matmul_f16::choose(&gp.dev, &g);
        assert!(k != HalfKernel::Skinny, "{g:?}: {k:?}");
    }
    let g = nt(33, 10, 70);
    let r = gp.tune_half_shape(&g).expect("tune");
    let names: Vec<String> = r.times.iter().map(|(c, _)| c.name()).collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("f16_skinny"),
        "the rule's kernel first: {names:?}"
    );
    assert!(names.iter().any(|n| n == "f16_packed"), "{names:?}");
    assert!(r.wrong.is_empty(), "every candidate exact: {:?}", r.wrong);
    // A packed default with a side up to 128 gets the skinny kernel as a candidate too.
    let r = gp.tune_half_shape(&nt(100, 70, 40)).expect("tune");
    let names: Vec<String> = r.times.iter().map(|(c, _)| c.name()).collect();
    assert!(names.iter().any(|n| n == "f16_skinny"), "{names:?}");
}

/// The entry point exists in `shaders/matmul_f16.wgsl` as naga validates it, with the bindings
/// and access the host binds (`skinny::MATMUL_F16_SKINNY`), the 1-D workgroup of `WG_1D`, and
/// workgroup memory within WebGPU's default 16 KiB.
#[test]
fn skinny_entry_point_validates_with_its_bindings() {
    let k = batchscope::backend::gpu::kernels::MATMUL_F16_SKINNY;
    assert_eq!(k.shader, Shader::MatmulF16);
    let (module, info) = common::spirv::module_of(k.shader);
    let (idx, ep) = module
        .entry_points
        .iter()
        .enumerate()
        .find(|(_, ep)| ep.name == k.entry)
        .unwrap_or_else(|| panic!("no entry point `{}`", k.entry));
    assert_eq!(ep.stage, naga::ShaderStage::Compute);
    assert_eq!(ep.workgroup_size, [WG_1D, 1, 1]);
    let used = common::naga_use::used_bindings(&module, &info, idx);
    let got: Vec<u32> = used.iter().map(|u| u.0).collect();
    assert_eq!(got, (0..=k.bindings.len() as u32).collect::<Vec<_>>(), "bindings used");
    for (i, access) in k.bindings.iter().enumerate() {
        assert_eq!(used[i + 1].1, *access == Access::Read, "binding {} access", i + 1);
    }
    // sk_part [8, 256] f32 and col_sum's tree [256] f32.
    let uses = info.get_entry_point(idx);
    let bytes: u32 = module
        .global_variables
        .iter()
        .filter(|(h, v)| v.space == naga::AddressSpace::WorkGroup && !uses[*h].is_empty())
        .map(|(_, v)| module.types[v.ty].inner.size(module.to_ctx()))
        .sum();
    assert!(bytes <= 16 * 1024, "{bytes} bytes of workgroup memory");
}

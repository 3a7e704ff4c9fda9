//! The fused epilogues (bias, bias + φ, · φ'(z), the bias gradient) bit for bit against the unfused path (the
//! same launch's product, then the element-wise kernel) on the skinny, tiled and tile-family
//! kernels, with and without split-k; and the GPU against the CPU twin through
//! `Backend::matmul_epilogue`, both from one test body.

use super::tests::{backend, random};
use super::*;
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::tile::TILES;
use crate::backend::gpu::{act, elementwise, GpuBackend};
use crate::backend::{Activation, Backend, Epilogue as Epi};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Which epilogue a case runs.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Bias,
    BiasAct(Activation),
    ActGrad(Activation),
    BiasGrad,
    /// The bias gradient of A itself (`s` = A's buffer: `gW = dzᵀ·x`), which the tiled kernels
    /// sum from their staged slices of A at any k (epilogue 5) when A is transposed.
    BiasGradOfA,
}

const ACTS: [Activation; 3] = [Activation::Identity, Activation::Relu, Activation::Tanh];

fn kinds() -> Vec<Kind> {
    let mut out = vec![Kind::Bias];
    out.extend(ACTS.map(Kind::BiasAct));
    out.extend(ACTS.map(Kind::ActGrad));
    out.push(Kind::BiasGrad);
    out.push(Kind::BiasGradOfA);
    out
}

/// Host operands of one case: A, B, C (random, or NaN when beta = 0), bias [n], z [m, n],
/// s [k, m] (the bias gradient's input).
struct Data {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    bias: Vec<f32>,
    z: Vec<f32>,
    s: Vec<f32>,
}

fn data(g: &Gemm, seed: u64) -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (la, lb, lc) = gemm_lens(g);
    let (a, b) = (random(&mut rng, la), random(&mut rng, lb));
    let c = if g.beta == 0.0 { vec![f32::NAN; lc] } else { random(&mut rng, lc) };
    let bias = random(&mut rng, g.n);
    // z in [-2, 2) with exact zeros (relu's kink) sprinkled in.
    let mut z: Vec<f32> = random(&mut rng, lc).iter().map(|v| 2.0 * v).collect();
    z.iter_mut().step_by(7).for_each(|v| *v = 0.0);
    let s = random(&mut rng, g.k * g.m);
    Data { a, b, c, bias, z, s }
}

/// Every transpose of every shape, each with every epilogue; scaling alternates between
/// (1, 0) and (0.5, 0.25) (beta = 0 for the activation gradient, which needs it).
fn cases(shapes: &[(usize, usize, usize)]) -> Vec<(Gemm, Kind)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    for &(m, n, k) in shapes {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for kind in kinds() {
                i += 1;
                let (alpha, beta) = if i.is_multiple_of(2) { (1.0, 0.0) } else { (0.5, 0.25) };
                let beta = if matches!(kind, Kind::ActGrad(_)) { 0.0 } else { beta };
                out.push((Gemm::nn(m, n, k).trans(ta, tb).scaled(alpha, beta), kind));
            }
        }
    }
    out
}

/// `(C, y)` after `g` and `kind` through `launch`: fused into the store (`record_epi`), or
/// the product then the element-wise kernel.
fn run_gpu(
    be: &GpuBackend,
    launch: &Launch,
    g: &Gemm,
    kind: Kind,
    d: &Data,
    fused: bool,
) -> [Vec<u32>; 2] {
    let up = |v: &[f32]| be.upload(v).expect("upload").0;
    let (a, b, c, bias, z, s) = (up(&d.a), up(&d.b), up(&d.c), up(&d.bias), up(&d.z), up(&d.s));
    let s = if matches!(kind, Kind::BiasGradOfA) { a.clone() } else { s };
    // y [m, n], or the bias gradient [m] in its first m elements.
    let y = up(&vec![f32::NAN; g.m * g.n]);
    let scratch = up(&vec![0.0; g.m * g.n]);
    let dev = &be.dev;
    let (rows, cols) = (g.m, g.n);
    let r = if fused {
        let store = match kind {
            Kind::Bias => Epilogue::Bias(&bias),
            Kind::BiasAct(f) => Epilogue::BiasAct(f, &bias, &y),
            Kind::ActGrad(f) => Epilogue::ActGrad(f, &z),
            Kind::BiasGrad | Kind::BiasGradOfA => Epilogue::BiasGrad(&s, &y),
        };
        record_epi(dev, launch, g, &a, &b, &c, store)
    } else {
        match kind {
            Kind::Bias => record(dev, launch, g, &a, &b, &c)
                .and_then(|()| elementwise::add_bias(dev, rows, cols, &bias, &c)),
            Kind::BiasAct(f) => record(dev, launch, g, &a, &b, &c)
                .and_then(|()| act::bias_act(dev, f, rows, cols, &bias, &c, &y)),
            Kind::ActGrad(f) => record(dev, launch, g, &a, &b, &scratch)
                .and_then(|()| act::act_backward(dev, f, rows * cols, &z, &scratch, &c)),
            Kind::BiasGrad | Kind::BiasGradOfA => record(dev, launch, g, &a, &b, &c)
                .and_then(|()| crate::backend::gpu::reduce::col_sum(dev, g.k, g.m, 1.0, &s, 0.0, &y)),
        }
    };
    r.unwrap_or_else(|e| panic!("{} {g:?} {kind:?}: {e}", launch.kernel.name));
    let read = |x: RawBuf| -> Vec<u32> {
        let v = be.read(&crate::backend::gpu::GpuBuf(x)).expect("read");
        v.iter().map(|f| f.to_bits()).collect()
    };
    [read(c), read(y)]
}

/// Fused and unfused agree bit for bit for every case through `launch_for(g)`.
fn bitwise(
    be: &GpuBackend,
    name: &str,
    cases: &[(Gemm, Kind)],
    launch_for: &dyn Fn(&Gemm) -> Launch,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, (g, kind)) in cases.iter().enumerate() {
        let d = data(g, 7000 + i as u64);
        let launch = launch_for(g);
        let fused = run_gpu(be, &launch, g, *kind, &d, true);
        let plain = run_gpu(be, &launch, g, *kind, &d, false);
        for (what, f, p) in [("C", &fused[0], &plain[0]), ("y", &fused[1], &plain[1])] {
            if let Some(at) = f.iter().zip(p.iter()).position(|(x, y)| x != y) {
                let (x, y) = (f32::from_bits(f[at]), f32::from_bits(p[at]));
                failures.push(format!("{name} {g:?} {kind:?}: {what}[{at}] fused {x} unfused {y}"));
            }
        }
    }
    failures
}

/// The step's shapes and ragged ones: few rows (skinny), tiles with generic and vec4 loads.
const SHAPES: [(usize, usize, usize); 4] = [(1, 37, 67), (5, 130, 259), (63, 65, 17), (132, 68, 260)];
/// Few output tiles and a long k: split-k runs (checked below), the epilogue in the reduce.
const SPLIT: [(usize, usize, usize); 2] = [(70, 45, 1100), (64, 128, 2048)];

#[test]
fn fused_epilogues_equal_the_unfused_ops_bitwise() {
    let be = backend();
    for &(m, n, k) in &SPLIT {
        let tiles = m.div_ceil(TILE_M as usize) * n.div_ceil(TILE_N as usize);
        assert!(split_count(&Gemm::nn(m, n, k), tiles, 1, 1 << 30, 65535).is_some(), "{m}x{n}x{k}");
    }
    let mut failures = Vec::new();
    let all: Vec<_> = SHAPES.iter().chain(&SPLIT).copied().collect();
    let skinny = |g: &Gemm| launch_of(MatmulVariant::Skinny, g);
    let tiled = |g: &Gemm| launch_of(MatmulVariant::Tiled, g);
    failures.extend(bitwise(&be, "skinny", &cases(&SHAPES[..2]), &skinny));
    failures.extend(bitwise(&be, "tiled", &cases(&all), &tiled));
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn fused_epilogues_of_the_tile_family_equal_the_unfused_ops_bitwise() {
    let be = backend();
    let mut failures = Vec::new();
    let shapes = [(65, 129, 17), SPLIT[0]];
    for cfg in TILES.into_iter().filter(|t| t.fits(&be.dev.ctx.limits)) {
        let launch = |g: &Gemm| tile_launch(cfg, g).expect("in the family");
        // The step's transposes (forward NT, dgrad NN) with every epilogue, and the bias
        // gradients under every transpose (the weight gradient is TN: its A's staged slices).
        let step =
            |(g, kind): &(Gemm, Kind)| !g.trans_a || matches!(kind, Kind::BiasGrad | Kind::BiasGradOfA);
        let mut cases: Vec<_> = cases(&shapes).into_iter().filter(step).collect();
        // A depth long enough that the summation order shows in the bits, without split-k.
        let bias_grads = |(_, kind): &(Gemm, Kind)| matches!(kind, Kind::BiasGrad | Kind::BiasGradOfA);
        cases.extend(self::cases(&[(33, 70, 300)]).into_iter().filter(bias_grads));
        failures.extend(bitwise(&be, &cfg.name(), &cases, &launch));
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// `matmul_epilogue` on `be`: `(C, y)`.
fn through_trait<B: Backend>(be: &B, g: &Gemm, kind: Kind, d: &Data) -> [Vec<f32>; 2] {
    let up = |v: &[f32]| be.upload(v).expect("upload");
    let (a, b, bias, z, s) = (up(&d.a), up(&d.b), up(&d.bias), up(&d.z), up(&d.s));
    let (mut c, mut y, mut scratch) =
        (up(&d.c), up(&vec![0.0; g.m * g.n]), be.zeros(g.m * g.n).expect("zeros"));
    let epi = match kind {
        Kind::Bias => Epi::Bias(&bias),
        Kind::BiasAct(f) => Epi::BiasAct(f, &bias, &mut y),
        Kind::ActGrad(f) => Epi::ActGrad { act: f, z: &z, scratch: &mut scratch },
        Kind::BiasGrad => Epi::BiasGrad { s: &s, bias_grad: &mut y },
        Kind::BiasGradOfA => Epi::BiasGrad { s: &a, bias_grad: &mut y },
    };
    be.matmul_epilogue(g, &a, &b, &mut c, epi).expect("matmul_epilogue");
    [be.read(&c).expect("read"), be.read(&y).expect("read")]
}

#[test]
fn matmul_epilogue_matches_the_cpu_twin() {
    let (gpu, cpu) = (backend(), CpuBackend::new());
    let mut failures = Vec::new();
    // (40, 65, 19) and (5, 7, 32) fuse the bias gradient of any s (k ≤ BIAS_GRAD_FUSE_MAX_K);
    // past that the bias gradient of A transposed fuses (the tiled kernel's staged slices, the
    // split-k reduce for SPLIT[0]) and that of another s records col_sum after the product.
    let shapes = [(3, 33, 70), (40, 65, 19), (5, 7, 32), SPLIT[0]];
    for (i, (g, kind)) in cases(&shapes).iter().enumerate() {
        let d = data(g, 9000 + i as u64);
        let (want, got) = (through_trait(&cpu, g, *kind, &d), through_trait(&gpu, g, *kind, &d));
        let tol = 1e-4 * (g.k as f32).sqrt();
        for (what, w, o) in [("C", &want[0], &got[0]), ("y", &want[1], &got[1])] {
            let far = |(w, o): (&f32, &f32)| {
                let err = (w - o).abs();
                err.is_nan() || err > tol + 1e-4 * w.abs()
            };
            let bad = w.iter().zip(o.iter()).position(far);
            if let Some(at) = bad {
                failures.push(format!("{g:?} {kind:?}: {what}[{at}] gpu {} cpu {}", o[at], w[at]));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

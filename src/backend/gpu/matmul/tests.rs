//! The matmul kernels against an f64 reference: every variant, transposes, split-k.

use super::*;
use crate::backend::gpu::GpuBackend;
use crate::backend::Backend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The GPU backend of the library's unit tests (lavapipe in CI); no adapter fails, naming the fix.
pub(crate) fn backend() -> GpuBackend {
    match GpuBackend::new(None) {
        Ok(b) => b,
        Err(e) => panic!("the GPU unit tests need a GPU adapter (CI uses lavapipe: apt-get install mesa-vulkan-drivers): {e}"),
    }
}

pub(super) fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// f64 reference of [`Gemm`] over stored `a`, `b`, `c`.
fn reference(g: &Gemm, a: &[f32], b: &[f32], c: &[f32]) -> Vec<f64> {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let av = if g.trans_a { a[p * m + i] } else { a[i * k + p] };
                let bv = if g.trans_b { b[j * k + p] } else { b[p * n + j] };
                s += av as f64 * bv as f64;
            }
            let mut v = g.alpha as f64 * s;
            if g.beta != 0.0 {
                v += g.beta as f64 * c[i * n + j] as f64;
            }
            out[i * n + j] = v;
        }
    }
    out
}

/// Run `g` with variant `v` on seeded data; `Err` describes the worst element.
fn check(
    be: &GpuBackend,
    v: MatmulVariant,
    g: &Gemm,
    nan_c: bool,
    seed: u64,
) -> std::result::Result<(), String> {
    be.set_matmul_variant(v);
    let run = |a: &RawBuf, b: &RawBuf, c: &RawBuf| matmul(&be.dev, v, g, a, b, c);
    check_with(be, kernel_for(v, g).name, &run, g, nan_c, seed)
}

/// Run `g` through `run` (a, b, c) on seeded data; `Err` describes the worst element.
pub(super) fn check_with(
    be: &GpuBackend,
    kernel: &str,
    run: &dyn Fn(&RawBuf, &RawBuf, &RawBuf) -> Result<()>,
    g: &Gemm,
    nan_c: bool,
    seed: u64,
) -> std::result::Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (la, lb, lc) = gemm_lens(g);
    let a = random(&mut rng, la);
    let b = random(&mut rng, lb);
    let c = if nan_c { vec![f32::NAN; lc] } else { random(&mut rng, lc) };
    let want = reference(g, &a, &b, &c);
    let da = be.upload(&a).map_err(|e| e.to_string())?;
    let db = be.upload(&b).map_err(|e| e.to_string())?;
    let dc = be.upload(&c).map_err(|e| e.to_string())?;
    run(&da.0, &db.0, &dc.0).map_err(|e| e.to_string())?;
    let got = be.read(&dc).map_err(|e| e.to_string())?;
    if got.len() != lc {
        return Err(format!("{kernel} {g:?}: read {} elements, want {lc}", got.len()));
    }
    let atol = 1e-4 * (g.k.max(1) as f64).sqrt();
    let rtol = 1e-4;
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&o, &r)) in got.iter().zip(&want).enumerate() {
        let err = (o as f64 - r).abs();
        let excess = if err.is_nan() { f64::INFINITY } else { err - (atol + rtol * r.abs()) };
        if excess > 0.0 && worst.is_none_or(|(_, w)| excess > w) {
            worst = Some((i, excess));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => Err(format!(
            "{kernel} {g:?}: worst C[{},{}] = {} but reference {} (atol {atol:.2e}, rtol {rtol:.0e})",
            i / g.n,
            i % g.n,
            got[i],
            want[i]
        )),
    }
}

/// The shapes: every transpose combination on ragged and aligned sizes, alpha/beta both set
/// and beta = 0 over a NaN-filled C.
pub(super) fn cases() -> Vec<(Gemm, bool)> {
    let shapes: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (3, 17, 63),
        (17, 3, 65),
        (63, 65, 17),
        (65, 63, 257),
        (257, 65, 3),
        (1, 257, 65),
        (257, 1, 17),
        (64, 128, 32),  // aligned: vec4 kernels
        (132, 68, 260), // aligned, ragged against the 128 tile
        (260, 136, 36), // aligned, several tiles each way
        (257, 257, 257),
    ];
    every_transpose(shapes)
}

/// Every shape under every transpose combination, alternating the scaling so each shape sees
/// both forms (alpha/beta set, and beta = 0 over a NaN-filled C) across the transposes.
pub(super) fn every_transpose(shapes: &[(usize, usize, usize)]) -> Vec<(Gemm, bool)> {
    let mut out = Vec::new();
    for (si, &(m, n, k)) in shapes.iter().enumerate() {
        for (ti, &(ta, tb)) in
            [(false, false), (false, true), (true, false), (true, true)].iter().enumerate()
        {
            let g = Gemm::nn(m, n, k).trans(ta, tb);
            if (si + ti) % 2 == 0 {
                out.push((g.scaled(0.5, 0.25), false));
            } else {
                out.push((g.scaled(1.0, 0.0), true));
            }
        }
    }
    out
}

fn run_cases(v: MatmulVariant) {
    let be = backend();
    let mut failures = Vec::new();
    for (idx, (g, nan_c)) in cases().iter().enumerate() {
        if let Err(e) = check(&be, v, g, *nan_c, 1000 + idx as u64) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn naive_matches_f64_reference() {
    run_cases(MatmulVariant::Naive);
}

#[test]
fn tiled_matches_f64_reference() {
    run_cases(MatmulVariant::Tiled);
}

#[test]
fn skinny_matches_f64_reference() {
    run_cases(MatmulVariant::Skinny);
}

/// The small-batch products of an MLP step (and ragged neighbours) on the skinny kernel.
fn skinny_cases() -> Vec<(Gemm, bool)> {
    let shapes: &[(usize, usize, usize)] = &[
        (1, 1024, 784),  // forward L0 at B = 1
        (8, 1024, 1024), // forward L1 / data gradient at B = 8
        (32, 10, 1024),  // output layer at B = 32
        (31, 1001, 777), // ragged rows, columns and depth
        (9, 33, 5),      // a second, partly empty row block
    ];
    every_transpose(shapes)
}

#[test]
fn skinny_matches_f64_reference_on_step_shapes() {
    let be = backend();
    let mut failures = Vec::new();
    for (idx, (g, nan_c)) in skinny_cases().iter().enumerate() {
        if let Err(e) = check(&be, MatmulVariant::Skinny, g, *nan_c, 3000 + idx as u64) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn auto_chooses_skinny_for_few_rows() {
    // The small-batch products of 784-1024-1024-10: forward X·Wᵀ and data gradient dZ·W.
    assert_eq!(choose(&Gemm::nn(1, 1024, 784).trans(false, true)), MatmulVariant::Skinny);
    assert_eq!(choose(&Gemm::nn(128, 1024, 1024)), MatmulVariant::Skinny);
    assert_eq!(choose(&Gemm::nn(129, 1024, 1024)), MatmulVariant::Tiled);
    // The output layer's forward product X·Wᵀ (n = 10 classes) at any batch.
    assert_eq!(choose(&Gemm::nn(4096, 10, 1024).trans(false, true)), MatmulVariant::Skinny);
    // Weight gradients dZᵀ·X have m = fan-out rows: tiled (k = batch is short).
    assert_eq!(choose(&Gemm::nn(1024, 784, 8).trans(true, false)), MatmulVariant::Tiled);
    // ... also for a 10-class output layer (m = 10): its bits do not depend on the batch path.
    assert_eq!(choose(&Gemm::nn(10, 128, 64).trans(true, false)), MatmulVariant::Tiled);
    // A depth one workgroup should not walk alone: tiled (with split-k).
    assert_eq!(choose(&Gemm::nn(1, 50, SKINNY_MAX_K + 1)), MatmulVariant::Tiled);
    assert_eq!(kernel_for(MatmulVariant::Auto, &Gemm::nn(1, 64, 64)).name, MATMUL_SKINNY1.name);
    assert_eq!(kernel_for(MatmulVariant::Auto, &Gemm::nn(4, 64, 64)).name, MATMUL_SKINNY4.name);
    assert_eq!(kernel_for(MatmulVariant::Auto, &Gemm::nn(5, 64, 64)).name, MATMUL_SKINNY8.name);
    assert_eq!(kernel_for(MatmulVariant::Auto, &Gemm::nn(256, 128, 32)).name, MATMUL_TILED_NN4.name);
}

/// Every output's float operations are the same whatever the rows per workgroup: the three
/// entry points agree bit for bit with each other on the rows they share.
#[test]
fn skinny_row_counts_agree_bitwise() {
    let be = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for tb in [false, true] {
        let g = Gemm::nn(9, 70, 301).trans(false, tb);
        let (la, lb, _) = gemm_lens(&g);
        let a = random(&mut rng, la);
        let b = random(&mut rng, lb);
        let db = be.upload(&b).unwrap();
        be.set_matmul_variant(MatmulVariant::Skinny);
        let mut rows = Vec::new();
        for m in [9usize, 4, 1] {
            // The first m rows of A: m = 9 runs skinny8, 4 skinny4, 1 skinny1.
            let gm = Gemm::nn(m, g.n, g.k).trans(false, tb);
            let da = be.upload(&a[..m * g.k]).unwrap();
            let mut dc = be.zeros(m * g.n).unwrap();
            be.matmul(&gm, &da, &db, &mut dc).unwrap();
            rows.push(be.read(&dc).unwrap());
        }
        for r in &rows[1..] {
            let same = r.iter().zip(&rows[0]).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "tb={tb}: rows differ between skinny8 and a smaller row count");
        }
    }
}

#[test]
fn skinny_is_deterministic() {
    let g = Gemm::nn(7, 1001, 777).trans(false, true).scaled(0.5, 0.25);
    assert_deterministic(MatmulVariant::Skinny, &g, 6);
}

#[test]
fn vec4_kernels_are_chosen_when_aligned() {
    assert_eq!(kernel_for(MatmulVariant::Tiled, &Gemm::nn(64, 128, 32)).name, MATMUL_TILED_NN4.name);
    let tt = Gemm::nn(64, 128, 32).trans(true, true);
    assert_eq!(kernel_for(MatmulVariant::Tiled, &tt).name, MATMUL_TILED_TT4.name);
    // n = 10 (a 10-class output layer): generic.
    assert_eq!(kernel_for(MatmulVariant::Tiled, &Gemm::nn(64, 10, 32)).name, MATMUL_TILED.name);
    // A transposed needs m % 4 == 0.
    let tn = Gemm::nn(63, 128, 32).trans(true, false);
    assert_eq!(kernel_for(MatmulVariant::Tiled, &tn).name, MATMUL_TILED.name);
}

#[test]
fn degenerate_shapes() {
    let be = backend();
    for v in MatmulVariant::ALL {
        // k == 0: C = beta * C, and with beta == 0 a NaN C becomes 0.
        for (beta, nan_c) in [(0.25f32, false), (0.0, true)] {
            let g = Gemm::nn(5, 7, 0).scaled(0.5, beta);
            check(&be, v, &g, nan_c, 7).unwrap();
        }
        // m == 0 or n == 0: nothing is recorded, C untouched.
        let a = be.upload(&[1.0; 8]).unwrap();
        let b = be.upload(&[1.0; 8]).unwrap();
        let mut c = be.upload(&[3.0; 8]).unwrap();
        be.set_matmul_variant(v);
        be.matmul(&Gemm::nn(0, 4, 2), &a, &b, &mut c).unwrap();
        be.matmul(&Gemm::nn(4, 0, 2), &a, &b, &mut c).unwrap();
        assert_eq!(be.read(&c).unwrap(), vec![3.0; 8]);
    }
}

#[test]
fn shape_errors_are_reported() {
    let be = backend();
    let a = be.upload(&[1.0; 5]).unwrap();
    let b = be.upload(&[1.0; 6]).unwrap();
    let c = be.upload(&[0.0; 6]).unwrap();
    let err = matmul(&be.dev, MatmulVariant::Tiled, &Gemm::nn(2, 3, 3), &a.0, &b.0, &c.0);
    assert!(matches!(err, Err(BackendError::Shape { operand: "a", .. })), "{err:?}");
}

#[test]
fn grid_folds_rows_into_z() {
    assert_eq!(grid_2d(3, 5, 65535).unwrap(), [3, 5, 1]);
    let g = grid_2d(1, 200_000, 65535).unwrap();
    assert_eq!(g[1], 65535);
    assert!(g[1] as u64 * g[2] as u64 >= 200_000);
    assert!(grid_2d(70_000, 1, 65535).is_err());
}

#[test]
fn params_layout_matches_wgsl() {
    assert_eq!(std::mem::size_of::<MatmulParams>(), 48);
}

/// Shapes with few output tiles and a long k: every one takes the split-k path.
pub(super) fn splitk_cases() -> Vec<(Gemm, bool)> {
    let shapes: &[(usize, usize, usize)] = &[
        (1, 50, 8192),   // a 50-unit layer's bias-free weight gradient row
        (64, 63, 4099),  // ragged k: the last chunk is short
        (132, 68, 2048), // aligned: vec4 kernels, two row tiles
        (50, 1, 1030),
    ];
    every_transpose(shapes)
}

fn plan(g: &Gemm) -> Option<(usize, usize)> {
    let tiles = g.m.div_ceil(TILE_M as usize) * g.n.div_ceil(TILE_N as usize);
    split_count(g, tiles, 1, 1 << 30, 65535)
}

#[test]
fn splitk_is_planned_for_small_grids_and_long_k() {
    for (g, _) in splitk_cases() {
        let (s, kc) = plan(&g).unwrap_or_else(|| panic!("{g:?}: no split"));
        assert!(s >= 2 && kc % TILE_K == 0 && kc >= SPLITK_MIN_CHUNK, "{g:?}: {s} x {kc}");
        assert!((s - 1) * kc < g.k && s * kc >= g.k, "{g:?}: {s} x {kc}");
    }
    let (s, kc) = plan(&Gemm::nn(1, 50, 8192)).unwrap();
    assert_eq!((s, kc), (32, 256));
    // 1024x784 (56 tiles), k = 4096: 4 splits of 1024.
    assert_eq!(plan(&Gemm::nn(1024, 784, 4096)), Some((4, 1024)));
    // Big grids, short k: no split.
    assert_eq!(plan(&Gemm::nn(2048, 2048, 4096)), None);
    assert_eq!(plan(&Gemm::nn(64, 64, 300)), None);
    assert_eq!(plan(&Gemm::nn(64, 64, 0)), None);
    // The partials must fit one binding; the z extent the per-dimension limit.
    let g = Gemm::nn(1, 50, 8192);
    assert_eq!(split_count(&g, 1, 1, 50 * 4 * 4, 65535), Some((4, 2048)));
    assert_eq!(split_count(&g, 1, 1, 50 * 4, 65535), None);
    assert_eq!(split_count(&g, 1, 10_000, 1 << 30, 65535), Some((4, 2048)));
}

#[test]
fn splitk_matches_f64_reference() {
    let be = backend();
    let mut failures = Vec::new();
    for (idx, (g, nan_c)) in splitk_cases().iter().enumerate() {
        if let Err(e) = check(&be, MatmulVariant::Tiled, g, *nan_c, 2000 + idx as u64) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn splitk_is_deterministic() {
    let g = Gemm::nn(64, 63, 4099).trans(true, false).scaled(0.5, 0.25);
    assert_deterministic(MatmulVariant::Tiled, &g, 5);
}

/// Two runs of `g` with `variant` on the same seeded operands give the same bits.
fn assert_deterministic(variant: MatmulVariant, g: &Gemm, seed: u64) {
    let be = backend();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (la, lb, lc) = gemm_lens(g);
    let a = be.upload(&random(&mut rng, la)).unwrap();
    let b = be.upload(&random(&mut rng, lb)).unwrap();
    let c0 = random(&mut rng, lc);
    be.set_matmul_variant(variant);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut c = be.upload(&c0).unwrap();
        be.matmul(g, &a, &b, &mut c).unwrap();
        runs.push(be.read(&c).unwrap());
    }
    assert!(
        runs[0].iter().zip(&runs[1]).all(|(x, y)| x.to_bits() == y.to_bits()),
        "{variant:?} differs run to run"
    );
}

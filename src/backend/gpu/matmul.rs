//! Host side of `shaders/matmul.wgsl`: `C[m,n] = alpha * op(A) * op(B) + beta * C`.
//!
//! Two versions, both tested against an f64 reference and benched (`benches/matmul.rs`):
//! - [`MatmulVariant::Naive`]: one invocation per element of C.
//! - [`MatmulVariant::Tiled`]: 128x128 tiles of C per workgroup, 8x8 per invocation, slices of
//!   A and B double-buffered in workgroup memory. When the contiguous dimension of each stored
//!   operand and `n` are multiples of 4, a vec4 entry point specialised for the transposes is
//!   used; otherwise the generic scalar-load one.
//!
//! Split-k ([`split_count`]): when the tiled grid has few workgroups and k is long (the weight
//! gradients `dZᵀ·X` with k = batch), k is cut into `S` chunks dispatched as `S` groups of the
//! z dimension, each writing `alpha · op(A) op(B)` over its chunk to a device scratch buffer
//! `[S, m, n]`; `matmul_splitk_reduce` then sums the partials in a fixed order (deterministic)
//! and adds `beta · C`. `BATCHSCOPE_SPLITK=0` in the environment disables it (for A/B timing).

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels::{
    grid_1d, Kernel, MATMUL_NAIVE, MATMUL_SPLITK_REDUCE, MATMUL_TILED, MATMUL_TILED_NN4,
    MATMUL_TILED_NT4, MATMUL_TILED_TN4, MATMUL_TILED_TT4,
};
use crate::backend::{check_len, gemm_lens, BackendError, Gemm, Result};

/// Which matmul kernel [`record`] dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    Naive,
    Tiled,
}

impl MatmulVariant {
    pub const ALL: [MatmulVariant; 2] = [MatmulVariant::Naive, MatmulVariant::Tiled];

    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Naive => "naive",
            MatmulVariant::Tiled => "tiled",
        }
    }
}

/// Side of the naive kernel's square workgroup.
const NAIVE_WG: u32 = 16;
/// Rows and columns of C per tiled workgroup.
const TILE_M: u32 = 128;
const TILE_N: u32 = 128;

/// Depth of one tiled slice (`BK` in the shader); split-k chunks are multiples of it.
const TILE_K: usize = 8;
/// Split-k aims for about this many workgroups (tiles x splits), ~2 per SM of a large GPU.
const SPLITK_TARGET_GROUPS: usize = 256;
/// Every split-k chunk covers at least this much of k.
const SPLITK_MIN_CHUNK: usize = 256;

/// Mirrors `struct Params` in matmul.wgsl (48 bytes, a multiple of 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    alpha: f32,
    beta: f32,
    /// Split-k chunks in the z dimension (1: no split).
    splits: u32,
    /// Depth of one chunk (k when not split).
    kc: u32,
    _pad: [u32; 3],
}

const _: () = assert!(std::mem::size_of::<MatmulParams>() == 48);

/// Grid for `col_groups x row_groups` workgroups: row groups beyond `max_per_dim` fold into z
/// (the shader walks row blocks as `wid.y + wid.z * num_workgroups.y` and drops the excess).
pub fn grid_2d(col_groups: u64, row_groups: u64, max_per_dim: u32) -> Result<[u32; 3]> {
    let max = max_per_dim.max(1) as u64;
    let (gy, gz) = if row_groups <= max { (row_groups, 1) } else { (max, row_groups.div_ceil(max)) };
    if col_groups > max || gz > max {
        return Err(BackendError::Invalid {
            op: "matmul",
            message: format!("grid of {col_groups}x{row_groups} workgroups exceeds {max} per dimension"),
        });
    }
    Ok([col_groups as u32, gy as u32, gz as u32])
}

/// Split-k plan for a tiled product: `(splits, chunk)` with `splits > 1`, or `None` to run the
/// plain kernel. `tiles` is the number of 128x128 output tiles, `row_fold` the z extent of the
/// plain grid; `max_binding` (bytes) bounds the `[splits, m, n]` partial buffer and `max_dim`
/// the z extent `splits * row_fold`.
pub fn split_count(
    g: &Gemm,
    tiles: usize,
    row_fold: usize,
    max_binding: u64,
    max_dim: u32,
) -> Option<(usize, usize)> {
    if tiles == 0 || tiles * 2 > SPLITK_TARGET_GROUPS {
        return None;
    }
    let mn = g.m.checked_mul(g.n)?;
    let mut s = 1usize;
    // Powers of two while the grid stays near the target and every chunk keeps >= 256 of k.
    while tiles * s * 2 <= SPLITK_TARGET_GROUPS && g.k >= SPLITK_MIN_CHUNK * s * 2 {
        s *= 2;
    }
    // Fewer splits while the partials exceed a binding, 32-bit indexing or the z limit.
    let index_limit = u32::MAX as u64 - 4 * TILE_N as u64;
    while s > 1
        && ((s * mn) as u64 * 4 > max_binding
            || (s * mn) as u64 > index_limit
            || (s * row_fold) as u64 > max_dim as u64)
    {
        s /= 2;
    }
    if s < 2 || g.k < 4 * TILE_K * s {
        return None;
    }
    let kc = g.k.div_ceil(s).next_multiple_of(TILE_K);
    let s = g.k.div_ceil(kc);
    (s > 1).then_some((s, kc))
}

fn splitk_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BATCHSCOPE_SPLITK").map_or(true, |v| v != "0"))
}

/// The tiled entry point for `g`: a vec4 one when every vec4 the kernel touches is aligned and
/// wholly inside or outside its matrix, else the generic one.
fn tiled_kernel(g: &Gemm) -> Kernel {
    let a_contig = if g.trans_a { g.m } else { g.k };
    let b_contig = if g.trans_b { g.k } else { g.n };
    if !(a_contig.is_multiple_of(4) && b_contig.is_multiple_of(4) && g.n.is_multiple_of(4)) {
        return MATMUL_TILED;
    }
    match (g.trans_a, g.trans_b) {
        (false, false) => MATMUL_TILED_NN4,
        (false, true) => MATMUL_TILED_NT4,
        (true, false) => MATMUL_TILED_TN4,
        (true, true) => MATMUL_TILED_TT4,
    }
}

/// The entry point [`record`] would dispatch (for reports and tests).
pub fn kernel_for(v: MatmulVariant, g: &Gemm) -> Kernel {
    match v {
        MatmulVariant::Naive => MATMUL_NAIVE,
        MatmulVariant::Tiled => tiled_kernel(g),
    }
}

/// Record `c = alpha * op(a) * op(b) + beta * c` (see [`Gemm`]); `a: [m,k]` (or `[k,m]`),
/// `b: [k,n]` (or `[n,k]`), `c: [m,n]`. `m == 0 || n == 0` records nothing; `k == 0` scales C.
pub fn record(
    dev: &GpuDevice,
    v: MatmulVariant,
    g: &Gemm,
    a: &RawBuf,
    b: &RawBuf,
    c: &RawBuf,
) -> Result<()> {
    let (la, lb, lc) = gemm_lens(g);
    check_len("matmul", "a", a.len(), la)?;
    check_len("matmul", "b", b.len(), lb)?;
    check_len("matmul", "c", c.len(), lc)?;
    if g.m == 0 || g.n == 0 {
        return Ok(());
    }
    // Indices are u32 in the shader; every linear index must fit (plus tile overhang).
    let limit = u32::MAX as usize - 4 * TILE_N as usize;
    if [la, lb, lc, g.m, g.n, g.k].iter().any(|&x| x > limit) {
        return Err(BackendError::Invalid {
            op: "matmul",
            message: format!("{}x{}x{} exceeds 32-bit shader indexing", g.m, g.n, g.k),
        });
    }
    let mut params = MatmulParams {
        m: g.m as u32,
        n: g.n as u32,
        k: g.k as u32,
        trans_a: g.trans_a as u32,
        trans_b: g.trans_b as u32,
        alpha: g.alpha,
        beta: g.beta,
        splits: 1,
        kc: g.k as u32,
        _pad: [0; 3],
    };
    let max = dev.ctx.limits.max_compute_workgroups_per_dimension;
    let (kernel, tile_m, tile_n) = match v {
        MatmulVariant::Naive => (MATMUL_NAIVE, NAIVE_WG, NAIVE_WG),
        MatmulVariant::Tiled => (tiled_kernel(g), TILE_M, TILE_N),
    };
    let col_groups = g.n.div_ceil(tile_n as usize);
    let row_groups = g.m.div_ceil(tile_m as usize);
    let grid = grid_2d(col_groups as u64, row_groups as u64, max)?;
    if v == MatmulVariant::Tiled && splitk_enabled() {
        let limits = &dev.ctx.limits;
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let tiles = col_groups * row_groups;
        if let Some((splits, kc)) = split_count(g, tiles, grid[2] as usize, max_binding, max) {
            let partials = dev.splitk_scratch(splits * g.m * g.n)?;
            params.splits = splits as u32;
            params.kc = kc as u32;
            params.beta = 0.0;
            let split_grid = [grid[0], grid[1], grid[2] * splits as u32];
            dev.dispatch(&kernel, &params, &[a, b, &partials], split_grid)?;
            params.beta = g.beta;
            return dev.dispatch(
                &MATMUL_SPLITK_REDUCE,
                &params,
                &[&partials, c],
                grid_1d(g.m * g.n, max),
            );
        }
    }
    dev.dispatch(&kernel, &params, &[a, b, c], grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::GpuBackend;
    use crate::backend::Backend;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn backend() -> GpuBackend {
        match GpuBackend::new(None) {
            Ok(b) => b,
            Err(e) => panic!("no GPU backend for the matmul tests: {e}"),
        }
    }

    fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
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
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (la, lb, lc) = gemm_lens(g);
        let a = random(&mut rng, la);
        let b = random(&mut rng, lb);
        let c = if nan_c { vec![f32::NAN; lc] } else { random(&mut rng, lc) };
        let want = reference(g, &a, &b, &c);
        let da = be.upload(&a).map_err(|e| e.to_string())?;
        let db = be.upload(&b).map_err(|e| e.to_string())?;
        let mut dc = be.upload(&c).map_err(|e| e.to_string())?;
        be.set_matmul_variant(v);
        be.matmul(g, &da, &db, &mut dc).map_err(|e| e.to_string())?;
        let got = be.read(&dc).map_err(|e| e.to_string())?;
        let kernel = kernel_for(v, g).name;
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
    fn cases() -> Vec<(Gemm, bool)> {
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
        let mut out = Vec::new();
        for (si, &(m, n, k)) in shapes.iter().enumerate() {
            for (ti, &(ta, tb)) in
                [(false, false), (false, true), (true, false), (true, true)].iter().enumerate()
            {
                let g = Gemm::nn(m, n, k).trans(ta, tb);
                // Alternate the scaling so each shape sees both forms across the transposes.
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
        let err = record(&be.dev, MatmulVariant::Tiled, &Gemm::nn(2, 3, 3), &a.0, &b.0, &c.0);
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
    fn shader_validates_with_naga() {
        let src = crate::backend::gpu::kernels::Shader::Matmul.source();
        let module =
            naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        for k in [
            MATMUL_NAIVE,
            MATMUL_TILED,
            MATMUL_TILED_NN4,
            MATMUL_TILED_NT4,
            MATMUL_TILED_TN4,
            MATMUL_TILED_TT4,
            MATMUL_SPLITK_REDUCE,
        ] {
            assert!(module.entry_points.iter().any(|e| e.name == k.entry), "{}", k.entry);
        }
    }

    #[test]
    fn params_layout_matches_wgsl() {
        assert_eq!(std::mem::size_of::<MatmulParams>(), 48);
    }

    /// Shapes with few output tiles and a long k: every one takes the split-k path.
    fn splitk_cases() -> Vec<(Gemm, bool)> {
        let shapes: &[(usize, usize, usize)] = &[
            (1, 50, 8192),   // a 50-unit layer's bias-free weight gradient row
            (64, 63, 4099),  // ragged k: the last chunk is short
            (132, 68, 2048), // aligned: vec4 kernels, two row tiles
            (50, 1, 1030),
        ];
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
        let be = backend();
        let g = Gemm::nn(64, 63, 4099).trans(true, false).scaled(0.5, 0.25);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (la, lb, lc) = gemm_lens(&g);
        let a = be.upload(&random(&mut rng, la)).unwrap();
        let b = be.upload(&random(&mut rng, lb)).unwrap();
        let c0 = random(&mut rng, lc);
        be.set_matmul_variant(MatmulVariant::Tiled);
        let mut runs = Vec::new();
        for _ in 0..2 {
            let mut c = be.upload(&c0).unwrap();
            be.matmul(&g, &a, &b, &mut c).unwrap();
            runs.push(be.read(&c).unwrap());
        }
        assert!(runs[0].iter().zip(&runs[1]).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

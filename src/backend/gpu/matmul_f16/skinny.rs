//! Host side of `matmul_f16_skinny` (shaders/matmul_f16.wgsl): the f16 product with f32 sums
//! for a side of C too short for a tile, [`super::HalfKernel::Skinny`].
//!
//! The packed kernel's 64x64 tile and the cooperative kernels' 16x16 ones are mostly empty for
//! the output layer's products (`z [B, 10] = a · Wᵀ`, `gW [10, in] = dzᵀ · a`) and for every
//! product of a batch of a few examples, and their grids are a handful of workgroups (one for
//! 32x10x1024, sixteen for 10x1024x4096), each walking all of k: on an H200 332 µs and 1.5 ms.
//! Here a workgroup owns [`ROWS`] rows x `256 / k_lanes` columns of C and each column's k is
//! walked by `k_lanes` lanes ([`k_lanes`]), so the grid grows with the output and k is cut
//! into short runs, summed in f32 and added by a fixed tree (deterministic).

use super::super::device::{GpuDevice, RawBuf};
use super::super::kernels::{MATMUL_F16_SKINNY, WG_1D};
use super::super::matmul::grid_2d;
use super::HalfParams;
use crate::backend::{Gemm, Result};

/// Rows of C per workgroup (`SK_RM` in the shader).
pub const ROWS: usize = 8;

/// The shorter side of C up to which [`super::choose`] takes this kernel where no cooperative
/// one runs: a batch of up to 32 examples, or an output layer of up to 32 classes (the f32
/// skinny kernel reaches 128 rows; this one has not been timed past 32 on a GPU).
pub const MAX_SIDE: usize = 32;

/// The shorter side of C up to which the autotuner times this kernel as well.
pub const TUNE_MAX_SIDE: usize = 128;

/// Workgroups below which [`k_lanes`] cuts k finer: about two per multiprocessor of a large GPU.
const FEW_WORKGROUPS: usize = 256;

/// Whether the rule takes this kernel for `g` (where no cooperative kernel runs it): a short
/// side, and a grid within `max_per_dim` workgroups per dimension (about 500 000 columns of a
/// `[n, k]` B at 8 per workgroup; the packed kernel, 64 per workgroup, runs wider ones).
pub fn suits(g: &Gemm, max_per_dim: u32) -> bool {
    g.m.min(g.n) <= MAX_SIDE && grid(g, 5, max_per_dim).is_ok()
}

/// The lanes per column of C for `g` (8 to 256, a power of two; `256 / k_lanes` columns per
/// workgroup): columns per workgroup start at 8 where B is stored `[n, k]` (32 lanes read 64
/// contiguous bytes of a row of B), 32 where it is stored `[k, n]` (32 columns read 64), fewer
/// when n is smaller; then, while the grid has fewer than 256 workgroups and every lane would
/// still walk at least 8 values of k, the columns halve and the lanes double (down to one
/// column, or 8 where B is stored `[k, n]`). A pure function of the shape.
pub fn k_lanes(g: &Gemm) -> usize {
    let threads = WG_1D as usize;
    let widest = if g.trans_b { 8 } else { 32 };
    let mut cols = g.n.max(1).next_power_of_two().min(widest);
    let narrowest = if g.trans_b { 1 } else { cols.min(8) };
    let workgroups = |cols: usize| g.n.div_ceil(cols) * g.m.div_ceil(ROWS);
    while cols > narrowest && workgroups(cols) < FEW_WORKGROUPS && g.k >= 16 * (threads / cols) {
        cols /= 2;
    }
    threads / cols
}

/// The grid of `g` (epilogue `epi`): column blocks in x, row blocks in y (folded into z past
/// the limit), and for epilogue 5 the col_sum workgroups' rows after them.
pub fn grid(g: &Gemm, epi: u32, max_per_dim: u32) -> Result<[u32; 3]> {
    let cols = WG_1D as usize / k_lanes(g);
    let (col_blocks, row_blocks) = (g.n.div_ceil(cols), g.m.div_ceil(ROWS));
    let sum_rows = if epi == 5 { g.m.div_ceil(32).div_ceil(col_blocks) } else { 0 };
    grid_2d(col_blocks as u64, (row_blocks + sum_rows) as u64, max_per_dim)
}

/// Record the product of `p` (checked by the caller, `m, n > 0`) with its epilogue bindings.
pub(super) fn dispatch(
    dev: &GpuDevice,
    g: &Gemm,
    p: &HalfParams,
    [a, b, c]: [&RawBuf; 3],
    [e_in, e_out, h, state]: &[RawBuf; 4],
) -> Result<()> {
    let grid = grid(g, p.epi, dev.ctx.limits.max_compute_workgroups_per_dimension)?;
    let p = HalfParams { k_lanes: k_lanes(g) as u32, ..*p };
    dev.dispatch(&MATMUL_F16_SKINNY, &p, &[a, b, c, e_in, e_out, h, state], grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_grow_with_k_while_the_grid_is_small() {
        let nt = |m, n, k| Gemm::nn(m, n, k).trans(false, true);
        let tn = |m, n, k| Gemm::nn(m, n, k).trans(true, false);
        // The output layer at B = 32 and 4096: 8 columns of 32 lanes, then more lanes.
        assert_eq!(k_lanes(&nt(32, 10, 1024)), 128);
        assert_eq!(k_lanes(&nt(4096, 10, 1024)), 32);
        // Its weight gradient: columns of B stored [k, n], never fewer than 8 per workgroup.
        assert_eq!(k_lanes(&tn(10, 1024, 4096)), 32);
        assert_eq!(k_lanes(&tn(10, 1024, 32)), 8);
        // One column: every lane on it; a short k keeps the first choice.
        assert_eq!(k_lanes(&nt(1, 1, 4096)), 256);
        assert_eq!(k_lanes(&Gemm::nn(8, 1, 10)), 256);
        assert_eq!(k_lanes(&Gemm::nn(8, 3, 10)), 64);
        assert_eq!(k_lanes(&Gemm::nn(8, 1024, 10)), 8);
        for g in [nt(3, 17, 5), tn(17, 10, 1000), Gemm::nn(1, 1, 1), Gemm::nn(4096, 10, 0)] {
            let kl = k_lanes(&g);
            assert!(kl.is_power_of_two() && (8..=256).contains(&kl), "{g:?}: {kl}");
        }
    }

    #[test]
    fn the_grid_covers_c_and_the_col_sum_workgroups() {
        let g = Gemm::nn(10, 1024, 4096).trans(true, false);
        // 8 columns per workgroup, 2 row blocks, and one row for ceil(10 / 32) col_sum groups.
        assert_eq!(grid(&g, 0, 65535).expect("grid"), [128, 2, 1]);
        assert_eq!(grid(&g, 5, 65535).expect("grid"), [128, 3, 1]);
        let tall = Gemm::nn(1 << 20, 10, 64).trans(false, true);
        let [x, y, z] = grid(&tall, 0, 65535).expect("grid");
        assert!(x == 2 && y as usize * z as usize >= (1 << 20) / ROWS, "{x} {y} {z}");
    }
}

//! Split-k planning of the tiled products (how many chunks of k, and whether to split at all),
//! and the test the fused weight-gradient step uses to know a product is summed whole.

use super::super::launch::DepthWalk;
use super::{grid_2d, tiled_kernel, GpuDevice, Launch, TILE_K, TILE_N};
use crate::backend::{Gemm, Result};

/// Split-k aims for about this many workgroups (tiles x splits), ~2 per SM of a large GPU.
const SPLITK_TARGET_GROUPS: usize = 256;
/// Every split-k chunk covers at least this much of k.
pub(super) const SPLITK_MIN_CHUNK: usize = 256;

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

pub(super) fn splitk_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| super::super::choices::switch("BATCHSCOPE_SPLITK", true))
}

/// The grid of `launch` for `g` (column blocks, row blocks folded into y and z).
pub(super) fn launch_grid(dev: &GpuDevice, launch: &Launch, g: &Gemm) -> Result<[u32; 3]> {
    let max = dev.ctx.limits.max_compute_workgroups_per_dimension;
    let col_groups = g.n.div_ceil(launch.tile_n as usize);
    let row_groups = g.m.div_ceil(launch.tile_m as usize);
    grid_2d(col_groups as u64, row_groups as u64, max)
}

/// The split-k plan (splits, chunk of k) [`matmul`] follows for a splittable `launch` of `g`
/// on `grid`, or `None` to run it whole.
pub(super) fn split_plan(
    dev: &GpuDevice,
    launch: &Launch,
    g: &Gemm,
    grid: [u32; 3],
) -> Option<(usize, usize)> {
    let limits = &dev.ctx.limits;
    let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    let tiles = g.n.div_ceil(launch.tile_n as usize) * g.m.div_ceil(launch.tile_m as usize);
    let max = limits.max_compute_workgroups_per_dimension;
    split_count(g, tiles, grid[2] as usize, max_binding, max)
}

/// Whether [`matmul`] runs `g` under `launch` with a base tiled entry point of matmul.wgsl and
/// no split: every element one fma chain over k from 0 in order (padded to a multiple of BK = 8
/// with zero products), the arithmetic the fused weight-gradient step
/// (`shaders/wgrad_update.wgsl`) reproduces bit for bit. The skinny kernel (k in 8 lanes), the
/// autotuner's tile family and split-k products sum in other orders.
pub fn is_whole_tiled(dev: &GpuDevice, launch: &Launch, g: &Gemm) -> bool {
    if launch.kernel.name != tiled_kernel(g).name {
        return false;
    }
    match launch_grid(dev, launch, g) {
        Ok(grid) => !(launch.splitk && splitk_enabled()) || split_plan(dev, launch, g, grid).is_none(),
        Err(_) => false,
    }
}

/// How an invocation of `launch` walks the depth of `g` ([`DepthWalk`]: what the loop cap
/// counts): the skinny kernels by k-lanes (32 with B transposed, else 8), the tile family's by
/// its slices, the base tiled kernels 8 of k a step.
pub(super) fn depth_walk(launch: &Launch, g: &Gemm) -> DepthWalk {
    match launch.kernel.shader {
        _ if super::is_skinny(launch) => DepthWalk::Skinny { lanes: if g.trans_b { 32 } else { 8 } },
        super::super::kernels::Shader::MatmulTile(cfg) => DepthWalk::FamilyTile { bk: cfg.bk },
        _ => DepthWalk::Tiled,
    }
}

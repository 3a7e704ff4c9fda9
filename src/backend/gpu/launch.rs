//! Launch helpers shared by the host wrappers: 1-D grids of [`WG_1D`] invocations, the
//! 32-bit range checks of kernel parameters, and typed uploads and reads of 4-byte elements.

use bytemuck::Pod;

use super::device::{GpuDevice, RawBuf};
use super::kernels::{Kernel, WG_1D};
use crate::backend::{BackendError, Result};

/// Workgroup grid for `n` invocations of a 1-D kernel of `WG_1D` threads, folded into two
/// dimensions when it exceeds `max_per_dim` groups. Shaders recover the linear index with the
/// prelude's `lin()`: `gid.x + gid.y * num_workgroups.x * WG_1D`.
pub fn grid_1d(n: usize, max_per_dim: u32) -> [u32; 3] {
    let groups = n.div_ceil(WG_1D as usize).max(1) as u64;
    let max = max_per_dim.max(1) as u64;
    if groups <= max {
        [groups as u32, 1, 1]
    } else {
        [max as u32, groups.div_ceil(max) as u32, 1]
    }
}

/// Refuses a kernel whose invocations run `iterations` loop iterations on an adapter that stops
/// them short ([`super::context::AdapterSummary::loop_iteration_limit`], confirmed by
/// [`measured_loop_limit`]): a wrong result becomes an error naming the shape (`what`) and the
/// way out.
pub fn check_loop_budget(dev: &GpuDevice, op: &'static str, iterations: u64, what: &str) -> Result<()> {
    let candidate = dev.ctx.summary.loop_iteration_limit();
    if candidate.is_none_or(|l| iterations <= l) {
        return Ok(());
    }
    match measured_loop_limit(dev)? {
        Some(limit) if iterations > limit => Err(BackendError::Invalid {
            op,
            message: format!(
                "{what} takes {iterations} loop iterations per invocation, and {} stops each invocation after {limit} (its results would be wrong); use --backend cpu",
                dev.ctx.summary.name
            ),
        }),
        _ => Ok(()),
    }
}

/// Whether `iterations` per invocation stay within the cap the adapter may have, without
/// measuring it: the choice between a fused kernel and the unfused ones of the same bits (past
/// a possible cap the unfused ones run, which costs only speed where the cap is not real).
pub fn within_loop_budget(dev: &GpuDevice, iterations: u64) -> bool {
    dev.ctx.summary.loop_iteration_limit().is_none_or(|l| iterations <= l)
}

/// Loop iterations, on Debian 12's llvmpipe, of an invocation that walks a product's depth
/// `k` in one pass, by kernel (each measured there: the first `k` each cuts short is that of
/// the count past 65 535): the tiled f32 kernels ⌈k/8⌉ + 1 (524 272 whole, 524 288 cut); a
/// skinny kernel of `lanes` k-lanes ⌈k/lanes⌉ + lanes + 8 (its lane sum and row loops; f32 with
/// 8 lanes: 524 000 whole, 524 272 cut; with 32: 2 090 000 whole, 2 100 000 cut); the packed
/// f16 kernel 18 per 16 of k (its tile loads and multiply-adds count: 58 240 whole, 58 256
/// cut); a kernel of the tile family (`matmul_tile.wgsl`, slices of `bk`) bk + 2 per bk of k
/// (bk 8: 52 424 whole, 52 432 cut; bk 16: 58 240 and 58 256). Past the cap the product is
/// refused, never cut short.
#[derive(Clone, Copy, Debug)]
pub enum DepthWalk {
    Tiled,
    FamilyTile { bk: u32 },
    Skinny { lanes: usize },
    PackedHalf,
}

impl DepthWalk {
    pub fn iterations(self, k: usize) -> u64 {
        let k = k as u64;
        match self {
            DepthWalk::Tiled => k.div_ceil(8) + 1,
            DepthWalk::FamilyTile { bk } => {
                let bk = u64::from(bk.max(1));
                (bk + 2) * k.div_ceil(bk) + 1
            }
            DepthWalk::Skinny { lanes } => {
                let lanes = lanes.max(1) as u64;
                k.div_ceil(lanes) + lanes + 8
            }
            DepthWalk::PackedHalf => 18 * k.div_ceil(16) + 1,
        }
    }
}

/// [`check_loop_budget`] of `g` walked `walk`'s way over depth `k` (all of g.k, or a split-k
/// chunk of it) in each invocation.
pub fn check_depth_walk(
    dev: &GpuDevice,
    op: &'static str,
    g: &crate::backend::Gemm,
    k: usize,
    walk: DepthWalk,
) -> Result<()> {
    let what = format!("the product {}x{}x{} (depth {k} in one pass)", g.m, g.n, g.k);
    check_loop_budget(dev, op, walk.iterations(k), &what)
}

/// Loop iterations of one invocation of a column sum over `rows` rows in col_sum's order
/// (`shaders/include/col_tree.wgsl`): its lane walks every 8th row, then the tree's 3 levels,
/// each loop counted with its final test.
pub fn col_sum_iterations(rows: usize) -> u64 {
    (rows as u64).div_ceil(8) + 1 + 4
}

/// [`check_loop_budget`] of a column sum over `rows` rows (col_sum and the kernels that run its
/// workgroups).
pub fn check_col_sum_budget(dev: &GpuDevice, op: &'static str, rows: usize) -> Result<()> {
    check_loop_budget(dev, op, col_sum_iterations(rows), &format!("a column sum over {rows} rows"))
}

/// The adapter's loop cap where it has one, measured once per driver in a process: a naive
/// 1×1×(cap + 2) product of ones, one invocation walking k, reads cap + 2 in full and cap where
/// the driver stops it (Debian 12's llvmpipe: 65 535; sid's Mesa 26: 70 000 of 70 000).
pub fn measured_loop_limit(dev: &GpuDevice) -> Result<Option<u64>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static MEASURED: OnceLock<Mutex<HashMap<String, Option<u64>>>> = OnceLock::new();
    let Some(cap) = dev.ctx.summary.loop_iteration_limit() else { return Ok(None) };
    let key = format!("{} {}", dev.ctx.summary.name, dev.ctx.summary.driver_info);
    let cache = MEASURED.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(&known) = cache.lock().ok().and_then(|m| m.get(&key).copied()).as_ref() {
        return Ok(known);
    }
    let k = cap as usize + 2;
    let ones = upload_pod(dev, "the loop probe's operand", &vec![1.0f32; k])?;
    let out = upload_pod(dev, "the loop probe's result", &[0.0f32])?;
    let g = crate::backend::Gemm::nn(1, 1, k);
    super::matmul::record_probe(dev, &g, &ones, &ones, &out)?;
    let got: Vec<f32> = read_pod(dev, &out)?;
    let limited = got.first().is_none_or(|&v| (v as u64) < k as u64);
    let measured = limited.then_some(cap);
    if let Ok(mut m) = cache.lock() {
        m.insert(key, measured);
    }
    Ok(measured)
}

/// Record one dispatch of `kern` over `n` invocations (nothing when `n == 0`).
pub fn launch_1d<P: Pod>(
    dev: &GpuDevice,
    kern: &Kernel,
    n: usize,
    p: &P,
    bufs: &[&RawBuf],
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let grid = grid_1d(n, dev.ctx.limits.max_compute_workgroups_per_dimension);
    dev.dispatch(kern, p, bufs, grid)
}

/// `v` as a kernel's `u32` parameter, or an error naming the op and the quantity.
pub fn u32_of(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| BackendError::Invalid {
        op,
        message: format!("{what} = {v} exceeds the 32-bit index range of the kernels"),
    })
}

/// A new buffer holding `data` (`what` names it in errors): 4-byte elements (f32, u32).
pub fn upload_pod<T: Pod>(dev: &GpuDevice, what: &'static str, data: &[T]) -> Result<RawBuf> {
    let b = dev.alloc(what, data.len())?;
    dev.write_bytes(&b, bytemuck::cast_slice(data))?;
    Ok(b)
}

/// The 4-byte elements (f32, u32) of `src`, read back (a synchronisation point).
pub fn read_pod<T: Pod>(dev: &GpuDevice, src: &RawBuf) -> Result<Vec<T>> {
    let bytes = dev.read_bytes(src)?;
    Ok(bytes.chunks_exact(4).map(bytemuck::pod_read_unaligned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_every_element() {
        for &n in &[0usize, 1, 255, 256, 257, 65535 * 256, 65535 * 256 + 1, 1 << 30] {
            let g = grid_1d(n, 65535);
            let total = g[0] as u64 * g[1] as u64 * WG_1D as u64;
            assert!(total >= n as u64, "n={n} grid={g:?}");
            assert!(g[0] <= 65535 && g[1] <= 65535);
        }
    }
}

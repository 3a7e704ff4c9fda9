//! Host wrapper of `shaders/reduce.wgsl`: the deterministic reductions sum, dot, sum_sq (two
//! passes: `reduce_partial`, `reduce_final`) and col_sum. Lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels::{self as k, WG_1D};
use super::launch::u32_of;
use crate::backend::Result;

/// Pass-1 workgroups of a reduction, at most (fixed so results do not depend on the device).
const REDUCE_GROUPS_MAX: usize = 1024;

/// Mirrors `struct Red` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RedParams {
    n: u32,
    op: u32,
    groups: u32,
    slot: u32,
    alpha: f32,
    beta: f32,
    _pad: [u32; 2],
}

/// What a two-pass reduction sums (`op` in the shader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReduceOp {
    Sum = 0,
    Dot = 1,
    SumSq = 2,
}

/// `out[slot] = Σ term(i)` for `i < n`, deterministic (fixed tree, two passes).
fn reduce(
    dev: &GpuDevice,
    op: ReduceOp,
    n: usize,
    x: &RawBuf,
    y: &RawBuf,
    out: &RawBuf,
    slot: usize,
) -> Result<()> {
    let groups = n.div_ceil(WG_1D as usize).clamp(1, REDUCE_GROUPS_MAX);
    let scratch = dev.scratch(REDUCE_GROUPS_MAX)?;
    let p1 = RedParams {
        n: u32_of("reduce", "n", n)?,
        op: op as u32,
        groups: groups as u32,
        slot: 0,
        alpha: 1.0,
        beta: 0.0,
        _pad: [0; 2],
    };
    dev.dispatch(&k::REDUCE_PARTIAL, &p1, &[x, y, &scratch], [groups as u32, 1, 1])?;
    let p2 = RedParams { n: groups as u32, slot: u32_of("reduce", "slot", slot)?, ..p1 };
    dev.dispatch(&k::REDUCE_FINAL, &p2, &[&scratch, out], [1, 1, 1])
}

/// `out[slot] = Σ_{i<n} x[i]`.
pub fn sum(dev: &GpuDevice, n: usize, x: &RawBuf, out: &RawBuf, slot: usize) -> Result<()> {
    reduce(dev, ReduceOp::Sum, n, x, x, out, slot)
}

/// `out[slot] = Σ_{i<n} x[i] y[i]`.
pub fn dot(dev: &GpuDevice, n: usize, x: &RawBuf, y: &RawBuf, out: &RawBuf, slot: usize) -> Result<()> {
    reduce(dev, ReduceOp::Dot, n, x, y, out, slot)
}

/// `out[slot] = Σ_{i<n} x[i]²`.
pub fn sum_sq(dev: &GpuDevice, n: usize, x: &RawBuf, out: &RawBuf, slot: usize) -> Result<()> {
    reduce(dev, ReduceOp::SumSq, n, x, x, out, slot)
}

/// `out[c] = alpha Σ_r x[r, c] + beta out[c]` for `x [rows, cols]`.
pub fn col_sum(
    dev: &GpuDevice,
    rows: usize,
    cols: usize,
    alpha: f32,
    x: &RawBuf,
    beta: f32,
    out: &RawBuf,
) -> Result<()> {
    if cols == 0 {
        return Ok(());
    }
    let p = RedParams {
        n: u32_of("col_sum", "rows", rows)?,
        op: 0,
        groups: u32_of("col_sum", "cols", cols)?,
        slot: 0,
        alpha,
        beta,
        _pad: [0; 2],
    };
    let gx = u32_of("col_sum", "column blocks", cols.div_ceil(32))?;
    dev.dispatch(&k::COL_SUM, &p, &[x, out], [gx, 1, 1])
}

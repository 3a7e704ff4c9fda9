//! The reduce family (CPU twin of `shaders/reduce.wgsl`): deterministic reductions `sum`, `dot`,
//! `sum_sq`, written into `out[slot]`, and `col_sum`.
//!
//! The input is cut into fixed blocks of [`BLOCK`] elements; each block is summed in f64 over
//! [`LANES`] interleaved accumulators (lane `l` takes elements `i ≡ l mod LANES`), the lanes are
//! added in order, then the block sums are added in block order. Blocks may run on any thread,
//! so the result does not depend on the thread count.

use rayon::prelude::*;

use super::par::PAR_MIN;
use crate::backend::{check_len, Result};

/// Elements per block (a multiple of [`LANES`]).
pub const BLOCK: usize = 1 << 12;
/// Independent accumulators per block, so the f64 adds vectorise.
pub const LANES: usize = 8;

/// Σ f(i) over one block, `i` in `0..len`, in the fixed lane order.
#[inline]
fn block_sum(len: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let full = len / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    for (l, i) in (full..len).enumerate() {
        acc[l] += f(i);
    }
    acc.iter().sum()
}

/// Σ_{i<n} f(i) in the blocked order described in the module docs.
fn blocked_sum(n: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    let blocks = n.div_ceil(BLOCK);
    let one = |b: usize| {
        let start = b * BLOCK;
        block_sum(BLOCK.min(n - start), |i| f(start + i))
    };
    let partial: Vec<f64> = if n > PAR_MIN {
        (0..blocks).into_par_iter().map(one).collect()
    } else {
        (0..blocks).map(one).collect()
    };
    partial.iter().sum()
}

fn check_slot(op: &'static str, out: &[f32], slot: usize) -> Result<()> {
    check_len(op, "out", out.len(), slot.saturating_add(1))
}

/// `out[slot] = Σ_{i<n} x[i]` for `x: [n]`.
pub fn sum(n: usize, x: &[f32], out: &mut [f32], slot: usize) -> Result<()> {
    check_len("sum", "x", x.len(), n)?;
    check_slot("sum", out, slot)?;
    let x = &x[..n];
    out[slot] = blocked_sum(n, |i| x[i] as f64) as f32;
    Ok(())
}

/// `out[slot] = Σ_{i<n} x[i] * y[i]` for `x, y: [n]`.
pub fn dot(n: usize, x: &[f32], y: &[f32], out: &mut [f32], slot: usize) -> Result<()> {
    check_len("dot", "x", x.len(), n)?;
    check_len("dot", "y", y.len(), n)?;
    check_slot("dot", out, slot)?;
    let (x, y) = (&x[..n], &y[..n]);
    out[slot] = blocked_sum(n, |i| x[i] as f64 * y[i] as f64) as f32;
    Ok(())
}

/// `out[slot] = Σ_{i<n} x[i]²` for `x: [n]`.
pub fn sum_sq(n: usize, x: &[f32], out: &mut [f32], slot: usize) -> Result<()> {
    check_len("sum_sq", "x", x.len(), n)?;
    check_slot("sum_sq", out, slot)?;
    let x = &x[..n];
    out[slot] = blocked_sum(n, |i| {
        let v = x[i] as f64;
        v * v
    }) as f32;
    Ok(())
}

/// Rows per block of [`col_sum`]: each block's column sums are accumulated in f64 in row order,
/// then the blocks are added in block order.
pub const COL_SUM_ROWS: usize = 64;

/// `out[c] = alpha * sum_r x[r, c] + beta * out[c]` for `x: [rows, cols]`, `out: [cols]`.
///
/// The sum over rows is accumulated in f64: in row order within fixed blocks of
/// [`COL_SUM_ROWS`] rows (one contiguous stretch of memory each, which the pool reads in
/// parallel), then the block sums in block order. The blocks depend on the shape alone, so the
/// result does not depend on the thread count. With `beta == 0` the old `out` is not read
/// (NaN included), as in `matmul`.
pub fn col_sum(
    rows: usize,
    cols: usize,
    alpha: f32,
    x: &[f32],
    beta: f32,
    out: &mut [f32],
) -> Result<()> {
    check_len("col_sum", "x", x.len(), rows * cols)?;
    check_len("col_sum", "out", out.len(), cols)?;
    if cols == 0 {
        return Ok(());
    }
    let x = &x[..rows * cols];
    // Column sums of one block of whole rows, in row order.
    let block = |xb: &[f32]| {
        let mut acc = vec![0.0f64; cols];
        for xr in xb.chunks_exact(cols) {
            acc.iter_mut().zip(xr).for_each(|(a, &v)| *a += v as f64);
        }
        acc
    };
    let span = COL_SUM_ROWS * cols;
    let partial: Vec<Vec<f64>> = if rows * cols > PAR_MIN {
        x.par_chunks(span).map(block).collect()
    } else {
        x.chunks(span).map(block).collect()
    };
    let mut total = vec![0.0f64; cols];
    for p in &partial {
        total.iter_mut().zip(p).for_each(|(t, &v)| *t += v);
    }
    for (o, a) in out[..cols].iter_mut().zip(&total) {
        let old = if beta == 0.0 { 0.0 } else { beta as f64 * *o as f64 };
        *o = (alpha as f64 * a + old) as f32;
    }
    Ok(())
}

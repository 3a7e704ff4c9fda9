//! Deterministic reductions: `sum`, `dot`, `sum_sq`, written into `out[slot]`.
//!
//! The input is cut into fixed blocks of [`BLOCK`] elements; each block is summed in f64 over
//! [`LANES`] interleaved accumulators (lane `l` takes elements `i ≡ l mod LANES`), the lanes are
//! added in order, then the block sums are added in block order. Blocks may run on any thread,
//! so the result does not depend on the thread count.

use rayon::prelude::*;

use super::elementwise::PAR_MIN;
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

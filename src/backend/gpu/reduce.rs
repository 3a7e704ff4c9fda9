//! Host wrapper of `shaders/reduce.wgsl`: the deterministic reductions sum, dot, sum_sq (two
//! passes: `reduce_partial`, `reduce_final`), several sums at once ([`sums`]: `sums_partial`,
//! `sums_final`) and col_sum. Lengths were checked by the caller.

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

/// Mirrors `struct Sums` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SumsParams {
    n: u32,
    groups: u32,
    vectors: u32,
    _pad: u32,
    slots: [u32; 4],
}

/// `NO_SLOT` in the shader.
const NO_SLOT: u32 = u32::MAX;

/// `out[slot] = Σ_{i<n} x[i]` for every `(x, slot)` of `terms`, each with the bits of [`sum`]:
/// the distinct vectors two at a time, each total written to up to two slots, by one
/// `sums_partial` and one `sums_final` dispatch per pair, or one `sums_small` dispatch per pair
/// when `n <= WG_1D` (the small-batch step's loss and correct sums).
pub fn sums(dev: &GpuDevice, n: usize, terms: &[(&RawBuf, usize)], out: &RawBuf) -> Result<()> {
    // (vector, up to two slots) jobs, a vector with more slots split over several.
    let mut jobs: Vec<(&RawBuf, [u32; 2])> = Vec::new();
    for &(x, slot) in terms {
        let slot = u32_of("sums", "slot", slot)?;
        match jobs.iter_mut().find(|(v, s)| v.id == x.id && s[1] == NO_SLOT) {
            Some((_, s)) => s[1] = slot,
            None => jobs.push((x, [slot, NO_SLOT])),
        }
    }
    let groups = n.div_ceil(WG_1D as usize).clamp(1, REDUCE_GROUPS_MAX);
    let scratch = dev.scratch(2 * REDUCE_GROUPS_MAX)?;
    for pair in jobs.chunks(2) {
        let (x, sx) = pair[0];
        let (y, sy) = pair.get(1).copied().unwrap_or((x, [NO_SLOT; 2]));
        let p = SumsParams {
            n: u32_of("sums", "n", n)?,
            groups: groups as u32,
            vectors: pair.len() as u32,
            _pad: 0,
            slots: [sx[0], sx[1], sy[0], sy[1]],
        };
        let v = pair.len() as u32;
        if groups == 1 {
            // One pass-1 workgroup: both passes in one dispatch, the same bits.
            dev.dispatch(&k::SUMS_SMALL, &p, &[x, y, out], [v, 1, 1])?;
            continue;
        }
        dev.dispatch(&k::SUMS_PARTIAL, &p, &[x, y, &scratch], [groups as u32, v, 1])?;
        dev.dispatch(&k::SUMS_FINAL, &p, &[&scratch, out], [v, 1, 1])?;
    }
    Ok(())
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
    super::launch::check_col_sum_budget(dev, "col_sum", rows)?;
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

#[cfg(test)]
mod tests {
    use crate::backend::Backend;

    /// Several sums at once give each sum the bits of its own two-pass [`Backend::sum`]: one
    /// and two vectors, a vector in two and three slots, lengths around the workgroup size and
    /// past the cap on pass-1 workgroups.
    #[test]
    fn sums_equal_single_sums_bitwise() {
        let be = crate::backend::gpu::matmul::tests::backend();
        for (i, n) in [0usize, 1, 255, 256, 257, 5000, 300_001].into_iter().enumerate() {
            // Values of mixed magnitude, so the summation order shows in the bits.
            let vals = |s: usize| -> Vec<f32> {
                (0..n).map(|j| ((j * 7919 + s * 104_729 + i) % 1000) as f32 * 1.37e-3 - 0.61).collect()
            };
            let (x, y) = (be.upload(&vals(1)).expect("x"), be.upload(&vals(2)).expect("y"));
            let mut want = be.zeros(8).expect("zeros");
            for (v, slot) in [(&x, 0), (&y, 1), (&x, 2), (&y, 3), (&x, 4)] {
                be.sum(n, v, &mut want, slot).expect("sum");
            }
            let want = be.read(&want).expect("read");
            let cases: [&[(&_, usize)]; 4] = [
                &[(&x, 0)],
                &[(&x, 0), (&y, 1)],
                &[(&x, 0), (&y, 1), (&x, 2)],
                &[(&x, 0), (&y, 1), (&x, 2), (&y, 3), (&x, 4)],
            ];
            for terms in cases {
                let mut got = be.upload(&[f32::NAN; 8]).expect("got");
                be.sums(n, terms, &mut got).expect("sums");
                let got = be.read(&got).expect("read");
                for &(_, slot) in terms {
                    assert_eq!(got[slot].to_bits(), want[slot].to_bits(), "n = {n}, slot {slot}");
                }
            }
        }
    }
}

//! The mse family (CPU twin of `shaders/mse.wgsl`): squared error per example. Each row is
//! accumulated in f64 and rounded once; rows are independent, so running them in parallel
//! (above [`PAR_MIN`] elements) does not change any bit.

use rayon::prelude::*;

use super::par::PAR_MIN;
use crate::backend::{check_len, Result};

/// Squared error per example over `pred, target: [rows, cols]`:
/// `loss[r] = ½ Σ_c (pred - target)²` (accumulated in f64), `dpred = grad_scale * (pred - target)`;
/// `loss: [rows]`, `dpred: [rows, cols]`.
#[allow(clippy::too_many_arguments)]
pub fn mse(
    rows: usize,
    cols: usize,
    pred: &[f32],
    target: &[f32],
    grad_scale: f32,
    loss: &mut [f32],
    dpred: &mut [f32],
) -> Result<()> {
    const OP: &str = "mse";
    check_len(OP, "pred", pred.len(), rows * cols)?;
    check_len(OP, "target", target.len(), rows * cols)?;
    check_len(OP, "loss", loss.len(), rows)?;
    check_len(OP, "dpred", dpred.len(), rows * cols)?;
    if cols == 0 {
        loss[..rows].fill(0.0);
        return Ok(());
    }
    let row = |r: usize, l: &mut f32, d: &mut [f32]| {
        let range = r * cols..(r + 1) * cols;
        let mut acc = 0.0f64;
        for ((d, &p), &t) in d.iter_mut().zip(&pred[range.clone()]).zip(&target[range]) {
            let e = p - t;
            acc += e as f64 * e as f64;
            *d = grad_scale * e;
        }
        *l = (0.5 * acc) as f32;
    };
    let (loss, dpred) = (&mut loss[..rows], &mut dpred[..rows * cols]);
    if rows * cols > PAR_MIN {
        loss.par_iter_mut()
            .zip(dpred.par_chunks_mut(cols))
            .enumerate()
            .for_each(|(r, (l, d))| row(r, l, d));
    } else {
        loss.iter_mut().zip(dpred.chunks_mut(cols)).enumerate().for_each(|(r, (l, d))| row(r, l, d));
    }
    Ok(())
}

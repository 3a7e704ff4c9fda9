//! The xent family (CPU twin of `shaders/xent.wgsl`): softmax cross-entropy per example and its
//! R-operator. Each row is computed in f64 and rounded once; rows are independent, so running
//! them in parallel (above [`PAR_MIN`] elements) does not change any bit.

use rayon::prelude::*;

use super::par::PAR_MIN;
use crate::backend::{check_len, BackendError, Result};

/// Numerically stable softmax of one row in f64: returns `(p, lse)` with
/// `lse = max + ln Σ_c exp(z_c - max)` and `p_c = exp(z_c - lse)`. `z` must be non-empty.
fn softmax_row(z: &[f32], p: &mut Vec<f64>) -> f64 {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let s: f64 = z.iter().map(|&v| (v as f64 - max).exp()).sum();
    let lse = max + s.ln();
    p.clear();
    p.extend(z.iter().map(|&v| (v as f64 - lse).exp()));
    lse
}

/// Index of the first maximum of a non-empty row (a later equal value does not win).
fn first_argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (c, &v) in z.iter().enumerate().skip(1) {
        if v > z[best] {
            best = c;
        }
    }
    best
}

/// Softmax cross-entropy for `logits: [rows, classes]`, `labels: [rows]`:
/// `loss[r] = -log softmax(logits[r])[labels[r]]`, `correct[r] = 1` iff the first argmax of
/// `logits[r]` is `labels[r]` (else 0), `dlogits[r, c] = grad_scale * (p[r, c] - [c == labels[r]])`;
/// `loss, correct: [rows]`, `dlogits: [rows, classes]`.
///
/// A label `>= classes` is `BackendError::Invalid`, reported before anything is written.
#[allow(clippy::too_many_arguments)]
pub fn softmax_xent(
    rows: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    grad_scale: f32,
    loss: &mut [f32],
    correct: &mut [f32],
    dlogits: &mut [f32],
) -> Result<()> {
    const OP: &str = "softmax_xent";
    check_len(OP, "logits", logits.len(), rows * classes)?;
    check_len(OP, "labels", labels.len(), rows)?;
    check_len(OP, "loss", loss.len(), rows)?;
    check_len(OP, "correct", correct.len(), rows)?;
    check_len(OP, "dlogits", dlogits.len(), rows * classes)?;
    if let Some((r, &l)) = labels[..rows].iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(BackendError::Invalid {
            op: OP,
            message: format!("label {l} of row {r} is out of range for {classes} classes"),
        });
    }
    if rows == 0 {
        return Ok(());
    }
    // From here classes >= 1: some row has a label < classes.
    let row = |r: usize, p: &mut Vec<f64>, loss: &mut f32, correct: &mut f32, d: &mut [f32]| {
        let z = &logits[r * classes..(r + 1) * classes];
        let label = labels[r] as usize;
        let lse = softmax_row(z, p);
        let arg = first_argmax(z);
        *correct = if arg == label { 1.0 } else { 0.0 };
        for (c, (d, &pc)) in d.iter_mut().zip(p.iter()).enumerate() {
            let onehot = if c == label { 1.0 } else { 0.0 };
            *d = (grad_scale as f64 * (pc - onehot)) as f32;
        }
        if arg == label {
            // A confident right answer: loss = log(1 + t) and p_y − 1 = −t/(1 + t) with
            // t = Σ_{c ≠ arg} exp(z_c − max), which `lse − z_y` and `p_y − 1` lose to
            // cancellation once t is below the rounding of 1 (as the GPU twin does).
            let max = z[arg] as f64;
            let t: f64 = z
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != arg)
                .map(|(_, &v)| (v as f64 - max).exp())
                .sum();
            *loss = t.ln_1p() as f32;
            d[label] = (grad_scale as f64 * (-t / (1.0 + t))) as f32;
        } else {
            *loss = (lse - z[label] as f64) as f32;
        }
    };
    let (loss, correct, dlogits) =
        (&mut loss[..rows], &mut correct[..rows], &mut dlogits[..rows * classes]);
    if rows * classes > PAR_MIN {
        loss.par_iter_mut()
            .zip(correct.par_iter_mut())
            .zip(dlogits.par_chunks_mut(classes))
            .enumerate()
            .for_each_init(Vec::new, |p, (r, ((l, c), d))| row(r, p, l, c, d));
    } else {
        let mut p = Vec::with_capacity(classes);
        for (r, ((l, c), d)) in
            loss.iter_mut().zip(correct.iter_mut()).zip(dlogits.chunks_mut(classes)).enumerate()
        {
            row(r, &mut p, l, c, d);
        }
    }
    Ok(())
}

/// R-operator of the softmax cross-entropy gradient (Gauss-Newton block of the loss):
/// `out[r] = grad_scale * (diag(p) - p pᵀ) rlogits[r] = grad_scale * p ⊙ (rl - p·rl)`
/// with `p = softmax(logits[r])`, for `logits, rlogits, out: [rows, classes]`.
pub fn softmax_xent_rop(
    rows: usize,
    classes: usize,
    logits: &[f32],
    rlogits: &[f32],
    grad_scale: f32,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "softmax_xent_rop";
    check_len(OP, "logits", logits.len(), rows * classes)?;
    check_len(OP, "rlogits", rlogits.len(), rows * classes)?;
    check_len(OP, "out", out.len(), rows * classes)?;
    if rows == 0 || classes == 0 {
        return Ok(());
    }
    let row = |r: usize, p: &mut Vec<f64>, o: &mut [f32]| {
        let z = &logits[r * classes..(r + 1) * classes];
        let rl = &rlogits[r * classes..(r + 1) * classes];
        softmax_row(z, p);
        let prl: f64 = p.iter().zip(rl).map(|(&pc, &v)| pc * v as f64).sum();
        for ((o, &pc), &v) in o.iter_mut().zip(p.iter()).zip(rl) {
            *o = (grad_scale as f64 * pc * (v as f64 - prl)) as f32;
        }
    };
    let out = &mut out[..rows * classes];
    if rows * classes > PAR_MIN {
        out.par_chunks_mut(classes).enumerate().for_each_init(Vec::new, |p, (r, o)| row(r, p, o));
    } else {
        let mut p = Vec::with_capacity(classes);
        out.chunks_mut(classes).enumerate().for_each(|(r, o)| row(r, &mut p, o));
    }
    Ok(())
}

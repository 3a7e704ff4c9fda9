//! The update family: optimizer updates sgd_update and momentum_update (CPU twin of
//! `shaders/update.wgsl`).

use rayon::prelude::*;

use super::par::{for_chunks, CHUNK, PAR_MIN};
use crate::backend::{check_len, MomentumStep, Result};

/// Plain SGD with L2 weight decay: `p -= lr * (g + wd * p)` for `grad, param: [n]`.
pub fn sgd_update(n: usize, lr: f32, wd: f32, grad: &[f32], param: &mut [f32]) -> Result<()> {
    check_len("sgd_update", "grad", grad.len(), n)?;
    check_len("sgd_update", "param", param.len(), n)?;
    for_chunks(&mut param[..n], |off, ps| sgd_slice(lr, wd, &grad[off..off + ps.len()], ps));
    Ok(())
}

/// [`sgd_update`] of `param` with `grad` (the same length) on the calling thread.
pub(super) fn sgd_slice(lr: f32, wd: f32, grad: &[f32], param: &mut [f32]) {
    param.iter_mut().zip(grad).for_each(|(p, &g)| *p -= lr * (g + wd * *p));
}

/// [`momentum_update`] of `velocity` and `param` with `grad` (all the same length) on the
/// calling thread.
pub(super) fn momentum_slice(
    step: &MomentumStep,
    grad: &[f32],
    velocity: &mut [f32],
    param: &mut [f32],
) {
    let MomentumStep { lr, mu, weight_decay: wd } = *step;
    for ((v, p), &g) in velocity.iter_mut().zip(param.iter_mut()).zip(grad) {
        *v = mu * *v + (g + wd * *p);
        *p -= lr * *v;
    }
}

/// Heavy-ball momentum: `v = mu * v + (g + wd * p)`, then `p -= lr * v`, for
/// `grad, velocity, param: [n]`.
pub fn momentum_update(
    n: usize,
    step: &MomentumStep,
    grad: &[f32],
    velocity: &mut [f32],
    param: &mut [f32],
) -> Result<()> {
    check_len("momentum_update", "grad", grad.len(), n)?;
    check_len("momentum_update", "velocity", velocity.len(), n)?;
    check_len("momentum_update", "param", param.len(), n)?;
    let step = |g: &[f32], v: &mut [f32], p: &mut [f32]| momentum_slice(step, g, v, p);
    let (g, v, p) = (&grad[..n], &mut velocity[..n], &mut param[..n]);
    if n > PAR_MIN {
        g.par_chunks(CHUNK)
            .zip(v.par_chunks_mut(CHUNK))
            .zip(p.par_chunks_mut(CHUNK))
            .for_each(|((g, v), p)| step(g, v, p));
    } else {
        step(g, v, p);
    }
    Ok(())
}

//! The update family: optimizer updates sgd_update and momentum_update (CPU twin of
//! `shaders/update.wgsl`).

use rayon::prelude::*;

use super::par::{for_chunks, CHUNK, PAR_MIN};
use crate::backend::{check_len, MomentumStep, Result};

/// Plain SGD with L2 weight decay: `p -= lr * (g + wd * p)` for `grad, param: [n]`.
pub fn sgd_update(n: usize, lr: f32, wd: f32, grad: &[f32], param: &mut [f32]) -> Result<()> {
    check_len("sgd_update", "grad", grad.len(), n)?;
    check_len("sgd_update", "param", param.len(), n)?;
    for_chunks(&mut param[..n], |off, ps| {
        let g = &grad[off..off + ps.len()];
        ps.iter_mut().zip(g).for_each(|(p, &g)| *p -= lr * (g + wd * *p));
    });
    Ok(())
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
    let MomentumStep { lr, mu, weight_decay: wd } = *step;
    check_len("momentum_update", "grad", grad.len(), n)?;
    check_len("momentum_update", "velocity", velocity.len(), n)?;
    check_len("momentum_update", "param", param.len(), n)?;
    let step = |g: &[f32], v: &mut [f32], p: &mut [f32]| {
        for ((v, p), &g) in v.iter_mut().zip(p.iter_mut()).zip(g) {
            *v = mu * *v + (g + wd * *p);
            *p -= lr * *v;
        }
    };
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

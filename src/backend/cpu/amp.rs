//! The amp family (CPU twin of `shaders/amp.wgsl`): dynamic loss scaling on a `[scaler::LEN]`
//! state buffer. Every float operation is the shader's, in its order, so the state, the
//! gradients and the parameters agree bit for bit with the GPU.

use crate::backend::half::{scaler, ScaleGrowth};
use crate::backend::{check_len, Result};

fn check_state(op: &'static str, state: &[f32]) -> Result<()> {
    check_len(op, "state", state.len(), scaler::LEN)
}

/// Whether the step's found-inf flag is set.
pub fn found_inf(state: &[f32]) -> Result<bool> {
    check_state("amp_update", state)?;
    Ok(state[scaler::FOUND_INF] != 0.0)
}

/// `x[i] *= S` for `x: [n]`.
pub fn amp_scale(n: usize, state: &[f32], x: &mut [f32]) -> Result<()> {
    check_state("amp_scale", state)?;
    check_len("amp_scale", "x", x.len(), n)?;
    let s = state[scaler::SCALE];
    x[..n].iter_mut().for_each(|v| *v *= s);
    Ok(())
}

/// `x[i] *= 1 / S` for `x: [n]`; the flag is set when some `x[i]` is inf or NaN.
pub fn amp_unscale(n: usize, state: &mut [f32], x: &mut [f32]) -> Result<()> {
    check_state("amp_unscale", state)?;
    check_len("amp_unscale", "x", x.len(), n)?;
    let inv = 1.0 / state[scaler::SCALE];
    let mut found = false;
    for v in &mut x[..n] {
        found |= !v.is_finite();
        *v *= inv;
    }
    if found {
        state[scaler::FOUND_INF] = 1.0;
    }
    Ok(())
}

/// The scale update at the end of a step (see `HalfOps::amp_update_scale`).
pub fn amp_update_scale(growth: &ScaleGrowth, state: &mut [f32]) -> Result<()> {
    check_state("amp_update_scale", state)?;
    let scale = state[scaler::SCALE];
    if state[scaler::FOUND_INF] != 0.0 {
        state[scaler::SCALE] = (scale * growth.backoff).max(crate::backend::half::MIN_LOSS_SCALE);
        state[scaler::CLEAN] = 0.0;
        state[scaler::SKIPPED] += 1.0;
    } else {
        let clean = state[scaler::CLEAN] + 1.0;
        if clean >= growth.interval as f32 {
            let grown = scale * growth.growth;
            if grown.is_finite() {
                state[scaler::SCALE] = grown;
            }
            state[scaler::CLEAN] = 0.0;
        } else {
            state[scaler::CLEAN] = clean;
        }
    }
    state[scaler::FOUND_INF] = 0.0;
    Ok(())
}

//! Host wrapper of `shaders/amp.wgsl`: dynamic loss scaling on the device. Each function
//! records one dispatch; the scaler state is a `[scaler::LEN]` buffer (`backend::half::scaler`).

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{launch_1d, u32_of};
use super::update;
use crate::backend::half::{half_words, scaler, ScaleGrowth};
use crate::backend::{check_len, MomentumStep, Result};

/// Mirrors `struct Amp` in amp.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AmpParams {
    n: u32,
    lr: f32,
    mu: f32,
    wd: f32,
    interval: u32,
    growth: f32,
    backoff: f32,
    _pad: u32,
}

fn params(op: &'static str, n: usize, state: &RawBuf) -> Result<AmpParams> {
    check_len(op, "state", state.len(), scaler::LEN)?;
    Ok(AmpParams { n: u32_of(op, "n", n)?, ..AmpParams::zeroed() })
}

/// `x[i] *= S`, `i < n`.
pub fn amp_scale(dev: &GpuDevice, n: usize, state: &RawBuf, x: &RawBuf) -> Result<()> {
    check_len("amp_scale", "x", x.len(), n)?;
    launch_1d(dev, &k::AMP_SCALE, n, &params("amp_scale", n, state)?, &[state, x])
}

/// `x[i] *= S`, `i < n`, and `words = f16(x[..n])` packed (`ceil(n / 2)` words), in one dispatch.
pub fn amp_scale_half(
    dev: &GpuDevice,
    n: usize,
    state: &RawBuf,
    x: &RawBuf,
    words: &RawBuf,
) -> Result<()> {
    check_len("amp_scale_half", "x", x.len(), n)?;
    check_len("amp_scale_half", "out", words.len(), half_words(n))?;
    let p = params("amp_scale_half", n, state)?;
    launch_1d(dev, &k::AMP_SCALE_HALF, half_words(n), &p, &[state, x, words])
}

/// `x[i] *= 1 / S`, `i < n`, raising the found-inf flag on a non-finite element.
pub fn amp_unscale(dev: &GpuDevice, n: usize, state: &RawBuf, x: &RawBuf) -> Result<()> {
    check_len("amp_unscale", "x", x.len(), n)?;
    launch_1d(dev, &k::AMP_UNSCALE, n, &params("amp_unscale", n, state)?, &[state, x])
}

/// [`amp_unscale`] of every `(n, x)` of `xs`: with `pairs`, two tensors per dispatch
/// (`amp_unscale2`: a layer's weight and bias together), else one.
pub fn amp_unscale_all(
    dev: &GpuDevice,
    state: &RawBuf,
    xs: &[(usize, &RawBuf)],
    pairs: bool,
) -> Result<()> {
    check_len("amp_unscale", "state", state.len(), scaler::LEN)?;
    for &(n, x) in xs {
        check_len("amp_unscale", "x", x.len(), n)?;
    }
    let live: Vec<(usize, &RawBuf)> = xs.iter().copied().filter(|&(n, _)| n > 0).collect();
    for chunk in live.chunks(if pairs { 2 } else { 1 }) {
        if let [(na, a), (nb, b)] = chunk {
            let p = update::pair_params("amp_unscale2", *na, *nb, 0.0, 0.0, 0.0)?;
            update::launch_pair(dev, &k::AMP_UNSCALE2, &p, &[state, a, b])?;
            continue;
        }
        for &(n, x) in chunk {
            amp_unscale(dev, n, state, x)?;
        }
    }
    Ok(())
}

/// `p -= lr (g + wd p)` over `n` elements unless the flag is set.
#[allow(clippy::too_many_arguments)]
pub fn amp_sgd(
    dev: &GpuDevice,
    n: usize,
    lr: f32,
    wd: f32,
    state: &RawBuf,
    grad: &RawBuf,
    param: &RawBuf,
) -> Result<()> {
    check_len("amp_sgd", "grad", grad.len(), n)?;
    check_len("amp_sgd", "param", param.len(), n)?;
    let p = AmpParams { lr, wd, ..params("amp_sgd", n, state)? };
    launch_1d(dev, &k::AMP_SGD, n, &p, &[state, grad, param])
}

/// `v = mu v + (g + wd p); p -= lr v` over `n` elements unless the flag is set.
pub fn amp_momentum(
    dev: &GpuDevice,
    n: usize,
    step: &MomentumStep,
    state: &RawBuf,
    grad: &RawBuf,
    vel: &RawBuf,
    param: &RawBuf,
) -> Result<()> {
    check_len("amp_momentum", "grad", grad.len(), n)?;
    check_len("amp_momentum", "velocity", vel.len(), n)?;
    check_len("amp_momentum", "param", param.len(), n)?;
    let p = AmpParams {
        lr: step.lr,
        mu: step.mu,
        wd: step.weight_decay,
        ..params("amp_momentum", n, state)?
    };
    launch_1d(dev, &k::AMP_MOMENTUM, n, &p, &[state, grad, vel, param])
}

/// Mirrors `struct Cols` in amp.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ColsParams {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

/// `out[c] = (Σ_r x[r, c]) × 1 / S` for `x: [rows, cols]`, `out: [cols]`: `col_sum` (alpha 1,
/// beta 0) then [`amp_unscale`] of `out`, the same bits and flag, in one dispatch.
pub fn amp_col_sum_unscale(
    dev: &GpuDevice,
    rows: usize,
    cols: usize,
    state: &RawBuf,
    x: &RawBuf,
    out: &RawBuf,
) -> Result<()> {
    let op = "amp_col_sum_unscale";
    check_len(op, "state", state.len(), scaler::LEN)?;
    check_len(op, "x", x.len(), rows * cols)?;
    check_len(op, "out", out.len(), cols)?;
    if cols == 0 {
        return Ok(());
    }
    super::launch::check_col_sum_budget(dev, op, rows)?;
    let p =
        ColsParams { rows: u32_of(op, "rows", rows)?, cols: u32_of(op, "cols", cols)?, _pad: [0; 2] };
    let gx = u32_of(op, "column blocks", cols.div_ceil(32))?;
    dev.dispatch(&k::AMP_COL_SUM_UNSCALE, &p, &[state, x, out], [gx, 1, 1])
}

/// The end-of-step scale update (one invocation).
pub fn amp_update_scale(dev: &GpuDevice, growth: &ScaleGrowth, state: &RawBuf) -> Result<()> {
    let p = AmpParams {
        interval: growth.interval,
        growth: growth.growth,
        backoff: growth.backoff,
        ..params("amp_update_scale", 1, state)?
    };
    launch_1d(dev, &k::AMP_UPDATE_SCALE, 1, &p, &[state])
}

//! Host wrapper of `shaders/update.wgsl`: the optimizer updates sgd_update and momentum_update.
//! Each function records one dispatch; lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{launch_1d, u32_of};
use crate::backend::{MomentumStep, Result};

/// Mirrors `struct Opt` in update.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct OptParams {
    n: u32,
    lr: f32,
    mu: f32,
    wd: f32,
}

/// `p -= lr (g + wd p)` over `n` elements.
pub fn sgd_update(
    dev: &GpuDevice,
    n: usize,
    lr: f32,
    wd: f32,
    grad: &RawBuf,
    param: &RawBuf,
) -> Result<()> {
    let p = OptParams { n: u32_of("sgd_update", "n", n)?, lr, mu: 0.0, wd };
    launch_1d(dev, &k::SGD_UPDATE, n, &p, &[grad, param])
}

/// `v = mu v + (g + wd p); p -= lr v` over `n` elements.
pub fn momentum_update(
    dev: &GpuDevice,
    n: usize,
    step: &MomentumStep,
    grad: &RawBuf,
    vel: &RawBuf,
    param: &RawBuf,
) -> Result<()> {
    let MomentumStep { lr, mu, weight_decay: wd } = *step;
    let p = OptParams { n: u32_of("momentum_update", "n", n)?, lr, mu, wd };
    launch_1d(dev, &k::MOMENTUM_UPDATE, n, &p, &[grad, vel, param])
}

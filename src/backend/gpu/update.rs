//! Host wrapper of `shaders/update.wgsl`: the optimizer updates sgd_update and momentum_update,
//! and [`update_params`], which records a model's update two tensors per dispatch
//! (`sgd_update2`, `momentum_update2`). Each other function records one dispatch; lengths
//! were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::kernels::WG_1D;
use super::launch::{launch_1d, u32_of};
use super::GpuBuf;
use crate::backend::{check_len, MomentumStep, ParamUpdate, Result, UpdateRule};

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

/// Mirrors `struct Opt2` in update.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Opt2Params {
    n_a: u32,
    n_b: u32,
    groups_a: u32,
    _pad: u32,
    lr: f32,
    mu: f32,
    wd: f32,
    _pad1: u32,
}

/// `rule` on every tensor of `tensors`: with `pairs`, two per dispatch (`sgd_update2` /
/// `momentum_update2`: a layer's weight and bias together) and an odd last one alone, else one
/// per dispatch; lengths checked here.
pub fn update_params(
    dev: &GpuDevice,
    rule: &UpdateRule,
    tensors: &mut [ParamUpdate<'_, GpuBuf>],
    pairs: bool,
) -> Result<()> {
    for t in tensors.iter() {
        check_len("update_params", "grad", t.grad.0.len, t.n)?;
        check_len("update_params", "param", t.param.0.len, t.n)?;
        match (rule, &t.velocity) {
            (UpdateRule::Momentum(_), Some(v)) => check_len("update_params", "velocity", v.0.len, t.n)?,
            (UpdateRule::Momentum(_), None) => return Err(ParamUpdate::<GpuBuf>::no_velocity()),
            (UpdateRule::Sgd { .. }, _) => {}
        }
    }
    // Empty tensors record nothing, as the one-tensor updates.
    let live: Vec<&ParamUpdate<'_, GpuBuf>> = tensors.iter().filter(|t| t.n > 0).collect();
    for pair in live.chunks(if pairs { 2 } else { 1 }) {
        match (pair, rule) {
            ([a, b], UpdateRule::Sgd { lr, weight_decay }) => {
                let p = pair_params("sgd_update2", a.n, b.n, *lr, 0.0, *weight_decay)?;
                let bufs = [&a.grad.0, &a.param.0, &b.grad.0, &b.param.0];
                launch_pair(dev, &k::SGD_UPDATE2, &p, &bufs)?;
            }
            ([a, b], UpdateRule::Momentum(step)) => {
                let p = pair_params("momentum_update2", a.n, b.n, step.lr, step.mu, step.weight_decay)?;
                let (va, vb) = (velocity(a)?, velocity(b)?);
                let bufs = [&a.grad.0, va, &a.param.0, &b.grad.0, vb, &b.param.0];
                launch_pair(dev, &k::MOMENTUM_UPDATE2, &p, &bufs)?;
            }
            ([a], UpdateRule::Sgd { lr, weight_decay }) => {
                sgd_update(dev, a.n, *lr, *weight_decay, &a.grad.0, &a.param.0)?
            }
            ([a], UpdateRule::Momentum(step)) => {
                momentum_update(dev, a.n, step, &a.grad.0, velocity(a)?, &a.param.0)?
            }
            _ => {}
        }
    }
    Ok(())
}

fn velocity<'a>(t: &'a ParamUpdate<'_, GpuBuf>) -> Result<&'a RawBuf> {
    t.velocity.as_ref().map(|v| &v.0).ok_or_else(ParamUpdate::<GpuBuf>::no_velocity)
}

fn pair_params(
    op: &'static str,
    n_a: usize,
    n_b: usize,
    lr: f32,
    mu: f32,
    wd: f32,
) -> Result<Opt2Params> {
    let groups_a = n_a.div_ceil(WG_1D as usize);
    u32_of(op, "groups", groups_a + n_b.div_ceil(WG_1D as usize))?;
    Ok(Opt2Params {
        n_a: u32_of(op, "n", n_a)?,
        n_b: u32_of(op, "n", n_b)?,
        groups_a: groups_a as u32,
        _pad: 0,
        lr,
        mu,
        wd,
        _pad1: 0,
    })
}

/// One dispatch of ceil(n_a / WG_1D) + ceil(n_b / WG_1D) workgroups.
fn launch_pair(dev: &GpuDevice, kern: &k::Kernel, p: &Opt2Params, bufs: &[&RawBuf]) -> Result<()> {
    let groups = p.groups_a as usize + (p.n_b as usize).div_ceil(WG_1D as usize);
    launch_1d(dev, kern, groups * WG_1D as usize, p, bufs)
}

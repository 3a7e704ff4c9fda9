//! Host wrapper of `shaders/update.wgsl`: the optimizer updates sgd_update and momentum_update,
//! and [`update_params`], which records a model's update two tensors per dispatch
//! (`sgd_update2`, `momentum_update2`). Each other function records one dispatch; lengths
//! were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::kernels::WG_1D;
use super::launch::{launch_1d, u32_of};
use super::{amp, AdapterSummary, GpuBackend, GpuBuf};
use crate::backend::half::scaler;
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

/// Mirrors `struct Opt2` in update.wgsl (and `struct Amp2` in amp.wgsl, which reads the first
/// three fields): the parameter block of every two-tensor kernel.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct PairParams {
    n_a: u32,
    n_b: u32,
    groups_a: u32,
    guarded: u32,
    lr: f32,
    mu: f32,
    wd: f32,
    _pad1: u32,
}

/// Whether an update is unconditional (update.wgsl's kernels) or skipped when the found-inf
/// flag of the loss-scaler state is set (amp.wgsl's amp_sgd, amp_momentum; update.wgsl's pair
/// kernels with `guarded`, the state bound first: a placeholder when unguarded).
#[derive(Clone, Copy)]
pub enum Guard<'a> {
    Always,
    UnlessFoundInf(&'a RawBuf),
}

/// `rule` on every tensor of `tensors` (under `guard`): with `pairs`, two per dispatch
/// (`sgd_update2` / `momentum_update2`: a layer's weight and bias together)
/// and an odd last one alone, else one per dispatch; lengths checked here.
pub fn update_params(
    dev: &GpuDevice,
    rule: &UpdateRule,
    tensors: &mut [ParamUpdate<'_, GpuBuf>],
    pairs: bool,
    guard: Guard<'_>,
) -> Result<()> {
    if let Guard::UnlessFoundInf(state) = guard {
        check_len("update_params", "state", state.len(), scaler::LEN)?;
    }
    for t in tensors.iter() {
        check_len("update_params", "grad", t.grad.0.len, t.n)?;
        check_len("update_params", "param", t.param.0.len, t.n)?;
        match (rule, &t.velocity) {
            (UpdateRule::Momentum(_), Some(v)) => check_len("update_params", "velocity", v.0.len, t.n)?,
            (UpdateRule::Momentum(_), None) => return Err(ParamUpdate::<GpuBuf>::no_velocity()),
            (UpdateRule::Sgd { .. }, _) => {}
        }
    }
    let (lr, mu, wd, pair_kernel) = match rule {
        UpdateRule::Sgd { lr, weight_decay } => (*lr, 0.0, *weight_decay, &k::SGD_UPDATE2),
        UpdateRule::Momentum(s) => (s.lr, s.mu, s.weight_decay, &k::MOMENTUM_UPDATE2),
    };
    // Empty tensors record nothing, as the one-tensor updates.
    let live: Vec<&ParamUpdate<'_, GpuBuf>> = tensors.iter().filter(|t| t.n > 0).collect();
    for chunk in live.chunks(if pairs { 2 } else { 1 }) {
        if let [a, b] = chunk {
            let p = PairParams {
                guarded: matches!(guard, Guard::UnlessFoundInf(_)) as u32,
                ..pair_params(pair_kernel.name, a.n, b.n, lr, mu, wd)?
            };
            let placeholder;
            let state = match guard {
                Guard::UnlessFoundInf(state) => state,
                Guard::Always => {
                    placeholder = dev.epilogue_placeholder()?;
                    &placeholder
                }
            };
            let mut bufs: Vec<&RawBuf> = vec![state];
            for t in [a, b] {
                bufs.push(&t.grad.0);
                if let UpdateRule::Momentum(_) = rule {
                    bufs.push(velocity(t)?);
                }
                bufs.push(&t.param.0);
            }
            launch_pair(dev, pair_kernel, &p, &bufs)?;
            continue;
        }
        for t in chunk {
            let (g, p) = (&t.grad.0, &t.param.0);
            match (rule, guard) {
                (UpdateRule::Sgd { .. }, Guard::Always) => sgd_update(dev, t.n, lr, wd, g, p)?,
                (UpdateRule::Sgd { .. }, Guard::UnlessFoundInf(s)) => {
                    amp::amp_sgd(dev, t.n, lr, wd, s, g, p)?
                }
                (UpdateRule::Momentum(step), Guard::Always) => {
                    momentum_update(dev, t.n, step, g, velocity(t)?, p)?
                }
                (UpdateRule::Momentum(step), Guard::UnlessFoundInf(s)) => {
                    amp::amp_momentum(dev, t.n, step, s, g, velocity(t)?, p)?
                }
            }
        }
    }
    Ok(())
}

fn velocity<'a>(t: &'a ParamUpdate<'_, GpuBuf>) -> Result<&'a RawBuf> {
    t.velocity.as_ref().map(|v| &v.0).ok_or_else(ParamUpdate::<GpuBuf>::no_velocity)
}

/// The parameter block of a two-tensor kernel over `n_a` then `n_b` elements.
pub(super) fn pair_params(
    op: &'static str,
    n_a: usize,
    n_b: usize,
    lr: f32,
    mu: f32,
    wd: f32,
) -> Result<PairParams> {
    let groups_a = n_a.div_ceil(WG_1D as usize);
    u32_of(op, "groups", groups_a + n_b.div_ceil(WG_1D as usize))?;
    Ok(PairParams {
        n_a: u32_of(op, "n", n_a)?,
        n_b: u32_of(op, "n", n_b)?,
        groups_a: groups_a as u32,
        guarded: 0,
        lr,
        mu,
        wd,
        _pad1: 0,
    })
}

/// One dispatch of `kern` over ceil(n_a / WG_1D) + ceil(n_b / WG_1D) workgroups.
pub(super) fn launch_pair(
    dev: &GpuDevice,
    kern: &k::Kernel,
    p: &PairParams,
    bufs: &[&RawBuf],
) -> Result<()> {
    let groups = p.groups_a as usize + (p.n_b as usize).div_ceil(WG_1D as usize);
    launch_1d(dev, kern, groups * WG_1D as usize, p, bufs)
}

impl GpuBackend {
    /// Record [`update_params`] (the f32 step's update, and the f16 step's unscale and guarded
    /// update) two tensors per dispatch (`true`, the default on a GPU: a step's update in half
    /// the dispatches) or one per dispatch (the default where the adapter runs on the CPU:
    /// lavapipe runs both sides of the kernel's per-workgroup branch under masks, and the paired
    /// update took 1.4-1.8× the time of the single ones there). The same bits either way.
    pub fn set_update_pairs(&self, on: bool) {
        self.choices.update_pairs.set(on);
    }

    /// See [`GpuBackend::set_update_pairs`] (also the f16 step's unscale and guarded update).
    pub(crate) fn update_pairs(&self) -> bool {
        self.choices.update_pairs.get()
    }
}

/// Whether [`update_params`] pairs tensors on this adapter: `BATCHSCOPE_UPDATE_PAIRS=1` or `0`
/// in the environment decides (A/B timing on a device), else pairs everywhere but on an adapter
/// that runs on the CPU (see [`GpuBackend::set_update_pairs`]).
pub(super) fn pairs_default(adapter: &AdapterSummary) -> bool {
    on_unless_cpu("BATCHSCOPE_UPDATE_PAIRS", adapter)
}

/// A kernel choice that pays on a GPU but not on a CPU adapter (lavapipe): `var=1` or `0` in the
/// environment decides, else on everywhere but on an adapter that runs on the CPU.
pub(super) fn on_unless_cpu(var: &str, adapter: &AdapterSummary) -> bool {
    match std::env::var(var).as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        Ok(other) => {
            log::warn!("{var}={other:?} is neither 0 nor 1: ignored");
            !adapter.runs_on_cpu()
        }
        Err(_) => !adapter.runs_on_cpu(),
    }
}

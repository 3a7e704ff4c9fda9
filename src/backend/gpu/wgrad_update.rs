//! Host side of `shaders/wgrad_update.wgsl`: [`Backend::wgrad_update`] in one dispatch, a
//! layer's weight gradient, bias gradient and optimizer step, for the small-batch products
//! (`k ≤` [`WGRAD_UPDATE_MAX_K`] rows). Elsewhere (larger k, or `BATCHSCOPE_FUSED_UPDATE=0`)
//! the unfused default runs: the tiled product with its bias-gradient epilogue, then the
//! paired update.
//!
//! Why a kernel of its own rather than one more matmul epilogue: at k ≤ 32 the weight gradient
//! is a rank-k update, bound by memory and occupancy, not arithmetic; the tiled kernel's 128x128
//! tiles give the 1024x784 product 56 workgroups, this kernel's 64x64 blocks give it 208. And
//! the update's six operands (gW, gb, W, b and their velocities) would push every tiled kernel
//! past 8 storage bindings, the WebGPU default.
//!
//! [`Backend::wgrad_update`]: crate::backend::Backend::wgrad_update

use bytemuck::{Pod, Zeroable};

use super::device::RawBuf;
use super::kernels::{WGRAD_UPDATE_MOMENTUM, WGRAD_UPDATE_SGD};
use super::matmul::{self, grid_2d};
use super::{AdapterSummary, GpuBackend, GpuBuf};
use crate::backend::{
    check_len, layer_step, BackendError, Gemm, LayerStep, ParamUpdate, Result, UpdateRule,
};

/// Depth (the minibatch rows of the weight gradient) up to which [`Backend::wgrad_update`] is
/// one dispatch by default on a GPU, where the unfused path it replaces is two (the product
/// with its bias gradient, then the paired update). Up to 32 rows the weight gradient is a
/// rank-k update bound by memory and occupancy, where this kernel's 64x64 blocks (4x more
/// workgroups than the 128x128 tiles) and the gradient never read back win; past it the tiled
/// kernel's 8x8 outputs per invocation do more arithmetic per load, and which wins is the
/// device's to say: the kernel is exact at any depth, and [`GpuBackend::set_fused_update_max_k`]
/// (or `BATCHSCOPE_FUSED_UPDATE=<max k>`) moves the limit for A/B timing
/// (`benches/device_plan.sh` profiles k = 256 both ways).
///
/// [`Backend::wgrad_update`]: crate::backend::Backend::wgrad_update
pub const WGRAD_UPDATE_MAX_K: usize = 32;

/// Rows and columns of gW per workgroup (`BLOCK` in the shader).
const BLOCK: usize = 64;

/// Mirrors `struct Params` in shaders/include/step_param.wgsl (wgrad_update.wgsl and
/// dgrad_wgrad_update.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    lr: f32,
    mu: f32,
    wd: f32,
    _pad: u32,
}

/// Loop iterations of the busiest invocation of the fused kernel on `g` (each loop counted
/// with its final test): per chunk of `KC` = 32 rows, the staging loop (⌈32·64/256⌉ + 1), the
/// bias lanes' (33), the fma chain's (33) and the chunk loop's own; then the bias tree. Past an
/// adapter's loop cap the unfused pair runs (the same bits).
pub fn loop_iterations(g: &Gemm) -> u64 {
    (g.k as u64).div_ceil(32).saturating_mul(9 + 33 + 33 + 1).saturating_add(14)
}

/// Whether `g` runs as one dispatch with depths up to `max_k` fused: a weight gradient
/// (`trans_a`, not `trans_b`) that overwrites its output (`beta = 0`), `1 ≤ k ≤ max_k`, a
/// non-empty output, and indices that fit 32 bits.
pub fn fuses(g: &Gemm, max_k: usize) -> bool {
    let index_limit = u32::MAX as usize - 4 * BLOCK;
    g.trans_a
        && !g.trans_b
        && g.beta == 0.0
        && (1..=max_k).contains(&g.k)
        && g.m > 0
        && g.n > 0
        && g.m.checked_mul(g.n).is_some_and(|mn| mn <= index_limit)
        && g.k.checked_mul(g.m.max(g.n)).is_some_and(|km| km <= index_limit)
}

/// The depth up to which [`GpuBackend::wgrad_step`] fuses on this adapter unless told otherwise
/// (0: never). `BATCHSCOPE_FUSED_UPDATE` in the environment decides for A/B timing on a device:
/// `0` off, `1` on ([`WGRAD_UPDATE_MAX_K`]), a larger number that depth. Without it: on
/// everywhere but on an adapter that runs on the CPU (see [`GpuBackend::set_fused_update`]).
pub(super) fn fused_default(adapter: &AdapterSummary) -> usize {
    let default = if adapter.runs_on_cpu() { 0 } else { WGRAD_UPDATE_MAX_K };
    match std::env::var("BATCHSCOPE_FUSED_UPDATE").as_deref().map(str::parse::<usize>) {
        Ok(Ok(0)) => 0,
        Ok(Ok(1)) => WGRAD_UPDATE_MAX_K,
        Ok(Ok(k)) => k,
        Ok(Err(_)) => {
            log::warn!("BATCHSCOPE_FUSED_UPDATE is neither 0, 1 nor a depth: ignored");
            default
        }
        Err(_) => default,
    }
}

impl GpuBackend {
    /// Record [`Backend::wgrad_update`] as one dispatch where [`fuses`] allows (`true`, the
    /// default on a GPU: the 1024x1024 layer's gradient is written once and never read back,
    /// and a small-batch step drops from 12 dispatches to 9) or as the unfused product and
    /// update (`false`, the default where the adapter runs on the CPU: lavapipe ran the fused
    /// kernel's 4x4-per-invocation update 1.6x slower than the product plus the 1-D update,
    /// 15.9 vs 9.6 ms for the 1024x1024 layer at B = 1). The same bits either way.
    ///
    /// [`Backend::wgrad_update`]: crate::backend::Backend::wgrad_update
    pub fn set_fused_update(&self, on: bool) {
        self.choices.fused_update_max_k.set(if on { WGRAD_UPDATE_MAX_K } else { 0 });
    }

    /// [`GpuBackend::set_fused_update`] up to depth `max_k` (0: off): past
    /// [`WGRAD_UPDATE_MAX_K`] the fused dispatch replaces two (the product with its bias
    /// gradient, the update); whether it pays there is the device's to say. The same bits at
    /// every depth.
    pub fn set_fused_update_max_k(&self, max_k: usize) {
        self.choices.fused_update_max_k.set(max_k);
    }

    /// The depth up to which [`Backend::wgrad_update`] is one dispatch (0: never).
    ///
    /// [`Backend::wgrad_update`]: crate::backend::Backend::wgrad_update
    pub fn fused_update_max_k(&self) -> usize {
        self.choices.fused_update_max_k.get()
    }

    /// Whether [`Backend::wgrad_update`] of `g` is one dispatch on this backend: [`fuses`] up
    /// to [`GpuBackend::fused_update_max_k`], a grid within the adapter's limits, and an
    /// unfused product that is one fma chain per element ([`matmul::is_whole_tiled`]: not the
    /// skinny kernel, a tile the autotuner picked, or split-k, which sum in their own orders), so
    /// that fusing never changes a bit.
    ///
    /// [`Backend::wgrad_update`]: crate::backend::Backend::wgrad_update
    pub fn fuses_wgrad_update(&self, g: &Gemm) -> Result<bool> {
        Ok(fuses(g, self.choices.fused_update_max_k.get())
            && super::launch::within_loop_budget(&self.dev, loop_iterations(g))
            && self.wgrad_update_grid(g).is_ok()
            && matmul::is_whole_tiled(&self.dev, &self.launch_for(g)?, g))
    }

    /// The fused dispatch's grid: column blocks in x, row blocks in y (and z past the limit).
    fn wgrad_update_grid(&self, g: &Gemm) -> Result<[u32; 3]> {
        let max = self.dev.ctx.limits.max_compute_workgroups_per_dimension;
        grid_2d(g.n.div_ceil(BLOCK) as u64, g.m.div_ceil(BLOCK) as u64, max).map_err(|_| {
            BackendError::Invalid {
                op: "wgrad_update",
                message: format!("{}x{} exceeds the grid's {max} workgroups per dimension", g.m, g.n),
            }
        })
    }

    /// [`Backend::wgrad_update`]: one dispatch where [`fuses`] says so, else the unfused default.
    ///
    /// [`Backend::wgrad_update`]: crate::backend::Backend::wgrad_update
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wgrad_step(
        &self,
        g: &Gemm,
        dz: &GpuBuf,
        x: &GpuBuf,
        gw: &mut GpuBuf,
        gb: &mut GpuBuf,
        step: LayerStep<'_, GpuBuf>,
    ) -> Result<()> {
        if !self.fuses_wgrad_update(g)? {
            return layer_step::unfused(self, g, dz, x, gw, gb, step);
        }
        let op = "wgrad_update";
        let (m, n, k) = (g.m, g.n, g.k);
        check_len(op, "dz", dz.0.len, k * m)?;
        check_len(op, "x", x.0.len, k * n)?;
        check_len(op, "gw", gw.0.len, m * n)?;
        check_len(op, "gb", gb.0.len, m)?;
        let s = self.step_binding(op, g, &step)?;
        let kernel = if s.momentum { WGRAD_UPDATE_MOMENTUM } else { WGRAD_UPDATE_SGD };
        let grid = self.wgrad_update_grid(g)?;
        let bufs = [&dz.0, &x.0, &gw.0, &gb.0, &step.weight.param.0, &s.vw, &step.bias.param.0, &s.vb];
        self.dev.dispatch(&kernel, &s.params, &bufs, grid)
    }

    /// What a fused layer kernel binds for `step` of the layer of weight gradient `g` (both
    /// kernels' `struct Params` and velocity bindings): the parameter block, whether the rule
    /// is momentum, and the velocities (placeholders under SGD), the lengths checked.
    pub(super) fn step_binding(
        &self,
        op: &'static str,
        g: &Gemm,
        step: &LayerStep<'_, GpuBuf>,
    ) -> Result<StepBinding> {
        let (m, n) = (g.m, g.n);
        check_len(op, "weight", step.weight.param.0.len, m * n)?;
        check_len(op, "bias", step.bias.param.0.len, m)?;
        let (lr, mu, wd) = match step.rule {
            UpdateRule::Sgd { lr, weight_decay } => (lr, 0.0, weight_decay),
            UpdateRule::Momentum(s) => (s.lr, s.mu, s.weight_decay),
        };
        let (vw, vb) = match (&step.rule, &step.weight.velocity, &step.bias.velocity) {
            (UpdateRule::Momentum(_), Some(vw), Some(vb)) => {
                check_len(op, "weight velocity", vw.0.len, m * n)?;
                check_len(op, "bias velocity", vb.0.len, m)?;
                (vw.0.clone(), vb.0.clone())
            }
            (UpdateRule::Momentum(_), ..) => return Err(ParamUpdate::<GpuBuf>::no_velocity()),
            (UpdateRule::Sgd { .. }, ..) => {
                (self.dev.epilogue_placeholder()?, self.dev.second_placeholder()?)
            }
        };
        let (m, n, k) = (m as u32, n as u32, g.k as u32);
        let params = Params { m, n, k, alpha: g.alpha, lr, mu, wd, _pad: 0 };
        let momentum = matches!(step.rule, UpdateRule::Momentum(_));
        Ok(StepBinding { params, momentum, vw, vb })
    }
}

/// See [`GpuBackend::step_binding`].
pub(super) struct StepBinding {
    pub params: Params,
    pub momentum: bool,
    pub vw: RawBuf,
    pub vb: RawBuf,
}

//! Host side of `shaders/dgrad_wgrad_update.wgsl`: [`Backend::dgrad_wgrad_update`] in one
//! dispatch, a hidden-input layer's dgrad product with φ', its weight and bias gradients and the
//! optimizer step, where both unfused halves are one dispatch each with float operations the
//! kernel repeats: the dgrad product on the skinny kernel and the weight gradient on the
//! one-dispatch `wgrad_update` (B ≤ 32, [`GpuBackend::fuses_wgrad_update`]). Elsewhere the
//! unfused default runs (the dgrad product, then [`Backend::wgrad_update`]).
//!
//! Why the two products can share a dispatch: a workgroup that owns a block of W's columns
//! reads only those columns for its block of `dz_prev` and updates only those columns, so the
//! dispatch boundary between the dgrad (which reads the old W) and the step is not needed. A
//! small-batch step of the 3-layer MLP drops from 8 dispatches to 6.
//!
//! [`Backend::dgrad_wgrad_update`]: crate::backend::Backend::dgrad_wgrad_update
//! [`Backend::wgrad_update`]: crate::backend::Backend::wgrad_update

use super::kernels::{Kernel, DGRAD_WGRAD_UPDATE_MOMENTUM, DGRAD_WGRAD_UPDATE_SGD};
use super::matmul::{self, grid_2d};
use super::{GpuBackend, GpuBuf};
use crate::backend::layer_step::{self, dgrad_gemm, Dgrad};
use crate::backend::{check_len, BackendError, Gemm, LayerStep, Result};

/// Columns of W per workgroup (`CW` in the shader).
const COLUMNS: usize = 4;

/// Whether [`GpuBackend::dgrad_wgrad_step`] fuses unless told otherwise:
/// `BATCHSCOPE_FUSED_BACKWARD=1` or `0` in the environment decides (A/B timing on a device),
/// else off on every adapter. Measured on an NVIDIA H200 (2026-12-04, GPU timestamps, the
/// default model's 1024x1024 layer backward per step): fused 63.7 µs at B = 1 and 173 µs at
/// B = 32 against 42.7 and 53.5 µs as the skinny dgrad then `wgrad_update`; the step went from
/// 0.122 to 0.098 ms and from 0.286 to 0.160 ms unfused. A workgroup of 4 columns walks all B
/// rows of `dz` for its dgrad block, where the skinny kernel spreads them over 8x more
/// workgroups. llvmpipe runs the unfused pair faster too.
pub(super) fn fused_default() -> bool {
    super::choices::switch("BATCHSCOPE_FUSED_BACKWARD", false)
}

/// Loop iterations of the busiest invocation of `dgrad_wgrad_update` on the weight gradient `g`
/// (dz `[k, m]`, W `[m, n]`; each loop counted with its final test): phase 1 walks ⌈k/32⌉ row
/// groups, each ⌈m/8⌉ steps of up to 4 rows; phase 2 ⌈m/512⌉ passes of k steps of up to 8
/// rows and the chain's padding; the first column block adds ⌈m/256⌉ bias column sums. Past an
/// adapter's loop cap the unfused kernels run (the same bits).
pub fn loop_iterations(g: &Gemm) -> u64 {
    let (m, k) = (g.m as u64, g.k as u64);
    let phase1 = k.div_ceil(32).saturating_mul(6 * m.div_ceil(8) + 21);
    let phase2 = m.div_ceil(512).saturating_mul(10 * k + 75);
    let bias = m.div_ceil(256).saturating_mul(8 * k.div_ceil(8) + 33);
    phase1.saturating_add(phase2).saturating_add(bias).saturating_add(2)
}

impl GpuBackend {
    /// Record [`Backend::dgrad_wgrad_update`] as one dispatch where both halves would be one
    /// dispatch each (`true`: a dispatch and a barrier fewer per hidden layer) or as the two
    /// (`false`, the default: faster on the H200 and on llvmpipe, see [`fused_default`]). The
    /// same bits either way.
    ///
    /// [`Backend::dgrad_wgrad_update`]: crate::backend::Backend::dgrad_wgrad_update
    pub fn set_fused_backward(&self, on: bool) {
        self.choices.fused_backward.set(on);
    }

    /// See [`GpuBackend::set_fused_backward`].
    pub fn fused_backward(&self) -> bool {
        self.choices.fused_backward.get()
    }

    /// Whether [`Backend::dgrad_wgrad_update`] of weight gradient `g` is one dispatch here: the
    /// fusion on, a dgrad product with alpha 1 on the skinny kernel, a weight gradient that
    /// [`GpuBackend::fuses_wgrad_update`] (its own one-dispatch kernel's bits: the base tiled
    /// kernel's, k ≤ the fused depth), indices within 32 bits, an adapter with the ten storage
    /// bindings the kernel takes, and a grid within its limits.
    ///
    /// [`Backend::dgrad_wgrad_update`]: crate::backend::Backend::dgrad_wgrad_update
    pub fn fuses_dgrad_wgrad_update(&self, g: &Gemm) -> Result<bool> {
        let bindings = self.dev.ctx.limits.max_storage_buffers_per_shader_stage as usize;
        let index_limit = u32::MAX as usize;
        let dgrad = dgrad_gemm(g);
        Ok(self.choices.fused_backward.get()
            && DGRAD_WGRAD_UPDATE_SGD.bindings.len() <= bindings
            && super::launch::within_loop_budget(&self.dev, loop_iterations(g))
            && g.k.checked_mul(g.m.max(g.n)).is_some_and(|len| len < index_limit)
            && self.dgrad_wgrad_grid(g).is_ok()
            && self.fuses_wgrad_update(g)?
            && matmul::is_skinny(&self.launch_for(&dgrad)?))
    }

    /// The fused dispatch's grid: column blocks of W, folded into y past the limit.
    fn dgrad_wgrad_grid(&self, g: &Gemm) -> Result<[u32; 3]> {
        let max = self.dev.ctx.limits.max_compute_workgroups_per_dimension;
        let blocks = g.n.div_ceil(COLUMNS) as u64;
        let [_, y, z] = grid_2d(1, blocks, max).map_err(|_| BackendError::Invalid {
            op: "dgrad_wgrad_update",
            message: format!("{} columns exceed the grid's {max} workgroups per dimension", g.n),
        })?;
        // grid_2d folds the blocks into (y, z); the shader walks x + y * num_workgroups.x.
        Ok([y, z, 1])
    }

    /// [`Backend::dgrad_wgrad_update`]: one dispatch where
    /// [`GpuBackend::fuses_dgrad_wgrad_update`] says so, else the unfused default.
    ///
    /// [`Backend::dgrad_wgrad_update`]: crate::backend::Backend::dgrad_wgrad_update
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dgrad_wgrad_step(
        &self,
        g: &Gemm,
        dz: &GpuBuf,
        x: &GpuBuf,
        dgrad: Dgrad<'_, GpuBuf>,
        gw: &mut GpuBuf,
        gb: &mut GpuBuf,
        step: LayerStep<'_, GpuBuf>,
    ) -> Result<()> {
        if !self.fuses_dgrad_wgrad_update(g)? {
            return layer_step::unfused_with_dgrad(self, g, dz, x, dgrad, gw, gb, step);
        }
        layer_step::check(g)?;
        let op = "dgrad_wgrad_update";
        let (m, n, k) = (g.m, g.n, g.k);
        check_len(op, "dz", dz.0.len, k * m)?;
        check_len(op, "x", x.0.len, k * n)?;
        check_len(op, "z", dgrad.z.0.len, k * n)?;
        check_len(op, "dz_prev", dgrad.dz_prev.0.len, k * n)?;
        check_len(op, "gw", gw.0.len, m * n)?;
        check_len(op, "gb", gb.0.len, m)?;
        let s = self.step_binding(op, g, &step)?;
        let base = if s.momentum { DGRAD_WGRAD_UPDATE_MOMENTUM } else { DGRAD_WGRAD_UPDATE_SGD };
        // The φ' epilogue's pipeline constants, as matmul.wgsl's (EPI 3, ACT).
        let kernel = Kernel { spec: 3 * 4 + dgrad.act.code(), ..base };
        let grid = self.dgrad_wgrad_grid(g)?;
        let bufs = [
            &dz.0,
            &x.0,
            &dgrad.z.0,
            &dgrad.dz_prev.0,
            &gw.0,
            &gb.0,
            &step.weight.param.0,
            &s.vw,
            &step.bias.param.0,
            &s.vb,
        ];
        self.dev.dispatch(&kernel, &s.params, &bufs, grid)
    }
}

//! Host side of `shaders/linear_xent.wgsl`: [`Backend::linear_xent_sums`] in one dispatch, a
//! classifier's output layer (`logits = x · Wᵀ + b`), softmax cross-entropy with d logits, and
//! the step's minibatch sums, where the unfused product is the skinny kernel and one workgroup
//! covers the rows (at most 256).
//! Elsewhere the unfused default runs: the product with its bias epilogue, then
//! `softmax_xent_sums`.
//!
//! Why one workgroup: the loss of a row needs all of its logits and the sums need every row, so
//! the product's workgroups would have to meet; at B ≤ 32 the output layer (32 x 10 x 1024 for
//! the default model) was expected to cost a few microseconds of one workgroup's time, less
//! than the dispatch and barrier it saves. The H200 measured 56.7 µs against 21.6 for the pair,
//! so the fusion is off by default ([`fused_default`]) and stays for A/B timing.
//!
//! [`Backend::linear_xent_sums`]: crate::backend::Backend::linear_xent_sums

use bytemuck::{Pod, Zeroable};

use super::kernels::{LINEAR_XENT_SUMS, WG_1D};
use super::launch::u32_of;
use super::matmul::{self};
use super::xent::{check as check_xent, step_slots};
use super::{GpuBackend, GpuBuf, GpuIdxBuf};
use crate::backend::{check_len, linear_xent, Gemm, Result, StepSums, XentOutputs};

/// Mirrors `struct Loss` in linear_xent.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    grad_scale: f32,
    k: u32,
    slots: [u32; 4],
}

/// Whether [`GpuBackend::linear_xent_step`] fuses unless told otherwise:
/// `BATCHSCOPE_FUSED_HEAD=1` or `0` in the environment decides (A/B timing on a device), else
/// off on every adapter. Measured on an NVIDIA H200 (2026-12-04, GPU timestamps, the default
/// model's output layer and loss per step): fused 22.3 µs at B = 1 and 56.7 µs at B = 32 against
/// 19.8 and 21.6 µs unfused; one workgroup walking 32 x 10 x 1024 costs more than the dispatch
/// and barrier it saves. llvmpipe runs one workgroup on one core, so it loses there too.
pub(super) fn fused_default() -> bool {
    super::choices::switch("BATCHSCOPE_FUSED_HEAD", false)
}

/// Whether the shape of `g` is the forward output layer `x [m, k] · Wᵀ` (`W [n, k]` stored)
/// that overwrites its logits, with rows one workgroup's sums cover and indices that fit 32
/// bits.
pub fn fuses_shape(g: &Gemm) -> bool {
    let limit = u32::MAX as usize;
    !g.trans_a
        && g.trans_b
        && g.alpha == 1.0
        && g.beta == 0.0
        && (1..=WG_1D as usize).contains(&g.m)
        && g.n > 0
        && [g.m * g.k, g.n * g.k, g.m * g.n].iter().all(|&len| len < limit)
}

/// Whether one invocation of `linear_xent_sums` on `g` (rows m, classes n, depth k) stays
/// within the adapter's loop budget ([`super::AdapterSummary::loop_iteration_limit`]):
/// ⌈m/8⌉·⌈n/8⌉ blocks of ⌈k/32⌉ steps (and 32 lane sums, counted in case they are not
/// unrolled), then the softmax's 3n. Past it the unfused pair runs (its own checks apply).
fn within_loop_budget(dev: &super::device::GpuDevice, g: &Gemm) -> bool {
    let (m, n, k) = (g.m as u64, g.n as u64, g.k as u64);
    let blocks = m.div_ceil(8).saturating_mul(n.div_ceil(8));
    let iterations = blocks.saturating_mul(k.div_ceil(32) + 34).saturating_add(3 * n);
    super::launch::within_loop_budget(dev, iterations)
}

impl GpuBackend {
    /// Record [`Backend::linear_xent_sums`] as one dispatch where the shape allows (`true`: the
    /// small-batch step loses a dispatch and a barrier) or as the product and the loss
    /// (`false`, the default: faster on the H200 and on llvmpipe, see [`fused_default`]). The
    /// same bits either way.
    ///
    /// [`Backend::linear_xent_sums`]: crate::backend::Backend::linear_xent_sums
    pub fn set_fused_head(&self, on: bool) {
        self.choices.fused_head.set(on);
    }

    /// See [`GpuBackend::set_fused_head`].
    pub fn fused_head(&self) -> bool {
        self.choices.fused_head.get()
    }

    /// Whether [`Backend::linear_xent_sums`] of `g` with `loss_slots` loss sums is one dispatch
    /// here: the fusion on, [`fuses_shape`], one or two loss slots, an adapter with the nine
    /// storage bindings the kernel takes, and an unfused product that runs the skinny kernel
    /// (whose float operations the fused one repeats; not the tiled kernel of a data-parallel
    /// worker or a forced variant).
    ///
    /// [`Backend::linear_xent_sums`]: crate::backend::Backend::linear_xent_sums
    pub fn fuses_linear_xent(&self, g: &Gemm, loss_slots: usize) -> Result<bool> {
        let bindings = self.dev.ctx.limits.max_storage_buffers_per_shader_stage as usize;
        Ok(self.choices.fused_head.get()
            && fuses_shape(g)
            && within_loop_budget(&self.dev, g)
            && (1..=2).contains(&loss_slots)
            && LINEAR_XENT_SUMS.bindings.len() <= bindings
            && matmul::is_skinny(&self.launch_for(g)?))
    }

    /// [`Backend::linear_xent_sums`]: one dispatch where [`GpuBackend::fuses_linear_xent`]
    /// says so, else the unfused default.
    ///
    /// [`Backend::linear_xent_sums`]: crate::backend::Backend::linear_xent_sums
    pub(super) fn linear_xent_step(
        &self,
        g: &Gemm,
        [x, w, bias]: [&GpuBuf; 3],
        logits: &mut GpuBuf,
        xent: XentOutputs<'_, GpuBuf, GpuIdxBuf>,
        sums: &mut StepSums<'_, GpuBuf>,
    ) -> Result<()> {
        if !self.fuses_linear_xent(g, sums.loss_slots.len())? {
            return linear_xent::unfused(self, g, [x, w, bias], logits, xent, sums);
        }
        let op = "linear_xent_sums";
        let (rows, classes) = (g.m, g.n);
        check_len(op, "x", x.0.len, rows * g.k)?;
        check_len(op, "w", w.0.len, classes * g.k)?;
        check_len(op, "bias", bias.0.len, classes)?;
        let XentOutputs { labels, grad_scale, loss, correct, dlogits } = xent;
        let loss_bufs = [&logits.0, &labels.0, &loss.0, &correct.0, &dlogits.0];
        check_xent(rows, classes, loss_bufs)?;
        let params = Params {
            rows: u32_of(op, "rows", rows)?,
            cols: u32_of(op, "classes", classes)?,
            grad_scale,
            k: u32_of(op, "k", g.k)?,
            slots: step_slots(op, sums)?,
        };
        let [lg, lb, ls, cr, dl] = loss_bufs;
        let bufs = [&x.0, &w.0, &bias.0, lb, lg, ls, cr, dl, &sums.out.0];
        self.dev.dispatch(&LINEAR_XENT_SUMS, &params, &bufs, [1, 1, 1])
    }
}

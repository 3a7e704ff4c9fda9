//! Host wrapper of `shaders/xent.wgsl`: softmax_xent, its R-operator softmax_xent_rop, and
//! softmax_xent_sums (the loss and the step's minibatch sums in one dispatch). One invocation
//! per row; softmax_xent's lengths are checked here, softmax_xent_rop's by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels::{self as k, WG_1D};
use super::launch::{check_loop_budget, launch_1d, u32_of};
use super::{GpuBackend, GpuBuf, GpuIdxBuf};
use crate::backend::{check_len, Backend, BackendError, Result, StepSums};

/// Mirrors `struct Loss` in xent.wgsl and mse.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct LossParams {
    rows: u32,
    cols: u32,
    grad_scale: f32,
    _pad: u32,
}

impl LossParams {
    /// `rows` examples of `cols` logits (or outputs), gradients scaled by `grad_scale`.
    pub(super) fn new(op: &'static str, rows: usize, cols: usize, grad_scale: f32) -> Result<Self> {
        Ok(LossParams {
            rows: u32_of(op, "rows", rows)?,
            cols: u32_of(op, "cols", cols)?,
            grad_scale,
            _pad: 0,
        })
    }
}

/// `LossParams` with the slots of `softmax_xent_sums` (`struct Loss` of xent.wgsl in full).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossSumsParams {
    loss: LossParams,
    slots: [u32; 4],
}

/// `NO_SLOT` in shaders/include/xent_row.wgsl.
const NO_SLOT: u32 = u32::MAX;

/// `p.slots` of shaders/include/xent_row.wgsl's `store_step_sums` for `sums` (one or two loss
/// slots, checked against the length of `sums.out`).
pub(super) fn step_slots(op: &'static str, sums: &StepSums<'_, GpuBuf>) -> Result<[u32; 4]> {
    let slot = |s: usize| -> Result<u32> {
        check_len(op, "out", sums.out.0.len, s + 1)?;
        u32_of(op, "slot", s)
    };
    let (first, second) = match sums.loss_slots {
        [first] => (slot(*first)?, NO_SLOT),
        [first, second] => (slot(*first)?, slot(*second)?),
        other => {
            return Err(BackendError::Invalid {
                op,
                message: format!("one or two loss slots, got {}", other.len()),
            })
        }
    };
    Ok([first, second, slot(sums.correct_slot)?, 0])
}

/// The operand checks of softmax_xent.
pub(super) fn check(rows: usize, classes: usize, bufs: [&RawBuf; 5]) -> Result<()> {
    let [logits, labels, loss, correct, dlogits] = bufs;
    check_len("softmax_xent", "logits", logits.len(), rows * classes)?;
    check_len("softmax_xent", "labels", labels.len(), rows)?;
    check_len("softmax_xent", "loss", loss.len(), rows)?;
    check_len("softmax_xent", "correct", correct.len(), rows)?;
    check_len("softmax_xent", "dlogits", dlogits.len(), rows * classes)?;
    if classes == 0 {
        return Err(BackendError::Invalid { op: "softmax_xent", message: "0 classes".into() });
    }
    Ok(())
}

/// One invocation walks its row's `classes` logits `passes` times (max, Σ exp, the gradient;
/// the R-operator's q·r besides).
fn xent_loop_budget(dev: &GpuDevice, op: &'static str, classes: usize, passes: u64) -> Result<()> {
    let what = format!("a softmax over {classes} classes");
    check_loop_budget(dev, op, (classes as u64).saturating_mul(passes), &what)
}

/// Softmax cross-entropy per row of `logits [rows, classes]`; see `Backend::softmax_xent`.
#[allow(clippy::too_many_arguments)]
pub fn softmax_xent(
    dev: &GpuDevice,
    rows: usize,
    classes: usize,
    logits: &RawBuf,
    labels: &RawBuf,
    grad_scale: f32,
    loss: &RawBuf,
    correct: &RawBuf,
    dlogits: &RawBuf,
) -> Result<()> {
    check(rows, classes, [logits, labels, loss, correct, dlogits])?;
    xent_loop_budget(dev, "softmax_xent", classes, 3)?;
    let p = LossParams::new("softmax_xent", rows, classes, grad_scale)?;
    launch_1d(dev, &k::SOFTMAX_XENT, rows, &p, &[logits, labels, loss, correct, dlogits])
}

impl GpuBackend {
    /// `Backend::softmax_xent_sums`: one `softmax_xent_sums` dispatch when one workgroup covers
    /// the rows and the loss has at most two slots, else softmax_xent and the sums.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn softmax_xent_sums_fused(
        &self,
        rows: usize,
        classes: usize,
        logits: &GpuBuf,
        labels: &GpuIdxBuf,
        grad_scale: f32,
        loss: &mut GpuBuf,
        correct: &mut GpuBuf,
        dlogits: &mut GpuBuf,
        sums: &mut StepSums<'_, GpuBuf>,
    ) -> Result<()> {
        let one_pass = (1..=WG_1D as usize).contains(&rows) && (1..=2).contains(&sums.loss_slots.len());
        if !one_pass {
            self.softmax_xent(rows, classes, logits, labels, grad_scale, loss, correct, dlogits)?;
            return sums.record(self, rows, loss, correct);
        }
        let bufs = [&logits.0, &labels.0, &loss.0, &correct.0, &dlogits.0];
        check(rows, classes, bufs)?;
        xent_loop_budget(&self.dev, "softmax_xent_sums", classes, 3)?;
        let p = LossSumsParams {
            loss: LossParams::new("softmax_xent_sums", rows, classes, grad_scale)?,
            slots: step_slots("softmax_xent_sums", sums)?,
        };
        let [lg, lb, ls, cr, dl] = bufs;
        self.dev.dispatch(&k::SOFTMAX_XENT_SUMS, &p, &[lg, lb, ls, cr, dl, &sums.out.0], [1, 1, 1])
    }
}

/// `out = s (diag(q) - q qᵀ) rlogits` per row; see `Backend::softmax_xent_rop`.
pub fn softmax_xent_rop(
    dev: &GpuDevice,
    rows: usize,
    classes: usize,
    logits: &RawBuf,
    rlogits: &RawBuf,
    grad_scale: f32,
    out: &RawBuf,
) -> Result<()> {
    xent_loop_budget(dev, "softmax_xent_rop", classes, 4)?;
    let p = LossParams::new("softmax_xent_rop", rows, classes, grad_scale)?;
    launch_1d(dev, &k::SOFTMAX_XENT_ROP, rows, &p, &[logits, rlogits, out])
}

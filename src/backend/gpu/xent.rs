//! Host wrapper of `shaders/xent.wgsl`: softmax_xent and its R-operator softmax_xent_rop.
//! One invocation per row; lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{launch_1d, u32_of};
use crate::backend::Result;

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
    let p = LossParams::new("softmax_xent", rows, classes, grad_scale)?;
    launch_1d(dev, &k::SOFTMAX_XENT, rows, &p, &[logits, labels, loss, correct, dlogits])
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
    let p = LossParams::new("softmax_xent_rop", rows, classes, grad_scale)?;
    launch_1d(dev, &k::SOFTMAX_XENT_ROP, rows, &p, &[logits, rlogits, out])
}

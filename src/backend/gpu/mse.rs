//! Host wrapper of `shaders/mse.wgsl`: squared error per example.
//! One invocation per row; lengths were checked by the caller.

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{check_loop_budget, launch_1d};
use super::xent::LossParams;
use crate::backend::Result;

/// Squared error per row of `pred, target [rows, cols]`; see `Backend::mse`.
#[allow(clippy::too_many_arguments)]
pub fn mse(
    dev: &GpuDevice,
    rows: usize,
    cols: usize,
    pred: &RawBuf,
    target: &RawBuf,
    grad_scale: f32,
    loss: &RawBuf,
    dpred: &RawBuf,
) -> Result<()> {
    check_loop_budget(dev, "mse", cols as u64, &format!("a squared error over {cols} outputs"))?;
    let p = LossParams::new("mse", rows, cols, grad_scale)?;
    launch_1d(dev, &k::MSE, rows, &p, &[pred, target, loss, dpred])
}

//! Host wrapper of `shaders/elementwise.wgsl`: fill, copy, axpy, scale, add_bias.
//! Each function records one dispatch; lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{launch_1d, u32_of};
use crate::backend::Result;

/// Mirrors `struct Ew` in elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Ew {
    n: u32,
    cols: u32,
    alpha: f32,
    _pad: u32,
}

fn ew(op: &'static str, n: usize, cols: usize, alpha: f32) -> Result<Ew> {
    Ok(Ew { n: u32_of(op, "n", n)?, cols: u32_of(op, "cols", cols)?, alpha, _pad: 0 })
}

/// `y[i] = value`, `i < n`.
pub fn fill(dev: &GpuDevice, n: usize, value: f32, y: &RawBuf) -> Result<()> {
    launch_1d(dev, &k::FILL, n, &ew("fill", n, 1, value)?, &[y])
}

/// `y[i] = x[i]`, `i < n`.
pub fn copy(dev: &GpuDevice, n: usize, x: &RawBuf, y: &RawBuf) -> Result<()> {
    launch_1d(dev, &k::COPY, n, &ew("copy", n, 1, 0.0)?, &[x, y])
}

/// `y[i] += alpha x[i]`, `i < n`.
pub fn axpy(dev: &GpuDevice, n: usize, alpha: f32, x: &RawBuf, y: &RawBuf) -> Result<()> {
    launch_1d(dev, &k::AXPY, n, &ew("axpy", n, 1, alpha)?, &[x, y])
}

/// `x[i] *= alpha`, `i < n`.
pub fn scale(dev: &GpuDevice, n: usize, alpha: f32, x: &RawBuf) -> Result<()> {
    launch_1d(dev, &k::SCALE, n, &ew("scale", n, 1, alpha)?, &[x])
}

/// `x [rows, cols] += bias [cols]`.
pub fn add_bias(dev: &GpuDevice, rows: usize, cols: usize, bias: &RawBuf, x: &RawBuf) -> Result<()> {
    let n = rows * cols;
    launch_1d(dev, &k::ADD_BIAS, n, &ew("add_bias", n, cols.max(1), 0.0)?, &[bias, x])
}

//! Host wrapper of `shaders/gather.wgsl`: gather_rows, gather_idx, gather_rows_window.
//! Each function records one dispatch; lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{launch_1d, u32_of};
use crate::backend::{BackendError, Result};

/// Mirrors `struct Gather` in gather.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GatherParams {
    n: u32,
    cols: u32,
    src_rows: u32,
    first: u32,
}

impl GatherParams {
    /// `rows x cols` gathered elements from `src_rows` source rows starting at global `first`.
    fn new(op: &'static str, rows: usize, cols: usize, src_rows: usize, first: usize) -> Result<Self> {
        Ok(GatherParams {
            n: u32_of(op, "n", rows * cols)?,
            cols: u32_of(op, "cols", cols)?,
            src_rows: u32_of(op, "src_rows", src_rows)?,
            first: u32_of(op, "first", first)?,
        })
    }
}

/// `dst [rows, cols] = src [src_rows, cols][idx]` (indices clamped to `src_rows - 1`).
#[allow(clippy::too_many_arguments)]
pub fn gather_rows(
    dev: &GpuDevice,
    rows: usize,
    cols: usize,
    src_rows: usize,
    src: &RawBuf,
    idx: &RawBuf,
    dst: &RawBuf,
) -> Result<()> {
    let p = GatherParams::new("gather_rows", rows, cols, src_rows, 0)?;
    launch_1d(dev, &k::GATHER_ROWS, rows * cols, &p, &[src, idx, dst])
}

/// `dst [rows] = src [src_len][idx]` (indices clamped to `src_len - 1`).
pub fn gather_idx(
    dev: &GpuDevice,
    rows: usize,
    src_len: usize,
    src: &RawBuf,
    idx: &RawBuf,
    dst: &RawBuf,
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    if src_len == 0 {
        return Err(BackendError::Invalid { op: "gather_idx", message: "empty source".into() });
    }
    let p = GatherParams::new("gather_idx", rows, 1, src_len, 0)?;
    launch_1d(dev, &k::GATHER_IDX, rows, &p, &[src, idx, dst])
}

/// `dst[r] = src[idx[r] - first]` for rows whose index lies in `[first, first + src_rows)`.
#[allow(clippy::too_many_arguments)]
pub fn gather_rows_window(
    dev: &GpuDevice,
    rows: usize,
    cols: usize,
    first: usize,
    src_rows: usize,
    src: &RawBuf,
    idx: &RawBuf,
    dst: &RawBuf,
) -> Result<()> {
    let p = GatherParams::new("gather_rows_window", rows, cols, src_rows, first)?;
    launch_1d(dev, &k::GATHER_ROWS_WINDOW, rows * cols, &p, &[src, idx, dst])
}

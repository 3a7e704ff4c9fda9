//! Host wrapper of `shaders/clip.wgsl`: clip_by_global_norm and clip_by_value.
//! Each function records one dispatch; lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{launch_1d, u32_of};
use crate::backend::{GlobalNorm, Result};

/// Mirrors `struct ClipP` in clip.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ClipParams {
    n: u32,
    max_norm: f32,
    first: u32,
    count: u32,
    count_slot: u32,
    _pad: [u32; 3],
}

/// Mirrors `struct ValueP` in clip.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ValueParams {
    n: u32,
    limit: f32,
    _pad: [u32; 2],
}

/// Scale `x[..n]` by `min(1, max_norm / sqrt(Σ stats[first..first+count]))`; count a clip
/// event in `stats[count_slot]` when given.
pub fn clip_by_global_norm(
    dev: &GpuDevice,
    n: usize,
    norm: &GlobalNorm,
    stats: &RawBuf,
    x: &RawBuf,
) -> Result<()> {
    const OP: &str = "clip_by_global_norm";
    let GlobalNorm { max_norm, first, count, count_slot } = *norm;
    let p = ClipParams {
        n: u32_of(OP, "n", n)?,
        max_norm,
        first: u32_of(OP, "first", first)?,
        count: u32_of(OP, "count", count)?,
        count_slot: match count_slot {
            Some(s) => u32_of(OP, "count_slot", s)?,
            None => u32::MAX,
        },
        _pad: [0; 3],
    };
    launch_1d(dev, &k::CLIP_BY_GLOBAL_NORM, n.max(1), &p, &[stats, x])
}

/// `x[i] = clamp(x[i], -limit, limit)` over `n` elements.
pub fn clip_by_value(dev: &GpuDevice, n: usize, limit: f32, x: &RawBuf) -> Result<()> {
    let p = ValueParams { n: u32_of("clip_by_value", "n", n)?, limit, _pad: [0; 2] };
    launch_1d(dev, &k::CLIP_BY_VALUE, n, &p, &[x])
}

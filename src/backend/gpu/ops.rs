//! Host wrappers of the non-matmul kernels: parameter blocks and launch grids.
//! Each function records one or two dispatches; lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels::{self as k, grid_1d, Kernel};
use crate::backend::{Activation, BackendError, Result};

/// Pass-1 workgroups of a reduction, at most (fixed so results do not depend on the device).
const REDUCE_GROUPS_MAX: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Ew {
    n: u32,
    cols: u32,
    alpha: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ActParams {
    n: u32,
    act: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossParams {
    rows: u32,
    cols: u32,
    grad_scale: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RedParams {
    n: u32,
    op: u32,
    groups: u32,
    slot: u32,
    alpha: f32,
    beta: f32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct OptParams {
    n: u32,
    lr: f32,
    mu: f32,
    wd: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GatherParams {
    n: u32,
    cols: u32,
    src_rows: u32,
    first: u32,
}

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

fn u32_of(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| BackendError::Invalid {
        op,
        message: format!("{what} = {v} exceeds the 32-bit index range of the kernels"),
    })
}

fn launch_1d<P: Pod>(dev: &GpuDevice, kern: &Kernel, n: usize, p: &P, bufs: &[&RawBuf]) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let grid = grid_1d(n, dev.ctx.limits.max_compute_workgroups_per_dimension);
    dev.dispatch(kern, p, bufs, grid)
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

fn act(op: &'static str, a: Activation, n: usize) -> Result<ActParams> {
    Ok(ActParams { n: u32_of(op, "n", n)?, act: a.code(), _pad: [0; 2] })
}

/// `y = φ(z)` over `n` elements.
pub fn act_forward(dev: &GpuDevice, a: Activation, n: usize, z: &RawBuf, y: &RawBuf) -> Result<()> {
    launch_1d(dev, &k::ACT_FORWARD, n, &act("act_forward", a, n)?, &[z, y])
}

/// `dz = dy ⊙ φ'(z)` over `n` elements.
pub fn act_backward(
    dev: &GpuDevice,
    a: Activation,
    n: usize,
    z: &RawBuf,
    dy: &RawBuf,
    dz: &RawBuf,
) -> Result<()> {
    launch_1d(dev, &k::ACT_BACKWARD, n, &act("act_backward", a, n)?, &[z, dy, dz])
}

/// `out += dy ⊙ φ''(z) ⊙ rz` over `n` elements.
pub fn act_second(
    dev: &GpuDevice,
    a: Activation,
    n: usize,
    z: &RawBuf,
    dy: &RawBuf,
    rz: &RawBuf,
    out: &RawBuf,
) -> Result<()> {
    launch_1d(dev, &k::ACT_SECOND, n, &act("act_second", a, n)?, &[z, dy, rz, out])
}

fn loss(op: &'static str, rows: usize, cols: usize, grad_scale: f32) -> Result<LossParams> {
    Ok(LossParams {
        rows: u32_of(op, "rows", rows)?,
        cols: u32_of(op, "cols", cols)?,
        grad_scale,
        _pad: 0,
    })
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
    loss_out: &RawBuf,
    correct: &RawBuf,
    dlogits: &RawBuf,
) -> Result<()> {
    let p = loss("softmax_xent", rows, classes, grad_scale)?;
    launch_1d(dev, &k::SOFTMAX_XENT, rows, &p, &[logits, labels, loss_out, correct, dlogits])
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
    let p = loss("softmax_xent_rop", rows, classes, grad_scale)?;
    launch_1d(dev, &k::SOFTMAX_XENT_ROP, rows, &p, &[logits, rlogits, out])
}

/// Squared error per row of `pred, target [rows, cols]`; see `Backend::mse`.
#[allow(clippy::too_many_arguments)]
pub fn mse(
    dev: &GpuDevice,
    rows: usize,
    cols: usize,
    pred: &RawBuf,
    target: &RawBuf,
    grad_scale: f32,
    loss_out: &RawBuf,
    dpred: &RawBuf,
) -> Result<()> {
    let p = loss("mse", rows, cols, grad_scale)?;
    launch_1d(dev, &k::MSE, rows, &p, &[pred, target, loss_out, dpred])
}

/// What a two-pass reduction sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Dot = 1,
    SumSq = 2,
}

/// `out[slot] = Σ term(i)` for `i < n`, deterministic (fixed tree, two passes).
pub fn reduce(
    dev: &GpuDevice,
    op: ReduceOp,
    n: usize,
    x: &RawBuf,
    y: &RawBuf,
    out: &RawBuf,
    slot: usize,
) -> Result<()> {
    let groups = n.div_ceil(256).clamp(1, REDUCE_GROUPS_MAX);
    let scratch = dev.scratch(REDUCE_GROUPS_MAX)?;
    let p1 = RedParams {
        n: u32_of("reduce", "n", n)?,
        op: op as u32,
        groups: groups as u32,
        slot: 0,
        alpha: 1.0,
        beta: 0.0,
        _pad: [0; 2],
    };
    dev.dispatch(&k::REDUCE_PARTIAL, &p1, &[x, y, &scratch], [groups as u32, 1, 1])?;
    let p2 = RedParams { n: groups as u32, slot: u32_of("reduce", "slot", slot)?, ..p1 };
    dev.dispatch(&k::REDUCE_FINAL, &p2, &[&scratch, out], [1, 1, 1])
}

/// `out[c] = alpha Σ_r x[r, c] + beta out[c]` for `x [rows, cols]`.
pub fn col_sum(
    dev: &GpuDevice,
    rows: usize,
    cols: usize,
    alpha: f32,
    x: &RawBuf,
    beta: f32,
    out: &RawBuf,
) -> Result<()> {
    if cols == 0 {
        return Ok(());
    }
    let p = RedParams {
        n: u32_of("col_sum", "rows", rows)?,
        op: 0,
        groups: u32_of("col_sum", "cols", cols)?,
        slot: 0,
        alpha,
        beta,
        _pad: [0; 2],
    };
    let gx = u32_of("col_sum", "column blocks", cols.div_ceil(32))?;
    dev.dispatch(&k::COL_SUM, &p, &[x, out], [gx, 1, 1])
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
#[allow(clippy::too_many_arguments)]
pub fn momentum_update(
    dev: &GpuDevice,
    n: usize,
    lr: f32,
    mu: f32,
    wd: f32,
    grad: &RawBuf,
    vel: &RawBuf,
    param: &RawBuf,
) -> Result<()> {
    let p = OptParams { n: u32_of("momentum_update", "n", n)?, lr, mu, wd };
    launch_1d(dev, &k::MOMENTUM_UPDATE, n, &p, &[grad, vel, param])
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
    let n = rows * cols;
    let p = GatherParams {
        n: u32_of("gather_rows", "n", n)?,
        cols: u32_of("gather_rows", "cols", cols)?,
        src_rows: u32_of("gather_rows", "src_rows", src_rows)?,
        first: 0,
    };
    launch_1d(dev, &k::GATHER_ROWS, n, &p, &[src, idx, dst])
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
    let p = GatherParams {
        n: u32_of("gather_idx", "rows", rows)?,
        cols: 1,
        src_rows: u32_of("gather_idx", "src_len", src_len)?,
        first: 0,
    };
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
    let n = rows * cols;
    let p = GatherParams {
        n: u32_of("gather_rows_window", "n", n)?,
        cols: u32_of("gather_rows_window", "cols", cols)?,
        src_rows: u32_of("gather_rows_window", "src_rows", src_rows)?,
        first: u32_of("gather_rows_window", "first", first)?,
    };
    launch_1d(dev, &k::GATHER_ROWS_WINDOW, n, &p, &[src, idx, dst])
}

/// `x[i] = clamp(x[i], -limit, limit)` over `n` elements.
pub fn clamp(dev: &GpuDevice, n: usize, limit: f32, x: &RawBuf) -> Result<()> {
    launch_1d(dev, &k::CLAMP, n, &ew("clamp", n, 1, limit)?, &[x])
}

/// Scale `x[..n]` by `min(1, max_norm / sqrt(Σ stats[first..first+count]))`; count a clip
/// event in `stats[count_slot]` when given.
#[allow(clippy::too_many_arguments)]
pub fn clip_by_global_norm(
    dev: &GpuDevice,
    n: usize,
    max_norm: f32,
    first: usize,
    count: usize,
    count_slot: Option<usize>,
    stats: &RawBuf,
    x: &RawBuf,
) -> Result<()> {
    let p = ClipParams {
        n: u32_of("clip_by_global_norm", "n", n)?,
        max_norm,
        first: u32_of("clip_by_global_norm", "first", first)?,
        count: u32_of("clip_by_global_norm", "count", count)?,
        count_slot: match count_slot {
            Some(s) => u32_of("clip_by_global_norm", "count_slot", s)?,
            None => u32::MAX,
        },
        _pad: [0; 3],
    };
    launch_1d(dev, &k::CLIP_GLOBAL_NORM, n.max(1), &p, &[stats, x])
}

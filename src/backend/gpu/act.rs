//! Host wrapper of `shaders/act.wgsl`: act_forward, act_backward, act_second, bias_act.
//! Each function records one dispatch; lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{launch_1d, u32_of};
use crate::backend::{Activation, Result};

/// Mirrors `struct Act` in act.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ActParams {
    n: u32,
    act: u32,
    cols: u32,
    _pad: u32,
}

fn params(op: &'static str, a: Activation, n: usize) -> Result<ActParams> {
    Ok(ActParams { n: u32_of(op, "n", n)?, act: a.code(), cols: 1, _pad: 0 })
}

/// `z[r, c] += bias[c]`, then `y = φ(z)`, for `z, y: [rows, cols]` (one dispatch).
pub fn bias_act(
    dev: &GpuDevice,
    a: Activation,
    rows: usize,
    cols: usize,
    bias: &RawBuf,
    z: &RawBuf,
    y: &RawBuf,
) -> Result<()> {
    if cols == 0 {
        return Ok(());
    }
    let n = rows * cols;
    let p = ActParams { cols: u32_of("bias_act", "cols", cols)?, ..params("bias_act", a, n)? };
    launch_1d(dev, &k::BIAS_ACT, n, &p, &[bias, z, y])
}

/// `y = φ(z)` over `n` elements.
pub fn act_forward(dev: &GpuDevice, a: Activation, n: usize, z: &RawBuf, y: &RawBuf) -> Result<()> {
    launch_1d(dev, &k::ACT_FORWARD, n, &params("act_forward", a, n)?, &[z, y])
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
    check_lens("act_backward", n, &[("z", z), ("dy", dy), ("dz", dz)])?;
    launch_1d(dev, &k::ACT_BACKWARD, n, &params("act_backward", a, n)?, &[z, dy, dz])
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
    check_lens("act_second", n, &[("z", z), ("dy", dy), ("rz", rz), ("out", out)])?;
    launch_1d(dev, &k::ACT_SECOND, n, &params("act_second", a, n)?, &[z, dy, rz, out])
}

/// Every named operand holds at least `n` elements.
fn check_lens(op: &'static str, n: usize, operands: &[(&'static str, &RawBuf)]) -> Result<()> {
    operands.iter().try_for_each(|&(name, buf)| crate::backend::check_len(op, name, buf.len, n))
}

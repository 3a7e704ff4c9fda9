//! Host side of the ceilings ([`crate::backend::ceiling`]): `ceiling_fma` (ceilings.wgsl),
//! `matmul_inner_ceiling` (matmul.wgsl), `coop_ceiling4` / `coop_ceiling16`
//! (matmul_coop.wgsl) and `coop_staged_ceiling` (matmul_coop_staged.wgsl). Each run is timed
//! alone on the autotuner's clock (GPU timestamps where the adapter has them), then run once
//! more and its whole output compared with the CPU twin ([`cpu_twin`]) bit for bit: a ceiling
//! that computed something else is reported as such, never as a figure.

use bytemuck::{Pod, Zeroable};

use super::autotune::timing::time_recorded;
use super::autotune::verify::{pattern, upload_pattern};
use super::coop_shape::LoadWidth;
use super::coop_shape::SHAPE_16;
use super::device::{GpuDevice, RawBuf};
use super::elementwise::fill;
use super::kernels::{
    CEILING_FMA, COOP_CEILING16, COOP_CEILING4, COOP_STAGED_CEILING, MATMUL_INNER_CEILING,
};
use super::matmul_coop::{self, CoopBlock};
use super::matmul_f16::HalfParams;
use super::staged::StagedCfg;
use crate::backend::ceiling::{Ceiling, SALTS};
use crate::backend::cpu::ceilings::ceiling_output as cpu_twin;
use crate::backend::{BackendError, Result};

/// Mirrors `struct Params` in ceilings.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct FmaParams {
    iters: u32,
    x: f32,
    y: f32,
    _pad: u32,
}

/// `matmul.wgsl`'s parameter block (48 bytes) as the inner-loop ceiling reads it: only `k`,
/// the slice count, at word 2.
fn inner_params(iters: u32) -> [u32; 12] {
    let mut p = [0u32; 12];
    p[2] = iters;
    p
}

/// One timed ceiling.
#[derive(Clone, Debug, PartialEq)]
pub struct CeilingRun {
    pub ceiling: Ceiling,
    pub workgroups: usize,
    pub iters: u32,
    /// Median ms of one dispatch.
    pub ms: f64,
    pub tflops: f64,
    /// `gpu_timestamps` or `wall_clock`.
    pub method: &'static str,
    /// Whether the output equalled the CPU twin's bit for bit.
    pub exact: bool,
}

/// Why `ceiling` cannot run on `dev`, `None` when it can.
pub fn unavailable(dev: &GpuDevice, ceiling: Ceiling) -> Option<String> {
    if !ceiling.is_coop() {
        return None;
    }
    if let Some(why) = matmul_coop::unavailable_reason(&dev.ctx) {
        return Some(why);
    }
    if let Some(shape) = matmul_coop::coop_shape(&dev.ctx).filter(|&s| s != SHAPE_16) {
        return Some(format!("the ceilings are for 16x16 tiles; this device's are {0}x{0}", shape.tile));
    }
    let width = ceiling.staged_width()?;
    if !CoopBlock::Staged128(width).fits(&dev.ctx.limits) {
        return Some("the staged workgroup exceeds the adapter's limits".into());
    }
    match CoopBlock::Staged128(width).fits_on(&dev.ctx) {
        true => None,
        false => Some(format!(
            "{} tile loads need {:?} on Vulkan (the retyped SPIR-V module)",
            width.name(),
            width.features()
        )),
    }
}

/// The operands on the device and on the host, and the output.
struct Operands {
    a: RawBuf,
    b: RawBuf,
    out: RawBuf,
    host: (Vec<f32>, Vec<f32>),
}

fn operands(dev: &GpuDevice, ceiling: Ceiling, workgroups: usize) -> Result<Operands> {
    // The FMA chains read no operands: two elements stand in (no buffer is empty).
    let len = ceiling.operand_len().max(2);
    let half = ceiling.is_coop();
    Ok(Operands {
        a: upload_pattern(dev, "ceiling a", len, SALTS.0, half)?,
        b: upload_pattern(dev, "ceiling b", len, SALTS.1, half)?,
        out: dev.alloc("ceiling out", ceiling.out_len(workgroups))?,
        host: (pattern(len, SALTS.0), pattern(len, SALTS.1)),
    })
}

/// Record one dispatch of `workgroups` workgroups of `ceiling`, `iters` iterations each.
fn record(
    dev: &GpuDevice,
    ceiling: Ceiling,
    ops: &Operands,
    workgroups: usize,
    iters: u32,
) -> Result<()> {
    let grid = [workgroups as u32, 1, 1];
    let io = [&ops.a, &ops.b, &ops.out];
    let half = |m: u32, k: u32| HalfParams { m, n: m, k, len: iters, ..Zeroable::zeroed() };
    match ceiling {
        Ceiling::Fp32Fma => {
            let p = FmaParams { iters, x: 1.0, y: 1.0, _pad: 0 };
            dev.dispatch(&CEILING_FMA, &p, &[&ops.out], grid)
        }
        Ceiling::TiledInner => dev.dispatch(&MATMUL_INNER_CEILING, &inner_params(iters), &io, grid),
        // A [64, 16] and B [16, 64]: tile strides k = 16 and n = 64.
        Ceiling::CoopRegs2x2 => dev.dispatch(&COOP_CEILING4, &half(64, 16), &io, grid),
        Ceiling::CoopRegs4x4 => dev.dispatch(&COOP_CEILING16, &half(64, 16), &io, grid),
        // One 128x128 block, 32-deep slices.
        Ceiling::CoopStaged | Ceiling::CoopStagedV4 | Ceiling::CoopStagedV8 => {
            let width = ceiling.staged_width().unwrap_or(LoadWidth::Halves);
            let kernel =
                StagedCfg { shape: SHAPE_16, width }.ceiling_kernel().unwrap_or(COOP_STAGED_CEILING);
            dev.dispatch(&kernel, &half(128, 32), &io, grid)
        }
    }
}

/// Check the arguments: a runnable ceiling, workgroups within the grid limit, iterations within
/// the exact range.
fn check(dev: &GpuDevice, ceiling: Ceiling, workgroups: usize, iters: u32) -> Result<()> {
    let invalid = |message: String| BackendError::Invalid { op: "ceiling", message };
    if let Some(why) = unavailable(dev, ceiling) {
        return Err(invalid(format!("{} cannot run here: {why}", ceiling.name())));
    }
    let max = dev.ctx.limits.max_compute_workgroups_per_dimension as usize;
    if workgroups == 0 || workgroups > max {
        return Err(invalid(format!("{workgroups} workgroups (1 to {max})")));
    }
    if iters == 0 || iters > ceiling.max_iters() {
        return Err(invalid(format!(
            "{} iterations for {} (1 to {})",
            iters,
            ceiling.name(),
            ceiling.max_iters()
        )));
    }
    Ok(())
}

/// Run `ceiling` once on zeroed output and read the output back.
fn output(
    dev: &GpuDevice,
    ceiling: Ceiling,
    ops: &Operands,
    workgroups: usize,
    iters: u32,
) -> Result<Vec<f32>> {
    fill(dev, ops.out.len(), 0.0, &ops.out)?;
    record(dev, ceiling, ops, workgroups, iters)?;
    dev.flush()?;
    Ok(bytemuck::pod_collect_to_vec(&dev.read_bytes(&ops.out)?))
}

/// The output of `ceiling` on the device, and the CPU twin's (for the parity tests).
pub fn outputs(
    dev: &GpuDevice,
    ceiling: Ceiling,
    workgroups: usize,
    iters: u32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    check(dev, ceiling, workgroups, iters)?;
    let ops = operands(dev, ceiling, workgroups)?;
    let got = output(dev, ceiling, &ops, workgroups, iters)?;
    let (a, b) = &ops.host;
    Ok((got, cpu_twin(ceiling, workgroups, iters, a, b)))
}

/// Time `ceiling` (median of the autotuner's samples) and check its output.
pub fn measure(dev: &GpuDevice, ceiling: Ceiling, workgroups: usize, iters: u32) -> Result<CeilingRun> {
    check(dev, ceiling, workgroups, iters)?;
    let ops = operands(dev, ceiling, workgroups)?;
    let (ms, method) = time_recorded(dev, &|| record(dev, ceiling, &ops, workgroups, iters))?;
    if !(ms.is_finite() && ms > 0.0) {
        return Err(BackendError::Invalid {
            op: "ceiling",
            message: format!("{}: the clock measured {ms} ms", ceiling.name()),
        });
    }
    let got = output(dev, ceiling, &ops, workgroups, iters)?;
    let (a, b) = &ops.host;
    let want = cpu_twin(ceiling, workgroups, iters, a, b);
    let exact =
        got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
    dev.clear_bind_groups();
    let tflops = ceiling.tflops(workgroups, iters, ms);
    Ok(CeilingRun { ceiling, workgroups, iters, ms, tflops, method, exact })
}

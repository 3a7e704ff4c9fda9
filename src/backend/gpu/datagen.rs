//! Host wrapper of `shaders/datagen.wgsl`: a minibatch of a synthetic stream generated on the
//! device (the twin of [`crate::backend::cpu::datagen::generate`]).

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::launch_1d;
use crate::backend::cpu::datagen::{check_spec, table_len};
use crate::backend::{check_len, BackendError, GenKind, GenSpec, Result};

const OP: &str = "generate";

/// Parameter block of every datagen kernel (layout of `struct Gen` in the shader).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GenParams {
    rows: u32,
    dim: u32,
    classes: u32,
    outputs: u32,
    key_lo: u32,
    key_hi: u32,
    first_lo: u32,
    first_hi: u32,
    dup: u32,
    first_rem: u32,
    noise_thr: u32,
    quads: u32,
    noise_std: f32,
    threads: u32,
    _pad: [u32; 2],
}

fn u32_of(what: &str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| BackendError::Invalid {
        op: OP,
        message: format!("{what} = {v} exceeds the 32-bit range of the datagen kernels"),
    })
}

/// One dispatch of `p.threads` invocations (none when there are none).
fn launch(dev: &GpuDevice, kern: &k::Kernel, p: &GenParams, bufs: &[&RawBuf]) -> Result<()> {
    launch_1d(dev, kern, p.threads as usize, p, bufs)
}

/// Record the generation of examples `first .. first + rows` of `spec`: `x [rows, dim]`, and
/// `labels [rows]` (gaussian_mixture) or `targets [rows, outputs]` (linear_regression; `labels`
/// is not bound). `table` as in [`table_len`]. linear_regression records two dispatches
/// (x, then targets from x).
#[allow(clippy::too_many_arguments)]
pub fn generate(
    dev: &GpuDevice,
    spec: &GenSpec,
    first: u64,
    rows: usize,
    table: &RawBuf,
    x: &RawBuf,
    labels: &RawBuf,
    targets: &RawBuf,
) -> Result<()> {
    let noise_thr = check_spec(spec, first, rows)?;
    let dim = spec.dim;
    check_len(OP, "table", table.len(), table_len(spec))?;
    check_len(OP, "x", x.len(), rows * dim)?;
    if rows == 0 {
        return Ok(());
    }
    let dup = spec.duplicates;
    let first_d = first / dup;
    let first_rem = first % dup;
    // (first % dup) + r must stay below 2^32 in the shader.
    u32_of("duplicates + rows", dup.saturating_add(rows as u64))?;
    let quads = dim.div_ceil(4) as u64;
    let mut p = GenParams {
        rows: u32_of("rows", rows as u64)?,
        dim: u32_of("dim", dim as u64)?,
        classes: u32_of("classes", spec.classes as u64)?,
        outputs: u32_of("outputs", spec.outputs as u64)?,
        key_lo: spec.seed as u32,
        key_hi: (spec.seed >> 32) as u32,
        first_lo: first_d as u32,
        first_hi: (first_d >> 32) as u32,
        dup: dup as u32,
        first_rem: first_rem as u32,
        noise_thr,
        quads: quads as u32,
        noise_std: spec.noise_std,
        threads: 0,
        _pad: [0; 2],
    };
    match spec.kind {
        GenKind::GaussianMixture => {
            check_len(OP, "labels", labels.len(), rows)?;
            u32_of("rows * dim", (rows * dim) as u64)?;
            p.threads = u32_of("rows * ceil(dim / 4)", rows as u64 * quads.max(1))?;
            launch(dev, &k::GENERATE_GAUSSIAN_MIXTURE, &p, &[table, x, labels])
        }
        GenKind::LinearRegression => {
            let k_out = spec.outputs;
            check_len(OP, "targets", targets.len(), rows * k_out)?;
            u32_of("rows * dim", (rows * dim) as u64)?;
            p.threads = u32_of("rows * ceil(dim / 4)", rows as u64 * quads)?;
            launch(dev, &k::GENERATE_LINEAR_X, &p, &[table, x])?;
            p.threads = u32_of("rows * outputs", (rows * k_out) as u64)?;
            // Each target walks its row's `dim` inputs.
            let what = format!("a regression target of data.dim = {dim} inputs");
            super::launch::check_loop_budget(dev, OP, dim as u64, &what)?;
            launch(dev, &k::GENERATE_LINEAR_TARGETS, &p, &[table, x, targets])
        }
    }
}

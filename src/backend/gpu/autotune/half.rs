//! The f16 products' candidates: which kernels the autotuner times for a half product, and the
//! kernel each candidate runs.

use super::Candidate;
use crate::backend::gpu::coop_shape::LoadWidth;
use crate::backend::gpu::matmul_coop::CoopBlock;
use crate::backend::gpu::matmul_f16::{choose as choose_half, coop64_enabled, skinny, HalfKernel};
use crate::backend::gpu::GpuDevice;
use crate::backend::Gemm;

/// The candidates of an f16 product whose default (what `gpu.autotune = off` runs,
/// [`super::matmul_f16::choose`]) is `default`, the default first. Where that is a cooperative
/// kernel (the adapter offers it, the shape fits it, `BATCHSCOPE_COOP` is not `0`) the other
/// cooperative kernels, each with f16, vec4<f16> and 16-byte tile loads (the 64x64 ones unless
/// `coop64` is off: `BATCHSCOPE_COOP64=0`; the staged ones where `staged`, the adapter's limits
/// admitting their workgroup) and the packed kernel follow; where it is the skinny kernel the packed one follows; otherwise the packed
/// kernel is the only candidate here ([`half_candidates_on`] adds the skinny one by shape).
pub fn half_candidates(default: HalfKernel, coop64: bool, staged: bool) -> Vec<Candidate> {
    let of = half_candidate;
    let mut out = vec![of(default)];
    if default == HalfKernel::Skinny {
        out.push(of(HalfKernel::Packed));
    } else if default != HalfKernel::Packed {
        use HalfKernel::*;
        let others = [
            CoopStaged,
            CoopStagedV4,
            CoopStagedV8,
            Coop64,
            Coop64V4,
            Coop64V8,
            Coop,
            CoopV4,
            CoopV8,
            Packed,
        ];
        let allowed = |k: &HalfKernel| match k {
            Coop64 | Coop64V4 | Coop64V8 => coop64,
            CoopStaged | CoopStagedV4 | CoopStagedV8 => staged,
            _ => true,
        };
        for k in others.into_iter().filter(allowed) {
            if !out.contains(&of(k)) {
                out.push(of(k));
            }
        }
    }
    out
}

/// The candidate that runs the f16 kernel `k`.
pub fn half_candidate(k: HalfKernel) -> Candidate {
    match k {
        HalfKernel::Packed => Candidate::HalfPacked,
        HalfKernel::Skinny => Candidate::HalfSkinny,
        HalfKernel::Coop => Candidate::HalfCoop,
        HalfKernel::Coop64 => Candidate::HalfCoop64,
        HalfKernel::CoopStaged => Candidate::HalfCoopStaged,
        HalfKernel::CoopV4 => Candidate::HalfCoopV4,
        HalfKernel::Coop64V4 => Candidate::HalfCoop64V4,
        HalfKernel::CoopStagedV4 => Candidate::HalfCoopStagedV4,
        HalfKernel::CoopV8 => Candidate::HalfCoopV8,
        HalfKernel::Coop64V8 => Candidate::HalfCoop64V8,
        HalfKernel::CoopStagedV8 => Candidate::HalfCoopStagedV8,
    }
}

/// The kernel a timed f16 candidate runs (`None` for an f32 candidate).
pub fn half_kernel_of(c: Candidate) -> Option<HalfKernel> {
    match c {
        Candidate::HalfPacked => Some(HalfKernel::Packed),
        Candidate::HalfSkinny => Some(HalfKernel::Skinny),
        Candidate::HalfCoop => Some(HalfKernel::Coop),
        Candidate::HalfCoop64 => Some(HalfKernel::Coop64),
        Candidate::HalfCoopStaged => Some(HalfKernel::CoopStaged),
        Candidate::HalfCoopV4 => Some(HalfKernel::CoopV4),
        Candidate::HalfCoop64V4 => Some(HalfKernel::Coop64V4),
        Candidate::HalfCoopStagedV4 => Some(HalfKernel::CoopStagedV4),
        Candidate::HalfCoopV8 => Some(HalfKernel::CoopV8),
        Candidate::HalfCoop64V8 => Some(HalfKernel::Coop64V8),
        Candidate::HalfCoopStagedV8 => Some(HalfKernel::CoopStagedV8),
        _ => None,
    }
}

/// [`half_candidates`] of `g` on `dev`, less the cooperative kernels the first-use check
/// did not find exact, and the skinny kernel last where a side of C is at most
/// [`skinny::TUNE_MAX_SIDE`] (the output layer's products, small batches).
pub(super) fn half_candidates_on(dev: &GpuDevice, g: &Gemm) -> Vec<Candidate> {
    let staged = CoopBlock::Staged128(LoadWidth::Halves).fits_on(&dev.ctx);
    let mut out = half_candidates(choose_half(dev, g), coop64_enabled(), staged);
    // Only the cooperative kernels the first-use check found exact (`coop_check`).
    out.retain(|&c| match half_kernel_of(c) {
        Some(k) if k.coop_block().is_some() => crate::backend::gpu::coop_check::trusted_kernel(dev, k),
        _ => true,
    });
    if g.m.min(g.n) <= skinny::TUNE_MAX_SIDE && !out.contains(&Candidate::HalfSkinny) {
        out.push(Candidate::HalfSkinny);
    }
    out
}

//! Host side of `shaders/matmul_coop.wgsl`: the f16 GEMM on cooperative matrices (tensor
//! cores), used by [`super::matmul_f16::matmul_half`] where [`available`] and [`eligible`].

use super::context::GpuContext;
use super::device::{GpuDevice, RawBuf};
use super::kernels::{
    Kernel, MATMUL_COOP64, MATMUL_COOP_NN, MATMUL_COOP_NT, MATMUL_COOP_TN, MATMUL_COOP_TT,
};
use super::matmul_f16::HalfParams;
use super::staged::{CoopShape, StagedCfg, Staging, SHAPE_16, SHAPE_8};
use crate::backend::{BackendError, Gemm, Result};

/// Side of one cooperative tile, and of a workgroup's block of C (2x2 tiles).
const TILE: usize = 16;
const BLOCK: usize = 32;
/// Side of a `matmul_coop64` workgroup's block of C (4x4 tiles).
pub const BLOCK64: usize = 64;

/// Which block of C one subgroup (one workgroup) of the cooperative kernel owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoopBlock {
    /// `matmul_coop_{nn,nt,tn,tt}`: 32x32, 2x2 tiles.
    B32,
    /// `matmul_coop64`: 64x64, 4x4 tiles (half the tile loads per multiply-add).
    B64,
    /// `matmul_coop_staged.wgsl`: 128x128 per workgroup of 4 subgroups (64x64 each), the
    /// operands staged through 40 KiB of workgroup memory (padded rows, double-buffered), with
    /// `staging` stores (see [`super::staged`]).
    Staged128(Staging),
}

impl CoopBlock {
    /// Side of the block at 16x16 tiles.
    pub fn side(self) -> usize {
        match self {
            CoopBlock::B32 => BLOCK,
            CoopBlock::B64 => BLOCK64,
            CoopBlock::Staged128(staging) => StagedCfg { shape: SHAPE_16, staging }.block() as usize,
        }
    }

    /// Whether the adapter's limits admit this block's workgroup at 16x16 tiles.
    pub fn fits(self, limits: &wgpu::Limits) -> bool {
        match self {
            CoopBlock::B32 | CoopBlock::B64 => true,
            CoopBlock::Staged128(staging) => StagedCfg { shape: SHAPE_16, staging }.fits(limits),
        }
    }
}

/// The device features the kernel needs.
pub fn features() -> wgpu::Features {
    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
}

/// Whether `props` hold the configuration the kernel uses: 16x16x16, f16 x f16 → f32.
pub fn has_f16_16x16(props: &[wgpu::CooperativeMatrixProperties]) -> bool {
    props.iter().any(|p| {
        (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
            && p.ab_type == wgpu::CooperativeScalarType::F16
            && p.cr_type == wgpu::CooperativeScalarType::F32
    })
}

/// Why the cooperative kernel cannot run on this device, or `None` when it can: the features
/// on the device, a 16x16 f16→f32 configuration, and subgroups of exactly 32 (one subgroup per
/// workgroup). Found once per device.
pub fn unavailable_reason(ctx: &GpuContext) -> Option<String> {
    reason(ctx).clone()
}

fn reason(ctx: &GpuContext) -> &Option<String> {
    ctx.coop_unavailable.get_or_init(|| find_reason(ctx))
}

fn find_reason(ctx: &GpuContext) -> Option<String> {
    let missing = features() - ctx.features;
    if !missing.is_empty() {
        return Some(format!("the device lacks {}", names(missing)));
    }
    adapter_reason(&ctx.adapter)
}

/// Why an adapter cannot run the kernels, `None` when it can (`batchscope devices` says so per
/// adapter): the features it offers, a 16x16 f16 → f32 configuration, subgroups of exactly 32.
pub fn adapter_reason(adapter: &wgpu::Adapter) -> Option<String> {
    let missing = features() - adapter.features();
    if !missing.is_empty() {
        return Some(format!("the adapter lacks {}", names(missing)));
    }
    if !has_f16_16x16(&adapter.cooperative_matrix_properties()) {
        return Some("no 16x16x16 f16 x f16 -> f32 cooperative matrix configuration".into());
    }
    let info = adapter.get_info();
    if (info.subgroup_min_size, info.subgroup_max_size) != (32, 32) {
        return Some(format!(
            "subgroup size {}..{} is not exactly 32",
            info.subgroup_min_size, info.subgroup_max_size
        ));
    }
    None
}

/// Feature names, `A | B`.
fn names(f: wgpu::Features) -> String {
    f.iter_names().map(|(n, _)| n).collect::<Vec<_>>().join(" | ")
}

/// The adapter's cooperative-matrix configurations, as `16x16x16 f16*f16->f32`.
pub fn configurations(adapter: &wgpu::Adapter) -> Vec<String> {
    let name = |t: wgpu::CooperativeScalarType| format!("{t:?}").to_lowercase();
    adapter
        .cooperative_matrix_properties()
        .iter()
        .map(|p| {
            let sat = if p.saturating_accumulation { " (saturating)" } else { "" };
            format!(
                "{}x{}x{} {}*{}->{}{sat}",
                p.m_size,
                p.n_size,
                p.k_size,
                name(p.ab_type),
                name(p.ab_type),
                name(p.cr_type)
            )
        })
        .collect()
}

/// Whether the kernel can run on this device (asked per f16 product: no allocation).
pub fn available(ctx: &GpuContext) -> bool {
    reason(ctx).is_none()
}

/// The shape the staged kernels run at on this device: 16x16 where the other cooperative
/// kernels run ([`available`]); else 8x8 where the device has the features and the adapter
/// offers 8x8x8 f16 x f16 → f32 on subgroups of exactly 8 (Mesa's lavapipe), so that their
/// code runs and is checked on a CPU; else `None`. Found once per device.
pub fn staged_shape(ctx: &GpuContext) -> Option<CoopShape> {
    *ctx.coop_staged_shape.get_or_init(|| {
        if available(ctx) {
            return Some(SHAPE_16);
        }
        let has_8 = ctx.adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (8, 8, 8)
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        });
        let info = ctx.adapter.get_info();
        let exact_8 = (info.subgroup_min_size, info.subgroup_max_size) == (8, 8);
        (ctx.features.contains(features()) && has_8 && exact_8).then_some(SHAPE_8)
    })
}

/// Whether `g` fits the kernels: m, n, k multiples of 16, `alpha = 1`, `beta = 0`, and a grid
/// within the per-dimension limit (no folding; the 64x64 grid is the smaller).
pub fn eligible(g: &Gemm, dev: &GpuDevice) -> bool {
    fits_tiles(g, dev, TILE, BLOCK)
}

/// `g` in tiles of `tile`, on a grid of `block`-sided blocks within the per-dimension limit.
fn fits_tiles(g: &Gemm, dev: &GpuDevice, tile: usize, block: usize) -> bool {
    let max = dev.ctx.limits.max_compute_workgroups_per_dimension as usize;
    [g.m, g.n, g.k].iter().all(|&d| d > 0 && d.is_multiple_of(tile))
        && g.alpha == 1.0
        && g.beta == 0.0
        && g.m.div_ceil(block) <= max
        && g.n.div_ceil(block) <= max
}

/// The entry point for `g` with `block`: the 32x32 kernels have one per transpose pair, the
/// 64x64 one reads the transposes from its parameters.
pub fn kernel_for(g: &Gemm, block: CoopBlock) -> Kernel {
    match block {
        CoopBlock::B64 => return MATMUL_COOP64,
        CoopBlock::Staged128(staging) => {
            return StagedCfg { shape: SHAPE_16, staging }
                .kernel()
                .unwrap_or(super::kernels::MATMUL_COOP_STAGED)
        }
        CoopBlock::B32 => {}
    }
    match (g.trans_a, g.trans_b) {
        (false, false) => MATMUL_COOP_NN,
        (false, true) => MATMUL_COOP_NT,
        (true, false) => MATMUL_COOP_TN,
        (true, true) => MATMUL_COOP_TT,
    }
}

/// Record the cooperative product with its fused epilogue (`p.epi`, `p.half_out`, `p.unscale`;
/// `epi`: the bindings 4..7 of the f16 epilogue, include/epilogue_f16.wgsl). The caller checked lengths; this checks
/// eligibility.
pub(super) fn dispatch(
    dev: &GpuDevice,
    g: &Gemm,
    block: CoopBlock,
    p: &HalfParams,
    [a, b, c]: [&RawBuf; 3],
    epi: &[RawBuf; 4],
) -> Result<()> {
    if let CoopBlock::Staged128(staging) = block {
        return dispatch_staged(dev, g, staging, p, [a, b, c], epi);
    }
    if let Some(why) = unavailable_reason(&dev.ctx) {
        return Err(BackendError::Invalid { op: "matmul_coop", message: why });
    }
    if !eligible(g, dev) || !block.fits(&dev.ctx.limits) {
        return Err(BackendError::Invalid {
            op: "matmul_coop",
            message: format!(
                "{}x{}x{} (alpha {}, beta {}) does not fit",
                g.m, g.n, g.k, g.alpha, g.beta
            ),
        });
    }
    let side = block.side();
    let grid = [g.n.div_ceil(side) as u32, g.m.div_ceil(side) as u32, 1];
    let [e_in, e_out, h, state] = epi;
    dev.dispatch(&kernel_for(g, block), p, &[a, b, c, e_in, e_out, h, state], grid)
}

/// The staged kernel at the device's [`staged_shape`]: 128x128 blocks at 16x16 tiles, 64x64 at
/// 8x8 (m, n, k multiples of the tile side).
fn dispatch_staged(
    dev: &GpuDevice,
    g: &Gemm,
    staging: Staging,
    p: &HalfParams,
    [a, b, c]: [&RawBuf; 3],
    epi: &[RawBuf; 4],
) -> Result<()> {
    let invalid = |message: String| BackendError::Invalid { op: "matmul_coop_staged", message };
    let Some(shape) = staged_shape(&dev.ctx) else {
        let why = unavailable_reason(&dev.ctx).unwrap_or_default();
        return Err(invalid(format!("{why}, and no 8x8 f16 configuration on subgroups of 8")));
    };
    let cfg = StagedCfg { shape, staging };
    let side = cfg.block() as usize;
    if !fits_tiles(g, dev, shape.tile as usize, side) || !cfg.fits(&dev.ctx.limits) {
        return Err(invalid(format!(
            "{}x{}x{} (alpha {}, beta {}) does not fit {}x{} tiles",
            g.m, g.n, g.k, g.alpha, g.beta, shape.tile, shape.tile
        )));
    }
    let kernel = cfg.kernel().ok_or_else(|| invalid(format!("{cfg:?} is not in the family")))?;
    let grid = [g.n.div_ceil(side) as u32, g.m.div_ceil(side) as u32, 1];
    let [e_in, e_out, h, state] = epi;
    dev.dispatch(&kernel, p, &[a, b, c, e_in, e_out, h, state], grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_name_their_kernels_and_the_staged_one_needs_its_workgroup() {
        let g = Gemm::nn(64, 64, 64).trans(true, false);
        assert_eq!(kernel_for(&g, CoopBlock::B32).entry, "matmul_coop_tn");
        assert_eq!(kernel_for(&g, CoopBlock::B64).entry, "matmul_coop64");
        let staged = CoopBlock::Staged128(Staging::Halves);
        let staged4 = CoopBlock::Staged128(Staging::Vec4);
        assert_eq!(kernel_for(&g, staged).entry, "matmul_coop_staged");
        assert_eq!(kernel_for(&g, staged).name, "MatmulCoopStaged::matmul_coop_staged");
        assert_eq!(kernel_for(&g, staged4).name, "MatmulCoopStaged::matmul_coop_staged_v4");
        let sides: Vec<usize> =
            [CoopBlock::B32, CoopBlock::B64, staged, staged4].iter().map(|b| b.side()).collect();
        assert_eq!(sides, [32, 64, 128, 128]);
        // The H200's Vulkan adapter: 48 KiB of workgroup memory (wgpu's default is 16).
        let roomy = wgpu::Limits { max_compute_workgroup_storage_size: 48 * 1024, ..Default::default() };
        assert!([CoopBlock::B32, CoopBlock::B64, staged, staged4].iter().all(|b| b.fits(&roomy)));
        let few = wgpu::Limits { max_compute_invocations_per_workgroup: 64, ..roomy.clone() };
        assert!(!staged.fits(&few) && !staged4.fits(&few) && CoopBlock::B64.fits(&few));
        let small = wgpu::Limits { max_compute_workgroup_storage_size: 32 * 1024, ..roomy };
        assert!(!staged.fits(&small) && !staged4.fits(&small));
    }
}

//! Host side of `shaders/matmul_coop.wgsl`: the f16 GEMM on cooperative matrices (tensor
//! cores), used by [`super::matmul_f16::matmul_half`] where [`available`] and [`eligible`].
//! The kernels run in the tile the device offers ([`coop_shape`]): 16x16 on the H200, 8x8 on
//! Mesa's lavapipe (see [`super::coop_shape`]); sides below are at 16x16 unless they say not.

use super::context::GpuContext;
use super::coop_module::{CoopEntry, CoopModule};
use super::coop_shape::{adapter_shape, features, CoopShape, LoadWidth, SHAPE_16};
use super::device::{GpuDevice, RawBuf};
use super::kernels::Kernel;
use super::matmul_f16::HalfParams;
use super::staged::StagedCfg;
use crate::backend::{BackendError, Gemm, Result};

/// Side of a `matmul_coop64` workgroup's block of C at 16x16 tiles (4x4 tiles).
pub const BLOCK64: usize = 64;

/// Which block of C one subgroup (one workgroup) of the cooperative kernel owns, and the
/// element its tile loads read ([`LoadWidth`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoopBlock {
    /// `matmul_coop`: 2x2 tiles (32x32), loaded from storage.
    B32(LoadWidth),
    /// `matmul_coop64`: 4x4 tiles (64x64; half the tile loads per multiply-add), loaded from
    /// storage.
    B64(LoadWidth),
    /// `matmul_coop_staged.wgsl`: 8x8 tiles (128x128) per workgroup of 4 subgroups (4x4 tiles
    /// each), the operands staged through 40 KiB of workgroup memory (padded rows,
    /// double-buffered) of elements of the width (see [`super::staged`]).
    Staged128(LoadWidth),
}

impl CoopBlock {
    /// The element its tile loads read.
    pub fn width(self) -> LoadWidth {
        match self {
            CoopBlock::B32(w) | CoopBlock::B64(w) | CoopBlock::Staged128(w) => w,
        }
    }

    /// Side of the block at 16x16 tiles.
    pub fn side(self) -> usize {
        self.side_at(SHAPE_16)
    }

    /// Side of the block in tiles of `shape`: 2, 4 or 8 tiles.
    pub fn side_at(self, shape: CoopShape) -> usize {
        let tiles = match self {
            CoopBlock::B32(_) => 2,
            CoopBlock::B64(_) => 4,
            CoopBlock::Staged128(_) => 8,
        };
        tiles * shape.tile as usize
    }

    /// Whether the adapter's limits admit this block's workgroup at 16x16 tiles.
    pub fn fits(self, limits: &wgpu::Limits) -> bool {
        self.fits_at(SHAPE_16, limits)
    }

    /// Whether `limits` admit this block's workgroup in the tiles of `shape`.
    pub fn fits_at(self, shape: CoopShape, limits: &wgpu::Limits) -> bool {
        match self {
            CoopBlock::B32(_) | CoopBlock::B64(_) => true,
            CoopBlock::Staged128(width) => StagedCfg { shape, width }.fits(limits),
        }
    }

    /// Whether this device's limits admit the block's workgroup in its tiles ([`coop_shape`];
    /// 16x16 where it has none) and it has the features of the block's load width (the
    /// retyped 16-byte loads are SPIR-V: Vulkan only).
    pub fn fits_on(self, ctx: &GpuContext) -> bool {
        let width = self.width();
        self.fits_at(coop_shape(ctx).unwrap_or(SHAPE_16), &ctx.limits)
            && ctx.features.contains(width.features())
            && (!width.retyped() || ctx.summary.backend == "Vulkan")
    }
}

pub use super::coop_module::prefetch;

/// Why the cooperative kernels cannot run on this device, or `None` when they can: the
/// features on the device, then [`adapter_shape`]. Found once per device.
pub fn unavailable_reason(ctx: &GpuContext) -> Option<String> {
    found(ctx).as_ref().err().cloned()
}

/// The tile the cooperative kernels run in on this device ([`super::coop_shape`]), `None`
/// where they cannot run.
pub fn coop_shape(ctx: &GpuContext) -> Option<CoopShape> {
    found(ctx).as_ref().ok().copied()
}

fn found(ctx: &GpuContext) -> &std::result::Result<CoopShape, String> {
    ctx.coop_shape.get_or_init(|| {
        let missing = features() - ctx.features;
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter_names().map(|(n, _)| n).collect();
            return Err(format!("the device lacks {}", names.join(" | ")));
        }
        adapter_shape(&ctx.adapter)
    })
}

/// Why an adapter cannot run the kernels, `None` when it can (`batchscope devices` says so per
/// adapter).
pub fn adapter_reason(adapter: &wgpu::Adapter) -> Option<String> {
    adapter_shape(adapter).err()
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

/// Whether the kernels can run on this device (asked per f16 product: no allocation).
pub fn available(ctx: &GpuContext) -> bool {
    found(ctx).is_ok()
}

/// Whether `g` fits the kernels: m, n, k multiples of the device's tile side (16 where it has
/// none), `alpha = 1`, `beta = 0`, and a grid within the per-dimension limit (no folding; the
/// 2x2-tile grid is the largest).
pub fn eligible(g: &Gemm, dev: &GpuDevice) -> bool {
    let shape = coop_shape(&dev.ctx).unwrap_or(SHAPE_16);
    fits_tiles(g, dev, shape.tile as usize, CoopBlock::B32(LoadWidth::Halves).side_at(shape))
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

/// The kernel of `g` with `block` in the tiles of `shape`: every block has one module per
/// transpose pair ([`super::coop_module`], [`super::staged`]); `None` outside the families.
pub fn kernel_in(g: &Gemm, block: CoopBlock, shape: CoopShape) -> Option<Kernel> {
    let (trans_a, trans_b, width) = (g.trans_a, g.trans_b, block.width());
    match block {
        CoopBlock::Staged128(_) => StagedCfg { shape, width }.kernel(trans_a, trans_b),
        CoopBlock::B32(_) => CoopModule { shape, width, trans_a, trans_b }.kernel(CoopEntry::Block32),
        CoopBlock::B64(_) => CoopModule { shape, width, trans_a, trans_b }.kernel(CoopEntry::Block64),
    }
}

/// Record the cooperative product with its fused epilogue (`p.epi`, `p.half_out`, `p.unscale`;
/// `epi`: the bindings 4..7 of the f16 epilogue, include/epilogue_f16.wgsl) in the device's
/// tiles ([`coop_shape`]). The caller checked lengths; this checks eligibility.
pub(super) fn dispatch(
    dev: &GpuDevice,
    g: &Gemm,
    block: CoopBlock,
    p: &HalfParams,
    [a, b, c]: [&RawBuf; 3],
    epi: &[RawBuf; 4],
) -> Result<()> {
    let invalid = |message: String| BackendError::Invalid { op: "matmul_coop", message };
    let shape =
        coop_shape(&dev.ctx).ok_or_else(|| invalid(unavailable_reason(&dev.ctx).unwrap_or_default()))?;
    let side = block.side_at(shape);
    if !fits_tiles(g, dev, shape.tile as usize, side) || !block.fits_at(shape, &dev.ctx.limits) {
        return Err(invalid(format!(
            "{}x{}x{} (alpha {}, beta {}) does not fit {:?} in {}x{} tiles",
            g.m, g.n, g.k, g.alpha, g.beta, block, shape.tile, shape.tile
        )));
    }
    let kernel = kernel_in(g, block, shape)
        .ok_or_else(|| invalid(format!("no {block:?} kernel for {shape:?}")))?;
    let grid = [g.n.div_ceil(side) as u32, g.m.div_ceil(side) as u32, 1];
    let [e_in, e_out, h, state] = epi;
    dev.dispatch(&kernel, p, &[a, b, c, e_in, e_out, h, state], grid)
}

#[cfg(test)]
mod tests {
    use super::super::coop_shape::SHAPE_8;
    use super::*;

    /// The kernel of `g` with `block` at 16x16 tiles.
    fn kernel16(g: &Gemm, block: CoopBlock) -> Kernel {
        kernel_in(g, block, SHAPE_16).expect("every block has 16x16 kernels")
    }

    #[test]
    fn blocks_name_their_kernels_and_the_staged_one_needs_its_workgroup() {
        let g = Gemm::nn(64, 64, 64).trans(true, false);
        let (b32, b64) = (CoopBlock::B32(LoadWidth::Halves), CoopBlock::B64(LoadWidth::Halves));
        assert_eq!(kernel16(&g, b32).entry, "matmul_coop");
        assert_eq!(kernel16(&g, b32).name, "MatmulCoop::matmul_coop_tn");
        assert_eq!(kernel16(&g, CoopBlock::B32(LoadWidth::Vec4)).name, "MatmulCoop::matmul_coop_tn_v4");
        assert_eq!(kernel16(&g, b64).entry, "matmul_coop64");
        assert_eq!(
            kernel16(&g, CoopBlock::B64(LoadWidth::Vec4)).name,
            "MatmulCoop::matmul_coop64_tn_v4"
        );
        let staged = CoopBlock::Staged128(LoadWidth::Halves);
        let staged4 = CoopBlock::Staged128(LoadWidth::Vec4);
        assert_eq!(kernel16(&g, staged).entry, "matmul_coop_staged");
        assert_eq!(kernel16(&g, staged).name, "MatmulCoopStaged::matmul_coop_staged_tn");
        assert_eq!(kernel16(&g, staged4).name, "MatmulCoopStaged::matmul_coop_staged_tn_v4");
        let nt = Gemm::nn(64, 64, 64).trans(false, true);
        assert_eq!(kernel16(&nt, staged).name, "MatmulCoopStaged::matmul_coop_staged_nt");
        assert_eq!(kernel16(&nt, b64).name, "MatmulCoop::matmul_coop64_nt");
        assert_eq!(
            kernel_in(&nt, CoopBlock::Staged128(LoadWidth::Vec8), SHAPE_8).map(|k| k.name),
            Some("MatmulCoopStaged::matmul_coop_staged_nt_t8_v8")
        );
        let sides: Vec<usize> = [b32, b64, staged, staged4].iter().map(|b| b.side()).collect();
        assert_eq!(sides, [32, 64, 128, 128]);
        // The H200's Vulkan adapter: 48 KiB of workgroup memory (wgpu's default is 16).
        let roomy = wgpu::Limits { max_compute_workgroup_storage_size: 48 * 1024, ..Default::default() };
        assert!([b32, b64, staged, staged4].iter().all(|b| b.fits(&roomy)));
        let few = wgpu::Limits { max_compute_invocations_per_workgroup: 64, ..roomy.clone() };
        assert!(!staged.fits(&few) && !staged4.fits(&few) && b64.fits(&few));
        let small = wgpu::Limits { max_compute_workgroup_storage_size: 32 * 1024, ..roomy };
        assert!(!staged.fits(&small) && !staged4.fits(&small));
    }

    #[test]
    fn every_block_has_a_kernel_of_its_own_per_pair_tile_and_width() {
        let g = Gemm::nn(64, 64, 64);
        let mut names = Vec::new();
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let g = g.trans(ta, tb);
            for width in LoadWidth::ALL {
                for block in [CoopBlock::B32(width), CoopBlock::B64(width), CoopBlock::Staged128(width)]
                {
                    let k16 = kernel16(&g, block);
                    let k8 = kernel_in(&g, block, SHAPE_8).expect("8x8");
                    assert_eq!((k16.entry, k16.bindings), (k8.entry, k8.bindings));
                    assert_ne!(k16.name, k8.name);
                    assert_ne!(k16.shader, k8.shader);
                    assert_eq!(block.side_at(SHAPE_8) * 2, block.side());
                    assert_eq!(block.width(), width);
                    names.extend([k16.name, k8.name]);
                }
            }
        }
        names.sort();
        names.dedup();
        // 3 blocks in 4 transpose pairs, 2 tiles and 3 widths.
        assert_eq!(names.len(), 3 * 4 * 2 * 3, "{names:?}");
        let odd = CoopShape { tile: 16, subgroup: 64 };
        assert!(kernel_in(&g, CoopBlock::B32(LoadWidth::Halves), odd).is_none());
    }
}

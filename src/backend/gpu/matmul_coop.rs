//! Host side of `shaders/matmul_coop.wgsl`: the f16 GEMM on cooperative matrices (tensor
//! cores), used by [`super::matmul_f16::matmul_half`] where [`available`] and [`eligible`].
//! The kernels run in the tile the device offers ([`coop_shape`]): 16x16 on the H200, 8x8 on
//! Mesa's lavapipe (see [`super::coop_shape`]); sides below are at 16x16 unless they say not.

use super::context::GpuContext;
use super::coop_shape::{adapter_shape, features, CoopShape, SHAPE_16, SHAPE_8};
use super::device::{GpuDevice, RawBuf};
use super::kernels::{
    Kernel, Shader, MATMUL_COOP64, MATMUL_COOP_NN, MATMUL_COOP_NT, MATMUL_COOP_TN, MATMUL_COOP_TT,
};
use super::matmul_f16::HalfParams;
use super::staged::{StagedCfg, Staging};
use crate::backend::{BackendError, Gemm, Result};

/// Side of a `matmul_coop64` workgroup's block of C at 16x16 tiles (4x4 tiles).
pub const BLOCK64: usize = 64;

/// Which block of C one subgroup (one workgroup) of the cooperative kernel owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoopBlock {
    /// `matmul_coop_{nn,nt,tn,tt}`: 2x2 tiles (32x32).
    B32,
    /// `matmul_coop64`: 4x4 tiles (64x64; half the tile loads per multiply-add).
    B64,
    /// `matmul_coop_staged.wgsl`: 8x8 tiles (128x128) per workgroup of 4 subgroups (4x4 tiles
    /// each), the operands staged through 40 KiB of workgroup memory (padded rows,
    /// double-buffered), with `staging` stores (see [`super::staged`]).
    Staged128(Staging),
}

impl CoopBlock {
    /// Side of the block at 16x16 tiles.
    pub fn side(self) -> usize {
        self.side_at(SHAPE_16)
    }

    /// Side of the block in tiles of `shape`: 2, 4 or 8 tiles.
    pub fn side_at(self, shape: CoopShape) -> usize {
        let tiles = match self {
            CoopBlock::B32 => 2,
            CoopBlock::B64 => 4,
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
            CoopBlock::B32 | CoopBlock::B64 => true,
            CoopBlock::Staged128(staging) => StagedCfg { shape, staging }.fits(limits),
        }
    }

    /// Whether this device's limits admit the block's workgroup in its tiles ([`coop_shape`];
    /// 16x16 where it has none).
    pub fn fits_on(self, ctx: &GpuContext) -> bool {
        self.fits_at(coop_shape(ctx).unwrap_or(SHAPE_16), &ctx.limits)
    }
}

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
    fits_tiles(g, dev, shape.tile as usize, CoopBlock::B32.side_at(shape))
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

/// The entry point for `g` with `block` at 16x16 tiles: the 2x2-tile kernels have one per
/// transpose pair, the 4x4-tile one reads the transposes from its parameters.
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

/// `matmul_coop.wgsl`'s kernels at 8x8 tiles, by entry point (pipelines are cached by name).
const NAMES_8: [(&str, &str); 7] = [
    ("matmul_coop_nn", "MatmulCoop::matmul_coop_nn_t8"),
    ("matmul_coop_nt", "MatmulCoop::matmul_coop_nt_t8"),
    ("matmul_coop_tn", "MatmulCoop::matmul_coop_tn_t8"),
    ("matmul_coop_tt", "MatmulCoop::matmul_coop_tt_t8"),
    ("matmul_coop64", "MatmulCoop::matmul_coop64_t8"),
    ("coop_ceiling4", "MatmulCoop::coop_ceiling4_t8"),
    ("coop_ceiling16", "MatmulCoop::coop_ceiling16_t8"),
];

/// `k` (a kernel of `matmul_coop.wgsl` at 16x16 tiles) compiled for `shape`; `None` for a
/// shape or kernel outside the family.
pub fn at_shape(k: Kernel, shape: CoopShape) -> Option<Kernel> {
    match shape {
        SHAPE_16 => Some(k),
        SHAPE_8 => {
            let (_, name) = NAMES_8.iter().find(|(entry, _)| *entry == k.entry)?;
            Some(Kernel { name, shader: Shader::MatmulCoop(SHAPE_8), ..k })
        }
        _ => None,
    }
}

/// The kernel of `g` with `block` in the tiles of `shape`.
pub fn kernel_in(g: &Gemm, block: CoopBlock, shape: CoopShape) -> Option<Kernel> {
    match block {
        CoopBlock::Staged128(staging) => StagedCfg { shape, staging }.kernel(),
        _ => at_shape(kernel_for(g, block), shape),
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

    #[test]
    fn every_kernel_has_an_8x8_twin_of_its_own_name() {
        let g = Gemm::nn(64, 64, 64);
        let mut names = Vec::new();
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let g = g.trans(ta, tb);
            for block in [CoopBlock::B32, CoopBlock::B64, CoopBlock::Staged128(Staging::Halves)] {
                let k16 = kernel_in(&g, block, SHAPE_16).expect("16x16");
                let k8 = kernel_in(&g, block, SHAPE_8).expect("8x8");
                assert_eq!((k16.entry, k16.bindings), (k8.entry, k8.bindings));
                assert_ne!(k16.name, k8.name);
                assert_eq!(block.side_at(SHAPE_8) * 2, block.side());
                names.extend([k16.name, k8.name]);
            }
        }
        for k in [super::super::kernels::COOP_CEILING4, super::super::kernels::COOP_CEILING16] {
            names.push(at_shape(k, SHAPE_8).expect("8x8 ceiling").name);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 2 * (4 + 1 + 1) + 2, "{names:?}");
        let odd = CoopShape { tile: 16, subgroup: 64 };
        assert!(kernel_in(&g, CoopBlock::B32, odd).is_none());
    }
}

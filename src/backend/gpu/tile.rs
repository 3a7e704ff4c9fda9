//! The tile family of the tiled matmul (`shaders/matmul_tile.wgsl`): one WGSL module per
//! [`TileCfg`], the configuration prepended as constants, five entry points each (the generic
//! scalar one and the four vec4 ones of `matmul.wgsl`). The 128x128, BK = 8 tile is the
//! `matmul.wgsl` kernel itself ([`super::matmul::MatmulVariant::Tiled`]); the family adds the
//! other sizes for the autotuner, which skips those the adapter cannot run ([`TileCfg::fits`]).

use super::kernels::{Access, Kernel, Shader};

/// A tile configuration: `bm x bn` outputs of C per workgroup, slices of depth `bk`; 8x8 outputs
/// per invocation, so `(bm / 8) * (bn / 8)` invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileCfg {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
}

/// The family the autotuner times (besides `matmul.wgsl`'s 128x128, BK = 8 kernel).
pub const TILES: [TileCfg; 7] = [
    TileCfg { bm: 128, bn: 128, bk: 16 },
    TileCfg { bm: 128, bn: 64, bk: 8 },
    TileCfg { bm: 128, bn: 64, bk: 16 },
    TileCfg { bm: 64, bn: 128, bk: 8 },
    TileCfg { bm: 64, bn: 128, bk: 16 },
    TileCfg { bm: 64, bn: 64, bk: 8 },
    TileCfg { bm: 64, bn: 64, bk: 16 },
];

/// The entry points of every module of the family, in [`TileKernels`] order.
const ENTRIES: [&str; 5] =
    ["matmul_tiled", "matmul_tiled_nn4", "matmul_tiled_nt4", "matmul_tiled_tn4", "matmul_tiled_tt4"];

impl TileCfg {
    /// `t{bm}x{bn}k{bk}`: the candidate's name in the autotune cache and reports.
    pub fn name(self) -> String {
        format!("t{}x{}k{}", self.bm, self.bn, self.bk)
    }

    /// The configuration named `t{bm}x{bn}k{bk}` if it is one of [`TILES`].
    pub fn parse(name: &str) -> Option<TileCfg> {
        TILES.into_iter().find(|t| t.name() == name)
    }

    /// Invocations per workgroup.
    pub fn invocations(self) -> u32 {
        (self.bm / 8) * (self.bn / 8)
    }

    /// Workgroup memory: two buffers of an A slice (bk x bm) and a B slice (bk x bn), bytes.
    pub fn workgroup_bytes(self) -> u32 {
        2 * self.bk * (self.bm + self.bn) * 4
    }

    /// Whether an adapter with these limits can run the kernel (workgroup memory, invocations
    /// and the x extent of a workgroup).
    pub fn fits(self, limits: &wgpu::Limits) -> bool {
        self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
            && self.invocations() <= limits.max_compute_invocations_per_workgroup
            && self.invocations() <= limits.max_compute_workgroup_size_x
    }

    /// The WGSL constants `shaders/matmul_tile.wgsl` expects (see its header), as literals.
    pub fn constants(self) -> String {
        let (bm, bn, bk) = (self.bm, self.bn, self.bk);
        let nt = self.invocations();
        let (sa, sb) = (bk * bm / 4, bk * bn / 4);
        format!(
            "// ---- tile configuration {name} (src/backend/gpu/tile.rs) ----\n\
             const BM: u32 = {bm}u;\nconst BN: u32 = {bn}u;\nconst BK: u32 = {bk}u;\n\
             const KQ: u32 = {kq}u;\nconst BM4: u32 = {bm4}u;\nconst BN4: u32 = {bn4}u;\n\
             const TX: u32 = {tx}u;\nconst TY: u32 = {ty}u;\nconst NT: u32 = {nt}u;\n\
             const WG_TILE: u32 = {nt}u;\nconst SA: u32 = {sa}u;\nconst SB: u32 = {sb}u;\n\
             const SA2: u32 = {sa2}u;\nconst SB2: u32 = {sb2}u;\n\
             const LA: u32 = {la}u;\nconst LB: u32 = {lb}u;\n\
             // ---- end of tile configuration ----\n",
            name = self.name(),
            kq = bk / 4,
            bm4 = bm / 4,
            bn4 = bn / 4,
            tx = bn / 8,
            ty = bm / 8,
            sa2 = 2 * sa,
            sb2 = 2 * sb,
            la = sa / nt,
            lb = sb / nt,
        )
    }

    /// Index of this configuration in [`TILES`].
    fn index(self) -> Option<usize> {
        TILES.iter().position(|&t| t == self)
    }
}

/// The five kernels of one configuration: generic, then nn4, nt4, tn4, tt4.
pub type TileKernels = [Kernel; 5];

use Access::{Read as R, ReadWrite as W};

macro_rules! tile_names {
    ($tag:literal) => {
        [
            concat!("matmul_", $tag, "::matmul_tiled"),
            concat!("matmul_", $tag, "::matmul_tiled_nn4"),
            concat!("matmul_", $tag, "::matmul_tiled_nt4"),
            concat!("matmul_", $tag, "::matmul_tiled_tn4"),
            concat!("matmul_", $tag, "::matmul_tiled_tt4"),
        ]
    };
}

/// Kernel names must be `&'static str` (pipelines are cached by name): one per configuration
/// and entry point, in [`TILES`] x [`ENTRIES`] order.
const NAMES: [[&str; 5]; 7] = [
    tile_names!("t128x128k16"),
    tile_names!("t128x64k8"),
    tile_names!("t128x64k16"),
    tile_names!("t64x128k8"),
    tile_names!("t64x128k16"),
    tile_names!("t64x64k8"),
    tile_names!("t64x64k16"),
];

/// The kernels of `cfg` (`None` for a configuration outside [`TILES`]).
pub fn kernels(cfg: TileCfg) -> Option<TileKernels> {
    let names = NAMES[cfg.index()?];
    let k = |i: usize| Kernel {
        name: names[i],
        shader: Shader::MatmulTile(cfg),
        entry: ENTRIES[i],
        bindings: &[R, R, W, R, W],
    };
    Some([k(0), k(1), k(2), k(3), k(4)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_kernel_names() {
        for t in TILES {
            assert_eq!(TileCfg::parse(&t.name()), Some(t));
            let ks = kernels(t).expect("in the family");
            for (k, e) in ks.iter().zip(ENTRIES) {
                assert_eq!(k.name, format!("matmul_{}::{e}", t.name()));
            }
        }
        assert_eq!(TileCfg::parse("t128x128k8"), None, "the base kernel is not in the family");
        assert_eq!(kernels(TileCfg { bm: 32, bn: 32, bk: 8 }).map(|k| k[0].name), None);
    }

    #[test]
    fn every_invocation_loads_whole_vec4s_and_limits_are_respected() {
        let lavapipe = wgpu::Limits {
            max_compute_workgroup_storage_size: 32 * 1024,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroup_size_x: 1024,
            ..wgpu::Limits::default()
        };
        for t in TILES {
            let nt = t.invocations();
            assert_eq!((t.bk * t.bm / 4) % nt, 0, "{}", t.name());
            assert_eq!((t.bk * t.bn / 4) % nt, 0, "{}", t.name());
            assert!(t.fits(&lavapipe), "{} ({} bytes)", t.name(), t.workgroup_bytes());
        }
        let small = wgpu::Limits { max_compute_workgroup_storage_size: 16 * 1024, ..lavapipe };
        let fit: Vec<_> = TILES.into_iter().filter(|t| t.fits(&small)).map(|t| t.name()).collect();
        assert_eq!(fit, ["t128x64k8", "t64x128k8", "t64x64k8", "t64x64k16"]);
        let few = wgpu::Limits { max_compute_invocations_per_workgroup: 128, ..lavapipe };
        assert!(!TileCfg { bm: 128, bn: 128, bk: 16 }.fits(&few));
        assert!(TileCfg { bm: 128, bn: 64, bk: 16 }.fits(&few));
    }
}

//! The staged cooperative kernel's family (`shaders/matmul_coop_staged.wgsl`): one WGSL module
//! per [`StagedModule`] (a [`StagedCfg`] and a transpose pair), the configuration prepended as
//! constants, aliases and the staging store (as [`super::tile`] does for the fp32 tiles).
//!
//! Three things vary:
//! - **The adapter's cooperative shape** ([`CoopShape`], [`super::coop_shape`]): 16x16 tiles on
//!   subgroups of 32 (the H200), or 8x8 tiles on subgroups of 8, which is all Mesa's lavapipe
//!   offers (26.x). Every length of the kernel scales with the tile side, so the same code,
//!   indexing, clamping, staging and epilogues, runs at 8x8 on a CPU and can be held to the CPU
//!   twin there (`tests/coop_staged.rs`, `.ci/coop_lavapipe.sh`).
//! - **The load width** ([`LoadWidth`]): each invocation's 16-byte load of 8 halves goes to
//!   workgroup memory as 8 stores of one f16 (`halves`: the form the H200 measured on
//!   2026-12-04), or as 2 stores of a vec4<f16> into workgroup memory typed as such (`vec4`),
//!   with the tile loads reading vec4 elements and strides counted in them, or as one store of
//!   16 bytes into workgroup memory of 16-byte elements (`vec8`: NVIDIA's own form, `vec4<f32>`
//!   in the WGSL and retyped in the SPIR-V, see [`super::retype`]). The autotuner times all
//!   three; the rule keeps `halves` until a device has measured the others.
//! - **The transpose pair** of the product (A stored [k, m], B stored [n, k]): constants of the
//!   module, so that the inner loop holds no layout branch ([`StagedModule`]).

use super::coop_shape::{self, CoopShape, LoadWidth, SHAPE_16, SHAPE_8};
use super::kernels::{Access, Kernel, Shader};

/// One configuration of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StagedCfg {
    pub shape: CoopShape,
    /// The element of workgroup memory: how a load of 8 halves is stored (8 f16 stores, 2
    /// vec4<f16> ones, or one of 16 bytes) and what the tile loads read.
    pub width: LoadWidth,
}

/// The family, in [`NAMES`] order.
pub const FAMILY: [StagedCfg; 6] = [
    StagedCfg { shape: SHAPE_16, width: LoadWidth::Halves },
    StagedCfg { shape: SHAPE_16, width: LoadWidth::Vec4 },
    StagedCfg { shape: SHAPE_8, width: LoadWidth::Halves },
    StagedCfg { shape: SHAPE_8, width: LoadWidth::Vec4 },
    StagedCfg { shape: SHAPE_16, width: LoadWidth::Vec8 },
    StagedCfg { shape: SHAPE_8, width: LoadWidth::Vec8 },
];

/// The names of one configuration's kernels: the product per transpose pair (nn, nt, tn, tt),
/// then the ceiling.
macro_rules! names {
    ($suffix:literal) => {
        [
            concat!("MatmulCoopStaged::matmul_coop_staged_nn", $suffix),
            concat!("MatmulCoopStaged::matmul_coop_staged_nt", $suffix),
            concat!("MatmulCoopStaged::matmul_coop_staged_tn", $suffix),
            concat!("MatmulCoopStaged::matmul_coop_staged_tt", $suffix),
            concat!("MatmulCoopStaged::coop_staged_ceiling", $suffix),
        ]
    };
}

/// Kernel names must be `&'static str` (pipelines are cached by name): [`names!`] per
/// configuration, in [`FAMILY`] order.
const NAMES: [[&str; 5]; 6] =
    [names!(""), names!("_v4"), names!("_t8"), names!("_t8_v4"), names!("_v8"), names!("_t8_v8")];

/// Loads of 8 halves per invocation, operand and slice: the kernel holds exactly 4.
const LOADS: u32 = 4;

impl StagedCfg {
    /// The H200's measured configuration: 16x16 tiles, f16 stores.
    pub const DEFAULT: StagedCfg = FAMILY[0];

    /// Side of a workgroup's block of C: 8 tiles (128 at 16x16).
    pub fn block(self) -> u32 {
        8 * self.shape.tile
    }

    /// Depth of one staged slice: 2 tiles.
    pub fn slice_depth(self) -> u32 {
        2 * self.shape.tile
    }

    /// Invocations per workgroup: 4 subgroups.
    pub fn invocations(self) -> u32 {
        4 * self.shape.subgroup
    }

    /// Halves of one staged slice: the larger of BS rows of SK + 8 and SK rows of BS + 8.
    fn slice_halves(self) -> u32 {
        let (bs, sk) = (self.block(), self.slice_depth());
        (bs * (sk + 8)).max(sk * (bs + 8))
    }

    /// Workgroup memory: two operands, two buffers of a slice each, 2 bytes a half (40 KiB at
    /// 16x16).
    pub fn workgroup_bytes(self) -> u32 {
        2 * 2 * self.slice_halves() * 2
    }

    /// Whether the kernel's fixed 4 loads per invocation cover a slice exactly.
    pub fn loads_fit(self) -> bool {
        self.block() * self.slice_depth() / 8 == LOADS * self.invocations()
    }

    /// Whether an adapter with these limits can run the kernel.
    pub fn fits(self, limits: &wgpu::Limits) -> bool {
        self.loads_fit()
            && limits.max_compute_invocations_per_workgroup >= self.invocations()
            && limits.max_compute_workgroup_size_x >= self.invocations()
            && limits.max_compute_workgroup_storage_size >= self.workgroup_bytes()
    }

    /// The WGSL the shader's header names, as literals.
    pub fn constants(self) -> String {
        let t = self.shape.tile;
        let (bs, sk) = (self.block(), self.slice_depth());
        let slice = self.slice_halves();
        let (fetch, put) = match self.width {
            LoadWidth::Halves => (FETCH_PAIR, PUT_HALVES),
            LoadWidth::Vec4 => (FETCH_PAIR, PUT_VEC4),
            LoadWidth::Vec8 => (FETCH_QUAD, PUT_VEC8),
        };
        format!(
            "{shape}// ---- staged configuration {t}x{t}, subgroups of {sg}, {width} \
             (src/backend/gpu/staged.rs) ----\n\
             const NI: u32 = {ni}u;\nconst BS: u32 = {bs}u;\n\
             const SK: u32 = {sk}u;\nconst ROW_SK: u32 = {row_sk}u;\nconst ROW_BS: u32 = {row_bs}u;\n\
             const SLICE: u32 = {slice}u;\n\
             var<workgroup> sa: array<Half, {len}>;\nvar<workgroup> sb: array<Half, {len}>;\n\
             {fetch}{put}\
             // ---- end of staged configuration ----\n",
            shape = coop_shape::constants(self.shape, self.width),
            sg = self.shape.subgroup,
            width = self.width.name(),
            ni = self.invocations(),
            row_sk = sk + 8,
            row_bs = bs + 8,
            len = 2 * slice / self.width.halves(),
        )
    }

    /// Index of this configuration in [`FAMILY`].
    fn index(self) -> Option<usize> {
        FAMILY.iter().position(|&c| c == self)
    }

    /// The product's kernel for the transpose pair (`matmul_coop_staged` of the pair's
    /// module, bindings as `matmul_coop.wgsl`'s); `None` outside [`FAMILY`].
    pub fn kernel(self, trans_a: bool, trans_b: bool) -> Option<Kernel> {
        let module = StagedModule { cfg: self, trans_a, trans_b };
        Some(Kernel {
            name: NAMES[self.index()?][module.pair()],
            shader: Shader::MatmulCoopStaged(module),
            entry: "matmul_coop_staged",
            bindings: &[R, R, W, R, W, W, W],
            spec: 0,
        })
    }

    /// The product's kernels of every transpose pair (nn, nt, tn, tt); empty outside
    /// [`FAMILY`].
    pub fn kernels(self) -> Vec<Kernel> {
        PAIRS.into_iter().filter_map(|(ta, tb)| self.kernel(ta, tb)).collect()
    }

    /// The ceiling's kernel (`coop_staged_ceiling`: a, b, c); `None` outside [`FAMILY`].
    pub fn ceiling_kernel(self) -> Option<Kernel> {
        Some(Kernel {
            name: NAMES[self.index()?][4],
            shader: Shader::MatmulCoopStaged(StagedModule { cfg: self, trans_a: false, trans_b: false }),
            entry: "coop_staged_ceiling",
            bindings: &[R, R, W],
            spec: 0,
        })
    }
}

use Access::{Read as R, ReadWrite as W};

/// The transpose pairs (A stored [k, m], B stored [n, k]) in kernel-name order: nn, nt, tn, tt.
const PAIRS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

/// One WGSL module of the family: a configuration and the transpose pair it is compiled for.
/// The pair is a constant of the module (`TA`, `TB`), not a parameter: naga's uniformity
/// analysis takes a helper function's argument for non-uniform, so a layout branch on one
/// would put the cooperative loads in non-uniform control flow; as constants the driver folds
/// the branches away and the depth loop keeps a constant trip count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StagedModule {
    pub cfg: StagedCfg,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl StagedModule {
    /// The H200's configuration, untransposed (also the module of the ceiling).
    pub const DEFAULT: StagedModule =
        StagedModule { cfg: StagedCfg::DEFAULT, trans_a: false, trans_b: false };

    /// Index of the pair in [`PAIRS`].
    fn pair(self) -> usize {
        2 * usize::from(self.trans_a) + usize::from(self.trans_b)
    }

    /// The WGSL the shader's header names: the configuration's constants, then the pair's.
    pub fn constants(self) -> String {
        format!(
            "{}const TA: bool = {};\nconst TB: bool = {};\n",
            self.cfg.constants(),
            self.trans_a,
            self.trans_b
        )
    }

    /// The retyped 16-byte loads (SPIR-V: Vulkan only), as the configuration's width says.
    pub fn retyped(self) -> bool {
        self.cfg.width.retyped()
    }
}

/// The staged product in the H200's configuration ([`StagedCfg::DEFAULT`]) per transpose pair
/// (the kernels [`StagedCfg::kernel`] returns for it).
macro_rules! staged_kernel {
    ($name:ident, $suffix:literal, $ta:literal, $tb:literal) => {
        pub const $name: Kernel = Kernel {
            name: concat!("MatmulCoopStaged::matmul_coop_staged_", $suffix),
            shader: Shader::MatmulCoopStaged(StagedModule {
                cfg: StagedCfg::DEFAULT,
                trans_a: $ta,
                trans_b: $tb,
            }),
            entry: "matmul_coop_staged",
            bindings: &[R, R, W, R, W, W, W],
            spec: 0,
        };
    };
}
staged_kernel!(MATMUL_COOP_STAGED_NN, "nn", false, false);
staged_kernel!(MATMUL_COOP_STAGED_NT, "nt", false, true);
staged_kernel!(MATMUL_COOP_STAGED_TN, "tn", true, false);
staged_kernel!(MATMUL_COOP_STAGED_TT, "tt", true, true);

/// Every module of the family: each configuration in each transpose pair.
pub fn modules() -> Vec<StagedModule> {
    FAMILY
        .iter()
        .flat_map(|&cfg| PAIRS.map(|(trans_a, trans_b)| StagedModule { cfg, trans_a, trans_b }))
        .collect()
}

/// `Load` and fetch() for `halves` and `vec4`: two vec4<f16> from storage read as such.
const FETCH_PAIR: &str = "alias Stored = vec4<f16>;
struct Load {
    lo: vec4<f16>,
    hi: vec4<f16>,
}
fn fetch(which: u32, o: u32) -> Load {
    let i = o / 4u;
    if (which == 0u) {
        return Load(a[i], a[i + 1u]);
    }
    return Load(b[i], b[i + 1u]);
}
";

/// `Load` and fetch() for `vec8`: one 16-byte load of storage read as vec4<u32> (o is a
/// multiple of 8).
const FETCH_QUAD: &str = "alias Stored = vec4<u32>;
struct Load {
    q: vec4<u32>,
}
fn fetch(which: u32, o: u32) -> Load {
    let i = o / 8u;
    if (which == 0u) {
        return Load(a[i]);
    }
    return Load(b[i]);
}
";

/// put() for `halves`: the 8 halves of load v at half o of a staged slice, one store each (the
/// stored bits, no conversion that could flush a subnormal or change a NaN's payload).
const PUT_HALVES: &str = "fn put(which: u32, o: u32, v: Load) {
    for (var e = 0u; e < 4u; e = e + 1u) {
        if (which == 0u) {
            sa[o + e] = v.lo[e];
            sa[o + 4u + e] = v.hi[e];
        } else {
            sb[o + e] = v.lo[e];
            sb[o + 4u + e] = v.hi[e];
        }
    }
}
";

/// put() for `vec4`: the same 8 halves as two vec4<f16> stores (o is a multiple of 8).
const PUT_VEC4: &str = "fn put(which: u32, o: u32, v: Load) {
    let i = o / 4u;
    if (which == 0u) {
        sa[i] = v.lo;
        sa[i + 1u] = v.hi;
    } else {
        sb[i] = v.lo;
        sb[i + 1u] = v.hi;
    }
}
";

/// put() for `vec8`: the 8 halves as one 16-byte store (o is a multiple of 8), their bits
/// carried in a vec4<f32>, the element the tile loads read (see [`super::retype`]).
const PUT_VEC8: &str = "fn put(which: u32, o: u32, v: Load) {
    let q = bitcast<vec4<f32>>(v.q);
    if (which == 0u) {
        sa[o / 8u] = q;
    } else {
        sb[o / 8u] = q;
    }
}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h200_configuration_keeps_its_lengths() {
        let c = StagedCfg::DEFAULT;
        assert_eq!((c.block(), c.slice_depth(), c.invocations()), (128, 32, 128));
        assert_eq!(c.workgroup_bytes(), 2 * 10240 * 2, "40 KiB");
        assert!(c.constants().contains("const SLICE: u32 = 5120u;"));
        assert!(c.constants().contains("var<workgroup> sa: array<Half, 10240>;"));
        let k = c.kernel(false, true).expect("in the family");
        assert_eq!(k.name, super::super::kernels::MATMUL_COOP_STAGED_NT.name);
        assert_eq!(k.entry, "matmul_coop_staged");
        let tn = StagedModule { cfg: c, trans_a: true, trans_b: false };
        assert_eq!(c.kernel(true, false).map(|k| k.shader), Some(Shader::MatmulCoopStaged(tn)));
        assert!(tn.constants().ends_with("const TA: bool = true;\nconst TB: bool = false;\n"));
        let consts =
            [MATMUL_COOP_STAGED_NN, MATMUL_COOP_STAGED_NT, MATMUL_COOP_STAGED_TN, MATMUL_COOP_STAGED_TT];
        let by_pair: Vec<_> = c.kernels().iter().map(|k| (k.name, k.shader, k.entry)).collect();
        assert_eq!(by_pair, consts.map(|k| (k.name, k.shader, k.entry)));
        assert_eq!(modules().len(), 4 * FAMILY.len());
        assert_eq!(
            c.ceiling_kernel().map(|k| k.name),
            Some(super::super::kernels::COOP_STAGED_CEILING.name)
        );
    }

    #[test]
    fn every_configuration_loads_whole_slices_and_has_its_own_names() {
        let lavapipe = wgpu::Limits {
            max_compute_workgroup_storage_size: 32 * 1024,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroup_size_x: 1024,
            ..wgpu::Limits::default()
        };
        for c in FAMILY {
            assert!(c.loads_fit(), "{c:?}");
            let fits_lavapipe = c.shape == SHAPE_8;
            assert_eq!(c.fits(&lavapipe), fits_lavapipe, "{c:?}: {} bytes", c.workgroup_bytes());
        }
        let mut names: Vec<&str> = FAMILY
            .iter()
            .flat_map(|c| c.kernels().into_iter().chain(c.ceiling_kernel()))
            .map(|k| k.name)
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 5 * FAMILY.len());
        // 16x16 on subgroups of 8 would need 16 loads per invocation: not in the family.
        let odd = StagedCfg { shape: CoopShape { tile: 16, subgroup: 8 }, width: LoadWidth::Halves };
        assert!(!odd.loads_fit() && odd.kernel(false, false).is_none() && odd.kernels().is_empty());
    }
}

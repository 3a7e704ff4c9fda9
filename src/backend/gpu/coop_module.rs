//! The family of `shaders/matmul_coop.wgsl`: one WGSL module per [`CoopModule`], its constants
//! prepended (as [`super::staged`] does for the staged kernel). Three things vary:
//! - **the adapter's cooperative shape** ([`CoopShape`]): 16x16 tiles on subgroups of 32 (the
//!   H200), or 8x8 on subgroups of 8 (Mesa's lavapipe, where CI holds the kernels to their CPU
//!   twin);
//! - **the tile loads' element** ([`LoadWidth`]): f16, vec4<f16>, or 16 bytes (retyped);
//! - **the transpose pair** (A stored [k, m], B stored [n, k]): the module constants `TA` and
//!   `TB`, so that the loops hold no layout branch and one loop serves the four pairs.
//!
//! Each module holds four kernels ([`CoopEntry`]): the 32x32-block product (`matmul_coop`), the
//! 64x64-block one (`matmul_coop64`), and the two register ceilings, which are only compiled in
//! the untransposed modules.

use super::coop_shape::{self, CoopShape, LoadWidth, SHAPE_16, SHAPE_8};
use super::kernels::{Access, Kernel, Shader};

/// One WGSL module of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoopModule {
    pub shape: CoopShape,
    pub width: LoadWidth,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// A kernel of a [`CoopModule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoopEntry {
    /// `matmul_coop`: one subgroup owns a 32x32 block of C (2x2 tiles at 16x16).
    Block32,
    /// `matmul_coop64`: one subgroup owns a 64x64 block of C (4x4 tiles at 16x16).
    Block64,
    /// `coop_ceiling4`: 4 multiply-adds per step from registers (the 32x32 block's loop).
    Ceiling4,
    /// `coop_ceiling16`: 16 multiply-adds per step from registers (the 64x64 block's loop).
    Ceiling16,
}

impl CoopEntry {
    /// The WGSL entry point.
    pub fn entry(self) -> &'static str {
        match self {
            CoopEntry::Block32 => "matmul_coop",
            CoopEntry::Block64 => "matmul_coop64",
            CoopEntry::Ceiling4 => "coop_ceiling4",
            CoopEntry::Ceiling16 => "coop_ceiling16",
        }
    }

    /// Storage bindings after the parameters: a, b, c, then the f16 epilogue's four for the
    /// products (include/epilogue_f16.wgsl).
    fn bindings(self) -> &'static [Access] {
        match self {
            CoopEntry::Block32 | CoopEntry::Block64 => &[R, R, W, R, W, W, W],
            CoopEntry::Ceiling4 | CoopEntry::Ceiling16 => &[R, R, W],
        }
    }

    /// Whether the kernel reads the transpose pair (the ceilings do not: they are compiled in
    /// the untransposed module only).
    fn transposes(self) -> bool {
        matches!(self, CoopEntry::Block32 | CoopEntry::Block64)
    }
}

use Access::{Read as R, ReadWrite as W};

/// The (tile, width) configurations, in [`NAMES`] order.
pub const CONFIGS: [(CoopShape, LoadWidth); 6] = [
    (SHAPE_16, LoadWidth::Halves),
    (SHAPE_16, LoadWidth::Vec4),
    (SHAPE_16, LoadWidth::Vec8),
    (SHAPE_8, LoadWidth::Halves),
    (SHAPE_8, LoadWidth::Vec4),
    (SHAPE_8, LoadWidth::Vec8),
];

/// The transpose pairs in kernel-name order: nn, nt, tn, tt.
const PAIRS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

/// The names of one configuration's kernels: the 32x32 product per transpose pair, the 64x64
/// one per pair, then the two ceilings.
macro_rules! names {
    ($suffix:literal) => {
        [
            concat!("MatmulCoop::matmul_coop_nn", $suffix),
            concat!("MatmulCoop::matmul_coop_nt", $suffix),
            concat!("MatmulCoop::matmul_coop_tn", $suffix),
            concat!("MatmulCoop::matmul_coop_tt", $suffix),
            concat!("MatmulCoop::matmul_coop64_nn", $suffix),
            concat!("MatmulCoop::matmul_coop64_nt", $suffix),
            concat!("MatmulCoop::matmul_coop64_tn", $suffix),
            concat!("MatmulCoop::matmul_coop64_tt", $suffix),
            concat!("MatmulCoop::coop_ceiling4", $suffix),
            concat!("MatmulCoop::coop_ceiling16", $suffix),
        ]
    };
}

/// Kernel names must be `&'static str` (pipelines are cached by name): [`names!`] per
/// configuration, in [`CONFIGS`] order.
const NAMES: [[&str; 10]; 6] =
    [names!(""), names!("_v4"), names!("_v8"), names!("_t8"), names!("_t8_v4"), names!("_t8_v8")];

impl CoopModule {
    /// 16x16 tiles, f16 loads, untransposed: the H200's measured form (and the ceilings').
    pub const DEFAULT: CoopModule =
        CoopModule { shape: SHAPE_16, width: LoadWidth::Halves, trans_a: false, trans_b: false };

    /// Index of the pair in [`PAIRS`].
    fn pair(self) -> usize {
        2 * usize::from(self.trans_a) + usize::from(self.trans_b)
    }

    /// The kernel `entry` of this module; a ceiling comes from the untransposed module of the
    /// same tile and width. `None` outside [`CONFIGS`].
    pub fn kernel(self, entry: CoopEntry) -> Option<Kernel> {
        let config = CONFIGS.iter().position(|&c| c == (self.shape, self.width))?;
        let module = match entry.transposes() {
            true => self,
            false => CoopModule { trans_a: false, trans_b: false, ..self },
        };
        let slot = match entry {
            CoopEntry::Block32 => self.pair(),
            CoopEntry::Block64 => 4 + self.pair(),
            CoopEntry::Ceiling4 => 8,
            CoopEntry::Ceiling16 => 9,
        };
        Some(Kernel {
            name: NAMES[config][slot],
            shader: Shader::MatmulCoop(module),
            entry: entry.entry(),
            bindings: entry.bindings(),
            spec: 0,
        })
    }

    /// The WGSL the shader's header names: the tile and width ([`coop_shape::constants`]),
    /// [`prefetch`], then the transpose pair.
    pub fn constants(self) -> String {
        format!(
            "{}const PREFETCH: bool = {};\nconst TA: bool = {};\nconst TB: bool = {};\n",
            coop_shape::constants(self.shape, self.width),
            prefetch(),
            self.trans_a,
            self.trans_b
        )
    }

    /// The retyped 16-byte loads (SPIR-V: Vulkan only), as the width says.
    pub fn retyped(self) -> bool {
        self.width.retyped()
    }
}

/// Every module of the family: each configuration in each transpose pair.
pub fn modules() -> Vec<CoopModule> {
    CONFIGS
        .iter()
        .flat_map(|&(shape, width)| {
            PAIRS.map(|(trans_a, trans_b)| CoopModule { shape, width, trans_a, trans_b })
        })
        .collect()
}

/// Every kernel of the family: the two products in every module, and the two ceilings in each
/// configuration.
pub fn kernels() -> Vec<Kernel> {
    use CoopEntry::*;
    let products = modules().into_iter().flat_map(|m| [Block32, Block64].map(|e| m.kernel(e)));
    let ceilings = CONFIGS.iter().flat_map(|&(shape, width)| {
        let m = CoopModule { shape, width, ..CoopModule::DEFAULT };
        [Ceiling4, Ceiling16].map(|e| m.kernel(e))
    });
    products.chain(ceilings).flatten().collect()
}

/// `BATCHSCOPE_COOP_PREFETCH=1`: the 32x32 kernel pipelines its loop in registers (the next
/// depth's tiles loaded before the current depth's multiply-adds; `PREFETCH` in
/// matmul_coop.wgsl), for A/B timing on a device. Read once: every module of a process is
/// compiled the same way.
pub fn prefetch() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BATCHSCOPE_COOP_PREFETCH").is_ok_and(|v| v == "1"))
}

/// The family's kernels at 16x16 tiles with f16 loads (the H200's measured form): the kernels
/// [`CoopModule::kernel`] returns for them, the products per transpose pair.
macro_rules! coop_kernel {
    ($name:ident, $entry:literal, $kernel:literal, $ta:literal, $tb:literal, [$($acc:ident),*]) => {
        pub const $name: Kernel = Kernel {
            name: concat!("MatmulCoop::", $kernel),
            shader: Shader::MatmulCoop(CoopModule { trans_a: $ta, trans_b: $tb, ..CoopModule::DEFAULT }),
            entry: $entry,
            bindings: &[$($acc),*],
            spec: 0,
        };
    };
}
coop_kernel!(MATMUL_COOP_NN, "matmul_coop", "matmul_coop_nn", false, false, [R, R, W, R, W, W, W]);
coop_kernel!(MATMUL_COOP_NT, "matmul_coop", "matmul_coop_nt", false, true, [R, R, W, R, W, W, W]);
coop_kernel!(MATMUL_COOP_TN, "matmul_coop", "matmul_coop_tn", true, false, [R, R, W, R, W, W, W]);
coop_kernel!(MATMUL_COOP_TT, "matmul_coop", "matmul_coop_tt", true, true, [R, R, W, R, W, W, W]);
coop_kernel!(MATMUL_COOP64_NN, "matmul_coop64", "matmul_coop64_nn", false, false, [R, R, W, R, W, W, W]);
coop_kernel!(MATMUL_COOP64_NT, "matmul_coop64", "matmul_coop64_nt", false, true, [R, R, W, R, W, W, W]);
coop_kernel!(MATMUL_COOP64_TN, "matmul_coop64", "matmul_coop64_tn", true, false, [R, R, W, R, W, W, W]);
coop_kernel!(MATMUL_COOP64_TT, "matmul_coop64", "matmul_coop64_tt", true, true, [R, R, W, R, W, W, W]);
// The register ceilings (`batchscope gemm --ceilings`), in the untransposed module.
coop_kernel!(COOP_CEILING4, "coop_ceiling4", "coop_ceiling4", false, false, [R, R, W]);
coop_kernel!(COOP_CEILING16, "coop_ceiling16", "coop_ceiling16", false, false, [R, R, W]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_name_every_kernel_of_the_default_configuration() {
        use CoopEntry::*;
        let consts = [
            (MATMUL_COOP_NN, Block32, false, false),
            (MATMUL_COOP_NT, Block32, false, true),
            (MATMUL_COOP_TN, Block32, true, false),
            (MATMUL_COOP_TT, Block32, true, true),
            (MATMUL_COOP64_NN, Block64, false, false),
            (MATMUL_COOP64_NT, Block64, false, true),
            (MATMUL_COOP64_TN, Block64, true, false),
            (MATMUL_COOP64_TT, Block64, true, true),
            (COOP_CEILING4, Ceiling4, true, false),
            (COOP_CEILING16, Ceiling16, false, true),
        ];
        for (k, entry, trans_a, trans_b) in consts {
            let m = CoopModule { trans_a, trans_b, ..CoopModule::DEFAULT };
            let found = m.kernel(entry).expect("the default configuration");
            assert_eq!((found.name, found.shader, found.entry), (k.name, k.shader, k.entry));
            assert_eq!(found.bindings.len(), k.bindings.len(), "{}", k.name);
        }
    }

    #[test]
    fn every_module_has_its_own_names_and_constants() {
        let mut names: Vec<&str> = kernels().iter().map(|k| k.name).collect();
        // 6 configurations: 2 products in 4 pairs, and 2 ceilings.
        assert_eq!(names.len(), 6 * (2 * 4 + 2));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 6 * (2 * 4 + 2));
        assert_eq!(modules().len(), 4 * CONFIGS.len());
        let tn = CoopModule { shape: SHAPE_8, width: LoadWidth::Vec4, trans_a: true, trans_b: false };
        assert!(tn.constants().ends_with("const TA: bool = true;\nconst TB: bool = false;\n"));
        assert!(tn.constants().contains("alias Half = vec4<f16>;"));
        assert_eq!(
            tn.kernel(CoopEntry::Block64).map(|k| k.name),
            Some("MatmulCoop::matmul_coop64_tn_t8_v4")
        );
        let ceiling = tn.kernel(CoopEntry::Ceiling16).expect("a configuration");
        assert_eq!(ceiling.shader, Shader::MatmulCoop(CoopModule { trans_a: false, ..tn }));
        let odd = CoopModule { shape: CoopShape { tile: 16, subgroup: 64 }, ..CoopModule::DEFAULT };
        assert!(odd.kernel(CoopEntry::Block32).is_none());
    }
}

//! The registry of compute kernels: which shader file, which entry point, which bindings.
//!
//! Binding convention for every kernel: `@group(0) @binding(0)` is a uniform parameter block
//! (a `#[repr(C)]` Pod struct of at most [`PARAM_SLOT`] bytes, bound with a dynamic offset into a
//! per-submit arena); bindings `1..` are storage buffers in the order of `bindings`, inputs
//! `read` and outputs `read_write`.

/// Bytes reserved per dispatch for its parameter block (≥ every adapter's uniform alignment).
pub const PARAM_SLOT: u64 = 256;

/// Workgroup size of the 1-D kernels (elementwise, activations, losses, reductions, updates,
/// clipping, gathers, datagen, split-k). The one definition: the WGSL prelude declares it as
/// `const WG_1D` for every shader, and [`super::launch::grid_1d`] sizes grids with it.
pub const WG_1D: u32 = 256;

/// WGSL prepended to every shader: the 1-D workgroup size and `lin()`, the linear invocation
/// index of a 1-D launch that [`super::launch::grid_1d`] folded into (x, y).
pub fn prelude() -> String {
    format!(
        "// ---- prelude (src/backend/gpu/kernels.rs) ----\n\
         const WG_1D: u32 = {WG_1D}u;\n\
         fn lin(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {{\n    \
         return gid.x + gid.y * nwg.x * WG_1D;\n\
         }}\n\
         // ---- end of prelude ----\n"
    )
}

/// Access of a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// One kernel family per WGSL file; the family's name is also its host wrapper
/// (`backend/gpu/<family>.rs`), its CPU twin (`backend/cpu/<family>.rs`) and its parity test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Matmul,
    Elementwise,
    Act,
    Xent,
    Mse,
    Reduce,
    Update,
    Clip,
    Gather,
    Datagen,
    /// One configuration of the tiled matmul's tile family (`matmul_tile.wgsl` with the
    /// configuration's constants; see `super::tile`).
    MatmulTile(super::tile::TileCfg),
    MatmulF16,
    Amp,
    /// The cooperative-matrix GEMMs in the tiles of one shape, their tile loads reading
    /// elements of one width, for one transpose pair (`matmul_coop.wgsl` with the module's
    /// constants; see `super::coop_module`).
    MatmulCoop(super::coop_module::CoopModule),
    /// The cooperative-matrix GEMM with operands staged in workgroup memory, for one
    /// configuration of its family (`matmul_coop_staged.wgsl` with the configuration's
    /// constants; see `super::staged`).
    MatmulCoopStaged(super::staged::StagedModule),
    WgradUpdate,
    LinearXent,
    DgradWgradUpdate,
    /// The fp32 arithmetic ceiling (`batchscope gemm --ceilings`; the matmul and cooperative
    /// ceilings live beside the loops they bound, in matmul*.wgsl).
    Ceilings,
}

impl Shader {
    pub const ALL: [Shader; 18] = [
        Shader::Matmul,
        Shader::Elementwise,
        Shader::Act,
        Shader::Xent,
        Shader::Mse,
        Shader::Reduce,
        Shader::Update,
        Shader::Clip,
        Shader::Gather,
        Shader::Datagen,
        Shader::MatmulF16,
        Shader::Amp,
        Shader::MatmulCoop(super::coop_module::CoopModule::DEFAULT),
        Shader::MatmulCoopStaged(super::staged::StagedModule::DEFAULT),
        Shader::WgradUpdate,
        Shader::LinearXent,
        Shader::DgradWgradUpdate,
        Shader::Ceilings,
    ];

    /// Whether the module's SPIR-V is retyped (`super::retype`: the 16-byte tile loads) and
    /// goes to the driver as a passthrough module rather than through wgpu's compiler.
    pub fn retyped(self) -> bool {
        match self {
            Shader::MatmulCoop(module) => module.retyped(),
            Shader::MatmulCoopStaged(module) => module.retyped(),
            _ => false,
        }
    }

    /// Whether every workgroup-memory element the module's kernels read was written by the
    /// workgroup first (or it has none), so that WGSL's zero-initialisation is skipped: the
    /// cooperative kernels (the staged one stages every non-padding element of a slice, zeros
    /// past the matrix included, before the barrier that precedes its tile loads, and never
    /// reads the rows' padding; `StagedCfg::loads_fit`).
    pub fn writes_workgroup_memory_before_reading(self) -> bool {
        matches!(self, Shader::MatmulCoop(..) | Shader::MatmulCoopStaged(_))
    }

    /// The family name: `matmul`, `elementwise`, `act`, ...
    pub fn family(self) -> &'static str {
        match self {
            Shader::Matmul => "matmul",
            Shader::Elementwise => "elementwise",
            Shader::Act => "act",
            Shader::Xent => "xent",
            Shader::Mse => "mse",
            Shader::Reduce => "reduce",
            Shader::Update => "update",
            Shader::Clip => "clip",
            Shader::Gather => "gather",
            Shader::Datagen => "datagen",
            Shader::MatmulTile(_) => "matmul_tile",
            Shader::MatmulF16 => "matmul_f16",
            Shader::Amp => "amp",
            Shader::MatmulCoop(..) => "matmul_coop",
            Shader::MatmulCoopStaged(_) => "matmul_coop_staged",
            Shader::WgradUpdate => "wgrad_update",
            Shader::LinearXent => "linear_xent",
            Shader::DgradWgradUpdate => "dgrad_wgrad_update",
            Shader::Ceilings => "ceilings",
        }
    }

    /// `<family>.wgsl`, under `shaders/`.
    pub fn file_name(self) -> String {
        format!("{}.wgsl", self.family())
    }

    /// The WGSL file as stored, without the prelude (embedded at compile time).
    pub fn body(self) -> &'static str {
        match self {
            Shader::Matmul => include_str!("../../../shaders/matmul.wgsl"),
            Shader::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Shader::Act => include_str!("../../../shaders/act.wgsl"),
            Shader::Xent => include_str!("../../../shaders/xent.wgsl"),
            Shader::Mse => include_str!("../../../shaders/mse.wgsl"),
            Shader::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Shader::Update => include_str!("../../../shaders/update.wgsl"),
            Shader::Clip => include_str!("../../../shaders/clip.wgsl"),
            Shader::Gather => include_str!("../../../shaders/gather.wgsl"),
            Shader::Datagen => include_str!("../../../shaders/datagen.wgsl"),
            Shader::MatmulTile(_) => include_str!("../../../shaders/matmul_tile.wgsl"),
            Shader::MatmulF16 => include_str!("../../../shaders/matmul_f16.wgsl"),
            Shader::Amp => include_str!("../../../shaders/amp.wgsl"),
            Shader::MatmulCoop(..) => include_str!("../../../shaders/matmul_coop.wgsl"),
            Shader::MatmulCoopStaged(_) => include_str!("../../../shaders/matmul_coop_staged.wgsl"),
            Shader::WgradUpdate => include_str!("../../../shaders/wgrad_update.wgsl"),
            Shader::LinearXent => include_str!("../../../shaders/linear_xent.wgsl"),
            Shader::DgradWgradUpdate => include_str!("../../../shaders/dgrad_wgrad_update.wgsl"),
            Shader::Ceilings => include_str!("../../../shaders/ceilings.wgsl"),
        }
    }

    /// The files under `shaders/include/` this shader uses (WGSL has no `#include`): the fused
    /// epilogue shared by the f32 products and the one shared by the f16 products, each with
    /// the activations φ, φ' of act.wgsl and the bias-gradient column sum, the f32 → f16
    /// rounding of every f16 store, the optimizer's per-element update, and softmax
    /// cross-entropy's row and minibatch sums.
    pub fn includes(self) -> &'static [&'static str] {
        const ACTIVATION: &str = include_str!("../../../shaders/include/activation.wgsl");
        const EPILOGUE: &str = include_str!("../../../shaders/include/epilogue.wgsl");
        const EPILOGUE_F16: &str = include_str!("../../../shaders/include/epilogue_f16.wgsl");
        const F16_BITS: &str = include_str!("../../../shaders/include/f16_bits.wgsl");
        const COL_SUM_OF: &str = include_str!("../../../shaders/include/col_sum_of.wgsl");
        const UPDATE_RULE: &str = include_str!("../../../shaders/include/update_rule.wgsl");
        const XENT_ROW: &str = include_str!("../../../shaders/include/xent_row.wgsl");
        const STEP_PARAM: &str = include_str!("../../../shaders/include/step_param.wgsl");
        const COL_TREE: &str = include_str!("../../../shaders/include/col_tree.wgsl");
        const HALF_PARAMS: &str = include_str!("../../../shaders/include/half_params.wgsl");
        match self {
            Shader::Matmul => &[ACTIVATION, EPILOGUE, COL_SUM_OF, COL_TREE],
            Shader::MatmulTile(_) => &[ACTIVATION, EPILOGUE, COL_SUM_OF],
            Shader::MatmulF16 | Shader::MatmulCoop(..) | Shader::MatmulCoopStaged(_) => {
                &[HALF_PARAMS, ACTIVATION, EPILOGUE_F16, F16_BITS, COL_SUM_OF, COL_TREE]
            }
            Shader::Amp => &[F16_BITS, UPDATE_RULE, COL_TREE],
            Shader::Reduce => &[COL_TREE],
            Shader::Update => &[UPDATE_RULE],
            Shader::WgradUpdate => &[UPDATE_RULE, STEP_PARAM],
            Shader::DgradWgradUpdate => &[ACTIVATION, COL_SUM_OF, UPDATE_RULE, STEP_PARAM],
            Shader::Xent | Shader::LinearXent => &[XENT_ROW],
            _ => &[],
        }
    }

    /// The WGSL source as compiled: [`prelude`] followed by [`Shader::body`] (and, for a tile
    /// configuration, its constants in between) and its [`Shader::includes`] (module-scope
    /// declarations may come in any order), except that the body's leading `enable`
    /// directives (which WGSL wants before any declaration) go first.
    pub fn source(self) -> String {
        let body = self.body();
        let split = body
            .lines()
            .take_while(|l| l.starts_with("enable ") || l.trim().is_empty())
            .map(|l| l.len() + 1)
            .sum::<usize>()
            .min(body.len());
        let (enables, rest) = body.split_at(split);
        let constants = match self {
            Shader::MatmulTile(cfg) => cfg.constants(),
            Shader::MatmulCoop(module) => module.constants(),
            Shader::MatmulCoopStaged(module) => module.constants(),
            _ => String::new(),
        };
        let included = self.includes().concat();
        format!("{enables}{}{constants}{rest}\n{included}", prelude())
    }
}

/// A compute entry point and its storage bindings (after the parameter block).
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub shader: Shader,
    pub entry: &'static str,
    pub bindings: &'static [Access],
    /// Pipeline specialisation: 0 compiles the module's `override` defaults; else the fused
    /// matmul epilogue `EPI * 4 + ACT` (see `super::matmul::Epilogue`), one pipeline each.
    pub spec: u32,
}

use Access::{Read as R, ReadWrite as W};

macro_rules! kernel {
    ($const:ident, $shader:ident, $entry:literal, [$($acc:ident),*]) => {
        pub const $const: Kernel = Kernel {
            name: concat!(stringify!($shader), "::", $entry),
            shader: Shader::$shader,
            entry: $entry,
            bindings: &[$($acc),*],
            spec: 0,
        };
    };
}

// matmul.wgsl: C = alpha op(A) op(B) + beta C; (a, b, c) then the fused epilogue's input
// (bias or z) and output (y), see matmul::Epilogue
kernel!(MATMUL_NAIVE, Matmul, "matmul_naive", [R, R, W]);
kernel!(MATMUL_TILED, Matmul, "matmul_tiled", [R, R, W, R, W]);
kernel!(MATMUL_TILED_NN4, Matmul, "matmul_tiled_nn4", [R, R, W, R, W]);
kernel!(MATMUL_TILED_NT4, Matmul, "matmul_tiled_nt4", [R, R, W, R, W]);
kernel!(MATMUL_TILED_TN4, Matmul, "matmul_tiled_tn4", [R, R, W, R, W]);
kernel!(MATMUL_TILED_TT4, Matmul, "matmul_tiled_tt4", [R, R, W, R, W]);
// split-k: C = sum_s partial[s] + beta C, then the epilogue (partials, C, bias or z, y)
kernel!(MATMUL_SPLITK_REDUCE, Matmul, "matmul_splitk_reduce", [R, W, R, W]);
// skinny: few rows of C (small batches), k summed by lanes in a fixed order
kernel!(MATMUL_SKINNY8, Matmul, "matmul_skinny8", [R, R, W, R, W]);
kernel!(MATMUL_SKINNY4, Matmul, "matmul_skinny4", [R, R, W, R, W]);
kernel!(MATMUL_SKINNY1, Matmul, "matmul_skinny1", [R, R, W, R, W]);
// elementwise.wgsl
kernel!(FILL, Elementwise, "fill", [W]);
kernel!(COPY, Elementwise, "copy", [R, W]);
kernel!(AXPY, Elementwise, "axpy", [R, W]);
kernel!(SCALE, Elementwise, "scale", [W]);
kernel!(ADD_BIAS, Elementwise, "add_bias", [R, W]);
// act.wgsl
kernel!(ACT_FORWARD, Act, "act_forward", [R, W]);
kernel!(ACT_BACKWARD, Act, "act_backward", [R, R, W]);
kernel!(ACT_SECOND, Act, "act_second", [R, R, R, W]);
kernel!(BIAS_ACT, Act, "bias_act", [R, W, W]);
// xent.wgsl
kernel!(SOFTMAX_XENT, Xent, "softmax_xent", [R, R, W, W, W]);
// softmax_xent for rows <= WG_1D with the step's sums (logits, labels, loss, correct, dlogits, out)
kernel!(SOFTMAX_XENT_SUMS, Xent, "softmax_xent_sums", [R, R, W, W, W, W]);
kernel!(SOFTMAX_XENT_ROP, Xent, "softmax_xent_rop", [R, R, W]);
// linear_xent.wgsl: the output layer's product and bias, then softmax_xent_sums, in one
// workgroup (x, W, b, labels, logits, loss, correct, dlogits, out)
kernel!(LINEAR_XENT_SUMS, LinearXent, "linear_xent_sums", [R, R, R, R, W, W, W, W, W]);
// mse.wgsl
kernel!(MSE, Mse, "mse", [R, R, W, W]);
// reduce.wgsl: pass 1 writes per-workgroup partials, pass 2 sums them in a fixed order.
kernel!(REDUCE_PARTIAL, Reduce, "reduce_partial", [R, R, W]);
kernel!(REDUCE_FINAL, Reduce, "reduce_final", [R, W]);
kernel!(COL_SUM, Reduce, "col_sum", [R, W]);
// two sums of n-vectors at once (x, y, partials), (partials, out)
kernel!(SUMS_PARTIAL, Reduce, "sums_partial", [R, R, W]);
kernel!(SUMS_FINAL, Reduce, "sums_final", [R, W]);
// both passes in one when n <= WG_1D (x, y, out)
kernel!(SUMS_SMALL, Reduce, "sums_small", [R, R, W]);
// update.wgsl
kernel!(SGD_UPDATE, Update, "sgd_update", [R, W]);
kernel!(MOMENTUM_UPDATE, Update, "momentum_update", [R, W, W]);
// two tensors per dispatch, optionally guarded by the loss scaler: (state, then the tensors')
kernel!(SGD_UPDATE2, Update, "sgd_update2", [R, R, W, R, W]);
kernel!(MOMENTUM_UPDATE2, Update, "momentum_update2", [R, R, W, W, R, W, W]);
// wgrad_update.wgsl: a layer's gW, gb and optimizer step in one pass (dz, x, gW, gb, W, vW, b, vb;
// placeholders for the velocities under SGD)
kernel!(WGRAD_UPDATE_SGD, WgradUpdate, "wgrad_update_sgd", [R, R, W, W, W, W, W, W]);
kernel!(WGRAD_UPDATE_MOMENTUM, WgradUpdate, "wgrad_update_momentum", [R, R, W, W, W, W, W, W]);
// dgrad_wgrad_update.wgsl: a layer's dz_prev, gW, gb and optimizer step in one pass (dz, x,
// z_prev, dz_prev, gW, gb, W, vW, b, vb; placeholders for the velocities under SGD; φ' by the
// pipeline constant ACT)
kernel!(
    DGRAD_WGRAD_UPDATE_SGD,
    DgradWgradUpdate,
    "dgrad_wgrad_update_sgd",
    [R, R, R, W, W, W, W, W, W, W]
);
kernel!(
    DGRAD_WGRAD_UPDATE_MOMENTUM,
    DgradWgradUpdate,
    "dgrad_wgrad_update_momentum",
    [R, R, R, W, W, W, W, W, W, W]
);
// clip.wgsl
kernel!(CLIP_BY_GLOBAL_NORM, Clip, "clip_by_global_norm", [W, W]);
kernel!(CLIP_BY_VALUE, Clip, "clip_by_value", [W]);
// gather.wgsl
kernel!(GATHER_ROWS, Gather, "gather_rows", [R, R, W]);
kernel!(GATHER_IDX, Gather, "gather_idx", [R, R, W]);
kernel!(GATHER_ROWS_WINDOW, Gather, "gather_rows_window", [R, R, W]);
// datagen.wgsl: synthetic streams (table, x, labels / targets)
kernel!(GENERATE_GAUSSIAN_MIXTURE, Datagen, "generate_gaussian_mixture", [R, W, W]);
kernel!(GENERATE_LINEAR_X, Datagen, "generate_linear_x", [R, W]);
kernel!(GENERATE_LINEAR_TARGETS, Datagen, "generate_linear_targets", [R, R, W]);

// matmul_f16.wgsl: f32 -> packed f16 (x, words); C = alpha op(A) op(B) + beta C, A and B half
kernel!(TO_HALF, MatmulF16, "to_half", [R, W]);
kernel!(TO_HALF4, MatmulF16, "to_half4", [R, W, R, W, R, W, R, W]);
kernel!(MATMUL_F16, MatmulF16, "matmul_f16", [R, R, W, R, W, W, W]);
kernel!(MATMUL_F16_SKINNY, MatmulF16, "matmul_f16_skinny", [R, R, W, R, W, W, W]);
// amp.wgsl: loss scaling (scaler state first)
kernel!(AMP_SCALE, Amp, "amp_scale", [R, W]);
kernel!(AMP_SCALE_HALF, Amp, "amp_scale_half", [R, W, W]);
kernel!(AMP_UNSCALE, Amp, "amp_unscale", [W, W]);
kernel!(AMP_SGD, Amp, "amp_sgd", [R, R, W]);
kernel!(AMP_MOMENTUM, Amp, "amp_momentum", [R, R, W, W]);
kernel!(AMP_UPDATE_SCALE, Amp, "amp_update_scale", [W]);
kernel!(AMP_UNSCALE2, Amp, "amp_unscale2", [W, W, W]);
kernel!(AMP_COL_SUM_UNSCALE, Amp, "amp_col_sum_unscale", [W, R, W]);
// matmul_coop.wgsl: C = op(A) op(B) on cooperative matrices (needs adapter features), at
// 16x16 tiles with f16 loads, one module per transpose pair (the family, 8x8 tiles and wider
// loads included: super::coop_module), and its register ceilings
pub use super::coop_module::{
    COOP_CEILING16, COOP_CEILING4, MATMUL_COOP64_NN, MATMUL_COOP64_NT, MATMUL_COOP64_TN,
    MATMUL_COOP64_TT, MATMUL_COOP_NN, MATMUL_COOP_NT, MATMUL_COOP_TN, MATMUL_COOP_TT,
};
// matmul_coop_staged.wgsl: the same product, operands staged in workgroup memory, in the H200's
// configuration, one module per transpose pair (the family: super::staged)
pub use super::staged::{
    MATMUL_COOP_STAGED_NN, MATMUL_COOP_STAGED_NT, MATMUL_COOP_STAGED_TN, MATMUL_COOP_STAGED_TT,
};

// The ceilings (`batchscope gemm --ceilings`, super::ceilings): what the arithmetic reaches
// with no storage traffic in its loop.
kernel!(CEILING_FMA, Ceilings, "ceiling_fma", [W]);
kernel!(MATMUL_INNER_CEILING, Matmul, "matmul_inner_ceiling", [R, R, W]);
pub const COOP_STAGED_CEILING: Kernel = Kernel {
    name: "MatmulCoopStaged::coop_staged_ceiling",
    shader: Shader::MatmulCoopStaged(super::staged::StagedModule::DEFAULT),
    entry: "coop_staged_ceiling",
    bindings: &[R, R, W],
    spec: 0,
};

/// The fp32 ceilings (compiled on first use: a run that never asks pays nothing).
pub const CEILING_KERNELS: &[Kernel] = &[CEILING_FMA, MATMUL_INNER_CEILING];

/// The tensor-core ceilings: only where `matmul_coop::available` says so.
pub const COOP_CEILING_KERNELS: &[Kernel] = &[COOP_CEILING4, COOP_CEILING16, COOP_STAGED_CEILING];

/// The mixed-precision kernels (no adapter feature needed; compiled on first use, so f32 runs
/// and their warm-up are unchanged).
pub const MIXED_KERNELS: &[Kernel] = &[
    TO_HALF,
    TO_HALF4,
    MATMUL_F16,
    MATMUL_F16_SKINNY,
    AMP_SCALE,
    AMP_SCALE_HALF,
    AMP_UNSCALE,
    AMP_SGD,
    AMP_MOMENTUM,
    AMP_UPDATE_SCALE,
    AMP_UNSCALE2,
    AMP_COL_SUM_UNSCALE,
];

/// The cooperative-matrix kernels: only where `matmul_coop::available` says so.
pub const COOP_KERNELS: &[Kernel] = &[
    MATMUL_COOP_NN,
    MATMUL_COOP_NT,
    MATMUL_COOP_TN,
    MATMUL_COOP_TT,
    MATMUL_COOP64_NN,
    MATMUL_COOP64_NT,
    MATMUL_COOP64_TN,
    MATMUL_COOP64_TT,
    MATMUL_COOP_STAGED_NN,
    MATMUL_COOP_STAGED_NT,
    MATMUL_COOP_STAGED_TN,
    MATMUL_COOP_STAGED_TT,
];

/// Every kernel, for validation and warm-up.
pub const ALL_KERNELS: &[Kernel] = &[
    MATMUL_NAIVE,
    MATMUL_TILED,
    MATMUL_TILED_NN4,
    MATMUL_TILED_NT4,
    MATMUL_TILED_TN4,
    MATMUL_TILED_TT4,
    MATMUL_SPLITK_REDUCE,
    MATMUL_SKINNY8,
    MATMUL_SKINNY4,
    MATMUL_SKINNY1,
    FILL,
    COPY,
    AXPY,
    SCALE,
    ADD_BIAS,
    ACT_FORWARD,
    ACT_BACKWARD,
    ACT_SECOND,
    BIAS_ACT,
    SOFTMAX_XENT,
    SOFTMAX_XENT_SUMS,
    SOFTMAX_XENT_ROP,
    LINEAR_XENT_SUMS,
    MSE,
    REDUCE_PARTIAL,
    REDUCE_FINAL,
    COL_SUM,
    SUMS_PARTIAL,
    SUMS_FINAL,
    SUMS_SMALL,
    SGD_UPDATE,
    MOMENTUM_UPDATE,
    SGD_UPDATE2,
    MOMENTUM_UPDATE2,
    WGRAD_UPDATE_SGD,
    WGRAD_UPDATE_MOMENTUM,
    DGRAD_WGRAD_UPDATE_SGD,
    DGRAD_WGRAD_UPDATE_MOMENTUM,
    GATHER_ROWS,
    GATHER_IDX,
    GATHER_ROWS_WINDOW,
    CLIP_BY_VALUE,
    CLIP_BY_GLOBAL_NORM,
    GENERATE_GAUSSIAN_MIXTURE,
    GENERATE_LINEAR_X,
    GENERATE_LINEAR_TARGETS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_unique() {
        let all = ALL_KERNELS
            .iter()
            .chain(MIXED_KERNELS)
            .chain(COOP_KERNELS)
            .chain(CEILING_KERNELS)
            .chain(COOP_CEILING_KERNELS);
        let mut names: Vec<_> = all.map(|k| k.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}

//! The registry of compute kernels: which shader file, which entry point, which bindings.
//!
//! Binding convention for every kernel: `@group(0) @binding(0)` is a uniform parameter block
//! (a `#[repr(C)]` Pod struct of at most [`PARAM_SLOT`] bytes, bound with a dynamic offset into a
//! per-submit arena); bindings `1..` are storage buffers in the order of `bindings`, inputs
//! `read` and outputs `read_write`.

/// Bytes reserved per dispatch for its parameter block (≥ every adapter's uniform alignment).
pub const PARAM_SLOT: u64 = 256;

/// Workgroup size of the 1-D kernels (elementwise, reductions, losses).
pub const WG_1D: u32 = 256;

/// Access of a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// One kernel family per WGSL file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Matmul,
    Elementwise,
    Act,
    Xent,
    Reduce,
    Sgd,
    Gather,
    Datagen,
}

impl Shader {
    pub const ALL: [Shader; 8] = [
        Shader::Matmul,
        Shader::Elementwise,
        Shader::Act,
        Shader::Xent,
        Shader::Reduce,
        Shader::Sgd,
        Shader::Gather,
        Shader::Datagen,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Matmul => "matmul.wgsl",
            Shader::Elementwise => "elementwise.wgsl",
            Shader::Act => "act.wgsl",
            Shader::Xent => "xent.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Sgd => "sgd.wgsl",
            Shader::Gather => "gather.wgsl",
            Shader::Datagen => "datagen.wgsl",
        }
    }

    /// WGSL source, embedded at compile time.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Matmul => include_str!("../../../shaders/matmul.wgsl"),
            Shader::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Shader::Act => include_str!("../../../shaders/act.wgsl"),
            Shader::Xent => include_str!("../../../shaders/xent.wgsl"),
            Shader::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Shader::Sgd => include_str!("../../../shaders/sgd.wgsl"),
            Shader::Gather => include_str!("../../../shaders/gather.wgsl"),
            Shader::Datagen => include_str!("../../../shaders/datagen.wgsl"),
        }
    }
}

/// A compute entry point and its storage bindings (after the parameter block).
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub shader: Shader,
    pub entry: &'static str,
    pub bindings: &'static [Access],
}

use Access::{Read as R, ReadWrite as W};

macro_rules! kernel {
    ($const:ident, $shader:ident, $entry:literal, [$($acc:ident),*]) => {
        pub const $const: Kernel = Kernel {
            name: concat!(stringify!($shader), "::", $entry),
            shader: Shader::$shader,
            entry: $entry,
            bindings: &[$($acc),*],
        };
    };
}

// matmul.wgsl: C = alpha op(A) op(B) + beta C
kernel!(MATMUL_NAIVE, Matmul, "matmul_naive", [R, R, W]);
kernel!(MATMUL_TILED, Matmul, "matmul_tiled", [R, R, W]);
kernel!(MATMUL_TILED_NN4, Matmul, "matmul_tiled_nn4", [R, R, W]);
kernel!(MATMUL_TILED_NT4, Matmul, "matmul_tiled_nt4", [R, R, W]);
kernel!(MATMUL_TILED_TN4, Matmul, "matmul_tiled_tn4", [R, R, W]);
kernel!(MATMUL_TILED_TT4, Matmul, "matmul_tiled_tt4", [R, R, W]);
// split-k: C = sum_s partial[s] + beta C (partials, C)
kernel!(MATMUL_SPLITK_REDUCE, Matmul, "matmul_splitk_reduce", [R, W]);
// elementwise.wgsl
kernel!(FILL, Elementwise, "fill", [W]);
kernel!(COPY, Elementwise, "copy", [R, W]);
kernel!(AXPY, Elementwise, "axpy", [R, W]);
kernel!(SCALE, Elementwise, "scale", [W]);
kernel!(CLAMP, Elementwise, "clamp_abs", [W]);
kernel!(ADD_BIAS, Elementwise, "add_bias", [R, W]);
// act.wgsl
kernel!(ACT_FORWARD, Act, "act_forward", [R, W]);
kernel!(ACT_BACKWARD, Act, "act_backward", [R, R, W]);
kernel!(ACT_SECOND, Act, "act_second", [R, R, R, W]);
// xent.wgsl
kernel!(SOFTMAX_XENT, Xent, "softmax_xent", [R, R, W, W, W]);
kernel!(SOFTMAX_XENT_ROP, Xent, "softmax_xent_rop", [R, R, W]);
kernel!(MSE, Xent, "mse", [R, R, W, W]);
// reduce.wgsl: pass 1 writes per-workgroup partials, pass 2 sums them in a fixed order.
kernel!(REDUCE_PARTIAL, Reduce, "reduce_partial", [R, R, W]);
kernel!(REDUCE_FINAL, Reduce, "reduce_final", [R, W]);
kernel!(COL_SUM, Reduce, "col_sum", [R, W]);
// sgd.wgsl
kernel!(SGD_UPDATE, Sgd, "sgd_update", [R, W]);
kernel!(MOMENTUM_UPDATE, Sgd, "momentum_update", [R, W, W]);
kernel!(CLIP_GLOBAL_NORM, Sgd, "clip_global_norm", [W, W]);
// gather.wgsl
kernel!(GATHER_ROWS, Gather, "gather_rows", [R, R, W]);
kernel!(GATHER_IDX, Gather, "gather_idx", [R, R, W]);
kernel!(GATHER_ROWS_WINDOW, Gather, "gather_rows_window", [R, R, W]);
// datagen.wgsl: synthetic streams (table, x, labels / targets)
kernel!(GEN_GAUSSIAN_MIXTURE, Datagen, "gen_gaussian_mixture", [R, W, W]);
kernel!(GEN_LINEAR_X, Datagen, "gen_linear_x", [R, W]);
kernel!(GEN_LINEAR_TARGETS, Datagen, "gen_linear_targets", [R, R, W]);

/// Every kernel, for validation and warm-up.
pub const ALL_KERNELS: &[Kernel] = &[
    MATMUL_NAIVE,
    MATMUL_TILED,
    MATMUL_TILED_NN4,
    MATMUL_TILED_NT4,
    MATMUL_TILED_TN4,
    MATMUL_TILED_TT4,
    MATMUL_SPLITK_REDUCE,
    FILL,
    COPY,
    AXPY,
    SCALE,
    ADD_BIAS,
    ACT_FORWARD,
    ACT_BACKWARD,
    ACT_SECOND,
    SOFTMAX_XENT,
    SOFTMAX_XENT_ROP,
    MSE,
    REDUCE_PARTIAL,
    REDUCE_FINAL,
    COL_SUM,
    SGD_UPDATE,
    MOMENTUM_UPDATE,
    GATHER_ROWS,
    GATHER_IDX,
    GATHER_ROWS_WINDOW,
    CLAMP,
    CLIP_GLOBAL_NORM,
    GEN_GAUSSIAN_MIXTURE,
    GEN_LINEAR_X,
    GEN_LINEAR_TARGETS,
];

/// Workgroup grid for `n` invocations of a 1-D kernel of `WG_1D` threads, folded into two
/// dimensions when it exceeds `max_per_dim` groups. Shaders recover the linear index as
/// `gid.x + gid.y * num_workgroups.x * WG_1D`.
pub fn grid_1d(n: usize, max_per_dim: u32) -> [u32; 3] {
    let groups = n.div_ceil(WG_1D as usize).max(1) as u64;
    let max = max_per_dim.max(1) as u64;
    if groups <= max {
        [groups as u32, 1, 1]
    } else {
        [max as u32, groups.div_ceil(max) as u32, 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_every_element() {
        for &n in &[0usize, 1, 255, 256, 257, 65535 * 256, 65535 * 256 + 1, 1 << 30] {
            let g = grid_1d(n, 65535);
            let total = g[0] as u64 * g[1] as u64 * WG_1D as u64;
            assert!(total >= n as u64, "n={n} grid={g:?}");
            assert!(g[0] <= 65535 && g[1] <= 65535);
        }
    }

    #[test]
    fn kernel_names_are_unique() {
        let mut names: Vec<_> = ALL_KERNELS.iter().map(|k| k.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}

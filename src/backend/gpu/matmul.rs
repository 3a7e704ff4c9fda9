//! Host side of `shaders/matmul.wgsl`: `C[m,n] = alpha * op(A) * op(B) + beta * C`.
//!
//! Three kernels, all tested against an f64 reference and benched (`benches/matmul.rs`):
//! - [`MatmulVariant::Naive`]: one invocation per element of C.
//! - [`MatmulVariant::Tiled`]: 128x128 tiles of C per workgroup, 8x8 per invocation, slices of
//!   A and B double-buffered in workgroup memory. When the contiguous dimension of each stored
//!   operand and `n` are multiples of 4, a vec4 entry point specialised for the transposes is
//!   used; otherwise the generic scalar-load one.
//! - [`MatmulVariant::Skinny`]: for few rows of C (the small-batch products `X·Wᵀ` and
//!   `dZ·W`): 8, 4 or 1 rows (by m) x a block of columns per workgroup, k walked by 8 or 32
//!   lanes per column whose partial sums are added in a fixed lane order (deterministic, one
//!   pass, the same bits for every row count). A 128x128 tile would compute 128 rows for the
//!   few real ones.
//! - [`MatmulVariant::Auto`] (the default) picks Skinny or Tiled by shape with [`choose`].
//! - The tile family ([`tile_launch`], `shaders/matmul_tile.wgsl`, [`super::tile`]): the tiled
//!   kernel at other tile sizes and depths, which the autotuner ([`super::autotune`]) may pick
//!   per shape instead of `choose`. Every launch is a [`Launch`] recorded by [`record`].
//!
//! Split-k ([`split_count`]): when the tiled grid has few workgroups and k is long (the weight
//! gradients `dZᵀ·X` with k = batch), k is cut into `S` chunks dispatched as `S` groups of the
//! z dimension, each writing `alpha · op(A) op(B)` over its chunk to a device scratch buffer
//! `[S, m, n]`; `matmul_splitk_reduce` then sums the partials in a fixed order (deterministic)
//! and adds `beta · C`. `BATCHSCOPE_SPLITK=0` in the environment disables it (for A/B timing).
//!
//! Fused epilogues ([`Epilogue`], [`record_epi`]): every kernel but the naive one can apply
//! `+ bias`, `+ bias` then `y = φ(·)`, or `⊙ φ'(z)` in its store of C (in the split-k reduce
//! when split-k runs), with the float operations of the element-wise kernels they replace; the
//! epilogue is a pipeline constant (`override EPI, ACT`), one pipeline per epilogue.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels::WG_1D;
use super::kernels::{
    Kernel, MATMUL_NAIVE, MATMUL_SKINNY1, MATMUL_SKINNY4, MATMUL_SKINNY8, MATMUL_SPLITK_REDUCE,
    MATMUL_TILED, MATMUL_TILED_NN4, MATMUL_TILED_NT4, MATMUL_TILED_TN4, MATMUL_TILED_TT4,
};
use super::launch::{check_depth_walk, check_loop_budget, col_sum_iterations, grid_1d};
use super::tile::TileCfg;
use crate::backend::{check_len, gemm_lens, Activation, BackendError, Gemm, Result};

/// Which matmul kernel [`matmul`] dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    Naive,
    Tiled,
    Skinny,
    /// Skinny or Tiled by shape ([`choose`]).
    Auto,
}

impl MatmulVariant {
    /// The kernels themselves (what `Auto` chooses between, plus the naive reference).
    pub const ALL: [MatmulVariant; 3] =
        [MatmulVariant::Naive, MatmulVariant::Tiled, MatmulVariant::Skinny];

    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Naive => "naive",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::Skinny => "skinny",
            MatmulVariant::Auto => "auto",
        }
    }
}

/// Rows of C up to which [`choose`] takes the skinny kernel (a batch of at most 128 examples).
/// 32 until the H200 measured the step at B = 64 and 128 (2026-12-04, GPU timestamps): 0.278 and
/// 0.317 ms with the 128x128 tiles (16 and 32 workgroups with split-k), 0.160 and 0.235 ms with
/// the skinny kernel's 1024 and 2048 workgroups; no batch size was slower.
pub const SKINNY_MAX_M: usize = 128;
/// Columns of C up to which [`choose`] takes the skinny kernel whatever the rows: the output
/// layer's forward product `X·Wᵀ` (n = classes), which 128x128 tiles run as one column of
/// mostly empty tiles (2 workgroups at B = 256, 8 split-k chunks of them).
pub const SKINNY_MAX_N: usize = 16;
/// Depth up to which [`choose`] takes the skinny kernel (8 lanes walk at most 8192 steps).
pub const SKINNY_MAX_K: usize = 65536;

/// The kernel [`MatmulVariant::Auto`] runs for `g` by the default [`AutoRule`]: Skinny for few
/// rows of C (m ≤ [`SKINNY_MAX_M`]) or few columns (n ≤ [`SKINNY_MAX_N`]) of a plain A (the
/// batch-row products `X·Wᵀ` and `dZ·W`, the output layer's `X·Wᵀ`) and a depth one workgroup
/// can walk, else Tiled. Transposed-A products are the weight gradients `dZᵀ·X`, whose m is a
/// layer width and whose k is the batch: they stay on the tiled kernel (with split-k). A pure
/// function of the shape: a run is deterministic and the same on every device.
///
/// [`AutoRule`]: super::auto_rule::AutoRule
pub fn choose(g: &Gemm) -> MatmulVariant {
    super::auto_rule::AutoRule::default().variant(g)
}

/// The skinny entry point for `m` rows of C and its rows per workgroup (`rm` in the shader):
/// 1 for a single row, 4 up to 4, else 8 (fewer rows computed past m).
fn skinny_kernel(m: usize) -> (Kernel, u32) {
    match m {
        0 | 1 => (MATMUL_SKINNY1, 1),
        2..=4 => (MATMUL_SKINNY4, 4),
        _ => (MATMUL_SKINNY8, 8),
    }
}

/// Whether `launch` runs one of the skinny entry points (k summed in lanes: see matmul.wgsl),
/// whose float operations `shaders/linear_xent.wgsl` repeats.
pub fn is_skinny(launch: &Launch) -> bool {
    [MATMUL_SKINNY8, MATMUL_SKINNY4, MATMUL_SKINNY1].iter().any(|k| k.name == launch.kernel.name)
}

/// Whether the skinny kernel's column groups of `g` fit one grid dimension on every adapter
/// (WebGPU's least `max_compute_workgroups_per_dimension`, 65 535): 8 columns a group cap n at
/// 524 280 (a layer of 600 000 units failed "grid of 75000x1 workgroups"), where the tiled
/// kernel's 128 go 16× further. A pure function of the shape, as [`choose`] is.
pub fn skinny_grid_fits(g: &Gemm) -> bool {
    g.n.div_ceil(skinny_cols(g) as usize) <= 65_535
}

/// Columns of C per skinny workgroup: 32 when B is stored [k,n], 8 when stored [n,k]
/// (`cw` in the shader).
fn skinny_cols(g: &Gemm) -> u32 {
    if g.trans_b {
        8
    } else {
        32
    }
}

/// Side of the naive kernel's square workgroup.
const NAIVE_WG: u32 = 16;
/// Rows and columns of C per tiled workgroup.
const TILE_M: u32 = 128;
const TILE_N: u32 = 128;

/// Depth of one tiled slice (`BK` in the shader); split-k chunks are multiples of it.
const TILE_K: usize = 8;

/// Mirrors `struct Params` in matmul.wgsl (48 bytes, a multiple of 16).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    alpha: f32,
    beta: f32,
    /// Split-k chunks in the z dimension (1: no split).
    splits: u32,
    /// Depth of one chunk (k when not split).
    kc: u32,
    /// The store's fused epilogue ([`Epilogue::codes`]).
    epi: u32,
    act: u32,
    _pad: u32,
}

const _: () = assert!(std::mem::size_of::<MatmulParams>() == 48);

/// Grid for `col_groups x row_groups` workgroups: row groups beyond `max_per_dim` fold into z
/// (the shader walks row blocks as `wid.y + wid.z * num_workgroups.y` and drops the excess).
pub fn grid_2d(col_groups: u64, row_groups: u64, max_per_dim: u32) -> Result<[u32; 3]> {
    let max = max_per_dim.max(1) as u64;
    let (gy, gz) = if row_groups <= max { (row_groups, 1) } else { (max, row_groups.div_ceil(max)) };
    if col_groups > max || gz > max {
        return Err(BackendError::Invalid {
            op: "matmul",
            message: format!("grid of {col_groups}x{row_groups} workgroups exceeds {max} per dimension"),
        });
    }
    Ok([col_groups as u32, gy as u32, gz as u32])
}

/// Which of the five tiled entry points (generic, nn4, nt4, tn4, tt4) runs `g`: a vec4 one when
/// every vec4 the kernel touches is aligned and wholly inside or outside its matrix, else the
/// generic one (index 0).
fn tiled_entry(g: &Gemm) -> usize {
    let a_contig = if g.trans_a { g.m } else { g.k };
    let b_contig = if g.trans_b { g.k } else { g.n };
    if !(a_contig.is_multiple_of(4) && b_contig.is_multiple_of(4) && g.n.is_multiple_of(4)) {
        return 0;
    }
    1 + 2 * g.trans_a as usize + g.trans_b as usize
}

/// The tiled entry point of `matmul.wgsl` for `g` (see [`tiled_entry`]).
fn tiled_kernel(g: &Gemm) -> Kernel {
    [MATMUL_TILED, MATMUL_TILED_NN4, MATMUL_TILED_NT4, MATMUL_TILED_TN4, MATMUL_TILED_TT4]
        [tiled_entry(g)]
}

/// The entry point [`matmul`] would dispatch (for reports and tests).
pub fn kernel_for(v: MatmulVariant, g: &Gemm) -> Kernel {
    match v {
        MatmulVariant::Naive => MATMUL_NAIVE,
        MatmulVariant::Tiled => tiled_kernel(g),
        MatmulVariant::Skinny => skinny_kernel(g.m).0,
        MatmulVariant::Auto => kernel_for(choose(g), g),
    }
}

/// How one product is launched: the kernel, the block of C one workgroup computes (rows x
/// columns), and whether the split-k plan may apply (the tiled kernels).
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    pub kernel: Kernel,
    pub tile_m: u32,
    pub tile_n: u32,
    pub splitk: bool,
}

/// The launch of variant `v` (`Auto` resolved by [`choose`]) for `g`.
pub fn launch_of(v: MatmulVariant, g: &Gemm) -> Launch {
    match v {
        MatmulVariant::Naive => {
            Launch { kernel: MATMUL_NAIVE, tile_m: NAIVE_WG, tile_n: NAIVE_WG, splitk: false }
        }
        MatmulVariant::Tiled => {
            Launch { kernel: tiled_kernel(g), tile_m: TILE_M, tile_n: TILE_N, splitk: true }
        }
        MatmulVariant::Skinny => {
            let (kernel, rm) = skinny_kernel(g.m);
            Launch { kernel, tile_m: rm, tile_n: skinny_cols(g), splitk: false }
        }
        MatmulVariant::Auto => launch_of(choose(g), g),
    }
}

/// The launch of tile configuration `cfg` of the autotuner's family for `g`, or `None` for a
/// configuration outside [`super::tile::TILES`].
pub fn tile_launch(cfg: TileCfg, g: &Gemm) -> Option<Launch> {
    let kernels = super::tile::kernels(cfg)?;
    Some(Launch { kernel: kernels[tiled_entry(g)], tile_m: cfg.bm, tile_n: cfg.bn, splitk: true })
}

/// Record `c = alpha * op(a) * op(b) + beta * c` (see [`Gemm`]); `a: [m,k]` (or `[k,m]`),
/// `b: [k,n]` (or `[n,k]`), `c: [m,n]`. `m == 0 || n == 0` records nothing; `k == 0` scales C.
pub fn matmul(
    dev: &GpuDevice,
    v: MatmulVariant,
    g: &Gemm,
    a: &RawBuf,
    b: &RawBuf,
    c: &RawBuf,
) -> Result<()> {
    let v = if v == MatmulVariant::Auto { choose(g) } else { v };
    record(dev, &launch_of(v, g), g, a, b, c)
}

/// What the store of a product does after `v = alpha * acc + beta * C` (the epilogue section
/// of `matmul.wgsl`), with the same float operations as the element-wise kernels it replaces.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// `C = v`.
    None,
    /// `C[r, j] = v + bias[j]` (`add_bias`), `bias: [n]`.
    Bias(&'a RawBuf),
    /// `C[r, j] = v + bias[j]`, then `y = φ(C)` (`bias_act`), `bias: [n]`, `y: [m, n]`.
    BiasAct(Activation, &'a RawBuf, &'a RawBuf),
    /// `C = v ⊙ φ'(z)` (`act_backward` with `dy = v`), `z: [m, n]`.
    ActGrad(Activation, &'a RawBuf),
    /// `C = v` and `g[r] = Σ_{i<k} s[i, r]` (`col_sum`), `s: [k, m]`, `g: [m]`.
    BiasGrad(&'a RawBuf, &'a RawBuf),
}

impl Epilogue<'_> {
    /// `(epi, act)` of the parameter block.
    fn codes(&self) -> (u32, u32) {
        match self {
            Epilogue::None => (0, 0),
            Epilogue::Bias(_) => (1, 0),
            Epilogue::BiasAct(act, ..) => (2, act.code()),
            Epilogue::ActGrad(act, _) => (3, act.code()),
            Epilogue::BiasGrad(..) => (4, 0),
        }
    }

    /// Check the epilogue's operands against `g`'s output `[m, n]`.
    fn check(&self, g: &Gemm) -> Result<()> {
        let op = "matmul epilogue";
        match self {
            Epilogue::None => Ok(()),
            Epilogue::Bias(bias) => check_len(op, "bias", bias.len(), g.n),
            Epilogue::BiasAct(_, bias, y) => {
                check_len(op, "bias", bias.len(), g.n)?;
                check_len(op, "y", y.len(), g.m * g.n)
            }
            Epilogue::ActGrad(_, z) => check_len(op, "z", z.len(), g.m * g.n),
            Epilogue::BiasGrad(s, bias_grad) => {
                check_len(op, "s", s.len(), g.k * g.m)?;
                check_len(op, "bias_grad", bias_grad.len(), g.m)
            }
        }
    }

    /// The epilogue's input and output bindings; `read` and `dev`'s placeholder stand in for
    /// those it does not use.
    fn bindings(&self, dev: &GpuDevice, read: &'_ RawBuf) -> Result<(RawBuf, RawBuf)> {
        let spare = || dev.epilogue_placeholder();
        Ok(match self {
            Epilogue::None => (read.clone(), spare()?),
            Epilogue::Bias(bias) => ((*bias).clone(), spare()?),
            Epilogue::BiasAct(_, bias, y) => ((*bias).clone(), (*y).clone()),
            Epilogue::ActGrad(_, z) => ((*z).clone(), spare()?),
            Epilogue::BiasGrad(s, bias_grad) => ((*s).clone(), (*bias_grad).clone()),
        })
    }
}

/// The largest depth k (the minibatch rows of a weight-gradient product) at which a kernel
/// that cannot stage the column sums fuses the bias gradient into its store (the skinny kernel,
/// a bias gradient of an operand other than A, the f16 kernels): there each invocation of the
/// first column block's workgroups sums one column of k values alone; past a few dozen that
/// serial sum would outlast the tile, and the separate col_sum (one dispatch, every column in
/// parallel) is the better deal. The tiled kernels fuse the bias gradient of A itself at any k
/// ([`fuses_bias_grad`]).
pub const BIAS_GRAD_FUSE_MAX_K: usize = 32;

/// Whether a product `g` run by `launch` fuses the bias gradient `Σ_i s[i, ·]` into its
/// dispatches (else `col_sum` runs after it). `s_is_a`: `s` is the product's A (the weight
/// gradient `dzᵀ·x`). Any k where the tiled kernels sum A's staged slices (epilogue 5 of
/// `shaders/include/epilogue.wgsl`; with split-k, the reduce dispatch runs col_sum's workgroups
/// too), else up to [`BIAS_GRAD_FUSE_MAX_K`]. `n > 0`: an empty C records no dispatch, while
/// the bias gradient still has its m sums.
pub fn fuses_bias_grad(launch: &Launch, g: &Gemm, s_is_a: bool) -> bool {
    fuses_serial_bias_grad(g) || (g.n > 0 && sums_staged_a(launch, g, s_is_a))
}

/// Whether a kernel that sums the bias gradient serially per column (the f16 kernels, the
/// skinny one) fuses it for `g`: `k ≤` [`BIAS_GRAD_FUSE_MAX_K`] and `n > 0`.
pub fn fuses_serial_bias_grad(g: &Gemm) -> bool {
    g.k <= BIAS_GRAD_FUSE_MAX_K && g.n > 0
}

/// Whether `launch` can sum the bias gradient of `g`'s A from its staged slices: a tiled
/// kernel (base or family), A transposed (stored `[k, m]`, as s is) and s the same buffer.
fn sums_staged_a(launch: &Launch, g: &Gemm, s_is_a: bool) -> bool {
    s_is_a && g.trans_a && fuses(launch) && !is_skinny(launch)
}

/// Whether `launch` can fuse an epilogue into its store (every kernel but the naive one).
pub fn fuses(launch: &Launch) -> bool {
    launch.kernel.name != MATMUL_NAIVE.name
}

/// Record the product `g` with `launch` (from [`launch_of`] or [`tile_launch`]); the split-k
/// plan applies to tiled launches unless `BATCHSCOPE_SPLITK=0`.
pub fn record(
    dev: &GpuDevice,
    launch: &Launch,
    g: &Gemm,
    a: &RawBuf,
    b: &RawBuf,
    c: &RawBuf,
) -> Result<()> {
    record_epi(dev, launch, g, a, b, c, Epilogue::None)
}

/// [`record`] with `epi` fused into the store of C (into the split-k reduce when split-k
/// runs). The naive kernel has no epilogue: `epi` must then be [`Epilogue::None`]. Its one
/// invocation per element walks all of k, so past an adapter's loop cap (Debian 12's
/// llvmpipe) it is refused rather than cut short.
pub fn record_epi(
    dev: &GpuDevice,
    launch: &Launch,
    g: &Gemm,
    a: &RawBuf,
    b: &RawBuf,
    c: &RawBuf,
    epi: Epilogue<'_>,
) -> Result<()> {
    if launch.kernel.name == MATMUL_NAIVE.name && g.m > 0 && g.n > 0 {
        let what = format!("the naive product {}x{}x{} (depth {})", g.m, g.n, g.k, g.k);
        check_loop_budget(dev, "matmul", g.k as u64 + 1, &what)?;
    }
    record_epi_unchecked(dev, launch, g, a, b, c, epi)
}

/// The naive product `g` without the loop-budget check: the loop probe
/// ([`super::launch::measured_loop_limit`]) runs it past the cap on purpose.
pub(super) fn record_probe(dev: &GpuDevice, g: &Gemm, a: &RawBuf, b: &RawBuf, c: &RawBuf) -> Result<()> {
    record_epi_unchecked(dev, &launch_of(MatmulVariant::Naive, g), g, a, b, c, Epilogue::None)
}

fn record_epi_unchecked(
    dev: &GpuDevice,
    launch: &Launch,
    g: &Gemm,
    a: &RawBuf,
    b: &RawBuf,
    c: &RawBuf,
    epi: Epilogue<'_>,
) -> Result<()> {
    let (la, lb, lc) = gemm_lens(g);
    check_len("matmul", "a", a.len(), la)?;
    check_len("matmul", "b", b.len(), lb)?;
    check_len("matmul", "c", c.len(), lc)?;
    epi.check(g)?;
    let (mut epi_code, act) = epi.codes();
    if epi_code != 0 && !fuses(launch) {
        return Err(BackendError::Invalid {
            op: "matmul",
            message: format!("{} has no fused epilogue", launch.kernel.name),
        });
    }
    if g.m == 0 || g.n == 0 {
        return Ok(());
    }
    // Indices are u32 in the shader; every linear index must fit (plus tile overhang).
    let limit = u32::MAX as usize - 4 * TILE_N as usize;
    if [la, lb, lc, g.m, g.n, g.k].iter().any(|&x| x > limit) {
        return Err(BackendError::Invalid {
            op: "matmul",
            message: format!("{}x{}x{} exceeds 32-bit shader indexing", g.m, g.n, g.k),
        });
    }
    let mut params = MatmulParams {
        m: g.m as u32,
        n: g.n as u32,
        k: g.k as u32,
        trans_a: g.trans_a as u32,
        trans_b: g.trans_b as u32,
        alpha: g.alpha,
        beta: g.beta,
        splits: 1,
        kc: g.k as u32,
        epi: epi_code,
        act,
        _pad: 0,
    };
    let max = dev.ctx.limits.max_compute_workgroups_per_dimension;
    let kernel = launch.kernel;
    let grid = launch_grid(dev, launch, g)?;
    if launch.splitk && splitk_enabled() {
        if let Some((splits, kc)) = split_plan(dev, launch, g, grid) {
            if epi_code == 4 {
                // The reduce's col_sum workgroups walk all k rows of S (splitk_col_sum).
                let what = format!("the bias gradient's column sum over {} rows", g.k);
                check_loop_budget(dev, "matmul", col_sum_iterations(g.k), &what)?;
            }
            check_depth_walk(dev, "matmul", g, kc, depth_walk(launch, g))?;
            let partials = dev.splitk_scratch(splits * g.m * g.n)?;
            let plain = MatmulParams {
                splits: splits as u32,
                kc: kc as u32,
                beta: 0.0,
                epi: 0,
                act: 0,
                ..params
            };
            let split_grid = [grid[0], grid[1], grid[2] * splits as u32];
            let spare = dev.epilogue_placeholder()?;
            dev.dispatch(&kernel, &plain, &[a, b, &partials, a, &spare], split_grid)?;
            // The reduce adds beta * C and applies the epilogue; the bias gradient's col_sum
            // runs as more workgroups of the same dispatch, after the sum's.
            params.splits = splits as u32;
            params.kc = kc as u32;
            let sum_groups = (g.m * g.n).div_ceil(WG_1D as usize);
            let col_groups = if epi_code == 4 { g.m.div_ceil(32) } else { 0 };
            let (e_in, e_out) = epi.bindings(dev, &partials)?;
            dev.dispatch(
                &Kernel { spec: epi_code * 4 + act, ..MATMUL_SPLITK_REDUCE },
                &params,
                &[&partials, c, &e_in, &e_out],
                grid_1d((sum_groups + col_groups) * WG_1D as usize, max),
            )?;
            return Ok(());
        }
    }
    // Every invocation walks all of k (the naive kernel was checked in `record_epi`).
    if kernel.name != MATMUL_NAIVE.name {
        check_depth_walk(dev, "matmul", g, g.k, depth_walk(launch, g))?;
    }
    if kernel.bindings.len() == 3 {
        return dev.dispatch(&kernel, &params, &[a, b, c], grid);
    }
    if let Epilogue::BiasGrad(s, _) = epi {
        if sums_staged_a(launch, g, s.id == a.id) {
            epi_code = 5;
            params.epi = epi_code;
        }
    }
    let (e_in, e_out) = epi.bindings(dev, a)?;
    let kernel = Kernel { spec: epi_code * 4 + act, ..kernel };
    dev.dispatch(&kernel, &params, &[a, b, c, &e_in, &e_out], grid)
}

mod split;
#[cfg(test)]
use split::SPLITK_MIN_CHUNK;
use split::{depth_walk, launch_grid, split_plan, splitk_enabled};
pub use split::{is_whole_tiled, split_count};

#[cfg(test)]
mod epilogue_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tile_tests;

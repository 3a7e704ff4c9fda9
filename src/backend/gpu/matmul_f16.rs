//! Host side of `shaders/matmul_f16.wgsl`: f32 → packed f16 (`to_half`) and the f16 GEMM with
//! f32 accumulation (`matmul_f16`, and [`skinny`] for a side of C too short for a tile), plus
//! the choice between them and the cooperative-matrix kernels ([`super::matmul_coop`]).
//!
//! Storage: halves packed two per u32 word, read with `unpack2x16float`. Products are summed in
//! f32 either way, so f16 *arithmetic* (`enable f16;`, `SHADER_F16`) would buy nothing on this
//! path, while packed words halve the bytes moved like `array<f16>` does and run on every
//! adapter (lavapipe emulates f16 arithmetic slowly). The cooperative-matrix kernel reads the
//! same bytes as `array<f16>`.

use bytemuck::{Pod, Zeroable};

use super::coop_shape::LoadWidth;
use super::device::{GpuDevice, RawBuf};
use super::kernels::{MATMUL_F16, TO_HALF, TO_HALF4, WG_1D};
use super::launch::{grid_1d, launch_1d, u32_of};
use super::matmul::{fuses_serial_bias_grad, grid_2d, Epilogue as Store};
use super::matmul_coop;
use crate::backend::half::{half_words, scaler};
use crate::backend::{check_len, gemm_lens, BackendError, Gemm, Result};

pub mod skinny;

/// Mirrors `struct Params` in include/half_params.wgsl (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(super) struct HalfParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub trans_a: u32,
    pub trans_b: u32,
    pub alpha: f32,
    pub beta: f32,
    /// `to_half`: number of f32 elements.
    pub len: u32,
    /// `matmul_f16`'s fused epilogue: 0 none, 1 bias, 2 bias + φ, 3 `⊙ φ'(z)`.
    pub epi: u32,
    /// φ of epilogues 2 and 3 ([`crate::backend::Activation::code`]).
    pub act: u32,
    /// 1: the epilogue's result is also rounded to f16 (see [`HalfStore`]).
    pub half_out: u32,
    /// 1: C (and the bias gradient) times 1 / S of the loss scaler (see [`HalfStore`]).
    pub unscale: u32,
    /// `matmul_f16_skinny`: lanes per column of C ([`skinny::k_lanes`]); 0 elsewhere.
    pub k_lanes: u32,
    pub _pad: [u32; 3],
}

const _: () = assert!(std::mem::size_of::<HalfParams>() == 64);

/// The fused store of `matmul_f16` (the epilogue section of matmul_f16.wgsl): the f32
/// epilogue `epi` of the GPU's f32 kernels, then, with `half`, the f16 rounding of its result
/// (`y` of a bias + φ epilogue, else C) into `half` (packed halves, `[m, n]`); or, with
/// `unscale` (the loss scaler's state; `epi` none or the bias gradient, no `half`), C and the
/// bias gradient times 1 / S with the found-inf flag raised on inf or NaN, as `amp_unscale`.
#[derive(Clone, Copy)]
pub struct HalfStore<'a> {
    pub epi: Store<'a>,
    pub half: Option<&'a RawBuf>,
    pub unscale: Option<&'a RawBuf>,
}

impl HalfStore<'_> {
    /// The plain product: no epilogue, no f16 copy.
    pub const NONE: HalfStore<'static> = HalfStore { epi: Store::None, half: None, unscale: None };

    /// `(epi, act, half_out, unscale)` of the parameter block for `g`: the bias gradient is
    /// epilogue 4 (a serial column sum per invocation) up to k = 32, else 5 (col_sum
    /// workgroups after the product's; the packed kernel only).
    fn codes(&self, g: &Gemm) -> [u32; 4] {
        let (epi, act) = match self.epi {
            Store::None => (0, 0),
            Store::Bias(_) => (1, 0),
            Store::BiasAct(act, ..) => (2, act.code()),
            Store::ActGrad(act, _) => (3, act.code()),
            Store::BiasGrad(..) if fuses_serial_bias_grad(g) => (4, 0),
            Store::BiasGrad(..) => (5, 0),
        };
        [epi, act, self.half.is_some() as u32, self.unscale.is_some() as u32]
    }

    /// Check the operands against `g`'s output `[m, n]`.
    fn check(&self, g: &Gemm) -> Result<()> {
        let op = "matmul_half epilogue";
        match self.epi {
            Store::None => {}
            Store::Bias(bias) => check_len(op, "bias", bias.len(), g.n)?,
            Store::BiasAct(_, bias, y) => {
                check_len(op, "bias", bias.len(), g.n)?;
                check_len(op, "y", y.len(), g.m * g.n)?;
            }
            Store::ActGrad(_, z) => check_len(op, "z", z.len(), g.m * g.n)?,
            Store::BiasGrad(s, bias_grad) => {
                check_len(op, "s", s.len(), g.k * g.m)?;
                check_len(op, "bias_grad", bias_grad.len(), g.m)?;
            }
        }
        if let Some(state) = self.unscale {
            check_len(op, "loss scaler state", state.len(), scaler::LEN)?;
            let plain = matches!(self.epi, Store::None | Store::BiasGrad(..));
            if !plain || self.half.is_some() {
                return Err(BackendError::Invalid {
                    op,
                    message: "unscaling is for a product or a weight gradient without an f16 copy"
                        .into(),
                });
            }
        }
        match self.half {
            Some(h) => check_len(op, "half words", h.len(), half_words(g.m * g.n)),
            None => Ok(()),
        }
    }

    /// Bindings 4 to 7 of `matmul_f16`; `read` and the placeholders stand in for unused ones.
    fn bindings(&self, dev: &GpuDevice, read: &RawBuf) -> Result<[RawBuf; 4]> {
        let spare = dev.epilogue_placeholder()?;
        let (e_in, e_out) = match self.epi {
            Store::None => (read.clone(), spare.clone()),
            Store::Bias(bias) => (bias.clone(), spare.clone()),
            Store::BiasAct(_, bias, y) => (bias.clone(), y.clone()),
            Store::ActGrad(_, z) => (z.clone(), spare.clone()),
            Store::BiasGrad(s, bias_grad) => (s.clone(), bias_grad.clone()),
        };
        let state = match self.unscale {
            Some(state) => state.clone(),
            None => dev.second_placeholder()?,
        };
        Ok([e_in, e_out, self.half.cloned().unwrap_or(spare), state])
    }
}

/// Rows and columns of C per `matmul_f16` workgroup.
const TILE: usize = 64;

/// Record `words = f16(x[..n])` (packed; `words` holds `ceil(n / 2)` words).
pub fn to_half(dev: &GpuDevice, n: usize, x: &RawBuf, words: &RawBuf) -> Result<()> {
    check_len("to_half", "x", x.len(), n)?;
    check_len("to_half", "out", words.len(), half_words(n))?;
    let p = HalfParams { len: u32_of("to_half", "n", n)?, ..HalfParams::zeroed() };
    launch_1d(dev, &TO_HALF, half_words(n), &p, &[x, words])
}

/// Mirrors `struct Half4` in matmul_f16.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Half4Params {
    n: [u32; 4],
    /// Cumulative workgroup counts: tensor i owns the workgroups `[ends[i - 1], ends[i])`.
    ends: [u32; 4],
}

/// Record `words = f16(x[..n])` for every `(n, x, words)` of `items`, four tensors per dispatch
/// (`to_half4`; a last tensor alone by [`to_half`]): each with the bits of [`to_half`].
pub fn to_half_many(dev: &GpuDevice, items: &[(usize, &RawBuf, &RawBuf)]) -> Result<()> {
    for &(n, x, words) in items {
        check_len("to_half", "x", x.len(), n)?;
        check_len("to_half", "out", words.len(), half_words(n))?;
    }
    for chunk in items.chunks(4) {
        if let [(n, x, words)] = chunk {
            to_half(dev, *n, x, words)?;
            continue;
        }
        // Unused slots: no elements, the first tensor read again, and a placeholder each to write
        // (at most two: chunks of one go to to_half).
        let spare = [dev.epilogue_placeholder()?, dev.second_placeholder()?];
        let mut p = Half4Params::zeroed();
        let mut groups = 0usize;
        let mut bufs: Vec<&RawBuf> = Vec::with_capacity(8);
        for slot in 0..4 {
            match chunk.get(slot) {
                Some(&(n, x, words)) => {
                    p.n[slot] = u32_of("to_half4", "n", n)?;
                    groups += half_words(n).div_ceil(WG_1D as usize);
                    bufs.extend([x, words]);
                }
                None => bufs.extend([chunk[0].1, &spare[slot - chunk.len()]]),
            }
            p.ends[slot] = u32_of("to_half4", "workgroups", groups)?;
        }
        let grid = grid_1d(groups * WG_1D as usize, dev.ctx.limits.max_compute_workgroups_per_dimension);
        dev.dispatch(&TO_HALF4, &p, &bufs, grid)?;
    }
    Ok(())
}

/// The parameter block of `g`, after the 32-bit range checks.
pub(super) fn params_of(g: &Gemm) -> Result<HalfParams> {
    let (la, lb, lc) = gemm_lens(g);
    // Half indices are u32 in the shader, plus the overhang of a tile.
    let limit = u32::MAX as usize - 4 * TILE;
    if [la, lb, lc, g.m, g.n, g.k].iter().any(|&x| x > limit) {
        return Err(BackendError::Invalid {
            op: "matmul_half",
            message: format!("{}x{}x{} exceeds 32-bit shader indexing", g.m, g.n, g.k),
        });
    }
    Ok(HalfParams {
        m: g.m as u32,
        n: g.n as u32,
        k: g.k as u32,
        trans_a: g.trans_a as u32,
        trans_b: g.trans_b as u32,
        alpha: g.alpha,
        beta: g.beta,
        ..HalfParams::zeroed()
    })
}

/// Which kernel [`matmul_half`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfKernel {
    /// `matmul_f16`: packed loads, f32 FMA; any shape, any adapter.
    Packed,
    /// `matmul_f16_skinny`: packed loads, f32 FMA, 8 rows of C per workgroup and k walked by
    /// lanes; any shape, any adapter, made for a side of C too short for a tile ([`skinny`]).
    Skinny,
    /// `matmul_coop_*`: cooperative matrices, 32x32 blocks (see [`matmul_coop::eligible`]).
    Coop,
    /// `matmul_coop64`: cooperative matrices, 64x64 blocks (the same eligibility).
    Coop64,
    /// `matmul_coop_staged`: cooperative matrices, 128x128 blocks of 4 subgroups, operands
    /// staged in workgroup memory (the same eligibility, and 128-invocation workgroups).
    CoopStaged,
    /// [`HalfKernel::Coop`] with vec4<f16> tile loads ([`LoadWidth::Vec4`]): an autotune
    /// candidate, and the rule's 32x32 kernel with `BATCHSCOPE_COOP_LOADS=vec4`.
    CoopV4,
    /// [`HalfKernel::Coop64`] with vec4<f16> tile loads: an autotune candidate.
    Coop64V4,
    /// The staged kernel with vec4<f16> staging stores (2 per load of 8 halves, not 8) and tile
    /// loads (see [`super::staged`]): an autotune candidate, and the rule's staged kernel with
    /// `BATCHSCOPE_COOP_LOADS=vec4`.
    CoopStagedV4,
    /// [`HalfKernel::Coop`] with 16-byte tile loads ([`LoadWidth::Vec8`], where the device has
    /// `PASSTHROUGH_SHADERS`): an autotune candidate, and the rule's 32x32 kernel with
    /// `BATCHSCOPE_COOP_LOADS=vec8`.
    CoopV8,
    /// [`HalfKernel::Coop64`] with 16-byte tile loads: an autotune candidate.
    Coop64V8,
    /// The staged kernel with 16-byte staging stores and tile loads: an autotune candidate, and
    /// the rule's staged kernel with `BATCHSCOPE_COOP_LOADS=vec8`.
    CoopStagedV8,
}

impl HalfKernel {
    /// The cooperative block, `None` for the packed and skinny kernels.
    pub fn coop_block(self) -> Option<matmul_coop::CoopBlock> {
        use matmul_coop::CoopBlock::{Staged128, B32, B64};
        use LoadWidth::{Halves, Vec4, Vec8};
        match self {
            HalfKernel::Packed | HalfKernel::Skinny => None,
            HalfKernel::Coop => Some(B32(Halves)),
            HalfKernel::Coop64 => Some(B64(Halves)),
            HalfKernel::CoopStaged => Some(Staged128(Halves)),
            HalfKernel::CoopV4 => Some(B32(Vec4)),
            HalfKernel::Coop64V4 => Some(B64(Vec4)),
            HalfKernel::CoopStagedV4 => Some(Staged128(Vec4)),
            HalfKernel::CoopV8 => Some(B32(Vec8)),
            HalfKernel::Coop64V8 => Some(B64(Vec8)),
            HalfKernel::CoopStagedV8 => Some(Staged128(Vec8)),
        }
    }

    /// The same block with tile loads of `width` (the packed and skinny kernels unchanged).
    pub fn with_width(self, width: LoadWidth) -> HalfKernel {
        use HalfKernel::*;
        let block = match self {
            Packed | Skinny => return self,
            Coop | CoopV4 | CoopV8 => [Coop, CoopV4, CoopV8],
            Coop64 | Coop64V4 | Coop64V8 => [Coop64, Coop64V4, Coop64V8],
            CoopStaged | CoopStagedV4 | CoopStagedV8 => [CoopStaged, CoopStagedV4, CoopStagedV8],
        };
        match width {
            LoadWidth::Halves => block[0],
            LoadWidth::Vec4 => block[1],
            LoadWidth::Vec8 => block[2],
        }
    }
}

/// Whether the cooperative kernel may be chosen: `BATCHSCOPE_COOP=0` in the environment
/// keeps every product on the packed kernel (A/B timing, or a device where coop misbehaves).
pub fn coop_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| super::choices::switch("BATCHSCOPE_COOP", true))
}

/// Whether the 64x64 cooperative kernel is an autotune candidate: `BATCHSCOPE_COOP64=0` leaves
/// it out (A/B timing on a device; `force` makes it the rule's choice, see
/// [`coop_kernel_for`]).
pub fn coop64_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !matches!(std::env::var("BATCHSCOPE_COOP64").as_deref(), Ok("0")))
}

/// Rows of C from which, with a depth of at least [`STAGED_MIN_K`], [`coop_kernel_for`] takes
/// the staged 128x128 kernel.
pub const STAGED_MIN_M: usize = 2048;
/// See [`STAGED_MIN_M`].
pub const STAGED_MIN_K: usize = 1024;

/// The cooperative kernel for an eligible `g`, by what an NVIDIA H200 measured for every
/// product of the default model's f16 step at B = 16..65536 (autotune "on", 2026-12-04): the
/// staged 128x128 kernel for at least [`STAGED_MIN_M`] rows and [`STAGED_MIN_K`] of depth
/// (4096x1024x1024: 0.158 ms against 0.290 for 32x32 and 0.204 for 64x64), else the 32x32
/// kernel, which beat the 64x64 one at every other shape but the depth-16 weight gradients
/// (1024x1024x4096 TN: 0.18 against 0.63 ms; 128x1024x1024: 0.040 against 0.165 ms).
/// `BATCHSCOPE_COOP64=force` takes the 64x64 kernel wherever m and n are both at least 64 (A/B
/// timing on a device). Where the staged kernel does not fit the adapter or was not found
/// exact, [`choose`] runs the 32x32 one.
pub fn coop_kernel_for(g: &Gemm) -> HalfKernel {
    let block = if coop64_forced() && g.m >= matmul_coop::BLOCK64 && g.n >= matmul_coop::BLOCK64 {
        HalfKernel::Coop64
    } else if g.m >= STAGED_MIN_M && g.k >= STAGED_MIN_K {
        HalfKernel::CoopStaged
    } else {
        HalfKernel::Coop
    };
    block.with_width(rule_width())
}

/// `BATCHSCOPE_COOP_LOADS=vec4|vec8`: [`coop_kernel_for`] takes its kernels with 8- or 16-byte
/// tile loads (A/B timing on a device; `halves`, the default, is what the H200 measured).
fn rule_width() -> LoadWidth {
    static WIDTH: std::sync::OnceLock<LoadWidth> = std::sync::OnceLock::new();
    *WIDTH.get_or_init(|| match std::env::var("BATCHSCOPE_COOP_LOADS") {
        Err(_) => LoadWidth::Halves,
        Ok(v) => LoadWidth::parse(&v).unwrap_or_else(|| {
            log::warn!("BATCHSCOPE_COOP_LOADS={v:?} is none of halves, vec4, vec8: ignored");
            LoadWidth::Halves
        }),
    })
}

/// `BATCHSCOPE_COOP64=force`: [`coop_kernel_for`] takes the 64x64 kernel where it can.
pub(super) fn coop64_forced() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BATCHSCOPE_COOP64").is_ok_and(|v| v == "force"))
}

/// A cooperative kernel ([`coop_kernel_for`]) where the adapter has it, the shape fits it,
/// `BATCHSCOPE_COOP` is not `0` and the kernel computed exact products on this device
/// ([`super::coop_check`], run on first use; the 32x32 one if only it did), else
/// [`fallback_for`]: the skinny kernel for a side of C of at most 32, the packed one otherwise.
pub fn choose(dev: &GpuDevice, g: &Gemm) -> HalfKernel {
    use super::coop_check::trusted_kernel;
    let k = choose_capable(dev, g);
    if k.coop_block().is_none() {
        return k;
    }
    let runs =
        |k: &HalfKernel| k.coop_block().is_some_and(|b| b.fits_on(&dev.ctx)) && trusted_kernel(dev, *k);
    coop_chain(k).into_iter().find(runs).unwrap_or_else(|| fallback_for(dev, g))
}

/// The cooperative kernels [`choose`] tries for the rule's `k`, in order: `k`; its block with
/// f16 loads (a width the device lacks, such as the retyped 16-byte loads off Vulkan, keeps
/// the block); the 32x32 block, which runs every shape the 64x64 and staged ones do, of `k`'s
/// width, then with f16 loads (the form the H200 measured).
pub(super) fn coop_chain(k: HalfKernel) -> [HalfKernel; 4] {
    let width = k.coop_block().map_or(LoadWidth::Halves, |b| b.width());
    [k, k.with_width(LoadWidth::Halves), HalfKernel::Coop.with_width(width), HalfKernel::Coop]
}

/// The kernel of `g` where no cooperative one runs it: [`HalfKernel::Skinny`] where a side of C
/// is at most [`skinny::MAX_SIDE`] (the output layer's products, a batch of a few examples) and
/// its grid fits the adapter, else [`HalfKernel::Packed`]. A function of the shape and the
/// adapter's grid limit.
pub fn fallback_for(dev: &GpuDevice, g: &Gemm) -> HalfKernel {
    match skinny::suits(g, dev.ctx.limits.max_compute_workgroups_per_dimension) {
        true => HalfKernel::Skinny,
        false => HalfKernel::Packed,
    }
}

/// [`choose`] without the first-use check: what the adapter's capabilities allow.
fn choose_capable(dev: &GpuDevice, g: &Gemm) -> HalfKernel {
    match coop_enabled() && matmul_coop::available(&dev.ctx) && matmul_coop::eligible(g, dev) {
        true => coop_kernel_for(g),
        false => fallback_for(dev, g),
    }
}

/// Record `c = alpha * op(a) op(b) + beta * c` with `a`, `b` packed halves holding `la`, `lb`
/// elements (at least `gemm_lens(g)`) and `c: [m,n]` f32. `m == 0 || n == 0` records nothing.
#[allow(clippy::too_many_arguments)]
pub fn matmul_half(
    dev: &GpuDevice,
    kernel: HalfKernel,
    g: &Gemm,
    a: &RawBuf,
    la: usize,
    b: &RawBuf,
    lb: usize,
    c: &RawBuf,
) -> Result<()> {
    matmul_half_store(dev, kernel, g, [(a, la), (b, lb)], c, HalfStore::NONE)
}

/// Whether `kernel` runs a [`HalfStore`] in its store: all do (the cooperative kernels store
/// their tiles, then read each element of their block back once through the same epilogue;
/// the skinny one stores element by element).
pub fn fuses(kernel: HalfKernel) -> bool {
    matches!(
        kernel,
        HalfKernel::Packed
            | HalfKernel::Skinny
            | HalfKernel::Coop
            | HalfKernel::Coop64
            | HalfKernel::CoopStaged
            | HalfKernel::CoopV4
            | HalfKernel::Coop64V4
            | HalfKernel::CoopStagedV4
            | HalfKernel::CoopV8
            | HalfKernel::Coop64V8
            | HalfKernel::CoopStagedV8
    )
}

/// [`matmul_half`] with `store` fused into the store of C (`ab`: the packed operands with their
/// lengths in halves).
pub fn matmul_half_store(
    dev: &GpuDevice,
    kernel: HalfKernel,
    g: &Gemm,
    ab: [(&RawBuf, usize); 2],
    c: &RawBuf,
    store: HalfStore<'_>,
) -> Result<()> {
    let [(a, la), (b, lb)] = ab;
    let (need_a, need_b, lc) = gemm_lens(g);
    check_len("matmul_half", "a", la, need_a)?;
    check_len("matmul_half", "b", lb, need_b)?;
    check_len("matmul_half", "a words", a.len(), half_words(need_a))?;
    check_len("matmul_half", "b words", b.len(), half_words(need_b))?;
    check_len("matmul_half", "c", c.len(), lc)?;
    if g.m == 0 || g.n == 0 {
        return Ok(());
    }
    store.check(g)?;
    let [epi, act, half_out, unscale] = store.codes(g);
    let p = HalfParams { epi, act, half_out, unscale, ..params_of(g)? };
    let epi_bindings = store.bindings(dev, a)?;
    if let Some(block) = kernel.coop_block() {
        if epi == 5 {
            return Err(BackendError::Invalid {
                op: "matmul_coop",
                message: format!("the bias gradient is fused up to k = 32, not {}", g.k),
            });
        }
        return matmul_coop::dispatch(dev, g, block, &p, [a, b, c], &epi_bindings);
    }
    if epi == 5 {
        // The col_sum workgroups walk all k rows of S (the skinny kernel's too).
        super::launch::check_col_sum_budget(dev, "matmul_f16", g.k)?;
    }
    // The packed and skinny kernels walk all of k in each invocation.
    let walk = match kernel {
        HalfKernel::Skinny => super::launch::DepthWalk::Skinny { lanes: skinny::k_lanes(g) },
        _ => super::launch::DepthWalk::PackedHalf,
    };
    super::launch::check_depth_walk(dev, "matmul_f16", g, g.k, walk)?;
    if kernel == HalfKernel::Skinny {
        return skinny::dispatch(dev, g, &p, [a, b, c], &epi_bindings);
    }
    let max = dev.ctx.limits.max_compute_workgroups_per_dimension;
    let (col_blocks, row_blocks) = (g.n.div_ceil(TILE), g.m.div_ceil(TILE));
    // Epilogue 5: ceil(m / 32) col_sum workgroups in the row blocks after the product's.
    let sum_rows = if epi == 5 { g.m.div_ceil(32).div_ceil(col_blocks) } else { 0 };
    let grid = grid_2d(col_blocks as u64, (row_blocks + sum_rows) as u64, max)?;
    let [e_in, e_out, h, state] = &epi_bindings;
    dev.dispatch(&MATMUL_F16, &p, &[a, b, c, e_in, e_out, h, state], grid)
}

//! Mixed precision ops: f16 tensors, products of f16 operands accumulated in f32, and the
//! device side of dynamic loss scaling.
//!
//! A backend offers them through [`super::Backend::half_ops`] (CPU and GPU do; a backend that
//! returns `None` cannot train in f16). Conventions:
//! - A [`HalfBuf`] holds `len` binary16 values packed two per 32-bit word of an ordinary f32
//!   buffer (`words`, `ceil(len / 2)` elements): element `2w` in the low 16 bits of word `w`,
//!   `2w + 1` in the high bits — the byte layout of WGSL's `array<f16>`.
//! - Rounding to f16 happens only in [`HalfOps::to_half`]: round to nearest even, overflow to
//!   ±inf, NaN to the quiet NaN `0x7e00` with its sign; both backends give the same bits.
//!   Widening f16 → f32 is exact.
//! - The loss-scaler state is a `[SCALER_LEN]` f32 device buffer, slots in [`scaler`]: the flag
//!   of a non-finite gradient never leaves the device.

use super::{Gemm, MomentumStep, ParamUpdate, Result, UpdateRule};

/// `len` binary16 values packed into `words` (`ceil(len / 2)` f32-sized elements).
#[derive(Clone, Debug)]
pub struct HalfBuf<T> {
    pub words: T,
    pub len: usize,
}

/// Words of a [`HalfBuf`] of `len` halves.
pub fn half_words(len: usize) -> usize {
    len.div_ceil(2)
}

/// One tensor of [`HalfOps::to_half_all`]: `(n, x: [n] f32, out: [n] half)`.
pub type ToHalf<'a, B> = (usize, &'a B, &'a mut HalfBuf<B>);

/// Slots of the loss-scaler state buffer.
pub mod scaler {
    /// The current loss scale S.
    pub const SCALE: usize = 0;
    /// 1 when a gradient of this step was inf or NaN (cleared by the scale update).
    pub const FOUND_INF: usize = 1;
    /// Clean steps since the last growth or overflow.
    pub const CLEAN: usize = 2;
    /// Steps skipped over the run.
    pub const SKIPPED: usize = 3;
    /// Slots of the buffer.
    pub const LEN: usize = 4;
}

/// The least loss scale: f32's smallest normal, 2^-126, where the unscale factor 1/S is still
/// finite. A backoff never takes the scale below it (a run whose every step overflows keeps
/// skipping at this scale, and its checkpoint resumes).
pub const MIN_LOSS_SCALE: f32 = f32::MIN_POSITIVE;

/// How [`HalfOps::amp_update_scale`] moves the scale (GradScaler's `growth_factor`,
/// `backoff_factor`, `growth_interval`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleGrowth {
    pub growth: f32,
    pub backoff: f32,
    /// Clean steps after which the scale is multiplied by `growth`.
    pub interval: u32,
}

impl ScaleGrowth {
    /// GradScaler's factors (×2 after `interval` clean steps, ×½ on overflow).
    pub fn every(interval: u32) -> Self {
        ScaleGrowth { growth: 2.0, backoff: 0.5, interval: interval.max(1) }
    }
}

/// The mixed-precision ops of a backend, on its f32 buffers `Buf`. Shapes in each op's doc.
pub trait HalfOps {
    type Buf;

    /// A half buffer of `len` zeros.
    fn zeros_half(&self, len: usize) -> Result<HalfBuf<Self::Buf>>;
    /// `out[i] = f16(x[i])` for `x: [n]`, `out: [n]` (see the module doc for the rounding).
    fn to_half(&self, n: usize, x: &Self::Buf, out: &mut HalfBuf<Self::Buf>) -> Result<()>;
    /// [`HalfOps::to_half`] of every `(n, x, out)` of `items` (an f16 forward pass's minibatch
    /// and weights; the GPU records four tensors per dispatch).
    fn to_half_all(&self, items: &mut [ToHalf<'_, Self::Buf>]) -> Result<()> {
        for (n, x, out) in items.iter_mut() {
            self.to_half(*n, x, out)?;
        }
        Ok(())
    }
    /// The `len` values of `src`, widened (a synchronisation point on the GPU).
    fn read_half(&self, src: &HalfBuf<Self::Buf>) -> Result<Vec<f32>>;
    /// [`Gemm`] with half operands and an f32 result: `C[m,n] = alpha * op(A) op(B) + beta * C`,
    /// every product and sum in f32 (`A: [m,k]` or `[k,m]`, `B: [k,n]` or `[n,k]`).
    fn matmul_half(
        &self,
        g: &Gemm,
        a: &HalfBuf<Self::Buf>,
        b: &HalfBuf<Self::Buf>,
        c: &mut Self::Buf,
    ) -> Result<()>;

    // ---- dynamic loss scaling (state: `scaler [scaler::LEN]`) ----------------------------
    /// `x[i] *= S` for `x: [n]` (scales d logits: the loss times S).
    fn amp_scale(&self, n: usize, state: &Self::Buf, x: &mut Self::Buf) -> Result<()>;
    /// [`HalfOps::amp_scale`] then [`HalfOps::to_half`] of the scaled `x` into `out: [n]`: the
    /// scaled d logits and the last layer's f16 wgrad operand (one dispatch on the GPU).
    fn amp_scale_to_half(
        &self,
        n: usize,
        state: &Self::Buf,
        x: &mut Self::Buf,
        out: &mut HalfBuf<Self::Buf>,
    ) -> Result<()> {
        self.amp_scale(n, state, x)?;
        self.to_half(n, x, out)
    }
    /// `x[i] *= 1 / S` for `x: [n]`; the found-inf flag is set when some `x[i]` is inf or NaN.
    fn amp_unscale(&self, n: usize, state: &mut Self::Buf, x: &mut Self::Buf) -> Result<()>;
    /// [`HalfOps::amp_unscale`] of every `(n, x)` of `xs` (a model's gradients; the GPU records
    /// two tensors per dispatch).
    fn amp_unscale_all(&self, state: &mut Self::Buf, xs: &mut [(usize, &mut Self::Buf)]) -> Result<()> {
        for (n, x) in xs.iter_mut() {
            self.amp_unscale(*n, state, x)?;
        }
        Ok(())
    }
    /// [`super::Backend::update_params`] unless the found-inf flag is set: [`HalfOps::amp_sgd`]
    /// or [`HalfOps::amp_momentum`] per tensor (the GPU records two tensors per dispatch).
    fn amp_update_params(
        &self,
        rule: &UpdateRule,
        state: &Self::Buf,
        tensors: &mut [ParamUpdate<'_, Self::Buf>],
    ) -> Result<()> {
        for t in tensors.iter_mut() {
            match (rule, t.velocity.as_deref_mut()) {
                (UpdateRule::Sgd { lr, weight_decay }, _) => {
                    self.amp_sgd(t.n, *lr, *weight_decay, state, t.grad, t.param)?
                }
                (UpdateRule::Momentum(step), Some(v)) => {
                    self.amp_momentum(t.n, step, state, t.grad, v, t.param)?
                }
                (UpdateRule::Momentum(_), None) => return Err(ParamUpdate::<Self::Buf>::no_velocity()),
            }
        }
        Ok(())
    }
    /// [`super::Backend::sgd_update`] unless the found-inf flag is set.
    #[allow(clippy::too_many_arguments)]
    fn amp_sgd(
        &self,
        n: usize,
        lr: f32,
        weight_decay: f32,
        state: &Self::Buf,
        grad: &Self::Buf,
        param: &mut Self::Buf,
    ) -> Result<()>;
    /// [`super::Backend::momentum_update`] unless the found-inf flag is set.
    fn amp_momentum(
        &self,
        n: usize,
        step: &MomentumStep,
        state: &Self::Buf,
        grad: &Self::Buf,
        velocity: &mut Self::Buf,
        param: &mut Self::Buf,
    ) -> Result<()>;
    /// End of a step: on overflow `S *= backoff`, the clean count restarts and a skipped step is
    /// counted; else after `interval` clean steps `S *= growth` (kept if finite). Clears the flag.
    fn amp_update_scale(&self, growth: &ScaleGrowth, state: &mut Self::Buf) -> Result<()>;
}

//! The MLP's mixed-precision forward and backward (`model.precision = "f16"`).
//!
//! Every matrix product takes f16 operands and sums in f32 ([`HalfOps::matmul_half`]): the
//! input minibatch, the hidden activations `a_l`, the weight copies `W_l` and the (loss-scaled)
//! `∂L/∂z_l` are rounded to f16 once each, right before the products that read them. Products
//! land in the f32 workspace (`z_l`, `∂L/∂a_l`, the weight gradients); bias, activation,
//! per-example losses, `∂L/∂b` (column sums) and every reduction stay f32, as do the master
//! weights the optimizer updates. The f16 copies live in a [`HalfWorkspace`]; those of `a_l` and
//! of the hidden layers' `∂L/∂z_l` come out of the store of the product that makes them
//! ([`Backend::matmul_half_epilogue`], fused on the GPU's packed kernel).

use serde::{Deserialize, Serialize};

use super::mlp::{weight_and_bias, Mlp, Targets, Workspace};
use super::params::ParamSet;
use crate::backend::half::{HalfBuf, HalfOps};
use crate::backend::{Backend, BackendError, Epilogue, Gemm, Result, Scope, StepSums};

/// The arithmetic of the MLP train step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

/// The loss scaler of [`Mlp::loss_and_grad_half`]: its state buffer (`backend::half::scaler`),
/// and whether the backward pass unscales the gradients.
pub enum LossScale<'a, Buf> {
    /// d logits × S; the gradients stay times S (the caller unscales their reduction).
    Scaled(&'a Buf),
    /// d logits × S; every gradient times 1 / S in the backward pass, the found-inf flag
    /// raised on inf or NaN ([`crate::backend::half::HalfOps::amp_unscale`]'s bits).
    Unscaled(&'a mut Buf),
}

/// The f16 copies of a mixed-precision step for batches of `rows` examples.
pub struct HalfWorkspace<B: Backend> {
    /// `W_l [out_l, in_l]` in f16, refreshed from the master weights each forward (with the
    /// minibatch's copy, in one op).
    pub w: Vec<HalfBuf<B::Buf>>,
    /// The minibatch `[rows, inputs]` in f16.
    pub x: HalfBuf<B::Buf>,
    /// Hidden activations `a_l [rows, out_l]` in f16, one per hidden layer.
    pub a: Vec<HalfBuf<B::Buf>>,
    /// `∂L/∂z_l [rows, out_l]` (times the loss scale) in f16.
    pub dz: Vec<HalfBuf<B::Buf>>,
}

/// The backend's mixed-precision ops, or the error that says it has none.
pub fn half_ops<B: Backend>(b: &B) -> Result<&dyn HalfOps<Buf = B::Buf>> {
    b.half_ops().ok_or_else(|| BackendError::Invalid {
        op: "model.precision = \"f16\"",
        message: format!("the {:?} backend has no f16 ops", b.kind()),
    })
}

impl Mlp {
    /// f16 buffers for batches of `rows` examples.
    pub fn half_workspace<B: Backend>(&self, b: &B, rows: usize) -> Result<HalfWorkspace<B>> {
        let h = half_ops(b)?;
        let s = &self.spec.sizes;
        let l = self.layers();
        Ok(HalfWorkspace {
            w: (0..l).map(|i| h.zeros_half(s[i] * s[i + 1])).collect::<Result<_>>()?,
            x: h.zeros_half(rows * self.inputs())?,
            a: s[1..l].iter().map(|&w| h.zeros_half(rows * w)).collect::<Result<_>>()?,
            dz: s[1..].iter().map(|&w| h.zeros_half(rows * w)).collect::<Result<_>>()?,
        })
    }

    /// [`Mlp::forward`] with f16 operands: `x [rows, inputs]` → `ws.z[last]` (f32).
    pub fn forward_half<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        ws: &mut Workspace<B>,
        hw: &mut HalfWorkspace<B>,
    ) -> Result<()> {
        let rows = ws.rows;
        b.scope(Scope::Forward(0));
        // f16 copies of the minibatch and of every weight matrix, in one op.
        let mut copies = vec![(rows * self.inputs(), x, &mut hw.x)];
        let weights = hw.w.iter_mut().enumerate();
        copies.extend(weights.map(|(l, w)| (w.len, &p.tensors[2 * l], w)));
        half_ops(b)?.to_half_all(&mut copies)?;
        for l in 0..self.layers() {
            let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
            b.scope(Scope::Forward(l));
            // z [rows, out] = input [rows, in] · Wᵀ ([out, in] stored), summed in f32
            let g = Gemm::nn(rows, fan_out, fan_in).trans(false, true);
            let bias = &p.tensors[2 * l + 1];
            let (done, rest) = hw.a.split_at_mut(l);
            let input = if l == 0 { &hw.x } else { &done[l - 1] };
            if let Some(a_half) = rest.first_mut() {
                // z = product + b, a = φ(z) (f32) and f16(a), the next product's input: one store
                let epi = Epilogue::BiasAct(self.spec.activation, bias, &mut ws.a[l]);
                b.matmul_half_epilogue(&g, [input, &hw.w[l]], &mut ws.z[l], epi, Some(a_half))?;
            } else {
                let epi = Epilogue::Bias(bias);
                b.matmul_half_epilogue(&g, [input, &hw.w[l]], &mut ws.z[l], epi, None)?;
            }
        }
        b.scope(Scope::None);
        Ok(())
    }

    /// [`Mlp::backward`] with f16 operands, from `ws.dz[last]` (already times the loss scale)
    /// and its f16 copy `hw.dz[last]`: gradients of the scaled mean loss into `grads` (f32),
    /// or with `unscale` (the loss scaler's state) those gradients times 1 / S with the
    /// found-inf flag raised on inf or NaN, in each weight-gradient product's store where the
    /// backend fuses it ([`Backend::matmul_half_bias_grad_unscaled`]). Needs
    /// [`Mlp::forward_half`]'s f16 copies of the same minibatch; the other layers' f16 dz come
    /// from the store of each dgrad product.
    pub(crate) fn backward_half<B: Backend>(
        &self,
        b: &B,
        ws: &mut Workspace<B>,
        hw: &mut HalfWorkspace<B>,
        grads: &mut ParamSet<B>,
        mut unscale: Option<&mut B::Buf>,
    ) -> Result<()> {
        let h = half_ops(b)?;
        let rows = ws.rows;
        let act = self.spec.activation;
        for l in (0..self.layers()).rev() {
            let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
            b.scope(Scope::Backward(l));
            // gW [out, in] = dzᵀ ([rows, out] stored) · input [rows, in]
            let g = Gemm::nn(fan_out, fan_in, rows).trans(true, false);
            let input = if l == 0 { &hw.x } else { &hw.a[l - 1] };
            // and gb [out] = Σ_rows dz (f32) in its store where the backend fuses it
            let (gw, gb) = weight_and_bias(&mut grads.tensors, l);
            let ab = [&hw.dz[l], input];
            match unscale.as_deref_mut() {
                Some(state) => b.matmul_half_bias_grad_unscaled(&g, ab, gw, &ws.dz[l], gb, state)?,
                None => {
                    let epi = Epilogue::BiasGrad { s: &ws.dz[l], bias_grad: gb };
                    b.matmul_half_epilogue(&g, ab, gw, epi, None)?
                }
            }
            if l > 0 {
                // da [rows, in] = dz [rows, out] · W [out, in]; dz_{l-1} = da ⊙ φ'(z_{l-1})
                let g = Gemm::nn(rows, fan_in, fan_out);
                let (lower, upper) = hw.dz.split_at_mut(l);
                let (dz_half, dz_prev_half) = (&upper[0], &mut lower[l - 1]);
                let n = rows * fan_in;
                if ws.keep_da {
                    h.matmul_half(&g, dz_half, &hw.w[l], &mut ws.da[l - 1])?;
                    b.scope(Scope::Backward(l - 1));
                    b.act_backward(act, n, &ws.z[l - 1], &ws.da[l - 1], &mut ws.dz[l - 1])?;
                    h.to_half(n, &ws.dz[l - 1], dz_prev_half)?;
                } else {
                    // ... and f16(dz_{l-1}), the next wgrad's operand, in one fused store
                    let epi = Epilogue::ActGrad { act, z: &ws.z[l - 1], scratch: &mut ws.da[l - 1] };
                    let ab = [dz_half, &hw.w[l]];
                    b.matmul_half_epilogue(&g, ab, &mut ws.dz[l - 1], epi, Some(dz_prev_half))?;
                }
            }
        }
        b.scope(Scope::None);
        Ok(())
    }

    /// Forward, loss (d logits times the loss scale S of `scaler`) and backward of one
    /// minibatch in mixed precision, with the step's minibatch sums when given (see
    /// [`Mlp::loss_into`]): the gradients times S ([`LossScale::Scaled`]: a micro-batch or
    /// replica, unscaled after the reduction) or unscaled in the backward pass
    /// ([`LossScale::Unscaled`]: a whole step; see `train::amp`).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad_half<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        ws: &mut Workspace<B>,
        hw: &mut HalfWorkspace<B>,
        scaler: LossScale<'_, B::Buf>,
        grads: &mut ParamSet<B>,
        sums: Option<&mut StepSums<'_, B::Buf>>,
    ) -> Result<()> {
        self.forward_half(b, p, x, ws, hw)?;
        self.loss_into(b, targets, ws, sums)?;
        let last = self.layers() - 1;
        // d logits × S, and their f16 copy (the last wgrad's operand), in one op.
        let n = ws.rows * self.outputs();
        let state: &B::Buf = match &scaler {
            LossScale::Scaled(state) => state,
            LossScale::Unscaled(state) => state,
        };
        half_ops(b)?.amp_scale_to_half(n, state, &mut ws.dz[last], &mut hw.dz[last])?;
        let unscale = match scaler {
            LossScale::Scaled(_) => None,
            LossScale::Unscaled(state) => Some(state),
        };
        self.backward_half(b, ws, hw, grads, unscale)
    }
}

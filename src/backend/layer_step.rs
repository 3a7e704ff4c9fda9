//! [`Backend::wgrad_update`]: a dense layer's weight gradient, bias gradient and optimizer step
//! as one op (the optimizer fused into the backward pass), and [`Backend::dgrad_wgrad_update`]:
//! the same with the gradient the layer passes down first; their operands, and the unfused
//! defaults that every fused implementation must equal bit for bit.
//!
//! [`Backend::wgrad_update`]: super::Backend::wgrad_update
//! [`Backend::dgrad_wgrad_update`]: super::Backend::dgrad_wgrad_update

use super::{Activation, Backend, BackendError, Epilogue, Gemm, ParamUpdate, Result, UpdateRule};

/// A parameter tensor and its optimizer state (the velocity, under momentum), updated in place.
pub struct ParamState<'a, Buf> {
    pub param: &'a mut Buf,
    pub velocity: Option<&'a mut Buf>,
}

/// The optimizer step [`super::Backend::wgrad_update`] applies to a layer's weight and bias.
pub struct LayerStep<'a, Buf> {
    pub rule: UpdateRule,
    /// `W [m, n]` (`[out, in]`).
    pub weight: ParamState<'a, Buf>,
    /// `b [m]`.
    pub bias: ParamState<'a, Buf>,
}

/// `g`'s check: a weight gradient `gW [m, n] = dzᵀ · x`, `dz` stored `[k, m]` (`trans_a`), `x`
/// stored `[k, n]` (not `trans_b`).
pub fn check(g: &Gemm) -> Result<()> {
    if !g.trans_a || g.trans_b {
        return Err(BackendError::Invalid {
            op: "wgrad_update",
            message: format!(
                "a weight gradient is dzᵀ·x (trans_a, not trans_b), got trans_a = {}, trans_b = {}",
                g.trans_a, g.trans_b
            ),
        });
    }
    Ok(())
}

/// The default of [`super::Backend::wgrad_update`]: the product with its bias gradient
/// ([`Backend::matmul_epilogue`] with [`Epilogue::BiasGrad`]), then [`Backend::update_params`]
/// of the weight and the bias with them.
#[allow(clippy::too_many_arguments)]
pub fn unfused<B: Backend + ?Sized>(
    b: &B,
    g: &Gemm,
    dz: &B::Buf,
    x: &B::Buf,
    gw: &mut B::Buf,
    gb: &mut B::Buf,
    step: LayerStep<'_, B::Buf>,
) -> Result<()> {
    check(g)?;
    b.matmul_epilogue(g, dz, x, gw, Epilogue::BiasGrad { s: dz, bias_grad: gb })?;
    let LayerStep { rule, weight, bias } = step;
    let mut tensors = [
        ParamUpdate { n: g.m * g.n, grad: &*gw, velocity: weight.velocity, param: weight.param },
        ParamUpdate { n: g.m, grad: &*gb, velocity: bias.velocity, param: bias.param },
    ];
    b.update_params(&rule, &mut tensors)
}

/// The gradient a hidden-input layer passes down in [`super::Backend::dgrad_wgrad_update`]:
/// `dz_prev [k, n] = (dz · W) ⊙ φ'(z)` with `z [k, n]` the layer below's pre-activations;
/// `scratch [k, n]` as [`Epilogue::ActGrad`] takes it (an unfused product's destination).
pub struct Dgrad<'a, Buf> {
    pub act: Activation,
    pub z: &'a Buf,
    pub scratch: &'a mut Buf,
    pub dz_prev: &'a mut Buf,
}

/// The dgrad product that goes with weight gradient `g` (`gW [m, n] = dzᵀ · x` over k rows):
/// `dz [k, m] · W [m, n]`.
pub fn dgrad_gemm(g: &Gemm) -> Gemm {
    Gemm::nn(g.k, g.n, g.m)
}

/// The default of [`super::Backend::dgrad_wgrad_update`]: the dgrad product with the φ'
/// epilogue ([`Backend::matmul_epilogue`], reading the old `W`), then
/// [`Backend::wgrad_update`].
#[allow(clippy::too_many_arguments)]
pub fn unfused_with_dgrad<B: Backend + ?Sized>(
    b: &B,
    g: &Gemm,
    dz: &B::Buf,
    x: &B::Buf,
    dgrad: Dgrad<'_, B::Buf>,
    gw: &mut B::Buf,
    gb: &mut B::Buf,
    step: LayerStep<'_, B::Buf>,
) -> Result<()> {
    check(g)?;
    let Dgrad { act, z, scratch, dz_prev } = dgrad;
    let epi = Epilogue::ActGrad { act, z, scratch };
    b.matmul_epilogue(&dgrad_gemm(g), dz, step.weight.param, dz_prev, epi)?;
    b.wgrad_update(g, dz, x, gw, gb, step)
}

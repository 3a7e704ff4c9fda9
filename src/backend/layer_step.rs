//! [`Backend::wgrad_update`]: a dense layer's weight gradient, bias gradient and optimizer step
//! as one op (the optimizer fused into the backward pass), its operands, and the unfused default
//! that every fused implementation must equal bit for bit.
//!
//! [`Backend::wgrad_update`]: super::Backend::wgrad_update

use super::{Backend, BackendError, Epilogue, Gemm, ParamUpdate, Result, UpdateRule};

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

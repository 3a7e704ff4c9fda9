//! The whole-model optimizer update as one op ([`Backend::update_params`]): its rule, its
//! per-tensor operands, and the default that records one update per tensor.

use super::{Backend, BackendError, MomentumStep, Result};

/// The rule of [`super::Backend::update_params`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateRule {
    /// [`super::Backend::sgd_update`].
    Sgd { lr: f32, weight_decay: f32 },
    /// [`super::Backend::momentum_update`]: every tensor needs its velocity.
    Momentum(MomentumStep),
}

/// One tensor of [`super::Backend::update_params`]: `n` elements of its gradient, its parameter and,
/// under [`UpdateRule::Momentum`], its velocity.
pub struct ParamUpdate<'a, Buf> {
    pub n: usize,
    pub grad: &'a Buf,
    pub velocity: Option<&'a mut Buf>,
    pub param: &'a mut Buf,
}

impl<Buf> ParamUpdate<'_, Buf> {
    /// The error of a momentum update given a tensor without a velocity.
    pub fn no_velocity() -> BackendError {
        BackendError::Invalid {
            op: "update_params",
            message: "a momentum update needs every tensor's velocity".into(),
        }
    }
}

/// [`Backend::update_params`] as one [`Backend::sgd_update`] or [`Backend::momentum_update`] per
/// tensor (the default, and the CPU's).
pub fn per_tensor<B: Backend + ?Sized>(
    b: &B,
    rule: &UpdateRule,
    tensors: &mut [ParamUpdate<'_, B::Buf>],
) -> Result<()> {
    for t in tensors.iter_mut() {
        match (rule, t.velocity.as_deref_mut()) {
            (UpdateRule::Sgd { lr, weight_decay }, _) => {
                b.sgd_update(t.n, *lr, *weight_decay, t.grad, t.param)?
            }
            (UpdateRule::Momentum(step), Some(v)) => b.momentum_update(t.n, step, t.grad, v, t.param)?,
            (UpdateRule::Momentum(_), None) => return Err(ParamUpdate::<B::Buf>::no_velocity()),
        }
    }
    Ok(())
}

//! The mixed-precision ops of a [`Profiled`] backend: each op of the wrapped backend's
//! [`HalfOps`] recorded and timed like the f32 ops, so an f16 step's profile names all of its
//! time (the f16 copies, the loss scale, the unscale, the guarded update) as an f32 step's does.
//! Allocation and reads pass straight through.

use super::cost::{HalfOp, Op};
use super::hooks::Profilable;
use super::wrapper::Profiled;
use crate::backend::half::{HalfBuf, HalfOps, ScaleGrowth, ToHalf};
use crate::backend::{BackendError, Gemm, MomentumStep, ParamUpdate, Result, UpdateRule};

impl<B: Profilable> Profiled<'_, B> {
    /// The wrapped backend's f16 ops (present whenever this wrapper offers its own).
    fn half(&self) -> Result<&dyn HalfOps<Buf = B::Buf>> {
        self.inner().half_ops().ok_or_else(|| BackendError::Invalid {
            op: "half_ops",
            message: format!("the {:?} backend has no f16 ops", self.inner().kind()),
        })
    }
}

impl<B: Profilable> HalfOps for Profiled<'_, B> {
    type Buf = B::Buf;

    fn zeros_half(&self, len: usize) -> Result<HalfBuf<B::Buf>> {
        self.half()?.zeros_half(len)
    }
    fn to_half(&self, n: usize, x: &B::Buf, out: &mut HalfBuf<B::Buf>) -> Result<()> {
        let h = self.half()?;
        self.op(Op::Half(HalfOp::ToHalf { n }), || h.to_half(n, x, out))
    }
    fn to_half_all(&self, items: &mut [ToHalf<'_, B::Buf>]) -> Result<()> {
        let h = self.half()?;
        let n = items.iter().map(|(n, _, _)| *n).sum();
        self.op(Op::Half(HalfOp::ToHalf { n }), || h.to_half_all(items))
    }
    fn read_half(&self, src: &HalfBuf<B::Buf>) -> Result<Vec<f32>> {
        self.half()?.read_half(src)
    }
    fn matmul_half(
        &self,
        g: &Gemm,
        a: &HalfBuf<B::Buf>,
        b: &HalfBuf<B::Buf>,
        c: &mut B::Buf,
    ) -> Result<()> {
        let h = self.half()?;
        self.op(Op::Matmul(*g), || h.matmul_half(g, a, b, c))
    }
    fn amp_scale(&self, n: usize, state: &B::Buf, x: &mut B::Buf) -> Result<()> {
        let h = self.half()?;
        self.op(Op::Half(HalfOp::LossScale { n, to_half: false }), || h.amp_scale(n, state, x))
    }
    fn amp_scale_to_half(
        &self,
        n: usize,
        state: &B::Buf,
        x: &mut B::Buf,
        out: &mut HalfBuf<B::Buf>,
    ) -> Result<()> {
        let h = self.half()?;
        let op = Op::Half(HalfOp::LossScale { n, to_half: true });
        self.op(op, || h.amp_scale_to_half(n, state, x, out))
    }
    fn amp_unscale(&self, n: usize, state: &mut B::Buf, x: &mut B::Buf) -> Result<()> {
        let h = self.half()?;
        self.op(Op::Half(HalfOp::Unscale { n }), || h.amp_unscale(n, state, x))
    }
    fn amp_unscale_all(&self, state: &mut B::Buf, xs: &mut [(usize, &mut B::Buf)]) -> Result<()> {
        let h = self.half()?;
        let n = xs.iter().map(|(n, _)| *n).sum();
        self.op(Op::Half(HalfOp::Unscale { n }), || h.amp_unscale_all(state, xs))
    }
    fn amp_update_params(
        &self,
        rule: &UpdateRule,
        state: &B::Buf,
        tensors: &mut [ParamUpdate<'_, B::Buf>],
    ) -> Result<()> {
        let h = self.half()?;
        let n = tensors.iter().map(|t| t.n).sum();
        let momentum = matches!(rule, UpdateRule::Momentum(_));
        let op = Op::Half(HalfOp::GuardedUpdate { n, momentum });
        self.op(op, || h.amp_update_params(rule, state, tensors))
    }
    fn amp_sgd(
        &self,
        n: usize,
        lr: f32,
        weight_decay: f32,
        state: &B::Buf,
        grad: &B::Buf,
        param: &mut B::Buf,
    ) -> Result<()> {
        let h = self.half()?;
        let op = Op::Half(HalfOp::GuardedUpdate { n, momentum: false });
        self.op(op, || h.amp_sgd(n, lr, weight_decay, state, grad, param))
    }
    fn amp_momentum(
        &self,
        n: usize,
        step: &MomentumStep,
        state: &B::Buf,
        grad: &B::Buf,
        velocity: &mut B::Buf,
        param: &mut B::Buf,
    ) -> Result<()> {
        let h = self.half()?;
        let op = Op::Half(HalfOp::GuardedUpdate { n, momentum: true });
        self.op(op, || h.amp_momentum(n, step, state, grad, velocity, param))
    }
    fn amp_update_scale(&self, growth: &ScaleGrowth, state: &mut B::Buf) -> Result<()> {
        let h = self.half()?;
        self.op(Op::Half(HalfOp::ScaleUpdate), || h.amp_update_scale(growth, state))
    }
}

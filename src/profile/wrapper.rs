//! `Profiled<B>`: the Backend that records, per op call, the op with its shapes and the
//! model scope, tags the dispatches the op records (GPU) or times it on the host (CPU), and
//! otherwise passes every call straight to the backend it wraps. Model and training code run
//! unchanged over it, so a profiled step is the real step.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use super::cost::{Fusion, Op, ReduceKind};
use super::hooks::{Profilable, TimingMethod};
use crate::backend::half::HalfBuf;
use crate::backend::{
    Activation, Backend, BackendKind, Dgrad, Epilogue, Gemm, GenSpec, GlobalNorm, LayerStep,
    MomentumStep, ParamUpdate, Result, Scope, StepSums, UpdateRule, XentOutputs,
};

/// One op call of a profiled recording.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpCall {
    pub op: Op,
    pub scope: Scope,
    /// Host time of the call, ns (the op's time for host timing; record time on the GPU).
    pub host_ns: f64,
}

pub struct Profiled<'a, B: Profilable> {
    inner: &'a B,
    scope: Cell<Scope>,
    /// Log calls (off: every call passes straight through).
    on: Cell<bool>,
    calls: RefCell<Vec<OpCall>>,
}

impl<'a, B: Profilable> Profiled<'a, B> {
    pub fn new(inner: &'a B) -> Self {
        Profiled {
            inner,
            scope: Cell::new(Scope::None),
            on: Cell::new(false),
            calls: RefCell::default(),
        }
    }

    pub fn inner(&self) -> &'a B {
        self.inner
    }

    /// Start logging op calls (clears the log).
    pub fn start(&self) {
        self.calls.borrow_mut().clear();
        self.on.set(true);
    }

    /// Stop logging and return the calls since [`Profiled::start`].
    pub fn stop(&self) -> Vec<OpCall> {
        self.on.set(false);
        std::mem::take(&mut *self.calls.borrow_mut())
    }

    pub(super) fn op<T>(&self, op: Op, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.on.get() {
            return f();
        }
        let tag = {
            let mut calls = self.calls.borrow_mut();
            calls.push(OpCall { op, scope: self.scope.get(), host_ns: 0.0 });
            calls.len() - 1
        };
        self.inner.set_dispatch_tag(tag as u32);
        let t0 = Instant::now();
        let r = f()?;
        if self.inner.timing_method() == TimingMethod::HostTimersSynced {
            self.inner.sync()?;
        }
        let ns = t0.elapsed().as_secs_f64() * 1e9;
        if let Some(c) = self.calls.borrow_mut().get_mut(tag) {
            c.host_ns = ns;
        }
        Ok(r)
    }
}

impl<B: Profilable> Backend for Profiled<'_, B> {
    type Buf = B::Buf;
    type IdxBuf = B::IdxBuf;

    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    fn device_name(&self) -> String {
        self.inner.device_name()
    }
    fn scope(&self, scope: Scope) {
        self.scope.set(scope);
    }
    fn half_ops(&self) -> Option<&dyn crate::backend::half::HalfOps<Buf = B::Buf>> {
        // Its own, which time each op of the wrapped backend's (`super::wrapper_half`).
        self.inner.half_ops().map(|_| self as &dyn crate::backend::half::HalfOps<Buf = B::Buf>)
    }
    fn zeros(&self, len: usize) -> Result<B::Buf> {
        self.inner.zeros(len)
    }
    fn upload(&self, data: &[f32]) -> Result<B::Buf> {
        self.inner.upload(data)
    }
    fn upload_idx(&self, data: &[u32]) -> Result<B::IdxBuf> {
        self.inner.upload_idx(data)
    }
    fn write(&self, dst: &mut B::Buf, data: &[f32]) -> Result<()> {
        self.inner.write(dst, data)
    }
    fn write_idx(&self, dst: &mut B::IdxBuf, data: &[u32]) -> Result<()> {
        self.inner.write_idx(dst, data)
    }
    fn read(&self, src: &B::Buf) -> Result<Vec<f32>> {
        self.inner.read(src)
    }
    fn read_into(&self, src: &B::Buf, out: &mut [f32]) -> Result<()> {
        self.inner.read_into(src, out)
    }
    fn read_idx(&self, src: &B::IdxBuf) -> Result<Vec<u32>> {
        self.inner.read_idx(src)
    }
    fn len(&self, buf: &B::Buf) -> usize {
        self.inner.len(buf)
    }
    fn len_idx(&self, buf: &B::IdxBuf) -> usize {
        self.inner.len_idx(buf)
    }
    fn copy(&self, src: &B::Buf, dst: &mut B::Buf) -> Result<()> {
        let n = self.inner.len(src);
        self.op(Op::Copy { n }, || self.inner.copy(src, dst))
    }
    fn fill(&self, dst: &mut B::Buf, value: f32) -> Result<()> {
        let n = self.inner.len(dst);
        self.op(Op::Fill { n }, || self.inner.fill(dst, value))
    }
    fn max_binding_bytes(&self) -> u64 {
        self.inner.max_binding_bytes()
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }
    fn matmul(&self, g: &Gemm, a: &B::Buf, b: &B::Buf, c: &mut B::Buf) -> Result<()> {
        self.op(Op::Matmul(*g), || self.inner.matmul(g, a, b, c))
    }
    fn matmul_epilogue(
        &self,
        g: &Gemm,
        a: &B::Buf,
        b: &B::Buf,
        c: &mut B::Buf,
        epi: Epilogue<'_, Self>,
    ) -> Result<()> {
        let fusion = match &epi {
            Epilogue::Bias(_) => Fusion::Bias,
            Epilogue::BiasAct(act, ..) => Fusion::BiasAct(*act),
            Epilogue::ActGrad { act, .. } => Fusion::ActGrad(*act),
            Epilogue::BiasGrad { .. } => Fusion::BiasGrad,
        };
        self.op(Op::MatmulFused(*g, fusion), || self.inner.matmul_epilogue(g, a, b, c, epi.cast()))
    }
    fn matmul_half_epilogue(
        &self,
        g: &Gemm,
        ab: [&HalfBuf<B::Buf>; 2],
        c: &mut B::Buf,
        epi: Epilogue<'_, Self>,
        half: Option<&mut HalfBuf<B::Buf>>,
    ) -> Result<()> {
        // Named like the f32 fused product (its byte count is the f32 one: an upper bound).
        let fusion = match &epi {
            Epilogue::Bias(_) => Fusion::Bias,
            Epilogue::BiasAct(act, ..) => Fusion::BiasAct(*act),
            Epilogue::ActGrad { act, .. } => Fusion::ActGrad(*act),
            Epilogue::BiasGrad { .. } => Fusion::BiasGrad,
        };
        let op = Op::MatmulFused(*g, fusion);
        self.op(op, || self.inner.matmul_half_epilogue(g, ab, c, epi.cast(), half))
    }
    fn matmul_half_bias_grad_unscaled(
        &self,
        g: &Gemm,
        ab: [&HalfBuf<B::Buf>; 2],
        c: &mut B::Buf,
        s: &B::Buf,
        bias_grad: &mut B::Buf,
        state: &mut B::Buf,
    ) -> Result<()> {
        let op = Op::MatmulFused(*g, Fusion::BiasGradUnscale);
        self.op(op, || self.inner.matmul_half_bias_grad_unscaled(g, ab, c, s, bias_grad, state))
    }
    fn add_bias(&self, rows: usize, cols: usize, x: &mut B::Buf, bias: &B::Buf) -> Result<()> {
        self.op(Op::AddBias { rows, cols }, || self.inner.add_bias(rows, cols, x, bias))
    }
    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &B::Buf,
        beta: f32,
        out: &mut B::Buf,
    ) -> Result<()> {
        let op = Op::ColSum { rows, cols, accumulate: beta != 0.0 };
        self.op(op, || self.inner.col_sum(rows, cols, alpha, x, beta, out))
    }
    fn axpy(&self, n: usize, alpha: f32, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        self.op(Op::Axpy { n }, || self.inner.axpy(n, alpha, x, y))
    }
    fn scale(&self, n: usize, alpha: f32, x: &mut B::Buf) -> Result<()> {
        self.op(Op::Scale { n }, || self.inner.scale(n, alpha, x))
    }
    fn add_bias_act(
        &self,
        act: Activation,
        rows: usize,
        cols: usize,
        x: &mut B::Buf,
        bias: &B::Buf,
        y: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::BiasAct { act, rows, cols }, || self.inner.add_bias_act(act, rows, cols, x, bias, y))
    }
    fn act_forward(&self, act: Activation, n: usize, z: &B::Buf, y: &mut B::Buf) -> Result<()> {
        self.op(Op::ActForward { act, n }, || self.inner.act_forward(act, n, z, y))
    }
    fn act_backward(
        &self,
        act: Activation,
        n: usize,
        z: &B::Buf,
        dy: &B::Buf,
        dz: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::ActBackward { n }, || self.inner.act_backward(act, n, z, dy, dz))
    }
    fn act_second(
        &self,
        act: Activation,
        n: usize,
        z: &B::Buf,
        dy: &B::Buf,
        rz: &B::Buf,
        out: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::ActSecond { n }, || self.inner.act_second(act, n, z, dy, rz, out))
    }
    fn softmax_xent(
        &self,
        rows: usize,
        classes: usize,
        logits: &B::Buf,
        labels: &B::IdxBuf,
        grad_scale: f32,
        loss: &mut B::Buf,
        correct: &mut B::Buf,
        dlogits: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::SoftmaxXent { rows, classes }, || {
            self.inner.softmax_xent(rows, classes, logits, labels, grad_scale, loss, correct, dlogits)
        })
    }
    fn softmax_xent_sums(
        &self,
        rows: usize,
        classes: usize,
        logits: &B::Buf,
        labels: &B::IdxBuf,
        grad_scale: f32,
        loss: &mut B::Buf,
        correct: &mut B::Buf,
        dlogits: &mut B::Buf,
        sums: &mut StepSums<'_, B::Buf>,
    ) -> Result<()> {
        let op = Op::SoftmaxXentSums { rows, classes, terms: sums.loss_slots.len() + 1 };
        self.op(op, || {
            let (l, c, d) = (loss, correct, dlogits);
            self.inner.softmax_xent_sums(rows, classes, logits, labels, grad_scale, l, c, d, sums)
        })
    }
    fn linear_xent_sums(
        &self,
        g: &Gemm,
        x_w_bias: [&B::Buf; 3],
        logits: &mut B::Buf,
        xent: XentOutputs<'_, B::Buf, B::IdxBuf>,
        sums: &mut StepSums<'_, B::Buf>,
    ) -> Result<()> {
        let op = Op::MatmulFused(*g, Fusion::BiasXentSums { terms: sums.loss_slots.len() + 1 });
        self.op(op, || self.inner.linear_xent_sums(g, x_w_bias, logits, xent, sums))
    }
    fn softmax_xent_rop(
        &self,
        rows: usize,
        classes: usize,
        logits: &B::Buf,
        rlogits: &B::Buf,
        grad_scale: f32,
        out: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::SoftmaxXentRop { rows, classes }, || {
            self.inner.softmax_xent_rop(rows, classes, logits, rlogits, grad_scale, out)
        })
    }
    fn mse(
        &self,
        rows: usize,
        cols: usize,
        pred: &B::Buf,
        target: &B::Buf,
        grad_scale: f32,
        loss: &mut B::Buf,
        dpred: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::Mse { rows, cols }, || {
            self.inner.mse(rows, cols, pred, target, grad_scale, loss, dpred)
        })
    }
    fn sum(&self, n: usize, x: &B::Buf, out: &mut B::Buf, slot: usize) -> Result<()> {
        self.op(Op::Reduce { kind: ReduceKind::Sum, n }, || self.inner.sum(n, x, out, slot))
    }
    fn sums(&self, n: usize, terms: &[(&B::Buf, usize)], out: &mut B::Buf) -> Result<()> {
        self.op(Op::Sums { n, terms: terms.len() }, || self.inner.sums(n, terms, out))
    }
    fn dot(&self, n: usize, x: &B::Buf, y: &B::Buf, out: &mut B::Buf, slot: usize) -> Result<()> {
        self.op(Op::Reduce { kind: ReduceKind::Dot, n }, || self.inner.dot(n, x, y, out, slot))
    }
    fn sum_sq(&self, n: usize, x: &B::Buf, out: &mut B::Buf, slot: usize) -> Result<()> {
        self.op(Op::Reduce { kind: ReduceKind::SumSq, n }, || self.inner.sum_sq(n, x, out, slot))
    }
    fn sgd_update(
        &self,
        n: usize,
        lr: f32,
        weight_decay: f32,
        grad: &B::Buf,
        param: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::Sgd { n }, || self.inner.sgd_update(n, lr, weight_decay, grad, param))
    }
    fn momentum_update(
        &self,
        n: usize,
        step: &MomentumStep,
        grad: &B::Buf,
        velocity: &mut B::Buf,
        param: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::Momentum { n }, || self.inner.momentum_update(n, step, grad, velocity, param))
    }
    fn update_params(&self, rule: &UpdateRule, tensors: &mut [ParamUpdate<'_, B::Buf>]) -> Result<()> {
        let n = tensors.iter().map(|t| t.n).sum();
        let op = match rule {
            UpdateRule::Sgd { .. } => Op::Sgd { n },
            UpdateRule::Momentum(_) => Op::Momentum { n },
        };
        self.op(op, || self.inner.update_params(rule, tensors))
    }
    fn wgrad_update(
        &self,
        g: &Gemm,
        dz: &B::Buf,
        x: &B::Buf,
        gw: &mut B::Buf,
        gb: &mut B::Buf,
        step: LayerStep<'_, B::Buf>,
    ) -> Result<()> {
        let momentum = matches!(step.rule, UpdateRule::Momentum(_));
        let op = Op::MatmulFused(*g, Fusion::BiasGradStep { momentum });
        self.op(op, || self.inner.wgrad_update(g, dz, x, gw, gb, step))
    }
    fn dgrad_wgrad_update(
        &self,
        g: &Gemm,
        dz: &B::Buf,
        x: &B::Buf,
        dgrad: Dgrad<'_, B::Buf>,
        gw: &mut B::Buf,
        gb: &mut B::Buf,
        step: LayerStep<'_, B::Buf>,
    ) -> Result<()> {
        let momentum = matches!(step.rule, UpdateRule::Momentum(_));
        let op = Op::MatmulFused(*g, Fusion::DgradBiasGradStep { act: dgrad.act, momentum });
        self.op(op, || self.inner.dgrad_wgrad_update(g, dz, x, dgrad, gw, gb, step))
    }
    fn clip_by_global_norm(
        &self,
        n: usize,
        norm: &GlobalNorm,
        stats: &mut B::Buf,
        x: &mut B::Buf,
    ) -> Result<()> {
        let count = norm.count;
        self.op(Op::ClipNorm { n, count }, || self.inner.clip_by_global_norm(n, norm, stats, x))
    }
    fn clip_by_value(&self, n: usize, limit: f32, x: &mut B::Buf) -> Result<()> {
        self.op(Op::ClipByValue { n }, || self.inner.clip_by_value(n, limit, x))
    }
    fn generate(
        &self,
        spec: &GenSpec,
        first: u64,
        rows: usize,
        table: &B::Buf,
        x: &mut B::Buf,
        labels: &mut B::IdxBuf,
        targets: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::Generate { rows, dim: spec.dim }, || {
            self.inner.generate(spec, first, rows, table, x, labels, targets)
        })
    }
    fn gather_rows(
        &self,
        rows: usize,
        cols: usize,
        src: &B::Buf,
        idx: &B::IdxBuf,
        dst: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::GatherRows { rows, cols }, || self.inner.gather_rows(rows, cols, src, idx, dst))
    }
    fn gather_rows_window(
        &self,
        rows: usize,
        cols: usize,
        src: &B::Buf,
        first: usize,
        src_rows: usize,
        idx: &B::IdxBuf,
        dst: &mut B::Buf,
    ) -> Result<()> {
        self.op(Op::GatherRows { rows, cols }, || {
            self.inner.gather_rows_window(rows, cols, src, first, src_rows, idx, dst)
        })
    }
    fn gather_idx(
        &self,
        rows: usize,
        src: &B::IdxBuf,
        idx: &B::IdxBuf,
        dst: &mut B::IdxBuf,
    ) -> Result<()> {
        self.op(Op::GatherIdx { rows }, || self.inner.gather_idx(rows, src, idx, dst))
    }
}

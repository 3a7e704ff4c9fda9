//! One data-parallel replica: its model state, minibatch buffers and batch source on its own
//! backend, and the two halves of its step — the (accumulated) gradient of its share of the
//! global batch, and the update from the reduced gradient.

use crate::backend::half::scaler;
use crate::backend::Backend;
use crate::data::device::BatchBuffers;
use crate::model::{LossScale, Mlp, ParamSet, Targets, Workspace};
use crate::train::amp::{self, MixedState};
use crate::train::batches::BatchSource;
use crate::train::optimizer::{Clip, Optimizer};
use crate::train::step::{slot, TrainState};
use crate::train::TrainError;

// The reduced loss and correctness sums are written over the metrics buffer's first two slots.
const _: () = assert!(slot::LOSS_SUM == 0 && slot::CORRECT_SUM == 1);

/// What every replica's step shares: where the global batch is and how it is split.
pub struct StepCtx<'c> {
    pub epoch: u64,
    pub step_in_epoch: u64,
    /// Global batch size B.
    pub batch: usize,
    /// Replicas N (each takes B/N rows).
    pub workers: usize,
    /// Micro-batches k per replica (each B/(N·k) rows).
    pub micro: usize,
    pub is_class: bool,
    /// Reduce ‖g‖² into the metrics buffer (a logged step).
    pub measure_norm: bool,
    /// The divergence guard's ring slot of this step.
    pub guard_slot: Option<usize>,
    pub opt: &'c Optimizer,
    pub lr: f32,
    pub clip: &'c Clip,
}

/// A replica's buffers beyond [`TrainState`]: the micro-batch gradient and per-micro-batch sums.
pub struct Accum<B: Backend> {
    /// Gradient of the micro-batches after the first (only when k > 1).
    scratch: Option<ParamSet<B>>,
    /// Σ loss of each micro-batch `[k]`.
    loss: B::Buf,
    /// Σ correct of each micro-batch `[k]`.
    correct: B::Buf,
    /// `[1]`: the reduced loss sum, staged for the guard ring's slot.
    one: B::Buf,
    /// This replica's host buffer: its gradient (flat, [`ParamSet`] order) then Σ loss, Σ correct.
    pub host: Vec<f32>,
    /// f16: `[scaler::LEN]`, the scaler state times `1/(N·k)`: each micro-batch's loss is
    /// scaled by `S/(N·k)`, so its f16 `∂L/∂z` rounds exactly as the one-worker step's rows do.
    micro_scaler: Option<B::Buf>,
}

impl<B: Backend> Accum<B> {
    /// The accumulator of a replica whose state is `st` (f16 when `st.mixed` is set).
    pub fn new(b: &B, st: &TrainState<B>, micro: usize) -> Result<Self, TrainError> {
        let scratch = if micro > 1 { Some(st.grads.zeros_like(b)?) } else { None };
        let micro_scaler = match st.mixed {
            Some(_) => Some(b.zeros(scaler::LEN)?),
            None => None,
        };
        Ok(Accum {
            scratch,
            loss: b.zeros(micro)?,
            correct: b.zeros(micro)?,
            one: b.zeros(1)?,
            host: Vec::new(),
            micro_scaler,
        })
    }
}

/// A replica other than replica 0 (whose parts the training loop owns).
pub struct Replica<'a, B: Backend> {
    pub b: &'a B,
    pub st: TrainState<B>,
    pub bt: BatchBuffers<B>,
    pub source: BatchSource<B>,
    pub acc: Accum<B>,
}

impl<'a, B: Backend> Replica<'a, B> {
    pub fn as_mut(&mut self, rank: usize) -> ReplicaMut<'_, B> {
        ReplicaMut {
            rank,
            b: self.b,
            st: &mut self.st,
            bt: &mut self.bt,
            source: &mut self.source,
            acc: &mut self.acc,
        }
    }
}

/// Borrowed parts of replica `rank`, what a phase of the step works on.
pub struct ReplicaMut<'r, B: Backend> {
    pub rank: usize,
    pub b: &'r B,
    pub st: &'r mut TrainState<B>,
    pub bt: &'r mut BatchBuffers<B>,
    pub source: &'r mut BatchSource<B>,
    pub acc: &'r mut Accum<B>,
}

impl<B: Backend> ReplicaMut<'_, B> {
    /// Record this replica's gradient: k micro-batches of `rows = B/(N·k)` rows, micro-batch `i`
    /// being rows `rank·B/N + i·rows ..` of the global batch. Each micro-batch's mean-loss
    /// gradient is scaled by `1/(N·k)` (exact: in the tests N·k is a power of two) and added
    /// into `st.grads` in micro-batch order, so replica sums add up to the global-batch mean.
    /// The loss and correctness sums of micro-batch `i` go to slot `i` of the accumulator.
    pub fn gradient(&mut self, ctx: &StepCtx<'_>) -> Result<(), TrainError> {
        let b = self.b;
        let rows = self.bt.rows;
        let mut alpha = 1.0 / (ctx.workers * ctx.micro) as f32;
        let first_row = self.rank * (ctx.batch / ctx.workers);
        // f16: 1/(N·k) moves into the loss scale of every micro-batch (S/(N·k)).
        if let (Some(m), Some(ms)) = (self.st.mixed.as_ref(), self.acc.micro_scaler.as_mut()) {
            b.copy(&m.scaler, ms)?;
            b.scale(scaler::LEN, alpha, ms)?;
            alpha = 1.0;
        }
        for i in 0..ctx.micro {
            let offset = first_row + i * rows;
            self.source.fill_slice(b, self.bt, ctx.epoch, ctx.step_in_epoch, ctx.batch, offset)?;
            let bt = &*self.bt;
            let targets =
                if ctx.is_class { Targets::Classes(&bt.labels) } else { Targets::Values(&bt.targets) };
            let st = &mut *self.st;
            let (model, params, ws) = (&st.model, &st.params, &mut st.ws);
            let mixed = st.mixed.as_mut().zip(self.acc.micro_scaler.as_ref());
            match (i, self.acc.scratch.as_mut()) {
                (0, _) | (_, None) => {
                    micro_gradient(b, model, params, &bt.x, &targets, ws, mixed, &mut st.grads)?;
                    if alpha != 1.0 {
                        st.grads.scale(b, alpha)?;
                    }
                }
                (_, Some(sc)) => {
                    micro_gradient(b, model, params, &bt.x, &targets, ws, mixed, sc)?;
                    st.grads.axpy(b, alpha, sc)?;
                }
            }
            b.sum(rows, &st.ws.loss, &mut self.acc.loss, i)?;
            b.sum(rows, &st.ws.correct, &mut self.acc.correct, i)?;
        }
        Ok(())
    }

    /// One replica (k > 1): the micro-batch sums into the metrics buffer on the device, then
    /// the update. The whole step stays one submit.
    pub fn finish_local(&mut self, ctx: &StepCtx<'_>) -> Result<(), TrainError> {
        let (b, k) = (self.b, ctx.micro);
        let st = &mut *self.st;
        b.sum(k, &self.acc.loss, &mut st.metrics, slot::LOSS_SUM)?;
        b.sum(k, &self.acc.correct, &mut st.metrics, slot::CORRECT_SUM)?;
        if let Some(g) = ctx.guard_slot {
            b.sum(k, &self.acc.loss, &mut st.metrics, g)?;
        }
        self.update(ctx)
    }

    /// Stage this replica's gradient and sums in `acc.host` (a sync on the GPU).
    pub fn to_host(&mut self) -> Result<(), TrainError> {
        let b = self.b;
        let host = &mut self.acc.host;
        self.st.grads.to_flat_into(b, host)?;
        // Micro-batch sums in micro-batch order.
        let sum = |v: Vec<f32>| v.iter().fold(0.0f32, |a, &x| a + x);
        host.push(sum(b.read(&self.acc.loss)?));
        host.push(sum(b.read(&self.acc.correct)?));
        Ok(())
    }

    /// Write the reduced `sum` (gradient, Σ loss, Σ correct) back over this replica's gradient
    /// and metrics slots (then [`Self::update`]).
    pub fn write_reduced(&mut self, sum: &[f32], ctx: &StepCtx<'_>) -> Result<(), TrainError> {
        let b = self.b;
        let st = &mut *self.st;
        let n = st.grads.numel();
        if sum.len() != n + 2 {
            return Err(TrainError::Setup(format!(
                "reduced gradient has {} values, the model {} (+2 sums)",
                sum.len(),
                n
            )));
        }
        st.grads.write_flat(b, &sum[..n])?;
        b.write(&mut st.metrics, &sum[n..n + 2])?;
        if let Some(g) = ctx.guard_slot {
            b.write(&mut self.acc.one, &sum[n..n + 1])?;
            b.sum(1, &self.acc.one, &mut st.metrics, g)?;
        }
        Ok(())
    }

    /// f16: the reduced gradient unscaled (one found-inf flag over it); then ‖g‖² if read or
    /// clipped, clipping, the update, and the submit.
    pub fn update(&mut self, ctx: &StepCtx<'_>) -> Result<(), TrainError> {
        let b = self.b;
        let st = &mut *self.st;
        if let Some(m) = st.mixed.as_mut() {
            amp::unscale(b, m, &mut st.grads)?;
        }
        if ctx.measure_norm || ctx.clip.norm > 0.0 {
            st.grads.sum_sq_into(b, &mut st.metrics, slot::GRAD_SQ0)?;
        }
        st.clip(b, ctx.clip)?;
        st.apply_update(b, ctx.opt, ctx.lr)?;
        b.flush()?;
        Ok(())
    }
}

/// One micro-batch's mean-loss gradient into `out`: f32, or under f16 the mixed-precision
/// backward with the loss times `micro_scaler`'s scale, S/(N·k) (the reduced gradient is
/// unscaled by S once, in [`ReplicaMut::update`]).
#[allow(clippy::too_many_arguments)]
fn micro_gradient<B: Backend>(
    b: &B,
    model: &Mlp,
    params: &ParamSet<B>,
    x: &B::Buf,
    targets: &Targets<'_, B>,
    ws: &mut Workspace<B>,
    mixed: Option<(&mut MixedState<B>, &B::Buf)>,
    out: &mut ParamSet<B>,
) -> Result<(), TrainError> {
    match mixed {
        None => model.loss_and_grad(b, params, x, targets, ws, out)?,
        Some((m, ms)) => {
            let ms = LossScale::Scaled(ms);
            model.loss_and_grad_half(b, params, x, targets, ws, &mut m.hw, ms, out, None)?
        }
    }
    Ok(())
}

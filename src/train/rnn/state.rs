//! The RNN's training state: parameters, gradients, optimizer state and activations at one
//! batch size, and one BPTT step recorded whole (the update by [`crate::train::optimizer`]).

use serde::Serialize;

use crate::backend::{Backend, Result};
use crate::model::{ParamSet, Rnn, RnnWorkspace, Targets};
use crate::train::optimizer::{apply_update, clip_grads, Clip, Optimizer};

/// Device-buffer slots of the per-step metrics.
pub mod slot {
    /// Σ over the minibatch of the surrogate loss (before the update).
    pub const LOSS_SUM: usize = 0;
    /// Σ over the minibatch of correctness.
    pub const CORRECT_SUM: usize = 1;
    /// Steps whose gradient was clipped by global norm, accumulated: this slot and the next
    /// (`GlobalNorm::count_events`).
    pub const CLIP_EVENTS: usize = 2;
    /// Per-tensor squared gradient norms, 5 tensors (W, U, b, V, c).
    pub const GRAD_SQ0: usize = 4;
    /// `‖∂L/∂h_t‖²`, t = 1..T.
    pub const DH_SQ0: usize = 9;
}

/// Minibatch figures read back from the metrics buffer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RnnStepMetrics {
    /// Mean surrogate loss of the minibatch before the update.
    pub loss: f64,
    /// Mean 0-1 error of the minibatch (classification).
    pub error: f64,
    /// ‖g‖ before clipping.
    pub grad_norm: f64,
    /// Steps clipped by global norm since this state was made.
    pub clip_events: u64,
    /// `‖∂L/∂h_t‖`, t = 1..T.
    pub dh_norms: Vec<f64>,
}

/// Parameters, gradients, optimizer state and activations of an RNN at one batch size.
pub struct RnnTrainState<B: Backend> {
    pub model: Rnn,
    pub params: ParamSet<B>,
    pub grads: ParamSet<B>,
    pub velocity: Option<ParamSet<B>>,
    pub ws: RnnWorkspace<B>,
    /// `[DH_SQ0 + T]` slots, see [`slot`].
    pub metrics: B::Buf,
}

impl<B: Backend> RnnTrainState<B> {
    pub fn new(b: &B, model: Rnn, params: ParamSet<B>, rows: usize, opt: &Optimizer) -> Result<Self> {
        let grads = params.zeros_like(b)?;
        let velocity = opt.velocity(b, &params)?;
        let ws = model.workspace(b, rows)?;
        let metrics = b.zeros(slot::DH_SQ0 + model.spec.steps)?;
        Ok(RnnTrainState { model, params, grads, velocity, ws, metrics })
    }

    /// Record one step on the minibatch `xs` (T buffers `[rows, D]`): forward, loss, BPTT,
    /// metrics, clipping, update. Nothing is read back or waited for. The per-step norms
    /// `‖∂L/∂h_t‖²` (2T reductions) are recorded only with `step_norms`, for the steps that are
    /// read back; otherwise their slots keep the last recorded values.
    #[allow(clippy::too_many_arguments)]
    pub fn record_step(
        &mut self,
        b: &B,
        xs: &[B::Buf],
        targets: &Targets<'_, B>,
        opt: &Optimizer,
        lr: f32,
        clip: &Clip,
        step_norms: bool,
    ) -> Result<()> {
        let rows = self.ws.rows;
        let norms = step_norms.then_some((&mut self.metrics, slot::DH_SQ0));
        self.model.loss_and_grad(b, &self.params, xs, targets, &mut self.ws, &mut self.grads, norms)?;
        b.sum(rows, &self.ws.loss, &mut self.metrics, slot::LOSS_SUM)?;
        b.sum(rows, &self.ws.correct, &mut self.metrics, slot::CORRECT_SUM)?;
        self.grads.sum_sq_into(b, &mut self.metrics, slot::GRAD_SQ0)?;
        clip_grads(b, &mut self.grads, &mut self.metrics, slot::GRAD_SQ0, slot::CLIP_EVENTS, clip)?;
        apply_update(b, &mut self.params, &self.grads, self.velocity.as_mut(), opt, lr)
    }

    /// Read the metrics of the last recorded step (a sync on the GPU).
    pub fn read_metrics(&self, b: &B) -> Result<RnnStepMetrics> {
        let m = b.read(&self.metrics)?;
        let rows = self.ws.rows.max(1) as f64;
        let grad_sq: f64 = m[slot::GRAD_SQ0..slot::DH_SQ0].iter().map(|&v| v as f64).sum();
        let steps = self.model.spec.steps;
        Ok(RnnStepMetrics {
            loss: m[slot::LOSS_SUM] as f64 / rows,
            error: (rows - m[slot::CORRECT_SUM] as f64) / rows,
            grad_norm: grad_sq.sqrt(),
            clip_events: crate::backend::GlobalNorm::count_events(&m, slot::CLIP_EVENTS),
            dh_norms: m[slot::DH_SQ0..slot::DH_SQ0 + steps].iter().map(|&v| (v as f64).sqrt()).collect(),
        })
    }
}

//! One training step, recorded whole on the backend (one submit on the GPU): forward,
//! per-example losses, backward, the minibatch metrics into a small device buffer, the update.

use serde::Serialize;

use super::amp::{self, MixedState};
use super::optimizer::{apply_update, clip_grads, rule_of};
pub use super::optimizer::{Clip, Optimizer};
use crate::backend::{Backend, Result, StepSums};
use crate::model::{Mlp, ParamSet, RopWorkspace, Targets, Workspace};

/// Device-buffer slots of the per-step metrics.
pub mod slot {
    /// Σ over the minibatch of the surrogate loss (before the update).
    pub const LOSS_SUM: usize = 0;
    /// Σ over the minibatch of correctness (1 - 0-1 loss).
    pub const CORRECT_SUM: usize = 1;
    /// Steps whose gradient norm was clipped, accumulated over the run: this slot and the
    /// next (`GlobalNorm::count_events`).
    pub const CLIP_EVENTS: usize = 2;
    /// First of the per-tensor squared gradient norms.
    pub const GRAD_SQ0: usize = 4;
    /// First of the per-tensor gᵀHg terms (monitored steps), after the `tensors` norm slots.
    pub fn gthg0(tensors: usize) -> usize {
        GRAD_SQ0 + tensors
    }
    /// Σ of the minibatch loss after the update, on the same minibatch (monitored steps).
    pub fn loss_after(tensors: usize) -> usize {
        GRAD_SQ0 + 2 * tensors
    }
    /// Σ of the minibatch loss before the update in f32 (monitored f16 steps: the step's own
    /// loss is the f16 forward pass's, and ΔL compares two f32 losses).
    pub fn loss_before(tensors: usize) -> usize {
        GRAD_SQ0 + 2 * tensors + 1
    }
    /// First of the per-tensor gᵀd terms, d = θ_after − θ_before the step taken (monitored
    /// steps).
    pub fn gtd0(tensors: usize) -> usize {
        GRAD_SQ0 + 2 * tensors + 2
    }
    /// First of the per-tensor dᵀHd terms (monitored steps).
    pub fn dthd0(tensors: usize) -> usize {
        GRAD_SQ0 + 3 * tensors + 2
    }
    /// Slots of the metrics buffer (without the divergence guard's ring, which follows them).
    pub fn len(tensors: usize) -> usize {
        GRAD_SQ0 + 4 * tensors + 2
    }
    /// The guard ring's slot of step `step` (1-based): `len(tensors) + (step - 1) % ring`.
    pub fn guard(tensors: usize, ring: usize, step: u64) -> usize {
        len(tensors) + (step.saturating_sub(1) % ring.max(1) as u64) as usize
    }
}

/// What the curvature monitor measured on one step (eq. 8.10).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvatureMetrics {
    /// gᵀg of the minibatch gradient.
    pub gtg: f64,
    /// gᵀHg: the curvature along the gradient (exact Hessian of the minibatch loss).
    pub gthg: f64,
    /// gᵀd for the step taken, d = θ_after − θ_before (−lr·g for plain SGD; momentum's
    /// velocity, clipping and weight decay make it another vector), g unclipped.
    pub gtd: f64,
    /// dᵀHd: the curvature along the step taken.
    pub dthd: f64,
    /// Mean minibatch loss after the update, same minibatch.
    pub loss_after: f64,
    /// Mean minibatch loss before the update in f32 (f16 steps; an f32 step's is its loss).
    pub loss_before: Option<f64>,
}

/// Minibatch figures read back from the metrics buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StepMetrics {
    /// Mean surrogate loss of the minibatch before the update.
    pub loss: f64,
    /// Mean 0-1 error of the minibatch before the update.
    pub error: f64,
    /// ‖g‖ of the minibatch mean gradient (before clipping).
    pub grad_norm: f64,
    /// Steps clipped by global norm since this state was made.
    pub clip_events: u64,
    /// An f16 step whose gradient overflowed: the loss scaler skipped it (no update), and
    /// `grad_norm` is reported as 0.
    pub skipped: bool,
}

/// Buffers of the curvature monitor, made on first use.
pub struct Monitor<B: Backend> {
    pub rws: RopWorkspace<B>,
    /// `H g`, then `H d`.
    pub hg: ParamSet<B>,
    /// θ and g before the update (clipping rescales g in place), and the step taken d.
    pub theta_before: ParamSet<B>,
    pub grad_before: ParamSet<B>,
    pub step: ParamSet<B>,
}

/// Parameters, gradients, optimizer state and activations of a model at one batch size.
pub struct TrainState<B: Backend> {
    pub model: Mlp,
    pub params: ParamSet<B>,
    pub grads: ParamSet<B>,
    pub velocity: Option<ParamSet<B>>,
    pub ws: Workspace<B>,
    /// Rows of the whole step's minibatch, the divisor of its mean loss and error: `ws.rows`,
    /// or the global batch when the step spans micro-batches or replicas (`train::parallel`).
    pub batch: usize,
    /// `slot::len(tensors)` slots, see [`slot`].
    pub metrics: B::Buf,
    pub monitor: Option<Monitor<B>>,
    /// Reduce ‖g‖² into the metrics buffer on every step (off: only when clipping by norm).
    /// The training loop turns it on for the steps whose metrics it reads.
    pub measure_grad_norm: bool,
    /// The divergence guard's ring of per-step loss sums (0 = none; see [`TrainState::guard_ring`]).
    pub ring: usize,
    /// The ring slot the next recorded step writes its loss sum to (set by the training loop).
    pub guard_slot: Option<usize>,
    /// `model.precision = "f16"`: the f16 buffers and the loss scaler (`None`: f32).
    pub mixed: Option<MixedState<B>>,
    /// Record the update inside the backward pass where the step allows it (f32, no clipping,
    /// not monitored: [`Mlp::train_step_into`]); the same bits as backward then update. On by
    /// default; off records them apart (tests compare the two).
    pub fuse_update: bool,
}

/// The metrics read back with the divergence guard's ring (loss sum of each recent step).
pub struct GuardedMetrics {
    pub step: StepMetrics,
    /// `ring` slots: the loss sum of step `s` is at `(s - 1) % ring`.
    pub ring: Vec<f32>,
}

/// Called between the gradient and the update of an observed step, with the workspace (the
/// forward pass's activations) and the gradients (`experiments::depth` reads both).
pub type StepObserver<'a, B> = dyn FnMut(&Workspace<B>, &ParamSet<B>) -> Result<()> + 'a;

impl<B: Backend> TrainState<B> {
    pub fn new(b: &B, model: Mlp, params: ParamSet<B>, rows: usize, opt: &Optimizer) -> Result<Self> {
        let grads = params.zeros_like(b)?;
        let velocity = opt.velocity(b, &params)?;
        let mut ws = model.workspace(b, rows)?;
        // The plain step fuses `⊙ φ'(z)` into the dgrad products; the monitored step keeps `da`.
        ws.keep_da = false;
        let metrics = b.zeros(slot::len(params.tensors.len()))?;
        Ok(TrainState {
            model,
            params,
            grads,
            velocity,
            ws,
            batch: rows,
            metrics,
            monitor: None,
            measure_grad_norm: true,
            ring: 0,
            guard_slot: None,
            mixed: None,
            fuse_update: true,
        })
    }

    /// Give the metrics buffer `ring` more slots after [`slot::len`]: each recorded step also sums
    /// its minibatch loss into its own slot there (a second, identical reduction), so a
    /// non-finite step is found at the next read without a readback per step. The other slots
    /// and their values are unchanged.
    pub fn guard_ring(&mut self, b: &B, ring: usize) -> Result<()> {
        self.metrics = b.zeros(slot::len(self.params.tensors.len()) + ring)?;
        self.ring = ring;
        Ok(())
    }

    /// Record one step on the minibatch `x [rows, inputs]`, `targets`: forward, loss, backward,
    /// metrics, update with learning rate `lr`. Nothing is read back or waited for.
    pub fn record_step(
        &mut self,
        b: &B,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        opt: &Optimizer,
        lr: f32,
        clip: &Clip,
    ) -> Result<()> {
        // The gradient norm costs a pass over every parameter: only when it is read or clipped.
        let norm = self.measure_grad_norm || clip.norm > 0.0;
        if self.fuses_update(clip) {
            return self.record_fused_step(b, x, targets, opt, lr, norm);
        }
        self.record_step_observed(b, x, targets, opt, lr, clip, &mut |_, _| Ok(()))
    }

    /// [`TrainState::record_step`] on its unfused path with `observe` called between the
    /// backward pass and the clipping: it sees this step's workspace and unclipped gradients
    /// (`depth` reads each layer's ‖∂L/∂W‖ there, which clipping rescales in place).
    #[allow(clippy::too_many_arguments)]
    pub fn record_step_observed(
        &mut self,
        b: &B,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        opt: &Optimizer,
        lr: f32,
        clip: &Clip,
        observe: &mut StepObserver<'_, B>,
    ) -> Result<()> {
        let norm = self.measure_grad_norm || clip.norm > 0.0;
        self.record_gradient(b, x, targets, norm)?;
        observe(&self.ws, &self.grads)?;
        self.clip(b, clip)?;
        self.apply_update(b, opt, lr)
    }

    /// Whether [`TrainState::record_step`] fuses the update into the backward pass: f32, and no
    /// clipping (which needs every gradient before any update).
    pub fn fuses_update(&self, clip: &Clip) -> bool {
        self.fuse_update && self.mixed.is_none() && clip.is_off()
    }

    /// Forward, loss with the minibatch sums, backward with each layer's update right after its
    /// gradient ([`Mlp::train_step_into`]), then when `norm` the per-tensor ‖g‖² of the
    /// gradients (still written) into the metrics buffer.
    fn record_fused_step(
        &mut self,
        b: &B,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        opt: &Optimizer,
        lr: f32,
        norm: bool,
    ) -> Result<()> {
        let loss_slots = self.loss_slots();
        let mut sums = metric_sums(&mut self.metrics, &loss_slots);
        let rule = rule_of(opt, self.velocity.is_some(), lr);
        let (ws, grads, velocity) = (&mut self.ws, &mut self.grads, self.velocity.as_mut());
        let p = &mut self.params;
        self.model.train_step_into(b, p, x, targets, ws, grads, Some(&mut sums), rule, velocity)?;
        if norm {
            self.grads.sum_sq_into(b, &mut self.metrics, slot::GRAD_SQ0)?;
        }
        Ok(())
    }

    /// The metrics slots the step's loss sum goes to: the loss sum, and the divergence guard's
    /// copy of it when a ring is kept.
    fn loss_slots(&self) -> Vec<usize> {
        let mut slots = vec![slot::LOSS_SUM];
        slots.extend(self.guard_slot);
        slots
    }

    /// Forward, per-example losses with the minibatch sums (loss, correct: one op where the
    /// backend fuses them), backward, and when `norm` the per-tensor ‖g‖², into the metrics
    /// buffer.
    fn record_gradient(
        &mut self,
        b: &B,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        norm: bool,
    ) -> Result<()> {
        let loss_slots = self.loss_slots();
        let mut sums = metric_sums(&mut self.metrics, &loss_slots);
        let (ws, grads) = (&mut self.ws, &mut self.grads);
        match self.mixed.as_mut() {
            None => {
                self.model.loss_and_grad_into(b, &self.params, x, targets, ws, grads, Some(&mut sums))?
            }
            Some(m) => {
                amp::record_gradient(b, &self.model, &self.params, x, targets, ws, m, grads, &mut sums)?
            }
        }
        if norm {
            self.grads.sum_sq_into(b, &mut self.metrics, slot::GRAD_SQ0)?;
        }
        Ok(())
    }

    /// [`TrainState::record_step`] with the curvature monitor: before the update, `H g` by the
    /// R-operator on this minibatch (its forward pass is reused) and gᵀHg per tensor into the
    /// metrics buffer; after the update, the step taken d = θ_after − θ_before (exact in f32:
    /// the two are close), gᵀd and dᵀHd at θ_before (eq. 8.10 for the step the optimizer took:
    /// momentum, clipping and weight decay included), and the same minibatch's loss again (the
    /// actual ΔL).
    pub fn record_step_monitored(
        &mut self,
        b: &B,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        opt: &Optimizer,
        lr: f32,
        clip: &Clip,
    ) -> Result<()> {
        let rows = self.ws.rows;
        let tensors = self.params.tensors.len();
        // hvp_prepared reads the `da` of this gradient.
        self.ws.keep_da = true;
        let recorded = self.record_gradient(b, x, targets, true);
        self.ws.keep_da = false;
        recorded?;
        if let Some(m) = self.mixed.as_mut() {
            // f16: the backward pass left ∂L/∂z and ∂L/∂a times the loss scale S, which the
            // R-operator's second-order terms read (gᵀHg grew as S did); unscaled to the f32
            // step's, and the loss before the update taken in f32, as ΔL's after is.
            let h = crate::model::mlp_f16::half_ops(b)?;
            let layers = self.ws.dz.len();
            let mut xs: Vec<(usize, &mut B::Buf)> = Vec::with_capacity(2 * layers);
            for buf in self.ws.dz.iter_mut().chain(self.ws.da.iter_mut().take(layers - 1)) {
                let n = b.len(buf);
                xs.push((n, buf));
            }
            h.amp_unscale_all(&mut m.scaler, &mut xs)?;
        }
        if self.monitor.is_none() {
            self.monitor = Some(Monitor {
                rws: self.model.rop_workspace(b, rows)?,
                hg: self.params.zeros_like(b)?,
                theta_before: self.params.zeros_like(b)?,
                grad_before: self.params.zeros_like(b)?,
                step: self.params.zeros_like(b)?,
            });
        }
        if let Some(m) = self.monitor.as_mut() {
            self.model.hvp_prepared(b, &self.params, &self.grads, x, &self.ws, &mut m.rws, &mut m.hg)?;
            self.grads.dot_into(b, &m.hg, &mut self.metrics, slot::gthg0(tensors))?;
            m.theta_before.copy_from(b, &self.params)?;
            m.grad_before.copy_from(b, &self.grads)?;
        }
        if self.mixed.is_some() {
            self.model.forward(b, &self.params, x, &mut self.ws)?;
            self.model.loss(b, targets, &mut self.ws)?;
            b.sum(rows, &self.ws.loss, &mut self.metrics, slot::loss_before(tensors))?;
        }
        self.clip(b, clip)?;
        self.apply_update(b, opt, lr)?;
        if let Some(m) = self.monitor.as_mut() {
            // The activations in `ws` are still θ_before's: the R-operator along d reuses them.
            m.step.copy_from(b, &self.params)?;
            m.step.axpy(b, -1.0, &m.theta_before)?;
            let (theta, d) = (&m.theta_before, &m.step);
            self.model.hvp_prepared(b, theta, d, x, &self.ws, &mut m.rws, &mut m.hg)?;
            m.grad_before.dot_into(b, d, &mut self.metrics, slot::gtd0(tensors))?;
            d.dot_into(b, &m.hg, &mut self.metrics, slot::dthd0(tensors))?;
        }
        self.model.forward(b, &self.params, x, &mut self.ws)?;
        self.model.loss(b, targets, &mut self.ws)?;
        b.sum(rows, &self.ws.loss, &mut self.metrics, slot::loss_after(tensors))
    }

    /// The monitor's figures of the last monitored step (a sync on the GPU).
    pub fn read_curvature(&self, b: &B) -> Result<CurvatureMetrics> {
        let m = b.read(&self.metrics)?;
        let t = self.params.tensors.len();
        let sum = |from: usize| m[from..from + t].iter().map(|&v| v as f64).sum::<f64>();
        Ok(CurvatureMetrics {
            gtg: sum(slot::GRAD_SQ0),
            gthg: sum(slot::gthg0(t)),
            gtd: sum(slot::gtd0(t)),
            dthd: sum(slot::dthd0(t)),
            loss_after: m[slot::loss_after(t)] as f64 / self.ws.rows.max(1) as f64,
            loss_before: self
                .mixed
                .is_some()
                .then(|| m[slot::loss_before(t)] as f64 / self.ws.rows.max(1) as f64),
        })
    }

    /// Clip the gradients in place: by global norm (from the squared norms already in the
    /// metrics buffer; a clipped step counts one event), then by value.
    pub fn clip(&mut self, b: &B, clip: &Clip) -> Result<()> {
        clip_grads(b, &mut self.grads, &mut self.metrics, slot::GRAD_SQ0, slot::CLIP_EVENTS, clip)
    }

    /// `params ← update(params, grads)`.
    pub fn apply_update(&mut self, b: &B, opt: &Optimizer, lr: f32) -> Result<()> {
        let (params, velocity) = (&mut self.params, self.velocity.as_mut());
        match self.mixed.as_mut() {
            None => apply_update(b, params, &self.grads, velocity, opt, lr),
            Some(m) => amp::apply_update(b, params, &self.grads, velocity, opt, lr, m),
        }
    }

    /// Read the metrics of the last recorded step (a sync on the GPU).
    pub fn read_metrics(&self, b: &B) -> Result<StepMetrics> {
        Ok(self.read_guarded(b)?.step)
    }

    /// [`TrainState::read_metrics`] with the guard ring (one read of the metrics buffer).
    pub fn read_guarded(&self, b: &B) -> Result<GuardedMetrics> {
        let m = b.read(&self.metrics)?;
        let step = self.metrics_of(&m);
        let from = slot::len(self.params.tensors.len());
        Ok(GuardedMetrics { step, ring: m.get(from..).unwrap_or_default().to_vec() })
    }

    fn metrics_of(&self, m: &[f32]) -> StepMetrics {
        let rows = self.batch.max(1) as f64;
        let t = self.params.tensors.len();
        let grad_sq: f64 = m[slot::GRAD_SQ0..slot::GRAD_SQ0 + t].iter().map(|&v| v as f64).sum();
        // f16: a non-finite gradient is an overflow the loss scaler skipped, not a divergence;
        // its norm is reported as 0 (metrics.jsonl counts it in `skipped_steps`).
        let skipped = self.mixed.is_some() && !grad_sq.is_finite();
        let grad_norm = if skipped { 0.0 } else { grad_sq.sqrt() };
        StepMetrics {
            loss: m[slot::LOSS_SUM] as f64 / rows,
            error: (rows - m[slot::CORRECT_SUM] as f64) / rows,
            grad_norm,
            clip_events: crate::backend::GlobalNorm::count_events(m, slot::CLIP_EVENTS),
            skipped,
        }
    }
}

/// The step's loss sum into `loss_slots` and correct sum into its slot of `metrics`.
fn metric_sums<'a, Buf>(metrics: &'a mut Buf, loss_slots: &'a [usize]) -> StepSums<'a, Buf> {
    StepSums { out: metrics, loss_slots, correct_slot: slot::CORRECT_SUM }
}

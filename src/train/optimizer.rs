//! The optimizer, shared by the MLP loop ([`super::step`]) and the RNN loop ([`super::rnn`]):
//! the update rule (SGD or heavy-ball momentum, with weight decay), gradient clipping (by global
//! norm, then by value) and the learning-rate schedule.

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError, GlobalNorm, MomentumStep, ParamUpdate, Result, UpdateRule};
use crate::config::{LrSchedule, OptimizerKind, TrainConfig};
use crate::model::ParamSet;

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    Sgd { weight_decay: f32 },
    Momentum { mu: f32, weight_decay: f32 },
}

impl Optimizer {
    /// The update rule of kind `kind` (`momentum` is used by [`OptimizerKind::Momentum`] only).
    pub fn new(kind: OptimizerKind, momentum: f32, weight_decay: f32) -> Self {
        match kind {
            OptimizerKind::Sgd => Optimizer::Sgd { weight_decay },
            OptimizerKind::Momentum => Optimizer::Momentum { mu: momentum, weight_decay },
        }
    }

    /// The update rule a `[train]` config section describes.
    pub fn of(t: &TrainConfig) -> Self {
        Optimizer::new(t.optimizer, t.momentum, t.weight_decay)
    }

    /// The optimizer state for `params`: a zero velocity for momentum, none for SGD.
    pub fn velocity<B: Backend>(&self, b: &B, params: &ParamSet<B>) -> Result<Option<ParamSet<B>>> {
        match self {
            Optimizer::Momentum { .. } => Ok(Some(params.zeros_like(b)?)),
            Optimizer::Sgd { .. } => Ok(None),
        }
    }
}

/// Gradient clipping (0 = off for each).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clip {
    /// Rescale the whole gradient to at most this global norm.
    pub norm: f32,
    /// Clamp each component to `[-value, value]`.
    pub value: f32,
}

impl Clip {
    /// Whether [`clip_grads`] leaves the gradients as they are (neither bound is positive).
    pub fn is_off(&self) -> bool {
        self.norm.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            && self.value.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
    }
}

/// Clip `grads` in place: by global norm from the per-tensor squared norms in
/// `stats[sq0 .. sq0 + tensors]` (a clipped step is counted in `stats[count_slot..count_slot + 2]`,
/// [`GlobalNorm::count_events`]), then by value.
pub fn clip_grads<B: Backend>(
    b: &B,
    grads: &mut ParamSet<B>,
    stats: &mut B::Buf,
    sq0: usize,
    count_slot: usize,
    clip: &Clip,
) -> Result<()> {
    let tensors = grads.tensors.len();
    if clip.norm > 0.0 {
        for i in 0..tensors {
            let n = grads.numel_of(i);
            let norm = GlobalNorm {
                max_norm: clip.norm,
                first: sq0,
                count: tensors,
                count_slot: (i == 0).then_some(count_slot),
            };
            b.clip_by_global_norm(n, &norm, stats, &mut grads.tensors[i])?;
        }
    }
    if clip.value > 0.0 {
        for i in 0..tensors {
            let n = grads.numel_of(i);
            b.clip_by_value(n, clip.value, &mut grads.tensors[i])?;
        }
    }
    Ok(())
}

/// `params ← update(params, grads)` with SGD or heavy-ball momentum (`velocity` from
/// [`Optimizer::velocity`]; without one, momentum falls back to plain SGD), every tensor in
/// one [`Backend::update_params`].
pub fn apply_update<B: Backend>(
    b: &B,
    params: &mut ParamSet<B>,
    grads: &ParamSet<B>,
    velocity: Option<&mut ParamSet<B>>,
    opt: &Optimizer,
    lr: f32,
) -> Result<()> {
    let (rule, mut tensors) = update_list(params, grads, velocity, opt, lr)?;
    b.update_params(&rule, &mut tensors)
}

/// The rule and the per-tensor operands of a whole-model update (see [`apply_update`]); the
/// gradient (and velocity) sets must hold a tensor per parameter tensor.
pub fn update_list<'a, B: Backend>(
    params: &'a mut ParamSet<B>,
    grads: &'a ParamSet<B>,
    velocity: Option<&'a mut ParamSet<B>>,
    opt: &Optimizer,
    lr: f32,
) -> Result<(UpdateRule, Vec<ParamUpdate<'a, B::Buf>>)> {
    let count = params.tensors.len();
    let velocity_count = velocity.as_ref().map_or(count, |v| v.tensors.len());
    if grads.tensors.len() != count || velocity_count != count {
        return Err(BackendError::Invalid {
            op: "update_params",
            message: format!(
                "{count} parameter tensors, {} gradients, {velocity_count} velocities",
                grads.tensors.len()
            ),
        });
    }
    let rule = rule_of(opt, velocity.is_some(), lr);
    let mut velocities = match (&rule, velocity) {
        (UpdateRule::Momentum(_), Some(v)) => v.tensors.iter_mut().map(Some).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    velocities.resize_with(params.tensors.len(), || None);
    let lens: Vec<usize> = (0..params.tensors.len()).map(|i| params.numel_of(i)).collect();
    let tensors = params
        .tensors
        .iter_mut()
        .zip(&grads.tensors)
        .zip(velocities)
        .zip(lens)
        .map(|(((param, grad), velocity), n)| ParamUpdate { n, grad, velocity, param })
        .collect();
    Ok((rule, tensors))
}

/// The rule of a step with `opt` at learning rate `lr`: momentum needs a velocity (without one,
/// [`apply_update`] falls back to plain SGD).
pub fn rule_of(opt: &Optimizer, has_velocity: bool, lr: f32) -> UpdateRule {
    match *opt {
        Optimizer::Momentum { mu, weight_decay } if has_velocity => {
            UpdateRule::Momentum(MomentumStep { lr, mu, weight_decay })
        }
        Optimizer::Sgd { weight_decay } | Optimizer::Momentum { weight_decay, .. } => {
            UpdateRule::Sgd { lr, weight_decay }
        }
    }
}

/// The learning rate of epoch `epoch` under `t.lr_schedule`.
pub fn lr_at(t: &TrainConfig, epoch: u64) -> f32 {
    match t.lr_schedule {
        LrSchedule::Constant => t.lr,
        LrSchedule::Step => {
            let k = epoch / t.lr_step_epochs.max(1) as u64;
            t.lr * t.lr_decay.powi(k.min(i32::MAX as u64) as i32)
        }
    }
}

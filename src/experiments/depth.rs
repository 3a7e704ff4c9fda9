//! Per-layer gradient norms of a deep MLP (`batchscope depth`), at initialisation and during a
//! short SGD run.
//!
//! For each layer l = 1..L (input layer first) it measures `‖∂L/∂W_l‖` (the weight gradient)
//! and `‖∂L/∂z_l‖` (the back-propagated signal). In an identity MLP whose square hidden layers
//! have weights of scale g/√n, each layer back multiplies the signal by ≈ g, so `‖∂L/∂z_l‖`
//! grows or shrinks as g^(L−l) — the depth analogue of λ^(T−t) in a recurrent net — while
//! `‖∂L/∂W_l‖ ≈ ‖∂L/∂z_l‖ ‖a_{l−1}‖` stays nearly flat (the forward activations scale as g^l).

use serde::Serialize;
use thiserror::Error;

use crate::backend::{Backend, BackendError};
use crate::config::{BatchSize, Config, OptimizerKind, Shuffle};
use crate::data::{BatchOrder, DataError, Labels};
use crate::model::{Mlp, Targets};
use crate::train::diagnostics::{
    finish_layer_norms, fit_line, layer_norms, record_layer_norms, LayerNorms,
};
use crate::train::{Clip, EvalSet, Optimizer, TrainState};

/// Why a depth run could not run.
#[derive(Debug, Error)]
pub enum DepthError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Eval(#[from] crate::train::TrainError),
}

/// The most logged points a [`DepthRun`] keeps (evenly spaced, the first and last included);
/// the point sink of [`run_depth`] sees every one (a run of 60 000 logged steps of 51 layers
/// held them all, 1.2 GB with their CSV rows and plot curves).
pub const KEPT_POINTS: usize = 64;

/// Norms measured at one step.
#[derive(Clone, Debug, Serialize)]
pub struct DepthPoint {
    /// 0 = at initialisation (before any update).
    pub step: u64,
    pub loss: f64,
    pub norms: LayerNorms,
}

/// One variant's run.
#[derive(Clone, Debug, Serialize)]
pub struct DepthRun {
    pub name: String,
    pub activation: String,
    /// `model.init_scale` as the config writes it.
    pub init_scale: f64,
    pub layers: usize,
    /// At most [`KEPT_POINTS`] logged points, evenly spaced: initialisation first, the last
    /// logged step (or the diverged one) last.
    pub points: Vec<DepthPoint>,
    pub diverged_at: Option<u64>,
    /// Growth per layer towards the input at init, `−d ln‖∂L/∂z_l‖/dl` over the hidden layers.
    pub delta_growth_init: Option<f64>,
    /// The same for `‖∂L/∂W_l‖`.
    pub weight_growth_init: Option<f64>,
    /// `‖∂L/∂W_1‖ / ‖∂L/∂W_L‖` at init.
    pub first_over_last_init: f64,
    /// Loss and 0-1 error on the validation set (`data.n_val` examples) at initialisation and
    /// after the last step: `null` without validation rows, after a divergence (final), and
    /// for a regression's error.
    pub val_loss_init: Option<f64>,
    pub val_error_init: Option<f64>,
    pub val_loss_final: Option<f64>,
    pub val_error_final: Option<f64>,
}

/// Measure per-layer norms at init, then train `train.steps` steps logging every `log_every`;
/// `sink` sees every logged point as it is measured, the run keeps [`KEPT_POINTS`] of them.
pub fn run_depth<B: Backend>(
    b: &B,
    cfg: &Config,
    name: &str,
    sink: &mut dyn FnMut(&DepthPoint) -> Result<(), DepthError>,
) -> Result<DepthRun, DepthError> {
    let mlp = Mlp::new(cfg.mlp_spec())?;
    let layers = mlp.layers();
    let batch = match cfg.train.batch_size {
        BatchSize::Fixed(n) => n,
        BatchSize::Auto => {
            return Err(DepthError::Setup(
                "train.batch_size = \"auto\" is not supported by `depth`; give a number".into(),
            ))
        }
    };
    let (train, val) = crate::data::build_resident(&cfg.data, cfg.data_outputs())?;
    let mut val_set = EvalSet::new(b, &mlp, &val)?;
    drop(val);
    if batch > train.n {
        return Err(DepthError::Setup(format!(
            "train.batch_size = {batch} exceeds the {} training examples",
            train.n
        )));
    }
    let x_all = b.upload(&train.x)?;
    let (labels_all, values_all, k, class) = match &train.targets {
        Labels::Classes { labels, .. } => (b.upload_idx(labels)?, b.zeros(1)?, 1, true),
        Labels::Values { targets, outputs } => {
            (b.upload_idx(&[0])?, b.upload(targets)?, *outputs, false)
        }
    };
    let opt = match cfg.train.optimizer {
        OptimizerKind::Sgd => Optimizer::Sgd { weight_decay: cfg.train.weight_decay },
        OptimizerKind::Momentum => {
            Optimizer::Momentum { mu: cfg.train.momentum, weight_decay: cfg.train.weight_decay }
        }
    };
    let clip = Clip { norm: cfg.train.clip_norm, value: cfg.train.clip_value };
    let params = mlp.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale)?;
    let class_error = |e: f64| matches!(train.targets, Labels::Classes { .. }).then_some(e);
    let mut validate =
        |p: &crate::model::ParamSet<B>| -> Result<(Option<f64>, Option<f64>), DepthError> {
            Ok(match val_set.as_mut() {
                Some(v) => {
                    let (loss, error) = v.evaluate(b, &mlp, p)?;
                    (Some(loss), class_error(error))
                }
                None => (None, None),
            })
        };
    let (val_loss_init, val_error_init) = validate(&params)?;
    let mut st = TrainState::new(b, mlp.clone(), params, batch, &opt)?;
    let mut order = BatchOrder::new(Shuffle::Epoch, false, cfg.train.seed, train.n, None);
    let spe = (train.n / batch).max(1) as u64;
    let mut idx = b.upload_idx(&vec![0u32; batch])?;
    let mut x = b.zeros(batch * mlp.inputs())?;
    let mut labels = b.upload_idx(&vec![0u32; batch])?;
    let mut values = b.zeros(batch * k)?;
    let mut stats = b.zeros(2 * layers)?;
    let steps = cfg.train.steps;
    let mut points = KeptPoints::default();
    let mut diverged_at = None;
    for step in 0..=steps {
        let batch_idx = order
            .batch(step / spe, (step % spe) as usize, batch)
            .ok_or_else(|| DepthError::Setup("minibatch order".into()))?
            .to_vec();
        b.write_idx(&mut idx, &batch_idx)?;
        b.gather_rows(batch, mlp.inputs(), &x_all, &idx, &mut x)?;
        if class {
            b.gather_idx(batch, &labels_all, &idx, &mut labels)?;
        } else {
            b.gather_rows(batch, k, &values_all, &idx, &mut values)?;
        }
        let t = if class { Targets::Classes(&labels) } else { Targets::Values(&values) };
        if step == 0 {
            // At initialisation: one forward/backward, no update.
            let mut grads = st.params.zeros_like(b)?;
            let norms = layer_norms(b, &mlp, &st.params, &x, &t, &mut st.ws, &mut grads)?;
            let m = b.read(&st.ws.loss)?;
            let loss = m.iter().take(batch).map(|&v| v as f64).sum::<f64>() / batch as f64;
            points.push(DepthPoint { step: 0, loss, norms }, sink)?;
            continue;
        }
        let log_now = step.is_multiple_of(cfg.train.log_every) || step == steps;
        // ‖g‖ is read only on logged steps.
        st.measure_grad_norm = log_now;
        if log_now {
            // Each layer's ‖∂L/∂W‖ before clipping rescales the gradients in place (the norms
            // after it hid the exploding gradients this experiment shows).
            st.record_step_observed(b, &x, &t, &opt, cfg.train.lr, &clip, &mut |ws, grads| {
                record_layer_norms(b, &mlp, ws, grads, &mut stats, 0)
            })?;
            let m = st.read_metrics(b)?;
            let s = b.read(&stats)?;
            let finite = m.loss.is_finite() && m.grad_norm.is_finite();
            let point = DepthPoint { step, loss: m.loss, norms: finish_layer_norms(layers, &s, 0) };
            points.push(point, sink)?;
            if !finite {
                diverged_at = Some(step);
                break;
            }
        } else {
            st.record_step(b, &x, &t, &opt, cfg.train.lr, &clip)?;
            b.flush()?;
        }
    }
    let points = points.finish();
    let (val_loss_final, val_error_final) = match diverged_at {
        None => validate(&st.params)?,
        Some(_) => (None, None),
    };
    let init = &points[0].norms;
    let growth = |v: &[f64]| -> Option<f64> {
        // Hidden layers only (the first and last layers have other shapes).
        let hidden: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .skip(1)
            .take(layers.saturating_sub(2))
            .map(|(l, &n)| ((l + 1) as f64, n.ln()))
            .collect();
        let (xs, ys): (Vec<f64>, Vec<f64>) = hidden.into_iter().unzip();
        fit_line(&xs, &ys).map(|(s, _)| -s)
    };
    Ok(DepthRun {
        name: name.to_string(),
        activation: cfg.model.activation.name().to_string(),
        init_scale: crate::stats::f32_as_written(cfg.model.init_scale),
        layers,
        delta_growth_init: growth(&init.delta),
        weight_growth_init: growth(&init.weight),
        first_over_last_init: init.weight.first().copied().unwrap_or(f64::NAN)
            / init.weight.last().copied().unwrap_or(f64::NAN),
        points,
        diverged_at,
        val_loss_init,
        val_error_init,
        val_loss_final,
        val_error_final,
    })
}

/// Every `stride`-th logged point (from the first), and the newest one: when [`KEPT_POINTS`]
/// are kept, every other one is dropped and the stride doubles, so that a run keeps fewer than
/// [`KEPT_POINTS`] + 1 evenly spaced points whatever its length, and however early it stops (a
/// run that diverged at step 900 of 60 000 planned kept its first and last point only when the
/// spacing was fixed from the planned steps).
struct KeptPoints {
    stride: u64,
    seen: u64,
    kept: Vec<DepthPoint>,
    newest: Option<DepthPoint>,
}

impl Default for KeptPoints {
    fn default() -> Self {
        KeptPoints { stride: 1, seen: 0, kept: Vec::new(), newest: None }
    }
}

impl KeptPoints {
    fn push(
        &mut self,
        point: DepthPoint,
        sink: &mut dyn FnMut(&DepthPoint) -> Result<(), DepthError>,
    ) -> Result<(), DepthError> {
        sink(&point)?;
        let ordinal = self.seen;
        self.seen += 1;
        if ordinal.is_multiple_of(self.stride) && self.kept.len() + 1 == KEPT_POINTS {
            // Full: every other kept point goes (those at odd multiples of the stride).
            let mut i = 0;
            self.kept.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
        }
        match ordinal.is_multiple_of(self.stride) {
            true => {
                self.kept.push(point);
                self.newest = None;
            }
            false => self.newest = Some(point),
        }
        Ok(())
    }

    /// The kept points, the newest last.
    fn finish(mut self) -> Vec<DepthPoint> {
        self.kept.extend(self.newest);
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: u64) -> DepthPoint {
        DepthPoint { step, loss: 0.0, norms: LayerNorms { weight: vec![], delta: vec![] } }
    }

    #[test]
    fn kept_points_are_evenly_spaced_bounded_and_end_with_the_newest() {
        for logged in [1u64, 2, 5, 63, 64, 65, 127, 128, 129, 901, 1000, 60_001] {
            let mut seen = Vec::new();
            let mut kept = KeptPoints::default();
            for step in 0..logged {
                kept.push(point(step), &mut |p| {
                    seen.push(p.step);
                    Ok(())
                })
                .expect("sink");
            }
            let kept: Vec<u64> = kept.finish().iter().map(|p| p.step).collect();
            assert_eq!(seen.len() as u64, logged, "the sink sees every point");
            assert!(kept.len() <= KEPT_POINTS, "{logged}: kept {}", kept.len());
            // Every point below the bound, and past it never fewer than half the bound.
            let least = if logged < KEPT_POINTS as u64 { logged as usize } else { KEPT_POINTS / 2 };
            assert!(kept.len() >= least, "{logged}: kept {}", kept.len());
            assert_eq!((kept[0], kept.last().copied()), (0, Some(logged - 1)));
            let gaps: Vec<u64> = kept.windows(2).map(|w| w[1] - w[0]).collect();
            if let Some((last, even)) = gaps.split_last() {
                assert!(even.iter().all(|&g| g == gaps[0]) && *last <= gaps[0], "{logged}: {gaps:?}");
            }
        }
    }
}

//! Mixed-precision training (`model.precision = "f16"`): the f16 step of [`TrainState`] and
//! dynamic loss scaling with GradScaler's semantics, all on the device.
//!
//! A step: the mixed forward/backward of [`Mlp::loss_and_grad_half`] with d logits times the
//! scale S; every gradient unscaled (×1/S, in its product's store on the GPU) while a
//! non-finite element raises the found-inf flag of the scaler state; the optimizer update of every tensor skipped when the flag is up; then
//! S halves (overflow: a skipped step) or doubles after `train.loss_scale_growth_interval` clean
//! steps, and the flag clears. The flag and S never leave the device during a step; the scale and
//! the skipped-step count are read with the step metrics and written to metrics.jsonl (only by
//! f16 runs, so f32 output is unchanged). The same holds over replicas, micro-batches and MPI
//! ranks: see [`unscale`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metrics::MetricsLine;
use super::optimizer::Optimizer;
use super::step::TrainState;
use crate::backend::half::{scaler, ScaleGrowth, MIN_LOSS_SCALE};
use crate::backend::{Backend, Result, StepSums};
use crate::config::Config;
use crate::model::mlp_f16::half_ops;
use crate::model::{HalfWorkspace, LossScale, Mlp, ParamSet, Precision, Targets};

/// The f16 buffers and the loss-scaler state of a mixed-precision [`TrainState`].
pub struct MixedState<B: Backend> {
    pub hw: HalfWorkspace<B>,
    /// `[scaler::LEN]`: scale, found-inf flag, clean steps, skipped steps.
    pub scaler: B::Buf,
    pub growth: ScaleGrowth,
    /// Whether the run was told that its scale sits at [`MIN_LOSS_SCALE`] (once).
    floor_warned: std::cell::Cell<bool>,
}

/// What an f16 run adds to a metrics line.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AmpMetrics {
    /// The loss scale after the last recorded step.
    pub loss_scale: f64,
    /// Steps skipped for a non-finite gradient, over the run (this session).
    pub skipped_steps: u64,
}

impl<B: Backend> MixedState<B> {
    /// f16 buffers for `model` at `rows` examples, the scale starting at `init_scale`.
    pub fn new(b: &B, model: &Mlp, rows: usize, init_scale: f32, interval: u32) -> Result<Self> {
        let mut state = vec![0.0; scaler::LEN];
        state[scaler::SCALE] = init_scale;
        Ok(MixedState {
            hw: model.half_workspace(b, rows)?,
            scaler: b.upload(&state)?,
            growth: ScaleGrowth::every(interval),
            floor_warned: std::cell::Cell::new(false),
        })
    }

    /// The scale and skipped-step count (a read of the 4-slot state: a sync on the GPU).
    pub fn read(&self, b: &B) -> Result<AmpMetrics> {
        let s = b.read(&self.scaler)?;
        Ok(AmpMetrics {
            loss_scale: s[scaler::SCALE] as f64,
            skipped_steps: s[scaler::SKIPPED].max(0.0) as u64,
        })
    }
}

/// Checkpoint metadata keys of the scaler state: the scale S (f32, shortest round-trip
/// decimal), the clean steps since the last growth or overflow, and the steps skipped so far.
pub const META_KEYS: [&str; 3] = ["amp.loss_scale", "amp.clean_steps", "amp.skipped_steps"];

impl<B: Backend> MixedState<B> {
    /// The scaler state as checkpoint metadata ([`META_KEYS`]; a read of 4 floats). The
    /// found-inf flag is clear between steps and not saved.
    pub fn save_meta(&self, b: &B, meta: &mut BTreeMap<String, String>) -> Result<()> {
        let s = b.read(&self.scaler)?;
        let slots = [s[scaler::SCALE], s[scaler::CLEAN], s[scaler::SKIPPED]];
        for (key, v) in META_KEYS.iter().zip(slots) {
            meta.insert(key.to_string(), v.to_string());
        }
        Ok(())
    }

    /// Restore the scaler state from checkpoint metadata: `Ok(false)` (state untouched, the
    /// scale fresh from the config) when the checkpoint predates the saved state (no key of
    /// [`META_KEYS`]); a key that is there but malformed or out of range is an error naming it.
    pub fn load_meta(
        &mut self,
        b: &B,
        meta: &BTreeMap<String, String>,
    ) -> std::result::Result<bool, MetaError> {
        let Some([scale, clean, skipped]) = parse_meta(meta)? else { return Ok(false) };
        let mut state = vec![0.0; scaler::LEN];
        state[scaler::SCALE] = scale;
        state[scaler::CLEAN] = clean;
        state[scaler::SKIPPED] = skipped;
        b.write(&mut self.scaler, &state)?;
        Ok(true)
    }
}

/// Why a checkpoint's scaler state cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A key of [`META_KEYS`] that is missing (when others are there), malformed or out of range.
    #[error("metadata `{key}` {why}")]
    Bad { key: &'static str, why: String },
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
}

/// The most a step count held in the f32 scaler state counts exactly (2^24).
const MAX_COUNT: f32 = 16_777_216.0;

/// The scaler state of checkpoint metadata: `None` when it holds none of [`META_KEYS`], else
/// `[scale, clean steps, skipped steps]`, each checked (the scale as `train.loss_scale` is,
/// the counts whole numbers in [0, 2^24]).
pub fn parse_meta(meta: &BTreeMap<String, String>) -> std::result::Result<Option<[f32; 3]>, MetaError> {
    if META_KEYS.iter().all(|k| !meta.contains_key(*k)) {
        return Ok(None);
    }
    let mut out = [0.0f32; 3];
    for (slot, &key) in out.iter_mut().zip(META_KEYS.iter()) {
        let bad = |why: String| MetaError::Bad { key, why };
        let text =
            meta.get(key).ok_or_else(|| bad("missing while the other scaler keys are there".into()))?;
        let not_a_number = || bad(format!("not a number: {text:?}"));
        let v: f32 = text.trim().parse().map_err(|_| not_a_number())?;
        // Counts are checked in f64: 16777217 must not round to 2^24 first.
        let wide: f64 = text.trim().parse().map_err(|_| not_a_number())?;
        let problem = match key {
            "amp.loss_scale" => crate::config::loss_scale_problem(v),
            _ if !((0.0..=f64::from(MAX_COUNT)).contains(&wide) && wide.fract() == 0.0) => {
                Some(format!("must be a whole number in [0, 2^24], got {text}"))
            }
            _ => None,
        };
        if let Some(why) = problem {
            return Err(bad(why));
        }
        *slot = v;
    }
    Ok(Some(out))
}

/// Forward, loss (and the step's minibatch sums), backward in mixed precision with every
/// gradient unscaled and checked in the backward pass ([`LossScale::Unscaled`]: in each weight
/// gradient's store where the backend fuses it; the same bits as [`unscale`] after it).
#[allow(clippy::too_many_arguments)]
pub fn record_gradient<B: Backend>(
    b: &B,
    model: &Mlp,
    params: &ParamSet<B>,
    x: &B::Buf,
    targets: &Targets<'_, B>,
    ws: &mut crate::model::Workspace<B>,
    m: &mut MixedState<B>,
    grads: &mut ParamSet<B>,
    sums: &mut StepSums<'_, B::Buf>,
) -> Result<()> {
    let (hw, scaler) = (&mut m.hw, LossScale::Unscaled(&mut m.scaler));
    model.loss_and_grad_half(b, params, x, targets, ws, hw, scaler, grads, Some(sums))
}

/// Every gradient × 1/S, raising the found-inf flag on an inf or NaN element. Data-parallel
/// and accumulated steps call it once, on the reduced (summed) loss-scaled gradient, so one
/// flag decides the skip for every replica. Across MPI ranks the flag travels with the
/// gradient: an inf or NaN in any replica's gradient leaves the sum non-finite (inf + x = inf,
/// inf − inf = NaN), and every rank unscales the same summed bits, so no rank needs another
/// exchange to skip the same steps.
pub fn unscale<B: Backend>(b: &B, m: &mut MixedState<B>, grads: &mut ParamSet<B>) -> Result<()> {
    let lens: Vec<usize> = (0..grads.tensors.len()).map(|i| grads.numel_of(i)).collect();
    let mut xs: Vec<(usize, &mut B::Buf)> = lens.into_iter().zip(grads.tensors.iter_mut()).collect();
    half_ops(b)?.amp_unscale_all(&mut m.scaler, &mut xs)
}

/// [`super::optimizer::apply_update`] that leaves every tensor (and the velocity) untouched when
/// the step found a non-finite gradient, then the scale update.
pub fn apply_update<B: Backend>(
    b: &B,
    params: &mut ParamSet<B>,
    grads: &ParamSet<B>,
    velocity: Option<&mut ParamSet<B>>,
    opt: &Optimizer,
    lr: f32,
    m: &mut MixedState<B>,
) -> Result<()> {
    let h = half_ops(b)?;
    let (rule, mut tensors) = super::optimizer::update_list(params, grads, velocity, opt, lr)?;
    h.amp_update_params(&rule, &m.scaler, &mut tensors)?;
    h.amp_update_scale(&m.growth, &mut m.scaler)
}

/// Make `st` train in the precision of `cfg.model.precision` (a training run, or a timing state
/// of sweep and profile). Replicas, micro-batches and MPI ranks share one scale: every rank
/// starts from rank 0's scaler state (`ranked::sync_start`) and unscales the same reduced
/// gradient, so the found-inf flag, the skip and the scale update are the same everywhere.
pub fn for_config<B: Backend>(b: &B, cfg: &Config, st: &mut TrainState<B>) -> Result<()> {
    if cfg.model.precision == Precision::F16 {
        let t = &cfg.train;
        st.mixed =
            Some(MixedState::new(b, &st.model, st.ws.rows, t.loss_scale, t.loss_scale_growth_interval)?);
    }
    Ok(())
}

/// The f16 fields of a metrics line (nothing for an f32 run).
pub fn annotate<B: Backend>(b: &B, st: &TrainState<B>, line: &mut MetricsLine) -> Result<()> {
    if let Some(m) = st.mixed.as_ref() {
        let a = m.read(b)?;
        line.loss_scale = Some(a.loss_scale);
        line.skipped_steps = Some(a.skipped_steps);
        // Overflowing at the least scale: no scale makes these steps finite in f16.
        if a.loss_scale <= f64::from(MIN_LOSS_SCALE)
            && a.skipped_steps > 0
            && !m.floor_warned.replace(true)
        {
            log::warn!(
                "f16: the loss scale is at its floor 2^-126 and steps still overflow ({} skipped by step {}): \
                 the gradients exceed f16's range at any scale; train in f32 or rescale the inputs",
                a.skipped_steps,
                line.step
            );
        }
    }
    Ok(())
}

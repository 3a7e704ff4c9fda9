//! Training a recurrent network by BPTT on a sequence task, with the diagnostics of 8.2.4–8.2.5
//! logged as it goes: per-time-step gradient norms ‖∂L/∂h_t‖, the spectral radius and top
//! singular value of W, clip events and loss spikes.
//!
//! One GPU submit per step: the T per-step row gathers of the minibatch, forward, loss, BPTT,
//! the per-step and per-tensor squared norms into a small metrics buffer, clipping and the
//! update are recorded together; the host reads the metrics (and W) back every `log_every` steps.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checkpoint::{self, Checkpoint};
use super::diagnostics::{backward_growth_per_step, spectral_radius, top_singular_value, SpikeDetector};
use super::optimizer::{Clip, Optimizer};
use super::TrainError;
use crate::backend::{Backend, Result};
use crate::config::RnnConfig;
use crate::config::Shuffle;
use crate::data::BatchOrder;
use crate::model::rnn::tensor;
use crate::model::{ParamSet, Rnn, Targets};
use crate::report::jsonl::JsonlWriter;

mod seqs;
mod state;

pub use seqs::{DeviceSeqs, RnnEvalSet};
pub use state::{slot, RnnStepMetrics, RnnTrainState};

/// One line of an RNN run's metrics.jsonl.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RnnMetricsLine {
    pub step: u64,
    pub epoch: u64,
    pub examples_seen: u64,
    /// Minibatch mean surrogate loss before the update.
    pub train_loss: f64,
    pub train_error: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_error: Option<f64>,
    /// ‖g‖ of the minibatch gradient before clipping.
    pub grad_norm: f64,
    pub lr: f64,
    /// Clip events (steps clipped by global norm) so far.
    pub clip_events: u64,
    /// Clip events since the previous logged step (with log_every = 1: whether this step was clipped).
    pub clipped_since_last: u64,
    /// The train loss exceeds `spike_factor` × the median of the recent logged losses.
    pub loss_spike: bool,
    /// ρ(W) and σ₁(W) of the parameters this step's gradient was taken at.
    pub spectral_radius: f64,
    pub top_singular: f64,
    /// `‖∂L/∂h_t‖`, t = 1..T.
    pub dh_norms: Vec<f64>,
    /// `-d ln‖∂L/∂h_t‖ / dt` (least squares): ln λ for an identity RNN with W = λQ.
    pub backward_growth: Option<f64>,
    pub elapsed_s: f64,
}

/// What one RNN run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RnnRunSummary {
    pub name: String,
    pub backend: String,
    pub device: String,
    pub params: usize,
    pub steps: u64,
    /// The step at which the loss or gradient became non-finite (training stopped there).
    pub diverged_at: Option<u64>,
    pub final_train_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    pub final_val_error: Option<f64>,
    /// Loss of the best input-blind predictor (1/12 adding, ln K copy).
    pub baseline_loss: f64,
    /// `train.clip_norm` as config.toml writes it (`0.3`, not its f32's 0.30000001192092896).
    pub clip_norm: f64,
    pub clip_events: u64,
    pub spikes: Vec<u64>,
    /// Spikes at a logged step that was clipped, or within `log_every` steps after one.
    pub spikes_near_clip: usize,
    /// `diagnostics.grad_threshold` (or `train.clip_norm`); 0 = not used.
    pub grad_threshold: f64,
    /// Logged steps with ‖g‖ above `grad_threshold` (what clipping at that norm would clip).
    pub large_grad_steps: usize,
    /// Spikes at, or one logged step after, a large-gradient step.
    pub spikes_after_large_grad: usize,
    /// The largest finite logged training loss (`None`: no logged loss was finite).
    pub max_train_loss: Option<f64>,
    pub w_init: String,
    /// `rnn.w_scale` as config.toml writes it.
    pub w_scale: f64,
    pub activation: String,
    pub spectral_radius_init: f64,
    pub top_singular_init: f64,
    pub spectral_radius_final: f64,
    pub top_singular_final: f64,
    /// Backward growth per step of ‖∂L/∂h_t‖ at the first logged step (the initialisation).
    pub growth_init: Option<f64>,
    pub growth_final: Option<f64>,
    /// ln ρ(W at init): the growth an identity RNN must show.
    pub growth_theory: f64,
    pub dh_norms_init: Vec<f64>,
    pub dh_norms_final: Vec<f64>,
    pub elapsed_s: f64,
    pub steps_per_s: f64,
}

/// Parameters as checkpoint tensors (names `rnn.W`, ..., shapes from the ParamSet).
pub fn params_checkpoint<B: Backend>(
    b: &B,
    p: &ParamSet<B>,
    meta: &[(&str, String)],
) -> Result<Checkpoint> {
    let mut ck = Checkpoint::new();
    for (i, host) in p.to_host(b)?.into_iter().enumerate() {
        ck.push(p.names[i].clone(), p.shapes[i].clone(), host);
    }
    for (k, v) in meta {
        ck.metadata.insert(k.to_string(), v.clone());
    }
    Ok(ck)
}

/// The most logged lines [`run_rnn`] returns with their per-t norms (`dh_norms`; the others'
/// are empty), the newest besides: a run of 10⁶ logged steps of 100 time steps held 800 MB of
/// them.
pub const KEPT_DH_NORMS: u64 = 64;

/// Train the RNN of `cfg` into `run_dir` (metrics.jsonl, init/last checkpoints, summary.json).
/// A run whose loss becomes non-finite stops there and says so in the summary (`diverged_at`):
/// that is a result of the cliff experiment, not an error. Returns the summary and the lines
/// (per-t norms in about [`KEPT_DH_NORMS`] of them, evenly spaced: the first, the last and
/// the last finite one included).
pub fn run_rnn<B: Backend>(
    b: &B,
    cfg: &RnnConfig,
    name: &str,
    run_dir: &Path,
    progress: bool,
) -> std::result::Result<(RnnRunSummary, Vec<RnnMetricsLine>), TrainError> {
    let t0 = Instant::now();
    std::fs::create_dir_all(run_dir)
        .map_err(|e| TrainError::Setup(format!("cannot create {}: {e}", run_dir.display())))?;
    let seq = cfg.seq_spec();
    let model = Rnn::new(cfg.rnn_spec())?;
    let (h, steps_t) = (model.spec.hidden, model.spec.steps);
    let (train, val) = seq.train_val(cfg.sequence.n_train, cfg.sequence.n_val)?;
    let batch = cfg.train.batch_size;
    let opt = Optimizer::new(cfg.train.optimizer, cfg.train.momentum, cfg.train.weight_decay);
    let clip = Clip { norm: cfg.train.clip_norm, value: cfg.train.clip_value };
    let lr = cfg.train.lr;
    let iters = cfg.diagnostics.power_iters;
    let cfg_toml = cfg.to_toml();

    let data = DeviceSeqs::upload(b, &train)?;
    let mut val_set = if val.n > 0 { Some(RnnEvalSet::new(b, &model, &val, 1024)?) } else { None };
    drop((train, val));
    let params = model.init(b, &cfg.rnn_init())?;
    checkpoint::save(
        &run_dir.join("init.safetensors"),
        &params_checkpoint(
            b,
            &params,
            &[("step", "0".into()), ("config", cfg_toml.clone()), ("model", "rnn".into())],
        )?,
    )?;
    let mut st = RnnTrainState::new(b, model.clone(), params, batch, &opt)?;

    let mut xs: Vec<B::Buf> = (0..steps_t).map(|_| b.zeros(batch * data.dim)).collect::<Result<_>>()?;
    let mut idx = b.upload_idx(&vec![0u32; batch])?;
    let mut labels = b.upload_idx(&vec![0u32; batch])?;
    let mut values = b.zeros(batch * data.outputs)?;
    let mut order = BatchOrder::new(Shuffle::Epoch, false, cfg.train.seed, data.n, None);
    let steps_per_epoch = (data.n / batch).max(1) as u64;

    let w_of = |st: &RnnTrainState<B>| -> Result<Vec<f32>> {
        let mut w = b.read(&st.params.tensors[tensor::W])?;
        w.truncate(h * h);
        Ok(w)
    };
    let w0 = w_of(&st)?;
    let (rho0, sigma0) = (spectral_radius(&w0, h, iters), top_singular_value(&w0, h, iters));

    let mut metrics = JsonlWriter::create(&run_dir.join("metrics.jsonl"))?;
    let mut lines: Vec<RnnMetricsLine> = Vec::new();
    // Lines at multiples of `dh_stride` keep their per-t norms (`dh_kept` of them, the newest
    // not counted), and the newest; at KEPT_DH_NORMS every other one's go and the stride
    // doubles, whatever the run's length and wherever it stops.
    let (mut dh_stride, mut dh_kept) = (1usize, 0u64);
    let mut spikes = SpikeDetector::new(cfg.diagnostics.spike_factor, cfg.diagnostics.spike_window);
    let mut last_clip_events = 0u64;
    let mut diverged_at = None;
    let bar = crate::report::progress::bar(progress, cfg.train.steps, name, "steps");
    let run_start = Instant::now();
    let mut step = 0u64;
    while step < cfg.train.steps {
        let (epoch, in_epoch) = (step / steps_per_epoch, (step % steps_per_epoch) as usize);
        let next = step + 1;
        let log_now = next == 1 || next.is_multiple_of(cfg.train.log_every) || next == cfg.train.steps;
        let eval_now = cfg.train.eval_every > 0 && next.is_multiple_of(cfg.train.eval_every);
        // W before the update: the spectrum belongs to the parameters the gradient is taken at.
        let read_now = log_now || eval_now;
        let w_before = if read_now { Some(w_of(&st)?) } else { None };
        let batch_idx = order
            .batch(epoch, in_epoch, batch)
            .ok_or_else(|| TrainError::Setup(format!("no minibatch {in_epoch} in epoch {epoch}")))?
            .to_vec();
        b.write_idx(&mut idx, &batch_idx)?;
        for (t, x) in xs.iter_mut().enumerate() {
            b.gather_rows(batch, data.dim, &data.xs[t], &idx, x)?;
        }
        if data.classification {
            b.gather_idx(batch, &data.labels, &idx, &mut labels)?;
        } else {
            b.gather_rows(batch, data.outputs, &data.values, &idx, &mut values)?;
        }
        let targets =
            if data.classification { Targets::Classes(&labels) } else { Targets::Values(&values) };
        st.record_step(b, &xs, &targets, &opt, lr, &clip, read_now)?;
        b.flush()?;
        step = next;
        bar.set_position(step);
        let Some(w) = w_before else { continue };
        let m = st.read_metrics(b)?;
        let finite = m.loss.is_finite() && m.grad_norm.is_finite();
        let (val_loss, val_error) = match (eval_now && finite, val_set.as_mut()) {
            (true, Some(v)) => {
                let (l, e) = v.evaluate(b, &model, &st.params)?;
                (Some(l), data.classification.then_some(e))
            }
            _ => (None, None),
        };
        let line = RnnMetricsLine {
            step,
            epoch,
            examples_seen: step * batch as u64,
            train_loss: m.loss,
            train_error: data.classification.then_some(m.error),
            val_loss,
            val_error,
            grad_norm: m.grad_norm,
            lr: crate::stats::f32_as_written(lr),
            clip_events: m.clip_events,
            clipped_since_last: m.clip_events - last_clip_events.min(m.clip_events),
            loss_spike: spikes.push(m.loss),
            spectral_radius: spectral_radius(&w, h, iters),
            top_singular: top_singular_value(&w, h, iters),
            backward_growth: backward_growth_per_step(&m.dh_norms),
            dh_norms: m.dh_norms,
            elapsed_s: run_start.elapsed().as_secs_f64(),
        };
        last_clip_events = m.clip_events;
        bar.set_message(format!(
            "loss {:.4} |g| {:.3} clips {}",
            line.train_loss, line.grad_norm, line.clip_events
        ));
        metrics.write(&line)?;
        let finite_now = line.train_loss.is_finite();
        lines.push(line);
        // Per-t norms of a bounded few lines (metrics.jsonl has every one): every
        // `dh_stride`-th, and the newest; the last finite line keeps them on a divergence.
        let n = lines.len();
        if n >= 2 && finite_now {
            match (n - 2).is_multiple_of(dh_stride) {
                true => dh_kept += 1,
                false => lines[n - 2].dh_norms = Vec::new(),
            }
            if dh_kept >= KEPT_DH_NORMS {
                for i in (dh_stride..n - 1).step_by(2 * dh_stride) {
                    lines[i].dh_norms = Vec::new();
                }
                dh_stride *= 2;
                dh_kept = ((n - 2) / dh_stride + 1) as u64;
            }
        }
        if !finite {
            diverged_at = Some(step);
            break;
        }
    }
    bar.finish_and_clear();
    metrics.sync()?;
    drop(metrics);
    b.sync()?;
    let w_end = w_of(&st)?;
    let last_meta = [("step", step.to_string()), ("config", cfg_toml), ("model", "rnn".to_string())];
    let last_ck = params_checkpoint(b, &st.params, &last_meta)?;
    // A diverged variant's parameters are not finite: no checkpoint of them (batchscope
    // refuses to load one); its init.safetensors and metrics.jsonl hold the run.
    match last_ck.tensors.iter().find(|t| t.data.iter().any(|v| !v.is_finite())) {
        None => checkpoint::save(&run_dir.join("last.safetensors"), &last_ck)?,
        Some(t) => {
            log::info!("rnn run {name}: {} is not finite at step {step}; no last.safetensors", t.name)
        }
    }
    let (final_val_loss, final_val_error) = match (diverged_at, val_set.as_mut()) {
        (None, Some(v)) => {
            let (l, e) = v.evaluate(b, &model, &st.params)?;
            (Some(l), data.classification.then_some(e))
        }
        _ => (None, None),
    };
    let elapsed = run_start.elapsed().as_secs_f64();
    let spike_steps: Vec<u64> = lines.iter().filter(|l| l.loss_spike).map(|l| l.step).collect();
    let clipped_steps: Vec<u64> =
        lines.iter().filter(|l| l.clipped_since_last > 0).map(|l| l.step).collect();
    let window = cfg.train.log_every;
    let near = spike_steps
        .iter()
        .filter(|&&s| clipped_steps.iter().any(|&c| c <= s && s - c <= window))
        .count();
    let threshold = if cfg.diagnostics.grad_threshold > 0.0 {
        cfg.diagnostics.grad_threshold
    } else {
        crate::stats::f32_as_written(cfg.train.clip_norm)
    };
    let large: Vec<bool> = lines.iter().map(|l| threshold > 0.0 && l.grad_norm > threshold).collect();
    let after_large = (0..lines.len())
        .filter(|&i| lines[i].loss_spike && (large[i] || (i > 0 && large[i - 1])))
        .count();
    let first = lines.first();
    let last = lines.iter().rev().find(|l| l.train_loss.is_finite());
    let summary = RnnRunSummary {
        name: name.to_string(),
        backend: format!("{:?}", b.kind()).to_lowercase(),
        device: b.device_name(),
        params: model.num_params(),
        steps: step,
        diverged_at,
        final_train_loss: last.map(|l| l.train_loss),
        final_val_loss,
        final_val_error,
        baseline_loss: seq.baseline_loss(),
        clip_norm: crate::stats::f32_as_written(cfg.train.clip_norm),
        clip_events: lines.last().map_or(0, |l| l.clip_events),
        spikes: spike_steps,
        spikes_near_clip: near,
        grad_threshold: threshold,
        large_grad_steps: large.iter().filter(|&&l| l).count(),
        spikes_after_large_grad: after_large,
        max_train_loss: lines.iter().map(|l| l.train_loss).filter(|v| v.is_finite()).reduce(f64::max),
        w_init: cfg.rnn.w_init.name().to_string(),
        w_scale: crate::stats::f32_as_written(cfg.rnn.w_scale),
        activation: cfg.rnn.activation.name().to_string(),
        spectral_radius_init: rho0,
        top_singular_init: sigma0,
        spectral_radius_final: spectral_radius(&w_end, h, iters),
        top_singular_final: top_singular_value(&w_end, h, iters),
        growth_init: first.and_then(|l| l.backward_growth),
        growth_final: last.and_then(|l| l.backward_growth),
        growth_theory: rho0.ln(),
        dh_norms_init: first.map(|l| l.dh_norms.clone()).unwrap_or_default(),
        dh_norms_final: last.map(|l| l.dh_norms.clone()).unwrap_or_default(),
        elapsed_s: elapsed,
        steps_per_s: step as f64 / elapsed.max(1e-9),
    };
    crate::report::jsonl::write_pretty(&run_dir.join("summary.json"), &summary)?;
    log::info!("rnn run {name} finished in {:.1}s", t0.elapsed().as_secs_f64());
    Ok((summary, lines))
}

//! The `train` command: minibatch SGD over resident or streamed data, surrogate loss optimised
//! while the 0-1 loss is watched, early stopping on validation 0-1 error, clipping, NaN guard,
//! checkpoints, resume, metrics.jsonl, summary.json and plots.
//!
//! One GPU submit per step: batch gather (or generation), forward, per-example losses, backward,
//! metric reductions, clipping and the update are recorded together; the host reads the small
//! metrics buffer back every `log_every` steps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;

use super::checkpoint::{self, Checkpoint, CheckpointError, NamedTensor};
use super::step::{Clip, Optimizer, TrainState};
use crate::backend::{Backend, BackendError, GenSpec};
use crate::config::{BatchSize, Config, DataMode, LrSchedule};
use crate::data::device::{BatchBuffers, DeviceDataset};
use crate::data::{self, BatchOrder, DataError, Dataset, Labels};
use crate::model::{Mlp, ParamSet, Targets, Workspace};
use crate::report::jsonl::JsonlWriter;
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::ReportError;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("{0}")]
    Setup(String),
    #[error("training diverged at step {step} ({what} is not finite); the last good checkpoint is {last_good}")]
    Diverged { step: u64, what: String, last_good: String },
}

/// Where a run starts from and what it shows.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Start from these weights (`layers.{i}.weight/bias`).
    pub init: Option<PathBuf>,
    /// Continue the run in this directory from its `last.safetensors`.
    pub resume: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// One line of metrics.jsonl.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct MetricsLine {
    pub step: u64,
    pub epoch: u64,
    pub examples_seen: u64,
    /// Minibatch mean surrogate loss before the update.
    pub train_loss: f64,
    /// Minibatch mean 0-1 error before the update (classification).
    pub train_error: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_error: Option<f64>,
    /// Loss over the whole training set (with `train.eval_train`).
    #[serde(default)]
    pub train_full_loss: Option<f64>,
    /// 0-1 error over the whole training set (with `train.eval_train`).
    #[serde(default)]
    pub train_full_error: Option<f64>,
    /// ‖g‖ of the minibatch gradient before clipping.
    pub grad_norm: f64,
    pub lr: f64,
    pub clip_events: u64,
    pub elapsed_s: f64,
    /// Curvature monitor (every `monitor.curvature_every` steps): gᵀg of the minibatch gradient.
    #[serde(default, rename = "gTg", skip_serializing_if = "Option::is_none")]
    pub gtg: Option<f64>,
    /// gᵀHg, the curvature along the gradient (exact Hessian, R-operator).
    #[serde(default, rename = "gTHg", skip_serializing_if = "Option::is_none")]
    pub gthg: Option<f64>,
    /// ε* = gᵀg / gᵀHg: the step size that minimises the quadratic model along −g.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps_star: Option<f64>,
    /// Eq. 8.10 for the step −lr·g: ΔL̂ = −lr gᵀg + ½ lr² gᵀHg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_delta_loss: Option<f64>,
    /// The minibatch loss after the update minus before (same minibatch; the step taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_delta_loss: Option<f64>,
    /// ½ lr² gᵀHg > lr gᵀg: the step is too large for the curvature (it would raise the loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_too_large: Option<bool>,
    /// Noise monitor: B_simple = tr Σ / |G|² from EMAs of the unbiased two-batch estimators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_simple: Option<f64>,
    /// This step's unbiased |G|² estimate (before smoothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_g2: Option<f64>,
    /// This step's unbiased tr Σ estimate (before smoothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_trace: Option<f64>,
}

/// Buffers of the in-training noise-scale estimate: the gradient of the first `rows` examples
/// of the minibatch, at the parameters before the update.
struct NoiseProbe<B: Backend> {
    bt: BatchBuffers<B>,
    ws: Workspace<B>,
    grads: ParamSet<B>,
    /// `[tensors]` squared norms of the small-batch gradient.
    stats: B::Buf,
    ema: crate::noise::NoiseScaleEma,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    pub command: &'static str,
    pub backend: String,
    pub device: String,
    pub params: usize,
    pub batch_size: usize,
    pub steps: u64,
    pub epochs_completed: u64,
    pub examples_seen: u64,
    pub stopped_reason: String,
    pub final_train_loss: Option<f64>,
    pub final_train_error: Option<f64>,
    pub final_val_loss: Option<f64>,
    pub final_val_error: Option<f64>,
    pub best_val_error: Option<f64>,
    pub best_step: Option<u64>,
    pub restored_best: bool,
    pub clip_events: u64,
    pub elapsed_s: f64,
    /// Wall time of the training steps alone (this session; evaluations and checkpoints excluded).
    pub train_s: f64,
    pub examples_per_s: f64,
    pub peak_rss_mib: Option<f64>,
}

/// Counters that a checkpoint carries so a resumed run continues exactly.
#[derive(Clone, Debug, Default)]
struct Progress {
    step: u64,
    epoch: u64,
    step_in_epoch: u64,
    examples_seen: u64,
    best_val_error: Option<f64>,
    best_step: Option<u64>,
    evals_since_best: u64,
    elapsed_s: f64,
}

/// The training set on the device.
enum Source<B: Backend> {
    Resident { data: DeviceDataset<B>, order: BatchOrder },
    Stream { spec: GenSpec, table: B::Buf, n: u64 },
}

/// The validation set, in chunks with their own workspaces.
struct ValSet<B: Backend> {
    chunks: Vec<ValChunk<B>>,
    n: usize,
    /// `[2 * chunks]`: loss sum and correct sum per chunk.
    stats: B::Buf,
}

struct ValChunk<B: Backend> {
    x: B::Buf,
    labels: B::IdxBuf,
    targets: B::Buf,
    ws: Workspace<B>,
}

const VAL_CHUNK: usize = 1024;

fn classification(labels: &Labels) -> bool {
    matches!(labels, Labels::Classes { .. })
}

fn val_set<B: Backend>(b: &B, model: &Mlp, val: &Dataset) -> Result<Option<ValSet<B>>, TrainError> {
    if val.n == 0 {
        return Ok(None);
    }
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < val.n {
        let rows = VAL_CHUNK.min(val.n - start);
        let x = b.upload(&val.x[start * val.dim..(start + rows) * val.dim])?;
        let (labels, targets) = match &val.targets {
            Labels::Classes { labels, .. } => (b.upload_idx(&labels[start..start + rows])?, b.zeros(1)?),
            Labels::Values { targets, outputs } => {
                (b.upload_idx(&[0])?, b.upload(&targets[start * outputs..(start + rows) * outputs])?)
            }
        };
        chunks.push(ValChunk { x, labels, targets, ws: model.workspace(b, rows)? });
        start += rows;
    }
    let stats = b.zeros(2 * chunks.len())?;
    Ok(Some(ValSet { chunks, n: val.n, stats }))
}

/// Mean validation loss and 0-1 error (one read back).
fn evaluate<B: Backend>(
    b: &B,
    model: &Mlp,
    p: &ParamSet<B>,
    v: &mut ValSet<B>,
) -> Result<(f64, f64), TrainError> {
    for (i, c) in v.chunks.iter_mut().enumerate() {
        model.forward(b, p, &c.x, &mut c.ws)?;
        let t = if model.spec.loss == crate::model::LossKind::SoftmaxXent {
            Targets::Classes(&c.labels)
        } else {
            Targets::Values(&c.targets)
        };
        model.loss(b, &t, &mut c.ws)?;
        let rows = c.ws.rows;
        b.sum(rows, &c.ws.loss, &mut v.stats, 2 * i)?;
        b.sum(rows, &c.ws.correct, &mut v.stats, 2 * i + 1)?;
    }
    let s = b.read(&v.stats)?;
    let loss: f64 = s.iter().step_by(2).map(|&x| x as f64).sum();
    let correct: f64 = s.iter().skip(1).step_by(2).map(|&x| x as f64).sum();
    Ok((loss / v.n as f64, 1.0 - correct / v.n as f64))
}

fn lr_at(cfg: &Config, epoch: u64) -> f32 {
    match cfg.train.lr_schedule {
        LrSchedule::Constant => cfg.train.lr,
        LrSchedule::Step => {
            let k = epoch / cfg.train.lr_step_epochs.max(1) as u64;
            cfg.train.lr * cfg.train.lr_decay.powi(k.min(i32::MAX as u64) as i32)
        }
    }
}

/// Peak resident set size of this process (Linux), MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Tensors and counters of a checkpoint.
fn to_checkpoint<B: Backend>(
    b: &B,
    st: &TrainState<B>,
    params: &ParamSet<B>,
    prog: &Progress,
    clip_events: u64,
    cfg_toml: &str,
) -> Result<Checkpoint, TrainError> {
    let mut tensors = Vec::new();
    for (i, host) in params.to_host(b)?.into_iter().enumerate() {
        tensors.push(NamedTensor {
            name: params.names[i].clone(),
            shape: params.shapes[i].clone(),
            data: host,
        });
    }
    if let Some(v) = &st.velocity {
        for (i, host) in v.to_host(b)?.into_iter().enumerate() {
            tensors.push(NamedTensor {
                name: format!("optimizer.velocity.{}", v.names[i]),
                shape: v.shapes[i].clone(),
                data: host,
            });
        }
    }
    let mut m = BTreeMap::new();
    m.insert("step".into(), prog.step.to_string());
    m.insert("epoch".into(), prog.epoch.to_string());
    m.insert("step_in_epoch".into(), prog.step_in_epoch.to_string());
    m.insert("examples_seen".into(), prog.examples_seen.to_string());
    m.insert("evals_since_best".into(), prog.evals_since_best.to_string());
    m.insert("elapsed_s".into(), format!("{:.6}", prog.elapsed_s));
    m.insert("clip_events".into(), clip_events.to_string());
    if let Some(e) = prog.best_val_error {
        m.insert("best_val_error".into(), format!("{e:e}"));
    }
    if let Some(s) = prog.best_step {
        m.insert("best_step".into(), s.to_string());
    }
    // The batch order is a pure function of (train.seed, epoch): these restore the RNG state.
    m.insert(
        "rng".into(),
        "order = permutation(train.seed, epoch); stream = philox(data.seed, example)".into(),
    );
    m.insert("config".into(), cfg_toml.to_string());
    m.insert("backend".into(), b.device_name());
    Ok(Checkpoint { tensors, metadata: m, source: None })
}

fn meta<T: std::str::FromStr>(ck: &Checkpoint, key: &str, path: &Path) -> Result<T, TrainError> {
    ck.metadata.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
        TrainError::Setup(format!(
            "checkpoint {}: metadata `{key}` is missing or malformed",
            path.display()
        ))
    })
}

/// Overwrite `params` from a checkpoint's `prefix + name` tensors (shapes checked).
pub fn load_into<B: Backend>(
    b: &B,
    ck: &Checkpoint,
    path: &Path,
    prefix: &str,
    params: &mut ParamSet<B>,
) -> Result<(), TrainError> {
    for i in 0..params.tensors.len() {
        let name = format!("{prefix}{}", params.names[i]);
        let t = ck.expect_shape(&name, &params.shapes[i])?;
        b.write(&mut params.tensors[i], &t.data)?;
    }
    let _ = path;
    Ok(())
}

/// Train per `cfg` into `run_dir` on backend `b`.
pub fn run_train<B: Backend>(
    b: &B,
    cfg: &Config,
    opts: &TrainOptions,
    run_dir: &Path,
) -> Result<TrainSummary, TrainError> {
    let t0 = Instant::now();
    let batch = match cfg.train.batch_size {
        BatchSize::Fixed(n) => n,
        BatchSize::Auto => {
            return Err(TrainError::Setup(
                "train.batch_size = \"auto\" must be resolved by a sweep before training (the CLI does this)".into(),
            ))
        }
    };
    let model = Mlp::new(cfg.mlp_spec())?;
    let opt = Optimizer::of(&cfg.train);
    let clip = Clip { norm: cfg.train.clip_norm, value: cfg.train.clip_value };
    let cfg_toml = cfg.to_toml();
    let outputs = cfg.data_outputs();

    // ---- data ------------------------------------------------------------------------------
    let mut train_eval: Option<ValSet<B>> = None;
    let (source, val_data, n_train, is_class) = match cfg.data.mode {
        DataMode::Resident => {
            let (train, val) = data::build_resident(&cfg.data, outputs)?;
            if cfg.train.eval_train {
                train_eval = val_set(b, &model, &train)?;
            }
            if train.dim != model.inputs() {
                return Err(TrainError::Setup(format!(
                    "data has {} features but the model expects {} (data.dim)",
                    train.dim,
                    model.inputs()
                )));
            }
            let is_class = classification(&train.targets);
            let host_labels = match &train.targets {
                Labels::Classes { labels, .. } => Some(labels.as_slice()),
                Labels::Values { .. } => None,
            };
            let order = BatchOrder::new(
                cfg.train.shuffle,
                cfg.train.sorted_by_label,
                cfg.train.seed,
                train.n,
                host_labels,
            );
            let n = train.n as u64;
            (Source::Resident { data: DeviceDataset::upload(b, &train)?, order }, val, n, is_class)
        }
        DataMode::Stream => {
            let spec = data::gen_spec(&cfg.data).ok_or_else(|| {
                TrainError::Setup("data.mode = \"stream\" needs a synthetic data.kind".into())
            })?;
            let table = b.upload(&data::gen_table(&cfg.data))?;
            let val = data::build_validation(&cfg.data, outputs)?;
            let is_class = cfg.model.loss == crate::model::LossKind::SoftmaxXent;
            (Source::Stream { spec, table, n: cfg.data.n_train }, val, cfg.data.n_train, is_class)
        }
    };
    if batch as u64 > n_train {
        return Err(TrainError::Setup(format!(
            "train.batch_size = {batch} exceeds the {n_train} training examples"
        )));
    }
    let steps_per_epoch = n_train / batch as u64;
    let mut val = val_set(b, &model, &val_data)?;
    drop(val_data);

    // ---- model state -----------------------------------------------------------------------
    let params = model.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale)?;
    let mut st = TrainState::new(b, model.clone(), params, batch, &opt)?;
    let mut prog = Progress::default();
    let mut best: Option<ParamSet<B>> = None;
    let last_path = run_dir.join("last.safetensors");
    let best_path = run_dir.join("best.safetensors");
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut clip_base = 0u64;
    if let Some(init) = &opts.init {
        let ck = checkpoint::load(init)?;
        load_into(b, &ck, init, "", &mut st.params)?;
    }
    let mut metrics = if opts.resume {
        let ck = checkpoint::load(&last_path)?;
        load_into(b, &ck, &last_path, "", &mut st.params)?;
        if let Some(v) = st.velocity.as_mut() {
            load_into(b, &ck, &last_path, "optimizer.velocity.", v)?;
        }
        prog.step = meta(&ck, "step", &last_path)?;
        prog.epoch = meta(&ck, "epoch", &last_path)?;
        prog.step_in_epoch = meta(&ck, "step_in_epoch", &last_path)?;
        prog.examples_seen = meta(&ck, "examples_seen", &last_path)?;
        prog.evals_since_best = meta(&ck, "evals_since_best", &last_path)?;
        prog.elapsed_s = meta(&ck, "elapsed_s", &last_path)?;
        prog.best_val_error = ck.metadata.get("best_val_error").and_then(|v| v.parse().ok());
        prog.best_step = ck.metadata.get("best_step").and_then(|v| v.parse().ok());
        clip_base = meta(&ck, "clip_events", &last_path)?;
        if best_path.exists() {
            let bk = checkpoint::load(&best_path)?;
            let mut bp = st.params.zeros_like(b)?;
            load_into(b, &bk, &best_path, "", &mut bp)?;
            best = Some(bp);
        }
        truncate_metrics(&metrics_path, prog.step)?;
        JsonlWriter::append(&metrics_path)?
    } else {
        JsonlWriter::create(&metrics_path)?
    };
    let mut last_good = if opts.resume { Some(last_path.clone()) } else { None };

    // ---- batch buffers ---------------------------------------------------------------------
    let mut bt = BatchBuffers::new(b, batch, model.inputs(), outputs)?;
    let mut noise = if cfg.monitor.noise_every > 0 {
        let rows = if cfg.monitor.noise_small_batch > 0 {
            cfg.monitor.noise_small_batch
        } else {
            (batch / 4).max(1)
        };
        Some(NoiseProbe::<B> {
            bt: BatchBuffers::new(b, rows, model.inputs(), outputs)?,
            ws: model.workspace(b, rows)?,
            grads: st.params.zeros_like(b)?,
            stats: b.zeros(st.params.tensors.len())?,
            ema: crate::noise::NoiseScaleEma::new(cfg.monitor.noise_ema),
        })
    } else {
        None
    };
    let mut source = source;

    let max_steps = if cfg.train.steps > 0 { cfg.train.steps } else { u64::MAX };
    let max_epochs = if cfg.train.one_pass {
        1
    } else if cfg.train.epochs > 0 {
        cfg.train.epochs as u64
    } else {
        u64::MAX
    };
    let total_steps = max_steps.min(max_epochs.saturating_mul(steps_per_epoch));
    let bar = progress_bar(opts.progress, total_steps, prog.step);
    let run_start = Instant::now();
    // Time spent evaluating and checkpointing, excluded from `train_s`.
    let mut side_s = 0.0f64;
    let elapsed_before = prog.elapsed_s;
    let mut last_line: Option<MetricsLine> = None;
    let mut stopped_reason = String::new();
    let mut restored_best = false;

    'outer: while prog.epoch < max_epochs {
        let lr = lr_at(cfg, prog.epoch);
        while prog.step_in_epoch < steps_per_epoch {
            if prog.step >= max_steps {
                stopped_reason = format!("reached train.steps = {max_steps}");
                break 'outer;
            }
            let noise_now =
                cfg.monitor.noise_every > 0 && (prog.step + 1) % cfg.monitor.noise_every == 0;
            if let (true, Some(np)) = (noise_now, noise.as_mut()) {
                // The first rows of this minibatch, at the parameters before the update.
                fill_batch_rows(b, &mut source, &mut np.bt, prog.epoch, prog.step_in_epoch, batch)?;
                let t = if is_class {
                    Targets::Classes(&np.bt.labels)
                } else {
                    Targets::Values(&np.bt.targets)
                };
                model.loss_and_grad(b, &st.params, &np.bt.x, &t, &mut np.ws, &mut np.grads)?;
                np.grads.sum_sq_into(b, &mut np.stats, 0)?;
            }
            fill_batch(b, &mut source, &mut bt, prog.epoch, prog.step_in_epoch, steps_per_epoch)?;
            let targets =
                if is_class { Targets::Classes(&bt.labels) } else { Targets::Values(&bt.targets) };
            let k = cfg.monitor.curvature_every;
            let monitor_now = k > 0 && (prog.step + 1) % k == 0;
            // Whether this step's metrics will be read (then its gradient norm is needed).
            let next = prog.step + 1;
            let epoch_end_next = prog.step_in_epoch + 1 == steps_per_epoch;
            let eval_next = val.is_some()
                && if cfg.train.eval_every > 0 {
                    next % cfg.train.eval_every == 0
                } else {
                    epoch_end_next
                };
            st.measure_grad_norm = next % cfg.train.log_every == 0
                || eval_next
                || monitor_now
                || noise_now
                || next == total_steps;
            if monitor_now {
                st.record_step_monitored(b, &bt.x, &targets, &opt, lr, &clip)?;
            } else {
                st.record_step(b, &bt.x, &targets, &opt, lr, &clip)?;
            }
            b.flush()?;
            prog.step += 1;
            prog.step_in_epoch += 1;
            prog.examples_seen += batch as u64;
            let epoch_end = prog.step_in_epoch == steps_per_epoch;
            let eval_now = val.is_some()
                && if cfg.train.eval_every > 0 {
                    prog.step % cfg.train.eval_every == 0
                } else {
                    epoch_end
                };
            let log_now = prog.step % cfg.train.log_every == 0
                || eval_now
                || monitor_now
                || noise_now
                || prog.step == total_steps;
            if !log_now {
                continue;
            }
            let m = st.read_metrics(b)?;
            let elapsed = elapsed_before + run_start.elapsed().as_secs_f64();
            if !m.loss.is_finite() || !m.grad_norm.is_finite() {
                let what = if !m.loss.is_finite() {
                    format!("train_loss = {}", m.loss)
                } else {
                    format!("grad_norm = {}", m.grad_norm)
                };
                bar.finish_and_clear();
                write_summary_diverged(run_dir, b, &model, batch, &prog, &what)?;
                return Err(TrainError::Diverged {
                    step: prog.step,
                    what,
                    last_good: last_good
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "none (it diverged before the first checkpoint)".into()),
                });
            }
            let side_start = Instant::now();
            let (mut val_loss, mut val_error) = (None, None);
            let (mut train_full_loss, mut train_full_error) = (None, None);
            if eval_now {
                if let Some(t) = train_eval.as_mut() {
                    let (l, e) = evaluate(b, &model, &st.params, t)?;
                    train_full_loss = Some(l);
                    train_full_error = is_class.then_some(e);
                }
            }
            let mut improved = false;
            if eval_now {
                if let Some(v) = val.as_mut() {
                    let (l, e) = evaluate(b, &model, &st.params, v)?;
                    val_loss = Some(l);
                    if is_class {
                        val_error = Some(e);
                        improved = prog.best_val_error.is_none_or(|best| e < best);
                        if improved {
                            prog.best_val_error = Some(e);
                            prog.best_step = Some(prog.step);
                            prog.evals_since_best = 0;
                            let bp = match best.take() {
                                Some(mut bp) => {
                                    bp.copy_from(b, &st.params)?;
                                    bp
                                }
                                None => {
                                    let mut bp = st.params.zeros_like(b)?;
                                    bp.copy_from(b, &st.params)?;
                                    bp
                                }
                            };
                            best = Some(bp);
                        } else {
                            prog.evals_since_best += 1;
                        }
                    }
                }
            }
            let clip_events = clip_base + m.clip_events;
            let curv = if monitor_now { Some(st.read_curvature(b)?) } else { None };
            let (mut b_simple, mut noise_g2, mut noise_trace) = (None, None, None);
            if let (true, Some(np)) = (noise_now, noise.as_mut()) {
                let g2s: f64 = b.read(&np.stats)?.iter().map(|&v| v as f64).sum();
                let g2b = m.grad_norm * m.grad_norm;
                if let Some((g2, tr)) =
                    crate::noise::two_batch_estimates(np.bt.rows as f64, g2s, batch as f64, g2b)
                {
                    noise_g2 = Some(g2);
                    noise_trace = Some(tr);
                    b_simple = np.ema.update(g2, tr);
                }
            }
            let eps = lr as f64;
            let line = MetricsLine {
                gtg: curv.map(|c| c.gtg),
                gthg: curv.map(|c| c.gthg),
                eps_star: curv.map(|c| c.gtg / c.gthg),
                predicted_delta_loss: curv.map(|c| -eps * c.gtg + 0.5 * eps * eps * c.gthg),
                actual_delta_loss: curv.map(|c| c.loss_after - m.loss),
                step_too_large: curv.map(|c| 0.5 * eps * eps * c.gthg > eps * c.gtg),
                b_simple,
                noise_g2,
                noise_trace,
                step: prog.step,
                epoch: prog.epoch,
                examples_seen: prog.examples_seen,
                train_loss: m.loss,
                train_error: is_class.then_some(m.error),
                val_loss,
                val_error,
                train_full_loss,
                train_full_error,
                grad_norm: m.grad_norm,
                lr: lr as f64,
                clip_events,
                elapsed_s: elapsed,
            };
            metrics.write(&line)?;
            bar.set_position(prog.step);
            bar.set_message(format!(
                "loss {:.4} | {:.0} ex/s{}",
                m.loss,
                (prog.examples_seen as f64) / elapsed.max(1e-9),
                val_error.map(|e| format!(" | val err {:.2}%", 100.0 * e)).unwrap_or_default()
            ));
            log::debug!("step {} loss {:.5} grad_norm {:.4}", prog.step, m.loss, m.grad_norm);
            last_line = Some(line);
            prog.elapsed_s = elapsed;
            if improved {
                let ck = to_checkpoint(
                    b,
                    &st,
                    best.as_ref().unwrap_or(&st.params),
                    &prog,
                    clip_events,
                    &cfg_toml,
                )?;
                checkpoint::save(&best_path, &ck)?;
            }
            // Checkpoints: every `checkpoint_every` steps, or at each epoch's end by default.
            let periodic = if cfg.train.checkpoint_every > 0 {
                prog.step % cfg.train.checkpoint_every == 0
            } else {
                epoch_end
            };
            if periodic {
                if epoch_end {
                    // Save the counters as they will be after the epoch rolls over.
                    let mut p2 = prog.clone();
                    p2.epoch += 1;
                    p2.step_in_epoch = 0;
                    checkpoint::save(
                        &last_path,
                        &to_checkpoint(b, &st, &st.params, &p2, clip_events, &cfg_toml)?,
                    )?;
                } else {
                    checkpoint::save(
                        &last_path,
                        &to_checkpoint(b, &st, &st.params, &prog, clip_events, &cfg_toml)?,
                    )?;
                }
                last_good = Some(last_path.clone());
            }
            side_s += side_start.elapsed().as_secs_f64();
            if let (true, Some(e)) = (cfg.train.target_val_error > 0.0, val_error) {
                if e <= cfg.train.target_val_error as f64 {
                    stopped_reason = format!(
                        "reached train.target_val_error = {} (validation 0-1 error {e:.4})",
                        cfg.train.target_val_error
                    );
                    prog.step_in_epoch = steps_per_epoch;
                    break 'outer;
                }
            }
            if cfg.train.patience > 0 && is_class && prog.evals_since_best >= cfg.train.patience as u64 {
                stopped_reason = format!(
                    "early stopping: validation 0-1 error did not improve in {} evaluations (best {:.4} at step {})",
                    cfg.train.patience,
                    prog.best_val_error.unwrap_or(f64::NAN),
                    prog.best_step.unwrap_or(0)
                );
                if let Some(bp) = &best {
                    st.params.copy_from(b, bp)?;
                    restored_best = true;
                }
                prog.step_in_epoch = steps_per_epoch;
                break 'outer;
            }
        }
        prog.epoch += 1;
        prog.step_in_epoch = 0;
    }
    if stopped_reason.is_empty() {
        stopped_reason = if cfg.train.one_pass {
            format!("one pass over {n_train} examples done")
        } else if prog.step >= max_steps {
            format!("reached train.steps = {max_steps}")
        } else {
            format!("reached train.epochs = {max_epochs}")
        };
    }
    if prog.step_in_epoch >= steps_per_epoch {
        prog.epoch += 1;
        prog.step_in_epoch = 0;
    }
    bar.finish_and_clear();
    b.sync()?;
    let train_s = (run_start.elapsed().as_secs_f64() - side_s).max(0.0);
    let m = st.read_metrics(b)?;
    let clip_events = clip_base + m.clip_events;
    prog.elapsed_s = elapsed_before + run_start.elapsed().as_secs_f64();
    checkpoint::save(&last_path, &to_checkpoint(b, &st, &st.params, &prog, clip_events, &cfg_toml)?)?;
    metrics.sync()?;
    drop(metrics);

    let (final_val_loss, final_val_error) = match val.as_mut() {
        Some(v) => {
            let (l, e) = evaluate(b, &model, &st.params, v)?;
            (Some(l), is_class.then_some(e))
        }
        None => (None, None),
    };
    let summary = TrainSummary {
        command: "train",
        backend: format!("{:?}", b.kind()).to_lowercase(),
        device: b.device_name(),
        params: model.num_params(),
        batch_size: batch,
        steps: prog.step,
        epochs_completed: prog.epoch,
        examples_seen: prog.examples_seen,
        stopped_reason,
        final_train_loss: last_line.as_ref().map(|l| l.train_loss),
        final_train_error: last_line.as_ref().and_then(|l| l.train_error),
        final_val_loss,
        final_val_error,
        best_val_error: prog.best_val_error,
        best_step: prog.best_step,
        restored_best,
        clip_events,
        elapsed_s: prog.elapsed_s,
        train_s,
        examples_per_s: prog.examples_seen as f64 / prog.elapsed_s.max(1e-9),
        peak_rss_mib: peak_rss_mib(),
    };
    crate::report::rundir::write_atomic(
        &run_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default().as_bytes(),
    )?;
    plot_metrics(run_dir, is_class)?;
    log::info!("train finished in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(summary)
}

fn fill_batch<B: Backend>(
    b: &B,
    source: &mut Source<B>,
    bt: &mut BatchBuffers<B>,
    epoch: u64,
    step_in_epoch: u64,
    steps_per_epoch: u64,
) -> Result<(), TrainError> {
    let rows = bt.rows;
    match source {
        Source::Resident { data, order } => {
            let idx = order.batch(epoch, step_in_epoch as usize, rows).ok_or_else(|| {
                TrainError::Setup(format!("no minibatch {step_in_epoch} in epoch {epoch}"))
            })?;
            data.load_batch(b, idx, bt)?;
        }
        Source::Stream { spec, table, n } => {
            // Stream order: epoch e revisits the same examples (multi-pass over a finite stream).
            let first = (step_in_epoch * rows as u64) % (*n).max(1);
            let _ = (epoch, steps_per_epoch);
            b.generate(spec, first, rows, table, &mut bt.x, &mut bt.labels, &mut bt.targets)?;
        }
    }
    Ok(())
}

/// The first `bt.rows` examples of the minibatch `fill_batch` would load for this step.
fn fill_batch_rows<B: Backend>(
    b: &B,
    source: &mut Source<B>,
    bt: &mut BatchBuffers<B>,
    epoch: u64,
    step_in_epoch: u64,
    batch: usize,
) -> Result<(), TrainError> {
    let rows = bt.rows;
    match source {
        Source::Resident { data, order } => {
            let idx = order.batch(epoch, step_in_epoch as usize, batch).ok_or_else(|| {
                TrainError::Setup(format!("no minibatch {step_in_epoch} in epoch {epoch}"))
            })?;
            data.load_batch(b, &idx[..rows.min(idx.len())], bt)?;
        }
        Source::Stream { spec, table, n } => {
            let first = (step_in_epoch * batch as u64) % (*n).max(1);
            b.generate(spec, first, rows, table, &mut bt.x, &mut bt.labels, &mut bt.targets)?;
        }
    }
    Ok(())
}

fn progress_bar(show: bool, total: u64, pos: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = if total == u64::MAX {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::new(total)
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_position(pos);
    bar
}

/// Drop metrics lines after `step` (a resumed run rewrites what came after its checkpoint).
fn truncate_metrics(path: &Path, step: u64) -> Result<(), TrainError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TrainError::Setup(format!("cannot read {} to resume: {e}", path.display())))?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    crate::report::rundir::write_atomic(path, out.as_bytes())?;
    Ok(())
}

fn write_summary_diverged<B: Backend>(
    run_dir: &Path,
    b: &B,
    model: &Mlp,
    batch: usize,
    prog: &Progress,
    what: &str,
) -> Result<(), TrainError> {
    let s = serde_json::json!({
        "command": "train",
        "device": b.device_name(),
        "params": model.num_params(),
        "batch_size": batch,
        "steps": prog.step,
        "examples_seen": prog.examples_seen,
        "stopped_reason": format!("diverged: {what}"),
    });
    crate::report::rundir::write_atomic(&run_dir.join("summary.json"), s.to_string().as_bytes())?;
    Ok(())
}

/// Read metrics.jsonl back (all of a resumed run's lines) and plot loss and 0-1 error.
pub fn plot_metrics(run_dir: &Path, is_class: bool) -> Result<(), TrainError> {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap_or_default();
    let lines: Vec<MetricsLine> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let pts = |f: &dyn Fn(&MetricsLine) -> Option<f64>| -> Vec<(f64, f64)> {
        lines.iter().filter_map(|l| f(l).map(|y| (l.examples_seen as f64, y))).collect()
    };
    let mut loss = vec![
        Series { name: "train (minibatch)".into(), points: pts(&|l| Some(l.train_loss)) },
        Series { name: "validation".into(), points: pts(&|l| l.val_loss) },
    ];
    let full_loss = pts(&|l| l.train_full_loss);
    if !full_loss.is_empty() {
        loss.push(Series { name: "train (whole set)".into(), points: full_loss });
    }
    line_plot(
        &run_dir.join("loss.svg"),
        &PlotSpec::new("Surrogate loss (NLL)", "examples seen", "loss").log_y(),
        &loss,
    )?;
    let gthg = pts(&|l| l.gthg);
    if !gthg.is_empty() {
        line_plot(
            &run_dir.join("curvature.svg"),
            &PlotSpec::new(
                "Gradient norm vs curvature along the gradient (eq. 8.10)",
                "examples seen",
                "value",
            )
            .log_y(),
            &[
                Series { name: "gᵀg".into(), points: pts(&|l| l.gtg) },
                Series { name: "gᵀHg".into(), points: gthg },
            ],
        )?;
    }
    if is_class {
        let mut err = vec![
            Series { name: "train 0-1 (minibatch)".into(), points: pts(&|l| l.train_error) },
            Series { name: "validation 0-1".into(), points: pts(&|l| l.val_error) },
        ];
        let full_err = pts(&|l| l.train_full_error);
        if !full_err.is_empty() {
            err.push(Series { name: "train 0-1 (whole set)".into(), points: full_err });
        }
        line_plot(
            &run_dir.join("error.svg"),
            &PlotSpec::new("0-1 error", "examples seen", "error"),
            &err,
        )?;
    }
    Ok(())
}

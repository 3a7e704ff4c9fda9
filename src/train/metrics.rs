//! What a training run writes: the options it starts from, one [`MetricsLine`] per logged step
//! (metrics.jsonl), the [`TrainSummary`] (summary.json) and the plots of metrics.jsonl.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::Serialize;

use super::checkpointer::Progress;
use super::eval::Evaluation;
use super::step::StepMetrics;
use super::TrainError;
use crate::report::plot::{line_plot, PlotSpec, Series};

/// Where a run starts from and what it shows.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Start from these weights (`layers.{i}.weight/bias`).
    pub init: Option<PathBuf>,
    /// Continue the run in this directory from its `last.safetensors`.
    pub resume: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// From the first step on, SIGINT and SIGTERM stop the run before its next step and it
    /// saves itself ([`super::interrupt`]): for a process that runs this one training run.
    pub stop_on_signal: bool,
}

/// A monitor's value on a metrics line: `None` at a step the monitor did not run (the key is
/// left out), `Some(None)` where it ran and measured nothing (`null`: a skipped f16 step, a
/// noise scale whose smoothed |G|² is not positive yet), `Some(Some(v))` its value.
pub type Monitored<T> = Option<Option<T>>;

/// Reads a present key, `null` included, as `Some` (serde reads a `null` as a missing key).
fn present<'de, D, T>(d: D) -> Result<Monitored<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
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
    #[serde(
        default,
        rename = "gTg",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub gtg: Monitored<f64>,
    /// gᵀHg, the curvature along the gradient (exact Hessian, R-operator).
    #[serde(
        default,
        rename = "gTHg",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub gthg: Monitored<f64>,
    /// ε* = gᵀg / gᵀHg: the step size that minimises the quadratic model along −g.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub eps_star: Monitored<f64>,
    /// Eq. 8.10 for the step taken d = θ_after − θ_before: ΔL̂ = gᵀd + ½ dᵀHd (−lr gᵀg +
    /// ½ lr² gᵀHg for a plain SGD step).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub predicted_delta_loss: Monitored<f64>,
    /// The minibatch loss after the update minus before (same minibatch; the step taken).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub actual_delta_loss: Monitored<f64>,
    /// ½ dᵀHd > −gᵀd: the step is too large for the curvature (the quadratic model says it
    /// raises the loss).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub step_too_large: Monitored<bool>,
    /// Noise monitor: B_simple = tr Σ / |G|² from EMAs of the unbiased two-batch estimators.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub b_simple: Monitored<f64>,
    /// This step's unbiased |G|² estimate (before smoothing).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub noise_g2: Monitored<f64>,
    /// This step's unbiased tr Σ estimate (before smoothing).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub noise_trace: Monitored<f64>,
    /// Data parallel (`train.workers` > 1): bytes staged per step for the gradient all-reduce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allreduce_bytes: Option<u64>,
    /// Data parallel: mean wall µs per step of the all-reduce since the previous line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allreduce_us: Option<f64>,
    /// `model.precision = "f16"`: the loss scale after this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// `model.precision = "f16"`: steps skipped for a non-finite gradient so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_steps: Option<u64>,
}

impl MetricsLine {
    /// The line of a logged step at `prog` (monitor fields empty): minibatch figures `m` of the
    /// step taken at learning rate `lr`, and the evaluation `ev` if there was one.
    pub fn new(
        prog: &Progress,
        m: &StepMetrics,
        is_class: bool,
        ev: &Evaluation,
        lr: f32,
        clip_events: u64,
        elapsed_s: f64,
    ) -> Self {
        MetricsLine {
            step: prog.step,
            epoch: prog.epoch,
            examples_seen: prog.examples_seen,
            train_loss: m.loss,
            train_error: is_class.then_some(m.error),
            val_loss: ev.val_loss,
            val_error: ev.val_error,
            train_full_loss: ev.train_full_loss,
            train_full_error: ev.train_full_error,
            grad_norm: m.grad_norm,
            lr: crate::stats::f32_as_written(lr),
            clip_events,
            elapsed_s,
            gtg: None,
            gthg: None,
            eps_star: None,
            predicted_delta_loss: None,
            actual_delta_loss: None,
            step_too_large: None,
            b_simple: None,
            noise_g2: None,
            noise_trace: None,
            allreduce_bytes: None,
            allreduce_us: None,
            loss_scale: None,
            skipped_steps: None,
        }
    }
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
    /// The lowest validation 0-1 error of the run (classification; `best.safetensors` holds
    /// its parameters).
    pub best_val_error: Option<f64>,
    /// The lowest validation loss of the run (regression, which has no 0-1 error).
    pub best_val_loss: Option<f64>,
    pub best_step: Option<u64>,
    pub restored_best: bool,
    pub clip_events: u64,
    pub elapsed_s: f64,
    /// Wall time of the training steps alone (this session; evaluations and checkpoints excluded).
    pub train_s: f64,
    pub examples_per_s: f64,
    pub peak_rss_mib: Option<f64>,
    /// The `--init` weights the run started from: `PATH (N bytes crc32:xxxxxxxx)` (runs
    /// started from `--init` only, and their resumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// Replicas, accumulation and the reduction's cost (runs with `train.workers` or
    /// `train.accumulate` above 1 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_parallel: Option<super::parallel::DataParallelSummary>,
    /// `"f16"` for a mixed-precision run (f32 summaries omit it and the next two).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<&'static str>,
    /// f16: the loss scale after the last step, and the steps skipped for a non-finite
    /// gradient (this session).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub mixed_precision: Option<super::amp::AmpMetrics>,
}

/// Peak resident set size of this process (Linux), MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The title of loss.svg: the loss the run minimises.
fn loss_title(is_class: bool) -> &'static str {
    match is_class {
        true => "Surrogate loss (NLL)",
        false => "Loss (½ squared error)",
    }
}

/// Read metrics.jsonl back (all of a resumed run's lines, record by record) and plot loss and
/// 0-1 error.
pub fn plot_metrics(run_dir: &Path, is_class: bool) -> Result<(), TrainError> {
    let mut p = PlottedSeries::default();
    super::metrics_file::for_each_record(&run_dir.join("metrics.jsonl"), |l: MetricsLine| p.push(&l));
    let series = |name: &str, points| Series { name: name.into(), points };
    let mut loss = vec![series("train (minibatch)", p.train_loss), series("validation", p.val_loss)];
    if !p.train_full_loss.is_empty() {
        loss.push(series("train (whole set)", p.train_full_loss));
    }
    line_plot(
        &run_dir.join("loss.svg"),
        &PlotSpec::new(loss_title(is_class), "examples seen", "loss").log_y(),
        &loss,
    )?;
    if !p.gthg.is_empty() {
        line_plot(
            &run_dir.join("curvature.svg"),
            &PlotSpec::new(
                "Gradient norm vs curvature along the gradient (eq. 8.10)",
                "examples seen",
                "value",
            )
            .log_y(),
            &[series("gᵀg", p.gtg), series("gᵀHg", p.gthg)],
        )?;
    }
    if is_class {
        let mut err =
            vec![series("train 0-1 (minibatch)", p.train_error), series("validation 0-1", p.val_error)];
        if !p.train_full_error.is_empty() {
            err.push(series("train 0-1 (whole set)", p.train_full_error));
        }
        line_plot(
            &run_dir.join("error.svg"),
            &PlotSpec::new("0-1 error", "examples seen", "error"),
            &err,
        )?;
    }
    Ok(())
}

/// The run's progress bar on stderr (hidden unless `show`).
pub fn progress_bar(show: bool, total: u64, pos: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = if total == u64::MAX { ProgressBar::new_spinner() } else { ProgressBar::new(total) };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_position(pos);
    bar
}

/// The points of each plotted field against examples seen, in file order (only the values a
/// record has: a long run's plots held every record's fields, 133 MB at 600 000 lines).
#[derive(Default)]
struct PlottedSeries {
    train_loss: Vec<(f64, f64)>,
    val_loss: Vec<(f64, f64)>,
    train_full_loss: Vec<(f64, f64)>,
    train_error: Vec<(f64, f64)>,
    val_error: Vec<(f64, f64)>,
    train_full_error: Vec<(f64, f64)>,
    gtg: Vec<(f64, f64)>,
    gthg: Vec<(f64, f64)>,
}

impl PlottedSeries {
    fn push(&mut self, l: &MetricsLine) {
        let x = l.examples_seen as f64;
        for (to, y) in [
            (&mut self.train_loss, Some(l.train_loss)),
            (&mut self.val_loss, l.val_loss),
            (&mut self.train_full_loss, l.train_full_loss),
            (&mut self.train_error, l.train_error),
            (&mut self.val_error, l.val_error),
            (&mut self.train_full_error, l.train_full_error),
            (&mut self.gtg, l.gtg.flatten()),
            (&mut self.gthg, l.gthg.flatten()),
        ] {
            to.extend(y.map(|y| (x, y)));
        }
    }
}

//! The checkpointer: where a run starts from (`--init` weights, `--resume` from
//! `last.safetensors` with its counters, best parameters and metrics.jsonl cut back to the
//! checkpoint), the best parameters so far by the [`Monitor`]'s validation figure (0-1 error,
//! or a regression's loss), and when to save
//! `last.safetensors` / `best.safetensors`. The file format is [`super::checkpoint`]'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::amp::MetaError;
use super::best::Monitor;
use super::checkpoint::{self, Checkpoint, NamedTensor};
use super::step::TrainState;
use super::{TrainError, TrainOptions};
use crate::backend::Backend;
use crate::config::Config;
use crate::model::ParamSet;
use crate::report::jsonl::JsonlWriter;

/// The metadata key of the `--init` weights a run started from.
pub const INIT_KEY: &str = "init";

/// Counters that a checkpoint carries so a resumed run continues exactly.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub step: u64,
    pub epoch: u64,
    pub step_in_epoch: u64,
    pub examples_seen: u64,
    /// The best figure so far of the run's [`Monitor`] (validation 0-1 error, or loss).
    pub best_val: Option<f64>,
    pub best_step: Option<u64>,
    pub evals_since_best: u64,
    pub elapsed_s: f64,
}

/// Checkpoints of one run directory, and the best parameters so far.
pub struct Checkpointer<B: Backend> {
    last_path: PathBuf,
    best_path: PathBuf,
    metrics_path: PathBuf,
    cfg_toml: String,
    /// Save `last` every this many steps (0 = at each epoch's end).
    every: u64,
    /// A copy of the parameters of the best validation figure so far.
    pub best: Option<ParamSet<B>>,
    /// The validation figure "best" means.
    pub monitor: Monitor,
    /// Clip events of the run before this session (resume).
    pub clip_base: u64,
    /// The last checkpoint written (or resumed from), named in a divergence error.
    pub last_good: Option<PathBuf>,
    /// MPI ranks of the run: recorded in its checkpoints (`mpi_ranks`, when more than one) and
    /// required to match at `--resume`.
    pub ranks: usize,
    /// A resume's config.toml, when its `--set` changed how the run goes on: written with the
    /// continuation's first `last.safetensors` (until then the file describes the checkpoint).
    continuation: Option<String>,
    /// Whether this session resumed a run and has not saved `last.safetensors` yet: the run
    /// directory is then as the resume found it (but for metrics.jsonl's new lines).
    resumed_unsaved: bool,
    /// What the run's `.npy` files hold ([`crate::data::fingerprint`]), recorded in every
    /// checkpoint and held to at `--resume`.
    pub data_fingerprint: Option<String>,
    /// The `--init` weights the run started from (`PATH (N bytes crc32:xxxxxxxx)`): recorded
    /// in every checkpoint (`init`), carried through `--resume`, and named in summary.json.
    pub init: Option<String>,
}

impl<B: Backend> Checkpointer<B> {
    /// The run directory (where `last.safetensors` is written).
    pub fn run_dir(&self) -> PathBuf {
        self.last_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    pub fn new(cfg: &Config, run_dir: &Path) -> Self {
        Checkpointer {
            last_path: run_dir.join("last.safetensors"),
            best_path: run_dir.join("best.safetensors"),
            metrics_path: run_dir.join("metrics.jsonl"),
            cfg_toml: cfg.to_toml(),
            every: cfg.train.checkpoint_every,
            best: None,
            monitor: Monitor::of(cfg),
            clip_base: 0,
            last_good: None,
            ranks: 1,
            continuation: None,
            resumed_unsaved: false,
            data_fingerprint: None,
            init: None,
        }
    }

    /// Load `--init` weights, or with `--resume` the state and counters of `last.safetensors`
    /// (and `best.safetensors` if there is one). Nothing is written: [`Checkpointer::open_metrics`]
    /// then opens metrics.jsonl.
    pub fn start(
        &mut self,
        b: &B,
        cfg: &Config,
        opts: &TrainOptions,
        st: &mut TrainState<B>,
        prog: &mut Progress,
    ) -> Result<(), TrainError> {
        if let Some(init) = &opts.init {
            let ck = checkpoint::load(init)?;
            load_into(b, &ck, init, "", &mut st.params)?;
            let bytes = crate::data::fingerprint::of_file(init)?;
            self.init = Some(format!("{} ({bytes})", init.display()));
        }
        if !opts.resume {
            return Ok(());
        }
        self.resumed_unsaved = true;
        let path = &self.last_path;
        let ck = checkpoint::load(path)?;
        super::resume_guard::keeps_recorded_layout(&ck.metadata, path, cfg)?;
        self.init = ck.metadata.get(INIT_KEY).cloned();
        let ranks: usize = optional_meta(&ck, "mpi_ranks", path)?.unwrap_or(1);
        if ranks != self.ranks {
            let job = |n: usize| match n {
                1 => "one process (no --mpi)".to_string(),
                n => format!("{n} MPI ranks"),
            };
            return Err(TrainError::Setup(format!(
                "--resume {}: the run was trained on {}, this job has {}; resume it with the same number of ranks",
                path.display(),
                job(ranks),
                job(self.ranks)
            )));
        }
        load_into(b, &ck, path, "", &mut st.params)?;
        if let Some(v) = st.velocity.as_mut() {
            load_into(b, &ck, path, "optimizer.velocity.", v)?;
        }
        if let Some(m) = st.mixed.as_mut() {
            let restored = m.load_meta(b, &ck.metadata).map_err(|e| match e {
                MetaError::Bad { .. } => {
                    TrainError::Setup(format!("checkpoint {}: {e}", path.display()))
                }
                MetaError::Backend(e) => e.into(),
            })?;
            if !restored {
                log::warn!(
                    "notice: {} holds no loss-scaler state (written before it was saved); the f16 run resumes with a fresh scale (train.loss_scale)",
                    path.display()
                );
            }
        }
        prog.step = meta(&ck, "step", path)?;
        prog.epoch = meta(&ck, "epoch", path)?;
        prog.step_in_epoch = meta(&ck, "step_in_epoch", path)?;
        prog.examples_seen = meta(&ck, "examples_seen", path)?;
        prog.evals_since_best = meta(&ck, "evals_since_best", path)?;
        prog.elapsed_s = meta(&ck, "elapsed_s", path)?;
        prog.best_val = optional_meta(&ck, self.monitor.key(), path)?;
        prog.best_step = optional_meta(&ck, "best_step", path)?;
        self.clip_base = meta(&ck, "clip_events", path)?;
        if self.clip_base > super::plan::MAX_COUNT {
            return Err(TrainError::Setup(format!(
                "checkpoint {}: metadata `clip_events` = {} is past 2^53",
                path.display(),
                self.clip_base
            )));
        }
        if self.best_path.exists() {
            let bk = checkpoint::load(&self.best_path).map_err(|e| {
                TrainError::Setup(format!(
                    "{e}; move it aside to resume (the best is then tracked anew from step {})",
                    prog.step
                ))
            })?;
            let mut bp = st.params.zeros_like(b)?;
            load_into(b, &bk, &self.best_path, "", &mut bp)?;
            self.best = Some(bp);
        } else if let Some(step) = prog.best_step {
            // The best weights are gone: early stopping could not restore them. Track the best
            // anew from here, so the run ends with a best.safetensors that matches its summary.
            log::warn!(
                "{} is missing: the best weights (step {step}) cannot be restored; the best is \
                 tracked anew from step {}",
                self.best_path.display(),
                prog.step
            );
            prog.best_val = None;
            prog.best_step = None;
            prog.evals_since_best = 0;
        }
        self.last_good = Some(self.last_path.clone());
        Ok(())
    }

    /// On a resume that goes on (its checkpoint restored, steps left): when the resume's
    /// `--set` changed how the run goes on (more epochs, say), the run's config.toml is
    /// rewritten with the continuation's first `last.safetensors`, so that the file describes
    /// the checkpoint beside it and a plain `--resume` after an interruption goes on the same
    /// way; a resume that fails before then (it diverged, say) leaves the file as it was. What
    /// the checkpoint holds cannot differ (the command refused that before).
    pub fn describe_continuation(&mut self, cfg: &Config) {
        let text = cfg.to_toml();
        let on_disk = std::fs::read_to_string(self.config_path()).ok();
        self.continuation = (on_disk.as_deref() != Some(text.as_str())).then_some(text);
    }

    /// Whether this session resumed a run and has saved no `last.safetensors` since: its
    /// checkpoint, config.toml and summary.json are those the resume found.
    pub fn resumed_unsaved(&self) -> bool {
        self.resumed_unsaved
    }

    fn config_path(&self) -> PathBuf {
        self.last_path.with_file_name("config.toml")
    }

    /// The metrics writer: a new metrics.jsonl, or on resume the existing one cut back to the
    /// checkpoint's step and appended to.
    pub fn open_metrics(&self, opts: &TrainOptions, prog: &Progress) -> Result<JsonlWriter, TrainError> {
        if !opts.resume {
            return Ok(JsonlWriter::create(&self.metrics_path)?);
        }
        super::metrics_file::truncate_metrics(&self.metrics_path, prog.step)?;
        Ok(JsonlWriter::append(&self.metrics_path)?)
    }

    /// After an evaluation with validation loss `val_loss` and 0-1 error `val_error`: on a new
    /// best of the monitored figure, keep a copy of `params` and reset the patience count.
    /// Returns whether it improved.
    pub fn track_best(
        &mut self,
        b: &B,
        params: &ParamSet<B>,
        prog: &mut Progress,
        val_loss: Option<f64>,
        val_error: Option<f64>,
    ) -> Result<bool, TrainError> {
        let Some(v) = self.monitor.pick(val_loss, val_error) else { return Ok(false) };
        if !Monitor::improves(v, prog.best_val) {
            prog.evals_since_best += 1;
            return Ok(false);
        }
        prog.best_val = Some(v);
        prog.best_step = Some(prog.step);
        prog.evals_since_best = 0;
        let mut bp = match self.best.take() {
            Some(bp) => bp,
            None => params.zeros_like(b)?,
        };
        bp.copy_from(b, params)?;
        self.best = Some(bp);
        Ok(true)
    }

    /// `best.safetensors` now, with the parameters [`Self::track_best`] kept.
    pub fn save_best(
        &mut self,
        b: &B,
        st: &TrainState<B>,
        prog: &Progress,
        clip_events: u64,
    ) -> Result<(), TrainError> {
        let params = self.best.as_ref().unwrap_or(&st.params);
        let ck = to_checkpoint(b, st, params, prog, clip_events, &self.recorded())?;
        checkpoint::save(&self.best_path, &ck)?;
        Ok(())
    }

    /// The saves after a logged step: `best` when it `improved`; `last` every `checkpoint_every`
    /// steps, or at each epoch's end by default (then with the counters of the next epoch).
    pub fn save_after_log(
        &mut self,
        b: &B,
        st: &TrainState<B>,
        prog: &Progress,
        clip_events: u64,
        improved: bool,
        epoch_end: bool,
    ) -> Result<(), TrainError> {
        if improved {
            self.save_best(b, st, prog, clip_events)?;
        }
        if checkpoint_due(self.every, prog.step, epoch_end) {
            if epoch_end {
                // Save the counters as they will be after the epoch rolls over.
                let mut p2 = prog.clone();
                p2.epoch += 1;
                p2.step_in_epoch = 0;
                self.save_last(b, st, &p2, clip_events)?;
            } else {
                self.save_last(b, st, prog, clip_events)?;
            }
        }
        Ok(())
    }

    /// Write `last.safetensors`: `st`'s parameters and optimizer state with `prog`; then a
    /// resume's changed config.toml ([`Self::describe_continuation`]).
    pub fn save_last(
        &mut self,
        b: &B,
        st: &TrainState<B>,
        prog: &Progress,
        clip_events: u64,
    ) -> Result<(), TrainError> {
        let ck = to_checkpoint(b, st, &st.params, prog, clip_events, &self.recorded())?;
        // The continuation's config.toml before the checkpoint past the old one's end: the
        // other order, stopped between the two, left a checkpoint a plain --resume called
        // "already complete" under the old settings, and the continuation was lost.
        if let Some(text) = self.continuation.take() {
            crate::report::atomic::write_atomic(&self.config_path(), text.as_bytes())?;
        }
        checkpoint::save(&self.last_path, &ck)?;
        self.last_good = Some(self.last_path.clone());
        self.resumed_unsaved = false;
        Ok(())
    }

    /// Put the best parameters back into `st` (early stopping). Returns whether there were any.
    pub fn restore_best(&self, b: &B, st: &mut TrainState<B>) -> Result<bool, TrainError> {
        match &self.best {
            Some(bp) => {
                st.params.copy_from(b, bp)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Whether `last.safetensors` is saved after step `step`: every `every` steps (counting every
/// step, not only logged ones), or at each epoch's end when `every` is 0.
pub fn checkpoint_due(every: u64, step: u64, epoch_end: bool) -> bool {
    if every > 0 {
        step.is_multiple_of(every)
    } else {
        epoch_end
    }
}

/// Tensors and counters of a checkpoint; [`TrainError::NonFinite`] (nothing saved) when a
/// parameter or optimizer value is not finite, so every checkpoint on disk is a good one.
/// What every checkpoint of a run records besides its state: its config, its MPI ranks and
/// what its `.npy` data holds.
#[derive(Clone, Copy)]
struct Recorded<'a> {
    cfg_toml: &'a str,
    monitor: Monitor,
    ranks: usize,
    data_fingerprint: Option<&'a str>,
    init: Option<&'a str>,
}

impl<B: Backend> Checkpointer<B> {
    fn recorded(&self) -> Recorded<'_> {
        Recorded {
            cfg_toml: &self.cfg_toml,
            monitor: self.monitor,
            ranks: self.ranks,
            data_fingerprint: self.data_fingerprint.as_deref(),
            init: self.init.as_deref(),
        }
    }
}

fn to_checkpoint<B: Backend>(
    b: &B,
    st: &TrainState<B>,
    params: &ParamSet<B>,
    prog: &Progress,
    clip_events: u64,
    recorded: &Recorded<'_>,
) -> Result<Checkpoint, TrainError> {
    let Recorded { cfg_toml, monitor, ranks, data_fingerprint, init } = *recorded;
    let mut tensors = Vec::new();
    let finite = |name: &str, data: &[f32]| match data.iter().find(|v| !v.is_finite()) {
        Some(v) => Err(TrainError::NonFinite { step: prog.step, what: format!("{name} holds {v}") }),
        None => Ok(()),
    };
    for (i, host) in params.to_host(b)?.into_iter().enumerate() {
        finite(&params.names[i], &host)?;
        tensors.push(NamedTensor {
            name: params.names[i].clone(),
            shape: params.shapes[i].clone(),
            data: host,
        });
    }
    if let Some(v) = &st.velocity {
        for (i, host) in v.to_host(b)?.into_iter().enumerate() {
            finite(&format!("optimizer.velocity.{}", v.names[i]), &host)?;
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
    if let Some(e) = prog.best_val {
        m.insert(monitor.key().into(), format!("{e:e}"));
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
    if let Some(f) = data_fingerprint {
        m.insert(crate::data::fingerprint::KEY.into(), f.to_string());
    }
    if let Some(init) = init {
        m.insert(INIT_KEY.into(), init.to_string());
    }
    if ranks > 1 {
        m.insert("mpi_ranks".into(), ranks.to_string());
    }
    m.insert("backend".into(), b.device_name());
    let kind = match b.kind() {
        crate::backend::BackendKind::Cpu => "cpu",
        crate::backend::BackendKind::Gpu => "gpu",
    };
    m.insert(super::resume_guard::BACKEND_KIND_KEY.into(), kind.into());
    if let Some(mx) = &st.mixed {
        mx.save_meta(b, &mut m)?;
    }
    Ok(Checkpoint { tensors, metadata: m, source: None })
}

/// A counter from a checkpoint's metadata.
fn meta<T: std::str::FromStr>(ck: &Checkpoint, key: &str, path: &Path) -> Result<T, TrainError> {
    ck.metadata.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
        TrainError::Setup(format!(
            "checkpoint {}: metadata `{key}` is missing or malformed",
            path.display()
        ))
    })
}

/// A metadata value a checkpoint may lack (a run with no evaluation yet has no best), but
/// never holds malformed.
fn optional_meta<T: std::str::FromStr>(
    ck: &Checkpoint,
    key: &str,
    path: &Path,
) -> Result<Option<T>, TrainError> {
    match ck.metadata.get(key) {
        None => Ok(None),
        Some(_) => meta(ck, key, path).map(Some),
    }
}

/// Overwrite `params` from a checkpoint's `prefix + name` tensors (shapes checked).
pub fn load_into<B: Backend>(
    b: &B,
    ck: &Checkpoint,
    path: &Path,
    prefix: &str,
    params: &mut ParamSet<B>,
) -> Result<(), TrainError> {
    checkpoint::load_into(b, ck, path, prefix, params)
}

#[cfg(test)]
mod tests {
    use super::checkpoint_due;

    #[test]
    fn checkpoints_count_every_step_not_only_logged_ones() {
        // checkpoint_every = 25 with log_every = 10: 25, 50, 75, ... (not only 50, 100).
        let due: Vec<u64> = (1..=100).filter(|&s| checkpoint_due(25, s, false)).collect();
        assert_eq!(due, [25, 50, 75, 100]);
        assert!(checkpoint_due(0, 7, true));
        assert!(!checkpoint_due(0, 10, false));
    }
}

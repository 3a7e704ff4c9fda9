//! The `train` command: minibatch SGD over resident or streamed data, surrogate loss optimised
//! while the 0-1 loss is watched, early stopping on validation 0-1 error, clipping, NaN guard,
//! checkpoints, resume, metrics.jsonl, summary.json and plots.
//!
//! One GPU submit per step: batch gather (or generation), forward, per-example losses, backward,
//! metric reductions, clipping and the update are recorded together; the host reads the small
//! metrics buffer back every `log_every` steps.
//!
//! [`run_train`] reads as the phases it calls: the batch source (`train/batches.rs`), the model
//! state and its update ([`super::step`], [`super::optimizer`]), the evaluator (`eval.rs`), the
//! checkpointer (`checkpointer.rs`), the monitors (`monitors.rs`), the divergence guard
//! (`guard.rs`) and the outputs (`metrics.rs`).

use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;

use super::batches::{BatchSource, TrainData};
use super::checkpointer::{Checkpointer, Progress};
use super::eval::{Evaluation, Evaluator};
use super::guard;
use super::metrics::progress_bar;
use super::monitors::Monitors;
use super::optimizer::{lr_at, Clip, Optimizer};
use super::parallel::{HostReducer, Parallel, Ranks, ReplicaExec, Sequential, Split, StepCtx};
use super::plan::{fixed_batch_size, stop_after_eval, Plan, StepPlan};
use super::ranked::{self, is_root};
use super::step::{slot, GuardedMetrics, TrainState};
use crate::backend::Backend;
use crate::config::Config;
use crate::data::device::BatchBuffers;
use crate::model::{Mlp, Targets};
use crate::report::jsonl::JsonlWriter;

pub use super::checkpointer::load_into;
pub use super::error::TrainError;
pub use super::metrics::{peak_rss_mib, plot_metrics, MetricsLine, TrainOptions, TrainSummary};

mod finish;

/// Train per `cfg` into `run_dir` on backend `b` (`train.workers` replicas all on `b`, one
/// after another).
pub fn run_train<B: Backend>(
    b: &B,
    cfg: &Config,
    opts: &TrainOptions,
    run_dir: &Path,
) -> Result<TrainSummary, TrainError> {
    let backends = vec![b; cfg.train.workers.max(1)];
    run_train_workers(&backends, Box::new(Sequential), cfg, opts, run_dir)
}

/// Train per `cfg` into `run_dir` with replica `r` of `train.workers` on `backends[r]`, the
/// replicas' phases run by `exec` (see [`super::parallel`]). Replica 0 is the run's: its
/// metrics, checkpoints and evaluations.
pub fn run_train_workers<'a, B: Backend>(
    backends: &[&'a B],
    exec: Box<dyn ReplicaExec<B> + 'a>,
    cfg: &Config,
    opts: &TrainOptions,
    run_dir: &Path,
) -> Result<TrainSummary, TrainError> {
    run_train_ranks(backends, exec, None, cfg, opts, run_dir)
}

/// [`run_train_workers`] as one rank of a multi-process job (`ranks`, MPI): this rank's
/// replicas take their share of every global batch (`train.workers` per rank), gradients are
/// summed across ranks by `ranks`' reducer, and rank 0 alone reads `--init` / `--resume` files
/// and writes `run_dir` (the other ranks' summaries are not written).
pub fn run_train_ranks<'a, B: Backend>(
    backends: &[&'a B],
    exec: Box<dyn ReplicaExec<B> + 'a>,
    mut ranks: Option<Box<dyn Ranks + 'a>>,
    cfg: &Config,
    opts: &TrainOptions,
    run_dir: &Path,
) -> Result<TrainSummary, TrainError> {
    let t0 = Instant::now();
    let b: &'a B =
        backends.first().copied().ok_or_else(|| TrainError::Setup("no backend to train on".into()))?;
    let batch = fixed_batch_size(cfg)?;
    let (size, rank) = ranks.as_ref().map_or((1, 0), |r| (r.size(), r.rank()));
    let root = rank == 0;
    let split = Split::across(cfg, batch, size, rank)?;
    let model = Mlp::new(cfg.mlp_spec())?;
    let opt = Optimizer::of(&cfg.train);
    // Batch source and evaluator.
    let TrainData { source, eval, n_train } = TrainData::load(b, cfg, &model, batch)?;
    let plan = Plan::new(cfg, batch, n_train, eval.val.is_some() || eval.train.is_some());
    if let Some(notice) = Plan::rows_never_trained(cfg, batch, n_train).filter(|_| root && !opts.resume)
    {
        eprintln!("{notice}");
    }
    // Model state, then where it starts from (--init weights, --resume from last.safetensors).
    let params = model.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale)?;
    let mut st = TrainState::new(b, model.clone(), params, split.rows(), &opt)?;
    st.batch = batch;
    st.guard_ring(b, plan.ring)?;
    super::amp::for_config(b, cfg, &mut st)?;
    let mut prog = Progress::default();
    let mut ckpt = Checkpointer::new(cfg, run_dir);
    ckpt.ranks = size;
    if root {
        ckpt.data_fingerprint = crate::data::fingerprint::fingerprint(&cfg.data)?;
        ckpt.start(b, cfg, opts, &mut st, &mut prog)?;
        plan.check_start(&prog, run_dir)?;
    }
    if let Some(r) = ranks.as_deref_mut() {
        ranked::sync_start(r, b, &mut st, &mut prog, &mut ckpt.clip_base)?;
    }
    let dp = match split.is_plain() {
        true => None,
        false => {
            let reducer = match &ranks {
                Some(r) => r.reducer(),
                None => Box::new(HostReducer),
            };
            let mut dp =
                Parallel::new(backends, cfg, &model, &opt, split, plan.ring, &st, exec, reducer)?;
            dp.broadcast(b, &st)?;
            Some(dp)
        }
    };
    // A one-pass run ends with its pass whatever its steps, epochs and time say.
    let remedy = match cfg.train.one_pass {
        true => "a one-pass run ends with its pass: --set train.one_pass=false (and train.epochs) trains it on over the same data",
        false => "give more train.steps, train.epochs or train.max_seconds with --set to extend it",
    };
    // A complete run is refused as such, unless its summary.json is missing or an earlier
    // session's (it stopped after its last checkpoint and before its summary: killed, disk
    // full): then it is finished now, without a step (every later resume said "complete").
    let summary_due = || ranks.is_none() && finish::summary_behind(run_dir, prog.step);
    let most = cfg.train.max_seconds;
    let complete = match () {
        _ if !opts.resume => None,
        _ if !plan.has_steps_after(&prog) => Some(plan.end_reason(&prog)),
        _ if most > 0.0 && prog.elapsed_s >= most => {
            Some(format!("reached train.max_seconds = {most} ({:.3} s trained)", prog.elapsed_s))
        }
        _ => None,
    };
    if let Some(reason) = complete.clone().filter(|_| !summary_due()) {
        return Err(TrainError::AlreadyComplete { step: prog.step, reason, remedy: remedy.into() });
    }
    let metrics = if root { Some(ckpt.open_metrics(opts, &prog)?) } else { None };
    if root && opts.resume {
        ckpt.describe_continuation(cfg);
    }
    // Minibatch buffers and monitors.
    let bt = BatchBuffers::new(b, split.rows(), model.inputs(), cfg.data_outputs())?;
    let monitors = Monitors::new(b, cfg, &model, &st.params, batch, source.finite_population())?;
    let bar = progress_bar(opts.progress && root, plan.total_steps, prog.step);
    let clip = Clip { norm: cfg.train.clip_norm, value: cfg.train.clip_value };
    let last_read = prog.step;
    let run = Run {
        b,
        cfg,
        run_dir,
        model,
        opt,
        clip,
        plan,
        source,
        eval,
        bt,
        st,
        elapsed_before: prog.elapsed_s,
        first_step: prog.step,
        prog,
        ckpt,
        monitors,
        metrics,
        bar,
        last_read,
        run_start: Instant::now(),
        side_s: 0.0,
        last_line: None,
        restored_best: false,
        summary_only: false,
        dp,
        ranks,
    };
    if let Some(reason) = complete {
        eprintln!(
            "{}: complete at step {}, but its summary.json was missing or an earlier session's: writing it",
            run_dir.display(),
            run.prog.step
        );
        let mut run = run;
        run.last_line = finish::last_metrics_line(&run_dir.join("metrics.jsonl"), run.prog.step);
        run.summary_only = true;
        return run.finish(Some(reason));
    }
    if opts.stop_on_signal {
        super::interrupt::install();
    }
    let summary = run.run_to_end()?;
    log::info!("train finished in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(summary)
}

/// The phases of a run and the state the loop carries between steps.
struct Run<'a, B: Backend> {
    b: &'a B,
    /// Replicas beyond replica 0 and micro-batches (`None`: the plain one-state step).
    dp: Option<Parallel<'a, B>>,
    /// The other processes of an MPI job (`None`: this process is the run).
    ranks: Option<Box<dyn Ranks + 'a>>,
    cfg: &'a Config,
    run_dir: &'a Path,
    model: Mlp,
    opt: Optimizer,
    clip: Clip,
    plan: Plan,
    source: BatchSource<B>,
    eval: Evaluator<B>,
    /// The minibatch `[batch, inputs]` and its targets.
    bt: BatchBuffers<B>,
    st: TrainState<B>,
    prog: Progress,
    ckpt: Checkpointer<B>,
    monitors: Monitors<B>,
    /// metrics.jsonl (rank 0 only).
    metrics: Option<JsonlWriter>,
    bar: ProgressBar,
    run_start: Instant,
    /// Run time before this session (resume).
    elapsed_before: f64,
    /// The step this session started from (0, or the resumed checkpoint's).
    first_step: u64,
    /// Time spent evaluating and checkpointing, excluded from `train_s`.
    side_s: f64,
    last_line: Option<MetricsLine>,
    restored_best: bool,
    /// A complete run resumed for its missing summary: no step, and its checkpoint kept.
    summary_only: bool,
    /// The step of the last metrics read (the guard checks the steps after it).
    last_read: u64,
}

impl<B: Backend> Run<'_, B> {
    /// This process writes the run directory (one process, or MPI rank 0).
    fn root(&self) -> bool {
        is_root(self.ranks.as_deref())
    }

    /// Epochs of steps until the plan ends or a check stops the run, then the summary.
    fn run_to_end(mut self) -> Result<TrainSummary, TrainError> {
        let mut stopped = None;
        'outer: while self.prog.epoch < self.plan.max_epochs {
            let lr = lr_at(&self.cfg.train, self.prog.epoch);
            while self.prog.step_in_epoch < self.plan.steps_per_epoch {
                if let Some(signal) = super::interrupt::requested() {
                    let run_dir = self.ckpt.run_dir();
                    super::interrupt::mark_stopped(signal, &run_dir);
                    stopped = Some(super::interrupt::stopped_reason(signal));
                    break 'outer;
                }
                if self.prog.step >= self.plan.max_steps {
                    stopped = Some(format!("reached train.steps = {}", self.plan.max_steps));
                    break 'outer;
                }
                if let Some(reason) = self.out_of_time() {
                    stopped = Some(reason);
                    break 'outer;
                }
                let sp = self.step(lr)?;
                if sp.log {
                    stopped = self.log(lr, &sp)?;
                    if stopped.is_some() {
                        break 'outer;
                    }
                } else if sp.read {
                    self.check(&sp)?;
                }
            }
            self.prog.epoch += 1;
            self.prog.step_in_epoch = 0;
        }
        self.finish(stopped)
    }

    /// `train.max_seconds` of wall time trained (this session's and those it resumed), after
    /// this session's first step: the reason to stop, or `None`.
    fn out_of_time(&self) -> Option<String> {
        let most = self.cfg.train.max_seconds;
        let trained = self.elapsed_before + self.run_start.elapsed().as_secs_f64();
        let stepped = self.prog.step > self.first_step;
        (most > 0.0 && stepped && trained >= most)
            .then(|| format!("reached train.max_seconds = {most} ({trained:.3} s trained)"))
    }

    /// One step at learning rate `lr`: the noise probe if due, the minibatch, the update
    /// (with the curvature monitor if due), recorded and submitted; nothing is read back.
    fn step(&mut self, lr: f32) -> Result<StepPlan, TrainError> {
        let b = self.b;
        let sp = self.plan.step_at(&self.prog, &self.monitors);
        let (epoch, in_epoch, is_class) = (self.prog.epoch, self.prog.step_in_epoch, self.eval.is_class);
        let params = &self.st.params;
        self.monitors.probe(
            b,
            sp.due,
            &self.model,
            params,
            &mut self.source,
            epoch,
            in_epoch,
            is_class,
        )?;
        let tensors = self.st.params.tensors.len();
        let guard_slot = Some(slot::guard(tensors, self.plan.ring, self.prog.step + 1));
        if let Some(dp) = self.dp.as_mut() {
            let ctx = StepCtx {
                epoch,
                step_in_epoch: in_epoch,
                batch: self.plan.batch,
                workers: dp.split.workers,
                micro: dp.split.micro,
                is_class,
                measure_norm: sp.log,
                guard_slot,
                opt: &self.opt,
                lr,
                clip: &self.clip,
            };
            dp.step(b, &mut self.st, &mut self.bt, &mut self.source, &ctx)?;
            self.advance();
            return Ok(sp);
        }
        self.source.fill(b, &mut self.bt, epoch, in_epoch)?;
        let bt = &self.bt;
        let targets = if is_class { Targets::Classes(&bt.labels) } else { Targets::Values(&bt.targets) };
        self.st.measure_grad_norm = sp.log;
        self.st.guard_slot = guard_slot;
        if sp.due.curvature {
            self.st.record_step_monitored(b, &bt.x, &targets, &self.opt, lr, &self.clip)?;
        } else {
            self.st.record_step(b, &bt.x, &targets, &self.opt, lr, &self.clip)?;
        }
        b.flush()?;
        self.advance();
        Ok(sp)
    }

    /// Count the step just recorded.
    fn advance(&mut self) {
        self.prog.step += 1;
        self.prog.step_in_epoch += 1;
        self.prog.examples_seen += self.plan.batch as u64;
    }

    /// A logged step: read its metrics back, guard against divergence, evaluate, read the
    /// monitors, write the metrics line and the checkpoints. Returns why the run stops here, if
    /// it does (target error reached, early stopping).
    fn log(&mut self, lr: f32, sp: &StepPlan) -> Result<Option<String>, TrainError> {
        let b = self.b;
        let g = self.st.read_guarded(b)?;
        let elapsed = self.elapsed_before + self.run_start.elapsed().as_secs_f64();
        self.guard(&g, true)?;
        let m = g.step;
        let side_start = Instant::now();
        let root = self.root();
        let ev = if sp.eval && root {
            self.eval.evaluate(b, &self.model, &self.st.params)?
        } else {
            Evaluation::default()
        };
        let improved = root
            && self.ckpt.track_best(b, &self.st.params, &mut self.prog, ev.val_loss, ev.val_error)?;
        let clip_events = self.ckpt.clip_base + m.clip_events;
        let mut line =
            MetricsLine::new(&self.prog, &m, self.eval.is_class, &ev, lr, clip_events, elapsed);
        self.monitors.read(b, sp.due, &self.st, &m, &mut line)?;
        super::amp::annotate(b, &self.st, &mut line)?;
        if let Some(dp) = self.dp.as_mut() {
            dp.annotate(&mut line);
        }
        if let Some(w) = self.metrics.as_mut() {
            w.write(&line)?;
        }
        self.bar.set_position(self.prog.step);
        self.bar.set_message(format!(
            "loss {:.4} | {:.0} ex/s{}",
            m.loss,
            (self.prog.examples_seen as f64) / elapsed.max(1e-9),
            ev.val_error.map(|e| format!(" | val err {:.2}%", 100.0 * e)).unwrap_or_default()
        ));
        log::debug!("step {} loss {:.5} grad_norm {:.4}", self.prog.step, m.loss, m.grad_norm);
        self.last_line = Some(line);
        self.prog.elapsed_s = elapsed;
        if root {
            let saved =
                self.ckpt.save_after_log(b, &self.st, &self.prog, clip_events, improved, sp.epoch_end);
            self.saved(saved)?;
        }
        self.side_s += side_start.elapsed().as_secs_f64();
        let stop = self.stop_reason(ev.val_error)?;
        let Some(r) = self.ranks.as_deref_mut() else { return Ok(stop) };
        let (stop, restored) = ranked::stop_decision(r, stop, self.restored_best);
        self.restored_best = restored;
        Ok(stop)
    }

    /// A step that is read back but not logged: the guard, then `last.safetensors` if due.
    fn check(&mut self, sp: &StepPlan) -> Result<(), TrainError> {
        let b = self.b;
        let g = self.st.read_guarded(b)?;
        self.guard(&g, false)?;
        let side_start = Instant::now();
        self.prog.elapsed_s = self.elapsed_before + self.run_start.elapsed().as_secs_f64();
        let clip_events = self.ckpt.clip_base + g.step.clip_events;
        if self.root() {
            let saved =
                self.ckpt.save_after_log(b, &self.st, &self.prog, clip_events, false, sp.epoch_end);
            self.saved(saved)?;
        }
        self.side_s += side_start.elapsed().as_secs_f64();
        Ok(())
    }

    /// The divergence guard on a read: the first step since the last read whose loss sum is not
    /// finite, then (`logged`) this step's loss and gradient norm.
    fn guard(&mut self, g: &GuardedMetrics, logged: bool) -> Result<(), TrainError> {
        let (from, to) = (self.last_read + 1, self.prog.step);
        if let Some(s) = guard::first_non_finite(&g.ring, from, to) {
            let v = g.ring[((s - 1) % g.ring.len() as u64) as usize];
            return Err(self.diverge(s, format!("train_loss = {v}")));
        }
        if logged {
            if let Some(what) = guard::non_finite(&g.step) {
                return Err(self.diverge(self.prog.step, what));
            }
        }
        self.last_read = self.prog.step;
        Ok(())
    }

    /// A checkpoint that would hold non-finite values ends the run as a divergence.
    fn saved(&mut self, r: Result<(), TrainError>) -> Result<(), TrainError> {
        match r {
            Err(TrainError::NonFinite { step, what }) => Err(self.diverge(step, what)),
            r => r,
        }
    }

    /// The error (and summary.json) of a run whose step `step` is the first non-finite one.
    fn diverge(&mut self, step: u64, what: String) -> TrainError {
        self.bar.finish_and_clear();
        let mut at = self.prog.clone();
        at.examples_seen = at.examples_seen.saturating_sub((at.step - step) * self.plan.batch as u64);
        at.step = step;
        let last_good = self.ckpt.last_good.clone();
        if !self.root() {
            let last_good = "rank 0's".to_string();
            return TrainError::Diverged { step, what, last_good };
        }
        if let (true, Some(path)) = (self.ckpt.resumed_unsaved(), &last_good) {
            // The resume saved nothing: the run directory keeps the summary and config.toml of
            // the checkpoint it resumed (metrics.jsonl shows the steps that diverged; the next
            // resume cuts them).
            let last_good = format!(
                "{}, the one this resume started from (its config.toml and summary.json are left as they were)",
                path.display()
            );
            return TrainError::Diverged { step, what, last_good };
        }
        if let Err(e) = self.write_diverged(&at, &what) {
            return e;
        }
        guard::diverged(at.step, what, last_good.as_deref())
    }

    /// Whether to stop after an evaluation with validation 0-1 error `val_error`: the target
    /// error is reached, or early stopping (then the best parameters are restored).
    fn stop_reason(&mut self, val_error: Option<f64>) -> Result<Option<String>, TrainError> {
        let monitor = self.plan.monitor;
        let Some((reason, restore)) = stop_after_eval(self.cfg, &self.prog, monitor, val_error) else {
            return Ok(None);
        };
        if restore {
            self.restored_best = self.ckpt.restore_best(self.b, &mut self.st)?;
            // Every replica ends on the best parameters, not replica 0 alone (the run's end
            // holds them to replica 0's, and a resume broadcasts replica 0's anyway).
            if let Some(dp) = self.dp.as_mut().filter(|_| self.restored_best) {
                dp.broadcast(self.b, &self.st)?;
            }
        }
        // The run stops where it is: mid-epoch, its counters (the summary's epochs_completed,
        // the checkpoint a resume goes on from) are that step's, not the epoch's end.
        Ok(Some(reason))
    }
}

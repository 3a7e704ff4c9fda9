//! The run's plan: its length, and what each step does besides the update (log, evaluate,
//! read back, monitors due).

use super::best::Monitor;
use super::checkpointer::{checkpoint_due, Progress};
use super::guard;
use super::monitors::{Due, Monitors};
use super::TrainError;
use crate::backend::Backend;
use crate::config::{BatchSize, Config};

/// The run's length and the cadence of evaluations and metric reads.
pub(super) struct Plan {
    pub(super) batch: usize,
    pub(super) steps_per_epoch: u64,
    pub(super) max_steps: u64,
    pub(super) max_epochs: u64,
    /// Steps the run makes unless it stops early (`u64::MAX`: unbounded).
    pub(super) total_steps: u64,
    pub(super) log_every: u64,
    /// Evaluate every this many steps (0 = at each epoch's end).
    pub(super) eval_every: u64,
    /// The run has a set to evaluate (validation rows, or the training set with
    /// `train.eval_train`).
    pub(super) has_eval: bool,
    pub(super) one_pass: bool,
    pub(super) n_train: u64,
    /// Save `last.safetensors` every this many steps (0 = at each epoch's end).
    pub(super) checkpoint_every: u64,
    /// Slots of the divergence guard's ring; the metrics are read at least this often.
    pub(super) ring: usize,
    /// The validation figure of the best parameters and of early stopping.
    pub(super) monitor: Monitor,
}

/// Largest count a resumed checkpoint may hold: 2^53, exact in the metrics' JSON numbers and
/// far past any run, so a crafted count cannot wrap when the run adds to it.
pub(super) const MAX_COUNT: u64 = 1 << 53;

impl Plan {
    /// A notice when the permutation is kept (`train.shuffle = "once"` or `"none"`, resident
    /// data) and B does not divide N: each epoch is ⌊N/B⌋ full minibatches, so the same N mod B
    /// rows are left out of every epoch and never trained on (with `"epoch"` each epoch leaves
    /// out other rows).
    pub(super) fn rows_never_trained(cfg: &Config, batch: usize, n_train: u64) -> Option<String> {
        use crate::config::Shuffle;
        let left = n_train % batch as u64;
        let name = match cfg.train.shuffle {
            Shuffle::Epoch => "epoch",
            Shuffle::Once => "once",
            Shuffle::None => "none",
        };
        let kept = cfg.train.shuffle != Shuffle::Epoch;
        (kept && left > 0 && cfg.data.mode == crate::config::DataMode::Resident).then(|| {
            format!(
                "notice: train.shuffle = \"{}\" keeps one order and an epoch is {} minibatches of {batch}: \
                 the same {left} of the {n_train} training rows ({:.1} %) are never trained on \
                 (shuffle = \"epoch\", or a batch size dividing {n_train}, uses them)",
                name,
                n_train / batch as u64,
                100.0 * left as f64 / n_train as f64
            )
        })
    }

    pub(super) fn new(cfg: &Config, batch: usize, n_train: u64, has_eval: bool) -> Self {
        let t = &cfg.train;
        let steps_per_epoch = n_train / batch as u64;
        let max_steps = if t.steps > 0 { t.steps } else { u64::MAX };
        let max_epochs = if t.one_pass {
            1
        } else if t.epochs > 0 {
            t.epochs as u64
        } else {
            u64::MAX
        };
        let total_steps = max_steps.min(max_epochs.saturating_mul(steps_per_epoch));
        Plan {
            batch,
            steps_per_epoch,
            max_steps,
            max_epochs,
            total_steps,
            log_every: t.log_every,
            eval_every: t.eval_every,
            has_eval,
            one_pass: t.one_pass,
            n_train,
            checkpoint_every: t.checkpoint_every,
            ring: guard::ring_len(t.log_every),
            monitor: Monitor::of(cfg),
        }
    }

    /// Whether the counters a run starts from (a resumed checkpoint's) are a point this plan can
    /// reach: the minibatch within its epoch exists, and no count is past [`MAX_COUNT`].
    pub(super) fn check_start(
        &self,
        prog: &Progress,
        run_dir: &std::path::Path,
    ) -> Result<(), TrainError> {
        let counts = [
            ("step", prog.step),
            ("epoch", prog.epoch),
            ("examples_seen", prog.examples_seen),
            ("evals_since_best", prog.evals_since_best),
        ];
        let problem = match counts.iter().find(|(_, v)| *v > MAX_COUNT) {
            Some((name, v)) => Some(format!("`{name}` = {v} is past 2^53")),
            // Checkpoints taken at an epoch's last step hold the next epoch's counters (step 0 of
            // it), so `step_in_epoch` is always below the epoch's step count.
            None if self.steps_per_epoch > 0 && prog.step_in_epoch >= self.steps_per_epoch => {
                Some(format!(
                    "`step_in_epoch` = {} but an epoch has {} steps, numbered from 0",
                    prog.step_in_epoch, self.steps_per_epoch
                ))
            }
            None if prog.step_in_epoch > prog.step => {
                Some(format!("`step_in_epoch` = {} is past `step` = {}", prog.step_in_epoch, prog.step))
            }
            None => best_and_clock_problem(prog, self.monitor),
        };
        match problem {
            Some(why) => Err(TrainError::Setup(format!(
                "checkpoint {}: metadata {why}",
                run_dir.join("last.safetensors").display()
            ))),
            None => Ok(()),
        }
    }

    /// Whether a run at `prog` has steps left (a resumed run may be complete already).
    pub(super) fn has_steps_after(&self, prog: &Progress) -> bool {
        self.steps_per_epoch > 0 && prog.step < self.max_steps && prog.epoch < self.max_epochs
    }

    /// Why a run that made its last step stopped (no early stop).
    pub(super) fn end_reason(&self, prog: &Progress) -> String {
        if self.one_pass {
            let used = self.steps_per_epoch.saturating_mul(self.batch as u64);
            match self.n_train.saturating_sub(used) {
                0 => format!("one pass over {} examples done", self.n_train),
                left => format!(
                    "one pass over {used} of {} examples done (the last {left} make no full batch of {})",
                    self.n_train, self.batch
                ),
            }
        } else if prog.step >= self.max_steps {
            let past = if prog.step > self.max_steps { "past" } else { "reached" };
            format!("{past} train.steps = {}", self.max_steps)
        } else {
            // Whole epochs done and steps into the next (a checkpoint at an epoch's last step
            // has not counted that epoch yet).
            let (whole, steps) = match prog.step_in_epoch >= self.steps_per_epoch {
                true => (prog.epoch + 1, 0),
                false => (prog.epoch, prog.step_in_epoch),
            };
            match (whole == self.max_epochs, steps) {
                (true, 0) => format!("reached train.epochs = {}", self.max_epochs),
                (_, 0) => format!("{whole} epochs done, past train.epochs = {}", self.max_epochs),
                _ => format!(
                    "{whole} epochs and {steps} steps done, past train.epochs = {}",
                    self.max_epochs
                ),
            }
        }
    }

    /// What the next step at `prog` does besides the update.
    pub(super) fn step_at(&self, prog: &Progress, monitors: &Monitors<impl Backend>) -> StepPlan {
        let next = prog.step + 1;
        let due = monitors.due(next);
        let epoch_end = prog.step_in_epoch + 1 == self.steps_per_epoch;
        let eval = self.has_eval
            && if self.eval_every > 0 { next.is_multiple_of(self.eval_every) } else { epoch_end };
        // A logged step's metrics are read back (then its gradient norm is needed).
        let log = next.is_multiple_of(self.log_every)
            || eval
            || due.curvature
            || due.noise
            || next == self.total_steps;
        // Other steps are read back (a sync) to save a checkpoint, or for the guard's ring.
        let read = log
            || checkpoint_due(self.checkpoint_every, next, epoch_end)
            || next.is_multiple_of(self.ring as u64);
        StepPlan { due, epoch_end, eval, log, read }
    }
}

/// What one step does besides the update.
pub(super) struct StepPlan {
    pub(super) due: Due,
    /// The step ends its epoch.
    pub(super) epoch_end: bool,
    pub(super) eval: bool,
    pub(super) log: bool,
    /// The metrics are read back (always when `log`).
    pub(super) read: bool,
}

/// `train.batch_size`, which must be fixed by now.
pub fn fixed_batch_size(cfg: &Config) -> Result<usize, TrainError> {
    match cfg.train.batch_size {
        BatchSize::Fixed(n) => Ok(n),
        BatchSize::Auto => Err(TrainError::Setup(
            "train.batch_size = \"auto\" must be resolved by a sweep before training (the CLI does this)"
                .into(),
        )),
    }
}

/// Why a run stops after an evaluation with validation 0-1 error `val_error`, if it does: the
/// target error is reached, or early stopping on the `monitor`ed figure (`true`: restore the
/// best parameters).
pub(super) fn stop_after_eval(
    cfg: &Config,
    prog: &Progress,
    monitor: Monitor,
    val_error: Option<f64>,
) -> Option<(String, bool)> {
    let t = &cfg.train;
    if let (true, Some(e)) = (t.target_val_error > 0.0, val_error) {
        if e <= t.target_val_error as f64 {
            let why = format!(
                "reached train.target_val_error = {} (validation 0-1 error {e:.4})",
                t.target_val_error
            );
            return Some((why, false));
        }
    }
    if t.patience > 0 && prog.evals_since_best >= t.patience as u64 {
        let reason = format!(
            "early stopping: {} did not improve in {} evaluations (best {:.4} at step {})",
            monitor.describe(),
            t.patience,
            prog.best_val.unwrap_or(f64::NAN),
            prog.best_step.unwrap_or(0)
        );
        return Some((reason, true));
    }
    None
}

/// What is wrong with a resumed checkpoint's best and clock, if anything: the best validation
/// figure is one the `monitor` can take (a 0-1 error, or a loss), recorded with its step, at or
/// before the checkpoint's step (a crafted -1 or NaN used to be kept, and no later evaluation
/// beat it); the elapsed time a duration.
fn best_and_clock_problem(prog: &Progress, monitor: Monitor) -> Option<String> {
    if !(prog.elapsed_s.is_finite() && prog.elapsed_s >= 0.0) {
        return Some(format!("`elapsed_s` = {} is no duration in seconds", prog.elapsed_s));
    }
    let key = monitor.key();
    match (prog.best_val, prog.best_step) {
        (Some(v), _) if monitor.problem(v).is_some() => monitor.problem(v),
        (Some(_), Some(s)) if s > prog.step => {
            Some(format!("`best_step` = {s} is past `step` = {}", prog.step))
        }
        (Some(_), None) => Some(format!("`{key}` is recorded without `best_step`")),
        (None, Some(_)) => Some(format!("`best_step` is recorded without `{key}`")),
        _ => None,
    }
}

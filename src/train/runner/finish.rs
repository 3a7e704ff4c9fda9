//! The end of a run: the final checkpoint, the final validation figures, summary.json and
//! the plots.

use super::*;

impl<B: Backend> Run<'_, B> {
    /// After the loop: the final checkpoint, the final validation figures, summary.json and
    /// the plots.
    pub(super) fn finish(mut self, stopped: Option<String>) -> Result<TrainSummary, TrainError> {
        let b = self.b;
        let stopped_reason = stopped.unwrap_or_else(|| self.plan.end_reason(&self.prog));
        if self.prog.step_in_epoch >= self.plan.steps_per_epoch {
            self.prog.epoch += 1;
            self.prog.step_in_epoch = 0;
        }
        self.bar.finish_and_clear();
        b.sync()?;
        let train_s = (self.run_start.elapsed().as_secs_f64() - self.side_s).max(0.0);
        let g = self.st.read_guarded(b)?;
        self.guard(&g, false)?;
        let clip_events = self.ckpt.clip_base + g.step.clip_events;
        let root = self.root();
        // The last scheduled evaluation, when it was of these very parameters, is the final
        // one (evaluating them again doubled the end of a run with a large validation set).
        let evaluated = self
            .last_line
            .as_ref()
            .filter(|l| l.step == self.prog.step && l.val_loss.is_some() && !self.restored_best)
            .map(|l| (l.val_loss, l.val_error));
        let (final_val_loss, final_val_error) = match (root, evaluated) {
            (true, Some(figures)) => figures,
            (true, None) => self.eval.evaluate_val(b, &self.model, &self.st.params)?,
            (false, _) => (None, None),
        };
        // The run's wall time includes its final evaluation (`elapsed_s`, and `examples_per_s`
        // of it, left it out: the same work read 4× faster when no evaluation was due).
        self.prog.elapsed_s = self.elapsed_before + self.run_start.elapsed().as_secs_f64();
        // The final evaluation reports the final parameters; only scheduled evaluations count
        // for the best and for early stopping's patience, so that a run stopped between them
        // (Ctrl-C, train.steps) and resumed keeps the best and stops where an uninterrupted
        // run does (a final evaluation that counted gave the resumed run a best the
        // uninterrupted one never had).
        if root && !self.summary_only {
            let saved = self.ckpt.save_last(b, &self.st, &self.prog, clip_events);
            self.saved(saved)?;
        }
        if let Some(mut w) = self.metrics.take() {
            w.sync()?;
        }
        let mut data_parallel = match &self.dp {
            Some(dp) => Some(dp.summary(b, &self.st)?),
            None => None,
        };
        if let Some(r) = self.ranks.as_deref_mut() {
            if !self.restored_best {
                ranked::check_params_agree(r, b, &self.st)?;
            }
            data_parallel.iter_mut().for_each(|d| d.ranks = Some(r.size()));
        }
        if let Some(d) = data_parallel.as_ref().filter(|d| !d.replicas_identical) {
            return Err(TrainError::Setup(format!(
                "data-parallel replicas diverged: their parameters differ from replica 0's after step {} ({} workers)",
                self.prog.step, d.workers
            )));
        }
        let (prog, plan) = (&self.prog, &self.plan);
        let last_line = self.last_line.as_ref();
        let summary = TrainSummary {
            command: "train",
            backend: format!("{:?}", b.kind()).to_lowercase(),
            device: b.device_name(),
            params: self.model.num_params(),
            batch_size: plan.batch,
            steps: prog.step,
            epochs_completed: prog.epoch,
            examples_seen: prog.examples_seen,
            stopped_reason,
            final_train_loss: last_line.map(|l| l.train_loss),
            final_train_error: last_line.and_then(|l| l.train_error),
            final_val_loss,
            final_val_error,
            best_val_error: plan.monitor.split(prog.best_val).0,
            best_val_loss: plan.monitor.split(prog.best_val).1,
            best_step: prog.best_step,
            restored_best: self.restored_best,
            clip_events,
            elapsed_s: prog.elapsed_s,
            train_s,
            examples_per_s: prog.examples_seen as f64 / prog.elapsed_s.max(1e-9),
            peak_rss_mib: peak_rss_mib(),
            init: self.ckpt.init.clone(),
            data_parallel,
            precision: self.st.mixed.is_some().then_some("f16"),
            mixed_precision: match self.st.mixed.as_ref() {
                Some(m) => Some(m.read(b)?),
                None => None,
            },
        };
        if root {
            crate::report::jsonl::write_pretty(&self.run_dir.join("summary.json"), &summary)?;
            plot_metrics(self.run_dir, self.eval.is_class)?;
        }
        Ok(summary)
    }

    /// summary.json of a run stopped at its first non-finite step `at` (the same keys as a
    /// finished run's, `null` where there is no value: the parameters are not finite, so there
    /// is no final evaluation), and its plots up to there.
    pub(super) fn write_diverged(&mut self, at: &Progress, what: &str) -> Result<(), TrainError> {
        if let Some(mut w) = self.metrics.take() {
            w.sync()?;
        }
        let b = self.b;
        let elapsed_s = self.elapsed_before + self.run_start.elapsed().as_secs_f64();
        let last_line = self.last_line.as_ref().filter(|l| l.step <= at.step);
        let summary = TrainSummary {
            command: "train",
            backend: format!("{:?}", b.kind()).to_lowercase(),
            device: b.device_name(),
            params: self.model.num_params(),
            batch_size: self.plan.batch,
            steps: at.step,
            epochs_completed: at.epoch,
            examples_seen: at.examples_seen,
            stopped_reason: format!("diverged: {what}"),
            final_train_loss: last_line.map(|l| l.train_loss).filter(|v| v.is_finite()),
            final_train_error: last_line.and_then(|l| l.train_error),
            final_val_loss: None,
            final_val_error: None,
            best_val_error: self.plan.monitor.split(at.best_val).0,
            best_val_loss: self.plan.monitor.split(at.best_val).1,
            best_step: at.best_step,
            restored_best: false,
            clip_events: last_line.map_or(self.ckpt.clip_base, |l| l.clip_events),
            elapsed_s,
            train_s: (self.run_start.elapsed().as_secs_f64() - self.side_s).max(0.0),
            examples_per_s: at.examples_seen as f64 / elapsed_s.max(1e-9),
            peak_rss_mib: peak_rss_mib(),
            init: self.ckpt.init.clone(),
            data_parallel: None,
            precision: self.st.mixed.is_some().then_some("f16"),
            mixed_precision: None,
        };
        crate::report::jsonl::write_pretty(&self.run_dir.join("summary.json"), &summary)?;
        plot_metrics(self.run_dir, self.eval.is_class)
    }
}

/// Whether `run_dir`'s summary.json is not that of the run at `step`: none, one that does not
/// parse, or an earlier session's.
pub(super) fn summary_behind(run_dir: &Path, step: u64) -> bool {
    let path = run_dir.join("summary.json");
    let text = crate::bounded_read::read_to_string(&path, crate::report::jsonl::MAX_JSONL_BYTES);
    let steps = text
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()?.get("steps")?.as_u64());
    steps != Some(step)
}

/// The record of `step` in metrics.jsonl at `path`, when its last line is that step's.
pub(super) fn last_metrics_line(path: &Path, step: u64) -> Option<MetricsLine> {
    let last = super::super::metrics_file::last_line(path)?;
    serde_json::from_slice::<MetricsLine>(last.trim_ascii()).ok().filter(|l| l.step == step)
}

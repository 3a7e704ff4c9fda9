//! Range checks of `train.accumulate` and `train.workers` (gradient accumulation and data
//! parallel replicas; see `train::parallel`).

use super::{BatchSize, Config, ConfigError};

/// The most data-parallel replicas one process runs (`train.workers`, `sweep --workers`): each
/// is a backend of its own with a full model state and copy of the data.
pub const MAX_WORKERS: usize = 1024;

/// `sweep --workers` counts: each in `1..=MAX_WORKERS`.
pub fn check_worker_counts(counts: &[usize]) -> Result<(), String> {
    match counts.iter().find(|&&n| n == 0 || n > MAX_WORKERS) {
        Some(n) => Err(format!("--workers: worker counts must be in 1..={MAX_WORKERS}, got {n}")),
        None => Ok(()),
    }
}

impl Config {
    /// `train.accumulate` and `train.workers` are ≥ 1, their product divides a fixed
    /// `train.batch_size`, and the curvature monitor (one whole-batch R-operator pass) is off
    /// when either is above 1.
    pub(super) fn validate_parallel(
        &self,
        bad: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let t = &self.train;
        if t.accumulate == 0 {
            return Err(bad("train.accumulate", "must be ≥ 1 (1 = no accumulation)".into()));
        }
        if t.workers == 0 || t.workers > MAX_WORKERS {
            return Err(bad(
                "train.workers",
                format!("must be in 1..={MAX_WORKERS} (1 = one replica), got {}", t.workers),
            ));
        }
        if let BatchSize::Fixed(b) = t.batch_size {
            if !b.is_multiple_of(t.workers) {
                return Err(bad(
                    "train.workers",
                    format!("must divide train.batch_size ({b}), got {}", t.workers),
                ));
            }
            let per_worker = b / t.workers;
            if !per_worker.is_multiple_of(t.accumulate) {
                return Err(bad(
                    "train.accumulate",
                    format!(
                        "must divide the per-worker batch (train.batch_size {b} / train.workers {} = {per_worker}), got {}",
                        t.workers, t.accumulate
                    ),
                ));
            }
        }
        if (t.accumulate > 1 || t.workers > 1) && self.monitor.curvature_every > 0 {
            return Err(bad(
                "monitor.curvature_every",
                "needs train.accumulate = 1 and train.workers = 1 (the R-operator pass is whole-batch)"
                    .into(),
            ));
        }
        Ok(())
    }
}

//! The errors of a training run.

use crate::error::domain_error;

domain_error! {
    /// Why a training run failed (and the shared `Backend`, `Data`,
    /// `Checkpoint` and `Report` sources).
    pub enum TrainError {
        #[error("{0}")]
        Setup(String),
        #[error("training diverged at step {step} ({what} is not finite); the last good checkpoint is {last_good}")]
        Diverged { step: u64, what: String, last_good: String },
        /// A checkpoint would hold a non-finite value (it is not saved).
        #[error("training diverged: after step {step} {what}")]
        NonFinite { step: u64, what: String },
        /// `--resume` of a run that has no steps left under its config.
        #[error("the run is already complete at step {step} ({reason}); {remedy}")]
        AlreadyComplete { step: u64, reason: String, remedy: String },
    }
}

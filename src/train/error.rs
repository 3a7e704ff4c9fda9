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
    }
}

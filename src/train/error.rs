//! The errors of a training run.

use thiserror::Error;

use super::checkpoint::CheckpointError;
use crate::backend::BackendError;
use crate::data::DataError;
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

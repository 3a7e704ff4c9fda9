//! Training: the optimizer step over a minibatch, the training loop, checkpoints.

pub mod checkpoint;
pub mod diagnostics;
pub mod rnn;
pub mod runner;
pub mod step;

pub use runner::{run_train, MetricsLine, TrainError, TrainOptions, TrainSummary};
pub use step::{Clip, Optimizer, StepMetrics, TrainState};

//! Training: the optimizer step over a minibatch.

pub mod step;

pub use step::{Optimizer, StepMetrics, TrainState};

//! Training, in phases: the batch source (`batches`), the model state and one recorded step
//! ([`step`]) with the update rule, clipping and lr schedule of [`optimizer`], the evaluator
//! (`eval`), the checkpointer (`checkpointer`, on the file format of [`checkpoint`]), the
//! monitors (`monitors`), the divergence guard (`guard`), the outputs (`metrics`), and the
//! loops that call them: [`runner`] for the MLP, [`rnn`] for the recurrent network.

pub mod amp;
mod batches;
mod best;
pub use crate::checkpoint;
mod checkpointer;
pub mod diagnostics;
mod error;
mod eval;
pub use eval::{EvalSet, EVAL_CHUNK};
mod guard;
pub mod interrupt;
mod metrics;
mod metrics_file;
mod monitors;
pub mod optimizer;
pub mod parallel;
mod plan;
mod ranked;
pub mod resume_guard;
pub mod rnn;
pub mod runner;
pub mod step;

pub use error::TrainError;
pub use metrics::{peak_rss_mib, plot_metrics, MetricsLine, TrainOptions, TrainSummary};
pub use runner::{load_into, run_train, run_train_ranks, run_train_workers};
pub use step::{Clip, Optimizer, StepMetrics, TrainState};

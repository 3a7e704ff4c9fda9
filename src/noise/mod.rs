//! Gradient noise: the minibatch gradient's standard error against batch size, the noise scale
//! B_simple (and B_noise with curvature), and the estimators behind them.

pub mod estimators;
pub mod experiment;
pub mod probe;

pub use estimators::{eps_opt, loglog_fit, two_batch_estimates, without_replacement, NoiseScaleEma};
pub use experiment::{measure, measure_with, NoiseArgs, NoiseError, NoiseRow, NoiseSummary, INIT_DRAWS};
pub use probe::GradProbe;

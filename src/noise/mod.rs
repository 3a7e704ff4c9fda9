//! Gradient noise: the minibatch gradient's standard error against batch size, the noise scale
//! B_simple (and B_noise with curvature), and the estimators behind them.

pub mod command;
pub mod estimators;
pub mod probe;
pub mod ttt;

pub use estimators::{eps_opt, loglog_fit, two_batch_estimates, NoiseScaleEma};
pub use probe::GradProbe;

//! Where a training step's time goes: every dispatch of the real step timed (GPU pass
//! timestamps, or host timers on the CPU backend) and named by op and model layer, with its
//! analytic FLOPs and bytes, against the device's peaks; NVML telemetry for sweeps.
//!
//! [`wrapper::Profiled`] wraps a backend so the model and training code run unchanged;
//! [`cost`] names and costs each op; [`run::profile_batch`] profiles one batch size;
//! [`peaks`] finds the peaks; [`telemetry`] and [`sampler`] read NVML where it exists.

pub mod cost;
mod cost_half;
pub mod hooks;
pub mod peaks;
pub mod peers;
pub mod probe;
pub mod report;
pub mod run;
pub use crate::telemetry::sampler;
pub mod sweep_util;
pub use crate::telemetry;
pub mod wrapper;
mod wrapper_half;

pub use hooks::{Profilable, TimingMethod};
pub use peaks::{Bound, Peak, PeakSource, Peaks};
pub use run::{profile_batch, profile_batch_until, BatchProfile, GroupStats};
pub use wrapper::Profiled;

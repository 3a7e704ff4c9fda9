//! What a backend adds for timing a training step: device timestamps and the device limits the
//! memory model (`schedule::memory`) checks against. Re-exported at `schedule::sweep::Timed` and
//! `schedule::memory::DeviceLimits`.

use serde::{Deserialize, Serialize};

use super::{Backend, BackendError};

/// What a backend adds for timing: device timestamps and limits. Implemented next to each
/// backend (`backend/cpu/timed.rs`, `backend/gpu/timed.rs`).
pub trait Timed: Backend {
    /// Record timestamp `slot` into the current recording (GPU); no-op on the CPU.
    fn mark(&self, slot: u32);
    /// Timestamps `0..count` in ns, or `None` without device timestamps (submits and waits).
    fn read_marks(&self, count: u32) -> Result<Option<Vec<f64>>, BackendError>;
    /// The limits the memory model checks against.
    fn device_limits(&self, budget: Option<u64>) -> DeviceLimits;
    /// Release cached state held for buffers of the previous batch size.
    fn release_caches(&self) {}
    /// A matmul size that takes well under a second here, for the peak measurement.
    fn peak_probe_size(&self) -> usize;
}

/// The adapter limits (and the configured budget) a training step must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLimits {
    /// Largest buffer the device can create, bytes.
    pub max_buffer_size: u64,
    /// Largest storage-buffer binding, bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Workgroups per dispatch dimension.
    pub max_workgroups_per_dim: u32,
    /// Total device memory the run may use, bytes (`None`: no budget).
    pub memory_budget: Option<u64>,
}

impl DeviceLimits {
    /// The limits an adapter reports, with an optional budget in bytes.
    pub fn from_wgpu(limits: &wgpu::Limits, memory_budget: Option<u64>) -> Self {
        DeviceLimits {
            max_buffer_size: limits.max_buffer_size,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            memory_budget,
        }
    }

    /// No limits at all (the CPU backend): everything fits.
    pub fn unlimited() -> Self {
        DeviceLimits {
            max_buffer_size: u64::MAX,
            max_storage_buffer_binding_size: u64::MAX,
            max_workgroups_per_dim: u32::MAX,
            memory_budget: None,
        }
    }

    /// Workgroups a 1-D elementwise launch may use when folded onto a 2-D grid:
    /// `max_workgroups_per_dim²`.
    pub fn max_elementwise_workgroups(&self) -> u64 {
        let m = u64::from(self.max_workgroups_per_dim);
        m.saturating_mul(m)
    }
}

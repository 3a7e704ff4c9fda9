//! [`Timed`] for the GPU: timestamp queries, wgpu limits, bind-group cache release.

use super::GpuBackend;
use crate::backend::timed::{DeviceLimits, Timed};
use crate::backend::BackendError;

impl Timed for GpuBackend {
    fn mark(&self, slot: u32) {
        self.dev.timestamp(slot);
    }
    fn read_marks(&self, count: u32) -> Result<Option<Vec<f64>>, BackendError> {
        self.dev.read_timestamps_ns(count)
    }
    fn device_limits(&self, budget: Option<u64>) -> DeviceLimits {
        DeviceLimits::from_wgpu(&self.dev.ctx.limits, budget)
    }
    fn release_caches(&self) {
        self.dev.clear_bind_groups();
    }
    fn peak_probe_size(&self) -> usize {
        if self.dev.ctx.summary.device_type == "Cpu" {
            1024
        } else {
            4096
        }
    }
}

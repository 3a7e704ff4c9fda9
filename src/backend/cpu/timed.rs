//! [`Timed`] for the CPU: no device timestamps (host time), no limits but the memory budget.

use super::CpuBackend;
use crate::backend::timed::{DeviceLimits, Timed};
use crate::backend::BackendError;

impl Timed for CpuBackend {
    fn mark(&self, _slot: u32) {}
    fn read_marks(&self, _count: u32) -> Result<Option<Vec<f64>>, BackendError> {
        Ok(None)
    }
    fn device_limits(&self, budget: Option<u64>) -> DeviceLimits {
        let mut l = DeviceLimits::unlimited();
        l.memory_budget = budget;
        l
    }
    fn peak_probe_size(&self) -> usize {
        2048
    }
}

//! What a backend offers the profiler: per-dispatch GPU timing and its counters.

use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::{DeviceCounters, DispatchTime, GpuBackend};
use crate::backend::BackendError;
use crate::schedule::sweep::Timed;

/// How the per-op times of a profile are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingMethod {
    /// GPU timestamps at the beginning and end of each dispatch's own compute pass (a
    /// profiled step gives every dispatch a pass; a plain step shares passes).
    PassTimestamps,
    /// Host timers around each op of an eager backend (the CPU backend).
    HostTimers,
    /// Host timers around each op with a device sync after it (a GPU without timestamps:
    /// the sync changes what is measured, so the per-op split is a rough guide only).
    HostTimersSynced,
}

impl TimingMethod {
    pub fn describe(self) -> &'static str {
        match self {
            TimingMethod::PassTimestamps => {
                "GPU pass timestamps (TIMESTAMP_QUERY; one compute pass per dispatch while profiled)"
            }
            TimingMethod::HostTimers => "host timers around each op (eager CPU backend)",
            TimingMethod::HostTimersSynced => {
                "host timers around each op with a device sync after it (no GPU timestamps)"
            }
        }
    }
}

/// A backend the profiler can time op by op.
pub trait Profilable: Timed {
    fn timing_method(&self) -> TimingMethod;
    /// Start timing each dispatch (GPU pass timestamps); a no-op for host timing.
    fn begin_dispatch_timing(&self) -> Result<(), BackendError>;
    /// Tag the dispatches recorded from now on.
    fn set_dispatch_tag(&self, tag: u32);
    /// Stop and return the dispatches' GPU times (submits and waits) and how many went untimed.
    fn end_dispatch_timing(&self) -> Result<(Vec<DispatchTime>, u64), BackendError>;
    /// Dispatches, submits and host↔device bytes so far (zeros on the CPU backend).
    fn counters(&self) -> DeviceCounters;
    /// The adapter's PCI bus id as wgpu reports it (empty when unknown), for NVML.
    fn pci_bus_id(&self) -> String;
    /// The adapter's name as the peak table matches it.
    fn adapter_name(&self) -> String;
    /// Whether f16 products may run on tensor cores here (the cooperative-matrix kernel).
    fn tensor_f16(&self) -> bool {
        false
    }
}

impl Profilable for GpuBackend {
    fn timing_method(&self) -> TimingMethod {
        if self.dev.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            TimingMethod::PassTimestamps
        } else {
            TimingMethod::HostTimersSynced
        }
    }
    fn begin_dispatch_timing(&self) -> Result<(), BackendError> {
        match self.timing_method() {
            TimingMethod::PassTimestamps => self.dev.begin_dispatch_timing(),
            _ => Ok(()),
        }
    }
    fn set_dispatch_tag(&self, tag: u32) {
        self.dev.set_dispatch_tag(tag);
    }
    fn end_dispatch_timing(&self) -> Result<(Vec<DispatchTime>, u64), BackendError> {
        self.dev.end_dispatch_timing()
    }
    fn counters(&self) -> DeviceCounters {
        self.dev.counters()
    }
    fn pci_bus_id(&self) -> String {
        self.dev.ctx.adapter.get_info().device_pci_bus_id
    }
    fn adapter_name(&self) -> String {
        self.dev.ctx.summary.name.clone()
    }
    fn tensor_f16(&self) -> bool {
        crate::backend::gpu::matmul_f16::coop_enabled()
            && crate::backend::gpu::matmul_coop::available(&self.dev.ctx)
            && crate::backend::gpu::coop_check::trusted(&self.dev)
    }
}

impl Profilable for CpuBackend {
    fn timing_method(&self) -> TimingMethod {
        TimingMethod::HostTimers
    }
    fn begin_dispatch_timing(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn set_dispatch_tag(&self, _tag: u32) {}
    fn end_dispatch_timing(&self) -> Result<(Vec<DispatchTime>, u64), BackendError> {
        Ok((Vec::new(), 0))
    }
    fn counters(&self) -> DeviceCounters {
        DeviceCounters::default()
    }
    fn pci_bus_id(&self) -> String {
        String::new()
    }
    fn adapter_name(&self) -> String {
        crate::backend::Backend::device_name(self)
    }
}

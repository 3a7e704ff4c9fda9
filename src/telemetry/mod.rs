//! GPU telemetry (NVML) behind a trait, so the sweep and the profiler run the same code with
//! and without an NVIDIA driver. `nvml-wrapper` loads `libnvidia-ml` at run time: where it is
//! absent, [`open_nvml`] returns the reason and callers print one notice line. [`sampler`] reads a
//! source in a background thread during a sweep. Below `schedule` and `profile`, which both use
//! it (re-exported at `profile::telemetry` and `profile::sampler`).

use std::ffi::OsStr;

use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

pub mod sampler;

/// The NVML shared library's default name (nvml-wrapper's own default).
const NVML_LIB: &str = "libnvidia-ml.so";

/// Peaks computed from NVML's device figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NvmlPeaks {
    pub gflops: f64,
    pub gbps: f64,
}

impl NvmlPeaks {
    /// `cores × sm_mhz × 2` FLOP/s (an FMA per core per clock); `bus_bits / 8 × mem_mhz × 2`
    /// bytes/s (double data rate; NVML reports GDDR6X at half its effective rate too).
    pub fn from_device(cores: u32, sm_mhz: u32, bus_bits: u32, mem_mhz: u32) -> Self {
        NvmlPeaks {
            gflops: cores as f64 * sm_mhz as f64 * 2.0 / 1e3,
            gbps: bus_bits as f64 / 8.0 * mem_mhz as f64 * 2.0 / 1e3,
        }
    }
}

/// One reading of the device.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UtilSample {
    /// Percent of the last sample period during which a kernel ran.
    pub gpu_util_pct: f64,
    pub sm_clock_mhz: f64,
    pub power_w: f64,
    /// Device memory used by this process, bytes (`None` when the driver does not say).
    pub process_mem_bytes: Option<u64>,
}

/// A source of device readings.
pub trait Telemetry: Send {
    /// The device's name as the source reports it.
    fn name(&self) -> String;
    /// Peaks computed from the device's cores, clocks and bus, when the source knows them.
    fn peaks(&self) -> Option<NvmlPeaks>;
    /// One reading now (`None` when the source could not read the device).
    fn sample(&mut self) -> Option<UtilSample>;
    /// The SM clock the device runs at unthrottled, MHz (`None` when the source does not say):
    /// what a window's mean clock is held against to tell a throttled measurement.
    fn max_sm_clock_mhz(&self) -> Option<f64> {
        None
    }
}

/// A PCI address, `domain:bus:device.function`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

/// Parse a PCI bus id as wgpu (`0000:3b:00.0`) or NVML (`00000000:3B:00.0`) writes it, or
/// without the domain (`3b:00.0`); `None` for an empty or malformed id.
pub fn parse_pci_bus_id(s: &str) -> Option<PciAddress> {
    let s = s.trim();
    let (rest, function) = s.rsplit_once('.')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, device) = match parts.as_slice() {
        [d, b, dev] => (u32::from_str_radix(d, 16).ok()?, *b, *dev),
        [b, dev] => (0, *b, *dev),
        _ => return None,
    };
    Some(PciAddress {
        domain,
        bus: u8::from_str_radix(bus, 16).ok()?,
        device: u8::from_str_radix(device, 16).ok()?,
        function: u8::from_str_radix(function, 16).ok()?,
    })
}

/// NVML's reader of one device, matched to the wgpu adapter.
pub struct NvmlTelemetry {
    nvml: Nvml,
    index: u32,
    name: String,
}

/// Why NVML telemetry is unavailable (printed as one notice line).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("NVML not available ({0})")]
    Unavailable(String),
    #[error("no NVML device has the adapter's PCI bus id {0:?}")]
    NoMatch(String),
}

/// Open NVML and find the device at the adapter's PCI bus id (by name when wgpu gives no id
/// and exactly one NVML device carries the adapter's name).
pub fn open_nvml(pci_bus_id: &str, adapter_name: &str) -> Result<NvmlTelemetry, TelemetryError> {
    open_nvml_from(OsStr::new(NVML_LIB), pci_bus_id, adapter_name)
}

/// [`open_nvml`] with the library at `lib` (tests pass a path that does not exist).
pub fn open_nvml_from(
    lib: &OsStr,
    pci_bus_id: &str,
    adapter_name: &str,
) -> Result<NvmlTelemetry, TelemetryError> {
    let unavailable = |e: nvml_wrapper::error::NvmlError| {
        TelemetryError::Unavailable(match e {
            // "a libloading error occurred: libnvidia-ml.so: cannot open ...": the library's own
            // words say it all (no NVIDIA driver on this machine).
            nvml_wrapper::error::NvmlError::LibloadingError(l) => l.to_string(),
            e => e.to_string(),
        })
    };
    let nvml = Nvml::builder().lib_path(lib).init().map_err(unavailable)?;
    let want = parse_pci_bus_id(pci_bus_id);
    let count = nvml.device_count().map_err(unavailable)?;
    let mut by_name = Vec::new();
    for index in 0..count {
        let Ok(dev) = nvml.device_by_index(index) else { continue };
        let name = dev.name().unwrap_or_default();
        let addr = dev.pci_info().ok().and_then(|p| parse_pci_bus_id(&p.bus_id));
        if want.is_some() && addr == want {
            return Ok(NvmlTelemetry { nvml, index, name });
        }
        if !adapter_name.is_empty() && name == adapter_name {
            by_name.push((index, name));
        }
    }
    match (want, by_name.len()) {
        (None, 1) => {
            let (index, name) = by_name.remove(0);
            Ok(NvmlTelemetry { nvml, index, name })
        }
        _ => Err(TelemetryError::NoMatch(pci_bus_id.to_string())),
    }
}

impl Telemetry for NvmlTelemetry {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn peaks(&self) -> Option<NvmlPeaks> {
        let dev = self.nvml.device_by_index(self.index).ok()?;
        Some(NvmlPeaks::from_device(
            dev.num_cores().ok()?,
            dev.max_clock_info(Clock::SM).ok()?,
            dev.memory_bus_width().ok()?,
            dev.max_clock_info(Clock::Memory).ok()?,
        ))
    }

    fn max_sm_clock_mhz(&self) -> Option<f64> {
        let dev = self.nvml.device_by_index(self.index).ok()?;
        dev.max_clock_info(Clock::SM).ok().map(|c| c as f64)
    }

    fn sample(&mut self) -> Option<UtilSample> {
        let dev = self.nvml.device_by_index(self.index).ok()?;
        let pid = std::process::id();
        let mine = |procs: Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>| {
            procs.into_iter().find(|p| p.pid == pid).and_then(|p| match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            })
        };
        // A Vulkan compute process may be listed as a graphics process.
        let process_mem_bytes = dev
            .running_compute_processes()
            .ok()
            .and_then(mine)
            .or_else(|| dev.running_graphics_processes().ok().and_then(mine));
        Some(UtilSample {
            gpu_util_pct: dev.utilization_rates().ok()?.gpu as f64,
            sm_clock_mhz: dev.clock_info(Clock::SM).map(|c| c as f64).unwrap_or(f64::NAN),
            power_w: dev.power_usage().map(|mw| mw as f64 / 1e3).unwrap_or(f64::NAN),
            process_mem_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_ids_from_wgpu_and_nvml_agree() {
        let wgpu = parse_pci_bus_id("0000:3b:00.0");
        let nvml = parse_pci_bus_id("00000000:3B:00.0");
        assert_eq!(wgpu, Some(PciAddress { domain: 0, bus: 0x3b, device: 0, function: 0 }));
        assert_eq!(wgpu, nvml);
        assert_eq!(parse_pci_bus_id("3b:00.0"), wgpu);
        assert_eq!(
            parse_pci_bus_id("0001:c1:1f.7"),
            Some(PciAddress { domain: 1, bus: 0xc1, device: 0x1f, function: 7 })
        );
        assert_ne!(parse_pci_bus_id("0000:3b:00.1"), nvml);
        for bad in ["", "llvmpipe", "0000:3b:00", "0000:zz:00.0", "1:2:3:4.0"] {
            assert_eq!(parse_pci_bus_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn missing_library_is_a_notice_not_a_failure() {
        let e = open_nvml_from(OsStr::new("/nonexistent/libnvidia-ml.so.1"), "0000:3b:00.0", "x")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.starts_with("NVML not available")));
    }
}

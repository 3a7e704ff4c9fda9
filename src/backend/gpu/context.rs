//! Adapter enumeration, choice and device creation.
//!
//! Choice order (DESIGN.md): discrete > integrated > virtual > software (lavapipe), with the
//! Vulkan backend preferred over GL on equal type. `--adapter SUBSTRING` picks by name.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::backend::{BackendError, Result};

/// What `batchscope devices` prints about one adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub device_type: String,
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
    pub vendor: u32,
    pub device: u32,
    pub limits: LimitSummary,
    pub features: Vec<String>,
    /// The cooperative-matrix configurations the adapter offers (`16x16x16 f16*f16->f32`).
    pub cooperative_matrices: Vec<String>,
    /// Why batchscope's f16 products cannot run on its tensor cores (`None`: they can, after
    /// the first-use check of their products, `super::coop_check`).
    pub tensor_f16_unavailable: Option<String>,
    /// The side of the square tiles they run in where they can (16, or 8 on Mesa's lavapipe;
    /// `super::coop_shape`).
    pub tensor_f16_tile: Option<u32>,
    /// The tile-load widths they can run with there (`halves`, `vec4`, and `vec8` where the
    /// adapter offers `PASSTHROUGH_SHADERS`; `super::coop_shape::LoadWidth`); empty where none.
    pub tensor_f16_loads: Vec<String>,
    /// `device_type` is `wgpu::DeviceType::Cpu` (see [`AdapterSummary::runs_on_cpu`]).
    #[serde(skip)]
    pub on_cpu: bool,
}

impl AdapterSummary {
    /// Whether the adapter runs shaders on the CPU (lavapipe, SwiftShader): there an
    /// invocation runs both sides of a branch under masks, even one uniform over a workgroup.
    pub fn runs_on_cpu(&self) -> bool {
        self.on_cpu
    }

    /// The loop iterations one invocation may run here where the driver may cap them: Mesa's
    /// llvmpipe (lavapipe) of Debian 12 (Mesa 22.3) stops every shader invocation after 65 535
    /// iterations of its loops together (gallivm's loop limiter), silently: the softmax of a
    /// 32 768-class row ran its first two loops and wrote 1 of its gradients. Mesa 26's has no
    /// such cap: [`super::launch::check_loop_budget`] measures whether this one does.
    pub fn loop_iteration_limit(&self) -> Option<u64> {
        // `on_cpu` first: nothing to look at (or allocate) on a real GPU, every step.
        (self.on_cpu && self.name.to_ascii_lowercase().contains("llvmpipe")).then_some(65_535)
    }
}

/// The limits that bound batch size and kernel launch shapes.
#[derive(Clone, Debug, Serialize)]
pub struct LimitSummary {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub min_uniform_buffer_offset_alignment: u32,
}

impl LimitSummary {
    pub fn from_limits(l: &wgpu::Limits) -> Self {
        LimitSummary {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment,
        }
    }
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// The features batchscope uses when an adapter offers them.
pub fn wanted_features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::SUBGROUP
        | wgpu::Features::SHADER_F16
        | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        // The cooperative kernels with 16-byte tile loads (backend/gpu/retype.rs).
        | wgpu::Features::PASSTHROUGH_SHADERS
}

pub fn new_instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// All adapters, best first by the choice order.
pub fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (type_rank(info.device_type), backend_rank(info.backend))
    });
    adapters
}

pub fn summarize(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    AdapterSummary {
        index,
        name: info.name,
        device_type: format!("{:?}", info.device_type),
        backend: format!("{:?}", info.backend),
        driver: info.driver,
        driver_info: info.driver_info,
        vendor: info.vendor,
        device: info.device,
        limits: LimitSummary::from_limits(&limits),
        features: features.iter_names().map(|(n, _)| n.to_string()).collect(),
        cooperative_matrices: super::matmul_coop::configurations(adapter),
        tensor_f16_unavailable: super::matmul_coop::adapter_reason(adapter),
        tensor_f16_tile: super::coop_shape::adapter_shape(adapter).ok().map(|s| s.tile),
        tensor_f16_loads: match super::coop_shape::adapter_shape(adapter) {
            Ok(_) => super::coop_shape::LoadWidth::ALL
                .into_iter()
                .filter(|w| features.contains(w.features()))
                .map(|w| w.name().to_string())
                .collect(),
            Err(_) => Vec::new(),
        },
        on_cpu: info.device_type == wgpu::DeviceType::Cpu,
    }
}

/// Every adapter wgpu sees, best first.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let instance = new_instance();
    enumerate(&instance).iter().enumerate().map(|(i, a)| summarize(i, a)).collect()
}

/// Errors raised outside any error scope, and device loss, land here; `check` turns them into
/// typed errors at the next synchronisation point instead of a panic or a hang.
#[derive(Default)]
pub struct DeviceFaults {
    pub uncaptured: Mutex<Option<String>>,
    pub lost: Mutex<Option<String>>,
}

impl DeviceFaults {
    pub fn check(&self) -> Result<()> {
        if let Some(reason) = self.lost.lock().map(|g| g.clone()).unwrap_or(None) {
            return Err(BackendError::DeviceLost(reason));
        }
        if let Some(msg) = self.uncaptured.lock().ok().and_then(|mut g| g.take()) {
            return Err(BackendError::Validation { what: "recorded GPU work".into(), message: msg });
        }
        Ok(())
    }
}

/// An open device with the adapter's own limits.
pub struct GpuContext {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub summary: AdapterSummary,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub faults: Arc<DeviceFaults>,
    /// The tile the cooperative-matrix kernels run in here, or why they cannot, found once
    /// (`super::matmul_coop::coop_shape`): asked for every f16 product recorded.
    pub coop_shape: std::sync::OnceLock<std::result::Result<super::coop_shape::CoopShape, String>>,
    /// The first-use check's verdict on each cooperative kernel (`super::coop_check::KERNELS`
    /// order), found when the kernel is first considered.
    pub coop_verdicts:
        [std::sync::OnceLock<super::coop_check::Verdict>; super::coop_check::KERNELS.len()],
}

impl GpuContext {
    /// Open the best adapter, or the first whose name contains `wanted` (case-insensitive).
    pub fn open(wanted: Option<&str>) -> Result<Self> {
        let instance = new_instance();
        let adapters = enumerate(&instance);
        if adapters.is_empty() {
            return Err(BackendError::NoAdapter { detail: String::new() });
        }
        let (index, adapter) = match wanted {
            None => (0, adapters[0].clone()),
            Some(w) => {
                let index = pick_by_name(&adapters, w)?;
                (index, adapters[index].clone())
            }
        };
        Self::from_adapter(index, adapter)
    }

    pub fn from_adapter(index: usize, adapter: wgpu::Adapter) -> Result<Self> {
        let summary = summarize(index, &adapter);
        // Ask for the adapter's own limits: wgpu's defaults cap storage bindings at 128 MiB.
        let limits = adapter.limits();
        let features = adapter.features() & wanted_features();
        // Cooperative matrices are an experimental wgpu feature: opted into only where offered.
        let coop = features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        let experimental_features = match coop {
            // SAFETY: wgpu's experimental token; the feature is used only by the
            // cooperative-matrix kernel, whose results a parity test checks wherever it runs.
            true => unsafe { wgpu::ExperimentalFeatures::enabled() },
            false => wgpu::ExperimentalFeatures::disabled(),
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("batchscope device"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            BackendError::DeviceRequest { adapter: summary.name.clone(), reason: e.to_string() }
        })?;
        let faults = Arc::new(DeviceFaults::default());
        {
            let faults = faults.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                log::error!("uncaptured GPU error: {e}");
                if let Ok(mut g) = faults.uncaptured.lock() {
                    g.get_or_insert_with(|| e.to_string());
                }
            }));
        }
        {
            let faults = faults.clone();
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut g) = faults.lost.lock() {
                    *g = Some(format!("{reason:?}: {msg}"));
                }
            });
        }
        Ok(GpuContext {
            adapter,
            device,
            queue,
            summary,
            limits,
            features,
            faults,
            coop_shape: std::sync::OnceLock::new(),
            coop_verdicts: Default::default(),
        })
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    }

    /// Peak resident memory of buffers is bounded by these; checked before allocating.
    pub fn check_buffer_size(&self, what: &str, bytes: u64) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(BackendError::ExceedsLimit {
                what: what.to_string(),
                bytes,
                limit: self.limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        let binding = self.limits.max_storage_buffer_binding_size;
        if bytes > binding {
            return Err(BackendError::ExceedsLimit {
                what: what.to_string(),
                bytes,
                limit: binding,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        Ok(())
    }
}

/// `index: name (backend)` of each adapter of `which`.
fn listing(adapters: &[wgpu::Adapter], which: impl Iterator<Item = usize>) -> String {
    which
        .map(|k| {
            let i = adapters[k].get_info();
            format!("{k}: {} ({:?})", i.name, i.backend)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The adapters whose name `wanted` picks (case-insensitive): the one whose name contains it,
/// or, where several do, the one whose whole name it is. `[]` for none; several indices when
/// the pick is ambiguous (it took the first: `llvm` names lavapipe on Vulkan and llvmpipe on GL).
fn matching(names: &[String], wanted: &str) -> Vec<usize> {
    let needle = wanted.to_lowercase();
    let name = |k: usize| names[k].to_lowercase();
    let matches: Vec<usize> = (0..names.len()).filter(|&k| name(k).contains(&needle)).collect();
    let exact: Vec<usize> = matches.iter().copied().filter(|&k| name(k) == needle).collect();
    match exact.len() {
        1 if matches.len() > 1 => exact,
        _ => matches,
    }
}

/// The index of the adapter `wanted` names ([`matching`]); none, or several, is an error that
/// lists them.
fn pick_by_name(adapters: &[wgpu::Adapter], wanted: &str) -> Result<usize> {
    let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    match matching(&names, wanted).as_slice() {
        [one] => Ok(*one),
        [] => Err(BackendError::AdapterNotFound {
            wanted: wanted.to_string(),
            available: listing(adapters, 0..adapters.len())
                + if wanted.contains(',') {
                    " (this command opens one adapter; a list of them is for `train --workers`)"
                } else {
                    ""
                },
        }),
        several => Err(BackendError::AdapterAmbiguous {
            wanted: wanted.to_string(),
            count: several.len(),
            matches: listing(adapters, several.iter().copied()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::matching;

    /// `--adapter` by name: a part one name has, a part several have (refused: it took the
    /// first), the whole name of one of them (selects), a whole name two adapters share
    /// (lavapipe and llvmpipe's GL are both `llvmpipe (LLVM 15.0.6, 256 bits)`: refused).
    #[test]
    fn a_name_picks_one_adapter_or_says_which_it_matches() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let three = names(&["NVIDIA H100", "llvmpipe (LLVM 15)", "llvmpipe"]);
        assert_eq!(matching(&three, "h100"), [0]);
        assert_eq!(matching(&three, "LLVM"), [1, 2]);
        assert_eq!(matching(&three, "Llvmpipe"), [2], "the whole name selects");
        assert_eq!(matching(&three, "amd"), [] as [usize; 0]);
        let twins = names(&["llvmpipe (LLVM 15)", "llvmpipe (LLVM 15)"]);
        assert_eq!(matching(&twins, "llvmpipe (llvm 15)"), [0, 1]);
    }
}

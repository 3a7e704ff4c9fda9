//! The pipeline cache: one shader module per [`Shader`], one compute pipeline per kernel and
//! epilogue specialisation (with the bind-group layout its bindings imply), and how the modules
//! are compiled.
//!
//! **Shader runtime checks.** By default wgpu compiles every WGSL module with checks it cannot
//! prove unnecessary: each dynamic index into a workgroup, private or function array (and each
//! vector component) is clamped (`min(i, len - 1)`), and every loop carries a 64-bit counter
//! that breaks it after 2^64 iterations. Storage-buffer accesses are bounded by the Vulkan
//! device's robust buffer access in either case (wgpu enables it where offered). The matmul
//! kernels' inner loops index workgroup slices by invocation: 36 clamps in the tiled kernel's
//! SPIR-V (2 without checks), 45 after `spirv-opt -O`, against 64 fused multiply-adds per slice
//! depth; every loop of every kernel is bounded by its parameter block.
//!
//! batchscope compiles its own kernels as **trusted modules** (`create_shader_module_trusted`)
//! without the index clamps and loop counters, keeping the integer-division guards. The
//! tensor-core kernels with 16-byte tile loads are compiled by naga here with the same choices,
//! their SPIR-V retyped and passed through to the driver (`super::retype`).
//!
//! **Workgroup memory** is zero-initialised at each workgroup's start (WGSL's rule) but in the
//! kernels that write every element they read first ([`Shader::writes_workgroup_memory_before_reading`]:
//! the cooperative ones), where it would only cost time. Every kernel
//! is tested in that form against its CPU twin on ragged shapes, and tests/shader_checks.rs runs
//! the training steps, the products and the curvature kernels with and without the checks and
//! requires the same bits. `BATCHSCOPE_SHADER_CHECKS=1` (or [`GpuBackend::set_shader_checks`])
//! compiles them with wgpu's checks: the A/B of what the checks cost, and a debugging aid.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use super::kernels::{Access, Kernel, Shader};
use super::GpuBackend;
use crate::backend::{BackendError, Result};

/// A compute pipeline with the layout of its one bind group.
pub(super) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Modules and pipelines, created once each on first use.
pub(super) struct PipelineCache {
    /// By shader and, for a retyped one (compiled per entry point, as wgpu compiles every
    /// module on Vulkan), its entry point; `""` for the others.
    modules: RefCell<HashMap<(Shader, &'static str), Arc<wgpu::ShaderModule>>>,
    pipelines: RefCell<HashMap<(&'static str, u32), Arc<Pipeline>>>,
    /// Whether modules are compiled with wgpu's runtime checks (see the module header).
    checks: Cell<bool>,
}

/// `BATCHSCOPE_SHADER_CHECKS=1` compiles with wgpu's runtime checks, `0` (or unset) without;
/// anything else warns and is ignored.
pub fn shader_checks_from_env() -> bool {
    match std::env::var("BATCHSCOPE_SHADER_CHECKS").as_deref() {
        Ok("1") => true,
        Ok("0") | Err(_) => false,
        Ok(other) => {
            log::warn!("BATCHSCOPE_SHADER_CHECKS={other:?} is neither 0 nor 1: ignored");
            false
        }
    }
}

/// How kernels compiled with (`true`) or without wgpu's runtime checks are described in the
/// commands' output.
pub fn describe_checks(checks: bool) -> &'static str {
    match checks {
        true => "with wgpu's runtime checks (BATCHSCOPE_SHADER_CHECKS=1)",
        false => "trusted modules, without wgpu's index clamps and loop counters",
    }
}

/// The runtime checks a module is compiled with: wgpu's defaults, or without bounds checks and
/// loop bounding (the integer-division guards kept either way).
pub fn runtime_checks(checks: bool) -> wgpu::ShaderRuntimeChecks {
    wgpu::ShaderRuntimeChecks {
        bounds_checks: checks,
        force_loop_bounding: checks,
        ..wgpu::ShaderRuntimeChecks::checked()
    }
}

impl PipelineCache {
    pub fn new(checks: bool) -> Self {
        PipelineCache {
            modules: RefCell::default(),
            pipelines: RefCell::default(),
            checks: Cell::new(checks),
        }
    }

    pub fn checks(&self) -> bool {
        self.checks.get()
    }

    /// Compile later modules with (`true`) or without wgpu's runtime checks; a change drops
    /// every module and pipeline. Returns whether it changed.
    pub fn set_checks(&self, checks: bool) -> bool {
        if self.checks.replace(checks) == checks {
            return false;
        }
        self.pipelines.borrow_mut().clear();
        self.modules.borrow_mut().clear();
        true
    }

    /// The pipeline of `k`, created on first use.
    pub fn get(&self, device: &wgpu::Device, k: &Kernel) -> Result<Arc<Pipeline>> {
        if let Some(p) = self.pipelines.borrow().get(&(k.name, k.spec)) {
            return Ok(p.clone());
        }
        let module = self.module(device, k.shader, k.entry)?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(k.name),
            entries: &layout_entries(k),
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(k.name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        // The matmul epilogue's `override EPI, ACT` (dead branches compiled out).
        let constants = [("EPI", (k.spec >> 2) as f64), ("ACT", (k.spec & 3) as f64)];
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(k.name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(k.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: if k.spec == 0 { &[] } else { &constants },
                zero_initialize_workgroup_memory: !k.shader.writes_workgroup_memory_before_reading(),
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BackendError::Validation {
                what: format!("pipeline {}", k.name),
                message: e.to_string(),
            });
        }
        let p = Arc::new(Pipeline { pipeline, layout });
        self.pipelines.borrow_mut().insert((k.name, k.spec), p.clone());
        Ok(p)
    }

    fn module(
        &self,
        device: &wgpu::Device,
        shader: Shader,
        entry: &'static str,
    ) -> Result<Arc<wgpu::ShaderModule>> {
        let key = (shader, if shader.retyped() { entry } else { "" });
        if let Some(m) = self.modules.borrow().get(&key) {
            return Ok(m.clone());
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let label = shader.file_name();
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(shader.source().into()),
        };
        let module = match (shader.retyped(), self.checks.get()) {
            (true, checks) => retyped_module(device, &label, shader, entry, checks)?,
            (false, true) => device.create_shader_module(desc),
            // SAFETY: batchscope's kernels index workgroup and private arrays in bounds and
            // bound every loop by their parameter blocks (module header); storage accesses stay
            // bounded by the device's robust buffer access. Integer-division guards are kept.
            (false, false) => unsafe {
                device.create_shader_module_trusted(desc, runtime_checks(false))
            },
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(BackendError::Validation {
                what: format!("shaders/{label}"),
                message: e.to_string(),
            });
        }
        let module = Arc::new(module);
        self.modules.borrow_mut().insert(key, module.clone());
        Ok(module)
    }
}

/// The module of `shader`'s entry point `entry` with its SPIR-V retyped (`super::retype`),
/// compiled by naga here as wgpu compiles a module on Vulkan (one entry point per module, with
/// or without its runtime `checks`) and handed to the driver as a passthrough module.
fn retyped_module(
    device: &wgpu::Device,
    label: &str,
    shader: Shader,
    entry: &str,
    checks: bool,
) -> Result<wgpu::ShaderModule> {
    let invalid =
        |message: String| BackendError::Validation { what: format!("shaders/{label} {entry}"), message };
    if !device.features().contains(wgpu::Features::PASSTHROUGH_SHADERS) {
        return Err(invalid(
            "its 16-byte tile loads need the device feature PASSTHROUGH_SHADERS".into(),
        ));
    }
    let options = super::retype::Options {
        checks,
        zero_init_workgroup: !shader.writes_workgroup_memory_before_reading(),
    };
    let compiled = super::retype::compile(&shader.source(), entry, options).map_err(invalid)?;
    let entry_points = [wgpu::PassthroughShaderEntryPoint {
        name: entry.into(),
        workgroup_size: (
            compiled.workgroup_size[0],
            compiled.workgroup_size[1],
            compiled.workgroup_size[2],
        ),
    }];
    let desc = wgpu::ShaderModuleDescriptorPassthrough {
        label: Some(label),
        entry_points: entry_points.as_slice().into(),
        spirv: Some(compiled.words.as_slice().into()),
        ..Default::default()
    };
    // SAFETY: the words are naga's translation of a module that parsed and validated, with one
    // operand changed per A and B matrix type (f32 to f16: the types the WGSL means; see
    // `super::retype`); spirv-val accepts them (tests/shaders_validate.rs), and each kernel
    // passes the first-use check (`super::coop_check`) before the rule or the autotuner runs it.
    Ok(unsafe { device.create_shader_module_passthrough(desc) })
}

/// Binding 0: the dynamic-offset parameter block; then `k`'s storage buffers in order.
fn layout_entries(k: &Kernel) -> Vec<wgpu::BindGroupLayoutEntry> {
    let buffer = |binding: u32, ty: wgpu::BufferBindingType, has_dynamic_offset: bool| {
        wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset, min_binding_size: None },
            count: None,
        }
    };
    let mut entries = vec![buffer(0, wgpu::BufferBindingType::Uniform, true)];
    for (i, access) in k.bindings.iter().enumerate() {
        let read_only = *access == Access::Read;
        entries.push(buffer(i as u32 + 1, wgpu::BufferBindingType::Storage { read_only }, false));
    }
    entries
}

impl GpuBackend {
    /// Compile this backend's kernels with wgpu's shader runtime checks (`true`) or as trusted
    /// modules without them (`false`, the default unless `BATCHSCOPE_SHADER_CHECKS=1`). A
    /// change drops every compiled pipeline and cached bind group; later dispatches recompile.
    pub fn set_shader_checks(&self, checks: bool) {
        if self.dev.pipelines.set_checks(checks) {
            self.dev.clear_bind_groups();
        }
    }

    /// Whether this backend's kernels are compiled with wgpu's shader runtime checks.
    pub fn shader_checks(&self) -> bool {
        self.dev.pipelines.checks()
    }
}

#[cfg(test)]
mod tests {
    use super::runtime_checks;

    #[test]
    fn trusted_modules_drop_only_the_index_clamps_and_loop_counters() {
        let off = runtime_checks(false);
        assert!(!off.bounds_checks && !off.force_loop_bounding);
        assert!(off.int_div_checks, "division guards stay");
        let on = runtime_checks(true);
        assert!(on.bounds_checks && on.force_loop_bounding && on.int_div_checks);
    }
}

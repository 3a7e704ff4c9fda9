//! Shaders as naga parses, validates and translates them for a Vulkan device, for the shader
//! tests: a [`Shader`]'s module, and one entry point's SPIR-V under wgpu's bounds-check options.

use batchscope::backend::gpu::kernels::Shader;
use naga::back::spv;
use naga::proc::BoundsCheckPolicy;

/// The shader's module (the WGSL prelude followed by the file) and its validation info; a shader
/// that does not parse or validate panics with naga's report.
pub fn module_of(shader: Shader) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = &shader.source();
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| {
        panic!("shaders/{} ({shader:?}) does not parse:\n{}", shader.file_name(), e.emit_to_string(src))
    });
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| {
        panic!(
            "shaders/{} ({shader:?}) does not validate:\n{}",
            shader.file_name(),
            e.emit_to_string(src)
        )
    });
    (module, info)
}

/// naga's options for a Vulkan 1.3 device (SPIR-V 1.6, every capability offered) with `index`
/// for arrays and vectors, `buffer` for storage buffers, and wgpu's loop bounding or not.
pub fn vulkan_options(
    index: BoundsCheckPolicy,
    buffer: BoundsCheckPolicy,
    loop_bounding: bool,
) -> spv::Options<'static> {
    spv::Options {
        lang_version: (1, 6),
        capabilities: None,
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index,
            buffer,
            image_load: index,
            binding_array: BoundsCheckPolicy::Unchecked,
        },
        force_loop_bounding: loop_bounding,
        ..spv::Options::default()
    }
}

/// The SPIR-V words of entry point `entry` of `module`, its overrides (`override EPI`) at their
/// defaults, as a pipeline without constants compiles it.
pub fn entry_spirv(
    (module, info): (&naga::Module, &naga::valid::ModuleInfo),
    entry: &str,
    options: &spv::Options,
    what: &str,
) -> Vec<u32> {
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, entry)),
        &naga::back::PipelineConstants::default(),
    )
    .unwrap_or_else(|e| panic!("{what} {entry}: overrides: {e}"));
    spv::write_vec(&module, &info, options, Some(&pipeline))
        .unwrap_or_else(|e| panic!("{what} entry point {entry}: no SPIR-V: {e}"))
}

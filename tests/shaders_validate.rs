//! Every shader, as compiled (the WGSL prelude followed by the file), parses and validates with
//! naga (no GPU needed); every registered kernel's entry point exists in its shader with its
//! bindings; and the 1-D workgroup size comes from the one Rust constant.

mod common;

use batchscope::backend::gpu::kernels::{
    Kernel, Shader, ALL_KERNELS, COOP_KERNELS, MIXED_KERNELS, WG_1D,
};

/// Every registered kernel: the f32 ones, the mixed-precision ones and the cooperative-matrix
/// ones (validated here even where no adapter could run them).
fn every_kernel() -> impl Iterator<Item = &'static Kernel> {
    ALL_KERNELS.iter().chain(MIXED_KERNELS).chain(COOP_KERNELS)
}

fn module_of(shader: Shader) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = &shader.source();
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| {
        panic!("shaders/{} does not parse:\n{}", shader.file_name(), e.emit_to_string(src))
    });
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| {
        panic!("shaders/{} does not validate:\n{}", shader.file_name(), e.emit_to_string(src))
    });
    (module, info)
}

#[test]
fn every_shader_validates_with_naga() {
    for shader in Shader::ALL {
        let (module, _) = module_of(shader);
        assert!(!module.entry_points.is_empty(), "shaders/{} has no entry point", shader.file_name());
        println!("naga ok: shaders/{} ({} entry points)", shader.file_name(), module.entry_points.len());
    }
}

#[test]
fn every_kernel_entry_point_exists_with_its_bindings() {
    for k in every_kernel() {
        let (module, info) = module_of(k.shader);
        let (idx, ep) = module
            .entry_points
            .iter()
            .enumerate()
            .find(|(_, ep)| ep.name == k.entry)
            .unwrap_or_else(|| panic!("{}: no entry point `{}`", k.name, k.entry));
        assert_eq!(ep.stage, naga::ShaderStage::Compute, "{}", k.name);
        // Bindings statically used by this entry point, by binding number.
        let used = common::naga_use::used_bindings(&module, &info, idx);
        let expected: Vec<u32> = (0..=k.bindings.len() as u32).collect();
        let got: Vec<u32> = used.iter().map(|u| u.0).collect();
        assert_eq!(got, expected, "{}: bindings used by the shader vs the registry", k.name);
        for (i, access) in k.bindings.iter().enumerate() {
            let read_only = used[i + 1].1;
            let want_read = *access == batchscope::backend::gpu::kernels::Access::Read;
            assert_eq!(read_only, want_read, "{}: binding {} access", k.name, i + 1);
        }
    }
}

/// Entry points whose workgroup shape is not the 1-D `WG_1D` (2-D tiles and column blocks).
const NOT_1D: &[&str] = &[
    "matmul_naive",
    "matmul_tiled",
    "matmul_tiled_nn4",
    "matmul_tiled_nt4",
    "matmul_tiled_tn4",
    "matmul_tiled_tt4",
    "col_sum",
    "amp_col_sum_unscale",
    "matmul_f16",
    "matmul_coop_nn",
    "matmul_coop_nt",
    "matmul_coop_tn",
    "matmul_coop_tt",
    "wgrad_update_sgd",
    "wgrad_update_momentum",
];

#[test]
fn the_prelude_defines_wg_1d_and_lin_once() {
    for shader in Shader::ALL {
        let body = shader.body();
        assert!(!body.contains("fn lin("), "shaders/{} redefines lin()", shader.file_name());
        assert!(!body.contains("const WG_1D"), "shaders/{} redefines WG_1D", shader.file_name());
        let (module, _) = module_of(shader);
        let (_, c) = module
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some("WG_1D"))
            .unwrap_or_else(|| panic!("shaders/{}: no WG_1D", shader.file_name()));
        match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => assert_eq!(v, WG_1D),
            ref e => panic!("shaders/{}: WG_1D = {e:?}", shader.file_name()),
        }
    }
}

#[test]
fn every_1d_kernel_runs_wg_1d_invocations() {
    for k in every_kernel().filter(|k| !NOT_1D.contains(&k.entry)) {
        let (module, _) = module_of(k.shader);
        let ep = module.entry_points.iter().find(|ep| ep.name == k.entry).expect("entry point");
        assert_eq!(ep.workgroup_size, [WG_1D, 1, 1], "{}", k.name);
    }
}

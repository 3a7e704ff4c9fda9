//! Every shader, as compiled (the WGSL prelude followed by the file), parses and validates with
//! naga (no GPU needed); every registered kernel's entry point exists in its shader with its
//! bindings; and the 1-D workgroup size comes from the one Rust constant.

mod common;

use batchscope::backend::gpu::kernels::{
    Kernel, Shader, ALL_KERNELS, CEILING_KERNELS, COOP_CEILING_KERNELS, COOP_KERNELS, MIXED_KERNELS,
    WG_1D,
};

/// Every registered kernel: the f32 ones, the mixed-precision ones, the cooperative-matrix
/// ones (validated here even where no adapter could run them) and the ceilings.
fn every_kernel() -> impl Iterator<Item = &'static Kernel> {
    ALL_KERNELS
        .iter()
        .chain(MIXED_KERNELS)
        .chain(COOP_KERNELS)
        .chain(CEILING_KERNELS)
        .chain(COOP_CEILING_KERNELS)
}

use common::spirv::module_of;

/// The cooperative modules beside `Shader::ALL`'s untransposed 16x16 ones with f16 loads:
/// `matmul_coop.wgsl`'s family and the staged kernel's (16x16 and 8x8 tiles, f16, vec4<f16> and
/// 16-byte loads, each in the four transpose pairs).
fn staged_family() -> impl Iterator<Item = Shader> {
    use batchscope::backend::gpu::{coop_module, staged};
    let plain = coop_module::modules().into_iter().filter(|&m| m != coop_module::CoopModule::DEFAULT);
    let staged = staged::modules().into_iter().filter(|&m| m != staged::StagedModule::DEFAULT);
    plain.map(Shader::MatmulCoop).chain(staged.map(Shader::MatmulCoopStaged))
}

#[test]
fn every_shader_validates_with_naga() {
    for shader in Shader::ALL.into_iter().chain(staged_family()) {
        let (module, _) = module_of(shader);
        assert!(!module.entry_points.is_empty(), "shaders/{} has no entry point", shader.file_name());
        println!("naga ok: shaders/{} ({} entry points)", shader.file_name(), module.entry_points.len());
    }
}

#[test]
fn every_kernel_entry_point_exists_with_its_bindings() {
    let staged = batchscope::backend::gpu::staged::FAMILY.into_iter().flat_map(|c| {
        let products = c.kernels();
        assert_eq!(products.len(), 4, "{c:?}: a product per transpose pair");
        products.into_iter().chain(Some(c.ceiling_kernel().expect("a configuration of the family")))
    });
    let coop = batchscope::backend::gpu::coop_module::kernels();
    for k in every_kernel().copied().chain(staged).chain(coop) {
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
    "matmul_coop",
    "matmul_coop64",
    "matmul_coop_staged",
    "matmul_inner_ceiling",
    "coop_ceiling4",
    "coop_ceiling16",
    "coop_staged_ceiling",
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

/// `OpCapability VulkanMemoryModelDeviceScope` added to a module that declares the Vulkan memory
/// model: naga 30 uses device-scope atomics under that model (the f16 epilogue's) without
/// declaring it, and wgpu enables the matching device feature (`vulkanMemoryModelDeviceScope`)
/// wherever it offers cooperative matrices, so drivers accept the module as written.
fn with_device_scope_capability(words: Vec<u32>) -> Vec<u32> {
    const OP_CAPABILITY: u32 = 17;
    const VULKAN_MEMORY_MODEL: u32 = 5345;
    const DEVICE_SCOPE: u32 = 5346;
    let capability = |c: u32| [(2 << 16) | OP_CAPABILITY, c];
    let declares = |c: u32| words.windows(2).any(|w| w == capability(c));
    if !declares(VULKAN_MEMORY_MODEL) || declares(DEVICE_SCOPE) {
        return words;
    }
    // After the 5-word header, where the capabilities begin.
    let mut out = words[..5].to_vec();
    out.extend(capability(DEVICE_SCOPE));
    out.extend(&words[5..]);
    out
}

/// The `spirv-val` binary named by `BATCHSCOPE_SPIRV_VAL`, if any. It must know
/// SPV_KHR_cooperative_matrix (SPIRV-Tools 2024 or newer; Debian 12's 2023.1 does not):
/// `.ci/spirv_val.sh` fetches one for CI.
fn spirv_val() -> Option<std::path::PathBuf> {
    std::env::var_os("BATCHSCOPE_SPIRV_VAL").filter(|p| !p.is_empty()).map(Into::into)
}

/// Every entry point of every shader translates to SPIR-V with naga's Vulkan backend, as wgpu
/// translates it for a Vulkan 1.3 device (SPIR-V 1.6, every capability offered, restricted
/// indexing); where `spirv-val` exists, each module also passes the Khronos validator for
/// Vulkan 1.3 — the cooperative-matrix kernels included, which no CI adapter can run.
#[test]
fn every_entry_point_translates_to_valid_spirv() {
    let val = spirv_val();
    let mut checked = 0;
    let tiles = batchscope::backend::gpu::tile::TILES.map(Shader::MatmulTile);
    for shader in Shader::ALL.into_iter().chain(tiles).chain(staged_family()) {
        let (module, info) = module_of(shader);
        for ep in &module.entry_points {
            let options = common::spirv::vulkan_options(
                naga::proc::BoundsCheckPolicy::Restrict,
                naga::proc::BoundsCheckPolicy::Restrict,
                true,
            );
            let what = format!("shaders/{}", shader.file_name());
            let words = common::spirv::entry_spirv((&module, &info), &ep.name, &options, &what);
            if let Some(val) = &val {
                validate(val, words, &format!("{what} entry point {}", ep.name), checked);
            }
            checked += 1;
        }
    }
    match val {
        Some(v) => println!("spirv-val ok ({}): {checked} entry points", v.display()),
        None => println!(
            "SPIR-V generated for {checked} entry points; not validated: BATCHSCOPE_SPIRV_VAL \
             names no spirv-val (.ci/spirv_val.sh fetches one)"
        ),
    }
}

/// `words` pass `spirv-val` for Vulkan 1.3 (`what` names them in the failure; `n` keeps the
/// temporary files of one test apart).
fn validate(val: &std::path::Path, words: Vec<u32>, what: &str, n: usize) {
    let words = with_device_scope_capability(words);
    let path = std::env::temp_dir().join(format!("batchscope-spv-{}-{n}.spv", std::process::id()));
    std::fs::write(&path, bytemuck::cast_slice::<u32, u8>(&words)).expect("write spv");
    let out = std::process::Command::new(val)
        .args(["--target-env", "vulkan1.3"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", val.display()));
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{what}: spirv-val: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cooperative modules with 16-byte tile loads as the device gets them (naga's SPIR-V of
/// each entry point with the A and B tiles retyped to f16, `backend/gpu/retype.rs`), with and
/// without wgpu's runtime checks: every A and B matrix type is f16, every accumulator f32, the
/// module holds its one entry point, and where `spirv-val` exists the module passes it (a
/// cooperative load through a 16-byte f32 element into an f16 matrix is valid SPIR-V, as in
/// NVIDIA's sample).
#[test]
fn retyped_modules_have_f16_tiles_and_are_valid_spirv() {
    use batchscope::backend::gpu::retype::{compile, Options};
    const OP_ENTRY_POINT: u32 = 15;
    const OP_TYPE_FLOAT: u32 = 22;
    const OP_TYPE_COOPERATIVE_MATRIX_KHR: u32 = 4456;
    let val = spirv_val();
    let mut checked = 0;
    for shader in staged_family().filter(|s| s.retyped()) {
        let (module, _) = module_of(shader);
        for ep in &module.entry_points {
            for checks in [false, true] {
                let what =
                    format!("shaders/{} ({shader:?}) {}, checks {checks}", shader.file_name(), ep.name);
                let opts = Options { checks, zero_init_workgroup: checks };
                let compiled =
                    compile(&shader.source(), &ep.name, opts).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(compiled.workgroup_size, ep.workgroup_size, "{what}");
                let words = &compiled.words;
                // (opcode, operands) of every instruction after the header.
                let mut instrs = Vec::new();
                let mut at = 5;
                while at < words.len() {
                    let len = (words[at] >> 16) as usize;
                    instrs.push((words[at] & 0xffff, &words[at + 1..at + len]));
                    at += len;
                }
                let float = |width: u32| {
                    instrs
                        .iter()
                        .find(|(op, o)| *op == OP_TYPE_FLOAT && o[1] == width)
                        .map(|(_, o)| o[0])
                };
                let (f16, f32) = (float(16).expect("an f16 type"), float(32).expect("an f32 type"));
                let coop: Vec<u32> = instrs
                    .iter()
                    .filter(|(op, _)| *op == OP_TYPE_COOPERATIVE_MATRIX_KHR)
                    .map(|(_, o)| o[1])
                    .collect();
                assert_eq!(
                    coop.iter().filter(|&&c| c == f16).count(),
                    2,
                    "{what}: A and B f16: {coop:?}"
                );
                assert!(
                    coop.iter().filter(|&&c| c != f16).all(|&c| c == f32),
                    "{what}: C f32: {coop:?}"
                );
                let entries = instrs.iter().filter(|(op, _)| *op == OP_ENTRY_POINT).count();
                assert_eq!(entries, 1, "{what}: one entry point per module, as wgpu writes them");
                if let Some(val) = &val {
                    validate(val, compiled.words, &what, checked);
                }
                checked += 1;
            }
        }
    }
    // matmul_coop.wgsl's 4 entry points and the staged kernel's 2, each in its 4 transpose
    // pairs' modules, in 16x16 and 8x8 tiles.
    assert_eq!(checked, 2 * 2 * 4 * (4 + 2), "entry points, pairs, tiles, checks on and off");
    match val {
        Some(v) => println!("spirv-val ok ({}): {checked} retyped modules", v.display()),
        None => println!("{checked} retyped modules generated; not validated: no BATCHSCOPE_SPIRV_VAL"),
    }
}

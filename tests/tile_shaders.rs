//! Every configuration of the matmul tile family (`shaders/matmul_tile.wgsl` with its constants)
//! parses and validates with naga (no GPU needed); each has the five tiled entry points with the
//! registry's bindings and a workgroup of `(bm / 8) * (bn / 8)` invocations.

mod common;

use batchscope::backend::gpu::kernels::{Access, Shader};
use batchscope::backend::gpu::tile::{kernels, TILES};

fn module_of(shader: Shader) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = &shader.source();
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{shader:?} does not parse:\n{}", e.emit_to_string(src)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{shader:?} does not validate:\n{}", e.emit_to_string(src)));
    (module, info)
}

#[test]
fn every_tile_configuration_validates_with_naga() {
    for cfg in TILES {
        let ks = kernels(cfg).expect("a family member");
        let (module, info) = module_of(ks[0].shader);
        assert_eq!(module.entry_points.len(), 5, "{}", cfg.name());
        for k in ks {
            let (idx, ep) = module
                .entry_points
                .iter()
                .enumerate()
                .find(|(_, ep)| ep.name == k.entry)
                .unwrap_or_else(|| panic!("{}: no entry point", k.name));
            assert_eq!(ep.workgroup_size, [cfg.invocations(), 1, 1], "{}", k.name);
            let bindings = common::naga_use::used_bindings(&module, &info, idx);
            let want: Vec<(u32, bool)> = std::iter::once((0, true))
                .chain(k.bindings.iter().enumerate().map(|(i, a)| (i as u32 + 1, *a == Access::Read)))
                .collect();
            assert_eq!(bindings, want, "{}: bindings", k.name);
        }
        println!("naga ok: {} ({} bytes of workgroup memory)", cfg.name(), cfg.workgroup_bytes());
    }
}

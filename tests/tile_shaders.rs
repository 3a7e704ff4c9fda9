//! Every configuration of the matmul tile family (`shaders/matmul_tile.wgsl` with its constants)
//! parses and validates with naga (no GPU needed); each has the five tiled entry points with the
//! registry's bindings and a workgroup of `(bm / 8) * (bn / 8)` invocations.

mod common;

use batchscope::backend::gpu::kernels::Access;
use batchscope::backend::gpu::tile::{kernels, TILES};

use common::spirv::module_of;

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

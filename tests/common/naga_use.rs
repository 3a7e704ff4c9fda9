//! What a naga-validated entry point uses: its bindings, for the shader validation tests.

/// `(binding, read_only)` of every global an entry point statically uses, sorted and deduplicated
/// (`read_only`: a uniform, or storage without write access).
pub fn used_bindings(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry_index: usize,
) -> Vec<(u32, bool)> {
    let used = info.get_entry_point(entry_index);
    let mut bindings: Vec<(u32, bool)> = module
        .global_variables
        .iter()
        .filter(|(h, _)| !used[*h].is_empty())
        .filter_map(|(_, var)| {
            let b = var.binding.as_ref()?;
            let read_only = match var.space {
                naga::AddressSpace::Storage { access } => !access.contains(naga::StorageAccess::STORE),
                _ => true,
            };
            Some((b.binding, read_only))
        })
        .collect();
    bindings.sort();
    bindings.dedup();
    bindings
}

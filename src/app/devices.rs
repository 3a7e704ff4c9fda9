//! `batchscope devices`: every GPU adapter wgpu sees, with the limits that bound batch size,
//! then the CPU backend with its threads and the system BLAS its products run on.

use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::list_adapters;
use crate::backend::Backend;

/// `batchscope devices`. With `--json`: `{"adapters": [...], "cpu": {"name", "threads"}}`, the
/// GPU adapters in `--adapter` index order and the CPU backend that `--backend cpu` runs on.
pub fn devices(json: bool) -> anyhow::Result<()> {
    let adapters = list_adapters();
    if json {
        let cpu = CpuBackend::new();
        let v = serde_json::json!({
            "adapters": adapters,
            "cpu": { "name": cpu.device_name(), "threads": cpu.threads() },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!(
            "no GPU adapter found. Install a Vulkan driver (Debian/Ubuntu: apt-get install -y mesa-vulkan-drivers) or use --backend cpu."
        );
    }
    for a in &adapters {
        let l = &a.limits;
        println!("[{}] {}  ({}, {})", a.index, a.name, a.device_type, a.backend);
        println!("    driver: {} {}", a.driver, a.driver_info);
        println!(
            "    max_buffer_size:                 {:>14} bytes ({:.1} MiB)",
            l.max_buffer_size,
            l.max_buffer_size as f64 / 1048576.0
        );
        println!(
            "    max_storage_buffer_binding_size: {:>14} bytes ({:.1} MiB)",
            l.max_storage_buffer_binding_size,
            l.max_storage_buffer_binding_size as f64 / 1048576.0
        );
        println!(
            "    max_compute_workgroup_storage:   {:>14} bytes",
            l.max_compute_workgroup_storage_size
        );
        println!("    max_invocations_per_workgroup:   {:>14}", l.max_compute_invocations_per_workgroup);
        println!("    max_workgroups_per_dimension:    {:>14}", l.max_compute_workgroups_per_dimension);
        println!("    features: {}", a.features.join(", "));
        match a.cooperative_matrices.is_empty() {
            true => println!("    cooperative matrices: none"),
            false => println!("    cooperative matrices: {}", a.cooperative_matrices.join(", ")),
        }
        match &a.tensor_f16_unavailable {
            None => println!(
                "    f16 products on tensor cores: yes, in {t}x{t} tiles, tile loads {loads} (each device checks them for exact products on first use)",
                t = a.tensor_f16_tile.unwrap_or(16),
                loads = a.tensor_f16_loads.join(", ")
            ),
            Some(why) => println!("    f16 products on tensor cores: no ({why}); the packed f16 kernel runs"),
        }
    }
    println!("[cpu] {}  (--backend cpu)", CpuBackend::new().device_name());
    Ok(())
}

//! Opening the backends of a data-parallel run: `--workers N` replicas, each on an adapter of
//! `--adapter a,b,...` (indices or name substrings from `batchscope devices`), or the chosen
//! adapter opened N times; CPU replicas are CPU backends run on threads.

use anyhow::bail;

use super::BackendChoice;
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::{list_adapters, GpuBackend};

/// The backends of the replicas, one per worker.
pub enum Workers {
    Cpu(Vec<CpuBackend>),
    Gpu(Vec<GpuBackend>),
}

/// `--adapter` split at commas (one entry: the same adapter for every worker).
pub fn adapter_list(adapter: Option<&str>) -> anyhow::Result<Vec<String>> {
    let Some(a) = adapter else { return Ok(Vec::new()) };
    let list: Vec<String> = a.split(',').map(|s| s.trim().to_string()).collect();
    if list.iter().any(String::is_empty) {
        bail!("--adapter {a:?}: an empty entry; give adapter names or indices from `batchscope devices`, comma-separated");
    }
    Ok(list)
}

/// Open `n` backends per `choice` and the `--adapter` list (empty, one entry for all, or one
/// per worker). `auto` runs on the CPU when no adapter or only software adapters exist and no
/// adapter is named, as the single-worker commands do. Every GPU replica runs the kernels of
/// `autotune` (`gpu.autotune`), as a single-worker run does.
pub fn open_workers(
    choice: BackendChoice,
    adapters: &[String],
    n: usize,
    autotune: crate::backend::gpu::AutotuneMode,
) -> anyhow::Result<Workers> {
    if adapters.len() > 1 && adapters.len() != n {
        bail!("--adapter lists {} adapters but --workers is {n}", adapters.len());
    }
    let gpu = match choice {
        BackendChoice::Cpu => false,
        BackendChoice::Gpu => true,
        BackendChoice::Auto => {
            let found = list_adapters();
            !adapters.is_empty()
                || (!found.is_empty()
                    && !found.iter().all(|a| a.device_type == format!("{:?}", wgpu::DeviceType::Cpu)))
        }
    };
    if !gpu {
        if !adapters.is_empty() && choice == BackendChoice::Cpu {
            bail!("--adapter names GPU adapters; drop it or use --backend gpu");
        }
        super::backend::autotune_on_cpu_notice(autotune);
        return Ok(Workers::Cpu((0..n).map(|_| CpuBackend::new()).collect()));
    }
    let mut out = Vec::with_capacity(n);
    for w in 0..n {
        let wanted = adapters.get(if adapters.len() > 1 { w } else { 0 });
        let g = GpuBackend::new(wanted.map(String::as_str))?;
        super::backend::slow_adapter_notice(&g);
        super::backend::set_autotune(&g, autotune);
        out.push(g);
    }
    warn_mixed_speeds(&out);
    Ok(Workers::Gpu(out))
}

/// Replicas wait for each other every step: one on a software adapter (llvmpipe / lavapipe) next
/// to a hardware one runs the whole job at the software adapter's pace, so say so.
fn warn_mixed_speeds(replicas: &[GpuBackend]) {
    let hardware = replicas.iter().position(|g| !g.adapter().on_cpu);
    let software = replicas.iter().position(|g| g.adapter().on_cpu);
    if let (Some(h), Some(s)) = (hardware, software) {
        eprintln!(
            "notice: replica {s} runs on {}, a software adapter, and replica {h} on {}; every step \
             waits for the slowest replica, so the run goes at the software adapter's pace \
             (list hardware adapters only in --adapter)",
            replicas[s].adapter().name,
            replicas[h].adapter().name
        );
    }
}

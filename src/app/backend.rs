//! The one place a backend is opened: `--backend auto|gpu|cpu` (and `--adapter`) become a CPU
//! or GPU backend, and a command's generic work (`BackendTask`) runs on it.

use std::path::PathBuf;

use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::{AutotuneMode, GpuBackend};
use crate::backend::BackendError;
use crate::profile::Profilable;

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// The best hardware GPU adapter; the CPU backend (with a notice) when none exists, or when
    /// the only adapters are software rasterisers (lavapipe / llvmpipe), which it outruns.
    Auto,
    /// A GPU adapter through wgpu; an error when none exists.
    Gpu,
    /// The CPU backend (the reference implementation).
    Cpu,
}

/// Shared options of the commands that take a config.
#[derive(Clone, Debug, Default)]
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub set: Vec<String>,
    pub adapter: Option<String>,
    pub out: Option<PathBuf>,
    pub progress: bool,
}

/// A command's work, generic over the backend it runs on.
pub trait BackendTask {
    type Output;
    /// The GPU matmul autotuning the task asks for (its config's `gpu.autotune`).
    fn autotune(&self) -> AutotuneMode {
        AutotuneMode::Off
    }
    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<Self::Output>;
}

/// Open the backend `choice` names and run `task` on it. `auto` falls back to the CPU with a
/// notice when no GPU is usable (but not when `--adapter` names none, or several).
pub fn with_backend<T: BackendTask>(
    choice: BackendChoice,
    adapter: Option<&str>,
    task: T,
) -> anyhow::Result<T::Output> {
    let gpu = match choice {
        BackendChoice::Cpu if adapter.is_some() => {
            anyhow::bail!("--adapter names a GPU adapter but --backend is cpu; drop one of them")
        }
        BackendChoice::Cpu => None,
        BackendChoice::Gpu => Some(GpuBackend::new(adapter)?),
        BackendChoice::Auto if adapter.is_none() && only_software_adapters() => {
            eprintln!(
                "notice: the only GPU adapter is a software rasteriser; running on the CPU backend \
                 (--backend gpu forces the software adapter)"
            );
            None
        }
        BackendChoice::Auto => match GpuBackend::new(adapter) {
            Ok(g) => Some(g),
            Err(e @ (BackendError::AdapterNotFound { .. } | BackendError::AdapterAmbiguous { .. })) => {
                return Err(e.into())
            }
            Err(e) => {
                eprintln!("notice: no usable GPU ({e}); running on the CPU backend");
                None
            }
        },
    };
    match gpu {
        Some(g) => {
            slow_adapter_notice(&g);
            set_autotune(&g, task.autotune());
            task.run(&g)
        }
        None => {
            autotune_on_cpu_notice(task.autotune());
            task.run(&CpuBackend::new())
        }
    }
}

/// `gpu.autotune` as the config writes it.
fn mode_name(mode: AutotuneMode) -> &'static str {
    match mode {
        AutotuneMode::Off => "off",
        AutotuneMode::Cached => "cached",
        AutotuneMode::On => "on",
    }
}

/// Print `notice` once per process (a command that opens several backends, or workers, would
/// say it once for each).
fn notice_once(said: &std::sync::atomic::AtomicBool, notice: &str) {
    if !said.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!("notice: {notice}");
    }
}

/// Set `g`'s `gpu.autotune` mode, and say when it changes nothing: `cached` with no cache file
/// at its path runs the shape rule every product, as `off` does (it did so without a word).
pub(super) fn set_autotune(g: &GpuBackend, mode: AutotuneMode) {
    use std::sync::atomic::AtomicBool;
    static SAID: AtomicBool = AtomicBool::new(false);
    g.set_autotune(mode);
    if mode != AutotuneMode::Cached {
        return;
    }
    let missing = match crate::backend::gpu::autotune::cache::default_path() {
        None => "there is no cache path (neither BATCHSCOPE_AUTOTUNE_CACHE nor HOME is set)".to_string(),
        Some(p) if !p.exists() => format!("there is no autotune cache at {}", p.display()),
        Some(_) => return,
    };
    notice_once(
        &SAID,
        &format!(
            "gpu.autotune = \"cached\": {missing}, so every product runs the default kernel, as with \"off\" (`batchscope tune` writes the cache; \"on\" tunes as it runs)"
        ),
    );
}

/// `gpu.autotune` other than `off` on the CPU backend (`--backend cpu`, or `auto` without a
/// usable GPU): it picks GPU matmul kernels, so it changes nothing here. Said, not refused (a
/// config shared by GPU and CPU runs keeps it).
pub(super) fn autotune_on_cpu_notice(mode: AutotuneMode) {
    use std::sync::atomic::AtomicBool;
    static SAID: AtomicBool = AtomicBool::new(false);
    if mode != AutotuneMode::Off {
        notice_once(
            &SAID,
            &format!(
                "gpu.autotune = \"{}\" picks GPU matmul kernels; this run is on the CPU backend, where it changes nothing",
                mode_name(mode)
            ),
        );
    }
}

/// Open a GPU adapter for a GPU-only command (`batchscope tune`): the best one, or the first
/// whose name contains `adapter`.
pub fn open_gpu(adapter: Option<&str>) -> anyhow::Result<GpuBackend> {
    let g = GpuBackend::new(adapter)?;
    slow_adapter_notice(&g);
    Ok(g)
}

/// A command that measures the f32 loss only refuses a config whose `model.precision` is f16:
/// the CLI refuses `--precision f16` for it, and the same setting from the config file or a
/// `--set` was taken without a word (the run measured f32 and wrote f16 in its config.toml).
pub(super) fn refuse_f16(
    cfg: &crate::config::Config,
    command: &str,
    measures: &str,
) -> anyhow::Result<()> {
    if !cfg.model.precision.is_f32() {
        anyhow::bail!(
            "model.precision = \"f16\": `{command}` {measures} only; set model.precision = \"f32\" (or leave it out)"
        );
    }
    Ok(())
}

/// A software rasteriser behind wgpu's GL backend (llvmpipe's OpenGL) runs compute shaders on
/// one thread, and compiles the tiled kernels for minutes: the quickstart trained at 40
/// examples/s there, against thousands on lavapipe (Vulkan) or the CPU backend. Said once.
pub(super) fn slow_adapter_notice(g: &GpuBackend) {
    let s = &g.dev.ctx.summary;
    let software = s.device_type == format!("{:?}", wgpu::DeviceType::Cpu);
    if software && s.backend == format!("{:?}", wgpu::Backend::Gl) {
        eprintln!(
            "notice: {} (Gl) runs compute shaders through OpenGL on the CPU, far slower than \
             lavapipe (Vulkan: Mesa's mesa-vulkan-drivers) or --backend cpu",
            s.name
        );
    }
}

/// Adapters exist but every one is a software rasteriser (llvmpipe / lavapipe, wgpu
/// `DeviceType::Cpu`): the CPU backend is the faster choice (DESIGN.md "Device choice").
fn only_software_adapters() -> bool {
    let adapters = crate::backend::gpu::list_adapters();
    !adapters.is_empty()
        && adapters.iter().all(|a| a.device_type == format!("{:?}", wgpu::DeviceType::Cpu))
}

/// The backend a `--resume` runs on. `auto` goes on where the run was trained, so that it
/// goes on bit for bit: on the CPU backend for a CPU run, and on the GPU for a GPU run when the
/// adapter it trained on is here (a run trained on lavapipe went on on the CPU backend without
/// a word, because `auto` prefers the CPU to a software adapter) or a hardware one is. An
/// explicit `--backend`, or a checkpoint that does not say, keeps `choice`.
pub fn resume_backend(
    choice: BackendChoice,
    trained: Option<&crate::train::resume_guard::TrainedOn>,
) -> BackendChoice {
    use crate::backend::BackendKind;
    let Some(t) = trained.filter(|_| choice == BackendChoice::Auto) else { return choice };
    let adapters = crate::backend::gpu::list_adapters();
    let hardware = adapters.iter().any(|a| a.device_type != format!("{:?}", wgpu::DeviceType::Cpu));
    let same_adapter = adapters.iter().any(|a| t.device.starts_with(&format!("{} (", a.name)));
    match t.kind {
        BackendKind::Gpu if same_adapter || hardware => {
            if !hardware {
                eprintln!(
                    "notice: resuming on {}, the software adapter the run was trained on \
                     (--backend cpu moves it to the CPU backend, not bit for bit)",
                    t.device
                );
            }
            BackendChoice::Gpu
        }
        BackendKind::Cpu => {
            if hardware {
                eprintln!(
                    "notice: resuming on the CPU backend, which the run was trained on \
                     (--backend gpu moves it to the GPU, not bit for bit)"
                );
            }
            BackendChoice::Cpu
        }
        BackendKind::Gpu => {
            eprintln!("notice: the run was trained on {}, which is not here", t.device);
            BackendChoice::Auto
        }
    }
}

//! Opening a [`GpuBackend`]: the best adapter or one by name, or adapter `index` of
//! `batchscope devices` (data-parallel workers).

use std::cell::{Cell, RefCell};

use super::choices::KernelChoices;
use super::{context, GpuBackend, GpuContext, GpuDevice, MatmulVariant};
use crate::backend::{BackendError, Result};

impl GpuBackend {
    /// Open the best adapter, or the one `adapter` names: an index of `batchscope devices`
    /// when it is all digits, else the one whose name contains it (case-insensitive), or is it
    /// where several contain it; several and no exact name is an error listing them.
    pub fn new(adapter: Option<&str>) -> Result<Self> {
        match adapter.map(str::trim) {
            // Every name contains the empty string: it picked adapter 0 without a word.
            Some("") => Err(BackendError::AdapterNotFound {
                wanted: format!("--adapter {:?} (an empty name)", adapter.unwrap_or_default()),
                available: Self::adapter_names(&context::enumerate(&context::new_instance())),
            }),
            Some(a) if !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()) => match a.parse() {
                Ok(index) => Self::open_index(index),
                // A number too large for usize is no adapter's index either.
                Err(_) => Err(BackendError::AdapterNotFound {
                    wanted: format!("--adapter {a}"),
                    available: Self::adapter_names(&context::enumerate(&context::new_instance())),
                }),
            },
            _ => Self::from_context(GpuContext::open(adapter)?),
        }
    }

    /// Open adapter `index` of `batchscope devices` (best first), so that two adapters with the
    /// same name can both be opened (data-parallel workers).
    pub fn open_index(index: usize) -> Result<Self> {
        let adapters = context::enumerate(&context::new_instance());
        let available = Self::adapter_names(&adapters);
        let adapter = adapters
            .into_iter()
            .nth(index)
            .ok_or(BackendError::AdapterNotFound { wanted: format!("--adapter {index}"), available })?;
        Self::from_context(GpuContext::from_adapter(index, adapter)?)
    }

    /// `0: name, 1: name, ...` (the indices `--adapter` takes), or `no adapters`.
    fn adapter_names(adapters: &[wgpu::Adapter]) -> String {
        let names: Vec<String> =
            adapters.iter().enumerate().map(|(i, a)| format!("{i}: {}", a.get_info().name)).collect();
        if names.is_empty() {
            "no adapters".to_string()
        } else {
            names.join(", ")
        }
    }

    /// The backend on an opened device, with the kernel choices for its adapter; every way of
    /// opening one ends here, so a replica opened by index runs the same kernels as one opened
    /// by name.
    fn from_context(ctx: GpuContext) -> Result<Self> {
        log::info!(
            "GPU backend on {} ({}, {})",
            ctx.summary.name,
            ctx.summary.device_type,
            ctx.summary.backend
        );
        let choices = KernelChoices::for_adapter(&ctx.summary);
        say_inert_knobs(&ctx, &choices);
        Ok(GpuBackend {
            dev: GpuDevice::new(ctx)?,
            matmul_variant: Cell::new(MatmulVariant::Auto),
            tuner: RefCell::default(),
            choices,
        })
    }
}

/// A notice, once per process, for each A/B knob of the environment that changes nothing on
/// this adapter (summary.json's `environment` still records it, so an A/B table would say it
/// timed a kernel that never ran): a cooperative-matrix kernel asked for where the adapter has
/// none, and the fused backward without the fused update it extends.
fn say_inert_knobs(ctx: &GpuContext, choices: &KernelChoices) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SAID: AtomicBool = AtomicBool::new(false);
    let adapter = &ctx.summary.name;
    let mut inert = Vec::new();
    if !super::matmul_coop::available(ctx) {
        if let Some(k) = choices.half_kernel.get().filter(|k| k.coop_block().is_some()) {
            inert.push(format!(
                "BATCHSCOPE_F16_KERNEL asks for a cooperative-matrix kernel ({k:?}), which {adapter} does not offer: its f16 products run the rule's kernel"
            ));
        }
        if super::matmul_f16::coop64_forced() {
            inert.push(format!(
                "BATCHSCOPE_COOP64=force asks for the 64x64 cooperative-matrix kernel, which {adapter} does not offer"
            ));
        }
    }
    if choices.fused_backward.get() && choices.fused_update_max_k.get() == 0 {
        inert.push(
            "BATCHSCOPE_FUSED_BACKWARD=1 extends the fused weight-gradient update, which is off here (BATCHSCOPE_FUSED_UPDATE; off by default on CPU adapters): it changes nothing"
                .to_string(),
        );
    }
    if !inert.is_empty() && !SAID.swap(true, Ordering::Relaxed) {
        for line in inert {
            log::warn!("notice: {line}");
        }
    }
}

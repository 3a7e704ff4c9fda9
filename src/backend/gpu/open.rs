//! Opening a [`GpuBackend`]: the best adapter or one by name, or adapter `index` of
//! `batchscope devices` (data-parallel workers).

use std::cell::{Cell, RefCell};

use super::choices::KernelChoices;
use super::{context, GpuBackend, GpuContext, GpuDevice, MatmulVariant};
use crate::backend::{BackendError, Result};

impl GpuBackend {
    /// Open the best adapter, or the first whose name contains `adapter`.
    pub fn new(adapter: Option<&str>) -> Result<Self> {
        let ctx = GpuContext::open(adapter)?;
        log::info!(
            "GPU backend on {} ({}, {})",
            ctx.summary.name,
            ctx.summary.device_type,
            ctx.summary.backend
        );
        let choices = KernelChoices::for_adapter(&ctx.summary);
        Ok(GpuBackend {
            dev: GpuDevice::new(ctx)?,
            matmul_variant: Cell::new(MatmulVariant::Auto),
            tuner: RefCell::default(),
            choices,
        })
    }

    /// Open adapter `index` of `batchscope devices` (best first), so that two adapters with the
    /// same name can both be opened (data-parallel workers).
    pub fn open_index(index: usize) -> Result<Self> {
        let adapters = context::enumerate(&context::new_instance());
        let n = adapters.len();
        let adapter = adapters.into_iter().nth(index).ok_or_else(|| BackendError::AdapterNotFound {
            wanted: format!("adapter index {index}"),
            available: match n {
                0 => "no adapters".to_string(),
                _ => format!("{n} adapters, indices 0 to {}", n - 1),
            },
        })?;
        let ctx = GpuContext::from_adapter(index, adapter)?;
        let choices = KernelChoices::for_adapter(&ctx.summary);
        Ok(GpuBackend {
            dev: GpuDevice::new(ctx)?,
            matmul_variant: Cell::new(MatmulVariant::Tiled),
            tuner: RefCell::default(),
            choices,
        })
    }
}

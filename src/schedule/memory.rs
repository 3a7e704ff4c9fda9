//! Memory model of one MLP training step at batch size B, and the device limits it must fit.
//!
//! Every buffer holds 4-byte elements (f32 values, u32 indices and labels). Parameter-shaped
//! sets (parameters, gradients, velocity, HVP result, direction) are one buffer per tensor, as
//! `ParamSet` allocates them: `layers.{l}.weight [out, in]` and `layers.{l}.bias [out]`.
//! Activation buffers mirror `model::Workspace`: for layer l with width `out_l`,
//! `z_l, dz_l [B, out_l]` for every layer and `a_l, da_l [B, out_l]` for hidden layers.
//!
//! An f16 step adds its operands in f16 ([`estimate_step`]: `HalfBuf`s, two halves per word).
//!
//! Not modelled: a dataset kept resident on the device (independent of B, add it to the budget),
//! the few-hundred-byte metrics and uniform buffers, and the driver's own overhead.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{Config, OptimizerKind};
use crate::model::Precision;

/// Bytes per element of every buffer (f32 and u32).
pub const BYTES_PER_ELEMENT: u64 = 4;

/// Invocations per workgroup of the 1-D elementwise kernels.
pub const ELEMENTWISE_WORKGROUP: u64 = 256;

/// What a buffer is for; the estimate can be summed per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// Weights and biases.
    Parameters,
    /// ∂L/∂θ, shaped like the parameters.
    Gradients,
    /// Optimizer state (momentum velocity), shaped like the parameters.
    OptimizerState,
    /// z, a, dz, da per layer, `[B, out_l]`.
    Activations,
    /// Per-example loss and correctness, batch indices and labels `[B]`, the input batch `[B, in]`.
    PerExample,
    /// R-op buffers (R z, R a, R dz, R da per layer) and the HVP result and direction.
    Curvature,
    /// The f16 step's operands (`model.precision = "f16"`): every weight, the minibatch, every
    /// hidden activation and every layer's ∂L/∂z in f16, two halves per 4-byte word.
    HalfCopies,
}

/// One device buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferEstimate {
    /// E.g. `grads.layers.0.weight`, `act.z.1`, `batch.inputs`.
    pub name: String,
    pub kind: BufferKind,
    /// Size in bytes (`BYTES_PER_ELEMENT` × elements).
    pub bytes: u64,
}

impl BufferEstimate {
    /// Elements of the buffer (all elements are 4 bytes).
    pub fn elements(&self) -> u64 {
        self.bytes / BYTES_PER_ELEMENT
    }
}

/// Device memory of one training step at a given batch size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEstimate {
    /// Batch size B the estimate is for.
    pub batch: usize,
    /// Every buffer, parameters first.
    pub buffers: Vec<BufferEstimate>,
    /// Σ of `buffers[i].bytes`.
    pub total_bytes: u64,
    /// The largest single buffer in bytes.
    pub largest_buffer_bytes: u64,
    /// Name of that buffer (the first one of that size).
    pub largest_buffer: String,
}

impl MemoryEstimate {
    /// Bytes of all buffers of one kind.
    pub fn bytes_of(&self, kind: BufferKind) -> u64 {
        self.buffers.iter().filter(|b| b.kind == kind).map(|b| b.bytes).sum()
    }
}

/// A model description the memory model cannot use.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MemoryError {
    #[error("memory model: an MLP needs at least input and output sizes, got {sizes:?}")]
    TooFewLayers { sizes: Vec<usize> },
    #[error("memory model: layer sizes must be positive, got {sizes:?}")]
    ZeroLayerSize { sizes: Vec<usize> },
    #[error("memory model: batch size must be positive")]
    ZeroBatch,
    #[error("memory model: {what} overflows 64-bit byte counts at batch {batch}")]
    Overflow { what: String, batch: usize },
}

pub use crate::backend::timed::DeviceLimits;

/// Why a batch size is skipped before anything is dispatched.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    #[error("buffer `{buffer}` needs {bytes} bytes, more than max_buffer_size = {limit} bytes")]
    MaxBufferSize { buffer: String, bytes: u64, limit: u64 },
    #[error("buffer `{buffer}` needs {bytes} bytes, more than max_storage_buffer_binding_size = {limit} bytes")]
    MaxStorageBinding { buffer: String, bytes: u64, limit: u64 },
    #[error("buffers total {total} bytes, more than the memory budget of {budget} bytes")]
    MemoryBudget { total: u64, budget: u64 },
    #[error(
        "an elementwise pass over `{buffer}` ({elements} elements) needs {workgroups} workgroups of 256, \
         more than max_compute_workgroups_per_dimension² = {limit}"
    )]
    Workgroups { buffer: String, elements: u64, workgroups: u64, limit: u64 },
}

/// Running sum of the buffers, with overflow checks.
struct Builder {
    batch: usize,
    buffers: Vec<BufferEstimate>,
}

impl Builder {
    /// Add a buffer of `dims` elements (product), 4 bytes each.
    fn push(&mut self, name: String, kind: BufferKind, dims: &[usize]) -> Result<(), MemoryError> {
        let elements = self.elements(&name, dims)?;
        let bytes = elements.checked_mul(BYTES_PER_ELEMENT).ok_or_else(|| self.overflow(&name))?;
        self.buffers.push(BufferEstimate { name, kind, bytes });
        Ok(())
    }

    /// Add a buffer of `dims` halves (product), packed two per 4-byte word as `HalfBuf` holds
    /// them (`ceil(n / 2)` words).
    fn push_halves(&mut self, name: String, dims: &[usize]) -> Result<(), MemoryError> {
        let words = self.elements(&name, dims)?.div_ceil(2);
        let bytes = words.checked_mul(BYTES_PER_ELEMENT).ok_or_else(|| self.overflow(&name))?;
        self.buffers.push(BufferEstimate { name, kind: BufferKind::HalfCopies, bytes });
        Ok(())
    }

    fn elements(&self, name: &str, dims: &[usize]) -> Result<u64, MemoryError> {
        let mut elements: u64 = 1;
        for &d in dims {
            let d = u64::try_from(d).map_err(|_| self.overflow(name))?;
            elements = elements.checked_mul(d).ok_or_else(|| self.overflow(name))?;
        }
        Ok(elements)
    }

    fn overflow(&self, name: &str) -> MemoryError {
        MemoryError::Overflow { what: name.to_string(), batch: self.batch }
    }

    /// The f16 step's buffers (`Mlp::half_workspace`): `half.w.{l} [out_l, in_l]`, `half.x
    /// [B, in]`, `half.a.{l} [B, out_l]` for hidden layers, `half.dz.{l} [B, out_l]` for every
    /// layer.
    fn push_half_workspace(&mut self, sizes: &[usize]) -> Result<(), MemoryError> {
        for (l, w) in sizes.windows(2).enumerate() {
            self.push_halves(format!("half.w.{l}"), &[w[1], w[0]])?;
        }
        self.push_halves("half.x".into(), &[self.batch, sizes[0]])?;
        let widths = &sizes[1..];
        for (l, &out) in widths[..widths.len() - 1].iter().enumerate() {
            self.push_halves(format!("half.a.{l}"), &[self.batch, out])?;
        }
        for (l, &out) in widths.iter().enumerate() {
            self.push_halves(format!("half.dz.{l}"), &[self.batch, out])?;
        }
        Ok(())
    }

    /// One buffer per parameter tensor: `{prefix}.layers.{l}.weight [out, in]`, `.bias [out]`.
    fn push_param_set(
        &mut self,
        prefix: &str,
        kind: BufferKind,
        sizes: &[usize],
    ) -> Result<(), MemoryError> {
        for (l, w) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            self.push(format!("{prefix}.layers.{l}.weight"), kind, &[fan_out, fan_in])?;
            self.push(format!("{prefix}.layers.{l}.bias"), kind, &[fan_out])?;
        }
        Ok(())
    }

    /// `{prefix}.{l} [B, out_l]` for every layer l (or only the hidden ones).
    fn push_per_layer(
        &mut self,
        prefix: &str,
        kind: BufferKind,
        sizes: &[usize],
        hidden_only: bool,
    ) -> Result<(), MemoryError> {
        let widths = &sizes[1..];
        let n = if hidden_only { widths.len() - 1 } else { widths.len() };
        for (l, &out) in widths[..n].iter().enumerate() {
            self.push(format!("{prefix}.{l}"), kind, &[self.batch, out])?;
        }
        Ok(())
    }

    fn finish(self) -> Result<MemoryEstimate, MemoryError> {
        let mut total: u64 = 0;
        for b in &self.buffers {
            total = total
                .checked_add(b.bytes)
                .ok_or_else(|| MemoryError::Overflow { what: "the total".into(), batch: self.batch })?;
        }
        // First buffer of the largest size (max_by_key would return the last).
        let mut largest: Option<&BufferEstimate> = None;
        for b in &self.buffers {
            if largest.is_none_or(|l| b.bytes > l.bytes) {
                largest = Some(b);
            }
        }
        let (largest_buffer_bytes, largest_buffer) =
            largest.map(|b| (b.bytes, b.name.clone())).unwrap_or_default();
        Ok(MemoryEstimate {
            batch: self.batch,
            buffers: self.buffers,
            total_bytes: total,
            largest_buffer_bytes,
            largest_buffer,
        })
    }
}

/// Device memory of one training step of an MLP at batch size `batch`.
///
/// `sizes`: layer widths, input first (`[784, 1024, 1024, 10]`). `momentum`: the optimizer keeps a
/// velocity shaped like the parameters. `curvature`: curvature monitors are on, which adds the
/// R-op twins of the activation buffers (R z, R dz every layer; R a, R da hidden layers), an HVP
/// result, the step taken, and θ and g before the update, each shaped like the parameters.
///
/// With P = Σ_l (in_l·out_l + out_l) parameters, H = Σ_hidden out_l, O = Σ_all out_l:
/// bytes = 4·( P·(2 + momentum + 4·curvature) + B·(2·O + 2·H) + B·(4 + in)
///             + curvature·B·(2·O + 2·H) ).
pub fn estimate(
    sizes: &[usize],
    momentum: bool,
    curvature: bool,
    batch: usize,
) -> Result<MemoryEstimate, MemoryError> {
    estimate_step(sizes, momentum, curvature, Precision::F32, batch)
}

/// The device memory of `cfg`'s MLP training step at `batch`: its optimizer, its curvature
/// monitor and its precision.
pub fn estimate_for(cfg: &Config, batch: usize) -> Result<MemoryEstimate, MemoryError> {
    let momentum = cfg.train.optimizer == OptimizerKind::Momentum;
    let curvature = cfg.monitor.curvature_every > 0;
    estimate_step(&cfg.mlp_spec().sizes, momentum, curvature, cfg.model.precision, batch)
}

/// [`estimate`] of a step in `precision`: an f16 step (`model.precision = "f16"`) keeps every
/// f32 buffer and adds its f16 operands ([`BufferKind::HalfCopies`]), about half the
/// parameters' bytes and 3/4 of the activations' more (the loss scaler's few bytes, like the
/// metrics buffer, are not modelled).
pub fn estimate_step(
    sizes: &[usize],
    momentum: bool,
    curvature: bool,
    precision: Precision,
    batch: usize,
) -> Result<MemoryEstimate, MemoryError> {
    if sizes.len() < 2 {
        return Err(MemoryError::TooFewLayers { sizes: sizes.to_vec() });
    }
    if sizes.contains(&0) {
        return Err(MemoryError::ZeroLayerSize { sizes: sizes.to_vec() });
    }
    if batch == 0 {
        return Err(MemoryError::ZeroBatch);
    }
    use BufferKind::*;
    let mut b = Builder { batch, buffers: Vec::new() };
    b.push_param_set("params", Parameters, sizes)?;
    b.push_param_set("grads", Gradients, sizes)?;
    if momentum {
        b.push_param_set("velocity", OptimizerState, sizes)?;
    }
    b.push_per_layer("act.z", Activations, sizes, false)?;
    b.push_per_layer("act.a", Activations, sizes, true)?;
    b.push_per_layer("act.dz", Activations, sizes, false)?;
    b.push_per_layer("act.da", Activations, sizes, true)?;
    b.push("batch.loss".into(), PerExample, &[batch])?;
    b.push("batch.correct".into(), PerExample, &[batch])?;
    b.push("batch.indices".into(), PerExample, &[batch])?;
    b.push("batch.labels".into(), PerExample, &[batch])?;
    b.push("batch.inputs".into(), PerExample, &[batch, sizes[0]])?;
    if curvature {
        b.push_per_layer("rop.rz", Curvature, sizes, false)?;
        b.push_per_layer("rop.ra", Curvature, sizes, true)?;
        b.push_per_layer("rop.rdz", Curvature, sizes, false)?;
        b.push_per_layer("rop.rda", Curvature, sizes, true)?;
        b.push_param_set("hvp", Curvature, sizes)?;
        b.push_param_set("direction", Curvature, sizes)?;
        b.push_param_set("theta_before", Curvature, sizes)?;
        b.push_param_set("grad_before", Curvature, sizes)?;
    }
    if precision == Precision::F16 {
        b.push_half_workspace(sizes)?;
    }
    b.finish()
}

/// `Ok` when every buffer and the total fit `limits`; otherwise the first limit exceeded, in the
/// order max_buffer_size, max_storage_buffer_binding_size, memory budget, workgroup count.
pub fn check_fit(est: &MemoryEstimate, limits: &DeviceLimits) -> Result<(), SkipReason> {
    // Only the largest buffer can be the first to exceed a per-buffer limit.
    let (buffer, bytes) = (&est.largest_buffer, est.largest_buffer_bytes);
    if bytes > limits.max_buffer_size {
        return Err(SkipReason::MaxBufferSize {
            buffer: buffer.clone(),
            bytes,
            limit: limits.max_buffer_size,
        });
    }
    if bytes > limits.max_storage_buffer_binding_size {
        return Err(SkipReason::MaxStorageBinding {
            buffer: buffer.clone(),
            bytes,
            limit: limits.max_storage_buffer_binding_size,
        });
    }
    if let Some(budget) = limits.memory_budget {
        if est.total_bytes > budget {
            return Err(SkipReason::MemoryBudget { total: est.total_bytes, budget });
        }
    }
    // The largest elementwise op runs over the largest buffer, one invocation per element.
    let elements = bytes / BYTES_PER_ELEMENT;
    let workgroups = elements.div_ceil(ELEMENTWISE_WORKGROUP);
    let limit = limits.max_elementwise_workgroups();
    if workgroups > limit {
        return Err(SkipReason::Workgroups { buffer: buffer.clone(), elements, workgroups, limit });
    }
    Ok(())
}

/// The largest power of two B ≤ `max_batch` whose training step fits `limits`; `Ok(None)` when
/// not even B = 1 fits (or `max_batch` is 0). Memory grows with B, so the search stops at the
/// first power of two that does not fit.
pub fn largest_fitting_batch(
    sizes: &[usize],
    momentum: bool,
    curvature: bool,
    limits: &DeviceLimits,
    max_batch: usize,
) -> Result<Option<usize>, MemoryError> {
    let mut best = None;
    let mut b: usize = 1;
    while b <= max_batch {
        let fits = match estimate(sizes, momentum, curvature, b) {
            Ok(est) => check_fit(&est, limits).is_ok(),
            // Byte counts past u64 fit no device.
            Err(MemoryError::Overflow { .. }) => false,
            Err(e) => return Err(e),
        };
        if !fits {
            break;
        }
        best = Some(b);
        match b.checked_mul(2) {
            Some(next) => b = next,
            None => break,
        }
    }
    Ok(best)
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;

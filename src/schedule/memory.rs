//! Memory model of one MLP training step at batch size B, and the device limits it must fit.
//!
//! Every buffer holds 4-byte elements (f32 values, u32 indices and labels). Parameter-shaped
//! sets (parameters, gradients, velocity, HVP result, direction) are one buffer per tensor, as
//! `ParamSet` allocates them: `layers.{l}.weight [out, in]` and `layers.{l}.bias [out]`.
//! Activation buffers mirror `model::Workspace`: for layer l with width `out_l`,
//! `z_l, dz_l [B, out_l]` for every layer and `a_l, da_l [B, out_l]` for hidden layers.
//!
//! Not modelled: a dataset kept resident on the device (independent of B, add it to the budget),
//! the few-hundred-byte metrics and uniform buffers, and the driver's own overhead.

use serde::{Deserialize, Serialize};
use thiserror::Error;

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
        let overflow = || MemoryError::Overflow { what: name.clone(), batch: self.batch };
        let mut elements: u64 = 1;
        for &d in dims {
            let d = u64::try_from(d).map_err(|_| overflow())?;
            elements = elements.checked_mul(d).ok_or_else(overflow)?;
        }
        let bytes = elements.checked_mul(BYTES_PER_ELEMENT).ok_or_else(overflow)?;
        self.buffers.push(BufferEstimate { name, kind, bytes });
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
/// result and a direction vector, each shaped like the parameters.
///
/// With P = Σ_l (in_l·out_l + out_l) parameters, H = Σ_hidden out_l, O = Σ_all out_l:
/// bytes = 4·( P·(2 + momentum + 2·curvature) + B·(2·O + 2·H) + B·(4 + in)
///             + curvature·B·(2·O + 2·H) ).
pub fn estimate(
    sizes: &[usize],
    momentum: bool,
    curvature: bool,
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
mod tests {
    use super::*;

    fn find(est: &MemoryEstimate, name: &str) -> u64 {
        est.buffers
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.bytes)
            .unwrap_or_else(|| panic!("no buffer {name}"))
    }

    // MLP [2, 3, 1] at B = 4, all sizes in bytes (4 per element).
    // Parameters: W0 [3,2] = 6, b0 [3] = 3, W1 [1,3] = 3, b1 [1] = 1 → 13 elements = 52 bytes.
    // Gradients: the same, 52. Velocity (momentum only): 52.
    // Activations: z0 [4,3] = 48, z1 [4,1] = 16, a0 [4,3] = 48, dz0 48, dz1 16, da0 48 → 224.
    // Per example: loss, correct, indices, labels [4] = 16 each → 64; inputs [4,2] = 32 → 96.
    // Plain SGD: 52 + 52 + 224 + 96 = 424; largest buffer 48 (act.z.0).
    // Curvature: rz0 48, rz1 16, ra0 48, rdz0 48, rdz1 16, rda0 48 → 224; hvp 52, direction 52 → 328.
    #[test]
    fn tiny_mlp_plain_sgd() {
        let est = estimate(&[2, 3, 1], false, false, 4).unwrap();
        assert_eq!(est.bytes_of(BufferKind::Parameters), 52);
        assert_eq!(est.bytes_of(BufferKind::Gradients), 52);
        assert_eq!(est.bytes_of(BufferKind::OptimizerState), 0);
        assert_eq!(est.bytes_of(BufferKind::Activations), 224);
        assert_eq!(est.bytes_of(BufferKind::PerExample), 96);
        assert_eq!(est.bytes_of(BufferKind::Curvature), 0);
        assert_eq!(est.total_bytes, 424);
        assert_eq!(est.largest_buffer_bytes, 48);
        assert_eq!(est.largest_buffer, "act.z.0");
        assert_eq!(find(&est, "params.layers.0.weight"), 24);
        assert_eq!(find(&est, "params.layers.1.bias"), 4);
        assert_eq!(find(&est, "act.dz.1"), 16);
        assert_eq!(find(&est, "batch.inputs"), 32);
        assert!(est.buffers.iter().all(|b| !b.name.starts_with("act.a.1")), "output layer has no a");
        assert_eq!(est.buffers.len(), 4 + 4 + 6 + 5);
    }

    #[test]
    fn tiny_mlp_momentum_and_curvature() {
        let est = estimate(&[2, 3, 1], true, false, 4).unwrap();
        assert_eq!(est.bytes_of(BufferKind::OptimizerState), 52);
        assert_eq!(est.total_bytes, 424 + 52);

        let est = estimate(&[2, 3, 1], true, true, 4).unwrap();
        assert_eq!(est.bytes_of(BufferKind::Curvature), 328);
        assert_eq!(find(&est, "rop.rdz.1"), 16);
        assert_eq!(find(&est, "direction.layers.0.weight"), 24);
        assert_eq!(est.total_bytes, 424 + 52 + 328);
    }

    #[test]
    fn matches_closed_form_and_workspace() {
        // [784, 1024, 1024, 10] at B = 256, momentum on, curvature off.
        let sizes = [784, 1024, 1024, 10];
        let b = 256u64;
        let p: u64 = 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10;
        let o: u64 = 1024 + 1024 + 10;
        let h: u64 = 1024 + 1024;
        let want = 4 * (3 * p + b * (2 * o + 2 * h) + b * (4 + 784));
        let est = estimate(&sizes, true, false, 256).unwrap();
        assert_eq!(est.total_bytes, want);
        // model::Mlp::workspace_bytes counts the activations plus loss and correct.
        assert_eq!(est.bytes_of(BufferKind::Activations) + 4 * 2 * b, 4 * b * (2 * o + 2 * h + 2));
        // B = 256: W1 [1024, 1024] (4 MiB) beats z0 [256, 1024] (1 MiB).
        assert_eq!(est.largest_buffer, "params.layers.1.weight");
        // B = 4096: z0 [4096, 1024] (16 MiB) is the first of the [B, 1024] buffers.
        let big = estimate(&sizes, true, false, 4096).unwrap();
        assert_eq!(big.largest_buffer, "act.z.0");
        assert_eq!(big.largest_buffer_bytes, 4 * 4096 * 1024);
    }

    #[test]
    fn invalid_descriptions() {
        assert!(matches!(estimate(&[5], false, false, 1), Err(MemoryError::TooFewLayers { .. })));
        assert!(matches!(estimate(&[5, 0, 1], false, false, 1), Err(MemoryError::ZeroLayerSize { .. })));
        assert_eq!(estimate(&[5, 1], false, false, 0), Err(MemoryError::ZeroBatch));
        assert!(matches!(
            estimate(&[usize::MAX, 2], false, false, usize::MAX),
            Err(MemoryError::Overflow { .. })
        ));
    }

    fn roomy() -> DeviceLimits {
        DeviceLimits {
            max_buffer_size: 1 << 30,
            max_storage_buffer_binding_size: 1 << 30,
            max_workgroups_per_dim: 65535,
            memory_budget: Some(1 << 30),
        }
    }

    #[test]
    fn skip_reasons() {
        let est = estimate(&[2, 3, 1], false, false, 4).unwrap(); // largest 48, total 424
        assert_eq!(check_fit(&est, &roomy()), Ok(()));
        assert_eq!(check_fit(&est, &DeviceLimits::unlimited()), Ok(()));

        let limits = DeviceLimits { max_buffer_size: 47, ..roomy() };
        let r = check_fit(&est, &limits).unwrap_err();
        assert_eq!(r, SkipReason::MaxBufferSize { buffer: "act.z.0".into(), bytes: 48, limit: 47 });
        assert!(r.to_string().contains("max_buffer_size"), "{r}");

        let limits = DeviceLimits { max_storage_buffer_binding_size: 40, ..roomy() };
        let r = check_fit(&est, &limits).unwrap_err();
        assert!(matches!(r, SkipReason::MaxStorageBinding { bytes: 48, limit: 40, .. }));
        assert!(r.to_string().contains("max_storage_buffer_binding_size"), "{r}");

        let limits = DeviceLimits { memory_budget: Some(423), ..roomy() };
        let r = check_fit(&est, &limits).unwrap_err();
        assert_eq!(r, SkipReason::MemoryBudget { total: 424, budget: 423 });
        assert!(r.to_string().contains("memory budget"), "{r}");
        assert_eq!(check_fit(&est, &DeviceLimits { memory_budget: Some(424), ..roomy() }), Ok(()));

        // Largest buffer 48 bytes = 12 elements → 1 workgroup; 0 per dimension allows none.
        let limits = DeviceLimits { max_workgroups_per_dim: 0, ..roomy() };
        let r = check_fit(&est, &limits).unwrap_err();
        assert!(matches!(r, SkipReason::Workgroups { elements: 12, workgroups: 1, limit: 0, .. }));
        assert!(r.to_string().contains("max_compute_workgroups_per_dimension"), "{r}");

        // [1, 1024] at B = 2048: z0 is 2048·1024 = 2^21 elements = 8192 workgroups of 256;
        // 90 per dimension allows 8100, 91 allows 8281.
        let est = estimate(&[1, 1024], false, false, 2048).unwrap();
        let r = check_fit(&est, &DeviceLimits { max_workgroups_per_dim: 90, ..roomy() }).unwrap_err();
        assert!(matches!(r, SkipReason::Workgroups { workgroups: 8192, limit: 8100, .. }), "{r}");
        assert_eq!(check_fit(&est, &DeviceLimits { max_workgroups_per_dim: 91, ..roomy() }), Ok(()));
    }

    #[test]
    fn largest_fit() {
        // [2, 3, 1], plain SGD: total(B) = 104 (params + grads) + B·(56 + 24) = 104 + 80·B.
        // B = 4 → 424 (checked above); budget 1000 → B ≤ 11.2 → largest power of two 8.
        let limits = DeviceLimits { memory_budget: Some(1000), ..roomy() };
        assert_eq!(largest_fitting_batch(&[2, 3, 1], false, false, &limits, 1 << 20), Ok(Some(8)));
        assert_eq!(largest_fitting_batch(&[2, 3, 1], false, false, &limits, 5), Ok(Some(4)));
        assert_eq!(largest_fitting_batch(&[2, 3, 1], false, false, &limits, 0), Ok(None));
        let tiny = DeviceLimits { memory_budget: Some(100), ..roomy() };
        assert_eq!(largest_fitting_batch(&[2, 3, 1], false, false, &tiny, 64), Ok(None));
        // Per-buffer limit: z0 = 12·B bytes ≤ 200 → B ≤ 16.
        let bind = DeviceLimits { max_storage_buffer_binding_size: 200, ..roomy() };
        assert_eq!(largest_fitting_batch(&[2, 3, 1], false, false, &bind, 1 << 20), Ok(Some(16)));
        // Unlimited: capped by max_batch, and no overflow panic near usize::MAX.
        let all = DeviceLimits::unlimited();
        assert_eq!(largest_fitting_batch(&[2, 3, 1], false, false, &all, 1000), Ok(Some(512)));
        assert!(largest_fitting_batch(&[2, 3, 1], false, false, &all, usize::MAX).unwrap().is_some());
        assert!(largest_fitting_batch(&[2], false, false, &all, 8).is_err());
    }
}

//! Unit tests of the memory model: hand-counted buffers of tiny MLPs, the closed form, the
//! limits a step is checked against, and the largest batch that fits.

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
    assert_eq!(est.bytes_of(BufferKind::Curvature), 432);
    assert_eq!(find(&est, "rop.rdz.1"), 16);
    assert_eq!(find(&est, "direction.layers.0.weight"), 24);
    assert_eq!(est.total_bytes, 424 + 52 + 432);
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

// The f16 step of MLP [2, 3, 1] at B = 4 adds its operands in f16, ceil(n / 2) words each:
// half.w.0 [3,2] = 6 halves → 3 words, half.w.1 [1,3] = 3 → 2, half.x [4,2] = 8 → 4,
// half.a.0 [4,3] = 12 → 6, half.dz.0 [4,3] = 12 → 6, half.dz.1 [4,1] = 4 → 2: 23 words = 92
// bytes; every f32 buffer stays.
#[test]
fn f16_step_adds_its_half_operands() {
    let f32_step = estimate(&[2, 3, 1], true, false, 4).unwrap();
    let f16_step = estimate_step(&[2, 3, 1], true, false, Precision::F16, 4).unwrap();
    assert_eq!(f16_step.bytes_of(BufferKind::HalfCopies), 92);
    assert_eq!(f16_step.total_bytes, f32_step.total_bytes + 92);
    assert_eq!(find(&f16_step, "half.w.1"), 8);
    assert_eq!(find(&f16_step, "half.dz.1"), 8);
    assert_eq!(f32_step.bytes_of(BufferKind::HalfCopies), 0);
    let same = estimate_step(&[2, 3, 1], true, false, Precision::F32, 4).unwrap();
    assert_eq!(same, f32_step);
    // The default model at B = 4096: the f16 operands are Σ in·out / 2 + B (784 + 1024 + 2·1024
    // + 10) / 2 halves' words.
    let sizes = [784, 1024, 1024, 10];
    let big = estimate_step(&sizes, true, false, Precision::F16, 4096).unwrap();
    let weights = (784 * 1024 + 1024 * 1024 + 1024 * 10) / 2;
    let rows = 4096 * (784 + 1024 + 1024 + 1024 + 1024 + 10) / 2;
    assert_eq!(big.bytes_of(BufferKind::HalfCopies), 4 * (weights + rows) as u64);
}

/// The model's f16 buffers are the ones `Mlp::half_workspace` allocates, word for word (the
/// CPU backend's `HalfBuf`s hold the same words a GPU buffer does), on a ragged model.
#[test]
fn half_copies_are_what_the_half_workspace_allocates() {
    use crate::backend::cpu::CpuBackend;
    let mut cfg = crate::config::Config::embedded_default().expect("default");
    cfg.model.hidden = vec![7, 5];
    cfg.data.dim = 3;
    cfg.data.classes = 3;
    let spec = cfg.mlp_spec();
    let model = crate::model::Mlp::new(spec.clone()).expect("model");
    let rows = 9;
    let hw = model.half_workspace(&CpuBackend::new(), rows).expect("half workspace");
    let words: usize =
        hw.w.iter().chain(&hw.a).chain(&hw.dz).chain([&hw.x]).map(|h| h.words.len()).sum();
    let est = estimate_step(&spec.sizes, false, false, Precision::F16, rows).unwrap();
    assert_eq!(est.bytes_of(BufferKind::HalfCopies), 4 * words as u64);
}

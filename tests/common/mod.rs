//! Shared test helpers: the GPU under test, seeded inputs, and tolerance checks that print the
//! worst element.
#![allow(dead_code)]

use batchscope::backend::cpu::CpuBackend;
use batchscope::backend::gpu::GpuBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The GPU under test: the best adapter, or `BATCHSCOPE_ADAPTER` (a name substring).
/// Without an adapter this fails with the fix in the message; GPU tests never pass silently.
pub fn gpu() -> GpuBackend {
    let wanted = std::env::var("BATCHSCOPE_ADAPTER").ok();
    match GpuBackend::new(wanted.as_deref()) {
        Ok(g) => g,
        Err(e) => panic!("GPU tests need a GPU adapter (CI uses lavapipe): {e}"),
    }
}

pub fn cpu() -> CpuBackend {
    CpuBackend::new()
}

/// Uniform values in [-scale, scale), seeded.
pub fn uniform(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| (r.random::<f32>() * 2.0 - 1.0) * scale).collect()
}

/// Integers in [0, hi), seeded.
pub fn indices(seed: u64, n: usize, hi: u32) -> Vec<u32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(0..hi)).collect()
}

/// `|ref - out| <= atol + rtol * |ref|` for every element; panics naming the worst one.
pub fn assert_close(what: &str, reference: &[f32], out: &[f32], atol: f32, rtol: f32) {
    assert_eq!(reference.len(), out.len(), "{what}: lengths differ");
    let mut worst: Option<(usize, f32)> = None;
    let mut failures = 0usize;
    for (i, (&r, &o)) in reference.iter().zip(out).enumerate() {
        let err = (r - o).abs();
        let tol = atol + rtol * r.abs();
        let excess = if err.is_nan() || (r.is_nan() != o.is_nan()) { f32::INFINITY } else { err - tol };
        if excess > 0.0 {
            failures += 1;
        }
        if worst.is_none_or(|(_, w)| excess > w) {
            worst = Some((i, excess));
        }
    }
    if failures > 0 {
        let (i, _) = worst.unwrap_or((0, 0.0));
        panic!(
            "{what}: {failures}/{} elements out of tolerance (atol {atol}, rtol {rtol}); worst at [{i}]: ref {} vs out {} (|diff| {})",
            reference.len(),
            reference[i],
            out[i],
            (reference[i] - out[i]).abs()
        );
    }
}

/// One test body, one `#[test]` per backend: `both_backends!(name, body)` where
/// `body: fn<B: Backend>(&B)`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$body(&super::common::cpu());
            }
            #[test]
            fn gpu() {
                super::$body(&super::common::gpu());
            }
        }
    };
}

//! Shared test helpers: the GPU under test, seeded inputs, scratch directories, CSV reading, and
//! the tolerance check that prints the worst element.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use batchscope::backend::cpu::CpuBackend;
use batchscope::backend::gpu::GpuBackend;
use batchscope::backend::Activation;
use batchscope::model::{LossKind, MlpSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub mod cli;
mod close;
pub mod half;
pub mod naga_use;
pub mod spirv;
pub mod steps;
#[allow(unused_imports)] // not every test file compares slices
pub use close::assert_close;

/// A small MLP on a Gaussian mixture, 100 logged steps: the data-parallel and MPI trajectory
/// tests' run.
pub const SMALL_PARALLEL_TOML: &str = r#"
[model]
hidden = [16]
activation = "tanh"
[data]
kind = "gaussian_mixture"
n_train = 4096
n_val = 256
dim = 8
classes = 4
separation = 2.0
seed = 5
[train]
batch_size = 32
optimizer = "momentum"
lr = 0.05
epochs = 0
steps = 100
log_every = 1
eval_every = 50
"#;

/// A fresh scratch directory `batchscope-<test file>-<pid>-<name>` under the system temp dir:
/// any leftover from an earlier run is removed, then the directory is created (empty).
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "batchscope-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A CSV file as its header and rows of fields (read with the `csv` crate).
pub fn read_csv(p: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let header = r.headers().expect("csv header").iter().map(String::from).collect();
    let rows =
        r.records().map(|rec| rec.expect("csv record").iter().map(String::from).collect()).collect();
    (header, rows)
}

/// The GPU under test: the best adapter, or `BATCHSCOPE_ADAPTER` (a name substring).
/// Without an adapter this fails with the fix in the message; GPU tests never pass silently.
pub fn gpu() -> GpuBackend {
    let wanted = std::env::var("BATCHSCOPE_ADAPTER").ok();
    match GpuBackend::new(wanted.as_deref()) {
        Ok(g) => g,
        Err(e) => panic!("GPU tests need a GPU adapter (CI uses lavapipe): {e}"),
    }
}

/// The adapter the binary opens without `--adapter` (the best one; `BATCHSCOPE_ADAPTER` is the
/// test helpers' alone), for tests that run the binary and expect what that adapter offers.
/// Without an adapter this fails with the fix in the message, as [`gpu`] does.
pub fn binary_gpu() -> GpuBackend {
    match GpuBackend::new(None) {
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

/// f64 reference: mean loss of the MLP with host params (W0, b0, W1, b1, ...), over the
/// `x.len() / sizes[0]` examples of `x`; the gradient and HVP checks difference it.
pub fn reference_loss(
    spec: &MlpSpec,
    params: &[Vec<f64>],
    x: &[f64],
    labels: &[u32],
    targets: &[f64],
) -> f64 {
    let l = spec.sizes.len() - 1;
    let rows = x.len() / spec.sizes[0];
    let mut a: Vec<f64> = x.to_vec();
    for layer in 0..l {
        let (fi, fo) = (spec.sizes[layer], spec.sizes[layer + 1]);
        let (w, b) = (&params[2 * layer], &params[2 * layer + 1]);
        let mut z = vec![0.0; rows * fo];
        for r in 0..rows {
            for o in 0..fo {
                let mut s = b[o];
                for i in 0..fi {
                    s += a[r * fi + i] * w[o * fi + i];
                }
                z[r * fo + o] = if layer + 1 < l {
                    match spec.activation {
                        Activation::Identity => s,
                        Activation::Relu => s.max(0.0),
                        Activation::Tanh => s.tanh(),
                    }
                } else {
                    s
                };
            }
        }
        a = z;
    }
    let k = spec.sizes[l];
    let mut total = 0.0;
    for r in 0..rows {
        let row = &a[r * k..(r + 1) * k];
        total += match spec.loss {
            LossKind::SoftmaxXent => {
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                lse - row[labels[r] as usize]
            }
            LossKind::Mse => {
                0.5 * row
                    .iter()
                    .zip(&targets[r * k..(r + 1) * k])
                    .map(|(p, t)| (p - t) * (p - t))
                    .sum::<f64>()
            }
        };
    }
    total / rows as f64
}

/// A tiny MLP config (4-8-3 on a Gaussian mixture, one epoch of B = 32) whose sweep section
/// spans `min_batch..=max_batch` with one warm-up and `timed_steps` timed steps.
pub fn tiny_config(min_batch: usize, max_batch: usize, timed_steps: usize) -> String {
    format!(
        r#"[model]
hidden = [8]
[data]
kind = "gaussian_mixture"
n_train = 256
n_val = 64
dim = 4
classes = 3
separation = 4.0
[train]
batch_size = 32
epochs = 1
log_every = 2
[sweep]
min_batch = {min_batch}
max_batch = {max_batch}
warmup_steps = 1
timed_steps = {timed_steps}
"#
    )
}

/// The auto rule that runs every product on the tile family's `tile` (the small-grid tile,
/// skinny kernels off): how tests reach each family kernel.
#[allow(dead_code)]
pub fn family_rule(
    tile: batchscope::backend::gpu::tile::TileCfg,
) -> batchscope::backend::gpu::auto_rule::AutoRule {
    batchscope::backend::gpu::auto_rule::AutoRule {
        skinny_max_m: 0,
        skinny_max_n: 0,
        skinny_max_k: 0,
        skinny_ta_max_m: 0,
        small_grid_tile: Some(tile),
    }
}

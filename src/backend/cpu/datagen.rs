//! Synthetic data streams: the CPU twin of `shaders/datagen.wgsl` and the generator of the
//! resident synthetic datasets (so resident and streamed training see the same examples).
//!
//! Example `i` of a stream is distinct example `d = i / duplicates`; every value of it is a
//! pure function of `(seed, d)` through [`crate::backend::rng`]:
//! - gaussian_mixture: block 0 of `STREAM_LABEL` gives `w`; the true class is
//!   `y = below(w0, classes)`; the label is `below(w2, classes)` when `(w1 >> 8) < noise_threshold`
//!   (probability `label_noise`), else `y`; `x[j] = means[y, j] + normal_j` (`STREAM_X`).
//! - linear_regression: `x[j] = std[j] · normal_j` (`STREAM_X`);
//!   `t[k] = Σ_j W*[k, j] x[j]` (sequential f32 sum over `j`) `+ noise_std · normal'_k`
//!   (`STREAM_TARGET_NOISE`).
//!
//! The arithmetic here is the specification: the shader performs the same f32 operations in the
//! same order (up to fused multiply-adds), so integers agree exactly and floats to ≈ 1e-7.

use rayon::prelude::*;

use crate::backend::rng::{self, below, block, normals4, STREAM_LABEL, STREAM_TARGET_NOISE, STREAM_X};
use crate::backend::{check_len, BackendError, GenKind, GenSpec, Result};

const OP: &str = "generate";

/// Rows per rayon task (the result does not depend on it).
const ROWS_PER_TASK: usize = 64;

/// `round(label_noise · 2^24)` clamped to `[0, 2^24]`: a label is noisy iff `(w1 >> 8) < this`.
pub fn noise_threshold(label_noise: f32) -> u32 {
    let p = if label_noise.is_finite() { label_noise.clamp(0.0, 1.0) } else { 0.0 };
    (p as f64 * (1u64 << 24) as f64).round() as u32
}

/// Elements of the table a stream needs: `means [classes, dim]` (gaussian_mixture) or
/// `W* [outputs, dim]` then `std [dim]` (linear_regression).
pub fn table_len(spec: &GenSpec) -> usize {
    match spec.kind {
        GenKind::GaussianMixture => spec.classes * spec.dim,
        GenKind::LinearRegression => (spec.outputs + 1) * spec.dim,
    }
}

/// Check the spec and the index range; returns the label-noise threshold.
pub fn check_spec(spec: &GenSpec, first: u64, rows: usize) -> Result<u32> {
    let bad = |message: String| BackendError::Invalid { op: OP, message };
    if spec.duplicates == 0 {
        return Err(bad("duplicates must be ≥ 1".into()));
    }
    if spec.kind == GenKind::GaussianMixture && spec.classes == 0 {
        return Err(bad("gaussian_mixture needs classes ≥ 1".into()));
    }
    if spec.classes > u32::MAX as usize {
        return Err(bad(format!("classes = {} exceeds 2^32-1", spec.classes)));
    }
    if first.checked_add(rows as u64).is_none() {
        return Err(bad(format!("examples {first} + {rows} overflow the 64-bit index")));
    }
    Ok(noise_threshold(spec.label_noise))
}

/// The label of distinct example `d` and its true class (gaussian_mixture, teacher noise).
#[inline]
pub fn label_of(key: [u32; 2], d: u64, classes: u32, noise_thr: u32) -> (u32, u32) {
    let w = block(key, STREAM_LABEL, d, 0);
    let y = below(w[0], classes);
    let label = if (w[1] >> 8) < noise_thr { below(w[2], classes) } else { y };
    (label, y)
}

/// `out[j] = base[j] + scale[j] · normal_j(d)` for `out: [dim]`, with `base` / `scale` absent
/// meaning 0 / 1 (the x of every kind).
#[inline]
fn normals_row(key: [u32; 2], d: u64, base: Option<&[f32]>, scale: Option<&[f32]>, out: &mut [f32]) {
    for (q, chunk) in out.chunks_mut(4).enumerate() {
        let n = normals4(block(key, STREAM_X, d, q as u32));
        for (c, o) in chunk.iter_mut().enumerate() {
            let j = q * 4 + c;
            let z = match scale {
                Some(s) => s[j] * n[c],
                None => n[c],
            };
            *o = match base {
                Some(b) => b[j] + z,
                None => z,
            };
        }
    }
}

/// `x [dim]` of distinct example `d` drawn from `N(0, I)` (the teacher's inputs).
pub fn standard_normal_row(seed: u64, d: u64, x: &mut [f32]) {
    normals_row(rng::key_of(seed), d, None, None, x);
}

/// Synthetic examples `first .. first + rows` of `spec`: `x [rows, dim]`; `labels [rows]`
/// (gaussian_mixture; `targets` untouched) or `targets [rows, outputs]` (linear_regression;
/// `labels` untouched). `table` as in [`table_len`].
pub fn generate(
    spec: &GenSpec,
    first: u64,
    rows: usize,
    table: &[f32],
    x: &mut [f32],
    labels: &mut [u32],
    targets: &mut [f32],
) -> Result<()> {
    let noise_thr = check_spec(spec, first, rows)?;
    let dim = spec.dim;
    check_len(OP, "table", table.len(), table_len(spec))?;
    check_len(OP, "x", x.len(), rows * dim)?;
    let key = rng::key_of(spec.seed);
    let dup = spec.duplicates;
    let distinct = |r: usize| (first + r as u64) / dup;
    match spec.kind {
        GenKind::GaussianMixture => {
            check_len(OP, "labels", labels.len(), rows)?;
            let classes = spec.classes as u32;
            let labels = &mut labels[..rows];
            if dim == 0 {
                for (r, l) in labels.iter_mut().enumerate() {
                    *l = label_of(key, distinct(r), classes, noise_thr).0;
                }
                return Ok(());
            }
            x[..rows * dim]
                .par_chunks_mut(dim * ROWS_PER_TASK)
                .zip(labels.par_chunks_mut(ROWS_PER_TASK))
                .enumerate()
                .for_each(|(t, (xs, ls))| {
                    for (i, (xr, l)) in xs.chunks_mut(dim).zip(ls.iter_mut()).enumerate() {
                        let d = distinct(t * ROWS_PER_TASK + i);
                        let (label, y) = label_of(key, d, classes, noise_thr);
                        *l = label;
                        let mean = &table[y as usize * dim..(y as usize + 1) * dim];
                        normals_row(key, d, Some(mean), None, xr);
                    }
                });
        }
        GenKind::LinearRegression => {
            let k_out = spec.outputs;
            check_len(OP, "targets", targets.len(), rows * k_out)?;
            if k_out == 0 && dim == 0 {
                return Ok(());
            }
            let (w_star, std) = table.split_at(k_out * dim);
            let std = &std[..dim];
            let noise_std = spec.noise_std;
            let row = |r: usize, xr: &mut [f32], tr: &mut [f32]| {
                let d = distinct(r);
                normals_row(key, d, None, Some(std), xr);
                for (q, chunk) in tr.chunks_mut(4).enumerate() {
                    let n = normals4(block(key, STREAM_TARGET_NOISE, d, q as u32));
                    for (c, t) in chunk.iter_mut().enumerate() {
                        let k = q * 4 + c;
                        let mut acc = 0.0f32;
                        for (w, xv) in w_star[k * dim..(k + 1) * dim].iter().zip(xr.iter()) {
                            acc += w * xv;
                        }
                        *t = acc + noise_std * n[c];
                    }
                }
            };
            let x = &mut x[..rows * dim];
            let targets = &mut targets[..rows * k_out];
            if dim == 0 || k_out == 0 {
                // One side is empty: chunking by it is impossible, run rows in order.
                for r in 0..rows {
                    row(r, &mut x[r * dim..(r + 1) * dim], &mut targets[r * k_out..(r + 1) * k_out]);
                }
                return Ok(());
            }
            x.par_chunks_mut(dim * ROWS_PER_TASK)
                .zip(targets.par_chunks_mut(k_out * ROWS_PER_TASK))
                .enumerate()
                .for_each(|(t, (xs, ts))| {
                    for (i, (xr, tr)) in xs.chunks_mut(dim).zip(ts.chunks_mut(k_out)).enumerate() {
                        row(t * ROWS_PER_TASK + i, xr, tr);
                    }
                });
        }
    }
    Ok(())
}

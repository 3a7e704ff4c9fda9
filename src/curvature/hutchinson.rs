//! Hutchinson's trace estimator: for Rademacher `z` (independent ±1 entries) `E[zᵀ A z] = tr A`,
//! with variance `2 Σ_{i≠j} A_ij²` (the diagonal contributes none). Probes are drawn until the
//! running mean settles: its standard error `s/√n` falls below `rel_tol · |mean|`.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{dot, rademacher, Result, SymOp};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HutchinsonOptions {
    /// Probes drawn before the stopping rule is checked (the standard error needs a few).
    pub min_samples: usize,
    pub max_samples: usize,
    /// Stop when the standard error of the mean is at most `rel_tol · |mean|`.
    pub rel_tol: f64,
    pub seed: u64,
}

impl Default for HutchinsonOptions {
    fn default() -> Self {
        HutchinsonOptions { min_samples: 8, max_samples: 200, rel_tol: 0.01, seed: 0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceEstimate {
    /// Mean of `zᵀ A z` over the probes.
    pub trace: f64,
    /// Standard error of that mean (`s / √n`).
    pub std_error: f64,
    pub samples: usize,
    /// Whether the relative standard error reached `rel_tol` before `max_samples`.
    pub converged: bool,
    /// The running mean after each probe.
    pub running_mean: Vec<f64>,
}

/// Estimate `tr A` with seeded Rademacher probes.
pub fn hutchinson_trace<O: SymOp + ?Sized>(
    op: &mut O,
    opts: &HutchinsonOptions,
) -> Result<TraceEstimate> {
    let n = op.dim();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut az = vec![0f32; n];
    // Welford's running mean and sum of squared deviations.
    let (mut mean, mut m2) = (0f64, 0f64);
    let mut running_mean = Vec::new();
    let mut converged = false;
    let mut k = 0usize;
    let max = opts.max_samples.max(1);
    while k < max {
        let z = rademacher(&mut rng, n);
        op.apply(&z, &mut az)?;
        let s = dot(&z, &az);
        k += 1;
        let d = s - mean;
        mean += d / k as f64;
        m2 += d * (s - mean);
        running_mean.push(mean);
        if k >= opts.min_samples.max(2) && std_error(m2, k) <= opts.rel_tol * mean.abs() {
            converged = true;
            break;
        }
    }
    Ok(TraceEstimate { trace: mean, std_error: std_error(m2, k), samples: k, converged, running_mean })
}

fn std_error(m2: f64, k: usize) -> f64 {
    if k < 2 {
        return f64::INFINITY;
    }
    (m2 / (k - 1) as f64 / k as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::super::DenseSym;
    use super::*;

    #[test]
    fn diagonal_trace_is_exact_from_one_probe() {
        // zᵀ D z = Σ d_i z_i² = tr D for every ±1 vector: zero variance.
        let mut m = DenseSym::diag(&[1.0, 2.0, -0.5, 4.0]);
        let t = hutchinson_trace(&mut m, &HutchinsonOptions::default()).unwrap();
        assert!((t.trace - 6.5).abs() < 1e-6, "{t:?}");
        assert!(t.converged);
        assert_eq!(t.samples, 8, "stops at min_samples when the variance is zero");
    }

    #[test]
    fn dense_trace_within_a_few_standard_errors() {
        let n = 40;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = if i == j {
                    1.0 + i as f64 / n as f64
                } else {
                    0.05 * ((i * 7 + j * 3) as f64).sin()
                };
            }
        }
        let mut m = DenseSym::new(n, a).unwrap();
        let exact = m.trace();
        let t = hutchinson_trace(
            &mut m,
            &HutchinsonOptions { min_samples: 10, max_samples: 2000, rel_tol: 0.002, seed: 9 },
        )
        .unwrap();
        assert!(t.converged, "{} samples", t.samples);
        assert!(
            (t.trace - exact).abs() < 4.0 * t.std_error + 1e-9,
            "{} vs {exact} ± {}",
            t.trace,
            t.std_error
        );
        assert_eq!(t.running_mean.len(), t.samples);
    }
}

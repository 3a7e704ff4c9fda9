//! Stochastic Lanczos quadrature (SLQ): the spectral density `φ(t) = (1/P) Σ_i δ(t − λ_i)` of a
//! `P × P` symmetric operator. For a random unit `q`, `qᵀ f(A) q ≈ Σ_i τ_i f(θ_i)` with the Ritz
//! values `θ_i` and weights `τ_i = s_{1,i}²` of an m-step Lanczos run (Gauss quadrature);
//! averaging over `runs` starts and replacing `δ` by a Gaussian of width σ gives a smooth
//! density whose integral is 1.

use serde::Serialize;

use super::lanczos::{lanczos, LanczosRun, Ritz};
use super::{random_unit, Result, SymOp};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlqOptions {
    /// Lanczos runs from independent random starts.
    pub runs: usize,
    /// Lanczos steps per run.
    pub steps: usize,
    pub seed: u64,
}

impl Default for SlqOptions {
    fn default() -> Self {
        SlqOptions { runs: 4, steps: 48, seed: 0 }
    }
}

/// Quadrature nodes of every run, each weight already divided by the number of runs (so all
/// weights sum to 1).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SlqResult {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
    pub runs: usize,
    /// Lanczos steps actually taken in each run.
    pub steps: Vec<usize>,
}

impl SlqResult {
    /// Quadrature of `f`: `≈ (1/P) Σ_i f(λ_i)`.
    pub fn integrate(&self, f: impl Fn(f64) -> f64) -> f64 {
        self.nodes.iter().zip(&self.weights).map(|(&t, &w)| w * f(t)).sum()
    }

    /// The fraction of eigenvalues below `−threshold` (the negative eigen-mass of a saddle).
    pub fn mass_below(&self, threshold: f64) -> f64 {
        self.integrate(|t| if t < -threshold { 1.0 } else { 0.0 })
    }

    /// Cell-interpolated mass below `-threshold` (experiment).
    pub fn negative_mass_of(&self, threshold: f64) -> f64 {
        let t = -threshold;
        let mut total = 0.0;
        let mut start = 0;
        for &m in &self.steps {
            let mut run: Vec<(f64, f64)> = self.nodes[start..start + m]
                .iter()
                .copied()
                .zip(self.weights[start..start + m].iter().copied())
                .collect();
            start += m;
            run.sort_by(|a, b| a.0.total_cmp(&b.0));
            for k in 0..run.len() {
                let (x, w) = run[k];
                let a = if k > 0 { 0.5 * (run[k - 1].0 + x) } else { x };
                let b = if k + 1 < run.len() { 0.5 * (x + run[k + 1].0) } else { x };
                let f = if b > a {
                    ((t - a) / (b - a)).clamp(0.0, 1.0)
                } else if x < t {
                    1.0
                } else {
                    0.0
                };
                total += w * f;
            }
        }
        total
    }

    /// Add the nodes of one run (weights scaled by `1/runs` after all runs: see [`slq`]).
    pub fn push_run(&mut self, run: &LanczosRun) -> Result<()> {
        self.push_ritz(&run.ritz()?);
        Ok(())
    }

    /// Add the nodes of one run from its Ritz decomposition.
    pub fn push_ritz(&mut self, r: &Ritz) {
        self.nodes.extend(&r.values);
        self.weights.extend(&r.weights);
        self.runs += 1;
        self.steps.push(r.values.len());
    }

    fn normalise(&mut self) {
        let total: f64 = self.weights.iter().sum();
        if total > 0.0 {
            self.weights.iter_mut().for_each(|w| *w /= total);
        }
    }
}

/// A density sampled on a grid.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Density {
    pub grid: Vec<f64>,
    pub density: Vec<f64>,
    /// Width σ of the Gaussian standing in for each node.
    pub sigma: f64,
}

/// SLQ from `opts.runs` random starts; `first`, when given, is the Ritz decomposition of a run
/// already made (from a random start too) that counts as one of them.
pub fn slq<O: SymOp + ?Sized>(op: &mut O, opts: &SlqOptions, first: Option<&Ritz>) -> Result<SlqResult> {
    let mut out = SlqResult::default();
    if let Some(r) = first {
        out.push_ritz(r);
    }
    let mut k = 0u64;
    while out.runs < opts.runs.max(1) {
        let start = random_unit(opts.seed.wrapping_add(0x5151_0000 + k), op.dim());
        out.push_run(&lanczos(op, &start, opts.steps)?)?;
        k += 1;
    }
    out.normalise();
    Ok(out)
}

/// The Gaussian-broadened density `Σ_i w_i N(t; θ_i, σ²)` at `points` grid points spanning the
/// nodes plus `5σ` on each side, with `σ = sigma_frac · (max θ − min θ)` (or a small absolute
/// width when all nodes coincide). Integrates to `Σ w_i` (1 for an [`SlqResult`]).
pub fn density_on_grid(nodes: &[f64], weights: &[f64], points: usize, sigma_frac: f64) -> Density {
    let lo = nodes.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = nodes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return Density { grid: Vec::new(), density: Vec::new(), sigma: 0.0 };
    }
    let span = hi - lo;
    let sigma = if span > 0.0 { sigma_frac * span } else { 1e-3 * lo.abs().max(1e-12) };
    let (a, b) = (lo - 5.0 * sigma, hi + 5.0 * sigma);
    let points = points.max(2);
    let norm = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
    let grid: Vec<f64> = (0..points).map(|i| a + (b - a) * i as f64 / (points - 1) as f64).collect();
    let density = grid
        .iter()
        .map(|&t| {
            nodes
                .iter()
                .zip(weights)
                .map(|(&x, &w)| w * norm * (-0.5 * ((t - x) / sigma).powi(2)).exp())
                .sum()
        })
        .collect();
    Density { grid, density, sigma }
}

#[cfg(test)]
mod tests {
    use super::super::DenseSym;
    use super::*;

    #[test]
    fn slq_moments_match_the_spectrum() {
        // Eigenvalues 0.1 .. 2 and three negative ones: mean, second moment and negative mass.
        let mut d: Vec<f64> = (0..60).map(|i| 0.1 + 1.9 * i as f64 / 59.0).collect();
        d[3] = -1.0;
        d[7] = -0.5;
        d[11] = -0.25;
        let mut m = DenseSym::diag(&d);
        let r = slq(&mut m, &SlqOptions { runs: 30, steps: 20, seed: 4 }, None).unwrap();
        let mean: f64 = d.iter().sum::<f64>() / 60.0;
        let m2: f64 = d.iter().map(|x| x * x).sum::<f64>() / 60.0;
        assert!(
            (r.integrate(|t| t) - mean).abs() < 0.05 * mean.abs() + 0.02,
            "{} vs {mean}",
            r.integrate(|t| t)
        );
        assert!((r.integrate(|t| t * t) - m2).abs() < 0.1 * m2, "{} vs {m2}", r.integrate(|t| t * t));
        let neg = r.mass_below(1e-6);
        assert!((neg - 3.0 / 60.0).abs() < 0.03, "negative mass {neg}");
        assert!((r.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // Every node lies in the spectrum's hull.
        assert!(r.nodes.iter().all(|&t| (-1.0 - 1e-6..=2.0 + 1e-6).contains(&t)));
    }

    #[test]
    fn density_integrates_to_the_total_weight() {
        let d = density_on_grid(&[0.0, 1.0, 3.0], &[0.5, 0.25, 0.25], 2001, 0.01);
        let h = d.grid[1] - d.grid[0];
        let integral: f64 = d.density.iter().sum::<f64>() * h;
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        assert!(d.grid[0] < 0.0 && *d.grid.last().unwrap() > 3.0);
        // Peak heights follow the weights.
        let at = |x: f64| d.density[d.grid.iter().position(|&g| g >= x).unwrap()];
        assert!(at(0.0) > 1.5 * at(1.0));
    }
}

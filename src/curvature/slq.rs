//! Stochastic Lanczos quadrature (SLQ): the spectral density `φ(t) = (1/P) Σ_i δ(t − λ_i)` of a
//! `P × P` symmetric operator. For a random unit `q`, `qᵀ f(A) q ≈ Σ_i τ_i f(θ_i)` with the Ritz
//! values `θ_i` and weights `τ_i = s_{1,i}²` of an m-step Lanczos run (Gauss quadrature);
//! averaging over `runs` starts and replacing `δ` by a Gaussian of width σ gives a smooth
//! density whose integral is 1.

use serde::Serialize;

use super::lanczos::{lanczos, LanczosRun, Ritz};
use super::{random_unit, stream_seed, Result, Stream, SymOp};

/// Eigenvalues below `−NEGATIVE_TOL · max|λ|` count as negative eigen-mass, and a Ritz value
/// whose residual interval reaches within `NEGATIVE_TOL · max|λ|` of 0 makes the Hessian
/// singular within tolerance (rounding leaves a null space a little on both sides of 0).
pub const NEGATIVE_TOL: f64 = 1e-4;
/// Nodes within this many thresholds of 0 stand for the near-null cluster ([`SlqResult::mass_below`]).
pub const ZERO_BAND_FACTOR: f64 = 10.0;

/// A Ritz value has converged when its residual is at most this fraction of its magnitude.
pub const CONVERGED_REL: f64 = 1e-3;

/// What the Ritz values of a Lanczos run say of the condition number κ = λmax / min|λ|.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionStatus {
    /// The Ritz value of smallest magnitude has converged: κ = λmax / |θ|.
    Converged,
    /// Every Ritz interval `[θ − r, θ + r]` stays clear of 0, but the smallest `|θ|` has not
    /// converged: Ritz values lie inside the spectrum (θ ≥ λmin for a positive definite
    /// Hessian), so κ ≥ λmax / |θ|, and more Lanczos steps can only raise it.
    LowerBound,
    /// A converged Ritz value lies within the tolerance of 0: an eigenvalue within twice the
    /// tolerance of 0, κ = ∞ as far as the tolerance resolves.
    Singular,
    /// A Ritz interval reaches within the tolerance of 0 without its value converging: the run
    /// has not resolved the bottom of the spectrum, and neither ∞ nor a number can be said.
    /// (This was printed "singular" for a positive definite Hessian of 301 parameters whose
    /// smallest Ritz value, 9.9e-4 ± 1.0e-3, had not converged.)
    Unresolved,
}

/// [`conditioning`]'s answer: the status, `λmax / |θ|` where it is a number (converged or a
/// lower bound), and the Ritz value θ with its residual r that decided it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conditioning {
    pub status: ConditionStatus,
    pub estimate: Option<f64>,
    pub theta: f64,
    pub residual: f64,
}

/// The condition number as far as the Ritz `values` (with their `residuals` `‖A y − θ y‖`: an
/// eigenvalue lies in `[θ − r, θ + r]`) resolve it, with `tol` the width of "0".
pub fn conditioning(values: &[f64], residuals: &[f64], lambda_max: f64, tol: f64) -> Conditioning {
    let pairs = values.iter().enumerate().map(|(i, &v)| (v, residuals.get(i).copied().unwrap_or(0.0)));
    let at = |status, (theta, residual): (f64, f64), estimate| Conditioning {
        status,
        estimate,
        theta,
        residual,
    };
    let by_magnitude = |a: &(f64, f64), b: &(f64, f64)| a.0.abs().total_cmp(&b.0.abs());
    if let Some(p) = pairs.clone().filter(|&(v, r)| v.abs() <= tol && r <= tol).min_by(by_magnitude) {
        return at(ConditionStatus::Singular, p, None);
    }
    let reach = |&(v, r): &(f64, f64)| v.abs() - r;
    if let Some(p) =
        pairs.clone().filter(|p| reach(p) <= tol).min_by(|a, b| reach(a).total_cmp(&reach(b)))
    {
        return at(ConditionStatus::Unresolved, p, None);
    }
    let Some(p) = pairs.min_by(by_magnitude) else {
        return at(ConditionStatus::Unresolved, (f64::NAN, f64::NAN), None);
    };
    let estimate = (lambda_max.is_finite() && p.0 != 0.0).then(|| lambda_max / p.0.abs());
    let status = if p.1 <= CONVERGED_REL * p.0.abs() {
        ConditionStatus::Converged
    } else {
        ConditionStatus::LowerBound
    };
    at(status, p, estimate)
}

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

    /// The fraction of eigenvalues below `−threshold` (the negative eigen-mass of a saddle;
    /// [`NEGATIVE_TOL`]` · max|λ|` in `batchscope curvature`).
    ///
    /// An m-step Lanczos run resolves the spectrum only to about its span / m: eigenvalues
    /// closer to 0 than that (the null space of an over-parameterised model and its
    /// neighbours on both sides) merge into one node a little off 0 carrying all their weight,
    /// which counted by its sign over-counts one side by that whole weight. So a node within
    /// `ZERO_BAND_FACTOR · threshold` of 0 is taken as the near-null cluster and counts as
    /// zero; every other node counts by its sign. The error of this rule is bounded by the
    /// weights of the nodes next to the threshold ([`SlqResult::mass_bracket`]).
    pub fn mass_below(&self, threshold: f64) -> f64 {
        let band = ZERO_BAND_FACTOR * threshold;
        self.integrate(|t| if t < -threshold && t.abs() > band { 1.0 } else { 0.0 })
    }

    /// `(lower, upper)` bounds on the fraction of eigenvalues below `−threshold` under each
    /// run's quadrature measure (Chebyshev–Markov–Stieltjes: the distribution function at a
    /// point lies between the node-weight sums without the node just below it and with the
    /// node just above it), averaged over the runs.
    pub fn mass_bracket(&self, threshold: f64) -> (f64, f64) {
        let t = -threshold;
        let (mut lower, mut upper) = (0.0, 0.0);
        let mut start = 0;
        for &m in &self.steps {
            let end = (start + m).min(self.nodes.len());
            let run: Vec<(f64, f64)> = self.nodes[start..end]
                .iter()
                .copied()
                .zip(self.weights[start..end].iter().copied())
                .collect();
            start = end;
            let below: f64 = run.iter().filter(|(x, _)| *x < t).map(|(_, w)| w).sum();
            let just_below = run
                .iter()
                .filter(|(x, _)| *x < t)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(0.0, |n| n.1);
            let just_above = run
                .iter()
                .filter(|(x, _)| *x >= t)
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(0.0, |n| n.1);
            lower += below - just_below;
            upper += below + just_above;
        }
        (lower.max(0.0), upper.min(1.0))
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

    /// The fraction below `−threshold` ([`SlqResult::mass_below`]'s rule) of each run alone.
    pub fn mass_below_per_run(&self, threshold: f64) -> Vec<f64> {
        let band = ZERO_BAND_FACTOR * threshold;
        let mut start = 0;
        let mut out = Vec::with_capacity(self.steps.len());
        for &m in &self.steps {
            let end = (start + m).min(self.nodes.len());
            let run = self.nodes[start..end].iter().zip(&self.weights[start..end]);
            let total: f64 = self.weights[start..end].iter().sum();
            let below: f64 =
                run.filter(|(t, _)| **t < -threshold && t.abs() > band).map(|(_, w)| w).sum();
            out.push(if total > 0.0 { below / total } else { 0.0 });
            start = end;
        }
        out
    }

    /// The standard error of [`SlqResult::mass_below`] over the runs (their sample standard
    /// deviation over √runs; `None` with fewer than 2 runs).
    pub fn mass_below_se(&self, threshold: f64) -> Option<f64> {
        let per_run = self.mass_below_per_run(threshold);
        (per_run.len() > 1).then(|| crate::stats::std_dev(&per_run) / (per_run.len() as f64).sqrt())
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
        let start = random_unit(stream_seed(opts.seed, Stream::SlqStart, k), op.dim());
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

    /// Keeps the random starts among the vectors it is applied to (Rademacher / √n: every entry
    /// ±1/√n, which no later Lanczos vector of a dense spectrum is).
    struct StartRecorder {
        m: DenseSym,
        starts: Vec<Vec<f32>>,
    }

    impl SymOp for StartRecorder {
        fn dim(&self) -> usize {
            self.m.dim()
        }
        fn apply(&mut self, v: &[f32], out: &mut [f32]) -> Result<()> {
            let s = 1.0 / (v.len() as f32).sqrt();
            if v.iter().all(|x| x.abs() == s) {
                self.starts.push(v.to_vec());
            }
            self.m.apply(v, out)
        }
    }

    #[test]
    fn runs_under_neighbouring_seeds_share_no_start() {
        let d: Vec<f64> = (0..40).map(|i| 0.5 + i as f64 * 0.37).collect();
        let starts = |seed| {
            let mut rec = StartRecorder { m: DenseSym::diag(&d), starts: Vec::new() };
            slq(&mut rec, &SlqOptions { runs: 6, steps: 5, seed }, None).unwrap();
            rec.starts
        };
        let (a, b) = (starts(0), starts(1));
        assert_eq!((a.len(), b.len()), (6, 6), "one random start per run");
        for (i, x) in a.iter().enumerate() {
            assert!(a[i + 1..].iter().all(|y| y != x), "seed 0 repeats a start");
            assert!(b.iter().all(|y| y != x), "seeds 0 and 1 share SLQ start {i}");
        }
    }

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

    /// The negative mass is the mean of each run's, and its standard error their spread over
    /// √runs: honest against the exact 3/60 over 30 runs.
    #[test]
    fn negative_mass_has_a_standard_error_over_the_runs() {
        let mut d: Vec<f64> = (0..60).map(|i| 0.1 + 1.9 * i as f64 / 59.0).collect();
        d[3] = -1.0;
        d[7] = -0.5;
        d[11] = -0.25;
        // Rotated by a Householder Q (a diagonal matrix gives every Rademacher start the same
        // quadrature weights, 1/n each, and so every run the same mass).
        let n = d.len();
        let u: Vec<f64> = (0..n).map(|i| (i as f64 + 1.0).sin()).collect();
        let un: f64 = u.iter().map(|x| x * x).sum();
        let q = |i: usize, j: usize| (if i == j { 1.0 } else { 0.0 }) - 2.0 * u[i] * u[j] / un;
        let dense: Vec<f64> =
            (0..n * n).map(|ij| (0..n).map(|k| q(ij / n, k) * d[k] * q(ij % n, k)).sum()).collect();
        let mut m = DenseSym::new(n, dense).unwrap();
        let r = slq(&mut m, &SlqOptions { runs: 30, steps: 20, seed: 4 }, None).unwrap();
        let per_run = r.mass_below_per_run(1e-6);
        assert_eq!(per_run.len(), 30);
        let mean = per_run.iter().sum::<f64>() / 30.0;
        assert!((mean - r.mass_below(1e-6)).abs() < 1e-12, "{mean} vs {}", r.mass_below(1e-6));
        let se = r.mass_below_se(1e-6).unwrap();
        assert!((mean - 3.0 / 60.0).abs() < 4.0 * se + 1e-6, "{mean} ± {se}");
        // 6 steps cannot resolve the spectrum: the runs disagree, and the error bar says so
        // (it is the spread over starts: the coarse quadrature's own bias, 0.061 against 0.05
        // here, is not in it).
        let coarse = slq(&mut m, &SlqOptions { runs: 30, steps: 6, seed: 4 }, None).unwrap();
        let (cm, cse) = (coarse.mass_below(1e-6), coarse.mass_below_se(1e-6).unwrap());
        assert!(cse > 1e-3 && (cm - 3.0 / 60.0).abs() < 0.02, "{cm} ± {cse}");
        let one = slq(&mut m, &SlqOptions { runs: 1, steps: 20, seed: 4 }, None).unwrap();
        assert_eq!(one.mass_below_se(1e-6), None);
    }

    #[test]
    fn conditioning_tells_converged_bounded_singular_and_unresolved_apart() {
        let c = |v: &[f64], r: &[f64]| conditioning(v, r, 1.0, 1e-4);
        // Converged Ritz values 1e-3 .. 1: κ = 1000.
        let k = c(&[1e-3, 0.5, 1.0], &[1e-9; 3]);
        assert_eq!((k.status, k.estimate), (ConditionStatus::Converged, Some(1000.0)));
        // The smallest, 2e-3 ± 1e-4, is clear of 0 but not converged: κ ≥ 500.
        let k = c(&[2e-3, 0.5, 1.0], &[1e-4, 0.0, 0.0]);
        assert_eq!((k.status, k.estimate), (ConditionStatus::LowerBound, Some(500.0)));
        // 2e-3 ± 5e-3 may hide an eigenvalue at 0, or not: unresolved, not singular.
        let k = c(&[2e-3, 0.5, 1.0], &[5e-3, 0.0, 0.0]);
        assert_eq!((k.status, k.estimate, k.theta), (ConditionStatus::Unresolved, None, 2e-3));
        // A converged Ritz value within the tolerance of 0: singular.
        let k = c(&[-5e-5, 1.0], &[0.0, 0.0]);
        assert_eq!((k.status, k.estimate), (ConditionStatus::Singular, None));
        // Singular wins over an unresolved interval elsewhere.
        assert_eq!(c(&[-5e-5, 2e-3, 1.0], &[0.0, 5e-3, 0.0]).status, ConditionStatus::Singular);
        assert_eq!(c(&[], &[]).status, ConditionStatus::Unresolved);
    }

    #[test]
    fn a_short_run_bounds_the_condition_number_from_below() {
        // Eigenvalues log-spaced in [1e-2, 1] over 200 dimensions: κ = 100.
        let d: Vec<f64> = (0..200).map(|i| 10f64.powf(-2.0 + 2.0 * i as f64 / 199.0)).collect();
        let mut m = DenseSym::diag(&d);
        let start = random_unit(7, 200);
        let short = lanczos(&mut m, &start, 12).unwrap().ritz().unwrap();
        let k = conditioning(&short.values, &short.residuals, 1.0, 1e-4);
        let bound = k.estimate.unwrap_or_else(|| panic!("{k:?}"));
        assert_eq!(k.status, ConditionStatus::LowerBound, "{k:?}");
        assert!(bound < 100.0, "a lower bound: {bound}");
        let full = lanczos(&mut m, &start, 200).unwrap().ritz().unwrap();
        let k = conditioning(&full.values, &full.residuals, 1.0, 1e-4);
        assert_eq!(k.status, ConditionStatus::Converged, "{k:?}");
        assert!((k.estimate.unwrap_or(0.0) - 100.0).abs() < 0.01, "{k:?}");
    }

    #[test]
    fn nodes_near_zero_count_as_the_null_space() {
        // One run: a node at −2e-3 (weight 0.5) standing for a cluster around 0.
        let r = SlqResult {
            nodes: vec![-1.0, -2e-3, 1.0],
            weights: vec![0.2, 0.5, 0.3],
            runs: 1,
            steps: vec![3],
        };
        assert_eq!(r.mass_below(1e-4), 0.2 + 0.5, "−2e-3 is outside the band of 1e-3");
        assert_eq!(r.mass_below(1e-3), 0.2, "−2e-3 is inside the band of 1e-2");
        // Below −1e-3: 0.7, without the node just below (−2e-3) 0.2, with the one just above
        // (1.0) 1.0.
        let (lo, hi) = r.mass_bracket(1e-3);
        assert!((lo - 0.2).abs() < 1e-12 && (hi - 1.0).abs() < 1e-12, "{lo} {hi}");
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

//! Power iteration: `v ← A v / ‖A v‖` converges to the eigenvector of the eigenvalue largest
//! in magnitude, at the rate `|λ₂/λ₁|` per step; its Rayleigh quotient `vᵀ A v` is the estimate.
//!
//! - [`power_iteration`]: the dominant eigenpair.
//! - [`top_k_deflation`]: the k eigenvalues largest in magnitude, each found on
//!   `A − Σ λ_i u_i u_iᵀ` (Hotelling deflation).
//! - [`extreme_eigenvalues`]: λmax and λmin (most negative), the second from the power iteration
//!   on `A − λ_dom I`, whose dominant eigenvalue is the other end of the spectrum minus `λ_dom`.

use super::{dot, norm, random_unit, stream_seed, Deflated, Result, Shifted, Stream, SymOp};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PowerOptions {
    /// Most operator applications per eigenvalue.
    pub max_iters: usize,
    /// Stop when the Rayleigh quotient changes by less than `tol · |λ|` between iterations
    /// and the residual `‖A v − λ v‖` is below `√tol · ‖A v‖`.
    pub tol: f64,
    pub seed: u64,
}

impl Default for PowerOptions {
    fn default() -> Self {
        PowerOptions { max_iters: 100, tol: 1e-4, seed: 0 }
    }
}

/// One eigenpair estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerResult {
    /// Rayleigh quotient `vᵀ A v` at the last iterate.
    pub eigenvalue: f64,
    /// The unit iterate `v`.
    pub vector: Vec<f32>,
    /// Operator applications used.
    pub iterations: usize,
    /// Whether the tolerance was met before `max_iters`.
    pub converged: bool,
    /// `‖A v − λ v‖`: an eigenvalue of `A` lies within this of `λ`.
    pub residual: f64,
}

/// The eigenpair of largest `|λ|`, from a seeded random start.
pub fn power_iteration<O: SymOp + ?Sized>(op: &mut O, opts: &PowerOptions) -> Result<PowerResult> {
    let n = op.dim();
    let mut v = random_unit(opts.seed, n);
    let mut w = vec![0f32; n];
    let mut lambda = f64::NAN;
    let mut residual = f64::INFINITY;
    let mut converged = false;
    let mut iterations = 0;
    if n == 0 {
        return Ok(PowerResult {
            eigenvalue: 0.0,
            vector: v,
            iterations,
            converged: true,
            residual: 0.0,
        });
    }
    while iterations < opts.max_iters.max(1) {
        op.apply(&v, &mut w)?;
        iterations += 1;
        let rq = dot(&v, &w);
        residual =
            w.iter().zip(&v).map(|(&a, &x)| (a as f64 - rq * x as f64).powi(2)).sum::<f64>().sqrt();
        let change = (rq - lambda).abs();
        lambda = rq;
        let wn = norm(&w);
        if wn == 0.0 || !wn.is_finite() {
            // v is in the null space (or the operator blew up): λ = vᵀAv is exact or NaN.
            converged = wn == 0.0;
            break;
        }
        // A settled Rayleigh quotient alone is not convergence: with eigenvalues ±λ equally
        // dominant (a saddle's coupling block) it stays put at any value in between while the
        // iterate swings. The residual must be small too; an eigenvalue lies within it.
        if (change <= opts.tol * rq.abs() && residual <= opts.tol.sqrt() * wn) || residual <= 1e-7 * wn {
            converged = true;
            break;
        }
        for (x, &a) in v.iter_mut().zip(&w) {
            *x = (a as f64 / wn) as f32;
        }
    }
    Ok(PowerResult { eigenvalue: lambda, vector: v, iterations, converged, residual })
}

/// The `k` eigenvalues largest in magnitude by deflation, in the order found.
pub fn top_k_deflation<O: SymOp + ?Sized>(
    op: &mut O,
    k: usize,
    opts: &PowerOptions,
) -> Result<Vec<PowerResult>> {
    let mut pairs: Vec<(f64, Vec<f32>)> = Vec::new();
    let mut out = Vec::new();
    for i in 0..k.min(op.dim()) {
        let o = PowerOptions { seed: stream_seed(opts.seed, Stream::Deflation, i as u64), ..*opts };
        let r = power_iteration(&mut Deflated { op: &mut *op, pairs: &pairs }, &o)?;
        pairs.push((r.eigenvalue, r.vector.clone()));
        out.push(r);
    }
    Ok(out)
}

/// Both ends of the spectrum: `(λmax, λmin)` with their runs. The dominant eigenvalue is one
/// end; the power iteration on `A − λ_dom I` (all of whose eigenvalues share the sign opposite
/// to λ_dom's, or are 0) finds the other.
pub fn extreme_eigenvalues<O: SymOp + ?Sized>(
    op: &mut O,
    opts: &PowerOptions,
) -> Result<(PowerResult, PowerResult)> {
    let dom = power_iteration(op, opts)?;
    let shift = dom.eigenvalue;
    let o = PowerOptions { seed: stream_seed(opts.seed, Stream::OtherEnd, 0), ..*opts };
    let mut other = power_iteration(&mut Shifted { op: &mut *op, shift }, &o)?;
    other.eigenvalue += shift;
    Ok(if dom.eigenvalue >= other.eigenvalue { (dom, other) } else { (other, dom) })
}

/// λmax by power iteration: on `H` when `lower ≥ 0` (λmax dominates), else on `H − lower·I`
/// (all eigenvalues ≥ ~0, λmax − lower dominant). The result is shifted back.
pub fn max_by_power<O: SymOp + ?Sized>(
    op: &mut O,
    lower: f64,
    opts: &PowerOptions,
) -> Result<PowerResult> {
    if lower >= 0.0 || !lower.is_finite() {
        return power_iteration(op, opts);
    }
    let mut r = power_iteration(&mut Shifted { op, shift: lower }, opts)?;
    r.eigenvalue += lower;
    Ok(r)
}

/// The eigenpair of λmax (the largest eigenvalue, not the largest |λ|) without a known lower
/// bound: power iteration finds the dominant eigenvalue; where it is negative (a saddle whose
/// negative curvature outweighs the positive), it is λmin, and a second iteration on
/// `H − λmin·I` finds λmax ([`max_by_power`]).
pub fn top_eigenpair<O: SymOp + ?Sized>(op: &mut O, opts: &PowerOptions) -> Result<PowerResult> {
    let dominant = power_iteration(op, opts)?;
    if dominant.eigenvalue >= 0.0 || !dominant.eigenvalue.is_finite() {
        return Ok(dominant);
    }
    let mut top = max_by_power(op, dominant.eigenvalue, opts)?;
    top.iterations += dominant.iterations;
    top.converged &= dominant.converged;
    Ok(top)
}

#[cfg(test)]
mod tests {
    use super::super::DenseSym;
    use super::*;

    #[test]
    fn dominant_eigenvalue_of_a_diagonal_matrix() {
        let mut m = DenseSym::diag(&[1.0, 0.5, -0.2, 3.0, 0.1]);
        let r = power_iteration(&mut m, &PowerOptions { max_iters: 500, tol: 1e-10, seed: 1 }).unwrap();
        assert!(r.converged);
        assert!((r.eigenvalue - 3.0).abs() < 1e-5, "{r:?}");
        assert!(r.vector[3].abs() > 0.999);
    }

    #[test]
    fn negative_dominant_and_both_extremes() {
        // Dominant is −4 (a saddle's direction of steepest descent of curvature).
        let mut m = DenseSym::diag(&[2.0, -4.0, 0.5, 1.0]);
        let o = PowerOptions { max_iters: 2000, tol: 1e-10, seed: 2 };
        let (hi, lo) = extreme_eigenvalues(&mut m, &o).unwrap();
        assert!((hi.eigenvalue - 2.0).abs() < 1e-4, "{hi:?}");
        assert!((lo.eigenvalue + 4.0).abs() < 1e-4, "{lo:?}");
    }

    #[test]
    fn the_top_eigenpair_at_a_saddle_is_lambda_max_not_the_largest_magnitude() {
        // |λmin| = 3.2 > λmax = 1.2: plain power iteration finds −3.2.
        let mut m = DenseSym::diag(&[0.5, -3.2, 1.2, 0.1]);
        let o = PowerOptions { max_iters: 2000, tol: 1e-10, seed: 3 };
        let r = top_eigenpair(&mut m, &o).unwrap();
        assert!(r.converged && (r.eigenvalue - 1.2).abs() < 1e-6, "{r:?}");
        assert!(r.vector[2].abs() > 0.999, "{r:?}");
        // Where λmax dominates, one iteration: the same as power_iteration.
        let mut p = DenseSym::diag(&[0.5, -0.2, 1.2, 0.1]);
        let plain = power_iteration(&mut p, &o).unwrap();
        let top = top_eigenpair(&mut p, &o).unwrap();
        assert_eq!((top.eigenvalue, top.iterations), (plain.eigenvalue, plain.iterations));
    }

    #[test]
    fn a_plus_minus_pair_does_not_fake_convergence() {
        // ±1 equally dominant: the Rayleigh quotient settles at once, the iterate never does.
        let mut m = DenseSym::diag(&[1.0, -1.0, 0.1, 0.2]);
        let r = power_iteration(&mut m, &PowerOptions { max_iters: 50, tol: 1e-4, seed: 7 }).unwrap();
        assert!(!r.converged, "{r:?}");
        assert!(r.residual > 0.1);
        // Shifted by −0.5 (a lower bound from elsewhere), λmax = 1 becomes dominant.
        let r = power_iteration(
            &mut Shifted { op: &mut m, shift: -0.5 },
            &PowerOptions { max_iters: 500, tol: 1e-10, seed: 7 },
        )
        .unwrap();
        assert!(r.converged && (r.eigenvalue - 0.5 - 1.0).abs() < 1e-6, "{r:?}");
    }

    #[test]
    fn deflation_finds_the_top_three_by_magnitude() {
        let a = [5.0, -3.0, 2.0, 1.0, 0.25, 0.1];
        // Rotate the diagonal so the eigenvectors are not the axes: A = Q D Qᵀ with a Householder Q.
        let n = a.len();
        let u: Vec<f64> = (0..n).map(|i| (i as f64 + 1.0).sin()).collect();
        let un: f64 = u.iter().map(|x| x * x).sum();
        let q = |i: usize, j: usize| (if i == j { 1.0 } else { 0.0 }) - 2.0 * u[i] * u[j] / un;
        let mut dense = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                dense[i * n + j] = (0..n).map(|k| q(i, k) * a[k] * q(j, k)).sum();
            }
        }
        let mut m = DenseSym::new(n, dense).unwrap();
        let r =
            top_k_deflation(&mut m, 3, &PowerOptions { max_iters: 3000, tol: 1e-12, seed: 3 }).unwrap();
        let got: Vec<f64> = r.iter().map(|p| p.eigenvalue).collect();
        for (g, want) in got.iter().zip([5.0, -3.0, 2.0]) {
            assert!((g - want).abs() < 1e-3, "{got:?}");
        }
    }
}

//! Lanczos with full reorthogonalization.
//!
//! From a unit `q₁`, `m` steps build an orthonormal basis `Q = [q₁ … q_m]` of the Krylov space
//! `{q₁, A q₁, …, A^{m−1} q₁}` and the tridiagonal `T = Qᵀ A Q` (diagonal α, off-diagonal β):
//! ```text
//! w = A q_j − α_j q_j − β_{j−1} q_{j−1},   α_j = q_jᵀ A q_j,   β_j = ‖w‖,   q_{j+1} = w / β_j
//! ```
//! In floating point the q's lose orthogonality and ghost copies of converged eigenvalues
//! appear; here every `w` is orthogonalised against the whole basis, twice ("twice is enough").
//!
//! The eigenpairs `(θ_i, s_i)` of `T` (Ritz values) approximate the extreme eigenvalues of `A`
//! first; `β_m |s_{m,i}|` bounds the residual of Ritz pair i. For SLQ, `τ_i = s_{1,i}²` are the
//! Gauss quadrature weights of the spectral measure seen from `q₁`.

use nalgebra::{DMatrix, SymmetricEigen};

use super::{check_dim, dot, norm, CurvatureError, Result, SymOp};
use crate::stats::norm_f64;

/// The outcome of one Lanczos run.
#[derive(Clone, Debug, PartialEq)]
pub struct LanczosRun {
    /// `α_j`, the diagonal of `T` (`[m]`).
    pub alpha: Vec<f64>,
    /// `β_j`, the off-diagonal of `T` (`[m − 1]`).
    pub beta: Vec<f64>,
    /// `β_m = ‖w‖` after the last step (0 when the Krylov space became invariant).
    pub beta_next: f64,
    /// The basis `q_1 … q_m`, each `[dim]`.
    pub basis: Vec<Vec<f32>>,
}

/// Ritz values (ascending) with their quadrature weights and residual bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Ritz {
    pub values: Vec<f64>,
    /// `τ_i = s_{1,i}²`, summing to 1.
    pub weights: Vec<f64>,
    /// `β_m |s_{m,i}|`: `‖A y_i − θ_i y_i‖` for the Ritz vector `y_i = Q s_i`.
    pub residuals: Vec<f64>,
    /// Eigenvectors of `T`, `vectors[i]` = `s_i` (`[m]`).
    pub vectors: Vec<Vec<f64>>,
}

/// Run `steps` Lanczos steps of `op` from `start` (any nonzero vector; normalised here).
/// Stops early when the Krylov space is invariant (`β_j` below `1e-10 · ‖T‖`): then the Ritz
/// values are exact eigenvalues.
pub fn lanczos<O: SymOp + ?Sized>(op: &mut O, start: &[f32], steps: usize) -> Result<LanczosRun> {
    let n = op.dim();
    check_dim("lanczos start", start.len(), n)?;
    let s = norm(start);
    if s == 0.0 || !s.is_finite() {
        return Err(CurvatureError::Setup("lanczos: the start vector is zero or not finite".into()));
    }
    let steps = steps.min(n).max(1);
    let mut basis: Vec<Vec<f32>> = vec![start.iter().map(|&x| (x as f64 / s) as f32).collect()];
    let (mut alpha, mut beta) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    let mut aq = vec![0f32; n];
    let mut w = vec![0f64; n];
    let mut scale = 0f64;
    let mut beta_next = 0.0;
    for j in 0..steps {
        op.apply(&basis[j], &mut aq)?;
        let q = &basis[j];
        let a = dot(q, &aq);
        for i in 0..n {
            w[i] = aq[i] as f64 - a * q[i] as f64;
        }
        if j > 0 {
            let b = beta[j - 1];
            let qp = &basis[j - 1];
            for i in 0..n {
                w[i] -= b * qp[i] as f64;
            }
        }
        alpha.push(a);
        // Full reorthogonalization, two passes of classical Gram-Schmidt.
        for _ in 0..2 {
            for qk in &basis {
                let c: f64 = qk.iter().zip(&w).map(|(&x, &y)| x as f64 * y).sum();
                for (wi, &x) in w.iter_mut().zip(qk) {
                    *wi -= c * x as f64;
                }
            }
        }
        let b = norm_f64(&w);
        if !b.is_finite() || !a.is_finite() {
            return Err(CurvatureError::Setup(format!(
                "lanczos: step {j} produced a non-finite value (α = {a}, β = {b})"
            )));
        }
        scale = scale.max(a.abs()).max(b);
        if j + 1 == steps || b <= 1e-10 * scale.max(f64::MIN_POSITIVE) {
            beta_next = b;
            break;
        }
        beta.push(b);
        basis.push(w.iter().map(|&x| (x / b) as f32).collect());
    }
    Ok(LanczosRun { alpha, beta, beta_next, basis })
}

impl LanczosRun {
    /// Steps taken (`m`).
    pub fn steps(&self) -> usize {
        self.alpha.len()
    }

    /// The eigen-decomposition of `T`.
    pub fn ritz(&self) -> Result<Ritz> {
        let m = self.alpha.len();
        let mut t = DMatrix::<f64>::zeros(m, m);
        for i in 0..m {
            t[(i, i)] = self.alpha[i];
            if i + 1 < m {
                t[(i, i + 1)] = self.beta[i];
                t[(i + 1, i)] = self.beta[i];
            }
        }
        let eig =
            SymmetricEigen::try_new(t, 1e-15, 100_000).ok_or(CurvatureError::Eigen("Lanczos T"))?;
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
        let mut r =
            Ritz { values: Vec::new(), weights: Vec::new(), residuals: Vec::new(), vectors: Vec::new() };
        for i in order {
            let s: Vec<f64> = eig.eigenvectors.column(i).iter().copied().collect();
            r.values.push(eig.eigenvalues[i]);
            r.weights.push(s[0] * s[0]);
            r.residuals.push(self.beta_next * s[m - 1].abs());
            r.vectors.push(s);
        }
        Ok(r)
    }

    /// The Ritz vector `Q s` for eigenvector `s` of `T` (`[m]` → `[dim]`).
    pub fn ritz_vector(&self, s: &[f64]) -> Vec<f32> {
        let n = self.basis.first().map_or(0, Vec::len);
        let mut y = vec![0f64; n];
        for (q, &c) in self.basis.iter().zip(s) {
            for (yi, &x) in y.iter_mut().zip(q) {
                *yi += c * x as f64;
            }
        }
        y.into_iter().map(|x| x as f32).collect()
    }

    /// Largest deviation `|q_iᵀ q_j − δ_ij|` of the basis (a check of the reorthogonalization).
    pub fn orthogonality_loss(&self) -> f64 {
        let mut worst = 0f64;
        for (i, a) in self.basis.iter().enumerate() {
            for (j, b) in self.basis.iter().enumerate().skip(i) {
                let want = if i == j { 1.0 } else { 0.0 };
                worst = worst.max((dot(a, b) - want).abs());
            }
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::super::{random_unit, DenseSym};
    use super::*;

    #[test]
    fn full_run_recovers_every_eigenvalue() {
        let d: Vec<f64> = (0..30).map(|i| 10f64.powf(-3.0 * i as f64 / 29.0)).collect();
        let mut m = DenseSym::diag(&d);
        let run = lanczos(&mut m, &random_unit(5, 30), 30).unwrap();
        assert!(run.orthogonality_loss() < 1e-5, "{}", run.orthogonality_loss());
        let r = run.ritz().unwrap();
        let mut want = d.clone();
        want.sort_by(f64::total_cmp);
        for (g, w) in r.values.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        let ws: f64 = r.weights.iter().sum();
        assert!((ws - 1.0).abs() < 1e-9);
    }

    #[test]
    fn few_steps_find_the_extremes_with_small_residuals() {
        // Well separated ends: 9 and −6 among values in [0, 1].
        let mut d: Vec<f64> = (0..200).map(|i| i as f64 / 200.0).collect();
        d[17] = 9.0;
        d[100] = -6.0;
        let mut m = DenseSym::diag(&d);
        let run = lanczos(&mut m, &random_unit(6, 200), 25).unwrap();
        let r = run.ritz().unwrap();
        assert!((r.values[r.values.len() - 1] - 9.0).abs() < 1e-6, "{:?}", r.values);
        assert!((r.values[0] + 6.0).abs() < 1e-6, "{:?}", r.values);
        let top = r.values.len() - 1;
        assert!(r.residuals[top] < 1e-4);
        // The Ritz vector of 9 is e_17.
        let y = run.ritz_vector(&r.vectors[top]);
        assert!(y[17].abs() > 0.9999, "{}", y[17]);
    }

    #[test]
    fn invariant_start_stops_early_and_exactly() {
        let mut m = DenseSym::diag(&[1.0, 2.0, 3.0, 4.0]);
        // Start in span{e0, e1}: the Krylov space has dimension 2.
        let run = lanczos(&mut m, &[1.0, 1.0, 0.0, 0.0], 4).unwrap();
        assert_eq!(run.steps(), 2);
        let r = run.ritz().unwrap();
        assert!((r.values[0] - 1.0).abs() < 1e-6 && (r.values[1] - 2.0).abs() < 1e-6, "{:?}", r.values);
        assert!(lanczos(&mut m, &[0.0; 4], 3).is_err());
    }
}

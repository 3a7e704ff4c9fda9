//! Conjugate gradients for `A x = b` with `A` symmetric positive (semi)definite, through
//! operator applications only: the Newton direction `H⁻¹ g` without forming or inverting `H`
//! ("Hessian-free"). From `x = 0` the iterates stay in the Krylov space of `b`, so for a singular
//! `A` with `b` in its range they approach the minimum-norm solution.

use serde::Serialize;

use super::{check_dim, Result, SymOp};
use crate::stats::norm_f64;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CgResult {
    pub x: Vec<f32>,
    pub iterations: usize,
    /// `‖b − A x‖ / ‖b‖` at the end.
    pub rel_residual: f64,
    pub converged: bool,
    /// Set when a direction of non-positive curvature `pᵀ A p ≤ 0` stopped the iteration
    /// (A is not positive definite there).
    pub negative_curvature: bool,
}

/// Solve `A x = b` to `‖b − A x‖ ≤ rel_tol ‖b‖` in at most `max_iters` products.
pub fn conjugate_gradient<O: SymOp + ?Sized>(
    op: &mut O,
    b: &[f32],
    max_iters: usize,
    rel_tol: f64,
) -> Result<CgResult> {
    let n = op.dim();
    check_dim("conjugate_gradient b", b.len(), n)?;
    let mut x = vec![0f64; n];
    let mut r: Vec<f64> = b.iter().map(|&v| v as f64).collect();
    let mut p = r.clone();
    let bnorm = norm_f64(&r);
    let mut rr = bnorm * bnorm;
    let mut ap = vec![0f32; n];
    let mut p32 = vec![0f32; n];
    let (mut iterations, mut converged, mut negative_curvature) = (0, bnorm == 0.0, false);
    while !converged && iterations < max_iters {
        for (d, &s) in p32.iter_mut().zip(&p) {
            *d = s as f32;
        }
        op.apply(&p32, &mut ap)?;
        iterations += 1;
        let pap: f64 = p.iter().zip(&ap).map(|(&a, &b)| a * b as f64).sum();
        // Also catches NaN.
        if pap.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            negative_curvature = true;
            break;
        }
        let alpha = rr / pap;
        for i in 0..n {
            x[i] += alpha * p[i];
            r[i] -= alpha * ap[i] as f64;
        }
        let rr_new: f64 = r.iter().map(|v| v * v).sum();
        if rr_new.sqrt() <= rel_tol * bnorm {
            converged = true;
        }
        let beta = rr_new / rr;
        rr = rr_new;
        for i in 0..n {
            p[i] = r[i] + beta * p[i];
        }
    }
    let rel_residual = if bnorm > 0.0 { rr.sqrt() / bnorm } else { 0.0 };
    Ok(CgResult {
        x: x.into_iter().map(|v| v as f32).collect(),
        iterations,
        rel_residual,
        converged,
        negative_curvature,
    })
}

#[cfg(test)]
mod tests {
    use super::super::DenseSym;
    use super::*;

    #[test]
    fn solves_an_ill_conditioned_diagonal_system() {
        let d: Vec<f64> = (0..20).map(|i| 10f64.powf(-3.0 * i as f64 / 19.0)).collect();
        let mut m = DenseSym::diag(&d);
        let b: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect();
        let r = conjugate_gradient(&mut m, &b, 200, 1e-9).unwrap();
        assert!(r.converged && !r.negative_curvature, "{r:?}");
        for i in 0..20 {
            let want = b[i] as f64 / d[i];
            assert!(
                (r.x[i] as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                "x[{i}] = {} vs {want}",
                r.x[i]
            );
        }
    }

    #[test]
    fn stops_on_negative_curvature() {
        let mut m = DenseSym::diag(&[1.0, -1.0]);
        let r = conjugate_gradient(&mut m, &[0.0, 1.0], 10, 1e-9).unwrap();
        assert!(r.negative_curvature && !r.converged);
    }
}

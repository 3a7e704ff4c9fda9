//! The known Hessian of a linear model with squared error on linear_regression data, the
//! reference `batchscope curvature` checks its estimates against.

use serde::Serialize;

use super::{DenseSym, Result};
use crate::config::{DataConfig, DataKind};
use crate::data::{self, Dataset};
use crate::model::Mlp;

/// The empirical Hessian of a linear model is decomposed densely up to this many inputs.
const DENSE_REFERENCE_MAX: usize = 512;

/// The closed-form and empirical Hessian of a linear model with squared error on
/// linear_regression data: `H = I_K ⊗ E[[x;1][x;1]ᵀ]`.
#[derive(Clone, Debug, Serialize)]
pub struct LinearReference {
    /// Population: eigenvalues `λ_j = κ^(−j/(D−1))` and 1 (the bias), each K times.
    pub closed_form_lambda_max: f64,
    pub closed_form_lambda_min: f64,
    pub closed_form_trace: f64,
    /// Of the examples used: `(1/N) Σ [x;1][x;1]ᵀ`, decomposed densely (None above 512 inputs).
    pub empirical_lambda_max: Option<f64>,
    pub empirical_lambda_min: Option<f64>,
    pub empirical_trace: f64,
    /// `|estimate − reference| / |reference|`.
    pub lambda_max_rel_error_closed_form: f64,
    pub lambda_max_rel_error_empirical: Option<f64>,
    pub lambda_min_rel_error_empirical: Option<f64>,
    pub trace_rel_error_closed_form: f64,
    pub trace_rel_error_empirical: f64,
}

/// The known Hessian of a linear model (`hidden = []`) with squared error on linear_regression.
pub fn linear_reference(
    cfg: &DataConfig,
    mlp: &Mlp,
    data: &Dataset,
    lambda_max: f64,
    lambda_min: f64,
    trace: f64,
) -> Result<Option<LinearReference>> {
    if cfg.kind != DataKind::LinearRegression || mlp.layers() != 1 {
        return Ok(None);
    }
    let k = mlp.outputs() as f64;
    let eig = data::hessian_eigenvalues(cfg);
    let cf_max = eig.iter().copied().fold(1.0, f64::max);
    let cf_min = eig.iter().copied().fold(1.0, f64::min);
    let cf_trace = k * (eig.iter().sum::<f64>() + 1.0);
    // tr M = E‖x‖² + 1, without forming M.
    let emp_trace =
        k * (data.x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / data.n.max(1) as f64 + 1.0);
    let (emp_max, emp_min) = if data.dim <= DENSE_REFERENCE_MAX {
        let e = empirical_second_moment(data).eigenvalues()?;
        (e.last().copied(), e.first().copied())
    } else {
        (None, None)
    };
    let rel = |a: f64, r: f64| (a - r).abs() / r.abs();
    Ok(Some(LinearReference {
        closed_form_lambda_max: cf_max,
        closed_form_lambda_min: cf_min,
        closed_form_trace: cf_trace,
        empirical_lambda_max: emp_max,
        empirical_lambda_min: emp_min,
        empirical_trace: emp_trace,
        lambda_max_rel_error_closed_form: rel(lambda_max, cf_max),
        lambda_max_rel_error_empirical: emp_max.map(|r| rel(lambda_max, r)),
        lambda_min_rel_error_empirical: emp_min.map(|r| rel(lambda_min, r)),
        trace_rel_error_closed_form: rel(trace, cf_trace),
        trace_rel_error_empirical: rel(trace, emp_trace),
    }))
}

/// `(1/N) Σ_i [x_i; 1][x_i; 1]ᵀ` (`[D+1, D+1]`): one output's block of a linear model's Hessian
/// under the mean of `½‖W x + b − t‖²`.
pub fn empirical_second_moment(data: &Dataset) -> DenseSym {
    let d = data.dim + 1;
    let mut a = vec![0f64; d * d];
    let mut row = vec![0f64; d];
    for i in 0..data.n {
        for (r, &x) in row.iter_mut().zip(data.row(i)) {
            *r = x as f64;
        }
        row[d - 1] = 1.0;
        for p in 0..d {
            let rp = row[p];
            for q in p..d {
                a[p * d + q] += rp * row[q];
            }
        }
    }
    let inv = 1.0 / data.n.max(1) as f64;
    for p in 0..d {
        for q in p..d {
            let v = a[p * d + q] * inv;
            a[p * d + q] = v;
            a[q * d + p] = v;
        }
    }
    DenseSym { n: d, a }
}

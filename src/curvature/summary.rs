//! `summary.json` of a curvature run and its parts.

use serde::Serialize;

use super::batches::BatchSpread;
use super::linear_reference::LinearReference;
use super::HvpTiming;

#[derive(Clone, Debug, Serialize)]
pub struct PowerSummary {
    pub lambda_max: f64,
    pub iterations: usize,
    pub converged: bool,
    pub residual: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LanczosSummary {
    pub steps: usize,
    pub ritz_values: Vec<f64>,
    pub ritz_residuals: Vec<f64>,
    pub orthogonality_loss: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SlqSummary {
    pub runs: usize,
    pub steps: Vec<usize>,
    pub sigma: f64,
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

/// `summary.json` of a curvature run.
#[derive(Clone, Debug, Serialize)]
pub struct CurvatureSummary {
    pub command: &'static str,
    pub backend: String,
    pub device: String,
    pub sizes: Vec<usize>,
    pub activation: String,
    pub loss_kind: String,
    pub params: usize,
    pub examples: usize,
    pub chunks: usize,
    pub activations_cached: bool,
    pub checkpoint: Option<String>,
    pub init_scale: f32,
    /// Mean loss over the examples.
    pub loss: f64,
    /// The larger of the (converged) power iteration's and Lanczos' estimates: both are Rayleigh
    /// quotients, so both are lower bounds.
    pub lambda_max: f64,
    /// The smallest (most negative) Lanczos Ritz value.
    pub lambda_min: f64,
    /// Largest Ritz values, descending.
    pub top_eigenvalues: Vec<f64>,
    pub trace: f64,
    pub trace_std_error: f64,
    pub trace_samples: usize,
    pub trace_converged: bool,
    /// gᵀg of the whole set's gradient.
    pub grad_norm_sq: f64,
    #[serde(rename = "gTHg")]
    pub g_t_h_g: f64,
    /// `gᵀg / gᵀHg`: the step along −g that minimises the quadratic model (eq. 8.10).
    pub epsilon_star: Option<f64>,
    /// `2 / λmax`: the largest learning rate for which SGD is stable on the quadratic model.
    pub lr_stable_max: Option<f64>,
    /// Fraction of the spectral density below `−negative_threshold` (SLQ).
    pub negative_mass: f64,
    /// Standard error of `negative_mass` over the SLQ runs (`None` with one run): the spread
    /// of the random starts, not the bias of too few Lanczos steps.
    pub negative_mass_se: Option<f64>,
    pub negative_threshold: f64,
    /// `λmax / |θ|` for the Ritz value θ of smallest magnitude found, exact or a lower bound as
    /// `condition_status` says; `None` when singular or unresolved ([`super::slq::conditioning`]).
    pub condition_estimate: Option<f64>,
    /// `converged`, `lower_bound`, `singular` or `unresolved` ([`super::slq::ConditionStatus`]).
    pub condition_status: super::slq::ConditionStatus,
    /// The Ritz value that decided `condition_status`, and its residual ‖H y − θ y‖.
    pub condition_ritz_value: f64,
    pub condition_ritz_residual: f64,
    pub power: PowerSummary,
    pub lanczos: LanczosSummary,
    pub slq: SlqSummary,
    /// Wall time of one HVP (primal + R passes) over one gradient, same batch, synchronised.
    pub hvp_over_grad_time: f64,
    /// The R-passes alone over one gradient (the monitor's marginal cost).
    pub hvp_prepared_over_grad_time: f64,
    pub timing: HvpTiming,
    pub hvp_products: u64,
    pub elapsed_s: f64,
    pub reference: Option<LinearReference>,
    /// `‖H⁻¹ g‖` of the whole set by conjugate gradients (positive definite Hessians only).
    pub newton_step_norm: Option<f64>,
    pub batches: Vec<BatchSpread>,
}

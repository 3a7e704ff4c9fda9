//! λmax, trace, gradient and Newton direction on random batches, against the whole set
//! (`batchscope curvature --batch N`): second-order quantities need far larger batches (8.1.3).

use crate::stats::{mean, std_dev};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::analysis::{CurvatureOptions, BATCH_LANCZOS_STEPS, CG_MAX_ITERS, CG_TOL, CHUNK_BUDGET_BYTES};
use super::hvp::HvpOptions;
use super::power::max_by_power;
use super::{
    conjugate_gradient, hutchinson_trace, lanczos, norm, random_unit, stream_seed, HutchinsonOptions,
    HvpOperator, PowerOptions, Result, Stream, SymOp,
};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::model::{Mlp, ParamSet};

/// One random batch of `--batch`.
#[derive(Clone, Debug, Serialize)]
pub struct BatchSample {
    pub batch: usize,
    pub repeat: usize,
    pub lambda_max: f64,
    pub trace: f64,
    pub grad_norm_sq: f64,
    /// `‖g_B − g‖ / ‖g‖` against the whole set's gradient.
    pub grad_rel_error: f64,
    /// `‖H_B⁻¹g_B − H⁻¹g‖ / ‖H⁻¹g‖` of the Newton direction (conjugate gradients), when the whole
    /// set's Hessian is positive definite.
    pub newton_rel_error: Option<f64>,
}

/// What the batches are held against: the whole set's gradient, its Newton direction (positive
/// definite Hessians only), and the probes its Hutchinson trace used.
pub(super) struct WholeSet<'a> {
    pub grad: &'a [f32],
    pub newton: Option<&'a [f32]>,
    /// Seed and count of the whole set's trace probes: a batch's trace uses the same probes
    /// (common random numbers), so that its difference from the whole set's is the batch's,
    /// not two estimators' noise (independent probes put a floor of several % under it: a batch
    /// of every example differed by 6 %).
    pub trace_seed: u64,
    pub trace_samples: usize,
}

/// Spread of the estimates over the random batches of one size.
#[derive(Clone, Debug, Serialize)]
pub struct BatchSpread {
    pub batch: usize,
    pub repeats: usize,
    pub lambda_max_mean: f64,
    pub lambda_max_std: f64,
    pub lambda_max_min: f64,
    pub lambda_max_max: f64,
    /// Root-mean-square relative error against the whole set's value.
    pub lambda_max_rel_rmse: f64,
    pub trace_mean: f64,
    pub trace_std: f64,
    pub trace_rel_rmse: f64,
    /// Mean `‖g_B − g‖ / ‖g‖`.
    pub grad_rel_error_mean: f64,
    /// Mean `‖H_B⁻¹g_B − H⁻¹g‖ / ‖H⁻¹g‖` (positive definite Hessians only): second-order steps
    /// need far larger batches than gradient steps (8.1.3).
    pub newton_rel_error_mean: Option<f64>,
}

/// λmax, trace and the gradient on one random batch of `size` examples.
#[allow(clippy::too_many_arguments)]
pub(super) fn batch_sample<B: Backend>(
    b: &B,
    mlp: &Mlp,
    params: &ParamSet<B>,
    data: &Dataset,
    whole: &WholeSet<'_>,
    size: usize,
    repeat: usize,
    opts: &CurvatureOptions,
) -> Result<BatchSample> {
    // One stream per (size, repeat): the batch's examples, then its Lanczos and power starts.
    let seed = stream_seed(
        stream_seed(opts.seed, Stream::BatchDraw, size as u64),
        Stream::BatchDraw,
        repeat as u64,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let idx = rand::seq::index::sample(&mut rng, data.n, size).into_vec();
    let sub = data.select(&idx);
    let mut p = params.zeros_like(b)?;
    p.copy_from(b, params)?;
    let mut op =
        HvpOperator::new(b, mlp.clone(), p, &sub, HvpOptions::for_budget(mlp, CHUNK_BUDGET_BYTES))?;
    let (_, g) = op.gradient()?;
    let (g_full, newton_full) = (whole.grad, whole.newton);
    let diff: Vec<f32> = g.iter().zip(g_full).map(|(a, c)| a - c).collect();
    // λmax: a short Lanczos run brackets the spectrum, the power iteration shifted by its λmin
    // refines the top (as for the whole set).
    let start = random_unit(stream_seed(seed, Stream::BatchLanczos, 0), op.dim());
    let short = lanczos(&mut op, &start, BATCH_LANCZOS_STEPS)?.ritz()?;
    let lo = short.values.first().copied().unwrap_or(0.0);
    let hi = short.values.last().copied().unwrap_or(0.0);
    let popts = PowerOptions {
        max_iters: opts.power_iters,
        tol: 1e-4,
        seed: stream_seed(seed, Stream::BatchPower, 0),
    };
    let p = max_by_power(&mut op, lo, &popts)?;
    let lambda_max = if p.converged { p.eigenvalue.max(hi) } else { hi };
    let hopts = HutchinsonOptions {
        min_samples: whole.trace_samples,
        max_samples: whole.trace_samples,
        rel_tol: 0.0,
        seed: whole.trace_seed,
    };
    let trace = hutchinson_trace(&mut op, &hopts)?;
    let newton_rel_error = match newton_full {
        Some(full) => {
            let r = conjugate_gradient(&mut op, &g, CG_MAX_ITERS, CG_TOL)?;
            let d: Vec<f32> = r.x.iter().zip(full).map(|(a, c)| a - c).collect();
            // A batch Hessian with a direction of negative curvature has no Newton step.
            Some(if r.negative_curvature {
                f64::INFINITY
            } else {
                norm(&d) / norm(full).max(f64::MIN_POSITIVE)
            })
        }
        None => None,
    };
    let gn = norm(g_full);
    Ok(BatchSample {
        batch: size,
        repeat,
        lambda_max,
        trace: trace.trace,
        grad_norm_sq: super::dot(&g, &g),
        grad_rel_error: if gn > 0.0 { norm(&diff) / gn } else { f64::NAN },
        newton_rel_error,
    })
}

pub(super) fn batch_spreads(
    samples: &[BatchSample],
    lambda_full: f64,
    trace_full: f64,
) -> Vec<BatchSpread> {
    let mut sizes: Vec<usize> = samples.iter().map(|s| s.batch).collect();
    sizes.dedup();
    sizes
        .into_iter()
        .map(|size| {
            let s: Vec<&BatchSample> = samples.iter().filter(|x| x.batch == size).collect();
            let lam: Vec<f64> = s.iter().map(|x| x.lambda_max).collect();
            let tr: Vec<f64> = s.iter().map(|x| x.trace).collect();
            let ge: Vec<f64> = s.iter().map(|x| x.grad_rel_error).collect();
            let rel_rmse = |v: &[f64], full: f64| {
                (v.iter().map(|x| ((x - full) / full).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
            };
            BatchSpread {
                batch: size,
                repeats: s.len(),
                lambda_max_mean: mean(&lam),
                lambda_max_std: std_dev(&lam),
                lambda_max_min: lam.iter().copied().fold(f64::INFINITY, f64::min),
                lambda_max_max: lam.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                lambda_max_rel_rmse: rel_rmse(&lam, lambda_full),
                trace_mean: mean(&tr),
                trace_std: std_dev(&tr),
                trace_rel_rmse: rel_rmse(&tr, trace_full),
                grad_rel_error_mean: mean(&ge),
                newton_rel_error_mean: s
                    .iter()
                    .map(|x| x.newton_rel_error)
                    .collect::<Option<Vec<f64>>>()
                    .map(|v| mean(&v)),
            }
        })
        .collect()
}

//! The gradient-noise experiment behind `batchscope noise`: the minibatch gradient's error
//! against the full-data gradient as a function of batch size (σ/√n), the noise scale B_simple,
//! and with curvature B_noise and ε_max.

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::estimators::{eps_opt, loglog_fit, two_batch_b_simple_se, two_batch_estimates};
use super::probe::GradProbe;
use crate::backend::Backend;
use crate::checkpoint;
use crate::config::{Config, DataMode};
use crate::curvature::budget::{budget_examples, budget_note, HESSIAN_WORK_BUDGET};
use crate::curvature::CurvatureError;
use crate::data::device::DeviceDataset;
use crate::error::domain_error;
use crate::model::Mlp;
use crate::stats::Running;

domain_error! {
    /// Why the noise experiment could not run (and the shared `Backend`, `Data`,
    /// `Checkpoint` and `Report` sources).
    pub enum NoiseError {
        #[error("measuring gradient noise (noise, time-to-target, the policy time_to_target:auto) needs resident data (data.mode = \"resident\"): the full-data gradient is computed over the training set")]
        NotResident,
        #[error("no minibatch size to measure (max_n = {max_n}, {examples} examples)")]
        NoSizes { max_n: usize, examples: usize },
        #[error("measuring gradient noise needs at least 2 distinct training examples (the data has {examples}): one example is its own full-data gradient, so there is no noise and no slope over minibatch sizes")]
        OneExample { examples: String },
        #[error("the full-data gradient at {at} is not finite (‖G‖² = {norm_sq}): gradient noise is measured around a finite gradient")]
        NonFiniteGradient { at: String, norm_sq: f64 },
    }
    also_from { Curvature(CurvatureError) }
}

/// Options of `batchscope noise`.
#[derive(Clone, Debug)]
pub struct NoiseArgs {
    pub checkpoint: Option<PathBuf>,
    /// Largest minibatch size measured.
    pub max_n: usize,
    /// Minibatches drawn per size.
    pub draws: usize,
    pub seed: u64,
    /// Also measure GᵀHG, tr(HΣ) and B_noise with full-data Hessian-vector products.
    pub curvature: bool,
}

/// One minibatch size of the experiment.
#[derive(Clone, Debug, Serialize)]
pub struct NoiseRow {
    pub n: usize,
    pub draws: usize,
    /// `E‖g_n − G‖²` over the draws.
    pub mean_sq_error: f64,
    /// Standard deviation of `‖g_n − G‖²` over the draws.
    pub sd_sq_error: f64,
    /// `√E‖g_n − G‖²`: the standard error of the minibatch gradient.
    pub std_error: f64,
    /// `E‖g_n‖²` (for the unbiased two-batch estimators).
    pub mean_sq_norm: f64,
    /// Examples per gradient relative to n = 1.
    pub relative_cost: f64,
    /// Standard error at n = 1 over this one (`None` where this one is 0: every draw at this
    /// n equalled G, so the ratio is no figure; it was `inf`, `null` in JSON).
    pub error_reduction: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NoiseSummary {
    pub command: &'static str,
    pub device: String,
    pub examples: usize,
    pub duplicates: usize,
    pub params: usize,
    pub full_grad_norm_sq: f64,
    /// Fitted log-log slope of `E‖g_n − G‖²` against n (theory: −1).
    pub variance_slope: f64,
    /// tr Σ of the per-example gradient, from `n · E‖g_n − G‖²` averaged over n.
    pub trace_sigma: f64,
    /// Standard error of `trace_sigma` over the draws (each size's mean of `n‖g_n − G‖²` has
    /// its own; the sizes are independent).
    pub trace_sigma_se: f64,
    /// `tr Σ / |G|²` with the measured G.
    pub b_simple: f64,
    /// Standard error of `b_simple` (`trace_sigma_se / |G|²`: G is exact).
    pub b_simple_se: f64,
    /// The same from the unbiased two-batch estimators at the smallest and largest n.
    pub b_simple_two_batch: Option<f64>,
    /// Its standard error over the draws (delta method; `None` with one draw per size).
    pub b_simple_two_batch_se: Option<f64>,
    /// GᵀHG with the full-data Hessian (R-operator).
    pub g_h_g: Option<f64>,
    /// The examples the Hessian of `g_h_g`, `trace_h_sigma` and `eps_max` is taken over: the
    /// first of them within the work budget (G, Σ and the draws use all `examples`); `None`
    /// without curvature. It was said on stderr alone.
    pub hessian_examples: Option<usize>,
    /// tr(HΣ), from per-example deviations `dᵀHd`, `d = g_1 − G`.
    pub trace_h_sigma: Option<f64>,
    /// `B_noise = tr(HΣ) / GᵀHG` (McCandlish et al. 2018).
    pub b_noise: Option<f64>,
    /// Standard error of `b_noise` over the single-example draws (GᵀHG is exact): with the
    /// default 32 draws about ±10 %; `--draws` shrinks it as 1/√draws.
    pub b_noise_se: Option<f64>,
    /// `ε_max = GᵀG / GᵀHG`: the best step size with the exact gradient.
    pub eps_max: Option<f64>,
    /// `ε_opt(B) = ε_max / (1 + B_noise/B)` at powers of two.
    pub eps_opt: Vec<(usize, f64)>,
    pub rows: Vec<NoiseRow>,
}

/// The largest minibatch size measured: `max_n`, at most the number of examples.
fn cap(args: &NoiseArgs, n_total: usize) -> u64 {
    args.max_n.min(n_total) as u64
}

/// Each row's standard error at n = 1 over its own; none where its own is 0 (every draw at
/// that n equalled G: the ratio is no figure).
fn set_error_reductions(rows: &mut [NoiseRow]) {
    let Some(se1) = rows.first().map(|r| r.std_error) else { return };
    for row in rows {
        row.error_reduction = (row.std_error > 0.0).then(|| se1 / row.std_error);
    }
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Run the experiment on one backend (no progress bar).
pub fn measure<B: Backend>(b: &B, cfg: &Config, args: &NoiseArgs) -> Result<NoiseSummary, NoiseError> {
    measure_with(b, cfg, args, false)
}

/// Single-example draws of a B_noise measured at initialisation to choose a batch size
/// (`time-to-target`, `sweep --policy time_to_target:auto`, `sweep --workers`): tr(HΣ) is
/// their mean, so B_noise's standard error is about 5 % (32, `noise`'s default, left ±10 %, and
/// with seed 1 fixed every run took the same, lowest, of the estimates other seeds give).
pub const INIT_DRAWS: usize = 128;

/// Fixed cost of one minibatch gradient (dispatch and read-back), in examples, for the bar.
const GRAD_OVERHEAD: u64 = 8;
/// One Hessian-vector product costs about this many gradients per example (R-op), for the bar.
const HVP_COST: u64 = 3;

/// Run the experiment on one backend; `progress`: a bar over the gradient and Hessian work with
/// an estimate of what remains.
pub fn measure_with<B: Backend>(
    b: &B,
    cfg: &Config,
    args: &NoiseArgs,
    progress: bool,
) -> Result<NoiseSummary, NoiseError> {
    if cfg.data.mode != DataMode::Resident {
        return Err(NoiseError::NotResident);
    }
    let model = Mlp::new(cfg.mlp_spec())?;
    let (train, _) = crate::data::build_resident(&cfg.data, cfg.data_outputs())?;
    let n_total = train.n;
    // Example i is distinct example i / duplicates (synthetic and .npy rows alike: each npy
    // training row is repeated data.duplicates times; copies counted as distinct let a file of
    // one training row through, to a noise scale of 0).
    let distinct = n_total.div_ceil(cfg.data.duplicates.max(1));
    if distinct < 2 {
        // Size 1 alone (or one example repeated): errors of exactly 0, a NaN slope, an
        // infinite error reduction and B_noise = 0, with exit 0.
        let examples = match distinct == n_total {
            true => n_total.to_string(),
            false => format!("{n_total}, all copies of one: data.duplicates = {}", cfg.data.duplicates),
        };
        return Err(NoiseError::OneExample { examples });
    }
    let mut params = model.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale)?;
    if let Some(p) = &args.checkpoint {
        let ck = checkpoint::load(p)?;
        checkpoint::load_into::<B, NoiseError>(b, &ck, p, "", &mut params)?;
    }
    let data = DeviceDataset::upload(b, &train)?;
    let hessian_examples = args
        .curvature
        .then(|| budget_examples(model.num_params(), train.n, HESSIAN_WORK_BUDGET).min(train.n));
    let mut hess = if args.curvature {
        let mut hp = params.zeros_like(b)?;
        hp.copy_from(b, &params)?;
        let opts = crate::curvature::hvp::HvpOptions::for_budget(&model, 64 << 20);
        // The Hessian over the first examples within the work budget (G and the draws use all).
        let k = budget_examples(model.num_params(), train.n, HESSIAN_WORK_BUDGET);
        let subset;
        let hdata = if k < train.n {
            eprintln!(
                "noise: {}",
                budget_note(
                    k,
                    train.n,
                    HESSIAN_WORK_BUDGET,
                    "G and the minibatch draws use all of them"
                )
            );
            subset = train.select(&(0..k).collect::<Vec<_>>());
            &subset
        } else {
            &train
        };
        Some(crate::curvature::hvp::HvpOperator::new(b, model.clone(), hp, hdata, opts)?)
    } else {
        None
    };
    // Work in example-gradients: G, GᵀHG, the draws at every n and one dᵀHd per draw at n = 1.
    let sizes: Vec<u64> = std::iter::successors(Some(1u64), |n| n.checked_mul(2))
        .take_while(|&n| n <= cap(args, n_total))
        .collect();
    let draws = args.draws as u64;
    let hvp = hess.as_ref().map_or(0, |h| HVP_COST * h.examples() as u64);
    // Saturating: `--draws` is any usize (the bar only shows progress).
    let work =
        sizes.iter().map(|n| draws.saturating_mul(n.saturating_add(GRAD_OVERHEAD))).fold(
            (n_total as u64).saturating_add(hvp.saturating_mul(draws.saturating_add(1))),
            |w, d| w.saturating_add(d),
        );
    let bar = crate::report::progress::work_bar(progress, work, "noise");
    bar.set_message("full-data gradient G");
    drop(train);
    let mut probe = GradProbe::new(b, model.clone(), params, data);
    let g = probe.full_grad(1024)?;
    bar.inc(n_total as u64);
    bar.set_message("GᵀHG");
    let g2: f64 = g.iter().map(|v| v * v).sum();
    if !g2.is_finite() {
        bar.finish_and_clear();
        let at = match &args.checkpoint {
            Some(p) => format!("--checkpoint {}", p.display()),
            None => "the initialization (model.init_scale, model.init_seed)".to_string(),
        };
        return Err(NoiseError::NonFiniteGradient { at, norm_sq: g2 });
    }
    let mut r = ChaCha8Rng::seed_from_u64(args.seed);
    let mut rows = Vec::new();
    // Each size's (n, mean |g_n|², variance of that mean): the two-batch estimate's inputs.
    let mut sq_norms: Vec<(f64, f64, f64)> = Vec::new();
    // dᵀHd over the single-example draws (tr(HΣ) estimate).
    let mut dhd = Running::default();
    let mut apply_h = |v: &[f64]| -> Result<Option<f64>, CurvatureError> {
        use crate::curvature::SymOp;
        match hess.as_mut() {
            Some(h) => {
                let vf: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                let mut out = vec![0f32; vf.len()];
                h.apply(&vf, &mut out)?;
                Ok(Some(v.iter().zip(&out).map(|(a, c)| a * *c as f64).sum()))
            }
            None => Ok(None),
        }
    };
    let g_h_g = apply_h(&g)?;
    bar.inc(hvp);
    let mut n = 1;
    while n <= cap(args, n_total) as usize {
        bar.set_message(format!("minibatch size n = {n}, {} draws", args.draws));
        // Running statistics: memory stays flat however many draws (`--draws` is any usize).
        let (mut errs, mut norms) = (Running::default(), Running::default());
        for _ in 0..args.draws {
            // With replacement: the i.i.d. minibatch of the theory.
            let idx: Vec<u32> = (0..n).map(|_| r.random_range(0..n_total as u32)).collect();
            let gn = probe.grad(&idx)?;
            errs.push(sq_dist(&gn, &g));
            if n == 1 {
                let d: Vec<f64> = gn.iter().zip(&g).map(|(a, c)| a - c).collect();
                if let Some(v) = apply_h(&d)? {
                    dhd.push(v);
                }
                bar.inc(hvp);
            }
            bar.inc(n as u64 + GRAD_OVERHEAD);
            norms.push(gn.iter().map(|v| v * v).sum::<f64>());
        }
        let (mean, sd) = (errs.mean(), errs.sample_sd());
        sq_norms.push((n as f64, norms.mean(), norms.sample_sd().powi(2) / args.draws.max(1) as f64));
        rows.push(NoiseRow {
            n,
            draws: args.draws,
            mean_sq_error: mean,
            sd_sq_error: sd,
            std_error: mean.sqrt(),
            mean_sq_norm: norms.mean(),
            relative_cost: n as f64,
            error_reduction: None,
        });
        n *= 2;
    }
    bar.finish_and_clear();
    if rows.is_empty() {
        return Err(NoiseError::NoSizes { max_n: args.max_n, examples: n_total });
    }
    set_error_reductions(&mut rows);
    let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.n as f64, r.mean_sq_error)).collect();
    let (slope, _) = loglog_fit(&pts).unwrap_or((f64::NAN, f64::NAN));
    let trace_sigma = rows.iter().map(|r| r.n as f64 * r.mean_sq_error).sum::<f64>() / rows.len() as f64;
    let trace_sigma_se = rows
        .iter()
        .map(|r| (r.n as f64 * r.sd_sq_error).powi(2) / r.draws.max(1) as f64)
        .sum::<f64>()
        .sqrt()
        / rows.len() as f64;
    let (two, two_se) = match (sq_norms.first(), sq_norms.last()) {
        (Some(&small), Some(&big)) if big.0 > small.0 => {
            let b = two_batch_estimates(small.0, small.1, big.0, big.1)
                .and_then(|(g2e, tr)| (g2e > 0.0).then_some(tr / g2e));
            let se = b.and_then(|_| two_batch_b_simple_se(small, big)).filter(|_| args.draws > 1);
            (b, se)
        }
        _ => (None, None),
    };
    let trace_h_sigma = (dhd.count() > 0).then(|| dhd.mean());
    let b_noise = match (trace_h_sigma, g_h_g) {
        (Some(t), Some(ghg)) if ghg > 0.0 => Some(t / ghg),
        _ => None,
    };
    let b_noise_se = match (b_noise, g_h_g) {
        (Some(_), Some(ghg)) if dhd.count() > 1 => {
            Some(dhd.sample_sd() / (dhd.count() as f64).sqrt() / ghg)
        }
        _ => None,
    };
    let eps_max = g_h_g.filter(|&ghg| ghg > 0.0).map(|ghg| g2 / ghg);
    let eps_opt = match (eps_max, b_noise) {
        (Some(e), Some(bn)) => {
            (0..=12).map(|k| (1usize << k, eps_opt(e, bn, (1usize << k) as f64))).collect()
        }
        _ => Vec::new(),
    };
    Ok(NoiseSummary {
        g_h_g,
        hessian_examples,
        trace_h_sigma,
        b_noise,
        eps_max,
        eps_opt,
        command: "noise",
        device: b.device_name(),
        examples: n_total,
        duplicates: cfg.data.duplicates,
        params: model.num_params(),
        full_grad_norm_sq: g2,
        variance_slope: slope,
        trace_sigma,
        trace_sigma_se,
        b_simple: trace_sigma / g2,
        b_simple_se: trace_sigma_se / g2,
        b_noise_se,
        b_simple_two_batch: two,
        b_simple_two_batch_se: two_se,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_whose_draws_all_equal_the_full_gradient_has_no_error_reduction() {
        let row = |n: usize, std_error: f64| NoiseRow {
            n,
            draws: 4,
            mean_sq_error: std_error * std_error,
            sd_sq_error: 0.0,
            std_error,
            mean_sq_norm: 1.0,
            relative_cost: n as f64,
            error_reduction: None,
        };
        let mut rows = vec![row(1, 2.0), row(2, 1.0), row(4, 0.0)];
        set_error_reductions(&mut rows);
        let got: Vec<Option<f64>> = rows.iter().map(|r| r.error_reduction).collect();
        assert_eq!(got, [Some(1.0), Some(2.0), None]);
    }
}

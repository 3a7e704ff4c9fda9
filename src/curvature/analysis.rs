//! The Hessian of the mean training loss at initialization or at a checkpoint, through
//! Hessian-vector products only: λmax, λmin, top eigenvalues, trace, gᵀg, gᵀHg, 2/λmax,
//! negative eigen-mass, condition estimate, HVP/gradient time, the closed form where one
//! exists, and the spread over random batches (what `batchscope curvature` reports).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::batches::{batch_sample, batch_spreads, BatchSample, WholeSet};
use super::budget::{budget_examples, budget_note, CURVATURE_WORK_BUDGET};
use super::hvp::HvpOptions;
use super::linear_reference::linear_reference;
use super::power::max_by_power;
use super::slq::NEGATIVE_TOL;
use super::summary::{CurvatureSummary, LanczosSummary, PowerSummary, SlqSummary};
use super::{
    conjugate_gradient, hutchinson_trace, lanczos, norm, random_unit, slq, stream_seed,
    time_hvp_vs_grad, Counted, CurvatureError, Density, HutchinsonOptions, HvpOperator, PowerOptions,
    Result, SlqOptions, Stream, SymOp,
};
use crate::backend::Backend;
use crate::checkpoint;
use crate::config::{BatchSize, Config, DataMode};
use crate::data::{self, Dataset};
use crate::model::{Mlp, ParamSet};
use crate::report::progress;

/// Without `--examples`, a streamed dataset is analysed on this many examples.
const STREAM_DEFAULT_EXAMPLES: usize = 65_536;
/// Device memory for one chunk's forward and R workspaces.
pub const CHUNK_BUDGET_BYTES: u64 = 64 << 20;
/// Grid points of the density.
const DENSITY_POINTS: usize = 400;
/// Hutchinson probes before the trace may stop at `--trace-tol`: with 8, half the runs stopped
/// there and the t₇ tails put 9 % of them more than 2 standard errors off (a ±2 SE meant 91 %).
pub const TRACE_MIN_PROBES: usize = 30;
/// Gaussian width of the density, as a fraction of the spectrum's span.
const DENSITY_SIGMA: f64 = 0.01;
/// Most conjugate-gradient steps for a Newton direction, and its tolerance.
pub(super) const CG_MAX_ITERS: usize = 500;
pub(super) const CG_TOL: f64 = 1e-6;
/// Lanczos steps that bracket the spectrum of a random batch's Hessian before its power iteration.
pub(super) const BATCH_LANCZOS_STEPS: usize = 12;
/// What `batchscope curvature` computes.
#[derive(Clone, Debug, PartialEq)]
pub struct CurvatureOptions {
    /// Weights to analyse; the config's initialization when `None`.
    pub checkpoint: Option<PathBuf>,
    /// The first N training examples (all by default).
    pub examples: Option<usize>,
    /// Batch sizes whose random batches are compared with the whole set (`--batch`).
    pub batches: Vec<usize>,
    /// Random batches per batch size.
    pub repeats: usize,
    pub top_k: usize,
    /// Lanczos steps per run (capped at the number of parameters).
    pub lanczos_steps: usize,
    /// SLQ runs (the main Lanczos run is the first).
    pub slq_runs: usize,
    /// Most power-iteration steps.
    pub power_iters: usize,
    /// Most Hutchinson probes.
    pub trace_samples: usize,
    /// Hutchinson stops earlier at this relative standard error of the mean.
    pub trace_tol: f64,
    pub seed: u64,
    /// Stage notes on stderr.
    pub progress: bool,
}

impl Default for CurvatureOptions {
    fn default() -> Self {
        CurvatureOptions {
            checkpoint: None,
            examples: None,
            batches: Vec::new(),
            repeats: 5,
            top_k: 5,
            lanczos_steps: 64,
            slq_runs: 4,
            power_iters: 100,
            trace_samples: 200,
            trace_tol: 0.005,
            seed: 0,
            progress: true,
        }
    }
}

/// What `run_curvature` measured: the summary, the SLQ density on its grid and the random
/// batches of `--batch`.
#[derive(Clone, Debug)]
pub struct CurvatureReport {
    pub summary: CurvatureSummary,
    pub density: Density,
    pub samples: Vec<BatchSample>,
}

/// Everything `batchscope curvature` computes, on backend `b`.
pub fn run_curvature<B: Backend>(
    b: &B,
    cfg: &Config,
    opts: &CurvatureOptions,
) -> Result<CurvatureReport> {
    let t0 = Instant::now();
    // One bar over the Hessian-vector products of the phases below, each counted at its most
    // (power iteration and the trace may stop early: the bar then jumps to the phase's end).
    let steps_max = opts.lanczos_steps as u64;
    // Saturating: the options are any usize (the bar only shows progress).
    let phases = [
        steps_max.saturating_add(1),
        opts.power_iters as u64,
        steps_max.saturating_mul(opts.slq_runs.max(1) as u64 - 1),
        opts.trace_samples.max(2) as u64,
    ];
    let total = |k: usize| phases[..=k].iter().fold(0u64, |a, &p| a.saturating_add(p));
    let bar =
        progress::bar(opts.progress, total(phases.len() - 1), "curvature", "Hessian-vector products");
    let tick = || bar.inc(1);
    let end_of = |k: usize| bar.set_position(total(k));
    let say = |msg: String| {
        bar.suspend(|| eprintln!("curvature [{:7.2} s]: {msg}", t0.elapsed().as_secs_f64()))
    };
    let note = |msg: String| {
        if opts.progress {
            say(msg);
        }
    };
    let mlp = Mlp::new(cfg.mlp_spec())?;
    let data = curvature_data(cfg, opts.examples, mlp.num_params(), &note, &say)?;
    if let Some(size) = opts.batches.iter().find(|&&size| size > data.n) {
        return Err(CurvatureError::Setup(format!(
            "--batch {size} exceeds the {} examples the analysis averages over (--examples N, within data.n_train, for more)",
            data.n
        )));
    }
    let mut params = mlp.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale)?;
    if let Some(p) = &opts.checkpoint {
        load_params(b, p, &mut params)?;
    }
    let n_params = params.numel();
    let hvp_opts = HvpOptions::for_budget(&mlp, CHUNK_BUDGET_BYTES);
    let mut op = HvpOperator::new(b, mlp.clone(), params, &data, hvp_opts)?;
    note(format!(
        "{} parameters, {} examples in {} chunk(s) on {}",
        n_params,
        data.n,
        op.chunks(),
        b.device_name()
    ));

    // ---- gradient, gᵀg, gᵀHg ---------------------------------------------------------------
    let (loss, g) = op.gradient()?;
    let g_norm_sq = super::dot(&g, &g);
    let mut hg = vec![0f32; n_params];
    op.apply(&g, &mut hg)?;
    tick();
    let g_t_h_g = super::dot(&g, &hg);

    // ---- Lanczos: top-k, λmin ----------------------------------------------------------------
    let steps = opts.lanczos_steps.min(n_params);
    note(format!("Lanczos, {steps} steps with full reorthogonalization"));
    let start = random_unit(stream_seed(opts.seed, Stream::LanczosStart, 0), n_params);
    let run = lanczos(&mut Counted { op: &mut op, tick: &tick }, &start, steps)?;
    end_of(0);
    let ritz = run.ritz()?;
    let lanczos_max = ritz.values.last().copied().unwrap_or(f64::NAN);
    let lambda_min = ritz.values.first().copied().unwrap_or(f64::NAN);
    let top_eigenvalues: Vec<f64> = ritz.values.iter().rev().take(opts.top_k).copied().collect();
    let lanczos_summary = LanczosSummary {
        steps: run.steps(),
        ritz_values: ritz.values.clone(),
        ritz_residuals: ritz.residuals.clone(),
        orthogonality_loss: run.orthogonality_loss(),
    };
    // The basis (steps × parameters) is not needed past here.
    drop(run);

    // ---- λmax by power iteration -------------------------------------------------------------
    // Near a saddle −λ can be as large as λmax (or larger): iterate on H − λmin·I, whose
    // dominant eigenvalue is λmax − λmin (the Ritz λmin is within a hair of the true one).
    note(format!("power iteration (≤ {} steps)", opts.power_iters));
    let popts = PowerOptions { max_iters: opts.power_iters, tol: 1e-4, seed: opts.seed };
    let power = max_by_power(&mut Counted { op: &mut op, tick: &tick }, lambda_min, &popts)?;
    end_of(1);
    let lambda_max = if power.converged { power.eigenvalue.max(lanczos_max) } else { lanczos_max };
    note(format!("SLQ, {} runs", opts.slq_runs.max(1)));
    let sopts = SlqOptions { runs: opts.slq_runs.max(1), steps, seed: opts.seed };
    let sq = slq(&mut Counted { op: &mut op, tick: &tick }, &sopts, Some(&ritz))?;
    end_of(2);
    let scale = lambda_max.abs().max(lambda_min.abs());
    let negative_threshold = NEGATIVE_TOL * scale;
    let conditioning =
        super::slq::conditioning(&ritz.values, &ritz.residuals, lambda_max, negative_threshold);
    let negative_mass = sq.mass_below(negative_threshold);
    let negative_mass_se = sq.mass_below_se(negative_threshold);
    let density = super::density_on_grid(&sq.nodes, &sq.weights, DENSITY_POINTS, DENSITY_SIGMA);

    // ---- trace -------------------------------------------------------------------------------
    note(format!("Hutchinson trace (≤ {} probes)", opts.trace_samples));
    let hopts = HutchinsonOptions {
        min_samples: TRACE_MIN_PROBES,
        max_samples: opts.trace_samples.max(2),
        rel_tol: opts.trace_tol,
        seed: stream_seed(opts.seed, Stream::TraceProbes, 0),
    };
    let trace = hutchinson_trace(&mut Counted { op: &mut op, tick: &tick }, &hopts)?;
    end_of(3);

    // ---- Newton direction (positive definite only) ----------------------------------------------
    let newton = if lambda_min > 0.0 {
        note("Newton direction H⁻¹g by conjugate gradients".into());
        bar.inc_length(CG_MAX_ITERS as u64);
        let r = conjugate_gradient(&mut Counted { op: &mut op, tick: &tick }, &g, CG_MAX_ITERS, CG_TOL)?;
        bar.set_position(bar.length().unwrap_or(0));
        (!r.negative_curvature).then_some(r.x)
    } else {
        None
    };

    // ---- random batches ------------------------------------------------------------------------
    let mut samples = Vec::new();
    let whole = WholeSet {
        grad: &g,
        newton: newton.as_deref(),
        trace_seed: hopts.seed,
        trace_samples: trace.samples,
    };
    for &size in &opts.batches {
        note(format!("{} random batches of {size}", opts.repeats));
        for r in 0..opts.repeats {
            samples.push(batch_sample(b, &mlp, op.params(), &data, &whole, size, r, opts)?);
        }
    }
    let spreads = batch_spreads(&samples, lambda_max, trace.trace);

    // ---- HVP vs gradient time ----------------------------------------------------------------
    let timing_rows = match cfg.train.batch_size {
        BatchSize::Fixed(n) => n,
        BatchSize::Auto => 128,
    }
    .min(data.n);
    note(format!("timing one HVP against one gradient at batch {timing_rows}"));
    let timing = time_hvp_vs_grad(b, &mlp, op.params(), &data, timing_rows, 5)?;
    bar.finish_and_clear();

    let reference = linear_reference(&cfg.data, &mlp, &data, lambda_max, lambda_min, trace.trace)?;
    let summary = CurvatureSummary {
        command: "curvature",
        backend: format!("{:?}", b.kind()).to_lowercase(),
        device: b.device_name(),
        sizes: mlp.spec.sizes.clone(),
        activation: mlp.spec.activation.name().to_string(),
        loss_kind: format!("{:?}", mlp.spec.loss),
        params: n_params,
        examples: data.n,
        chunks: op.chunks(),
        activations_cached: op.cached(),
        checkpoint: opts.checkpoint.as_ref().map(|p| p.display().to_string()),
        init_scale: cfg.model.init_scale,
        loss,
        lambda_max,
        lambda_min,
        top_eigenvalues,
        trace: trace.trace,
        trace_std_error: trace.std_error,
        trace_samples: trace.samples,
        trace_converged: trace.converged,
        grad_norm_sq: g_norm_sq,
        g_t_h_g,
        epsilon_star: (g_t_h_g > 0.0).then(|| g_norm_sq / g_t_h_g),
        lr_stable_max: (lambda_max > 0.0).then(|| 2.0 / lambda_max),
        negative_mass,
        negative_mass_se,
        negative_threshold,
        condition_estimate: conditioning.estimate,
        condition_status: conditioning.status,
        condition_ritz_value: conditioning.theta,
        condition_ritz_residual: conditioning.residual,
        power: PowerSummary {
            lambda_max: power.eigenvalue,
            iterations: power.iterations,
            converged: power.converged,
            residual: power.residual,
        },
        lanczos: lanczos_summary,
        slq: SlqSummary {
            runs: sq.runs,
            steps: sq.steps.clone(),
            sigma: density.sigma,
            nodes: sq.nodes.clone(),
            weights: sq.weights.clone(),
        },
        hvp_over_grad_time: timing.hvp_over_grad,
        hvp_prepared_over_grad_time: timing.prepared_over_grad,
        timing,
        hvp_products: op.products,
        elapsed_s: t0.elapsed().as_secs_f64(),
        reference,
        newton_step_norm: newton.as_deref().map(norm),
        batches: spreads,
    };
    Ok(CurvatureReport { summary, density, samples })
}

/// The examples the Hessian averages over: the first N training examples (`--examples`, or all
/// of them within the work budget of `budget_examples`, said in one line when it applies).
fn curvature_data(
    cfg: &Config,
    examples: Option<usize>,
    params: usize,
    note: &dyn Fn(String),
    say: &dyn Fn(String),
) -> Result<Dataset> {
    let budget = |n: usize| {
        let k = budget_examples(params, n, CURVATURE_WORK_BUDGET);
        if k < n {
            say(budget_note(k, n, CURVATURE_WORK_BUDGET, "--examples N for more"));
        }
        k
    };
    let outputs = cfg.data_outputs();
    let n_train = usize::try_from(cfg.data.n_train).unwrap_or(usize::MAX);
    match data::gen_spec(&cfg.data) {
        Some(spec) => {
            let n = match examples {
                Some(n) if n > n_train => {
                    return Err(CurvatureError::Setup(format!(
                        "--examples {n} exceeds the {n_train} training examples (data.n_train)"
                    )))
                }
                Some(n) => n,
                None if cfg.data.mode == DataMode::Stream && n_train > STREAM_DEFAULT_EXAMPLES => {
                    note(format!("streamed data: using the first {STREAM_DEFAULT_EXAMPLES} examples (set --examples)"));
                    budget(STREAM_DEFAULT_EXAMPLES)
                }
                None => budget(n_train),
            };
            Ok(data::synth::generate_dataset(&spec, &data::gen_table(&cfg.data), 0, n)?)
        }
        None => {
            let train = data::build_train(&cfg.data, outputs)?;
            match examples {
                Some(n) if n > train.n => Err(CurvatureError::Setup(format!(
                    "--examples {n} exceeds the {} training examples",
                    train.n
                ))),
                Some(n) if n < train.n => Ok(train.select(&(0..n).collect::<Vec<_>>())),
                Some(_) => Ok(train),
                None => match budget(train.n) {
                    k if k < train.n => Ok(train.select(&(0..k).collect::<Vec<_>>())),
                    _ => Ok(train),
                },
            }
        }
    }
}

/// Overwrite `params` from a checkpoint's `layers.{i}.weight/bias` (shapes checked).
fn load_params<B: Backend>(b: &B, path: &Path, params: &mut ParamSet<B>) -> Result<()> {
    let ck = checkpoint::load(path)?;
    checkpoint::load_into::<B, CurvatureError>(b, &ck, path, "", params)
}

//! `batchscope curvature`: the Hessian of the mean training loss at initialization or at a
//! checkpoint, through Hessian-vector products only.
//!
//! Writes to the run directory: `config.toml`, `summary.json` (λmax, λmin, top eigenvalues,
//! trace, gᵀg, gᵀHg, 2/λmax, negative eigen-mass, condition estimate, HVP/gradient time, the
//! closed form where one exists, the spread over random batches), `density.csv` and
//! `density.svg` (SLQ spectral density), `batches.csv` and `batch_spread.svg` with `--batch`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::hvp::HvpOptions;
use super::{
    conjugate_gradient, hutchinson_trace, lanczos, norm, power_iteration, random_unit, slq,
    time_hvp_vs_grad, CurvatureError, DenseSym, HutchinsonOptions, HvpOperator, HvpTiming, PowerOptions,
    Result, Shifted, SlqOptions, SymOp,
};
use crate::backend::Backend;
use crate::commands::{open_backend, AnyBackend, BackendChoice, RunArgs};
use crate::config::{BatchSize, Config, DataKind, DataMode};
use crate::data::{self, Dataset};
use crate::model::{Mlp, ParamSet};
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, panels_plot, Panel, PlotSpec, Series};
use crate::report::rundir::{create_run_dir, write_atomic};
use crate::report::table::{fmt_sig, Table};
use crate::train::checkpoint;

/// Without `--examples`, a streamed dataset is analysed on this many examples.
const STREAM_DEFAULT_EXAMPLES: usize = 65_536;
/// Device memory for one chunk's forward and R workspaces.
const CHUNK_BUDGET_BYTES: u64 = 64 << 20;
/// Grid points of the density.
const DENSITY_POINTS: usize = 400;
/// Gaussian width of the density, as a fraction of the spectrum's span.
const DENSITY_SIGMA: f64 = 0.01;
use super::slq::NEGATIVE_TOL;
/// Most conjugate-gradient steps for a Newton direction, and its tolerance.
const CG_MAX_ITERS: usize = 500;
const CG_TOL: f64 = 1e-6;
/// Lanczos steps that bracket the spectrum of a random batch's Hessian before its power iteration.
const BATCH_LANCZOS_STEPS: usize = 12;
/// The empirical Hessian of a linear model is decomposed densely up to this many inputs.
const DENSE_REFERENCE_MAX: usize = 512;

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
    pub negative_threshold: f64,
    /// `λmax / |θ|` for the Ritz value θ of smallest magnitude found; `None` (printed ∞) when
    /// the Hessian is singular within `negative_threshold` ([`super::slq::condition_estimate`]).
    pub condition_estimate: Option<f64>,
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

/// `batchscope curvature`.
pub fn curvature(args: &RunArgs, backend: BackendChoice, opts: &CurvatureOptions) -> anyhow::Result<()> {
    let cfg = Config::load(args.config.as_deref(), &args.set)?;
    if opts.repeats == 0 {
        bail!("--repeats must be ≥ 1");
    }
    if opts.lanczos_steps == 0 {
        bail!("--lanczos-steps must be ≥ 1");
    }
    if opts.batches.contains(&0) {
        bail!("--batch must be ≥ 1");
    }
    if !(opts.trace_tol > 0.0 && opts.trace_tol.is_finite()) {
        bail!("--trace-tol must be a positive number, got {}", opts.trace_tol);
    }
    if opts.examples == Some(0) {
        bail!("--examples must be ≥ 1");
    }
    if let Some(p) = &opts.checkpoint {
        // Fail on a bad checkpoint before creating the run directory.
        checkpoint::load(p)?;
    }
    let b = open_backend(backend, args.adapter.as_deref())?;
    let dir = create_run_dir(args.out.as_deref(), "curvature")?;
    write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    let opts = CurvatureOptions { progress: opts.progress && args.progress, ..opts.clone() };
    let s = match &b {
        AnyBackend::Cpu(c) => run_curvature(c, &cfg, &opts, &dir),
        AnyBackend::Gpu(g) => run_curvature(g.as_ref(), &cfg, &opts, &dir),
    }
    .with_context(|| format!("curvature (run directory {})", dir.display()))?;
    print!("{}", terminal_summary(&s));
    println!("wrote:           {}", dir.display());
    Ok(())
}

/// Everything `batchscope curvature` computes, on backend `b`, into `dir`.
pub fn run_curvature<B: Backend>(
    b: &B,
    cfg: &Config,
    opts: &CurvatureOptions,
    dir: &Path,
) -> Result<CurvatureSummary> {
    let t0 = Instant::now();
    let note = |msg: String| {
        if opts.progress {
            eprintln!("curvature [{:7.2} s]: {msg}", t0.elapsed().as_secs_f64());
        }
    };
    let mlp = Mlp::new(cfg.mlp_spec())?;
    let data = curvature_data(cfg, opts.examples, &note)?;
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
    let g_t_h_g = super::dot(&g, &hg);

    // ---- Lanczos: top-k, λmin ----------------------------------------------------------------
    let steps = opts.lanczos_steps.min(n_params);
    note(format!("Lanczos, {steps} steps with full reorthogonalization"));
    let run = lanczos(&mut op, &random_unit(opts.seed.wrapping_add(17), n_params), steps)?;
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
    let power = max_by_power(&mut op, lambda_min, &popts)?;
    let lambda_max = if power.converged { power.eigenvalue.max(lanczos_max) } else { lanczos_max };
    note(format!("SLQ, {} runs", opts.slq_runs.max(1)));
    let sopts = SlqOptions { runs: opts.slq_runs.max(1), steps, seed: opts.seed };
    let sq = slq(&mut op, &sopts, Some(&ritz))?;
    let scale = lambda_max.abs().max(lambda_min.abs());
    let negative_threshold = NEGATIVE_TOL * scale;
    let negative_mass = sq.mass_below(negative_threshold);
    let density = super::density_on_grid(&sq.nodes, &sq.weights, DENSITY_POINTS, DENSITY_SIGMA);

    // ---- trace -------------------------------------------------------------------------------
    note(format!("Hutchinson trace (≤ {} probes)", opts.trace_samples));
    let hopts = HutchinsonOptions {
        min_samples: 8,
        max_samples: opts.trace_samples.max(2),
        rel_tol: opts.trace_tol,
        seed: opts.seed.wrapping_add(29),
    };
    let trace = hutchinson_trace(&mut op, &hopts)?;

    // ---- Newton direction (positive definite only) ----------------------------------------------
    let newton = if lambda_min > 0.0 {
        note("Newton direction H⁻¹g by conjugate gradients".into());
        let r = conjugate_gradient(&mut op, &g, CG_MAX_ITERS, CG_TOL)?;
        (!r.negative_curvature).then_some(r.x)
    } else {
        None
    };

    // ---- random batches ------------------------------------------------------------------------
    let mut samples = Vec::new();
    for &size in &opts.batches {
        if size > data.n {
            note(format!("--batch {size} skipped: only {} examples", data.n));
            continue;
        }
        note(format!("{} random batches of {size}", opts.repeats));
        for r in 0..opts.repeats {
            samples.push(batch_sample(
                b,
                &mlp,
                op.params(),
                &data,
                (&g, newton.as_deref()),
                size,
                r,
                opts,
            )?);
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

    let reference = linear_reference(cfg, &mlp, &data, lambda_max, lambda_min, trace.trace)?;
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
        negative_threshold,
        condition_estimate: super::slq::condition_estimate(
            &ritz.values,
            &ritz.residuals,
            lambda_max,
            negative_threshold,
        ),
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
    write_outputs(dir, &summary, &density, &samples)?;
    Ok(summary)
}

/// The examples the Hessian averages over: the first N training examples.
fn curvature_data(cfg: &Config, examples: Option<usize>, note: &dyn Fn(String)) -> Result<Dataset> {
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
                    STREAM_DEFAULT_EXAMPLES
                }
                None => n_train,
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
                _ => Ok(train),
            }
        }
    }
}

/// λmax by power iteration: on `H` when `lower ≥ 0` (λmax dominates), else on `H − lower·I`
/// (all eigenvalues ≥ ~0, λmax − lower dominant). The result is shifted back.
fn max_by_power<O: SymOp + ?Sized>(
    op: &mut O,
    lower: f64,
    opts: &PowerOptions,
) -> Result<super::PowerResult> {
    if lower >= 0.0 || !lower.is_finite() {
        return power_iteration(op, opts);
    }
    let mut r = power_iteration(&mut Shifted { op, shift: lower }, opts)?;
    r.eigenvalue += lower;
    Ok(r)
}

/// Overwrite `params` from a checkpoint's `layers.{i}.weight/bias` (shapes checked).
fn load_params<B: Backend>(b: &B, path: &Path, params: &mut ParamSet<B>) -> Result<()> {
    let ck = checkpoint::load(path)?;
    for i in 0..params.tensors.len() {
        let t = ck.expect_shape(&params.names[i], &params.shapes[i])?;
        b.write(&mut params.tensors[i], &t.data)?;
    }
    Ok(())
}

/// λmax, trace and the gradient on one random batch of `size` examples.
#[allow(clippy::too_many_arguments)]
fn batch_sample<B: Backend>(
    b: &B,
    mlp: &Mlp,
    params: &ParamSet<B>,
    data: &Dataset,
    (g_full, newton_full): (&[f32], Option<&[f32]>),
    size: usize,
    repeat: usize,
    opts: &CurvatureOptions,
) -> Result<BatchSample> {
    let seed = opts.seed
        ^ (size as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (repeat as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let idx = rand::seq::index::sample(&mut rng, data.n, size).into_vec();
    let sub = data.select(&idx);
    let mut p = params.zeros_like(b)?;
    p.copy_from(b, params)?;
    let mut op =
        HvpOperator::new(b, mlp.clone(), p, &sub, HvpOptions::for_budget(mlp, CHUNK_BUDGET_BYTES))?;
    let (_, g) = op.gradient()?;
    let diff: Vec<f32> = g.iter().zip(g_full).map(|(a, c)| a - c).collect();
    // λmax: a short Lanczos run brackets the spectrum, the power iteration shifted by its λmin
    // refines the top (as for the whole set).
    let start = random_unit(seed.wrapping_add(3), op.dim());
    let short = lanczos(&mut op, &start, BATCH_LANCZOS_STEPS)?.ritz()?;
    let lo = short.values.first().copied().unwrap_or(0.0);
    let hi = short.values.last().copied().unwrap_or(0.0);
    let popts = PowerOptions { max_iters: opts.power_iters, tol: 1e-4, seed: seed.wrapping_add(1) };
    let p = max_by_power(&mut op, lo, &popts)?;
    let lambda_max = if p.converged { p.eigenvalue.max(hi) } else { hi };
    let hopts = HutchinsonOptions {
        min_samples: 8,
        max_samples: opts.trace_samples.max(2),
        rel_tol: opts.trace_tol,
        seed: seed.wrapping_add(2),
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

fn batch_spreads(samples: &[BatchSample], lambda_full: f64, trace_full: f64) -> Vec<BatchSpread> {
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

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn std_dev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// The known Hessian of a linear model (`hidden = []`) with squared error on linear_regression.
fn linear_reference(
    cfg: &Config,
    mlp: &Mlp,
    data: &Dataset,
    lambda_max: f64,
    lambda_min: f64,
    trace: f64,
) -> Result<Option<LinearReference>> {
    if cfg.data.kind != DataKind::LinearRegression || mlp.layers() != 1 {
        return Ok(None);
    }
    let k = mlp.outputs() as f64;
    let eig = data::hessian_eigenvalues(&cfg.data);
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

fn write_outputs(
    dir: &Path,
    s: &CurvatureSummary,
    density: &super::Density,
    samples: &[BatchSample],
) -> Result<()> {
    let text = serde_json::to_string_pretty(s)
        .map_err(|e| CurvatureError::Setup(format!("serialising summary.json: {e}")))?;
    write_atomic(&dir.join("summary.json"), text.as_bytes())?;
    let rows: Vec<Vec<Cell>> = density
        .grid
        .iter()
        .zip(&density.density)
        .map(|(&t, &p)| vec![Cell::Num(t), Cell::Num(p)])
        .collect();
    write_csv(&dir.join("density.csv"), &["eigenvalue", "density"], &rows)?;
    let peak = density.density.iter().copied().fold(0.0, f64::max);
    let floor = peak * 1e-8;
    let pts: Vec<(f64, f64)> =
        density.grid.iter().copied().zip(density.density.iter().copied()).collect();
    let logpts: Vec<(f64, f64)> = pts.iter().map(|&(t, p)| (t, p.max(floor))).collect();
    let title = format!(
        "Hessian spectral density (SLQ, {} runs × {} steps, σ = {})",
        s.slq.runs,
        s.lanczos.steps,
        fmt_sig(density.sigma, 2)
    );
    panels_plot(
        &dir.join("density.svg"),
        &[
            Panel {
                spec: PlotSpec::new(title, "eigenvalue", "density"),
                series: vec![Series::new("density", pts)],
            },
            Panel {
                spec: PlotSpec::new(
                    format!(
                        "log scale: λmax {}, λmin {}, negative mass {}",
                        fmt_sig(s.lambda_max, 3),
                        fmt_sig(s.lambda_min, 3),
                        fmt_sig(s.negative_mass, 2)
                    ),
                    "eigenvalue",
                    "density",
                )
                .log_y(),
                series: vec![Series::new("density", logpts)],
            },
        ],
    )?;
    if !samples.is_empty() {
        let rows: Vec<Vec<Cell>> = samples
            .iter()
            .map(|x| {
                vec![
                    Cell::from(x.batch),
                    Cell::from(x.repeat),
                    Cell::Num(x.lambda_max),
                    Cell::Num(x.trace),
                    Cell::Num(x.grad_norm_sq),
                    Cell::Num(x.grad_rel_error),
                    x.newton_rel_error.map_or(Cell::Empty, Cell::Num),
                ]
            })
            .collect();
        write_csv(
            &dir.join("batches.csv"),
            &[
                "batch",
                "repeat",
                "lambda_max",
                "trace",
                "grad_norm_sq",
                "grad_rel_error",
                "newton_rel_error",
            ],
            &rows,
        )?;
        let series = |name: &str, f: &dyn Fn(&BatchSpread) -> f64| {
            Series::new(name, s.batches.iter().map(|x| (x.batch as f64, f(x))).collect())
        };
        let mut lines = vec![
            series("λmax (rel. RMS error)", &|x| x.lambda_max_rel_rmse),
            series("trace (rel. RMS error)", &|x| x.trace_rel_rmse),
            series("gradient ‖g_B − g‖/‖g‖", &|x| x.grad_rel_error_mean),
        ];
        if s.batches.iter().any(|x| x.newton_rel_error_mean.is_some()) {
            lines.push(series("Newton step ‖H_B⁻¹g_B − H⁻¹g‖/‖H⁻¹g‖", &|x| {
                x.newton_rel_error_mean.unwrap_or(f64::NAN)
            }));
        }
        line_plot(
            &dir.join("batch_spread.svg"),
            &PlotSpec::new(
                "Estimates on random batches vs the whole set",
                "batch size",
                "relative error",
            )
            .log2_x()
            .log_y(),
            &lines,
        )?;
    }
    Ok(())
}

/// The terminal summary.
pub fn terminal_summary(s: &CurvatureSummary) -> String {
    let f = |v: f64| fmt_sig(v, 4);
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), f);
    let mut out = String::new();
    out.push_str(&format!("device:          {}\n", s.device));
    out.push_str(&format!(
        "model:           {:?} {} / {}, {} parameters\n",
        s.sizes, s.activation, s.loss_kind, s.params
    ));
    out.push_str(&format!("examples:        {} (mean loss {})\n", s.examples, f(s.loss)));
    let mut t = Table::new(["quantity", "value", "note"]);
    t.row([
        "λmax".to_string(),
        f(s.lambda_max),
        format!(
            "power {} ({} steps), Lanczos top {}",
            f(s.power.lambda_max),
            s.power.iterations,
            opt(s.top_eigenvalues.first().copied())
        ),
    ]);
    t.row(["λmin".to_string(), f(s.lambda_min), "smallest Ritz value".to_string()]);
    t.row([
        "top eigenvalues".to_string(),
        s.top_eigenvalues.iter().map(|&v| f(v)).collect::<Vec<_>>().join(" "),
        String::new(),
    ]);
    t.row([
        "trace".to_string(),
        f(s.trace),
        format!("± {} ({} probes)", fmt_sig(s.trace_std_error, 2), s.trace_samples),
    ]);
    t.row(["gᵀg".to_string(), f(s.grad_norm_sq), String::new()]);
    t.row(["gᵀHg".to_string(), f(s.g_t_h_g), format!("ε* = gᵀg/gᵀHg = {}", opt(s.epsilon_star))]);
    t.row(["2/λmax".to_string(), opt(s.lr_stable_max), "largest stable SGD learning rate".to_string()]);
    t.row([
        "negative mass".to_string(),
        f(s.negative_mass),
        format!(
            "eigenvalues below −{} = −1e-4·max|λ| (Ritz nodes within 10× that of 0 count as 0)",
            fmt_sig(s.negative_threshold, 2)
        ),
    ]);
    t.row([
        "condition".to_string(),
        s.condition_estimate.map_or_else(|| "∞ (singular within tolerance)".to_string(), f),
        "λmax / |λ| of smallest magnitude found".to_string(),
    ]);
    t.row([
        "HVP / gradient".to_string(),
        format!("{:.2}×", s.hvp_over_grad_time),
        format!("R-passes alone {:.2}× (batch {})", s.hvp_prepared_over_grad_time, s.timing.rows),
    ]);
    out.push_str(&t.render());
    if let Some(r) = &s.reference {
        out.push_str(&format!(
            "closed form:     λmax {} (rel. error {}), λmin {}, trace {} (rel. error {})\n",
            f(r.closed_form_lambda_max),
            fmt_sig(r.lambda_max_rel_error_closed_form, 2),
            f(r.closed_form_lambda_min),
            f(r.closed_form_trace),
            fmt_sig(r.trace_rel_error_closed_form, 2)
        ));
        out.push_str(&format!(
            "empirical H:     λmax {} (rel. error {}), λmin {} (rel. error {}), trace {} (rel. error {})\n",
            opt(r.empirical_lambda_max),
            opt(r.lambda_max_rel_error_empirical),
            opt(r.empirical_lambda_min),
            opt(r.lambda_min_rel_error_empirical),
            f(r.empirical_trace),
            fmt_sig(r.trace_rel_error_empirical, 2)
        ));
    }
    if !s.batches.is_empty() {
        let mut t = Table::new([
            "batch",
            "λmax mean",
            "λmax std",
            "λmax rel err",
            "trace mean",
            "trace rel err",
            "grad rel err",
            "Newton rel err",
        ]);
        for x in &s.batches {
            t.row([
                x.batch.to_string(),
                f(x.lambda_max_mean),
                f(x.lambda_max_std),
                fmt_sig(x.lambda_max_rel_rmse, 3),
                f(x.trace_mean),
                fmt_sig(x.trace_rel_rmse, 3),
                fmt_sig(x.grad_rel_error_mean, 3),
                x.newton_rel_error_mean.map_or_else(|| "-".to_string(), |v| fmt_sig(v, 3)),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

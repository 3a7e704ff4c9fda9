//! `batchscope curvature`: check the options, analyse the Hessian, write `config.toml`,
//! `summary.json`, `density.csv` and `density.svg` (SLQ spectral density), `batches.csv` and
//! `batch_spread.svg` with `--batch`, and print the summary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::output::write_config;
use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::backend::GenKind;
use crate::config::Config;
use crate::curvature::analysis::CHUNK_BUDGET_BYTES;
use crate::curvature::slq::ConditionStatus;
use crate::curvature::{
    run_curvature, BatchSample, BatchSpread, CurvatureOptions, CurvatureReport, CurvatureSummary,
    Density,
};
use crate::data;
use crate::profile::Profilable;
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, panels_plot, Panel, PlotSpec, Series};
use crate::report::rundir::create_run_dir;
use crate::report::table::{fmt_sig, Table};
use crate::schedule::admit;
use crate::schedule::host_memory::{check_host, host_limit};
use crate::train::checkpoint;

/// The most random batches per `--batch` size and Lanczos runs for the density.
pub const MAX_REPEATS: usize = 1000;
pub const MAX_SLQ_RUNS: usize = 1000;
/// The most power-iteration steps and Hutchinson probes.
pub const MAX_ITERATIONS: usize = 100_000;
/// The most Lanczos steps: each is a Hessian-vector product and, with full
/// reorthogonalisation, two passes over every earlier basis vector (PyHessian's density uses
/// about 100).
pub const MAX_LANCZOS_STEPS: usize = 10_000;

/// Lanczos steps below which the Ritz values are said to be bounds, not the spectrum's ends.
const FEW_LANCZOS_STEPS: usize = 16;

/// `batchscope curvature`.
pub fn curvature(args: &RunArgs, backend: BackendChoice, opts: &CurvatureOptions) -> anyhow::Result<()> {
    let cfg = admit::load_config(args.config.as_deref(), &args.set)?;
    super::backend::refuse_f16(&cfg, "curvature", "measures the Hessian of the f32 loss")?;
    super::output::notice_weight_decay(&cfg, "these curvature figures");
    if opts.repeats == 0 {
        bail!("--repeats must be ≥ 1");
    }
    // Counts past these are hours of Hessian-vector products, never an analysis anyone waits for.
    for (flag, value, most) in [
        ("--repeats", opts.repeats, MAX_REPEATS),
        ("--lanczos-steps", opts.lanczos_steps, MAX_LANCZOS_STEPS),
        ("--slq-runs", opts.slq_runs, MAX_SLQ_RUNS),
        ("--power-iters", opts.power_iters, MAX_ITERATIONS),
        ("--trace-samples", opts.trace_samples, MAX_ITERATIONS),
    ] {
        if value > most {
            bail!("{flag} {value} is past {most} (each is at least one Hessian-vector product)");
        }
    }
    // Zero would quietly run one (two) anyway and write a result nobody asked for (a --top-k 0
    // wrote an empty list of top eigenvalues).
    for (flag, value, least) in [
        ("--lanczos-steps", opts.lanczos_steps, 1),
        ("--slq-runs", opts.slq_runs, 1),
        ("--power-iters", opts.power_iters, 1),
        ("--trace-samples", opts.trace_samples, 2),
        ("--top-k", opts.top_k, 1),
    ] {
        if value < least {
            bail!("{flag} must be ≥ {least}, got {value}");
        }
    }
    // The top eigenvalues are Ritz values of the Lanczos run: a list past its steps held every
    // Ritz value, the negative ones included, without a word.
    if opts.top_k > opts.lanczos_steps {
        eprintln!(
            "notice: --top-k {} is past the {} Ritz values of --lanczos-steps {}: the list holds them all, the smallest included",
            opts.top_k, opts.lanczos_steps, opts.lanczos_steps
        );
    }
    if opts.lanczos_steps < FEW_LANCZOS_STEPS {
        eprintln!(
            "notice: --lanczos-steps {}: λmin, the top eigenvalues and the spectral density are \
             Ritz values of so few steps that they bound the spectrum's ends from inside (λmin from \
             above), not resolve them",
            opts.lanczos_steps
        );
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
    if let Some(n) = opts.examples {
        // Past the training set first (a request of 2^64 examples was named a host-memory
        // problem), then past the host's memory: both the flag's errors, before the run directory.
        let rows = crate::data::resolve::training_rows(&cfg)?;
        if n as u64 > rows {
            let set = super::sweep::training_set(&cfg, rows);
            bail!("--examples {n} exceeds the training set ({set})");
        }
        check_examples_fit(&cfg, n)?;
    }
    check_lanczos_fits(&cfg, opts.lanczos_steps)?;
    if let Some(p) = &opts.checkpoint {
        // Fail on a bad checkpoint before creating the run directory.
        checkpoint::load(p)?;
    }
    let opts = CurvatureOptions { progress: opts.progress && args.progress, ..opts.clone() };
    let (s, dir) =
        with_backend(backend, args.adapter.as_deref(), Curvature { cfg: &cfg, opts: &opts, args })?;
    print!("{}", terminal_summary(&s));
    println!("wrote:           {}", dir.display());
    Ok(())
}

/// Fails when `n` generated examples of `cfg`'s data cannot fit the host: they are generated
/// on the host, then uploaded whole in chunks while the host copy lives (the CPU backend's
/// buffers are host memory, and wgpu stages an upload there), with one chunk's workspace beside
/// them. A streamed dataset's training rows are not checked when its run is configured:
/// `--examples` is the analysis's own. (Files and resident data are checked with the config.)
fn check_examples_fit(cfg: &Config, n: usize) -> anyhow::Result<()> {
    let Some(spec) = data::gen_spec(&cfg.data) else {
        return Ok(());
    };
    let label = if spec.kind == GenKind::LinearRegression { cfg.data_outputs() } else { 1 };
    let words = (n as u128) * (spec.dim as u128 + label as u128);
    let bytes = words * 4 * 2 + u128::from(CHUNK_BUDGET_BYTES);
    let what = format!(
        "the Hessian's {n} examples of {} features (on the host and in the backend's buffers)",
        spec.dim
    );
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    check_host(&what, bytes, host_limit()).map_err(|e| anyhow::anyhow!("{e} (--examples N for fewer)"))
}

/// The Lanczos basis (`min(steps, parameters)` vectors of every parameter, f32) with the
/// operator's working vectors (parameters, gradient, the R-passes' sets and the f64 Lanczos
/// vectors: the model itself was not counted, and a 0.9 G-parameter model aborted the
/// process) against the host's memory.
fn check_lanczos_fits(cfg: &Config, steps: usize) -> anyhow::Result<()> {
    let params = crate::model::Mlp::new(cfg.mlp_spec())?.num_params();
    let working = crate::schedule::run_memory::param_vectors_bytes(cfg, 6, 4)?;
    let bytes = (steps.min(params) as u128) * (params as u128) * 4 + u128::from(working);
    let what = format!(
        "the Lanczos basis ({} vectors of {params} parameters) and the Hessian-vector product's working vectors",
        steps.min(params)
    );
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    check_host(&what, bytes, host_limit())
        .map_err(|e| anyhow::anyhow!("{e} (--lanczos-steps N for fewer)"))
}

/// The run directory, the analysis and its files.
struct Curvature<'a> {
    cfg: &'a Config,
    opts: &'a CurvatureOptions,
    args: &'a RunArgs,
}

impl BackendTask for Curvature<'_> {
    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        self.cfg.gpu.autotune
    }

    type Output = (CurvatureSummary, PathBuf);

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<Self::Output> {
        let dir = create_run_dir(self.args.out.as_deref(), "curvature")?;
        write_config(&dir, &self.cfg.to_toml())?;
        let analyse = || -> anyhow::Result<CurvatureSummary> {
            let CurvatureReport { summary, density, samples } = run_curvature(b, self.cfg, self.opts)?;
            write_outputs(&dir, &summary, &density, &samples)?;
            Ok(summary)
        };
        let s = analyse().with_context(|| format!("curvature (run directory {})", dir.display()))?;
        Ok((s, dir))
    }
}

fn write_outputs(
    dir: &Path,
    s: &CurvatureSummary,
    density: &Density,
    samples: &[BatchSample],
) -> anyhow::Result<()> {
    crate::report::jsonl::write_pretty(&dir.join("summary.json"), s)?;
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

/// The `condition` row: the number (or its lower bound) and the Ritz value that decided it.
fn condition_row(s: &CurvatureSummary, f: &dyn Fn(f64) -> String) -> [String; 3] {
    let ritz =
        format!("{} ± {}", fmt_sig(s.condition_ritz_value, 4), fmt_sig(s.condition_ritz_residual, 2));
    let (value, note) = match (s.condition_status, s.condition_estimate) {
        (ConditionStatus::Converged, Some(k)) => {
            (f(k), format!("λmax / |θ|, θ = {ritz} the Ritz value of smallest magnitude, converged"))
        }
        (ConditionStatus::LowerBound, Some(k)) => (
            format!("≥ {}", f(k)),
            format!("λmax / |θ|, θ = {ritz} not converged: κ is at least this (more --lanczos-steps)"),
        ),
        (ConditionStatus::Singular, _) => (
            "∞ (singular within tolerance)".to_string(),
            format!(
                "a converged Ritz value θ = {ritz} within {} of 0",
                fmt_sig(s.negative_threshold, 2)
            ),
        ),
        _ => (
            "unresolved".to_string(),
            format!("θ = {ritz} may hide an eigenvalue at 0, or not (more --lanczos-steps)"),
        ),
    };
    ["condition".to_string(), value, note]
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
    let lambda_min_residual = s.lanczos.ritz_residuals.first().copied().unwrap_or(f64::NAN);
    t.row([
        "λmin".to_string(),
        f(s.lambda_min),
        format!("smallest Ritz value (± {})", fmt_sig(lambda_min_residual, 2)),
    ]);
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
            "{}eigenvalues below −{} = −1e-4·max|λ| (Ritz nodes within 10× that of 0 count as 0)",
            s.negative_mass_se.map_or(String::new(), |se| format!(
                "± {} over {} SLQ runs; ",
                fmt_sig(se, 2),
                s.slq.runs
            )),
            fmt_sig(s.negative_threshold, 2)
        ),
    ]);
    t.row(condition_row(s, &f));
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

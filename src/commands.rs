//! The commands behind the CLI: open a backend, run, write the run directory, print a summary.
//! Each returns an error the binary prints as `error: ...` with exit code 2.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuBackend;
use crate::backend::BackendError;
use crate::config::{BatchSize, Config};
use crate::profile::{sweep_util, Profilable};
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::{create_run_dir, open_resume_dir, write_atomic};
use crate::report::table::Table;
use crate::schedule::sweep::{run_sweep, run_sweep_monitored, SweepReport, SweepRow};
use crate::schedule::{choose, knee, predicted_time_curve, Policy};
use crate::train::{run_train, TrainOptions};

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Gpu,
    Cpu,
}

/// An open backend of either kind.
pub enum AnyBackend {
    Cpu(CpuBackend),
    Gpu(Box<GpuBackend>),
}

/// Open the backend: `auto` falls back to the CPU with a notice when no GPU adapter exists.
pub fn open_backend(choice: BackendChoice, adapter: Option<&str>) -> anyhow::Result<AnyBackend> {
    match choice {
        BackendChoice::Cpu => Ok(AnyBackend::Cpu(CpuBackend::new())),
        BackendChoice::Gpu => Ok(AnyBackend::Gpu(Box::new(GpuBackend::new(adapter)?))),
        BackendChoice::Auto => match GpuBackend::new(adapter) {
            Ok(g) => Ok(AnyBackend::Gpu(Box::new(g))),
            Err(e @ BackendError::AdapterNotFound { .. }) => Err(e.into()),
            Err(e) => {
                eprintln!("notice: no usable GPU ({e}); running on the CPU backend");
                Ok(AnyBackend::Cpu(CpuBackend::new()))
            }
        },
    }
}

/// Shared options of the commands that take a config.
#[derive(Clone, Debug, Default)]
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub set: Vec<String>,
    pub adapter: Option<String>,
    pub out: Option<PathBuf>,
    pub progress: bool,
}

fn write_config(dir: &Path, cfg: &Config) -> anyhow::Result<()> {
    write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    Ok(())
}

fn write_json(path: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v).context("serialising summary")?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

// ---- train ------------------------------------------------------------------------------------

/// `batchscope train`.
pub fn train(
    args: &RunArgs,
    backend: BackendChoice,
    init: Option<PathBuf>,
    resume: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (mut cfg, dir) = match &resume {
        Some(run) => {
            let dir = open_resume_dir(run)?;
            let cfg_path = dir.join("config.toml");
            if !cfg_path.exists() {
                bail!("--resume {}: no config.toml there (is it a train run directory?)", dir.display());
            }
            if !dir.join("last.safetensors").exists() {
                bail!("--resume {}: no last.safetensors checkpoint there", dir.display());
            }
            (Config::load(Some(&cfg_path), &args.set)?, dir)
        }
        None => {
            let cfg = Config::load(args.config.as_deref(), &args.set)?;
            if let Some(p) = &init {
                // Fail on a bad --init before creating the run directory.
                crate::train::checkpoint::load(p)?;
            }
            let dir = create_run_dir(args.out.as_deref(), "train")?;
            (cfg, dir)
        }
    };
    let b = open_backend(backend, args.adapter.as_deref())?;
    if cfg.train.batch_size == BatchSize::Auto {
        let policy: Policy =
            cfg.sweep.policy.parse().map_err(|e| anyhow::anyhow!("sweep.policy: {e}"))?;
        eprintln!(
            "train.batch_size = \"auto\": sweeping {}..{} with policy {policy}",
            cfg.sweep.min_batch, cfg.sweep.max_batch
        );
        let report = match &b {
            AnyBackend::Cpu(c) => run_sweep(c, &cfg, &mut |_| {})?,
            AnyBackend::Gpu(g) => run_sweep(g.as_ref(), &cfg, &mut |_| {})?,
        };
        let choice = choose(&policy, &report.points())?;
        eprintln!("chosen batch size {} ({})", choice.batch, choice.reason);
        cfg.train.batch_size = BatchSize::Fixed(choice.batch);
    }
    if resume.is_none() {
        write_config(&dir, &cfg)?;
    }
    let opts = TrainOptions { init, resume: resume.is_some(), progress: args.progress };
    eprintln!("run directory: {}", dir.display());
    let summary = match &b {
        AnyBackend::Cpu(c) => run_train(c, &cfg, &opts, &dir)?,
        AnyBackend::Gpu(g) => run_train(g.as_ref(), &cfg, &opts, &dir)?,
    };
    println!("device:          {}", summary.device);
    println!(
        "steps:           {} ({} examples, {} epochs)",
        summary.steps, summary.examples_seen, summary.epochs_completed
    );
    println!("stopped:         {}", summary.stopped_reason);
    if let Some(l) = summary.final_train_loss {
        println!("train loss:      {l:.4} (last logged minibatch)");
    }
    if let (Some(l), Some(e)) = (summary.final_val_loss, summary.final_val_error) {
        println!("validation:      loss {l:.4}, 0-1 error {:.2}%", 100.0 * e);
    } else if let Some(l) = summary.final_val_loss {
        println!("validation:      loss {l:.5}");
    }
    if let (Some(e), Some(s)) = (summary.best_val_error, summary.best_step) {
        println!(
            "best val error:  {:.2}% at step {s}{}",
            100.0 * e,
            if summary.restored_best { " (restored)" } else { "" }
        );
    }
    println!(
        "throughput:      {:.0} examples/s over {:.1} s",
        summary.examples_per_s, summary.elapsed_s
    );
    println!("wrote:           {}", dir.display());
    Ok(())
}

// ---- sweep ------------------------------------------------------------------------------------

fn sweep_on<B: Profilable>(b: &B, cfg: &Config, progress: bool) -> anyhow::Result<SweepReport> {
    // NVML utilization columns (issue #12): one notice line where NVML is absent.
    let (mut monitor, notice) = sweep_util::open_monitor(b);
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let n = crate::schedule::powers_of_two(cfg.sweep.min_batch, cfg.sweep.max_batch).len() as u64;
    let bar = if progress { indicatif::ProgressBar::new(n) } else { indicatif::ProgressBar::hidden() };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} batch sizes {msg}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(format!("sweep {}", format!("{:?}", b.kind()).to_lowercase()));
    let report = run_sweep_monitored(
        b,
        cfg,
        &mut |row| {
            bar.inc(1);
            match &row.skipped {
                None => bar.set_message(format!("B={} {:.0} ex/s", row.batch, row.examples_per_s)),
                Some(_) => bar.set_message(format!("B={} skipped", row.batch)),
            }
        },
        &mut monitor,
    )?;
    bar.finish_and_clear();
    Ok(report)
}

fn row_cells(r: &SweepRow) -> Vec<Cell> {
    let num = |v: f64| if v.is_finite() { Cell::Num(v) } else { Cell::Empty };
    vec![
        Cell::Text(r.backend.clone()),
        Cell::Int(r.batch as i64),
        num(r.ms_per_step_median),
        num(r.ms_min),
        num(r.ms_max),
        num(r.examples_per_s),
        num(r.gflops),
        num(r.fraction_of_peak),
        num(r.host_overhead_ms),
        Cell::Int(r.bytes_predicted as i64),
        Cell::Text(r.timing.into()),
        Cell::Text(r.skipped.clone().unwrap_or_default()),
    ]
    .into_iter()
    .chain(sweep_util::util_cells(r))
    .collect()
}

const SWEEP_HEADER: [&str; 17] = [
    "backend",
    "batch",
    "ms_per_step_median",
    "ms_min",
    "ms_max",
    "examples_per_s",
    "gflops",
    "fraction_of_peak",
    "host_overhead_ms",
    "bytes_predicted",
    "timing",
    "skipped",
    // sweep_util::UTIL_HEADER
    "gpu_util_pct",
    "sm_clock_mhz",
    "power_w",
    "mem_used_mib",
    "mem_predicted_mib",
];

fn sweep_table(r: &SweepReport) -> String {
    let mut t = Table::new([
        "B",
        "ms/step",
        "min",
        "max",
        "examples/s",
        "GFLOP/s",
        "% peak",
        "host ms",
        "MiB",
        "note",
    ]);
    for row in &r.rows {
        match &row.skipped {
            Some(reason) => {
                t.row([
                    row.batch.to_string(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("{:.1}", row.bytes_predicted as f64 / 1048576.0),
                    format!("skipped: {reason}"),
                ]);
            }
            None => {
                t.row([
                    row.batch.to_string(),
                    format!("{:.3}", row.ms_per_step_median),
                    format!("{:.3}", row.ms_min),
                    format!("{:.3}", row.ms_max),
                    format!("{:.0}", row.examples_per_s),
                    format!("{:.1}", row.gflops),
                    format!("{:.1}", 100.0 * row.fraction_of_peak),
                    format!("{:.3}", row.host_overhead_ms),
                    format!("{:.1}", row.bytes_predicted as f64 / 1048576.0),
                    row.timing.to_string(),
                ]);
            }
        }
    }
    t.render()
}

fn series_of(r: &SweepReport, name: &str, f: impl Fn(&SweepRow) -> f64) -> Series {
    Series {
        name: name.to_string(),
        points: r
            .rows
            .iter()
            .filter(|row| row.skipped.is_none())
            .map(|row| (row.batch as f64, f(row)))
            .collect(),
    }
}

fn sweep_args(
    cfg: &mut Config,
    min_batch: Option<usize>,
    max_batch: Option<usize>,
    policy: Option<&str>,
) -> anyhow::Result<Policy> {
    if let Some(m) = min_batch {
        cfg.sweep.min_batch = m;
    }
    if let Some(m) = max_batch {
        cfg.sweep.max_batch = m;
    }
    if let Some(p) = policy {
        cfg.sweep.policy = p.to_string();
    }
    if cfg.sweep.min_batch == 0 || cfg.sweep.max_batch < cfg.sweep.min_batch {
        bail!(
            "batch range {}..{} is empty (need 1 ≤ --min-batch ≤ --max-batch)",
            cfg.sweep.min_batch,
            cfg.sweep.max_batch
        );
    }
    if cfg.sweep.policy == TIME_TO_TARGET_AUTO {
        // Resolved after the backend opens (B_noise is measured there); validate the rest now.
        return Ok(Policy::TimeToTarget { b_noise: 0.0 });
    }
    let mut policy: Policy =
        cfg.sweep.policy.parse().map_err(|e| anyhow::anyhow!("sweep.policy: {e}"))?;
    if let Policy::Knee { fraction } = &mut policy {
        if cfg.sweep.policy == "knee" {
            *fraction = cfg.sweep.knee_fraction;
        }
    }
    Ok(policy)
}

/// `time_to_target` with B_noise measured at the config's initialisation by `noise`.
const TIME_TO_TARGET_AUTO: &str = "time_to_target:auto";

/// B_noise of the config's model at initialisation on backend `b` (gradient noise and
/// full-data Hessian-vector products; see `batchscope noise`).
fn measure_b_noise<B: crate::backend::Backend>(b: &B, cfg: &Config) -> anyhow::Result<f64> {
    let args = crate::noise::command::NoiseArgs {
        checkpoint: None,
        max_n: 1,
        draws: 32,
        seed: 1,
        curvature: true,
    };
    let s = crate::noise::command::measure(b, cfg, &args)?;
    s.b_noise.ok_or_else(|| {
        anyhow::anyhow!(
            "B_noise could not be measured (GᵀHG ≤ 0 at initialisation); give time_to_target:B_NOISE"
        )
    })
}

/// `batchscope sweep`.
pub fn sweep(
    args: &RunArgs,
    backend: BackendChoice,
    min_batch: Option<usize>,
    max_batch: Option<usize>,
    policy: Option<&str>,
) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.config.as_deref(), &args.set)?;
    let mut policy = sweep_args(&mut cfg, min_batch, max_batch, policy)?;
    let b = open_backend(backend, args.adapter.as_deref())?;
    if cfg.sweep.policy == TIME_TO_TARGET_AUTO {
        let bn = match &b {
            AnyBackend::Cpu(c) => measure_b_noise(c, &cfg)?,
            AnyBackend::Gpu(g) => measure_b_noise(g.as_ref(), &cfg)?,
        };
        eprintln!("measured B_noise = {bn:.1} at initialisation");
        policy = Policy::TimeToTarget { b_noise: bn };
    }
    let dir = create_run_dir(args.out.as_deref(), "sweep")?;
    write_config(&dir, &cfg)?;
    let report = match &b {
        AnyBackend::Cpu(c) => sweep_on(c, &cfg, args.progress)?,
        AnyBackend::Gpu(g) => sweep_on(g.as_ref(), &cfg, args.progress)?,
    };
    let points = report.points();
    let choice = choose(&policy, &points);
    let knee_b = knee(&points, cfg.sweep.knee_min_gain);
    let rows: Vec<Vec<Cell>> = report.rows.iter().map(row_cells).collect();
    write_csv(&dir.join("sweep.csv"), &SWEEP_HEADER, &rows)?;
    let by_policy: Vec<serde_json::Value> = ["max_throughput", "knee", "largest_fit"]
        .iter()
        .filter_map(|p| {
            let pol: Policy = p.parse().ok()?;
            let c = choose(&pol, &points).ok()?;
            Some(serde_json::json!({"policy": p, "batch": c.batch, "examples_per_s": c.examples_per_s, "reason": c.reason}))
        })
        .collect();
    let summary = serde_json::json!({
        "command": "sweep",
        "backend": report.backend,
        "device": report.device,
        "model": report.model,
        "peak_gflops": report.peak_gflops,
        "peak_probe": report.peak_probe,
        "policy": policy.to_string(),
        "chosen_batch": choice.as_ref().ok().map(|c| c.batch),
        "chosen_reason": choice.as_ref().map(|c| c.reason.clone()).unwrap_or_else(|e| e.to_string()),
        "knee_batch": knee_b,
        "knee_min_gain": cfg.sweep.knee_min_gain,
        "by_policy": by_policy,
        "rows": report.rows,
    });
    write_json(&dir.join("summary.json"), &summary)?;
    let dev = &report.device;
    line_plot(
        &dir.join("throughput.svg"),
        &PlotSpec::new(format!("Throughput vs batch size — {dev}"), "batch size", "examples/s")
            .log2_x()
            .log_y(),
        &[series_of(&report, "examples/s", |r| r.examples_per_s)],
    )?;
    line_plot(
        &dir.join("utilization.svg"),
        &PlotSpec::new(
            format!("Fraction of measured peak ({:.1} GFLOP/s) — {dev}", report.peak_gflops),
            "batch size",
            "fraction of peak",
        )
        .log2_x(),
        &[series_of(&report, "achieved / peak", |r| r.fraction_of_peak)],
    )?;
    line_plot(
        &dir.join("ms_per_step.svg"),
        &PlotSpec::new(format!("Time per step — {dev}"), "batch size", "ms / step").log2_x().log_y(),
        &[
            series_of(&report, "median", |r| r.ms_per_step_median),
            series_of(&report, "min", |r| r.ms_min),
            series_of(&report, "max", |r| r.ms_max),
        ],
    )?;
    sweep_util::util_plot(&dir.join("gpu_utilization.svg"), dev, &report.rows)?;
    if let Policy::TimeToTarget { b_noise } = policy {
        let curve = predicted_time_curve(&points, b_noise);
        line_plot(
            &dir.join("time_to_target.svg"),
            &PlotSpec::new(
                format!("Predicted time to target, B_noise = {b_noise}"),
                "batch size",
                "relative time",
            )
            .log2_x(),
            &[Series {
                name: "T(B) / min".into(),
                points: curve.iter().map(|&(b, t)| (b as f64, t)).collect(),
            }],
        )?;
    }
    println!(
        "{} — model {:?}, peak {:.1} GFLOP/s ({})",
        report.device, report.model, report.peak_gflops, report.peak_probe
    );
    print!("{}", sweep_table(&report));
    print!("{}", sweep_util::util_table(&report.rows));
    if let Some(k) = knee_b {
        println!(
            "knee: B = {k} (doubling past it gains < {:.0}% throughput)",
            100.0 * cfg.sweep.knee_min_gain
        );
    }
    match choice {
        Ok(c) => println!("chosen batch size ({policy}): {} — {}", c.batch, c.reason),
        Err(e) => println!("no batch size chosen: {e}"),
    }
    println!("wrote: {}", dir.display());
    Ok(())
}

// ---- compare ----------------------------------------------------------------------------------

/// `batchscope compare`: the same sweep on the GPU and the CPU backend, side by side.
pub fn compare(
    args: &RunArgs,
    min_batch: Option<usize>,
    max_batch: Option<usize>,
) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.config.as_deref(), &args.set)?;
    sweep_args(&mut cfg, min_batch, max_batch, None)?;
    let gpu = GpuBackend::new(args.adapter.as_deref())?;
    let cpu = CpuBackend::new();
    let dir = create_run_dir(args.out.as_deref(), "compare")?;
    write_config(&dir, &cfg)?;
    let g = sweep_on(&gpu, &cfg, args.progress)?;
    drop(gpu);
    let c = sweep_on(&cpu, &cfg, args.progress)?;
    let mut rows: Vec<Vec<Cell>> = g.rows.iter().map(row_cells).collect();
    rows.extend(c.rows.iter().map(row_cells));
    write_csv(&dir.join("sweep.csv"), &SWEEP_HEADER, &rows)?;

    let mut t = Table::new(["B", "GPU ex/s", "CPU ex/s", "speedup", "GPU ms", "CPU ms"]);
    let mut speedups = Vec::new();
    let mut crossover = None;
    for (gr, cr) in g.rows.iter().zip(&c.rows) {
        let ok = gr.skipped.is_none() && cr.skipped.is_none();
        let s = if ok { gr.examples_per_s / cr.examples_per_s } else { f64::NAN };
        if ok && s > 1.0 && crossover.is_none() {
            crossover = Some(gr.batch);
        }
        if ok {
            speedups.push((gr.batch as f64, s));
        }
        let fmt = |r: &SweepRow, f: &dyn Fn(&SweepRow) -> String| {
            if r.skipped.is_none() {
                f(r)
            } else {
                "skipped".into()
            }
        };
        t.row([
            gr.batch.to_string(),
            fmt(gr, &|r| format!("{:.0}", r.examples_per_s)),
            fmt(cr, &|r| format!("{:.0}", r.examples_per_s)),
            if ok { format!("{s:.2}x") } else { "-".into() },
            fmt(gr, &|r| format!("{:.3}", r.ms_per_step_median)),
            fmt(cr, &|r| format!("{:.3}", r.ms_per_step_median)),
        ]);
    }
    let summary = serde_json::json!({
        "command": "compare",
        "gpu": {"device": g.device, "peak_gflops": g.peak_gflops},
        "cpu": {"device": c.device, "peak_gflops": c.peak_gflops},
        "model": g.model,
        "crossover_batch": crossover,
        "speedup": speedups.iter().map(|&(b, s)| serde_json::json!({"batch": b as usize, "gpu_over_cpu": s})).collect::<Vec<_>>(),
        "gpu_rows": g.rows,
        "cpu_rows": c.rows,
    });
    write_json(&dir.join("summary.json"), &summary)?;
    line_plot(
        &dir.join("compare.svg"),
        &PlotSpec::new("GPU vs CPU throughput", "batch size", "examples/s").log2_x().log_y(),
        &[
            series_of(&g, &format!("GPU: {}", g.device), |r| r.examples_per_s),
            series_of(&c, &format!("CPU: {}", c.device), |r| r.examples_per_s),
        ],
    )?;
    line_plot(
        &dir.join("speedup.svg"),
        &PlotSpec::new("GPU speedup over the CPU backend", "batch size", "GPU / CPU examples/s")
            .log2_x(),
        &[Series { name: "speedup".into(), points: speedups.clone() }],
    )?;
    println!("GPU: {} | CPU: {} | model {:?}", g.device, c.device, g.model);
    print!("{}", t.render());
    match crossover {
        Some(b) => println!("crossover: the GPU is faster from B = {b}"),
        None => println!("crossover: the GPU is not faster than the CPU at any measured B"),
    }
    println!("wrote: {}", dir.display());
    Ok(())
}

// ---- overlay ----------------------------------------------------------------------------------

/// `batchscope overlay`: one metrics.jsonl field of several train runs on one SVG, against
/// examples seen (e.g. validation 0-1 error of three shuffle modes).
pub fn overlay(
    runs: &[PathBuf],
    field: &str,
    labels: &[String],
    out: &Path,
    log_y: bool,
) -> anyhow::Result<()> {
    if runs.is_empty() {
        bail!("overlay needs at least one run directory");
    }
    if !labels.is_empty() && labels.len() != runs.len() {
        bail!("--label given {} times for {} runs", labels.len(), runs.len());
    }
    let mut series = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let path = run.join("metrics.jsonl");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut points = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
            let x = v.get("examples_seen").and_then(|x| x.as_f64());
            let y = v.get(field).and_then(|y| y.as_f64());
            if let (Some(x), Some(y)) = (x, y) {
                points.push((x, y));
            }
        }
        if points.is_empty() {
            bail!("{}: no values of `{field}`", path.display());
        }
        let name = labels.get(i).cloned().unwrap_or_else(|| run.display().to_string());
        series.push(Series { name, points });
    }
    let mut spec = PlotSpec::new(field.replace('_', " "), "examples seen", field);
    if log_y {
        spec = spec.log_y();
    }
    line_plot(out, &spec, &series)?;
    println!("wrote: {}", out.display());
    Ok(())
}

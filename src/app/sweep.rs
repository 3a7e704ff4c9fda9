//! `batchscope sweep`: time power-of-two batch sizes, pick one by policy, write the CSV, the
//! summary and the plots.

use std::path::PathBuf;

use anyhow::bail;

use super::output::{write_config, write_summary};
pub(super) use super::stability_note::stability_note;
use super::sweep_workers::{print_workers, sweep_workers};
use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::config::{check_worker_counts, Config};
use crate::profile::sampler::UtilMonitor;
use crate::profile::{sweep_util, Profilable};
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::progress::batch_work;
use crate::report::rundir::create_run_dir;
use crate::report::table::Table;
use crate::schedule::admit;
use crate::schedule::sweep::{run_sweep_at_peak, SweepReport, SweepRow, Timed};
use crate::schedule::timing_stats::{choice_stability, Resampling};
use crate::schedule::{choose, knee, predicted_time_curve, Policy};

/// `batchscope sweep`.
pub fn sweep(
    args: &RunArgs,
    backend: BackendChoice,
    min_batch: Option<usize>,
    max_batch: Option<usize>,
    policy: Option<&str>,
    workers: &[usize],
    precisions: &[String],
) -> anyhow::Result<()> {
    if precisions.len() > 1 {
        if !workers.is_empty() {
            bail!("--workers with --precision {}: sweep one precision at a time", precisions.join(","));
        }
        let range = (min_batch, max_batch);
        return super::sweep_precision::sweep_precisions(args, backend, range, policy, precisions);
    }
    let mut cfg = admit::load_config(args.config.as_deref(), &args.set)?;
    let notice = sweep_args(&mut cfg, min_batch, max_batch, policy)?;
    check_worker_counts(workers).map_err(anyhow::Error::msg)?;
    notice.iter().for_each(|n| eprintln!("{n}"));
    let (report, (policy, b_noise_se), dir) =
        with_backend(backend, args.adapter.as_deref(), Sweep { cfg: &cfg, args })?;
    let points = report.points();
    let choice = choose(&policy, &points);
    let resampling = Resampling::seeded(cfg.train.seed).with_b_noise_se(b_noise_se);
    let stability = choice_stability(&policy, &report.timed_points(), &resampling);
    let knee_b = knee(&points, cfg.sweep.knee_min_gain);
    let rows: Vec<Vec<Cell>> = report.rows.iter().map(row_cells).collect();
    write_csv(&dir.join("sweep.csv"), &SWEEP_HEADER, &rows)?;
    // Each policy at this run's settings (`knee` at `sweep.knee_fraction`, as the run's own
    // `knee` is; it said 0.9 whatever the fraction), and the run's policy when it is another
    // (`time_to_target:B`, a `knee:F` of its own).
    let mut policies = vec![
        Policy::MaxThroughput,
        Policy::Knee { fraction: cfg.sweep.knee_fraction },
        Policy::LargestFit,
    ];
    if !policies.iter().any(|p| p.to_string() == policy.to_string()) {
        policies.push(policy);
    }
    let by_policy: Vec<serde_json::Value> = policies
        .iter()
        .filter_map(|pol| {
            let c = choose(pol, &points).ok()?;
            Some(serde_json::json!({"policy": pol.to_string(), "batch": c.batch, "examples_per_s": c.examples_per_s, "reason": c.reason}))
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
        // `knee_batch` is the old name of `diminishing_returns_batch` (kept for readers of v1); it is
        // not the `knee` policy's pick (README says so).
        "knee_batch": knee_b,
        "diminishing_returns_batch": knee_b,
        "knee_min_gain": cfg.sweep.knee_min_gain,
        "by_policy": by_policy,
        "choice_stability": stability,
        "rows": report.rows,
    });
    let scaling = match workers.is_empty() {
        true => None,
        false => Some(sweep_workers(&cfg, args, backend, workers, &policy, &dir)?),
    };
    let mut summary = summary;
    if let (Some(s), Some(obj)) = (&scaling, summary.as_object_mut()) {
        obj.insert("data_parallel".into(), serde_json::to_value(s)?);
    }
    write_summary(&dir, summary)?;
    plots(&report, &points, policy, &dir)?;
    println!(
        "{} — model {:?}, peak {:.1} GFLOP/s ({})",
        report.device, report.model, report.peak_gflops, report.peak_probe
    );
    print!("{}", sweep_table(&report));
    print!("{}", sweep_util::util_table(&report.rows));
    if let Some(note) = sweep_util::throttle_note(&report.rows) {
        println!("{note}");
    }
    if let Some(k) = knee_b {
        println!(
            "diminishing returns from B = {k} (doubling past it gains < {:.0}% throughput)",
            100.0 * cfg.sweep.knee_min_gain
        );
    }
    if let Ok(c) = &choice {
        println!("chosen batch size ({policy}): {} — {}", c.batch, c.reason);
    }
    if let Some(s) = &stability {
        println!("{}", stability_note(s, &cfg));
    }
    if let Some(s) = &scaling {
        print_workers(s);
    }
    println!("wrote: {}", dir.display());
    // A sweep that measured no batch size exits non-zero (its files say why each was skipped).
    match choice {
        Ok(_) => Ok(()),
        Err(e) => bail!("no batch size chosen: {e}; the table above and {} say why", dir.display()),
    }
}

/// B_noise for `time_to_target:auto`, the run directory, and the sweep.
struct Sweep<'a> {
    cfg: &'a Config,
    args: &'a RunArgs,
}

impl BackendTask for Sweep<'_> {
    type Output = (SweepReport, (Policy, Option<f64>), PathBuf);

    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        self.cfg.gpu.autotune
    }

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<Self::Output> {
        let cfg = self.cfg;
        let policy = resolve_policy(b, cfg)?;
        let dir = create_run_dir(self.args.out.as_deref(), "sweep")?;
        write_config(&dir, &cfg.to_toml())?;
        let report = sweep_on(b, cfg, self.args.progress)?;
        Ok((report, policy, dir))
    }
}

/// The config's policy, with `time_to_target:auto`'s B_noise measured on `b` (and that
/// measurement's standard error, which the pick's resampling draws B_noise with).
pub(super) fn resolve_policy<B: Timed>(b: &B, cfg: &Config) -> anyhow::Result<(Policy, Option<f64>)> {
    Ok(match cfg.sweep.policy.resolve(cfg.sweep.knee_fraction) {
        Some(p) => (p, None),
        None => {
            let (bn, se) = measure_b_noise(b, cfg)?;
            eprintln!("measured B_noise = {bn:.1}{} at initialisation", with_se(se));
            (Policy::TimeToTarget { b_noise: bn }, se)
        }
    })
}

/// B_noise of the config's model at initialisation on backend `b`, with its standard error
/// (gradient noise and full-data Hessian-vector products; see `batchscope noise`), measured as
/// `time-to-target` measures it: [`crate::noise::INIT_DRAWS`] draws seeded by `train.seed`
/// (32 draws with seed 1 fixed took the same estimate every run, 14 % under the 4000-draw one
/// on configs/time_to_target.toml).
pub(super) fn measure_b_noise<B: Timed>(b: &B, cfg: &Config) -> anyhow::Result<(f64, Option<f64>)> {
    let args = crate::noise::NoiseArgs {
        checkpoint: None,
        max_n: 1,
        draws: crate::noise::INIT_DRAWS,
        seed: cfg.train.seed,
        curvature: true,
    };
    let s = crate::noise::measure(b, cfg, &args)?;
    let bn = s.b_noise.ok_or_else(|| {
        anyhow::anyhow!(
            "B_noise could not be measured (GᵀHG ≤ 0 at initialisation); give time_to_target:B_NOISE"
        )
    })?;
    Ok((bn, s.b_noise_se))
}

/// ` ± SE (N draws)` after a B_noise, or ` (N draws)` without a standard error.
pub(super) fn with_se(se: Option<f64>) -> String {
    let draws = crate::noise::INIT_DRAWS;
    se.map_or_else(|| format!(" ({draws} draws)"), |se| format!(" ± {se:.1} ({draws} draws)"))
}

fn plots(
    report: &SweepReport,
    points: &[crate::schedule::SweepPoint],
    policy: Policy,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let dev = &report.device;
    line_plot(
        &dir.join("throughput.svg"),
        &PlotSpec::new(format!("Throughput vs batch size — {dev}"), "batch size", "examples/s")
            .log2_x()
            .log_y(),
        &[series_of(report, "examples/s", |r| r.examples_per_s)],
    )?;
    line_plot(
        &dir.join("utilization.svg"),
        &PlotSpec::new(
            format!("Fraction of measured peak ({:.1} GFLOP/s) — {dev}", report.peak_gflops),
            "batch size",
            "fraction of peak",
        )
        .log2_x(),
        &[series_of(report, "achieved / peak", |r| r.fraction_of_peak)],
    )?;
    line_plot(
        &dir.join("ms_per_step.svg"),
        &PlotSpec::new(format!("Time per step — {dev}"), "batch size", "ms / step").log2_x().log_y(),
        &[
            series_of(report, "median", |r| r.ms_per_step_median),
            series_of(report, "min", |r| r.ms_min),
            series_of(report, "max", |r| r.ms_max),
        ],
    )?;
    sweep_util::util_plot(&dir.join("gpu_utilization.svg"), dev, &report.rows)?;
    if let Policy::TimeToTarget { b_noise } = policy {
        let curve = predicted_time_curve(points, b_noise);
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
    Ok(())
}

/// Apply `--min-batch`, `--max-batch` and `--policy` to the config, and cut the range at the
/// training set (a run cannot train at a batch larger than `data.n_train`, so the sweep neither
/// times nor picks one). Returns the notice that says so when the range was cut.
pub(super) fn sweep_args(
    cfg: &mut Config,
    min_batch: Option<usize>,
    max_batch: Option<usize>,
    policy: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if let Some(m) = min_batch {
        cfg.sweep.min_batch = m;
    }
    if let Some(m) = max_batch {
        cfg.sweep.max_batch = m;
    }
    let (lo, hi) = (cfg.sweep.min_batch, cfg.sweep.max_batch);
    if lo == 0 {
        bail!("--min-batch / sweep.min_batch must be ≥ 1, got 0");
    }
    if hi < lo {
        bail!("batch range {lo}..{hi} is empty (need 1 ≤ --min-batch ≤ --max-batch)");
    }
    let rows = crate::data::resolve::training_rows(cfg)?;
    let n_train = usize::try_from(rows).unwrap_or(usize::MAX);
    let set = training_set(cfg, rows);
    if lo > n_train {
        bail!(
            "--min-batch / sweep.min_batch = {lo} is larger than the training set ({set}): no batch size a run can train at"
        );
    }
    let mut notice = None;
    if hi > n_train {
        cfg.sweep.max_batch = n_train;
        notice = Some(format!(
            "batch sizes past the training set ({set}) are not timed: a run cannot train at them"
        ));
    }
    let (lo, hi) = (cfg.sweep.min_batch, cfg.sweep.max_batch);
    if crate::config::sweep_range_problem(lo, hi).is_some() {
        bail!("batch range {lo}..{hi} (--min-batch, --max-batch) holds no power of two, the batch sizes a sweep times");
    }
    if let Some(p) = policy {
        cfg.sweep.policy = p.parse().map_err(anyhow::Error::msg)?;
    }
    Ok(notice)
}

/// The training set of `cfg` as a user sets it: `data.n_train = N`, or the rows of its files.
pub(super) fn training_set(cfg: &Config, rows: u64) -> String {
    match cfg.data.kind {
        crate::config::DataKind::Npy => format!("{rows} training rows of data.features"),
        _ => format!("data.n_train = {rows}"),
    }
}

/// The sweep with a progress bar.
pub(super) fn sweep_on<B: Profilable>(
    b: &B,
    cfg: &Config,
    progress: bool,
) -> anyhow::Result<SweepReport> {
    sweep_with(b, cfg, progress, &mut monitor_of(b))
}

/// The NVML monitor of `b`'s utilization columns, with one notice line where NVML is absent.
pub(super) fn monitor_of<B: Profilable>(b: &B) -> UtilMonitor {
    let (monitor, notice) = sweep_util::open_monitor(b);
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    monitor
}

/// [`sweep_on`] with a monitor already open (one per command, however many sweeps it runs).
pub(super) fn sweep_with<B: Profilable>(
    b: &B,
    cfg: &Config,
    progress: bool,
    monitor: &mut UtilMonitor,
) -> anyhow::Result<SweepReport> {
    let sizes = crate::schedule::powers_of_two(cfg.sweep.min_batch, cfg.sweep.max_batch);
    let rounds = cfg.sweep.rounds.max(1) as u64;
    let work = sizes.iter().map(|&s| batch_work(s)).sum::<u64>() * rounds;
    let prefix = format!("sweep {:?}", b.kind());
    let bar = crate::report::progress::work_bar(progress, work, &prefix.to_lowercase());
    let mut on_row = |row: &SweepRow| {
        // A size skipped in round 1 is not timed again: its later rounds' work goes with it.
        let times = if row.skipped.is_some() { rounds } else { 1 };
        bar.inc(batch_work(row.batch) * times);
        match &row.skipped {
            None => bar.set_message(format!("B={} {:.0} ex/s", row.batch, row.examples_per_s)),
            Some(_) => bar.set_message(format!("B={} skipped", row.batch)),
        }
    };
    let peak = sweep_util::tensor_peak(b, cfg.model.precision);
    let report = run_sweep_at_peak(b, cfg, &mut on_row, monitor, peak)?;
    bar.finish_and_clear();
    Ok(report)
}

pub(super) fn row_cells(r: &SweepRow) -> Vec<Cell> {
    let num = |v: f64| if v.is_finite() { Cell::Num(v) } else { Cell::Empty };
    vec![
        Cell::Text(r.backend.clone()),
        Cell::from(r.batch),
        num(r.ms_per_step_median),
        num(r.ms_min),
        num(r.ms_max),
        num(r.examples_per_s),
        num(r.gflops),
        num(r.fraction_of_peak),
        num(r.host_overhead_ms),
        Cell::from(r.bytes_predicted),
        Cell::Text(r.timing.into()),
        Cell::Text(r.skipped.clone().unwrap_or_default()),
    ]
    .into_iter()
    .chain(sweep_util::util_cells(r))
    .chain([Cell::from(r.rounds), num(r.ms_ci_low), num(r.ms_ci_high), num(r.ms_ci_coverage)])
    .collect()
}

pub(super) const SWEEP_HEADER: [&str; 21] = [
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
    "rounds",
    "ms_ci_low",
    "ms_ci_high",
    "ms_ci_coverage",
];

fn sweep_table(r: &SweepReport) -> String {
    let mut t = Table::new([
        "B",
        "ms/step",
        // The median's interval (`ms_ci_low`..`ms_ci_high`; the whole range up to 8 steps).
        "median CI",
        "examples/s",
        "GFLOP/s",
        "% peak",
        "host ms",
        "MiB",
        "note",
    ]);
    for row in &r.rows {
        let mib = format!("{:.1}", row.bytes_predicted as f64 / 1048576.0);
        match &row.skipped {
            Some(reason) => {
                let mut cells = vec![row.batch.to_string()];
                cells.extend(std::iter::repeat_n("-".to_string(), 6));
                cells.extend([mib, format!("skipped: {reason}")]);
                t.row(cells);
            }
            None => {
                t.row([
                    row.batch.to_string(),
                    format!("{:.3}", row.ms_per_step_median),
                    format!("{:.3}–{:.3}", row.ms_ci_low, row.ms_ci_high),
                    format!("{:.0}", row.examples_per_s),
                    format!("{:.1}", row.gflops),
                    format!("{:.1}", 100.0 * row.fraction_of_peak),
                    format!("{:.3}", row.host_overhead_ms),
                    mib,
                    row.timing.to_string(),
                ]);
            }
        }
    }
    t.render()
}

pub(super) fn series_of(r: &SweepReport, name: &str, f: impl Fn(&SweepRow) -> f64) -> Series {
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

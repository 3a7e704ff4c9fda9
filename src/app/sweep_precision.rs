//! `batchscope sweep --precision f32,f16`: the sweep once per precision on one backend, in one
//! `sweep.csv` (a `precision` column and the peak each row is divided by), one table and one
//! set of plots with a series per precision. Each precision's `% peak` is against its own peak:
//! f32 against the fp32 matmul probe, f16 against the dense f16 tensor-core figure where the
//! adapter runs f16 products on cooperative matrices (a named datasheet table), else against a
//! probe of the f16 product the step runs.

use anyhow::bail;
use std::path::{Path, PathBuf};

use super::output::{write_config, write_summary};
use super::sweep::{
    monitor_of, resolve_policy, row_cells, series_of, sweep_args, sweep_with, SWEEP_HEADER,
};
use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::config::Config;
use crate::profile::{sweep_util, Profilable};
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::create_run_dir;
use crate::report::table::Table;
use crate::schedule::admit;
use crate::schedule::sweep::SweepReport;
use crate::schedule::timing_stats::{choice_stability, Resampling};
use crate::schedule::{choose, knee, predicted_time_curve, Policy};

/// Columns `sweep.csv` adds after [`SWEEP_HEADER`] when more than one precision is swept.
pub(super) const PRECISION_HEADER: [&str; 3] = ["precision", "peak_gflops", "peak_source"];

/// The sweep of each precision in `precisions` (at least two, distinct).
pub(super) fn sweep_precisions(
    args: &RunArgs,
    backend: BackendChoice,
    (min_batch, max_batch): (Option<usize>, Option<usize>),
    policy: Option<&str>,
    precisions: &[String],
) -> anyhow::Result<()> {
    let mut base = admit::load_config(args.config.as_deref(), &args.set)?;
    if let Some(n) = sweep_args(&mut base, min_batch, max_batch, policy)? {
        eprintln!("{n}");
    }
    let mut cfgs = Vec::new();
    for p in precisions {
        let mut set = args.set.clone();
        set.push(format!("model.precision=\"{p}\""));
        let mut c = admit::load_config(args.config.as_deref(), &set)?;
        sweep_args(&mut c, min_batch, max_batch, policy)?;
        cfgs.push((p.clone(), c));
    }
    let task = Sweeps { base: &base, cfgs: &cfgs, args };
    let (reports, (policy, b_noise_se), dir) = with_backend(backend, args.adapter.as_deref(), task)?;
    let resampling = Resampling::seeded(base.train.seed).with_b_noise_se(b_noise_se);
    let swept: Vec<(&str, &SweepReport)> =
        precisions.iter().map(String::as_str).zip(reports.iter()).collect();
    write_csv(&dir.join("sweep.csv"), &header(), &csv_rows(&swept))?;
    let stabilities: Vec<_> =
        swept.iter().map(|(_, r)| choice_stability(&policy, &r.timed_points(), &resampling)).collect();
    let mut per = Vec::new();
    for ((p, r), stability) in swept.iter().zip(&stabilities) {
        let points = r.points();
        let c = choose(&policy, &points);
        per.push(serde_json::json!({
            "precision": p,
            "peak_gflops": r.peak_gflops,
            "peak_probe": r.peak_probe,
            "chosen_batch": c.as_ref().ok().map(|c| c.batch),
            "chosen_reason": c.as_ref().map(|c| c.reason.clone()).unwrap_or_else(|e| e.to_string()),
            "diminishing_returns_batch": knee(&points, base.sweep.knee_min_gain),
            "choice_stability": stability,
            "rows": r.rows,
        }));
    }
    let first = swept[0].1;
    write_summary(
        &dir,
        serde_json::json!({
            "command": "sweep",
            "backend": first.backend,
            "device": first.device,
            "model": first.model,
            "policy": policy.to_string(),
            "knee_min_gain": base.sweep.knee_min_gain,
            "precisions": per,
        }),
    )?;
    plots(&swept, policy, &dir)?;
    println!("{} — model {:?}", first.device, first.model);
    for (p, r) in &swept {
        println!("{p} peak {:.1} GFLOP/s ({})", r.peak_gflops, r.peak_probe);
    }
    print!("{}", table(&swept));
    let mut unchosen = Vec::new();
    for ((p, r), stability) in swept.iter().zip(&stabilities) {
        let points = r.points();
        if let Some(k) = knee(&points, base.sweep.knee_min_gain) {
            println!("{p}: diminishing returns from B = {k}");
        }
        match choose(&policy, &points) {
            Ok(c) => {
                println!("{p}: chosen batch size ({policy}): {} — {}", c.batch, c.reason);
                if let Some(s) = stability {
                    println!("{p}: {}", super::sweep::stability_note(s, &base));
                }
            }
            Err(e) => unchosen.push(format!("{p}: {e}")),
        }
    }
    println!("wrote: {}", dir.display());
    // A precision that measured no batch size makes the sweep exit non-zero (files kept).
    match unchosen.is_empty() {
        true => Ok(()),
        false => bail!(
            "no batch size chosen ({}); the table above and {} say why",
            unchosen.join("; "),
            dir.display()
        ),
    }
}

/// One policy, one run directory, one sweep per precision on the same backend.
struct Sweeps<'a> {
    base: &'a Config,
    cfgs: &'a [(String, Config)],
    args: &'a RunArgs,
}

impl BackendTask for Sweeps<'_> {
    type Output = (Vec<SweepReport>, (Policy, Option<f64>), PathBuf);

    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        self.base.gpu.autotune
    }

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<Self::Output> {
        let policy = resolve_policy(b, self.base)?;
        let dir = create_run_dir(self.args.out.as_deref(), "sweep")?;
        write_config(&dir, &self.base.to_toml())?;
        let mut reports = Vec::new();
        let mut monitor = monitor_of(b);
        for (p, cfg) in self.cfgs {
            eprintln!("sweep at {p}");
            reports.push(sweep_with(b, cfg, self.args.progress, &mut monitor)?);
        }
        Ok((reports, policy, dir))
    }
}

/// [`SWEEP_HEADER`] then [`PRECISION_HEADER`].
pub(super) fn header() -> Vec<&'static str> {
    SWEEP_HEADER.iter().chain(&PRECISION_HEADER).copied().collect()
}

/// The rows of every precision, each with its precision and the peak it is divided by.
pub(super) fn csv_rows(swept: &[(&str, &SweepReport)]) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for (p, r) in swept {
        for row in &r.rows {
            let mut cells = row_cells(row);
            cells.extend([
                Cell::Text(p.to_string()),
                Cell::Num(r.peak_gflops),
                Cell::Text(r.peak_probe.clone()),
            ]);
            rows.push(cells);
        }
    }
    rows
}

/// One table: each batch size's row per precision, `% peak` against that precision's peak.
pub(super) fn table(swept: &[(&str, &SweepReport)]) -> String {
    let mut t = Table::new([
        "B",
        "precision",
        "ms/step",
        "examples/s",
        "GFLOP/s",
        "% peak",
        "vs first",
        "MiB",
        "note",
    ]);
    let mut batches: Vec<usize> =
        swept.iter().flat_map(|(_, r)| r.rows.iter().map(|row| row.batch)).collect();
    batches.sort_unstable();
    batches.dedup();
    for b in batches {
        let first = swept[0].1.rows.iter().find(|r| r.batch == b && r.skipped.is_none());
        for (p, r) in swept {
            let Some(row) = r.rows.iter().find(|row| row.batch == b) else { continue };
            let mib = format!("{:.1}", row.bytes_predicted as f64 / 1048576.0);
            match &row.skipped {
                Some(reason) => {
                    let mut cells = vec![b.to_string(), p.to_string()];
                    cells.extend(std::iter::repeat_n("-".to_string(), 5));
                    cells.extend([mib, format!("skipped: {reason}")]);
                    t.row(cells);
                }
                None => {
                    let ratio = first.map_or("-".into(), |f| {
                        format!("{:.2}×", row.examples_per_s / f.examples_per_s)
                    });
                    t.row([
                        b.to_string(),
                        p.to_string(),
                        format!("{:.3}", row.ms_per_step_median),
                        format!("{:.0}", row.examples_per_s),
                        format!("{:.1}", row.gflops),
                        format!("{:.1}", 100.0 * row.fraction_of_peak),
                        ratio,
                        mib,
                        row.timing.to_string(),
                    ]);
                }
            }
        }
    }
    t.render()
}

/// throughput.svg, utilization.svg and ms_per_step.svg with a series per precision (and
/// time_to_target.svg under that policy).
fn plots(swept: &[(&str, &SweepReport)], policy: Policy, dir: &Path) -> anyhow::Result<()> {
    let dev = &swept[0].1.device;
    let each = |what: &str, f: &dyn Fn(&crate::schedule::sweep::SweepRow) -> f64| -> Vec<Series> {
        swept.iter().map(|(p, r)| series_of(r, &format!("{p} {what}"), f)).collect()
    };
    line_plot(
        &dir.join("throughput.svg"),
        &PlotSpec::new(format!("Throughput vs batch size — {dev}"), "batch size", "examples/s")
            .log2_x()
            .log_y(),
        &each("examples/s", &|r| r.examples_per_s),
    )?;
    let peaks: Vec<String> =
        swept.iter().map(|(p, r)| format!("{p} {:.1} GFLOP/s", r.peak_gflops)).collect();
    line_plot(
        &dir.join("utilization.svg"),
        &PlotSpec::new(
            format!("Fraction of each precision's peak ({}) — {dev}", peaks.join(", ")),
            "batch size",
            "fraction of peak",
        )
        .log2_x(),
        &each("achieved / peak", &|r| r.fraction_of_peak),
    )?;
    line_plot(
        &dir.join("ms_per_step.svg"),
        &PlotSpec::new(format!("Time per step (median) — {dev}"), "batch size", "ms / step")
            .log2_x()
            .log_y(),
        &each("median", &|r| r.ms_per_step_median),
    )?;
    for (p, r) in swept {
        sweep_util::util_plot(&dir.join(format!("gpu_utilization_{p}.svg")), dev, &r.rows)?;
    }
    if let Policy::TimeToTarget { b_noise } = policy {
        let series: Vec<Series> = swept
            .iter()
            .map(|(p, r)| Series {
                name: format!("{p} T(B) / min"),
                points: predicted_time_curve(&r.points(), b_noise)
                    .iter()
                    .map(|&(b, t)| (b as f64, t))
                    .collect(),
            })
            .collect();
        line_plot(
            &dir.join("time_to_target.svg"),
            &PlotSpec::new(
                format!("Predicted time to target, B_noise = {b_noise}"),
                "batch size",
                "relative time",
            )
            .log2_x(),
            &series,
        )?;
    }
    Ok(())
}

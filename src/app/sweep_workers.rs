//! `batchscope sweep --workers 1,2,4`: the data-parallel step timed at every (workers,
//! per-worker batch), speedup and efficiency against one worker, the all-reduce share, and the
//! predicted time to target per worker count with B_noise (workers.csv, speedup.svg,
//! time_to_target_workers.svg, summary.json's `data_parallel`).

use std::path::Path;

use super::workers::{adapter_list, open_workers, Workers};
use super::{BackendChoice, RunArgs};
use crate::backend::timed::Timed;
use crate::backend::Backend;
use crate::config::{check_worker_counts, BatchSize, Config};
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::table::Table;
use crate::schedule::run_memory::check_cpu_step;
use crate::schedule::{powers_of_two, Policy};
use crate::train::parallel::scaling::{analyse, time_point, ScalingPoint, ScalingReport};
use crate::train::parallel::{ReplicaExec, Sequential, Threads};

/// Time every (workers, per-worker batch) of `counts` × the sweep's batch range, with the
/// B_noise of `policy` (or measured on the first backend), and write the outputs into `dir`.
pub(super) fn sweep_workers(
    cfg: &Config,
    args: &RunArgs,
    choice: BackendChoice,
    counts: &[usize],
    policy: &Policy,
    dir: &Path,
) -> anyhow::Result<ScalingReport> {
    check_worker_counts(counts).map_err(anyhow::Error::msg)?;
    let mut counts: Vec<usize> = counts.iter().copied().chain([1]).collect();
    counts.sort_unstable();
    counts.dedup();
    let max_n = counts.last().copied().unwrap_or(1);
    let adapters = adapter_list(args.adapter.as_deref())?;
    let known = match policy {
        Policy::TimeToTarget { b_noise } => Some(*b_noise),
        _ => None,
    };
    let (points, b_noise) = match open_workers(choice, &adapters, max_n, cfg.gpu.autotune)? {
        Workers::Cpu(v) => {
            let refs: Vec<_> = v.iter().collect();
            let bn = known.or_else(|| b_noise_of(refs[0], cfg));
            (time_all(&refs, || Box::new(Threads), cfg, &counts), bn)
        }
        Workers::Gpu(v) => {
            let refs: Vec<_> = v.iter().collect();
            let bn = known.or_else(|| b_noise_of(refs[0], cfg));
            (time_all(&refs, || Box::new(Sequential), cfg, &counts), bn)
        }
    };
    let report = analyse(points, b_noise, cfg.sweep.knee_min_gain);
    write_outputs(&report, dir)?;
    Ok(report)
}

/// B_noise measured at initialisation (a notice and none when it cannot be).
fn b_noise_of<B: Timed>(b: &B, cfg: &Config) -> Option<f64> {
    match super::sweep::measure_b_noise(b, cfg) {
        Ok((bn, se)) => {
            eprintln!(
                "measured B_noise = {bn:.1}{} at initialisation (for the time to target per worker count)",
                super::sweep::with_se(se)
            );
            Some(bn)
        }
        Err(e) => {
            eprintln!("notice: no time to target per worker count: {e}");
            None
        }
    }
}

/// Every (N, b) that fits, timed; the ones that do not are named on stderr.
#[allow(clippy::needless_lifetimes)] // 'a also bounds the replicas `exec` makes
fn time_all<'a, B: Backend>(
    backends: &[&'a B],
    exec: impl Fn() -> Box<dyn ReplicaExec<B> + 'a>,
    cfg: &Config,
    counts: &[usize],
) -> Vec<ScalingPoint> {
    let (warmup, timed) = (cfg.sweep.warmup_steps, cfg.sweep.timed_steps);
    let mut out = Vec::new();
    // `sweep.time_budget_s` bounds the scaling measurement as it bounds the sweep (it timed
    // every point the sweep had skipped past the budget); each worker count's smallest batch
    // is timed whatever the budget, so that the counts still compare.
    let (start, budget) = (std::time::Instant::now(), cfg.sweep.time_budget_s);
    for &n in counts {
        for (k, b) in powers_of_two(cfg.sweep.min_batch, cfg.sweep.max_batch).into_iter().enumerate() {
            if k > 0 && budget > 0.0 && start.elapsed().as_secs_f64() > budget {
                eprintln!("workers {n}, per-worker batch {b}: skipped (sweep.time_budget_s = {budget} s reached)");
                continue;
            }
            // CPU replicas live in host memory: skip what cannot fit before allocating it.
            if let Err(e) = cpu_replicas_fit(backends[0], cfg, n, b) {
                eprintln!("workers {n}, per-worker batch {b}: skipped ({e})");
                continue;
            }
            match time_point(&backends[..n], exec(), cfg, b, warmup, timed) {
                Ok(p) => out.push(p),
                Err(e) => eprintln!("workers {n}, per-worker batch {b}: skipped ({e})"),
            }
        }
    }
    out
}

/// Where the buffers are host memory (the CPU backend, a software adapter), whether `n`
/// replicas at `per_worker` rows each fit it.
fn cpu_replicas_fit<B: Backend>(b: &B, cfg: &Config, n: usize, per_worker: usize) -> anyhow::Result<()> {
    if !b.buffers_in_host_memory() {
        return Ok(());
    }
    let batch =
        n.checked_mul(per_worker).ok_or_else(|| anyhow::anyhow!("the global batch overflows"))?;
    let mut c = cfg.clone();
    c.train.batch_size = BatchSize::Fixed(batch);
    (c.train.workers, c.train.accumulate) = (n, 1);
    Ok(check_cpu_step(&c, batch)?)
}

const HEADER: [&str; 13] = [
    "workers",
    "per_worker_batch",
    "global_batch",
    "ms_per_step",
    "examples_per_s",
    "speedup",
    "efficiency",
    "reduce_share",
    "reduce_us_per_step",
    "reduce_bytes_per_step",
    "predicted_steps_rel",
    "time_to_target_rel",
    "best_for_workers",
];

fn write_outputs(r: &ScalingReport, dir: &Path) -> anyhow::Result<()> {
    let opt = |v: Option<f64>| v.map(Cell::Num).unwrap_or(Cell::Empty);
    let rows: Vec<Vec<Cell>> = r
        .rows
        .iter()
        .map(|row| {
            let p = &row.point;
            let best = r
                .best
                .iter()
                .any(|b| b.workers == p.workers && b.per_worker_batch == p.per_worker_batch);
            vec![
                Cell::from(p.workers),
                Cell::from(p.per_worker_batch),
                Cell::from(p.global_batch),
                Cell::Num(p.ms_per_step),
                Cell::Num(p.examples_per_s),
                opt(row.speedup),
                opt(row.efficiency),
                Cell::Num(p.reduce_share),
                Cell::Num(p.reduce_us_per_step),
                Cell::Num(p.reduce_bytes_per_step),
                opt(row.predicted_steps_rel),
                opt(row.time_to_target_rel),
                Cell::Int(i64::from(best)),
            ]
        })
        .collect();
    write_csv(&dir.join("workers.csv"), &HEADER, &rows)?;
    let mut per_batch: Vec<usize> = r.rows.iter().map(|row| row.point.per_worker_batch).collect();
    per_batch.sort_unstable();
    per_batch.dedup();
    let mut speedup: Vec<Series> = per_batch
        .iter()
        .map(|&b| {
            let pts = r
                .rows
                .iter()
                .filter(|row| row.point.per_worker_batch == b)
                .filter_map(|row| row.speedup.map(|s| (row.point.workers as f64, s)))
                .collect();
            Series::new(format!("b = {b} per worker"), pts)
        })
        .collect();
    let mut counts: Vec<f64> = r.rows.iter().map(|row| row.point.workers as f64).collect();
    counts.dedup();
    speedup.push(Series::new("ideal", counts.iter().map(|&n| (n, n)).collect()));
    line_plot(
        &dir.join("speedup.svg"),
        &PlotSpec::new("Data-parallel speedup vs workers (same per-worker batch)", "workers", "speedup"),
        &speedup,
    )?;
    if !r.best.is_empty() {
        let pts = r.best.iter().map(|b| (b.workers as f64, b.time_to_target_rel)).collect();
        line_plot(
            &dir.join("time_to_target_workers.svg"),
            &PlotSpec::new(
                format!(
                    "Predicted time to target vs workers, B_noise = {:.1}",
                    r.b_noise.unwrap_or(0.0)
                ),
                "workers",
                "relative time (best per-worker batch)",
            ),
            &[Series::new("T(N) / min", pts)],
        )?;
    }
    Ok(())
}

/// The terminal table and the answer.
pub(super) fn print_workers(r: &ScalingReport) {
    println!(
        "workers: wall time of the timed steps as `train` runs them, over their count (minibatch and step; with several workers the all-reduce and its sync each step; one worker: the one-worker step, submitted without a wait)"
    );
    let mut t = Table::new([
        "workers",
        "b/worker",
        "B",
        "ms/step",
        "examples/s",
        "speedup",
        "eff.",
        "reduce %",
        "reduce µs",
        "T rel",
    ]);
    let f = |v: Option<f64>, d: usize| v.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "-".into());
    for row in &r.rows {
        let p = &row.point;
        t.row([
            p.workers.to_string(),
            p.per_worker_batch.to_string(),
            p.global_batch.to_string(),
            format!("{:.3}", p.ms_per_step),
            format!("{:.0}", p.examples_per_s),
            f(row.speedup, 2),
            f(row.efficiency, 2),
            format!("{:.1}", 100.0 * p.reduce_share),
            format!("{:.0}", p.reduce_us_per_step),
            f(row.time_to_target_rel, 3),
        ]);
    }
    print!("{}", t.render());
    match (r.b_noise, r.stop_paying_after, r.best.last()) {
        (None, _, _) => println!("no B_noise: no time to target per worker count"),
        (Some(bn), Some(n), _) => println!(
            "B_noise = {bn:.1}: more workers stop paying past {n} (the next count cuts the time to target by < {:.0}%)",
            100.0 * r.min_gain
        ),
        (Some(bn), None, Some(last)) => println!(
            "B_noise = {bn:.1}: workers still pay at {} (best per-worker batch {})",
            last.workers, last.per_worker_batch
        ),
        (Some(_), None, None) => println!("no worker count could be timed"),
    }
}

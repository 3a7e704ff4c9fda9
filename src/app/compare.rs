//! `batchscope compare`: the same sweep on the GPU and the CPU backend, side by side, with the
//! speedup and the crossover batch size.

use super::output::{write_config, write_summary};
use super::sweep::{row_cells, series_of, sweep_args, sweep_on, SWEEP_HEADER};
use super::RunArgs;
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuBackend;
use crate::config::Config;
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::create_run_dir;
use crate::report::table::{Align, Table};
use crate::schedule::admit;
use crate::schedule::sweep::SweepRow;
use crate::schedule::timing_stats::{median_ratio_interval, STABILITY_RESAMPLES};

/// Wall-time budget of the GPU half of `compare` on a software rasteriser (llvmpipe runs the
/// default sweep at 1–90 examples/s: unbounded, that half alone takes the 600 s of
/// `sweep.time_budget_s`).
const SOFTWARE_SWEEP_BUDGET_S: f64 = 60.0;

/// The config of the GPU sweep: with the embedded default on a software adapter, and no
/// `sweep.time_budget_s` given, its time budget is cut to [`SOFTWARE_SWEEP_BUDGET_S`] (said in
/// one line); otherwise `cfg` as it is.
fn software_budget(gpu: &GpuBackend, cfg: &Config, args: &RunArgs) -> Config {
    let given = args.config.is_some()
        || args.set.iter().any(|s| s.trim_start().starts_with("sweep.time_budget_s"));
    let software = gpu.dev.ctx.summary.device_type == format!("{:?}", wgpu::DeviceType::Cpu);
    let mut c = cfg.clone();
    if software && !given && c.sweep.time_budget_s > SOFTWARE_SWEEP_BUDGET_S {
        eprintln!(
            "notice: {} is a software rasteriser; its sweep is cut to {SOFTWARE_SWEEP_BUDGET_S} s \
             (--set sweep.time_budget_s=S for more)",
            gpu.dev.ctx.summary.name
        );
        c.sweep.time_budget_s = SOFTWARE_SWEEP_BUDGET_S;
    }
    c
}

/// The config of the CPU sweep: `sweep.peak_gflops` is the GPU's peak (a config names one
/// device's, and `compare` is about the GPU), so the CPU's "% of peak" is against its own
/// measured peak, not the GPU's (it was against the one given, for both devices).
fn cpu_config(cfg: &Config) -> Config {
    let mut c = cfg.clone();
    if c.sweep.peak_gflops > 0.0 {
        eprintln!(
            "notice: sweep.peak_gflops = {} is the GPU's peak; the CPU's is measured",
            c.sweep.peak_gflops
        );
        c.sweep.peak_gflops = 0.0;
    }
    c
}

/// `batchscope compare`: the same sweep on the GPU and the CPU backend, side by side.
pub fn compare(
    args: &RunArgs,
    min_batch: Option<usize>,
    max_batch: Option<usize>,
) -> anyhow::Result<()> {
    let mut cfg = admit::load_config(args.config.as_deref(), &args.set)?;
    if let Some(n) = sweep_args(&mut cfg, min_batch, max_batch, None)? {
        eprintln!("{n}");
    }
    // Both backends by construction: this command is the one that does not pick one.
    let gpu = GpuBackend::new(args.adapter.as_deref())?;
    super::backend::slow_adapter_notice(&gpu);
    super::backend::set_autotune(&gpu, cfg.gpu.autotune);
    let cpu = CpuBackend::new();
    let dir = create_run_dir(args.out.as_deref(), "compare")?;
    write_config(&dir, &cfg.to_toml())?;
    let g = sweep_on(&gpu, &software_budget(&gpu, &cfg, args), args.progress)?;
    drop(gpu);
    let c = sweep_on(&cpu, &cpu_config(&cfg), args.progress)?;
    let mut rows: Vec<Vec<Cell>> = g.rows.iter().map(row_cells).collect();
    rows.extend(c.rows.iter().map(row_cells));
    write_csv(&dir.join("sweep.csv"), &SWEEP_HEADER, &rows)?;

    // Right-aligned throughout: a "skipped" cell must not flip its column to the left.
    let header = ["B", "GPU ex/s", "CPU ex/s", "speedup", "speedup CI", "GPU ms", "CPU ms"];
    let mut t = (0..header.len()).fold(Table::new(header), |t, c| t.align(c, Align::Right));
    let mut skips = Vec::new();
    let mut speedups = Vec::new();
    let mut intervals: Vec<Option<(f64, f64)>> = Vec::new();
    let seed = cfg.train.seed;
    for (gr, cr) in g.rows.iter().zip(&c.rows) {
        let ok = gr.skipped.is_none() && cr.skipped.is_none();
        let s = if ok { gr.examples_per_s / cr.examples_per_s } else { f64::NAN };
        // GPU over CPU examples/s at one B is the CPU's median step over the GPU's.
        let ci = ok
            .then(|| median_ratio_interval(&cr.step_ms, &gr.step_ms, STABILITY_RESAMPLES, seed))
            .flatten();
        if ok {
            speedups.push((gr.batch as f64, s));
            intervals.push(ci);
        }
        let fmt = |r: &SweepRow, f: &dyn Fn(&SweepRow) -> String| {
            if r.skipped.is_none() {
                f(r)
            } else {
                "skipped".into()
            }
        };
        for (side, r) in [("GPU", gr), ("CPU", cr)] {
            if let Some(why) = &r.skipped {
                skips.push(format!("B = {} skipped on the {side}: {why}", r.batch));
            }
        }
        t.row([
            gr.batch.to_string(),
            fmt(gr, &|r| format!("{:.0}", r.examples_per_s)),
            fmt(cr, &|r| format!("{:.0}", r.examples_per_s)),
            if ok { speedup_text(s) } else { "-".into() },
            ci.map_or("-".into(), |(lo, hi)| format!("{}–{}", speedup_text(lo), speedup_text(hi))),
            fmt(gr, &|r| format!("{:.3}", r.ms_per_step_median)),
            fmt(cr, &|r| format!("{:.3}", r.ms_per_step_median)),
        ]);
    }
    let crossover = crossover(&speedups);
    let summary = serde_json::json!({
        "command": "compare",
        "gpu": {"device": g.device, "peak_gflops": g.peak_gflops},
        "cpu": {"device": c.device, "peak_gflops": c.peak_gflops},
        "model": g.model,
        // What was timed: f32, or f16 (`--precision f16`; % of peak is then the f16 peak's).
        "precision": cfg.model.precision.name(),
        "crossover_batch": crossover,
        "speedup": speedups.iter().zip(&intervals).map(|(&(b, s), ci)| serde_json::json!({
            "batch": b as usize,
            "gpu_over_cpu": s,
            "ci_low": ci.map(|c| c.0),
            "ci_high": ci.map(|c| c.1),
        })).collect::<Vec<_>>(),
        "gpu_rows": g.rows,
        "cpu_rows": c.rows,
    });
    write_summary(&dir, summary)?;
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
    let precision = cfg.model.precision.name();
    println!("GPU: {} | CPU: {} | model {:?} | {precision}", g.device, c.device, g.model);
    print!("{}", t.render());
    for line in &skips {
        println!("{line}");
    }
    if speedups.is_empty() {
        // No batch size was timed on both backends: there is nothing to compare (it printed
        // "the GPU is not faster than the CPU at any measured B" and exited 0).
        println!("wrote: {}", dir.display());
        anyhow::bail!(
            "no batch size was timed on both backends; the table above and {} say why each was skipped",
            dir.display()
        );
    }
    match crossover {
        Some(b) => {
            // Whether the timings resolve it: the speedup's interval at the crossover above 1.
            let at = speedups.iter().position(|&(x, _)| x as usize == b).and_then(|i| intervals[i]);
            let unresolved = match at {
                Some((lo, hi)) if lo <= 1.0 => format!(
                    "; at B = {b} the speedup's interval, {}–{}, reaches 1: more sweep.timed_steps or sweep.rounds would settle it",
                    speedup_text(lo),
                    speedup_text(hi)
                ),
                _ => String::new(),
            };
            println!("crossover: the GPU is faster from B = {b} (at every measured B ≥ {b}){unresolved}")
        }
        None => println!("crossover: the GPU is not faster than the CPU at any measured B"),
    }
    println!("wrote: {}", dir.display());
    Ok(())
}

/// A GPU/CPU ratio with three significant digits (`0.0123x`, `0.512x`, `1.23x`, `12.3x`): two
/// decimals said `0.01x` for a GPU 80x slower.
fn speedup_text(s: f64) -> String {
    let decimals = if s >= 10.0 {
        1
    } else if s >= 1.0 {
        2
    } else if s >= 0.1 {
        3
    } else {
        4
    };
    format!("{s:.decimals$}x")
}

/// The smallest measured B from which the GPU is faster at every larger measured B (the GPU
/// over CPU speedups `(B, speedup)` in order of B); `None` when it is not faster at the
/// largest. A win at one small B followed by losses was reported as the crossover.
fn crossover(speedups: &[(f64, f64)]) -> Option<usize> {
    let tail = speedups.iter().rev().take_while(|&&(_, s)| s > 1.0).count();
    (tail > 0).then(|| speedups[speedups.len() - tail].0 as usize)
}

#[cfg(test)]
mod tests {
    use super::crossover;

    #[test]
    fn speedups_keep_three_significant_digits() {
        let shown: Vec<String> =
            [0.012345, 0.5123, 1.234, 12.34].iter().map(|&s| super::speedup_text(s)).collect();
        assert_eq!(shown, ["0.0123x", "0.512x", "1.23x", "12.3x"]);
    }

    #[test]
    fn the_crossover_is_where_the_gpu_stays_faster() {
        assert_eq!(crossover(&[(1.0, 0.5), (2.0, 1.2), (4.0, 1.5)]), Some(2));
        assert_eq!(crossover(&[(1.0, 1.1), (2.0, 0.9), (4.0, 1.5), (8.0, 2.0)]), Some(4));
        assert_eq!(crossover(&[(1.0, 1.1), (2.0, 0.9)]), None, "faster at 1 only");
        assert_eq!(crossover(&[]), None);
    }
}

//! The profile as a terminal table, `profile.csv` rows, and a stacked-bar SVG of the share of
//! step time per op group over batch sizes.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::hooks::TimingMethod;
use super::peaks::Peaks;
use super::run::{BatchProfile, GroupStats};
use crate::report::csv::Cell;
use crate::report::rundir::write_atomic;
use crate::report::ReportError;

/// Columns of `profile.csv`.
pub const CSV_HEADER: [&str; 17] = [
    "backend",
    "batch",
    "group",
    "calls_per_step",
    "us_per_step",
    "pct_of_step",
    "flops_per_step",
    "bytes_per_step",
    "gflops",
    "gbps",
    "bound",
    "pct_of_roof",
    "op_timing",
    "peak_gflops",
    "peak_gflops_source",
    "peak_gbps",
    "peak_gbps_source",
];

/// Percent of the roofline: the op's time at the roof over its measured time.
pub fn pct_of_roof(g: &GroupStats, peaks: &Peaks) -> f64 {
    100.0 * peaks.roof_seconds(g.flops_per_step, g.bytes_per_step) / (g.us_per_step * 1e-6)
}

/// Rows of `profile.csv` for one batch size.
pub fn csv_rows(backend: &str, p: &BatchProfile, peaks: &Peaks) -> Vec<Vec<Cell>> {
    let step_us = p.ops_ms * 1e3;
    p.groups
        .iter()
        .map(|g| {
            vec![
                Cell::Text(backend.into()),
                Cell::from(p.batch),
                Cell::Text(g.group.clone()),
                Cell::Num(g.calls_per_step),
                Cell::Num(g.us_per_step),
                Cell::Num(100.0 * g.us_per_step / step_us),
                Cell::Num(g.flops_per_step),
                Cell::Num(g.bytes_per_step),
                Cell::Num(g.gflops()),
                Cell::Num(g.gbps()),
                Cell::Text(peaks.bound(g.flops_per_step, g.bytes_per_step).name().into()),
                Cell::Num(pct_of_roof(g, peaks)),
                Cell::Text(p.op_timing.into()),
                Cell::Num(peaks.gflops.value),
                Cell::Text(peaks.gflops.source.to_string()),
                Cell::Num(peaks.gbps.value),
                Cell::Text(peaks.gbps.source.to_string()),
            ]
        })
        .collect()
}

/// The per-step figures and the group table of one batch size.
pub fn table(p: &BatchProfile, peaks: &Peaks) -> String {
    let mut s = String::new();
    let step_us = p.ops_ms * 1e3;
    // GPU timestamp queries per dispatch, or host timers around each op (the CPU backend, and
    // an adapter without timestamps): what the step is timed with and without.
    let probes = match p.timing {
        TimingMethod::PassTimestamps => "per-dispatch queries",
        TimingMethod::HostTimers | TimingMethod::HostTimersSynced => "per-op host timers",
    };
    let _ = writeln!(
        s,
        "B = {}: step {:.3} ms without {probes}, {:.3} ms with them ({:+.1} %; medians); per-op sum {:.3} of {:.3} ms (means) ({} timing; {})",
        p.batch,
        p.step_ms_plain,
        p.step_ms_profiled,
        100.0 * p.query_overhead(),
        p.ops_ms,
        p.step_ms_profiled_mean,
        p.step_timing,
        p.op_timing
    );
    let _ = writeln!(s, "  per step: {}", per_step_counts(p));
    // The group column as wide as its longest name (fused ops: `fwd L0 (matmul+bias+relu)`).
    let w = p.groups.iter().map(|g| g.group.chars().count()).max().unwrap_or(0).max(18);
    let _ = writeln!(
        s,
        "  {:<w$} {:>6} {:>10} {:>6} {:>10} {:>10} {:>9} {:>8} {:>8} {:>7}",
        "group", "calls", "µs/step", "% step", "MFLOP", "MB", "GFLOP/s", "GB/s", "bound", "% roof"
    );
    for g in &p.groups {
        let _ = writeln!(
            s,
            "  {:<w$} {:>6.0} {:>10.1} {:>6.1} {:>10.3} {:>10.3} {:>9.2} {:>8.2} {:>8} {:>7.1}",
            g.group,
            g.calls_per_step,
            g.us_per_step,
            100.0 * g.us_per_step / step_us,
            g.flops_per_step * 1e-6,
            g.bytes_per_step * 1e-6,
            g.gflops(),
            g.gbps(),
            peaks.bound(g.flops_per_step, g.bytes_per_step).name(),
            pct_of_roof(g, peaks)
        );
    }
    s
}

/// The device-independent counts of a step. An eager backend (the CPU) runs each op as it is
/// called: it has no dispatches, passes or submits to count, and its host time is the step.
fn per_step_counts(p: &BatchProfile) -> String {
    match p.timing {
        TimingMethod::HostTimers => format!(
            "{}, run as they are called (no dispatches, passes or submits); {:.1} µs on the host",
            count(p.ops_per_step, "op", "ops"),
            p.host_record_submit_us
        ),
        TimingMethod::PassTimestamps | TimingMethod::HostTimersSynced => format!(
            "{}, {}, {}, {}, {:.0} B uploaded, {:.0} B read back, {:.1} µs host to record and submit",
            count(p.ops_per_step, "op", "ops"),
            count(p.dispatches_per_step, "dispatch", "dispatches"),
            count(p.passes_per_step, "compute pass", "compute passes"),
            count(p.submits_per_step, "submit", "submits"),
            p.bytes_uploaded_per_step,
            p.bytes_read_back_per_step,
            p.host_record_submit_us
        ),
    }
}

/// A per-step count with its noun: `1 compute pass`, `15 dispatches`, `1.5 submits` (a mean
/// that is not whole keeps one decimal).
fn count(v: f64, one: &str, many: &str) -> String {
    if v == 1.0 {
        format!("1 {one}")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {many}")
    } else {
        format!("{v:.1} {many}")
    }
}

/// What the "% roof" and "bound" columns divide by.
pub fn peaks_line(peaks: &Peaks) -> String {
    peaks_line_of(peaks, "fp32")
}

/// [`peaks_line`] with the FLOP/s roof called `what` (`f16` for an f16 profile's roof).
pub fn peaks_line_of(peaks: &Peaks, what: &str) -> String {
    format!(
        "peaks: {:.1} GFLOP/s {what} from {}; {:.1} GB/s from {}. bound = the roof an op's FLOP/byte meets first (ridge {:.2} FLOP/byte); % roof = its time at that roof ÷ its measured time",
        peaks.gflops.value,
        peaks.gflops.source,
        peaks.gbps.value,
        peaks.gbps.source,
        peaks.ridge()
    )
}

/// Stacked bars: for each batch size, each group's share of the per-op time sum, in percent.
pub fn stacked_bars(path: &Path, title: &str, profiles: &[BatchProfile]) -> Result<(), ReportError> {
    let svg = render_bars(title, profiles)
        .map_err(|message| ReportError::Plot { path: path.to_path_buf(), message })?;
    write_atomic(path, crate::report::plot::xml_chars(svg).as_bytes())
}

fn render_bars(title: &str, profiles: &[BatchProfile]) -> Result<String, String> {
    let mut names: Vec<&str> = Vec::new();
    for p in profiles {
        for g in &p.groups {
            if !names.contains(&g.group.as_str()) {
                names.push(&g.group);
            }
        }
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (plot, legend) = root.split_horizontally(680);
        let n = profiles.len().max(1);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..n as f64, 0.0..100.0)
            .map_err(|e| e.to_string())?;
        let labels: Vec<String> = profiles.iter().map(|p| format!("B={}", p.batch)).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            // plotters' own ticks fall where its float axis likes (two labels under three bars,
            // at their left edges): the batch sizes are drawn below, one centred under each bar.
            .x_label_formatter(&|_| String::new())
            .x_desc("batch size (bar label: the ops' ms per step, summed)")
            .y_desc("% of per-op time")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, p) in profiles.iter().enumerate() {
            let total: f64 = p.groups.iter().map(|g| g.us_per_step).sum();
            let mut y0 = 0.0;
            let x0 = i as f64 + 0.15;
            for g in &p.groups {
                let h = 100.0 * g.us_per_step / total;
                let c = Palette99::pick(names.iter().position(|n| *n == g.group).unwrap_or(0));
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, y0), (x0 + 0.7, y0 + h)],
                        c.filled(),
                    )))
                    .map_err(|e| e.to_string())?;
                y0 += h;
            }
            let label = format!("{:.3} ms", p.ops_ms);
            chart
                .draw_series(std::iter::once(Text::new(label, (x0, 99.0), ("sans-serif", 12))))
                .map_err(|e| e.to_string())?;
        }
        let centred =
            ("sans-serif", 13).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, label) in labels.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(label.clone(), (x, y + 6), centred.clone()))
                .map_err(|e| e.to_string())?;
        }
        for (i, name) in names.iter().enumerate() {
            let y = 20 + 18 * i as i32;
            legend
                .draw(&Rectangle::new([(5, y), (17, y + 12)], Palette99::pick(i).filled()))
                .map_err(|e| e.to_string())?;
            legend
                .draw(&Text::new(name.to_string(), (22, y), ("sans-serif", 13)))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

//! Rendering of line panels and histograms to SVG text (plotters' SVG backend).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{Axis, Scale};
use super::style::{build_chart, draw_legend, err, legend_corner, line_key, PALETTE};
use super::{HistSeries, Panel, PlotSpec, Series};

/// Series with at most this many shown points get a marker at each point.
const MARKER_MAX_POINTS: usize = 64;

/// Splits a series into runs of consecutive plottable points (plotted coordinates).
fn runs(points: &[(f64, f64)], xs: Scale, ys: Scale) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for &(px, py) in points {
        match (xs.fwd(px), ys.fwd(py)) {
            (Some(a), Some(b)) => cur.push((a, b)),
            _ => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Points of a run past which it is drawn thinned ([`thin`]).
const THIN_ABOVE: usize = 8192;

/// Columns of its x span a thinned run is bucketed into (a panel is some hundreds of pixels).
const THIN_COLUMNS: usize = 2048;

/// A run of many points in increasing x drawn as its first, lowest, highest and last point in
/// each of [`THIN_COLUMNS`] columns of its x span, in x order: the line passes through the same
/// extremes in every column, so a spike stays where it was, and the SVG of a 5·10⁶-step run
/// is kilobytes where it held every point. A run whose x is not increasing (a path) is drawn
/// whole.
pub(super) fn thin(run: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let (Some(&(x0, _)), Some(&(x1, _))) = (run.first(), run.last()) else { return run };
    let width = (x1 - x0) / THIN_COLUMNS as f64;
    if run.len() <= THIN_ABOVE || width <= 0.0 || !run.windows(2).all(|w| w[0].0 <= w[1].0) {
        return run;
    }
    let column = |x: f64| (((x - x0) / width) as usize).min(THIN_COLUMNS - 1);
    let mut out = Vec::with_capacity(4 * THIN_COLUMNS);
    let mut start = 0;
    while start < run.len() {
        let col = column(run[start].0);
        let end = start + run[start..].iter().take_while(|p| column(p.0) == col).count();
        let bucket = &run[start..end];
        let by_y = |a: &(usize, &(f64, f64)), b: &(usize, &(f64, f64))| a.1 .1.total_cmp(&b.1 .1);
        let lowest = bucket.iter().enumerate().min_by(by_y).map_or(0, |(i, _)| i);
        let highest = bucket.iter().enumerate().max_by(by_y).map_or(0, |(i, _)| i);
        let mut picks = [0, lowest, highest, bucket.len() - 1];
        picks.sort_unstable();
        let mut last = None;
        for i in picks {
            if last != Some(i) {
                out.push(bucket[i]);
                last = Some(i);
            }
        }
        start = end;
    }
    out
}

/// Line panels side by side, each `size` px.
pub(super) fn render_panels(panels: &[Panel], size: (u32, u32)) -> Result<String, String> {
    let mut svg = String::new();
    {
        let width = size.0 * panels.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (width, size.1)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let areas = root.split_evenly((1, panels.len()));
        for (area, panel) in areas.iter().zip(panels) {
            draw_lines(area, &panel.spec, &panel.series)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn draw_lines(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    spec: &PlotSpec,
    series: &[Series],
) -> Result<(), String> {
    let (xs, ys) = (Scale::x(spec), Scale::y(spec));
    let shown: Vec<Vec<Vec<(f64, f64)>>> =
        series.iter().map(|s| runs(&s.points, xs, ys).into_iter().map(thin).collect()).collect();
    let all: Vec<(f64, f64)> = shown.iter().flatten().flatten().copied().collect();
    let x = Axis::fit(xs, all.iter().map(|p| p.0), false);
    let y = Axis::fit(ys, all.iter().map(|p| p.1), false);
    let mut chart = build_chart(area, spec, &x, &y)?;
    for (i, (s, parts)) in series.iter().zip(&shown).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let style = color.stroke_width(2);
        let n: usize = parts.iter().map(Vec::len).sum();
        let first = parts.first().cloned().unwrap_or_default();
        // The first run carries the legend entry (an empty run still gets one).
        chart
            .draw_series(LineSeries::new(first, style))
            .map_err(err)?
            .label(s.name.as_str())
            .legend(line_key(color.stroke_width(2)));
        for part in parts.iter().skip(1) {
            chart.draw_series(LineSeries::new(part.iter().copied(), style)).map_err(err)?;
        }
        if n <= MARKER_MAX_POINTS {
            chart
                .draw_series(parts.iter().flatten().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
    }
    if !series.is_empty() {
        draw_legend(&mut chart, legend_corner(&all, &x, &y), 10, 14)?;
    }
    Ok(())
}

/// Histograms overlaid in one `size` px panel: filled bars with a step outline.
pub(super) fn render_histogram(
    spec: &PlotSpec,
    hists: &[HistSeries],
    size: (u32, u32),
) -> Result<String, String> {
    let (xs, ys) = (Scale::x(spec), Scale::y(spec));
    // Bars in plotted coordinates: (x0, x1, height) for the bins that can be shown.
    let bars: Vec<Vec<(f64, f64, f64)>> = hists
        .iter()
        .map(|h| {
            (0..h.values.len())
                .filter_map(|i| {
                    Some((xs.fwd(h.edges[i])?, xs.fwd(h.edges[i + 1])?, ys.fwd(h.values[i])?))
                })
                .filter(|(a, b, _)| b > a)
                .collect()
        })
        .collect();
    let flat = || bars.iter().flatten();
    let x = Axis::fit(xs, flat().flat_map(|b| [b.0, b.1]), false);
    let y = Axis::fit(ys, flat().map(|b| b.2), true);
    let base = if ys == Scale::Linear { 0f64.max(y.lo) } else { y.lo };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = build_chart(&root, spec, &x, &y)?;
        for (i, (h, hb)) in hists.iter().zip(&bars).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(
                    hb.iter()
                        .map(|&(a, b, v)| Rectangle::new([(a, base), (b, v)], color.mix(0.25).filled())),
                )
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(step_outline(hb, base), color.stroke_width(2)))
                .map_err(err)?
                .label(h.name.as_str())
                .legend(move |(lx, ly)| {
                    Rectangle::new([(lx, ly - 5), (lx + 22, ly + 5)], color.mix(0.5).filled())
                });
        }
        if !hists.is_empty() {
            let pts: Vec<(f64, f64)> = flat().map(|b| ((b.0 + b.1) / 2.0, b.2)).collect();
            draw_legend(&mut chart, legend_corner(&pts, &x, &y), 10, 14)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The step outline of bars `(x0, x1, height)`: down to `base` wherever neighbouring bins do not
/// touch.
fn step_outline(hb: &[(f64, f64, f64)], base: f64) -> Vec<(f64, f64)> {
    let mut outline: Vec<(f64, f64)> = Vec::with_capacity(4 * hb.len());
    for (j, &(a, b, v)) in hb.iter().enumerate() {
        let joined = j > 0 && (hb[j - 1].1 - a).abs() <= 1e-12 * a.abs().max(1.0);
        if !joined {
            if let Some(&(_, y_prev)) = outline.last() {
                if y_prev != base {
                    let x_prev = hb[j - 1].1;
                    outline.push((x_prev, base));
                }
            }
            outline.push((a, base));
        }
        outline.push((a, v));
        outline.push((b, v));
    }
    if let Some(&(b, _)) = outline.last() {
        outline.push((b, base));
    }
    outline
}

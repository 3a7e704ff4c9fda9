//! SVG plots with plotters' SVG backend: line plots (one or more panels side by side) and
//! histograms. Text is written as SVG `<text>` elements, so no font files are needed.
//!
//! Log axes are drawn in transformed coordinates (log10 or log2 of the value) with ticks placed
//! here: `log2_x` puts ticks at powers of two labelled 1, 2, 4, ... (batch-size axes), `log_x` and
//! `log_y` at powers of ten. Points that cannot be shown (non-finite, or ≤ 0 on a log axis) are
//! skipped and break the line there. The file is written atomically.

use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::rundir::write_atomic;
use super::ReportError;

/// Titles, axis labels and scales of one plot panel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlotSpec {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis, ticks at powers of ten.
    pub log_x: bool,
    /// Logarithmic x axis, ticks at powers of two labelled 1, 2, 4, ... (wins over `log_x`).
    pub log2_x: bool,
    /// Logarithmic y axis, ticks at powers of ten.
    pub log_y: bool,
}

impl PlotSpec {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        PlotSpec {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Self::default()
        }
    }
    pub fn log2_x(mut self) -> Self {
        self.log2_x = true;
        self
    }
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }
}

/// A named line: `(x, y)` points drawn in the given order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points }
    }
}

/// One panel of a multi-panel figure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    pub spec: PlotSpec,
    pub series: Vec<Series>,
}

/// A named histogram: `edges.len() == values.len() + 1`, bin `i` spans `[edges[i], edges[i+1])`
/// and has height `values[i]` (a count or a density).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistSeries {
    pub name: String,
    pub edges: Vec<f64>,
    pub values: Vec<f64>,
}

/// Tableau-10: distinct colors that stay apart for color-blind readers too.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Series with at most this many shown points get a marker at each point.
const MARKER_MAX_POINTS: usize = 64;
const FONT: &str = "sans-serif";
const PANEL_SIZE: (u32, u32) = (800, 500);
const MULTI_PANEL_SIZE: (u32, u32) = (620, 460);

/// One line plot in one SVG file.
pub fn line_plot(path: &Path, spec: &PlotSpec, series: &[Series]) -> Result<(), ReportError> {
    let panel = Panel { spec: spec.clone(), series: series.to_vec() };
    write_svg(path, render_panels(std::slice::from_ref(&panel), PANEL_SIZE))
}

/// Two line plots side by side (e.g. surrogate loss | 0-1 error against examples seen).
pub fn two_panel(path: &Path, left: &Panel, right: &Panel) -> Result<(), ReportError> {
    panels_plot(path, &[left.clone(), right.clone()])
}

/// Line plots side by side in one SVG file.
pub fn panels_plot(path: &Path, panels: &[Panel]) -> Result<(), ReportError> {
    if panels.is_empty() {
        return Err(ReportError::Plot { path: path.to_path_buf(), message: "no panels to draw".into() });
    }
    let size = if panels.len() == 1 { PANEL_SIZE } else { MULTI_PANEL_SIZE };
    write_svg(path, render_panels(panels, size))
}

/// Histograms (filled bars with a step outline, overlaid) in one SVG file.
pub fn histogram_plot(path: &Path, spec: &PlotSpec, hists: &[HistSeries]) -> Result<(), ReportError> {
    for h in hists {
        if h.edges.len() != h.values.len() + 1 {
            return Err(ReportError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "histogram `{}` has {} edges for {} bins (needs bins + 1)",
                    h.name,
                    h.edges.len(),
                    h.values.len()
                ),
            });
        }
    }
    write_svg(path, render_histogram(spec, hists, PANEL_SIZE))
}

fn write_svg(path: &Path, svg: Result<String, String>) -> Result<(), ReportError> {
    let svg = svg.map_err(|message| ReportError::Plot { path: path.to_path_buf(), message })?;
    write_atomic(path, svg.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Axes

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scale {
    Linear,
    Log10,
    Log2,
}

impl Scale {
    fn x(spec: &PlotSpec) -> Self {
        if spec.log2_x {
            Scale::Log2
        } else if spec.log_x {
            Scale::Log10
        } else {
            Scale::Linear
        }
    }

    fn y(spec: &PlotSpec) -> Self {
        if spec.log_y {
            Scale::Log10
        } else {
            Scale::Linear
        }
    }

    /// The plotted coordinate of `v`, or `None` when `v` cannot be shown on this axis.
    fn fwd(self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        match self {
            Scale::Linear => Some(v),
            Scale::Log10 if v > 0.0 => Some(v.log10()),
            Scale::Log2 if v > 0.0 => Some(v.log2()),
            _ => None,
        }
    }

    /// The data value at plotted coordinate `t`.
    fn inv(self, t: f64) -> f64 {
        match self {
            Scale::Linear => t,
            Scale::Log10 => 10f64.powf(t),
            Scale::Log2 => t.exp2(),
        }
    }
}

/// A plotted range with its tick positions (in plotted coordinates).
#[derive(Clone, Debug)]
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl Axis {
    /// The axis over the plotted coordinates `ts` (already transformed, all finite).
    fn fit(scale: Scale, ts: impl Iterator<Item = f64>, include_zero: bool) -> Self {
        let (mut lo, mut hi) =
            ts.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), t| (a.min(t), b.max(t)));
        if include_zero && scale == Scale::Linear {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo <= f64::EPSILON * (lo.abs() + hi.abs()).max(1e-300) {
            let half = match scale {
                Scale::Linear => (lo.abs() * 0.05).max(0.5),
                _ => 0.5,
            };
            lo -= half;
            hi += half;
        }
        let pad = match scale {
            Scale::Linear => 0.04 * (hi - lo),
            Scale::Log2 => (0.04 * (hi - lo)).clamp(0.1, 0.35),
            Scale::Log10 => (0.04 * (hi - lo)).clamp(0.02, 0.2),
        };
        let (lo, hi) = if include_zero && scale == Scale::Linear && lo == 0.0 {
            (0.0, hi + pad)
        } else {
            (lo - pad, hi + pad)
        };
        let (ticks, minor) = ticks(scale, lo, hi);
        Axis { scale, lo, hi, ticks, minor }
    }

    fn label(&self, t: f64) -> String {
        match self.scale {
            Scale::Linear => fmt_tick(t),
            Scale::Log10 => fmt_tick(10f64.powf(t)),
            Scale::Log2 => fmt_pow2(t),
        }
    }
}

/// Plotters' view of an axis: a linear map of the plotted coordinate, our own ticks (bold lines
/// and labels at `ticks`, light grid lines at `minor`).
impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.lo) / (self.hi - self.lo);
        let len = f64::from(limit.1 - limit.0);
        // Clamped far outside the canvas so i32 pixel arithmetic cannot overflow.
        let px = (len * f).clamp(-1e6, 1e6);
        if px.is_nan() {
            return limit.0;
        }
        limit.0 + (px + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Major and minor ticks in plotted coordinates over `[lo, hi]`.
fn ticks(scale: Scale, lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    match scale {
        Scale::Linear => (nice_ticks(lo, hi, 7), Vec::new()),
        Scale::Log2 | Scale::Log10 => {
            let (first, last) = (lo.ceil() as i64, hi.floor() as i64);
            let count = (last - first + 1).max(0) as usize;
            if count < 2 {
                // Less than two whole powers in view: ticks at nice values of the data.
                let (a, b) = (scale.inv(lo), scale.inv(hi));
                let ts = nice_ticks(a, b, 5).into_iter().filter_map(|v| scale.fwd(v)).collect();
                return (ts, Vec::new());
            }
            let max_major = if scale == Scale::Log2 { 14 } else { 10 };
            let step = count.div_ceil(max_major).max(1) as i64;
            let major: Vec<f64> =
                (first..=last).filter(|k| (k - first) % step == 0).map(|k| k as f64).collect();
            let minor = if scale == Scale::Log10 && count <= 8 {
                (first - 1..=last)
                    .flat_map(|k| (2..10).map(move |m| k as f64 + (m as f64).log10()))
                    .filter(|t| *t > lo && *t < hi)
                    .collect()
            } else {
                // Every power of two between labelled ones (or none).
                (first..=last).filter(|k| (k - first) % step != 0).map(|k| k as f64).collect()
            };
            (major, minor)
        }
    }
}

/// About `target` ticks at multiples of 1, 2, 2.5 or 5 × 10^k inside `[lo, hi]`.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return vec![lo];
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label without float noise: `0.3`, `1500`, `2.5e-5`, `1e8`.
fn fmt_tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { format!("{v}") };
    }
    let a = v.abs();
    if (1e-3..1e6).contains(&a) {
        // Six significant digits hide float noise such as 0.30000000000000004.
        let decimals = (5 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.3e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
            None => s,
        }
    }
}

/// A power-of-two tick label: `1, 2, 4, ..., 4096, 65536`; fractions `0.5, 0.25`; `2^k` beyond.
fn fmt_pow2(t: f64) -> String {
    let k = t.round();
    if (t - k).abs() > 1e-9 {
        return fmt_tick(t.exp2());
    }
    let k = k as i64;
    match k {
        0..=62 => (1u64 << k).to_string(),
        -6..=-1 => fmt_tick((k as f64).exp2()),
        _ => format!("2^{k}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Axis, Axis>>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn build_chart<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    spec: &PlotSpec,
    x: &Axis,
    y: &Axis,
) -> Result<Chart<'a, 'b>, String> {
    let mut builder = ChartBuilder::on(area);
    builder.margin(14).x_label_area_size(48).y_label_area_size(72);
    if !spec.title.is_empty() {
        builder.caption(&spec.title, (FONT, 22));
    }
    let mut chart = builder.build_cartesian_2d(x.clone(), y.clone()).map_err(err)?;
    let xf = |t: &f64| x.label(*t);
    let yf = |t: &f64| y.label(*t);
    chart
        .configure_mesh()
        .x_desc(spec.x_label.as_str())
        .y_desc(spec.y_label.as_str())
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// The corner of the plot with the fewest points, for the legend.
fn legend_corner(points: &[(f64, f64)], x: &Axis, y: &Axis) -> SeriesLabelPosition {
    let (xm, ym) = ((x.lo + x.hi) / 2.0, (y.lo + y.hi) / 2.0);
    let mut n = [0usize; 4]; // UR, UL, LR, LL
    for &(px, py) in points {
        let i = match (px >= xm, py >= ym) {
            (true, true) => 0,
            (false, true) => 1,
            (true, false) => 2,
            (false, false) => 3,
        };
        n[i] += 1;
    }
    match (0..4).min_by_key(|&i| n[i]).unwrap_or(0) {
        0 => SeriesLabelPosition::UpperRight,
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::LowerLeft,
    }
}

fn draw_legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    corner: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(corner)
        .margin(10)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}

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

fn render_panels(panels: &[Panel], size: (u32, u32)) -> Result<String, String> {
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
    let shown: Vec<Vec<Vec<(f64, f64)>>> = series.iter().map(|s| runs(&s.points, xs, ys)).collect();
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
        chart.draw_series(LineSeries::new(first, style)).map_err(err)?.label(s.name.as_str()).legend(
            move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 22, ly)], color.stroke_width(2)),
        );
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
        draw_legend(&mut chart, legend_corner(&all, &x, &y))?;
    }
    Ok(())
}

fn render_histogram(spec: &PlotSpec, hists: &[HistSeries], size: (u32, u32)) -> Result<String, String> {
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
            // Step outline: down to the base wherever neighbouring bins do not touch.
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
            chart
                .draw_series(LineSeries::new(outline, color.stroke_width(2)))
                .map_err(err)?
                .label(h.name.as_str())
                .legend(move |(lx, ly)| {
                    Rectangle::new([(lx, ly - 5), (lx + 22, ly + 5)], color.mix(0.5).filled())
                });
        }
        if !hists.is_empty() {
            let pts: Vec<(f64, f64)> = flat().map(|b| ((b.0 + b.1) / 2.0, b.2)).collect();
            draw_legend(&mut chart, legend_corner(&pts, &x, &y))?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestDir;

    fn text_elements(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|s| {
                s.split_once('>')
                    .and_then(|(_, r)| r.split_once("</text>"))
                    .map(|(t, _)| t.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn line_plot_writes_svg_with_series_names_and_skips_bad_points() {
        let t = TestDir::new("plot-line");
        let p = t.0.join("loss.svg");
        let train = Series::new(
            "train <loss>",
            (0..200).map(|i| (i as f64 * 64.0, 2.0 / (1.0 + i as f64))).collect(),
        );
        let mut val_pts: Vec<(f64, f64)> =
            (0..20).map(|i| (i as f64 * 640.0, 2.5 / (1.0 + i as f64))).collect();
        val_pts[5].1 = f64::NAN;
        val_pts[6].1 = f64::INFINITY;
        let val = Series::new("validation", val_pts);
        let spec = PlotSpec::new("Surrogate loss", "examples seen", "loss").log_y();
        line_plot(&p, &spec, &[train, val]).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let texts = text_elements(&svg);
        for want in ["train &lt;loss&gt;", "validation", "Surrogate loss", "examples seen", "loss"] {
            assert!(texts.iter().any(|t| t == want), "missing text {want:?} in {texts:?}");
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "non-finite values leaked into the SVG");
        // Two colors for two series.
        assert!(svg.contains("#1F77B4") || svg.contains("#1f77b4"));
        assert!(svg.contains("#FF7F0E") || svg.contains("#ff7f0e"));
    }

    #[test]
    fn log2_axis_is_labelled_with_powers_of_two() {
        let t = TestDir::new("plot-log2");
        let p = t.0.join("sweep.svg");
        let pts: Vec<(f64, f64)> = (0..=12)
            .map(|k| {
                ((1u32 << k) as f64, 300.0 * (1u32 << k) as f64 / (1.0 + (1u32 << k) as f64 / 512.0))
            })
            .collect();
        let spec = PlotSpec::new("Throughput", "batch size", "examples/s").log2_x().log_y();
        line_plot(
            &p,
            &spec,
            &[Series::new("gpu", pts), Series::new("cpu", vec![(1.0, 273.0), (4096.0, 14000.0)])],
        )
        .unwrap();
        let texts = text_elements(&std::fs::read_to_string(&p).unwrap());
        for want in ["1", "2", "4", "8", "64", "1024", "4096", "gpu", "cpu"] {
            assert!(texts.iter().any(|t| t == want), "missing tick {want:?} in {texts:?}");
        }
    }

    #[test]
    fn panels_and_degenerate_inputs_render() {
        let t = TestDir::new("plot-panels");
        let left = Panel {
            spec: PlotSpec::new("loss", "examples", "loss"),
            series: vec![Series::new("train", vec![(0.0, 1.0), (1.0, 0.5)])],
        };
        let right = Panel {
            spec: PlotSpec::new("0-1 error", "examples", "error"),
            series: vec![
                Series::new("constant", vec![(0.0, 0.1), (1.0, 0.1)]),
                Series::new("empty", vec![]),
                Series::new("nan only", vec![(f64::NAN, 1.0)]),
            ],
        };
        let p = t.0.join("two.svg");
        two_panel(&p, &left, &right).unwrap();
        let texts = text_elements(&std::fs::read_to_string(&p).unwrap());
        for want in ["train", "constant", "empty", "nan only", "loss", "0-1 error"] {
            assert!(texts.iter().any(|t| t == want), "missing {want:?} in {texts:?}");
        }
        // Nothing to plot at all, and a log axis with only non-positive values.
        let q = t.0.join("empty.svg");
        line_plot(
            &q,
            &PlotSpec::new("", "x", "y").log_x().log_y(),
            &[Series::new("zeros", vec![(0.0, 0.0), (-1.0, 2.0)])],
        )
        .unwrap();
        assert!(std::fs::metadata(&q).unwrap().len() > 0);
        assert!(panels_plot(&t.0.join("none.svg"), &[]).is_err());
        let e = line_plot(&t.0.join("no/dir/x.svg"), &PlotSpec::default(), &[]).unwrap_err();
        assert!(e.to_string().contains("no/dir"), "{e}");
    }

    #[test]
    fn histogram_renders_bars_and_checks_edges() {
        let t = TestDir::new("plot-hist");
        let p = t.0.join("spectrum.svg");
        let edges: Vec<f64> = (0..=20).map(|i| i as f64 * 0.5).collect();
        let values: Vec<f64> = (0..20).map(|i| ((i as f64 - 8.0) / 3.0).powi(2).neg_exp()).collect();
        let h =
            HistSeries { name: "Hessian spectrum".into(), edges: edges.clone(), values: values.clone() };
        let h2 = HistSeries {
            name: "at init".into(),
            edges,
            values: values.iter().map(|v| v * 0.5).collect(),
        };
        histogram_plot(&p, &PlotSpec::new("Spectral density", "eigenvalue", "density"), &[h, h2])
            .unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        let texts = text_elements(&svg);
        assert!(texts.iter().any(|t| t == "Hessian spectrum") && texts.iter().any(|t| t == "at init"));
        assert!(svg.matches("<rect").count() >= 40, "bars missing");
        let log = t.0.join("log.svg");
        let hl = HistSeries {
            name: "log".into(),
            edges: vec![1e-3, 1e-2, 1e-1, 1.0],
            values: vec![0.0, 5.0, 1.0],
        };
        histogram_plot(&log, &PlotSpec::new("", "λ", "count").log_x().log_y(), &[hl]).unwrap();
        let bad = HistSeries { name: "bad".into(), edges: vec![0.0, 1.0], values: vec![1.0, 2.0] };
        let e = histogram_plot(&t.0.join("bad.svg"), &PlotSpec::default(), &[bad]).unwrap_err();
        assert!(e.to_string().contains("bad.svg") && e.to_string().contains("2 edges"), "{e}");
    }

    trait NegExp {
        fn neg_exp(self) -> f64;
    }
    impl NegExp for f64 {
        fn neg_exp(self) -> f64 {
            (-self).exp()
        }
    }

    #[test]
    fn tick_helpers() {
        let nt = nice_ticks(0.0, 1.0, 5);
        assert_eq!(nt.len(), 6);
        assert!(
            nt.iter().zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]).all(|(a, b)| (a - b).abs() < 1e-12),
            "{nt:?}"
        );
        assert_eq!(nice_ticks(3.0, 97.0, 5), vec![20.0, 40.0, 60.0, 80.0]);
        assert_eq!(fmt_tick(0.6000000000000001), "0.6");
        assert_eq!(fmt_tick(1500.0), "1500");
        assert_eq!(fmt_tick(2.5e-5), "2.5e-5");
        assert_eq!(fmt_tick(1e8), "1e8");
        assert_eq!(fmt_tick(-0.3), "-0.3");
        assert_eq!(fmt_pow2(0.0), "1");
        assert_eq!(fmt_pow2(12.0), "4096");
        assert_eq!(fmt_pow2(-1.0), "0.5");
        let (major, minor) = ticks(Scale::Log2, -0.3, 12.3);
        assert_eq!(major, (0..=12).map(f64::from).collect::<Vec<_>>());
        assert!(minor.is_empty());
        let (major, minor) = ticks(Scale::Log2, -0.3, 20.3);
        assert_eq!(major, (0..=20).step_by(2).map(f64::from).collect::<Vec<_>>());
        assert_eq!(minor.len(), 10);
        let (major, _) = ticks(Scale::Log10, 0.1, 0.4); // 1.26 .. 2.5: no whole decade
        assert!(!major.is_empty());
    }
}

//! Two SVG figures the line plots cannot draw: a heatmap with contour lines (a loss surface over
//! a plane in parameter space) and stacked panels of lines with event markers (loss spikes and
//! clip events over training steps).
//!
//! Contours are traced by marching squares on the grid values (in the colour scale, so log-spaced
//! levels on a log colour scale); saddle cells are split by the cell-centre average. Non-finite
//! grid values are drawn grey and excluded from the colour range. Files are written atomically.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::Series;
use super::rundir::write_atomic;
use super::ReportError;

const FONT: &str = "sans-serif";

/// Titles and scales of a heatmap.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeatmapSpec {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Name of the coloured quantity (the colour bar's label).
    pub z_label: String,
    /// Colour by log10 of the value (values ≤ 0 drawn grey).
    pub log_z: bool,
    /// Number of contour levels (0 = none).
    pub contours: usize,
}

/// A labelled point drawn over the heatmap.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

/// Viridis, 9 control points.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// The colour of `t` in [0, 1].
pub fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let f = t * (VIRIDIS.len() - 1) as f64;
    let i = (f.floor() as usize).min(VIRIDIS.len() - 2);
    let u = f - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * u).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Cell edges around centres `c` (midpoints, the outer ones mirrored).
fn edges(c: &[f64]) -> Vec<f64> {
    match c.len() {
        0 => vec![0.0, 1.0],
        1 => vec![c[0] - 0.5, c[0] + 0.5],
        n => {
            let mut e = Vec::with_capacity(n + 1);
            e.push(c[0] - (c[1] - c[0]) / 2.0);
            for i in 0..n - 1 {
                e.push((c[i] + c[i + 1]) / 2.0);
            }
            e.push(c[n - 1] + (c[n - 1] - c[n - 2]) / 2.0);
            e
        }
    }
}

/// Contour segments of `level` over grid values `v[j][i]` at `(xs[i], ys[j])` (marching squares).
pub fn contour_segments(xs: &[f64], ys: &[f64], v: &[f64], level: f64) -> Vec<[(f64, f64); 2]> {
    let (nx, ny) = (xs.len(), ys.len());
    let mut out = Vec::new();
    if nx < 2 || ny < 2 || v.len() < nx * ny {
        return out;
    }
    let at = |i: usize, j: usize| v[j * nx + i];
    // Crossing point on the edge between grid points a and b.
    let cross = |(xa, ya, va): (f64, f64, f64), (xb, yb, vb): (f64, f64, f64)| {
        let t = if vb != va { ((level - va) / (vb - va)).clamp(0.0, 1.0) } else { 0.5 };
        (xa + t * (xb - xa), ya + t * (yb - ya))
    };
    for j in 0..ny - 1 {
        for i in 0..nx - 1 {
            // Corners counter-clockwise from bottom-left.
            let c = [
                (xs[i], ys[j], at(i, j)),
                (xs[i + 1], ys[j], at(i + 1, j)),
                (xs[i + 1], ys[j + 1], at(i + 1, j + 1)),
                (xs[i], ys[j + 1], at(i, j + 1)),
            ];
            if c.iter().any(|p| !p.2.is_finite()) {
                continue;
            }
            let idx = c.iter().enumerate().fold(0usize, |m, (k, p)| m | (((p.2 > level) as usize) << k));
            if idx == 0 || idx == 15 {
                continue;
            }
            // Edge k joins corner k and corner k+1.
            let e = |k: usize| cross(c[k], c[(k + 1) % 4]);
            let crossed: Vec<usize> =
                (0..4).filter(|&k| (c[k].2 > level) != (c[(k + 1) % 4].2 > level)).collect();
            match crossed.len() {
                2 => out.push([e(crossed[0]), e(crossed[1])]),
                4 => {
                    // Saddle: the centre decides which corners connect.
                    let centre = c.iter().map(|p| p.2).sum::<f64>() / 4.0;
                    let above0 = c[0].2 > level;
                    if (centre > level) == above0 {
                        out.push([e(0), e(1)]);
                        out.push([e(2), e(3)]);
                    } else {
                        out.push([e(3), e(0)]);
                        out.push([e(1), e(2)]);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A tick label with about three significant digits and no float noise: `0.79`, `1500`, `2.5e-5`.
fn fmt_val(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || a < 1e-12 {
        return if v.is_finite() { "0".into() } else { format!("{v}") };
    }
    if (1e-3..1e5).contains(&a) {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    }
}

/// A heatmap of `z` (row-major `[ys.len()][xs.len()]`, `z[j * nx + i]` at `(xs[i], ys[j])`) with
/// contour lines, a colour bar and `marks`.
pub fn heatmap(
    path: &Path,
    spec: &HeatmapSpec,
    xs: &[f64],
    ys: &[f64],
    z: &[f64],
    marks: &[Mark],
) -> Result<(), ReportError> {
    if xs.is_empty() || ys.is_empty() || z.len() != xs.len() * ys.len() {
        return Err(ReportError::Invalid {
            path: path.to_path_buf(),
            message: format!("heatmap needs {} × {} values, got {}", xs.len(), ys.len(), z.len()),
        });
    }
    let svg = render_heatmap(spec, xs, ys, z, marks)
        .map_err(|message| ReportError::Plot { path: path.to_path_buf(), message })?;
    write_atomic(path, svg.as_bytes())
}

fn render_heatmap(
    spec: &HeatmapSpec,
    xs: &[f64],
    ys: &[f64],
    z: &[f64],
    marks: &[Mark],
) -> Result<String, String> {
    let tf = |v: f64| -> Option<f64> {
        if !v.is_finite() {
            None
        } else if spec.log_z {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    };
    let t: Vec<f64> = z.iter().map(|&v| tf(v).unwrap_or(f64::NAN)).collect();
    let (mut lo, mut hi) = t
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let (ex, ey) = (edges(xs), edges(ys));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 680)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (main, bar) = root.split_horizontally(770);
        let mut chart = ChartBuilder::on(&main)
            .margin(14)
            .caption(&spec.title, (FONT, 22))
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(ex[0]..ex[ex.len() - 1], ey[0]..ey[ey.len() - 1])
            .map_err(err)?;
        let fmt = |v: &f64| fmt_val(*v);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(spec.x_label.as_str())
            .y_desc(spec.y_label.as_str())
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let nx = xs.len();
        let cells = (0..ys.len()).flat_map(|j| (0..nx).map(move |i| (i, j)));
        chart
            .draw_series(cells.map(|(i, j)| {
                let v = t[j * nx + i];
                let color =
                    if v.is_finite() { viridis((v - lo) / (hi - lo)) } else { RGBColor(190, 190, 190) };
                Rectangle::new([(ex[i], ey[j]), (ex[i + 1], ey[j + 1])], color.filled())
            }))
            .map_err(err)?;
        for k in 1..=spec.contours {
            let level = lo + (hi - lo) * k as f64 / (spec.contours + 1) as f64;
            let segs = contour_segments(xs, ys, &t, level);
            chart
                .draw_series(
                    segs.into_iter()
                        .map(|s| PathElement::new(vec![s[0], s[1]], WHITE.mix(0.8).stroke_width(1))),
                )
                .map_err(err)?;
        }
        for m in marks {
            chart
                .draw_series(std::iter::once(Circle::new((m.x, m.y), 5, RGBColor(214, 39, 40).filled())))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    m.label.clone(),
                    (m.x, m.y),
                    (FONT, 15).into_font().color(&WHITE),
                )))
                .map_err(err)?;
        }
        draw_colorbar(&bar, spec, lo, hi)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn draw_colorbar(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    spec: &HeatmapSpec,
    lo: f64,
    hi: f64,
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(50)
        .margin_bottom(62)
        .margin_right(8)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(err)?;
    let log = spec.log_z;
    let fy = move |v: &f64| if log { fmt_val(10f64.powf(*v)) } else { fmt_val(*v) };
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(if log { format!("{} (log scale)", spec.z_label) } else { spec.z_label.clone() })
        .y_label_formatter(&fy)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let n = 64;
    chart
        .draw_series((0..n).map(|k| {
            let (a, b) =
                (lo + (hi - lo) * k as f64 / n as f64, lo + (hi - lo) * (k + 1) as f64 / n as f64);
            Rectangle::new([(0.0, a), (1.0, b)], viridis((k as f64 + 0.5) / n as f64).filled())
        }))
        .map_err(err)?;
    Ok(())
}

// ---- lines with events -------------------------------------------------------------------------

/// Marker shape of an event series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerShape {
    Circle,
    Cross,
    Triangle,
}

/// Points drawn as markers, not joined.
#[derive(Clone, Debug, PartialEq)]
pub struct Markers {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub shape: MarkerShape,
}

/// One panel: lines, event markers and horizontal reference lines, sharing the figure's x axis.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventPanel {
    pub y_label: String,
    pub log_y: bool,
    pub lines: Vec<Series>,
    pub markers: Vec<Markers>,
    /// `(name, y)` dashed reference lines (e.g. the clipping threshold).
    pub hlines: Vec<(String, f64)>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

/// Panels stacked vertically over a shared x axis, in one SVG file.
pub fn event_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    panels: &[EventPanel],
) -> Result<(), ReportError> {
    if panels.is_empty() {
        return Err(ReportError::Plot { path: path.to_path_buf(), message: "no panels to draw".into() });
    }
    let svg = render_events(title, x_label, panels)
        .map_err(|message| ReportError::Plot { path: path.to_path_buf(), message })?;
    write_atomic(path, svg.as_bytes())
}

fn render_events(title: &str, x_label: &str, panels: &[EventPanel]) -> Result<String, String> {
    let ty = |log: bool, v: f64| -> Option<f64> {
        if !v.is_finite() {
            None
        } else if log {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    };
    let xs: Vec<f64> = panels
        .iter()
        .flat_map(|p| {
            p.lines
                .iter()
                .flat_map(|s| s.points.iter())
                .chain(p.markers.iter().flat_map(|m| m.points.iter()))
        })
        .map(|p| p.0)
        .filter(|x| x.is_finite())
        .collect();
    let (mut x0, mut x1) =
        xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let mut svg = String::new();
    {
        let height = 60 + 330 * panels.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, (FONT, 22)).map_err(err)?;
        let areas = root.split_evenly((panels.len(), 1));
        for (area, p) in areas.iter().zip(panels) {
            let ys: Vec<f64> = p
                .lines
                .iter()
                .flat_map(|s| s.points.iter())
                .chain(p.markers.iter().flat_map(|m| m.points.iter()))
                .map(|q| q.1)
                .chain(p.hlines.iter().map(|h| h.1))
                .filter_map(|v| ty(p.log_y, v))
                .collect();
            let (mut y0, mut y1) =
                ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
            if !y0.is_finite() {
                (y0, y1) = (0.0, 1.0);
            }
            let pad = ((y1 - y0) * 0.05).max(1e-9);
            let (y0, y1) = (y0 - pad, y1 + pad);
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(err)?;
            let log = p.log_y;
            let fy = move |v: &f64| if log { fmt_val(10f64.powf(*v)) } else { fmt_val(*v) };
            let fx = |v: &f64| fmt_val(*v);
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(if log { format!("{} (log scale)", p.y_label) } else { p.y_label.clone() })
                .x_label_formatter(&fx)
                .y_label_formatter(&fy)
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 15))
                .bold_line_style(BLACK.mix(0.12))
                .light_line_style(BLACK.mix(0.04))
                .draw()
                .map_err(err)?;
            let mut ci = 0;
            for s in &p.lines {
                let color = COLORS[ci % COLORS.len()];
                ci += 1;
                let pts: Vec<(f64, f64)> =
                    s.points.iter().filter_map(|&(x, y)| Some((x, ty(log, y)?))).collect();
                if pts.len() <= 64 {
                    // Few points (or a lone one, which a line cannot show): mark each.
                    chart
                        .draw_series(pts.iter().map(|&q| Circle::new(q, 2, color.filled())))
                        .map_err(err)?;
                }
                chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(err)?
                    .label(s.name.as_str())
                    .legend(move |(lx, ly)| {
                        PathElement::new(vec![(lx, ly), (lx + 22, ly)], color.stroke_width(2))
                    });
            }
            for m in &p.markers {
                let color = COLORS[ci % COLORS.len()];
                ci += 1;
                let pts: Vec<(f64, f64)> =
                    m.points.iter().filter_map(|&(x, y)| Some((x, ty(log, y)?))).collect();
                let style = color.stroke_width(2);
                let shape = m.shape;
                let anno =
                    match shape {
                        MarkerShape::Circle => chart
                            .draw_series(pts.into_iter().map(|q| Circle::new(q, 5, style).into_dyn())),
                        MarkerShape::Cross => chart
                            .draw_series(pts.into_iter().map(|q| Cross::new(q, 5, style).into_dyn())),
                        MarkerShape::Triangle => chart.draw_series(
                            pts.into_iter().map(|q| TriangleMarker::new(q, 6, style).into_dyn()),
                        ),
                    }
                    .map_err(err)?;
                anno.label(m.name.as_str()).legend(move |(lx, ly)| match shape {
                    MarkerShape::Circle => Circle::new((lx + 11, ly), 5, style).into_dyn(),
                    MarkerShape::Cross => Cross::new((lx + 11, ly), 5, style).into_dyn(),
                    MarkerShape::Triangle => TriangleMarker::new((lx + 11, ly), 6, style).into_dyn(),
                });
            }
            for (name, y) in &p.hlines {
                if let Some(v) = ty(log, *y) {
                    let color = BLACK.mix(0.6);
                    chart
                        .draw_series(
                            dashes(x0, x1, v)
                                .into_iter()
                                .map(move |seg| PathElement::new(seg, color.stroke_width(1))),
                        )
                        .map_err(err)?
                        .label(name.as_str())
                        .legend(move |(lx, ly)| {
                            PathElement::new(vec![(lx, ly), (lx + 22, ly)], color.stroke_width(1))
                        });
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .margin(8)
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A dashed horizontal line at `y` from `x0` to `x1` as 60 segments.
fn dashes(x0: f64, x1: f64, y: f64) -> Vec<Vec<(f64, f64)>> {
    let n = 60;
    (0..n)
        .step_by(2)
        .map(|k| {
            vec![
                (x0 + (x1 - x0) * k as f64 / n as f64, y),
                (x0 + (x1 - x0) * (k + 1) as f64 / n as f64, y),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contours_of_a_bowl_are_closed_rings_at_the_level() {
        let c: Vec<f64> = (0..21).map(|i| -1.0 + i as f64 * 0.1).collect();
        let v: Vec<f64> = c.iter().flat_map(|&y| c.iter().map(move |&x| x * x + y * y)).collect();
        let segs = contour_segments(&c, &c, &v, 0.25);
        assert!(segs.len() > 12, "{} segments", segs.len());
        for s in &segs {
            for &(x, y) in s {
                let r = (x * x + y * y).sqrt();
                assert!((r - 0.5).abs() < 0.02, "point ({x}, {y}) at radius {r}");
            }
        }
    }

    #[test]
    fn figures_are_written_and_bad_shapes_are_refused() {
        let dir = crate::report::TestDir::new("heatmap");
        let c = [-1.0, 0.0, 1.0];
        let z = [3.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, f64::NAN];
        let spec = HeatmapSpec { title: "t".into(), contours: 3, log_z: true, ..Default::default() };
        let p = dir.0.join("h.svg");
        heatmap(&p, &spec, &c, &c, &z, &[Mark { x: 0.0, y: 0.0, label: "θ".into() }]).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("<svg"));
        assert!(heatmap(&p, &spec, &c, &c, &z[..4], &[]).is_err());
        let panel = EventPanel {
            y_label: "loss".into(),
            log_y: true,
            lines: vec![Series::new("loss", vec![(1.0, 1.0), (2.0, 0.5), (3.0, 4.0)])],
            markers: vec![Markers {
                name: "spike".into(),
                points: vec![(3.0, 4.0)],
                shape: MarkerShape::Circle,
            }],
            hlines: vec![("clip".into(), 2.0)],
        };
        let q = dir.0.join("e.svg");
        event_plot(&q, "events", "step", &[panel.clone(), panel]).unwrap();
        assert!(std::fs::read_to_string(&q).unwrap().contains("spike"));
    }
}

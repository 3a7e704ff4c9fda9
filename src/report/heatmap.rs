//! A figure the line plots cannot draw: a heatmap with contour lines (a loss surface over a plane
//! in parameter space) and a colour bar. (The event plots once here live in `report::events` and
//! are re-exported.)
//!
//! Contours are traced by marching squares on the grid values (in the colour scale, so log-spaced
//! levels on a log colour scale); saddle cells are split by the cell-centre average. Non-finite
//! grid values are drawn grey and excluded from the colour range. Files are written atomically.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use super::events::{event_plot, EventPanel, MarkerShape, Markers};
use super::plot::axes::{value_range, Scale, TickFormat};
use super::plot::style::{err, FONT, PALETTE};
use super::plot::write_svg;
use super::ReportError;

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
    write_svg(path, render_heatmap(spec, xs, ys, z, marks))
}

fn render_heatmap(
    spec: &HeatmapSpec,
    xs: &[f64],
    ys: &[f64],
    z: &[f64],
    marks: &[Mark],
) -> Result<String, String> {
    let scale = Scale::log10_if(spec.log_z);
    let t: Vec<f64> = z.iter().map(|&v| scale.fwd(v).unwrap_or(f64::NAN)).collect();
    let (lo, hi) = value_range(t.iter().copied().filter(|v| v.is_finite()));
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
        let (xf, yf) = (
            TickFormat::SHORT.for_range(ex[0], ex[ex.len() - 1]),
            TickFormat::SHORT.for_range(ey[0], ey[ey.len() - 1]),
        );
        let fmt = move |v: &f64| xf.format(*v);
        let fmt_y = move |v: &f64| yf.format(*v);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(spec.x_label.as_str())
            .y_desc(spec.y_label.as_str())
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt_y)
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
                .draw_series(std::iter::once(Circle::new((m.x, m.y), 5, PALETTE[3].filled())))
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
    let zf = crate::report::events::short_for(log, lo, hi);
    let fy = move |v: &f64| zf.format(if log { 10f64.powf(*v) } else { *v });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::Series;

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

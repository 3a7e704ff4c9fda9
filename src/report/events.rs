//! Stacked panels of lines with event markers (loss spikes and clip events over training steps)
//! and dashed reference lines, over one shared x axis. The file is written atomically.

use std::path::Path;

use plotters::prelude::*;

use super::plot::axes::{extent, value_range, Scale, TickFormat};
use super::plot::style::{draw_legend, err, line_key, FONT, PALETTE};
use super::plot::{write_svg, Series};
use super::ReportError;

const SHORT: TickFormat = TickFormat::SHORT;

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

/// The colour cycle of event plots: the first five of the palette, then its grey.
const COLORS: [RGBColor; 6] = [PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3], PALETTE[4], PALETTE[7]];

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
    write_svg(path, render_events(title, x_label, panels))
}

fn render_events(title: &str, x_label: &str, panels: &[EventPanel]) -> Result<String, String> {
    let ty = |log: bool, v: f64| Scale::log10_if(log).fwd(v);
    let (x0, x1) = value_range(
        panels
            .iter()
            .flat_map(|p| {
                p.lines
                    .iter()
                    .flat_map(|s| s.points.iter())
                    .chain(p.markers.iter().flat_map(|m| m.points.iter()))
            })
            .map(|p| p.0)
            .filter(|x| x.is_finite()),
    );
    let mut svg = String::new();
    {
        let height = 60 + 330 * panels.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(title, (FONT, 22)).map_err(err)?;
        let areas = root.split_evenly((panels.len(), 1));
        for (area, p) in areas.iter().zip(panels) {
            let ys = p
                .lines
                .iter()
                .flat_map(|s| s.points.iter())
                .chain(p.markers.iter().flat_map(|m| m.points.iter()))
                .map(|q| q.1)
                .chain(p.hlines.iter().map(|h| h.1))
                .filter_map(|v| ty(p.log_y, v));
            let (y0, y1) = extent(ys).unwrap_or((0.0, 1.0));
            let pad = ((y1 - y0) * 0.05).max(1e-9);
            let (y0, y1) = (y0 - pad, y1 + pad);
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(err)?;
            let log = p.log_y;
            let yf = short_for(log, y0, y1);
            let fy = move |v: &f64| yf.format(if log { 10f64.powf(*v) } else { *v });
            let xf = SHORT.for_range(x0, x1);
            let fx = move |v: &f64| xf.format(*v);
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
                    .legend(line_key(color.stroke_width(2)));
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
                        .legend(line_key(color.stroke_width(1)));
                }
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, 8, 13)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A dashed horizontal line at `y` from `x0` to `x1` as 60 segments.
/// SHORT tick labels with the digits that tell apart ticks over `[lo, hi]` (plotted
/// coordinates: log10 of the values when `log`): a gradient norm of 6.7e8 ± 0.1 % had ten
/// ticks all written `6.7e8`.
pub(crate) fn short_for(log: bool, lo: f64, hi: f64) -> TickFormat {
    match log {
        false => SHORT.for_range(lo, hi),
        true => {
            let values: Vec<f64> =
                (0..=10).map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / 10.0)).collect();
            SHORT.to_tell_apart(&values)
        }
    }
}

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

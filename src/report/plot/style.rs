//! What every figure draws the same way: the font, the colour cycle, chart frames on [`Axis`]
//! pairs, legend keys and legend boxes, and plotters errors as text.

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use super::axes::Axis;
use super::PlotSpec;

pub(crate) const FONT: &str = "sans-serif";

/// Tableau-10: distinct colors that stay apart for color-blind readers too.
pub(crate) const PALETTE: [RGBColor; 10] = [
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

/// A plotters error as the message of [`crate::report::ReportError::Plot`].
pub(crate) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

pub(crate) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Axis, Axis>>;

/// A titled chart on `area` over the axes `x` and `y`, with labelled ticks and a light grid.
pub(crate) fn build_chart<'a, 'b>(
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

/// The legend key of a line: a 22 px stroke in `style`.
pub(crate) fn line_key(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 22, ly)], style)
}

/// The corner of the plot with the fewest points, for the legend.
pub(crate) fn legend_corner(points: &[(f64, f64)], x: &Axis, y: &Axis) -> SeriesLabelPosition {
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

/// The legend box at `corner`: labels in `font_size` px, `margin` px from the plot's edges.
pub(crate) fn draw_legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    corner: SeriesLabelPosition,
    margin: u32,
    font_size: u32,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(corner)
        .margin(margin)
        .label_font((FONT, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}

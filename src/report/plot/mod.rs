//! SVG plots with plotters' SVG backend: line plots (one or more panels side by side) and
//! histograms. Text is written as SVG `<text>` elements, so no font files are needed.
//!
//! Log axes are drawn in transformed coordinates (log10 or log2 of the value) with ticks placed
//! here: `log2_x` puts ticks at powers of two labelled 1, 2, 4, ... (batch-size axes), `log_x` and
//! `log_y` at powers of ten. Points that cannot be shown (non-finite, or ≤ 0 on a log axis) are
//! skipped and break the line there. The file is written atomically.

pub(crate) mod axes;
mod render;
pub(crate) mod style;
#[cfg(test)]
mod tests;

use std::path::Path;

use self::render::{render_histogram, render_panels};
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

/// Writes rendered SVG text to `path` atomically; a rendering failure becomes
/// [`ReportError::Plot`] naming the file.
pub(crate) fn write_svg(path: &Path, svg: Result<String, String>) -> Result<(), ReportError> {
    let svg = svg.map_err(|message| ReportError::Plot { path: path.to_path_buf(), message })?;
    write_atomic(path, xml_chars(svg).as_bytes())
}

/// `svg` with every character XML 1.0 forbids (control characters other than tab, line feed
/// and carriage return; U+FFFE, U+FFFF) replaced by U+FFFD. plotters escapes `<`, `&` and `"`
/// in text but passes these through, and a label holding one (an overlay `--label`, a run
/// directory's name) made a file XML parsers refuse. The markup itself holds none.
pub(crate) fn xml_chars(svg: String) -> String {
    let forbidden =
        |c: char| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}');
    match svg.contains(forbidden) {
        false => svg,
        true => svg.chars().map(|c| if forbidden(c) { '\u{FFFD}' } else { c }).collect(),
    }
}

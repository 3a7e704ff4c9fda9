//! What `batchscope gemm` prints and writes: the progress line and table, gemm.csv, gemm.svg
//! and summary.json.

use std::path::Path;

use super::args::precision_name;
use super::{Measured, Peaks, CSV_HEADER};
use crate::app::output::write_summary;
use crate::backend::gpu::GpuBackend;
use crate::backend::Backend;
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::table::Table;

/// The progress line of one product: the default's and the fastest's TFLOP/s.
pub(super) fn line(r: &Measured) -> String {
    let g = &r.gemm;
    let mut s = format!("{} {} {}x{}x{}:", precision_name(r.f16), r.layout.name(), g.m, g.n, g.k);
    for (c, t) in &r.result.times {
        match t {
            Some(_) if !r.result.agrees(*c) => s += &format!(" {} WRONG", c.name()),
            Some(ms) => s += &format!(" {} {}", c.name(), sig3(Some(r.tflops(*ms)))),
            None => s += &format!(" {} failed", c.name()),
        }
    }
    s += " TFLOP/s";
    for (c, m) in &r.result.wrong {
        s += &format!("\n  WRONG: {} computed {m}", c.name());
    }
    s
}

/// `v` with three significant digits (0.00628, 5.34, 612), `-` for none: TFLOP/s of a
/// software adapter and of an H200 in one format.
pub(super) fn sig3(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v > 0.0 => {
            let digits = (2 - v.log10().floor() as i32).clamp(0, 9) as usize;
            format!("{v:.digits$}")
        }
        Some(v) => format!("{v}"),
        None => "-".to_string(),
    }
}

/// One row per product: default and fastest kernels, % of peak, the peer and the ratio.
pub(super) fn table(rows: &[Measured]) -> Table {
    let mut t = Table::new([
        "precision",
        "layout",
        "m x n x k",
        "default",
        "TFLOP/s",
        "fastest",
        "TFLOP/s",
        "% peak",
        "peer",
        "ratio",
    ]);
    for r in rows {
        let g = &r.gemm;
        let dflt = r.default_ms().map(|ms| r.tflops(ms));
        let fastest = r.fastest();
        let best = fastest.as_ref().map(|(_, ms)| r.tflops(*ms));
        let pct = best.zip(r.peak_tflops).map(|(b, p)| 100.0 * b / p);
        let ratio = best.zip(r.peer_tflops).map(|(b, p)| b / p);
        t.row([
            precision_name(r.f16).to_string(),
            r.layout.name().to_string(),
            format!("{}x{}x{}", g.m, g.n, g.k),
            r.result.choice.name(),
            sig3(dflt),
            fastest.map_or("-".to_string(), |(c, _)| c),
            sig3(best),
            sig3(pct),
            sig3(r.peer_tflops),
            sig3(ratio),
        ]);
    }
    t
}

/// What summary.json holds beside the products: the tensor-core kernels' verdicts (with f16)
/// and the ceilings (with `--ceilings`).
pub(super) struct Extra<'a> {
    pub tensor_cores: Option<&'a str>,
    pub ceilings: Option<serde_json::Value>,
    /// The products asked for that could not be timed, each with why (`precision MxNxK
    /// layout: reason`).
    pub skipped: &'a [String],
}

pub(super) fn write_outputs(
    dir: &Path,
    gpu: &GpuBackend,
    rows: &[Measured],
    peaks: &Peaks,
    peers: Option<&Path>,
    extra: Extra,
) -> anyhow::Result<()> {
    let mut cells = Vec::new();
    for r in rows {
        let fastest = r.fastest().map(|(c, _)| c);
        for (c, t) in &r.result.times {
            let tflops = t.map(|ms| r.tflops(ms));
            cells.push(vec![
                Cell::Text(precision_name(r.f16).into()),
                Cell::Text(r.layout.name().into()),
                Cell::from(r.gemm.m),
                Cell::from(r.gemm.n),
                Cell::from(r.gemm.k),
                Cell::Text(c.name()),
                t.map_or(Cell::Empty, Cell::Num),
                tflops.map_or(Cell::Empty, Cell::Num),
                Cell::from((*c == r.result.choice) as u32),
                Cell::from((fastest.as_deref() == Some(c.name().as_str())) as u32),
                tflops.zip(r.peak_tflops).map_or(Cell::Empty, |(f, p)| Cell::Num(100.0 * f / p)),
                r.peak_tflops.map_or(Cell::Empty, Cell::Num),
                r.peer_tflops.map_or(Cell::Empty, Cell::Num),
                tflops.zip(r.peer_tflops).map_or(Cell::Empty, |(f, p)| Cell::Num(f / p)),
                Cell::Text(r.result.method.into()),
                t.map_or(Cell::Empty, |_| Cell::from(r.result.agrees(*c) as u32)),
            ]);
        }
    }
    write_csv(&dir.join("gemm.csv"), &CSV_HEADER, &cells)?;
    plot(dir, gpu, rows)?;
    let products: Vec<_> = rows
        .iter()
        .map(|r| {
            let fastest = r.fastest();
            serde_json::json!({
                "precision": precision_name(r.f16),
                "layout": r.layout.name(),
                "m": r.gemm.m, "n": r.gemm.n, "k": r.gemm.k,
                "default": r.result.choice.name(),
                "default_tflops": r.default_ms().map(|ms| r.tflops(ms)),
                "fastest": fastest.as_ref().map(|(c, _)| c.clone()),
                "fastest_tflops": fastest.map(|(_, ms)| r.tflops(ms)),
                "peak_tflops": r.peak_tflops,
                "peer_tflops": r.peer_tflops,
                "wrong": r.result.wrong.iter().map(|(c, m)| serde_json::json!({
                    "candidate": c.name(), "row": m.row, "col": m.col, "got": m.got, "want": m.want,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let summary = serde_json::json!({
        "command": "gemm",
        "device": gpu.device_name(),
        "peaks": peaks.describe(),
        "peers": peers.map(|p| p.display().to_string()),
        "timing": rows.first().map(|r| r.result.method),
        "tensor_cores": extra.tensor_cores,
        "shader_checks": gpu.shader_checks(),
        "products": products,
        "skipped": extra.skipped,
        "ceilings": extra.ceilings,
    });
    write_summary(dir, summary)
}

/// `gemm.svg`: TFLOP/s of the fastest kernel against the size n of the square products, a line
/// per precision and layout, and the peer's beside each where the peers file has it.
fn plot(dir: &Path, gpu: &GpuBackend, rows: &[Measured]) -> anyhow::Result<()> {
    let mut series: Vec<Series> = Vec::new();
    let mut push = |name: String, x: f64, y: f64| match series.iter_mut().find(|s| s.name == name) {
        Some(s) => s.points.push((x, y)),
        None => series.push(Series::new(name, vec![(x, y)])),
    };
    for r in rows.iter().filter(|r| r.gemm.m == r.gemm.n && r.gemm.n == r.gemm.k) {
        let what = format!("{} {}", precision_name(r.f16), r.layout.name());
        let n = r.gemm.n as f64;
        if let Some((_, ms)) = r.fastest() {
            push(format!("batchscope {what}"), n, r.tflops(ms));
        }
        if let Some(p) = r.peer_tflops {
            push(format!("peer {what}"), n, p);
        }
    }
    if series.is_empty() {
        return Ok(());
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let title = format!("Matrix products n × n × n, fastest kernel — {}", gpu.device_name());
    line_plot(&dir.join("gemm.svg"), &PlotSpec::new(title, "n", "TFLOP/s").log2_x(), &series)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_three_significant_digits() {
        assert_eq!(sig3(Some(0.006281)), "0.00628");
        assert_eq!(sig3(Some(5.3416)), "5.34");
        assert_eq!(sig3(Some(52.06)), "52.1");
        assert_eq!(sig3(Some(612.4)), "612");
        assert_eq!(sig3(Some(0.0)), "0");
        assert_eq!(sig3(None), "-");
    }
}

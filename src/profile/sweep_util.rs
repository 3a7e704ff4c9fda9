//! NVML columns of the sweep: opening the monitor for the sweep's adapter, the CSV cells and
//! table cells (`n/a` without NVML), and `gpu_utilization.svg`.

use std::path::Path;

use super::hooks::Profilable;
use super::sampler::{UtilMonitor, UtilSummary};
use super::telemetry::{open_nvml, Telemetry};
use crate::backend::BackendKind;
use crate::model::Precision;
use crate::report::csv::Cell;
use crate::report::plot::{panels_plot, Panel, PlotSpec, Series};
use crate::report::table::Table;
use crate::report::ReportError;
use crate::schedule::sweep::SweepRow;

/// Columns appended to `sweep.csv`.
pub const UTIL_HEADER: [&str; 5] =
    ["gpu_util_pct", "sm_clock_mhz", "power_w", "mem_used_mib", "mem_predicted_mib"];

/// Columns of the sweep's utilization table.
pub const UTIL_TABLE_HEADER: [&str; 6] = ["B", "GPU %", "SM MHz", "W", "MiB used", "MiB model"];

/// The monitor for `b`'s adapter and, when NVML cannot be used, the notice line to print.
pub fn open_monitor<B: Profilable>(b: &B) -> (UtilMonitor, Option<String>) {
    if b.kind() != BackendKind::Gpu {
        return (UtilMonitor::new(None), None);
    }
    match open_nvml(&b.pci_bus_id(), &b.adapter_name()) {
        Ok(t) => {
            let source: Box<dyn Telemetry> = Box::new(t);
            (UtilMonitor::new(Some(source)), None)
        }
        Err(e) => {
            (UtilMonitor::new(None), Some(format!("notice: {e}; the utilization columns say n/a")))
        }
    }
}

/// The peak an f16 sweep is divided by when it is a hardware figure: the dense f16 tensor-core
/// peak of [`super::peaks::F16_TENSOR_TABLE`] where the adapter runs f16 products on
/// cooperative matrices and the table knows it. `None`: the sweep measures its own probe (the
/// fp32 matmul for f32, the f16 product the step runs for f16).
pub fn tensor_peak<B: Profilable>(b: &B, precision: Precision) -> Option<(f64, String)> {
    if precision != Precision::F16 || !b.tensor_f16() {
        return None;
    }
    let e = super::peaks::f16_tensor_lookup(&b.adapter_name())?;
    Some((e.gflops, format!("f16 tensor-core peak, table entry {} ({})", e.key, e.reference)))
}

fn fields(u: &UtilSummary) -> [f64; 4] {
    [u.gpu_util_pct, u.sm_clock_mhz, u.power_w, u.mem_used_mib]
}

/// `UTIL_HEADER` cells of one row.
pub fn util_cells(r: &SweepRow) -> Vec<Cell> {
    let na = || Cell::Text("n/a".into());
    let mut cells: Vec<Cell> = match &r.util {
        Some(u) => fields(u).iter().map(|&v| if v.is_finite() { Cell::Num(v) } else { na() }).collect(),
        None => (0..4).map(|_| na()).collect(),
    };
    cells.push(Cell::Num(r.bytes_predicted as f64 / 1048576.0));
    cells
}

/// NVML's figures of one row: GPU %, SM MHz, W, MiB used (`n/a` each without readings).
pub fn util_table_cells(r: &SweepRow) -> Vec<String> {
    match &r.util {
        Some(u) => fields(u)
            .iter()
            .map(|v| if v.is_finite() { format!("{v:.0}") } else { "n/a".into() })
            .collect(),
        None => vec!["n/a".to_string(); 4],
    }
}

/// The sweep's utilization table (NVML readings beside the memory model's prediction), or
/// nothing when no row has readings (the notice line said so).
pub fn util_table(rows: &[SweepRow]) -> String {
    if rows.iter().all(|r| r.util.is_none()) {
        return String::new();
    }
    let mut t = Table::new(UTIL_TABLE_HEADER);
    for r in rows {
        let mut cells = vec![r.batch.to_string()];
        cells.extend(util_table_cells(r));
        cells.push(format!("{:.1}", r.bytes_predicted as f64 / 1048576.0));
        t.row(cells);
    }
    t.render()
}

/// One line naming the rows whose kept window ran below [`THROTTLED_BELOW`] of the maximum SM
/// clock, with their clocks (`None` when there are none): their figures are the device's clock,
/// not the step's.
///
/// [`THROTTLED_BELOW`]: super::sampler::THROTTLED_BELOW
pub fn throttle_note(rows: &[SweepRow]) -> Option<String> {
    let hit: Vec<String> = rows
        .iter()
        .filter(|r| r.throttled)
        .filter_map(|r| {
            let u = r.util?;
            Some(format!("B = {} ({:.0} of {:.0} MHz)", r.batch, u.sm_clock_mhz, u.max_sm_clock_mhz))
        })
        .collect();
    (!hit.is_empty()).then(|| {
        format!(
            "warning: SM clock throttled while timed, in every attempt (up to {}) of every round kept: {}; those rows \
             are the clock's figures, not the step's (sweep again, or read summary.json's \
             throttled flags)",
            crate::schedule::sweep::THROTTLE_ATTEMPTS,
            hit.join(", ")
        )
    })
}

/// `gpu_utilization.svg`: NVML utilization, SM clock and power against batch size (written
/// only when some row has readings).
pub fn util_plot(path: &Path, device: &str, rows: &[SweepRow]) -> Result<bool, ReportError> {
    let series = |name: &str, f: fn(&UtilSummary) -> f64| Series {
        name: name.into(),
        points: rows.iter().filter_map(|r| r.util.as_ref().map(|u| (r.batch as f64, f(u)))).collect(),
    };
    let util = series("GPU utilization %", |u| u.gpu_util_pct);
    if util.points.is_empty() {
        return Ok(false);
    }
    let panel = |title: &str, y: &str, s: Series| Panel {
        spec: PlotSpec::new(format!("{title} — {device}"), "batch size", y).log2_x(),
        series: vec![s],
    };
    panels_plot(
        path,
        &[
            panel("NVML utilization", "% of time a kernel ran", util),
            panel("SM clock", "MHz", series("SM clock", |u| u.sm_clock_mhz)),
            panel("Power", "W", series("board power", |u| u.power_w)),
        ],
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(util: Option<UtilSummary>) -> SweepRow {
        SweepRow {
            backend: "gpu".into(),
            batch: 64,
            ms_per_step_median: 1.0,
            ms_min: 1.0,
            ms_max: 1.0,
            examples_per_s: 64e3,
            gflops: 1.0,
            fraction_of_peak: 0.1,
            host_overhead_ms: 0.1,
            bytes_predicted: 2 * 1048576,
            timing: "gpu_timestamps",
            skipped: None,
            util,
            throttled: false,
            rounds: 1,
            ms_ci_low: 1.0,
            ms_ci_high: 1.0,
            ms_ci_coverage: 0.99,
            step_ms: vec![vec![1.0; 8]],
            host_ms: vec![0.1; 8],
        }
    }

    #[test]
    fn throttled_rows_are_named_with_their_clocks() {
        let u = UtilSummary {
            samples: 3,
            gpu_util_pct: 50.0,
            sm_clock_mhz: 488.0,
            power_w: 104.0,
            mem_used_mib: 162.0,
            max_sm_clock_mhz: 1980.0,
        };
        let mut rows = vec![row(Some(u)), row(Some(u))];
        assert_eq!(throttle_note(&rows), None, "no row flagged");
        rows[1].throttled = true;
        rows[1].batch = 4096;
        let note = throttle_note(&rows).expect("a note");
        assert!(note.contains("B = 4096 (488 of 1980 MHz)") && !note.contains("B = 64 "), "{note}");
    }

    #[test]
    fn without_nvml_the_columns_say_na() {
        let cells = util_cells(&row(None));
        assert_eq!(cells.len(), UTIL_HEADER.len());
        assert!(cells[..4].iter().all(|c| *c == Cell::Text("n/a".into())));
        assert_eq!(cells[4], Cell::Num(2.0));
        assert_eq!(util_table_cells(&row(None)), vec!["n/a"; 4]);
        let d = std::env::temp_dir().join(format!("bs-util-{}", std::process::id()));
        assert!(!util_plot(&d.join("u.svg"), "x", &[row(None)]).unwrap());
        // The CPU backend has no NVML and needs no notice.
        let (m, notice) = open_monitor(&crate::backend::cpu::CpuBackend::new());
        assert!(!m.is_available() && notice.is_none());
    }

    #[test]
    fn with_readings_the_columns_are_numbers() {
        let u = UtilSummary {
            samples: 3,
            gpu_util_pct: 87.0,
            sm_clock_mhz: 1980.0,
            power_w: 410.0,
            mem_used_mib: f64::NAN,
            max_sm_clock_mhz: 1980.0,
        };
        let cells = util_cells(&row(Some(u)));
        assert_eq!(&cells[..3], &[Cell::Num(87.0), Cell::Num(1980.0), Cell::Num(410.0)]);
        assert_eq!(cells[3], Cell::Text("n/a".into()));
        assert_eq!(util_table_cells(&row(Some(u)))[0], "87");
        assert!(util_table(&[row(Some(u))]).contains("1980"));
        assert_eq!(util_table(&[row(None)]), "");
    }
}

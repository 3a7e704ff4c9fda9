//! `batchscope gemm --ceilings`: what this device's arithmetic reaches through WGSL with no
//! storage traffic in the loop ([`crate::backend::ceiling`]), beside the products: the fp32 FMA
//! chains, the tiled kernels' inner loop from workgroup memory, and on tensor cores the
//! multiply-adds from registers (2x2 and 4x4 tiles per subgroup) and the staged kernel's loop
//! from workgroup memory. Each is checked bit for bit against its CPU twin before its figure
//! counts. A product's TFLOP/s over its loop's ceiling says how much its memory traffic costs;
//! a ceiling far below the data-sheet peak says the loop itself (or the driver's translation of
//! it) is the limit.

use std::path::Path;

use crate::backend::ceiling::Ceiling;
use crate::backend::gpu::ceilings::{measure, unavailable, CeilingRun};
use crate::backend::gpu::GpuBackend;
use crate::report::csv::{write_csv, Cell};
use crate::report::table::Table;

/// Workgroups and iterations of each ceiling: on a GPU, about 1 to 5 TFLOP per dispatch on
/// workgroup counts that are multiples of the H200's 132 SMs (whole waves where the occupancy
/// divides them: a partial last wave would understate a ceiling by up to 1 / waves), the
/// tensor-core outputs within a 128 MiB binding; on a software adapter, a few milliseconds.
pub fn sizing(ceiling: Ceiling, software: bool) -> (usize, u32) {
    if software {
        return (2, 64);
    }
    match ceiling {
        Ceiling::Fp32Fma => (132 * 32, 16384),
        Ceiling::TiledInner => (132 * 16, 2048),
        Ceiling::CoopRegs2x2 => (132 * 62, 8192),
        Ceiling::CoopRegs4x4 => (132 * 62, 4096),
        Ceiling::CoopStaged | Ceiling::CoopStagedV4 | Ceiling::CoopStagedV8 => (132 * 8, 2048),
    }
}

/// One ceiling's outcome.
pub struct CeilingRow {
    pub ceiling: Ceiling,
    /// The run, or why it did not run or failed.
    pub run: Result<CeilingRun, String>,
    /// The data-sheet peak it is held against: fp32 for the fp32 loops, the f16 tensor-core
    /// peak for the cooperative ones.
    pub peak_tflops: Option<f64>,
}

impl CeilingRow {
    fn tflops(&self) -> Option<f64> {
        self.run.as_ref().ok().filter(|r| r.exact).map(|r| r.tflops)
    }
}

/// Time every ceiling that can run on `gpu`, printing a line each.
pub fn measure_all(
    gpu: &GpuBackend,
    software: bool,
    peaks: (Option<f64>, Option<f64>),
) -> Vec<CeilingRow> {
    Ceiling::ALL
        .iter()
        .map(|&ceiling| {
            let (workgroups, iters) = sizing(ceiling, software);
            let run = match unavailable(&gpu.dev, ceiling) {
                Some(why) => Err(format!("not run: {why}")),
                None => {
                    measure(&gpu.dev, ceiling, workgroups, iters).map_err(|e| format!("failed: {e}"))
                }
            };
            let peak_tflops = if ceiling.is_coop() { peaks.1 } else { peaks.0 };
            let row = CeilingRow { ceiling, run, peak_tflops };
            match &row.run {
                Ok(r) if !r.exact => {
                    println!("ceiling {}: WRONG output (not the CPU twin's)", ceiling.name())
                }
                Ok(r) => println!(
                    "ceiling {}: {} TFLOP/s",
                    ceiling.name(),
                    super::report::sig3(Some(r.tflops))
                ),
                Err(why) => println!("ceiling {}: {why}", ceiling.name()),
            }
            row
        })
        .collect()
}

/// One row per ceiling: TFLOP/s, % of the data-sheet peak, the launch.
pub fn table(rows: &[CeilingRow]) -> Table {
    let mut t = Table::new(["ceiling", "loop", "TFLOP/s", "% peak", "workgroups x iterations", "check"]);
    for r in rows {
        let (launch, check) = match &r.run {
            Ok(run) => (
                format!("{} x {}", run.workgroups, run.iters),
                if run.exact { "exact" } else { "WRONG" }.to_string(),
            ),
            Err(why) => ("-".to_string(), why.clone()),
        };
        let pct = r.tflops().zip(r.peak_tflops).map(|(f, p)| format!("{:.1}", 100.0 * f / p));
        t.row([
            r.ceiling.name().to_string(),
            r.ceiling.what().to_string(),
            super::report::sig3(r.tflops()),
            pct.unwrap_or_else(|| "-".to_string()),
            launch,
            check,
        ]);
    }
    t
}

/// The ceiling of the loop closest to a kernel candidate's (by its name, as `gemm` prints it):
/// each tensor-core kernel's own loop (the staged kernel's with its tile loads' width); the fp32 FMA chains for the skinny and packed kernels
/// (k walked in lanes, no tiles in workgroup memory); the base tiled loop (BK = 8) for the
/// tiled kernel and the tile family (whose other tiles and depths change its barriers per FMA:
/// they may pass it).
pub fn ceiling_of(candidate: &str) -> Ceiling {
    match candidate {
        "f16_coop" | "f16_coop_v4" | "f16_coop_v8" => Ceiling::CoopRegs2x2,
        "f16_coop64" | "f16_coop64_v4" | "f16_coop64_v8" => Ceiling::CoopRegs4x4,
        "f16_coop_staged" => Ceiling::CoopStaged,
        "f16_coop_staged_v4" => Ceiling::CoopStagedV4,
        "f16_coop_staged_v8" => Ceiling::CoopStagedV8,
        "skinny" | "f16_skinny" | "f16_packed" => Ceiling::Fp32Fma,
        _ => Ceiling::TiledInner,
    }
}

/// [`ceiling_of`] `candidate` with its TFLOP/s, where it ran and was exact.
pub fn ceiling_for(rows: &[CeilingRow], candidate: &str) -> Option<(&'static str, f64)> {
    let c = ceiling_of(candidate);
    rows.iter().find(|r| r.ceiling == c).and_then(|r| r.tflops()).map(|t| (c.name(), t))
}

/// Columns of `ceilings.csv`.
pub const CSV_HEADER: [&str; 10] = [
    "ceiling",
    "workgroups",
    "iterations",
    "ms",
    "tflops",
    "peak_tflops",
    "pct_of_peak",
    "exact",
    "timing",
    "note",
];

/// `ceilings.csv` in `dir`, and the rows as JSON for summary.json.
pub fn write(dir: &Path, rows: &[CeilingRow]) -> anyhow::Result<serde_json::Value> {
    let mut cells = Vec::new();
    let mut json = Vec::new();
    for r in rows {
        let pct = r.tflops().zip(r.peak_tflops).map(|(f, p)| 100.0 * f / p);
        let (run, note) = match &r.run {
            Ok(run) => (Some(run), String::new()),
            Err(why) => (None, why.clone()),
        };
        cells.push(vec![
            Cell::Text(r.ceiling.name().into()),
            run.map_or(Cell::Empty, |x| Cell::from(x.workgroups)),
            run.map_or(Cell::Empty, |x| Cell::from(x.iters)),
            run.map_or(Cell::Empty, |x| Cell::Num(x.ms)),
            r.tflops().map_or(Cell::Empty, Cell::Num),
            r.peak_tflops.map_or(Cell::Empty, Cell::Num),
            pct.map_or(Cell::Empty, Cell::Num),
            run.map_or(Cell::Empty, |x| Cell::from(x.exact as u32)),
            run.map_or(Cell::Empty, |x| Cell::Text(x.method.into())),
            Cell::Text(note.clone()),
        ]);
        json.push(serde_json::json!({
            "ceiling": r.ceiling.name(),
            "loop": r.ceiling.what(),
            "workgroups": run.map(|x| x.workgroups),
            "iterations": run.map(|x| x.iters),
            "ms": run.map(|x| x.ms),
            "tflops": r.tflops(),
            "peak_tflops": r.peak_tflops,
            "pct_of_peak": pct,
            "exact": run.map(|x| x.exact),
            "timing": run.map(|x| x.method),
            "note": (!note.is_empty()).then_some(note),
        }));
    }
    write_csv(&dir.join("ceilings.csv"), &CSV_HEADER, &cells)?;
    Ok(serde_json::Value::Array(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kernel_is_held_against_its_loop() {
        let pairs = [
            ("f16_coop", "coop_regs_2x2"),
            ("f16_coop64", "coop_regs_4x4"),
            ("f16_coop_v4", "coop_regs_2x2"),
            ("f16_coop64_v4", "coop_regs_4x4"),
            ("f16_coop_v8", "coop_regs_2x2"),
            ("f16_coop_staged_v8", "coop_staged_v8"),
            ("f16_coop_staged", "coop_staged"),
            ("f16_coop_staged_v4", "coop_staged_v4"),
            ("f16_packed", "fp32_fma"),
            ("skinny", "fp32_fma"),
            ("tiled", "tiled_inner"),
            ("t128x64k16", "tiled_inner"),
        ];
        for (kernel, ceiling) in pairs {
            assert_eq!(ceiling_of(kernel).name(), ceiling, "{kernel}");
        }
    }

    #[test]
    fn every_sizing_stays_in_the_exact_range() {
        for c in Ceiling::ALL {
            for software in [false, true] {
                let (w, i) = sizing(c, software);
                assert!(
                    (1..=65535).contains(&w) && (1..=c.max_iters()).contains(&i),
                    "{c:?} {software}"
                );
            }
            // A GPU dispatch is at least a TFLOP: milliseconds even at an H200's tensor peak.
            let (w, i) = sizing(c, false);
            assert!(c.flops_per_iter() * w as f64 * f64::from(i) >= 1e12, "{c:?}");
            assert!(w % 132 == 0 && 4 * c.out_len(w) <= 128 << 20, "{c:?}");
        }
    }
}

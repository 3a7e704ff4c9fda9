//! `batchscope gemm`: matrix-product throughput on the GPU, the figure to hold against cuBLAS.
//! Every product (square sizes or given shapes, in each layout and precision) has every
//! kernel candidate timed by the autotuner's clock (GPU timestamps around back-to-back
//! products, median of 3 samples), without touching the autotune cache. Reported per product:
//! the default kernel (what `gpu.autotune = "off"` runs) and the fastest, in TFLOP/s, as a
//! share of the device's peak, and as a ratio to a peer's figure from the same run
//! (`--peers`: the CSV of `peer_ref.py` / `benches/peer_gemm.py`). Writes `gemm.csv` (one row
//! per product and candidate), `gemm.svg` (TFLOP/s against n of the square products, with the
//! peer's) and `summary.json` with `--out`.

use std::path::Path;

use super::backend::open_gpu;
use super::output::write_json;
use super::tune::{clock_note, is_software};
use crate::backend::gpu::autotune::TuneResult;
use crate::backend::gpu::GpuBackend;
use crate::backend::{Backend, Gemm};
use crate::profile::peaks::{f16_tensor_lookup, table_lookup};
use crate::profile::peers::{GemmKey, PeerGemms};
use crate::profile::telemetry::{open_nvml, Telemetry};
use crate::profile::Profilable;
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::create_run_dir;
use crate::report::table::Table;

/// Square sizes timed when neither `--sizes` nor `--shape` is given: the sizes the GPU-step
/// issue's matmul goal names (4096³, 8192³) and one below.
pub const DEFAULT_SIZES: [usize; 3] = [1024, 4096, 8192];
/// The defaults on a software adapter (llvmpipe runs about 1 GFLOP/s: 8192³ would take
/// minutes per product).
pub const SOFTWARE_SIZES: [usize; 2] = [256, 512];
/// The largest dimension accepted: 32768² f32 is 4 GiB, past every binding limit we know.
pub const MAX_DIM: usize = 32768;

/// Columns of `gemm.csv`.
pub const CSV_HEADER: [&str; 15] = [
    "precision",
    "layout",
    "m",
    "n",
    "k",
    "candidate",
    "ms",
    "tflops",
    "default",
    "fastest",
    "pct_of_peak",
    "peak_tflops",
    "peer_tflops",
    "ratio_to_peer",
    "timing",
];

/// A product's layout: whether A, then B, is stored transposed (`nt`: B is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub trans_a: bool,
    pub trans_b: bool,
}

impl Layout {
    pub fn parse(s: &str) -> Option<Layout> {
        let t = |c: u8| match c {
            b'n' | b'N' => Some(false),
            b't' | b'T' => Some(true),
            _ => None,
        };
        match s.as_bytes() {
            [a, b] => Some(Layout { trans_a: t(*a)?, trans_b: t(*b)? }),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match (self.trans_a, self.trans_b) {
            (false, false) => "nn",
            (false, true) => "nt",
            (true, false) => "tn",
            (true, true) => "tt",
        }
    }
}

/// What `batchscope gemm` was asked for.
#[derive(Clone, Debug, Default)]
pub struct GemmArgs {
    /// Square sizes n (n x n x n products).
    pub sizes: Vec<usize>,
    /// Other shapes, `MxNxK`.
    pub shapes: Vec<String>,
    /// `nn`, `nt`, `tn`, `tt` (default `nn,nt,tn`).
    pub layouts: Vec<String>,
    /// `f32`, `f16` (default `f32`).
    pub precisions: Vec<String>,
    pub peers: Option<std::path::PathBuf>,
    pub adapter: Option<String>,
    pub out: Option<std::path::PathBuf>,
}

/// One timed product: its precision, layout, shape and every candidate's time.
struct Measured {
    f16: bool,
    layout: Layout,
    gemm: Gemm,
    result: TuneResult,
    peak_tflops: Option<f64>,
    peer_tflops: Option<f64>,
}

impl Measured {
    fn tflops(&self, ms: f64) -> f64 {
        self.gemm.flops() / (ms * 1e-3) / 1e12
    }
    /// The default candidate's ms (first in the timings), if it ran.
    fn default_ms(&self) -> Option<f64> {
        self.result.times.iter().find(|(c, _)| *c == self.result.choice).and_then(|(_, t)| *t)
    }
    /// The fastest candidate and its ms.
    fn fastest(&self) -> Option<(String, f64)> {
        self.result
            .times
            .iter()
            .filter_map(|(c, t)| t.filter(|t| t.is_finite() && *t > 0.0).map(|t| (c.name(), t)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// `batchscope gemm`.
pub fn gemm(args: &GemmArgs) -> anyhow::Result<()> {
    let (layouts, precisions, explicit) = check_args(args)?;
    let peers = match &args.peers {
        Some(p) => Some(PeerGemms::load(p)?),
        None => None,
    };
    let gpu = open_gpu(args.adapter.as_deref())?;
    let software = is_software(&gpu);
    let shapes = match explicit {
        Some(s) => s,
        None if software => {
            eprintln!(
                "notice: {} is a software adapter; timing {SOFTWARE_SIZES:?} (give --sizes for more)",
                gpu.device_name()
            );
            SOFTWARE_SIZES.iter().map(|&n| (n, n, n)).collect()
        }
        None => DEFAULT_SIZES.iter().map(|&n| (n, n, n)).collect(),
    };
    let peaks = Peaks::of(&gpu);
    println!("{} — {}", gpu.device_name(), peaks.describe());
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for &f16 in &precisions {
        for &layout in &layouts {
            for &(m, n, k) in &shapes {
                let g = Gemm::nn(m, n, k).trans(layout.trans_a, layout.trans_b);
                let label = format!("{} {m}x{n}x{k} {}", precision_name(f16), layout.name());
                match gpu.time_product(&g, f16) {
                    Ok(result) => {
                        let peer = peers.as_ref().and_then(|p| peer_for(p, f16, layout, (m, n, k)));
                        let row = Measured {
                            f16,
                            layout,
                            gemm: g,
                            result,
                            peak_tflops: peaks.for_precision(f16),
                            peer_tflops: peer,
                        };
                        println!("{}", line(&row));
                        done.push(row);
                    }
                    Err(e) => {
                        eprintln!("notice: {label}: {e}; skipped");
                        failed.push(format!("{label}: {e}"));
                    }
                }
            }
        }
    }
    if done.is_empty() {
        anyhow::bail!("no product could be timed ({})", failed.join("; "));
    }
    print!("{}", table(&done).render());
    if let Some(r) = done.first() {
        println!("timing: {}", clock_note(r.result.method, software));
    }
    if args.out.is_some() {
        let dir = create_run_dir(args.out.as_deref(), "gemm")?;
        write_outputs(&dir, &gpu, &done, &peaks, args.peers.as_deref())?;
        println!("wrote: {}", dir.display());
    }
    Ok(())
}

/// Layouts, precisions (true: f16) and the explicit shapes (`None`: the defaults), each
/// value checked: a bad one is one error line.
type Checked = (Vec<Layout>, Vec<bool>, Option<Vec<(usize, usize, usize)>>);

fn check_args(args: &GemmArgs) -> anyhow::Result<Checked> {
    let mut layouts = Vec::new();
    let names: Vec<&str> = match args.layouts.is_empty() {
        true => vec!["nn", "nt", "tn"],
        false => args.layouts.iter().map(String::as_str).collect(),
    };
    for s in names {
        let l = Layout::parse(s)
            .ok_or_else(|| anyhow::anyhow!("--layouts {s:?}: a layout is nn, nt, tn or tt"))?;
        if !layouts.contains(&l) {
            layouts.push(l);
        }
    }
    let mut precisions = Vec::new();
    for p in
        args.precisions.iter().map(String::as_str).chain(args.precisions.is_empty().then_some("f32"))
    {
        let f16 = match p {
            "f32" => false,
            "f16" => true,
            _ => anyhow::bail!("--precision {p:?}: f32 or f16"),
        };
        if !precisions.contains(&f16) {
            precisions.push(f16);
        }
    }
    let mut shapes = Vec::new();
    for &n in &args.sizes {
        shapes.push(check_shape(&format!("--sizes {n}"), (n, n, n))?);
    }
    for s in &args.shapes {
        let dims: Vec<Option<usize>> = s.split(['x', 'X']).map(|d| d.trim().parse().ok()).collect();
        let shape = match dims[..] {
            [Some(m), Some(n), Some(k)] => (m, n, k),
            _ => anyhow::bail!("--shape {s:?}: give MxNxK, three whole numbers (1024x784x4096)"),
        };
        shapes.push(check_shape(&format!("--shape {s}"), shape)?);
    }
    let explicit = (!shapes.is_empty()).then_some(shapes);
    Ok((layouts, precisions, explicit))
}

fn check_shape(what: &str, (m, n, k): (usize, usize, usize)) -> anyhow::Result<(usize, usize, usize)> {
    if [m, n, k].iter().any(|&d| d == 0 || d > MAX_DIM) {
        anyhow::bail!("{what}: every dimension must be in 1..={MAX_DIM}");
    }
    Ok((m, n, k))
}

fn precision_name(f16: bool) -> &'static str {
    if f16 {
        "f16"
    } else {
        "f32"
    }
}

/// The peer figure for a square product (peer files hold square sizes only).
fn peer_for(p: &PeerGemms, f16: bool, l: Layout, (m, n, k): (usize, usize, usize)) -> Option<f64> {
    if m != n || n != k {
        return None;
    }
    p.get(GemmKey { f16, trans_a: l.trans_a, trans_b: l.trans_b, n })
}

/// The device's peaks as `gemm` divides by them: fp32 FMA (NVML, else the adapter table) and,
/// for f16, the tensor-core table figure where the cooperative-matrix kernel can run, else
/// the fp32 figure (the packed f16 kernel multiplies in f32).
struct Peaks {
    fp32_tflops: Option<f64>,
    fp32_source: String,
    f16_tensor: Option<(f64, String)>,
}

impl Peaks {
    fn of(gpu: &GpuBackend) -> Peaks {
        let name = gpu.adapter_name();
        let nvml = open_nvml(&gpu.pci_bus_id(), &name).ok().and_then(|t| t.peaks());
        let (fp32_tflops, fp32_source) = match (nvml, table_lookup(&name)) {
            (Some(p), _) if p.gflops > 0.0 => {
                (Some(p.gflops / 1e3), "NVML (cores × max clock × 2)".to_string())
            }
            (_, Some(e)) => (Some(e.gflops / 1e3), format!("table entry {} ({})", e.key, e.reference)),
            _ => (None, "unknown for this adapter".to_string()),
        };
        let f16_tensor = match gpu.tensor_f16() {
            true => f16_tensor_lookup(&name)
                .map(|e| (e.gflops / 1e3, format!("table entry {} ({})", e.key, e.reference))),
            false => None,
        };
        Peaks { fp32_tflops, fp32_source, f16_tensor }
    }

    fn for_precision(&self, f16: bool) -> Option<f64> {
        match (f16, &self.f16_tensor) {
            (true, Some((t, _))) => Some(*t),
            _ => self.fp32_tflops,
        }
    }

    fn describe(&self) -> String {
        let fp32 = match self.fp32_tflops {
            Some(t) => format!("fp32 peak {t:.1} TFLOP/s, {}", self.fp32_source),
            None => "fp32 peak unknown (no NVML, no table entry)".to_string(),
        };
        match &self.f16_tensor {
            Some((t, src)) => format!("{fp32}; f16 tensor-core peak {t:.1} TFLOP/s, {src}"),
            None => fp32,
        }
    }
}

/// The progress line of one product: the default's and the fastest's TFLOP/s.
fn line(r: &Measured) -> String {
    let g = &r.gemm;
    let mut s = format!("{} {} {}x{}x{}:", precision_name(r.f16), r.layout.name(), g.m, g.n, g.k);
    for (c, t) in &r.result.times {
        match t {
            Some(ms) => s += &format!(" {} {}", c.name(), sig3(Some(r.tflops(*ms)))),
            None => s += &format!(" {} failed", c.name()),
        }
    }
    s + " TFLOP/s"
}

/// `v` with three significant digits (0.00628, 5.34, 612), `-` for none: TFLOP/s of a
/// software adapter and of an H200 in one format.
fn sig3(v: Option<f64>) -> String {
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
fn table(rows: &[Measured]) -> Table {
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

fn write_outputs(
    dir: &Path,
    gpu: &GpuBackend,
    rows: &[Measured],
    peaks: &Peaks,
    peers: Option<&Path>,
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
            })
        })
        .collect();
    let summary = serde_json::json!({
        "command": "gemm",
        "device": gpu.device_name(),
        "peaks": peaks.describe(),
        "peers": peers.map(|p| p.display().to_string()),
        "timing": rows.first().map(|r| r.result.method),
        "products": products,
    });
    write_json(&dir.join("summary.json"), &summary)
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
    fn layouts_parse_both_cases_and_name_themselves() {
        for name in ["nn", "nt", "tn", "tt"] {
            let l = Layout::parse(name).expect(name);
            assert_eq!(l.name(), name);
            assert_eq!(Layout::parse(&name.to_uppercase()), Some(l));
        }
        assert_eq!(Layout::parse("tn"), Some(Layout { trans_a: true, trans_b: false }));
        for bad in ["", "n", "nnn", "xn", "n t"] {
            assert_eq!(Layout::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn arguments_are_checked_one_error_each() {
        let ok = |a: GemmArgs| check_args(&a).expect("valid");
        let (l, p, s) = ok(GemmArgs::default());
        assert_eq!(l.iter().map(|l| l.name()).collect::<Vec<_>>(), ["nn", "nt", "tn"]);
        assert_eq!(p, [false]);
        assert_eq!(s, None);
        let (l, p, s) = ok(GemmArgs {
            sizes: vec![64, 64],
            shapes: vec!["32x48x1000".into()],
            layouts: vec!["tt".into(), "tt".into()],
            precisions: vec!["f16".into(), "f32".into(), "f16".into()],
            ..GemmArgs::default()
        });
        assert_eq!(l.len(), 1);
        assert_eq!(p, [true, false]);
        assert_eq!(s, Some(vec![(64, 64, 64), (64, 64, 64), (32, 48, 1000)]));
        let bad = |a: GemmArgs, want: &str| {
            let e = check_args(&a).expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        };
        bad(GemmArgs { sizes: vec![0], ..GemmArgs::default() }, "--sizes 0");
        bad(GemmArgs { sizes: vec![MAX_DIM + 1], ..GemmArgs::default() }, "1..=32768");
        bad(GemmArgs { shapes: vec!["64x64".into()], ..GemmArgs::default() }, "MxNxK");
        bad(GemmArgs { shapes: vec!["64x0x64".into()], ..GemmArgs::default() }, "--shape 64x0x64");
        bad(GemmArgs { layouts: vec!["nx".into()], ..GemmArgs::default() }, "nn, nt, tn or tt");
        bad(GemmArgs { precisions: vec!["bf16".into()], ..GemmArgs::default() }, "f32 or f16");
    }

    #[test]
    fn figures_keep_three_significant_digits() {
        assert_eq!(sig3(Some(0.006281)), "0.00628");
        assert_eq!(sig3(Some(5.3416)), "5.34");
        assert_eq!(sig3(Some(52.06)), "52.1");
        assert_eq!(sig3(Some(612.4)), "612");
        assert_eq!(sig3(Some(0.0)), "0");
        assert_eq!(sig3(None), "-");
    }

    #[test]
    fn peers_match_square_products_only() {
        let p =
            PeerGemms::parse("what,size_or_batch,value,unit\nsgemm_tn,64,2.5,TFLOP/s\n").expect("peers");
        let tn = Layout { trans_a: true, trans_b: false };
        assert_eq!(peer_for(&p, false, tn, (64, 64, 64)), Some(2.5));
        assert_eq!(peer_for(&p, true, tn, (64, 64, 64)), None);
        assert_eq!(peer_for(&p, false, tn, (64, 64, 32)), None);
        assert_eq!(peer_for(&p, false, Layout { trans_a: false, trans_b: false }, (64, 64, 64)), None);
    }
}

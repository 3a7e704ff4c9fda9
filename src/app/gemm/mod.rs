//! `batchscope gemm`: matrix-product throughput on the GPU, the figure to hold against cuBLAS.
//! Every product (square sizes or given shapes, in each layout and precision) has every
//! kernel candidate timed by the autotuner's clock (GPU timestamps around back-to-back
//! products, median of 3 samples), without touching the autotune cache. Reported per product:
//! the default kernel (what `gpu.autotune = "off"` runs) and the fastest, in TFLOP/s, as a
//! share of the device's peak, and as a ratio to a peer's figure from the same run
//! (`--peers`: the CSV of `peer_ref.py` / `benches/peer_gemm.py`). Writes `gemm.csv` (one row
//! per product and candidate), `gemm.svg` (TFLOP/s against n of the square products, with the
//! peer's) and `summary.json` with `--out`. Every candidate's product is checked against an
//! exact host reference (`autotune::verify`): one that disagrees is marked `WRONG`, counted in
//! `verified = 0`, and never reported as the fastest.

use super::backend::open_gpu;
use super::tune::{clock_note, is_software};
use crate::backend::gpu::autotune::{half_candidate, TuneResult};
use crate::backend::gpu::pipelines::describe_checks;
use crate::backend::gpu::GpuBackend;
use crate::backend::{Backend, Gemm};
use crate::profile::peaks::{f16_tensor_lookup, table_lookup};
use crate::profile::peers::{GemmKey, PeerGemms};
use crate::profile::telemetry::{open_nvml, Telemetry};
use crate::profile::Profilable;
use crate::report::rundir::create_run_dir;

/// Square sizes timed when neither `--sizes` nor `--shape` is given: the sizes the GPU-step
/// issue's matmul goal names (4096³, 8192³) and one below.
pub const DEFAULT_SIZES: [usize; 3] = [1024, 4096, 8192];
/// The defaults on a software adapter (llvmpipe runs about 1 GFLOP/s: 8192³ would take
/// minutes per product).
pub const SOFTWARE_SIZES: [usize; 2] = [256, 512];
/// The largest dimension accepted: 32768² f32 is 4 GiB, past every binding limit we know.
pub const MAX_DIM: usize = 32768;

/// Columns of `gemm.csv`.
pub const CSV_HEADER: [&str; 16] = [
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
    "verified",
];

mod args;
pub mod ceilings;
mod report;

use args::{check_args, precision_name};
pub use args::{GemmArgs, Layout};
use report::{line, table, write_outputs};

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
    /// The fastest candidate whose product agreed with the reference, and its ms.
    fn fastest(&self) -> Option<(String, f64)> {
        self.result
            .usable()
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
    // A bad --out fails now, not after the timing (a run that fails leaves no directory).
    let dir = match args.out.is_some() {
        true => Some(create_run_dir(args.out.as_deref(), "gemm")?),
        false => None,
    };
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
    if let (Some(path), true) = (&args.peers, done.iter().all(|r| r.peer_tflops.is_none())) {
        eprintln!(
            "notice: --peers {} has no figure for any product timed here (square sizes in the same layout and precision)",
            path.display()
        );
    }
    print!("{}", table(&done).render());
    if let Some(r) = done.first() {
        println!("timing: {}", clock_note(r.result.method, software));
    }
    println!("kernels: {}", describe_checks(gpu.shader_checks()));
    if !failed.is_empty() {
        println!("skipped: {}", failed.join("; "));
    }
    let ran: usize =
        done.iter().map(|r| r.result.times.iter().filter(|(_, t)| t.is_some()).count()).sum();
    let wrong: usize = done.iter().map(|r| r.result.wrong.len()).sum();
    println!(
        "check: {} of {ran} kernel runs computed the exact product (whole rows of C at the block \
         edges against an f64 reference)",
        ran - wrong
    );
    let tensor = precisions.contains(&true).then(|| tensor_cores(&gpu));
    if let Some(t) = &tensor {
        println!("tensor cores: {t}");
    }
    let ceilings = match args.ceilings {
        true => {
            let peaks = (peaks.fp32_tflops, peaks.f16_tensor.as_ref().map(|(t, _)| *t));
            let rows = ceilings::measure_all(&gpu, software, peaks);
            print!("{}", ceilings::table(&rows).render());
            for r in &done {
                let fastest = r.fastest().map(|(c, ms)| (c, r.tflops(ms)));
                if let (Some((c, t)), Some((name, ceil))) = (
                    fastest.as_ref(),
                    fastest.as_ref().and_then(|(c, _)| ceilings::ceiling_for(&rows, c)),
                ) {
                    let g = &r.gemm;
                    let what =
                        format!("{} {} {}x{}x{}", precision_name(r.f16), r.layout.name(), g.m, g.n, g.k);
                    println!("{what}: {c} at {:.0} % of the {name} ceiling", 100.0 * *t / ceil);
                }
            }
            rows
        }
        false => Vec::new(),
    };
    if let Some(dir) = dir {
        let ceilings = match args.ceilings {
            true => Some(ceilings::write(&dir, &ceilings)?),
            false => None,
        };
        let extra = report::Extra { tensor_cores: tensor.as_deref(), ceilings, skipped: &failed };
        write_outputs(&dir, &gpu, &done, &peaks, args.peers.as_deref(), extra)?;
        println!("wrote: {}", dir.display());
    }
    Ok(())
}

/// The first-use check's verdict on each cooperative (tensor-core) kernel, in one line:
/// `f16_coop exact; f16_coop64 exact; ...`, or why none can run here.
fn tensor_cores(gpu: &GpuBackend) -> String {
    use crate::backend::gpu::coop_check::{verdicts, Verdict, KERNELS};
    if let Some(why) = crate::backend::gpu::matmul_coop::unavailable_reason(&gpu.dev.ctx) {
        return format!("not used ({why})");
    }
    let line: Vec<String> = KERNELS
        .iter()
        .zip(verdicts(&gpu.dev))
        .map(|(&k, v)| {
            let name = half_candidate(k).name();
            match v {
                Verdict::Exact => format!("{name} exact"),
                Verdict::Failed(why) => format!("{name} FAILED the first-use check ({why})"),
                Verdict::CannotRun(why) => format!("{name} cannot run ({why})"),
            }
        })
        .collect();
    line.join("; ")
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

#[cfg(test)]
mod tests {
    use super::*;

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

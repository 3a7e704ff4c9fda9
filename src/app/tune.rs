//! `batchscope tune`: time every matmul candidate for the products of the config's training
//! step at the chosen batch sizes on the GPU, rewrite the autotune cache (where runs with
//! `gpu.autotune = "cached"` or `"on"` read their kernels), print a table per shape, and write
//! `tune.csv` and `summary.json` when `--out` is given.

use std::path::Path;

use anyhow::Context;

use super::backend::open_gpu;
use super::output::write_summary;
use super::RunArgs;
use crate::backend::gpu::autotune::cache::{default_path, foreign, AutotuneError, ShapeKey};
use crate::backend::gpu::autotune::shapes::mlp_step_gemms;
use crate::backend::gpu::autotune::{AutotuneMode, TuneResult};
use crate::backend::gpu::GpuBackend;
use crate::backend::{Backend, Gemm};
use crate::config::Config;
use crate::report::csv::{write_csv, Cell};
use crate::report::rundir::{check_out_dir, create_run_dir};
use crate::schedule::admit;

/// Batch sizes tuned when none is given (those `batchscope profile` measures).
pub const DEFAULT_BATCHES: [usize; 3] = [1, 64, 4096];

/// Batch sizes tuned when none is given on a software adapter (lavapipe), where B = 4096's
/// shapes take minutes each: the defaults took past 5 minutes on two cores.
pub const SOFTWARE_DEFAULT_BATCHES: [usize; 2] = [1, 64];

/// Columns of `tune.csv`: one row per (shape, candidate).
pub const CSV_HEADER: [&str; 11] =
    ["shape", "m", "n", "k", "trans_a", "trans_b", "candidate", "ms", "gflops", "chosen", "verified"];

/// `batchscope tune`.
pub fn tune(args: &RunArgs, batches: &[usize]) -> anyhow::Result<()> {
    let cfg = admit::load_config(args.config.as_deref(), &args.set)?;
    if let Some(b) = batches.iter().find(|&&b| b == 0) {
        anyhow::bail!("--batch-sizes {b}: a batch size must be ≥ 1");
    }
    // A cache path that names somebody else's file is refused before any timing.
    if let Some(path) = default_path() {
        if let Some(why) = foreign(&path) {
            return Err(AutotuneError::Foreign { path, why }.into());
        }
    }
    // A bad --out fails now, not after the timing has rewritten the cache; so does an --out
    // that the cache would be written into (it then held files, and was refused after timing).
    if let Some(out) = &args.out {
        check_out_dir(out)?;
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        if let Some(cache) = default_path().filter(|c| absolute(c).starts_with(absolute(out))) {
            anyhow::bail!(
                "--out {}: the autotune cache {} (BATCHSCOPE_AUTOTUNE_CACHE) lies inside it, and a run directory must be new; keep the cache elsewhere",
                out.display(),
                cache.display()
            );
        }
    }
    let gpu = open_gpu(args.adapter.as_deref())?;
    let batches = match (batches.is_empty(), is_software(&gpu)) {
        (false, _) => batches.to_vec(),
        (true, false) => DEFAULT_BATCHES.to_vec(),
        (true, true) => {
            eprintln!(
                "notice: {} is a software adapter: tuning batch sizes 1,64 (4096's shapes take minutes each here; --batch-sizes to choose)",
                gpu.device_name()
            );
            SOFTWARE_DEFAULT_BATCHES.to_vec()
        }
    };
    // Keep the other shapes' entries: load the existing cache (a corrupt one warns, rebuilt).
    gpu.set_autotune(AutotuneMode::Cached);
    let shapes = step_shapes(&cfg, &batches);
    // An f16 step runs every product on packed halves: its shapes are tuned as f16 products.
    let half = !cfg.model.precision.is_f32();
    println!(
        "{} — model {:?}, {} step, batch sizes {batches:?}: {} shapes",
        gpu.device_name(),
        cfg.mlp_spec().sizes,
        if half { "f16" } else { "f32" },
        shapes.len()
    );
    let mut results = Vec::with_capacity(shapes.len());
    for g in &shapes {
        let (r, key) = match half {
            true => (gpu.tune_half_shape(g), ShapeKey::of_half(g)),
            false => (gpu.tune_shape(g), ShapeKey::of(g)),
        };
        let r = r.with_context(|| format!("tuning {}", key.label()))?;
        print!("{}", table(&r));
        results.push(r);
        // Saved (merged) shape by shape: a tune stopped part way keeps what it measured.
        gpu.save_autotune()?;
    }
    if let Some(r) = results.first() {
        println!("timing: {}", clock_note(r.method, is_software(&gpu)));
    }
    println!("kernels: {}", crate::backend::gpu::pipelines::describe_checks(gpu.shader_checks()));
    match gpu.save_autotune()? {
        Some(p) => println!("cache: {}", p.display()),
        None => eprintln!("notice: no cache location (set BATCHSCOPE_AUTOTUNE_CACHE or HOME)"),
    }
    if args.out.is_some() {
        let dir = create_run_dir(args.out.as_deref(), "tune")?;
        write_outputs(&dir, &gpu, &cfg, &batches, &results)?;
        println!("wrote: {}", dir.display());
    }
    Ok(())
}

/// The distinct products of one training step at each batch size, in first-use order.
fn step_shapes(cfg: &Config, batches: &[usize]) -> Vec<Gemm> {
    let sizes = cfg.mlp_spec().sizes;
    let mut out: Vec<Gemm> = Vec::new();
    for &b in batches {
        for g in mlp_step_gemms(&sizes, b) {
            if !out
                .iter()
                .any(|o| (o.m, o.n, o.k, o.trans_a, o.trans_b) == (g.m, g.n, g.k, g.trans_a, g.trans_b))
            {
                out.push(g);
            }
        }
    }
    out
}

fn gflops(r: &TuneResult, ms: f64) -> f64 {
    r.shape.gemm().flops() / (ms * 1e-3) / 1e9
}

/// One shape's candidates: ms and GFLOP/s per candidate, the choice marked.
fn table(r: &TuneResult) -> String {
    let mut s = format!("{:<22} {:<12} {:>10} {:>10}\n", r.shape.label(), "candidate", "ms", "GFLOP/s");
    for &(c, t) in &r.times {
        let mark = if c == r.choice { "  ← chosen" } else { "" };
        match t {
            Some(_) if !r.agrees(c) => {
                s += &format!("{:<22} {:<12} {:>10} {:>10}\n", "", c.name(), "WRONG", "-")
            }
            Some(ms) => {
                s += &format!("{:<22} {:<12} {:>10.4} {:>10.2}{mark}\n", "", c.name(), ms, gflops(r, ms))
            }
            None => s += &format!("{:<22} {:<12} {:>10} {:>10}{mark}\n", "", c.name(), "failed", "-"),
        }
    }
    s
}

/// Whether `gpu` is a software adapter (llvmpipe): its timings are CPU figures.
pub(super) fn is_software(gpu: &GpuBackend) -> bool {
    gpu.adapter().device_type == format!("{:?}", wgpu::DeviceType::Cpu)
}

/// What the timings are: GPU timestamps or wall clock, and a warning on a software adapter.
pub(super) fn clock_note(method: &str, software: bool) -> String {
    let what = match method {
        "gpu_timestamps" => "GPU timestamps around back-to-back products (median of 3 samples)",
        _ => "wall clock around submit and wait (median of 3 samples)",
    };
    match software {
        true => format!("{what}; a software adapter: these are CPU figures, not a GPU's"),
        false => what.to_string(),
    }
}

fn write_outputs(
    dir: &Path,
    gpu: &GpuBackend,
    cfg: &Config,
    batches: &[usize],
    results: &[TuneResult],
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for r in results {
        let s = r.shape;
        for &(c, t) in &r.times {
            rows.push(vec![
                Cell::Text(s.label()),
                Cell::from(s.m),
                Cell::from(s.n),
                Cell::from(s.k),
                Cell::from(s.trans_a as u32),
                Cell::from(s.trans_b as u32),
                Cell::Text(c.name()),
                t.map_or(Cell::Empty, Cell::Num),
                t.map_or(Cell::Empty, |ms| Cell::Num(gflops(r, ms))),
                Cell::from((c == r.choice) as u32),
                t.map_or(Cell::Empty, |_| Cell::from(r.agrees(c) as u32)),
            ]);
        }
    }
    write_csv(&dir.join("tune.csv"), &CSV_HEADER, &rows)?;
    let shapes: Vec<_> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "shape": r.shape,
                "label": r.shape.label(),
                "choice": r.choice.name(),
                "method": r.method,
                "wrong": r.wrong.iter().map(|(c, m)| (c.name(), m.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
                "ms": r.times.iter().map(|(c, t)| (c.name(), *t)).collect::<std::collections::BTreeMap<_, _>>(),
            })
        })
        .collect();
    let summary = serde_json::json!({
        "command": "tune",
        "device": gpu.device_name(),
        "model": cfg.mlp_spec().sizes,
        "batches": batches,
        "shapes": shapes,
    });
    write_summary(dir, summary)
}

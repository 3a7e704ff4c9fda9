//! `batchscope profile`: where the training step's time goes, per op group, at a few batch
//! sizes: terminal tables, `profile.csv`, `profile.svg`, `summary.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::output::write_summary;
use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::config::Config;
use crate::profile::peaks::resolve;
use crate::profile::probe::{measure_peaks, precision_peaks, RoofKind};
use crate::profile::report::{csv_rows, peaks_line_of, stacked_bars, table, CSV_HEADER};
use crate::profile::telemetry::{open_nvml, Telemetry};
use crate::profile::{profile_batch_until, BatchProfile, Peaks, Profilable};
use crate::report::csv::write_csv;
use crate::report::progress::batch_work;
use crate::report::rundir::{create_run_dir, write_atomic};
use crate::schedule::admit;
use crate::schedule::sweep::check_step_fits;

/// Batch sizes profiled when none is given.
pub const DEFAULT_BATCHES: [usize; 3] = [1, 64, 4096];

/// `batchscope profile`.
pub fn profile(args: &RunArgs, backend: BackendChoice, batches: &[usize]) -> anyhow::Result<()> {
    let cfg = admit::load_config(args.config.as_deref(), &args.set)?;
    if let Some(b) = batches.iter().find(|&&b| b == 0) {
        anyhow::bail!("--batch {b}: a batch size must be ≥ 1");
    }
    // A run cannot train at a batch past the training set: profiled as the sweep times, not
    // at all (`--batch 100000000` on 64 examples ran for minutes).
    let rows = crate::data::resolve::training_rows(&cfg)?;
    let set = super::sweep::training_set(&cfg, rows);
    if let Some(b) = batches.iter().find(|&&b| b as u64 > rows) {
        anyhow::bail!("--batch {b} is larger than the training set ({set}): a run cannot train at it");
    }
    let defaulted = batches.is_empty();
    let batches: Vec<usize> = match defaulted {
        true => DEFAULT_BATCHES.iter().copied().filter(|&b| b as u64 <= rows).collect(),
        // Each batch size once, in the order given (a repeat profiled it twice: every row of
        // profile.csv and summary.json doubled).
        false => batches
            .iter()
            .enumerate()
            .filter(|(i, b)| !batches[..*i].contains(b))
            .map(|(_, &b)| b)
            .collect(),
    };
    if defaulted && batches.len() < DEFAULT_BATCHES.len() {
        let cut = &DEFAULT_BATCHES[batches.len()..];
        eprintln!(
            "notice: the default batch sizes {cut:?} are past the training set ({set}): not profiled"
        );
    }
    if cfg.train.workers > 1 || cfg.train.accumulate > 1 {
        eprintln!(
            "notice: profile times one whole-batch step on one device; train.workers = {} and \
             train.accumulate = {} are not applied (`sweep --workers N` times replicated steps)",
            cfg.train.workers, cfg.train.accumulate
        );
    }
    with_backend(backend, args.adapter.as_deref(), Profile { cfg: &cfg, batches: &batches, args })
}

/// The run directory and the profiles, on the opened backend.
struct Profile<'a> {
    cfg: &'a Config,
    batches: &'a [usize],
    args: &'a RunArgs,
}

impl BackendTask for Profile<'_> {
    type Output = ();

    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        self.cfg.gpu.autotune
    }

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<()> {
        // Refuse a batch that cannot fit before the run directory or any buffer is made.
        for &batch in self.batches {
            check_step_fits(b, self.cfg, batch).map_err(|e| anyhow::anyhow!("--batch {batch}: {e}"))?;
        }
        let dir = create_run_dir(self.args.out.as_deref(), "profile")?;
        write_atomic(&dir.join("config.toml"), self.cfg.to_toml().as_bytes())?;
        profile_on(b, self.cfg, self.batches, &dir, self.args.progress)
    }
}

/// The device's peaks (NVML where it exists on a GPU; a notice line when it does not), the
/// FLOP/s one in the config's precision ([`precision_peaks`]).
fn peaks_of<B: Profilable>(b: &B, cfg: &Config) -> anyhow::Result<(Peaks, RoofKind)> {
    let nvml = match b.kind() {
        crate::backend::BackendKind::Gpu => match open_nvml(&b.pci_bus_id(), &b.adapter_name()) {
            Ok(t) => t.peaks(),
            Err(e) => {
                eprintln!("notice: {e}; peaks from the adapter table, the config or a probe");
                None
            }
        },
        crate::backend::BackendKind::Cpu => None,
    };
    let peaks = resolve(cfg.sweep.peak_gflops, cfg.sweep.peak_gbps, nvml, &b.adapter_name(), || {
        measure_peaks(b)
    })?;
    let peaks = precision_peaks(b, cfg.model.precision, peaks)?;
    b.release_caches();
    Ok(peaks)
}

fn profile_on<B: Profilable>(
    b: &B,
    cfg: &Config,
    batches: &[usize],
    dir: &Path,
    progress: bool,
) -> anyhow::Result<()> {
    let backend = format!("{:?}", b.kind()).to_lowercase();
    let device = b.device_name();
    let (peaks, roof) = peaks_of(b, cfg)?;
    let f16 = !cfg.model.precision.is_f32();
    match f16 {
        true => {
            println!("{device} — model {:?}, f16 step (roof: {})", cfg.mlp_spec().sizes, roof.name())
        }
        false => println!("{device} — model {:?}", cfg.mlp_spec().sizes),
    }
    println!("{}", peaks_line_of(&peaks, if f16 { "f16" } else { "fp32" }));
    let mut profiles: Vec<BatchProfile> = Vec::new();
    let mut rows = Vec::new();
    let work = batches.iter().fold(0u64, |w, &s| w.saturating_add(batch_work(s)));
    let bar = crate::report::progress::work_bar(progress, work, "profile");
    // `sweep.time_budget_s` bounds the whole profile, as it bounds a sweep: past it, each batch
    // size left gets one warm-up and one timed step.
    let budget = cfg.sweep.time_budget_s;
    let deadline = (budget > 0.0)
        .then(|| Instant::now().checked_add(Duration::try_from_secs_f64(budget).ok()?))
        .flatten();
    for &batch in batches {
        bar.set_message(format!("B = {batch}"));
        let p = profile_batch_until(b, cfg, batch, deadline)
            .with_context(|| format!("profiling B = {batch}"))?;
        b.release_caches();
        bar.inc(batch_work(batch));
        bar.suspend(|| print!("{}", table(&p, &peaks)));
        rows.extend(csv_rows(&backend, &p, &peaks));
        profiles.push(p);
    }
    bar.finish_and_clear();
    write_csv(&dir.join("profile.csv"), &CSV_HEADER, &rows)?;
    stacked_bars(
        &dir.join("profile.svg"),
        &format!("Share of step time per op group — {device}"),
        &profiles,
    )?;
    let mut summary = serde_json::json!({
        "command": "profile",
        "backend": backend,
        "device": device,
        "model": cfg.mlp_spec().sizes,
        "peak_gflops": peaks.gflops.value,
        "peak_gflops_source": peaks.gflops.source.to_string(),
        "peak_gbps": peaks.gbps.value,
        "peak_gbps_source": peaks.gbps.source.to_string(),
        "batches": profiles,
    });
    if f16 {
        // Only f16 runs carry these (f32 summaries stay as they were).
        summary["precision"] = "f16".into();
        summary["peak_gflops_roof"] = roof.name().into();
    }
    write_summary(dir, summary)?;
    println!("wrote: {}", dir.display());
    Ok(())
}

//! `batchscope train`: resolve the config (or a run to resume), pick the batch size by a sweep
//! when it is `"auto"`, train, and print the run's summary.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::output::write_config;
use super::workers::{adapter_list, open_workers, Workers};
use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuBackend;
use crate::backend::BackendKind;
use crate::config::{BatchSize, Config, SweepPolicy};
use crate::profile::Profilable;
use crate::report::rundir::{check_out_dir, create_run_dir, open_resume_dir};
use crate::schedule::sweep::run_sweep;
use crate::schedule::timing_stats::{choice_stability, Resampling};
use crate::schedule::{admit, run_memory};
use crate::schedule::{choose, Policy};
use crate::train::parallel::{Sequential, Threads};
use crate::train::resume_guard::{check_checkpoint_config, keeps_checkpoint_layout, movable_overrides};
use crate::train::{run_train, run_train_workers, TrainError, TrainOptions, TrainSummary};

/// `batchscope train`; `workers` (`--workers`) overrides `train.workers`, and an `--adapter`
/// list of several adapters implies one worker per adapter.
pub fn train(
    args: &RunArgs,
    backend: BackendChoice,
    init: Option<PathBuf>,
    resume: Option<PathBuf>,
    workers: Option<usize>,
) -> anyhow::Result<()> {
    let mut args = args.clone();
    let adapters = adapter_list(args.adapter.as_deref())?;
    if let Some(n) = workers.or((adapters.len() > 1).then_some(adapters.len())) {
        // Checked as the flag, not as the `--set` it becomes.
        crate::config::check_worker_counts(&[n]).map_err(anyhow::Error::msg)?;
        args.set.push(format!("train.workers={n}"));
    }
    let args = &args;
    let (cfg, run_dir, trained) = match &resume {
        Some(run) => {
            let dir = open_resume_dir(run)?;
            // One process at a time writes a run (its checkpoints and metrics are rewritten):
            // a run still training, even before its first checkpoint, is refused as such.
            crate::report::run_lock::lock_run(&dir)?;
            let cfg_path = dir.join("config.toml");
            if !cfg_path.exists() {
                bail!("--resume {}: no config.toml there (is it a train run directory?)", dir.display());
            }
            if !dir.join("last.safetensors").exists() {
                bail!(
                    "--resume {}: no last.safetensors checkpoint there{}",
                    dir.display(),
                    crate::app::train::no_checkpoint_hint(&dir)
                );
            }
            refuse_new_loss_scale(&args.set)?;
            let cfg = admit::load_resumed_config(&cfg_path, &args.set, true)?;
            let saved = match args.set.is_empty() {
                true => cfg.clone(),
                // The files moved (a --set of their paths): the saved config reads them there.
                false => admit::load_resumed_config(&cfg_path, &movable_overrides(&args.set), false)?,
            };
            keeps_checkpoint_layout(&saved, &cfg, &dir, "the run's config.toml")?;
            let trained = check_checkpoint_config(&dir.join("last.safetensors"), &cfg)?;
            crate::report::rundir::remove_stale_temporaries(&dir);
            (cfg, RunDir::Resumed(dir), trained)
        }
        None => {
            let cfg = admit::load_train_config(args.config.as_deref(), &args.set)?;
            if let Some(p) = &init {
                // Fail on a bad --init before creating the run directory.
                crate::train::checkpoint::load(p)?;
            }
            // On the CPU backend the step itself lives in host memory: check it before the
            // backend opens (`auto` checks once it has resolved its backend, in `prepare`; the
            // directory is made after that in either case).
            if let (BackendChoice::Cpu, BatchSize::Fixed(batch)) = (backend, cfg.train.batch_size) {
                run_memory::check_cpu_step(&cfg, batch)?;
            }
            // A `--out` that will be refused is refused now, before the backend opens.
            if let Some(out) = &args.out {
                check_out_dir(out)?;
            }
            (cfg, RunDir::New(args.out.clone()), None)
        }
    };
    let backend = match &resume {
        Some(_) => super::backend::resume_backend(backend, trained.as_ref()),
        None => backend,
    };
    let opts =
        TrainOptions { init, resume: resume.is_some(), progress: args.progress, stop_on_signal: true };
    let parallel = cfg.train.workers > 1 || adapters.len() > 1;
    let result = if parallel {
        train_workers(cfg, &opts, &run_dir, backend, &adapters)
    } else {
        with_backend(backend, args.adapter.as_deref(), Train { cfg, opts: &opts, run_dir: &run_dir })
    };
    let (summary, dir) = match result {
        Ok(s) => s,
        // A resume with no steps left changes nothing (summary.json stays as it is).
        Err(e) if matches!(e.downcast_ref(), Some(TrainError::AlreadyComplete { .. })) => {
            eprintln!("{}: {e}", run_dir.shown());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    print_summary(&summary, &dir);
    Ok(())
}

/// Where a training run writes: the directory of a run it resumes, or a new one (`--out`, else
/// under `runs/`) that [`prepare_run`] makes once the backend is open and the step is known to
/// fit it, so that a run refused before then (`--backend auto` resolved to a CPU without the
/// memory, an automatic batch size that found none) leaves no directory to clean up.
enum RunDir {
    Resumed(PathBuf),
    New(Option<PathBuf>),
}

impl RunDir {
    /// The directory, made now for a new run.
    fn open(&self) -> anyhow::Result<PathBuf> {
        match self {
            RunDir::Resumed(dir) => Ok(dir.clone()),
            RunDir::New(out) => Ok(create_run_dir(out.as_deref(), "train")?),
        }
    }

    /// The directory as messages name it (a new run's before it is made: its `--out`, or the
    /// command).
    fn shown(&self) -> String {
        match self {
            RunDir::Resumed(dir) | RunDir::New(Some(dir)) => dir.display().to_string(),
            RunDir::New(None) => "train".into(),
        }
    }
}

/// Auto batch size (a sweep), the run directory, config.toml, then the training run.
struct Train<'a> {
    cfg: Config,
    opts: &'a TrainOptions,
    run_dir: &'a RunDir,
}

impl BackendTask for Train<'_> {
    type Output = (TrainSummary, PathBuf);

    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        self.cfg.gpu.autotune
    }

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<(TrainSummary, PathBuf)> {
        let Train { mut cfg, opts, run_dir } = self;
        let dir = prepare_run(&mut cfg, b, opts, run_dir)?;
        Ok((run_train(b, &cfg, opts, &dir)?, dir))
    }
}

/// `train.workers` replicas on the backends [`open_workers`] opens: CPU replicas on threads, GPU
/// replicas recorded in turn (each device runs its share at once).
fn train_workers(
    mut cfg: Config,
    opts: &TrainOptions,
    run_dir: &RunDir,
    choice: BackendChoice,
    adapters: &[String],
) -> anyhow::Result<(TrainSummary, PathBuf)> {
    let n = cfg.train.workers.max(1);
    match open_workers(choice, adapters, n, cfg.gpu.autotune)? {
        Workers::Cpu(v) => {
            let dir = prepare_run(&mut cfg, &v[0], opts, run_dir)?;
            let refs: Vec<&CpuBackend> = v.iter().collect();
            Ok((run_train_workers(&refs, Box::new(Threads), &cfg, opts, &dir)?, dir))
        }
        Workers::Gpu(v) => {
            let dir = prepare_run(&mut cfg, &v[0], opts, run_dir)?;
            let refs: Vec<&GpuBackend> = v.iter().collect();
            Ok((run_train_workers(&refs, Box::new(Sequential), &cfg, opts, &dir)?, dir))
        }
    }
}

/// [`prepare`] of a run whose directory is made (or, resumed, found) once the checks pass.
fn prepare_run<B: Profilable>(
    cfg: &mut Config,
    b: &B,
    opts: &TrainOptions,
    run_dir: &RunDir,
) -> anyhow::Result<PathBuf> {
    check_step(cfg, b)?;
    let dir = run_dir.open()?;
    write_prelude(cfg, opts, &dir)?;
    Ok(dir)
}

/// Why a `--resume` directory with no checkpoint has none, when it is a run killed before its
/// first one (empty otherwise).
pub(super) fn no_checkpoint_hint(dir: &Path) -> String {
    match crate::report::stopped_before_first_checkpoint(dir) {
        true => format!(": {}", crate::report::restart_hint(dir)),
        false => String::new(),
    }
}

/// A resume's `--set train.loss_scale`, refused: the checkpoint's loss-scaler state goes on,
/// and a new starting scale was written to config.toml and never used.
pub(super) fn refuse_new_loss_scale(set: &[String]) -> anyhow::Result<()> {
    if set.iter().any(|s| s.split('=').next().map(str::trim) == Some("train.loss_scale")) {
        bail!(
            "--set train.loss_scale on --resume: the run goes on from the loss scale its checkpoint holds (train.loss_scale is the scale a new run starts at)"
        );
    }
    Ok(())
}

/// Before training in an existing directory (an MPI rank's): the automatic batch size (a
/// sweep), the CPU memory check, config.toml.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(super) fn prepare<B: Profilable>(
    cfg: &mut Config,
    b: &B,
    opts: &TrainOptions,
    dir: &Path,
) -> anyhow::Result<()> {
    check_step(cfg, b)?;
    write_prelude(cfg, opts, dir)
}

/// The automatic batch size (a sweep), then the step's memory against the host's where the
/// backend's buffers are host memory: the CPU backend, or a software adapter (lavapipe), whose
/// replicas each hold a copy of the data there too (4 replicas of 3.1 GB were admitted on
/// lavapipe and lost the device to an out-of-memory error 39 s in).
fn check_step<B: Profilable>(cfg: &mut Config, b: &B) -> anyhow::Result<()> {
    if cfg.train.batch_size == BatchSize::Auto {
        resolve_auto_batch(cfg, b)?;
    }
    check_step_memory(cfg, b)
}

/// The step at `cfg`'s fixed batch size against the host's memory where the backend's buffers
/// are host memory (see [`check_step`]); nothing to check on a GPU's own memory here.
pub(crate) fn check_step_memory<B: Profilable>(cfg: &Config, b: &B) -> anyhow::Result<()> {
    if let (true, BatchSize::Fixed(batch)) = (b.buffers_in_host_memory(), cfg.train.batch_size) {
        match b.kind() {
            BackendKind::Cpu => run_memory::check_cpu_step(cfg, batch)?,
            BackendKind::Gpu => {
                let device = format!("{}, whose buffers are host memory,", b.device_name());
                run_memory::check_step_in_host_memory(cfg, batch, &device)?
            }
        }
    }
    Ok(())
}

/// config.toml (a resume's is rewritten by the run once its checkpoint is restored), and the
/// run directory's name on stderr.
fn write_prelude(cfg: &Config, opts: &TrainOptions, dir: &Path) -> anyhow::Result<()> {
    if !opts.resume {
        write_config(dir, &cfg.to_toml())?;
    }
    eprintln!("run directory: {}", dir.display());
    Ok(())
}

/// `train.batch_size = "auto"`: sweep the powers of two the run can use
/// ([`usable_sweep`]), pick one by `sweep.policy`, and validate the config again with it.
fn resolve_auto_batch<B: Profilable>(cfg: &mut Config, b: &B) -> anyhow::Result<()> {
    let policy = auto_policy(&cfg.sweep.policy, cfg.sweep.knee_fraction)?;
    let (swept, bound) = usable_sweep(cfg)?;
    eprintln!(
        "train.batch_size = \"auto\": sweeping {}..{}{bound} with policy {policy}",
        swept.sweep.min_batch, swept.sweep.max_batch
    );
    let report = run_sweep(b, &swept, &mut |_| {})?;
    let choice = choose(&policy, &report.points())?;
    eprintln!("chosen batch size {} ({})", choice.batch, choice.reason);
    let resampled =
        choice_stability(&policy, &report.timed_points(), &Resampling::seeded(cfg.train.seed));
    if let Some(s) = resampled {
        eprintln!("{}", super::sweep::stability_note(&s, &swept));
    }
    cfg.train.batch_size = BatchSize::Fixed(choice.batch);
    cfg.validate_resolved(&format!("(train.batch_size = \"auto\" chose {})", choice.batch))?;
    Ok(())
}

/// `cfg` with its sweep range cut to the batch sizes a run of it can train at (at least the
/// noise probe's rows + 1 and one row per micro-batch, [`Config::auto_batch_floor`]), and the
/// note that says so (empty when nothing was cut). An error when no power of two is left.
pub(super) fn usable_sweep(cfg: &Config) -> anyhow::Result<(Config, String)> {
    let split = cfg.train.workers.max(1).saturating_mul(cfg.train.accumulate.max(1));
    if !split.is_power_of_two() {
        bail!(
            "train.workers × train.accumulate = {split} divides no power of two, and swept batch sizes are powers of two"
        );
    }
    let mut swept = cfg.clone();
    let mut bound = String::new();
    if let Some((floor, why)) = cfg.auto_batch_floor() {
        if floor > swept.sweep.max_batch {
            bail!(
                "this run needs a batch size B ≥ {floor} ({why}), past sweep.max_batch = {}",
                swept.sweep.max_batch
            );
        }
        if floor > swept.sweep.min_batch {
            swept.sweep.min_batch = floor;
            bound = format!(" (B ≥ {floor}: {why})");
        }
    }
    // No run trains at a batch larger than its training set: the sweep stops there.
    let rows = crate::data::resolve::training_rows(cfg)?;
    if usize::try_from(rows).is_ok_and(|n| n < swept.sweep.max_batch) {
        swept.sweep.max_batch = rows as usize;
        bound.push_str(&format!(" (B ≤ {})", super::sweep::training_set(cfg, rows)));
    }
    let (lo, hi) = (swept.sweep.min_batch, swept.sweep.max_batch);
    if crate::config::sweep_range_problem(lo, hi).is_some() {
        bail!("batch sizes {lo}..{hi}{bound} hold no power of two to sweep (sweep.min_batch, sweep.max_batch)");
    }
    Ok((swept, bound))
}

/// The policy that picks an automatic batch size: `sweep.policy`, with `knee` at
/// `sweep.knee_fraction` as in `batchscope sweep`; `time_to_target:auto` is resolved by
/// `batchscope sweep` only.
fn auto_policy(p: &SweepPolicy, knee_fraction: f64) -> anyhow::Result<Policy> {
    match p.resolve(knee_fraction) {
        Some(policy) => Ok(policy),
        None => bail!(
            "sweep.policy: `{p}` is resolved by `batchscope sweep` only; give time_to_target:B_NOISE"
        ),
    }
}

pub(super) fn print_summary(summary: &TrainSummary, dir: &Path) {
    println!("device:          {}", summary.device);
    println!(
        "steps:           {} ({} examples, {} epoch{})",
        summary.steps,
        summary.examples_seen,
        summary.epochs_completed,
        if summary.epochs_completed == 1 { "" } else { "s" }
    );
    println!("stopped:         {}", summary.stopped_reason);
    if let Some(init) = &summary.init {
        println!("started from:    {init}");
    }
    if let Some(l) = summary.final_train_loss {
        println!("train loss:      {l:.4} (last logged minibatch)");
    }
    if let (Some(l), Some(e)) = (summary.final_val_loss, summary.final_val_error) {
        println!("validation:      loss {l:.4}, 0-1 error {:.2}%", 100.0 * e);
    } else if let Some(l) = summary.final_val_loss {
        println!("validation:      loss {l:.5}");
    }
    let restored = if summary.restored_best { " (restored)" } else { "" };
    if let (Some(e), Some(s)) = (summary.best_val_error, summary.best_step) {
        println!("best val error:  {:.2}% at step {s}{restored}", 100.0 * e);
    } else if let (Some(l), Some(s)) = (summary.best_val_loss, summary.best_step) {
        println!("best val loss:   {l:.5} at step {s}{restored}");
    }
    println!(
        "throughput:      {:.0} examples/s over {}",
        summary.examples_per_s,
        seconds(summary.elapsed_s)
    );
    if let Some(d) = &summary.data_parallel {
        println!(
            "replicas:        {} ({}), accumulate {}, micro-batch {} rows",
            d.workers, d.executor, d.accumulate, d.micro_batch
        );
        if let Some(r) = d.ranks {
            println!("mpi:             {r} ranks, reducer {}", d.reducer);
        }
        if d.workers > 1 {
            println!(
                "all-reduce:      {:.1} KiB/step, {:.0} µs/step ({:.1}% of the step; compute {:.0} µs/step)",
                d.reduce_bytes_per_step / 1024.0,
                d.reduce_us_per_step,
                100.0 * d.reduce_share,
                d.compute_us_per_step
            );
        }
    }
    println!("wrote:           {}", dir.display());
}

/// `12.3 s`, or `45 ms` under a tenth of a second (where `0.0 s` would say nothing).
fn seconds(s: f64) -> String {
    if s < 0.1 {
        format!("{:.0} ms", 1000.0 * s)
    } else {
        format!("{s:.1} s")
    }
}

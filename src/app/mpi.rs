//! `batchscope train --mpi`: one rank of an MPI job (`mpirun -np N batchscope train ... --mpi`).
//!
//! The launch is explicit: `--mpi` says "this process is one rank of a job". Detecting mpirun
//! silently would make a binary built with the feature behave differently under a launcher that
//! users also use to start N independent runs, and a flag lets a build without the feature say
//! clearly what is missing. The converse mistake — mpirun starting N copies of a plain `train`,
//! which would race to create N run directories — is refused ([`refuse_under_mpirun`]).
//!
//! Every rank resolves its config as a single process does (`--config` and `--set`, or the
//! `--resume` directory's config.toml, which must then be readable on every rank), and the ranks
//! compare a hash of it and the parameter count before anything is created. Rank 0 alone creates
//! and writes the run directory, reads `--init` and checkpoints, and prints; every rank trains
//! `train.workers` replicas on its own device(s). Any error ends every rank with one line
//! `error: rank R: ...` (see `train::parallel::mpi`).

#[cfg(feature = "mpi")]
use std::path::PathBuf;

use anyhow::bail;

use super::{BackendChoice, RunArgs};

/// The environment variables by which Open MPI and MPICH (PMI) tell a process its world size.
const WORLD_SIZE_VARS: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// A plain `train` (no `--mpi`) started by mpirun with more than one process: an error, since
/// every copy would train the whole run into its own run directory.
pub fn refuse_under_mpirun() -> anyhow::Result<()> {
    let size = WORLD_SIZE_VARS.iter().find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    if let Some(n) = size.filter(|&n| n > 1) {
        bail!(
            "started by mpirun as one of {n} processes without --mpi: add --mpi to train one run across the ranks (a build with `--features mpi`)"
        );
    }
    Ok(())
}

/// `batchscope train --mpi` in a build without the `mpi` feature.
#[cfg(not(feature = "mpi"))]
pub fn train(
    _args: &RunArgs,
    _backend: BackendChoice,
    _init: Option<std::path::PathBuf>,
    _resume: Option<std::path::PathBuf>,
    _workers: Option<usize>,
) -> anyhow::Result<()> {
    bail!("--mpi: this batchscope was built without MPI support; rebuild with `cargo build --release --features mpi` (needs Open MPI: libopenmpi-dev, and libclang)")
}

/// `batchscope train --mpi`: initialise MPI, train as this rank, finalise; any error ends the
/// job on every rank ([`Mpi::fatal`]: one line per rank, then `MPI_Abort`).
#[cfg(feature = "mpi")]
pub fn train(
    args: &RunArgs,
    backend: BackendChoice,
    init: Option<PathBuf>,
    resume: Option<PathBuf>,
    workers: Option<usize>,
) -> anyhow::Result<()> {
    use crate::train::parallel::mpi::Mpi;
    let timeout = timeout()?;
    let Some((universe, _)) = ::mpi::initialize_with_threading(::mpi::Threading::Funneled) else {
        bail!("--mpi: MPI could not be initialised (is this an Open MPI build, started by mpirun?)");
    };
    let m = Mpi::world(timeout);
    match rank::train(m, args, backend, init, resume, workers) {
        Ok(()) => {
            drop(universe);
            Ok(())
        }
        Err(e) => m.fatal(&format!("{e:#}")),
    }
}

/// `BATCHSCOPE_MPI_TIMEOUT`: seconds a collective waits for the other ranks (default 300, at
/// most [`MAX_MPI_TIMEOUT_S`]).
#[cfg(feature = "mpi")]
fn timeout() -> anyhow::Result<std::time::Duration> {
    mpi_timeout(std::env::var("BATCHSCOPE_MPI_TIMEOUT").ok().as_deref())
}

/// The longest collective timeout accepted: about 31 years, far inside `Duration` and `Instant`.
pub const MAX_MPI_TIMEOUT_S: f64 = 1e9;

/// The timeout a `BATCHSCOPE_MPI_TIMEOUT` value (`None`: unset) asks for.
pub fn mpi_timeout(value: Option<&str>) -> anyhow::Result<std::time::Duration> {
    const VAR: &str = "BATCHSCOPE_MPI_TIMEOUT";
    let secs = match value {
        Some(v) => match v.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s <= MAX_MPI_TIMEOUT_S => s,
            _ => bail!("{VAR} = {v:?}: give the collective timeout in seconds (> 0, at most 1e9)"),
        },
        None => 300.0,
    };
    std::time::Duration::try_from_secs_f64(secs).map_err(|e| anyhow::anyhow!("{VAR} = {secs}: {e}"))
}

#[cfg(test)]
mod timeout_tests {
    use super::mpi_timeout;

    #[test]
    fn the_mpi_timeout_is_bounded_and_never_panics() {
        assert_eq!(mpi_timeout(None).unwrap().as_secs(), 300);
        assert_eq!(mpi_timeout(Some(" 2.5 ")).unwrap().as_millis(), 2500);
        assert_eq!(mpi_timeout(Some("1e9")).unwrap().as_secs(), 1_000_000_000);
        for bad in ["0", "-1", "nan", "inf", "1e20", "2e19", "1e300", "junk", ""] {
            let e = mpi_timeout(Some(bad)).expect_err(bad).to_string();
            assert!(e.contains("BATCHSCOPE_MPI_TIMEOUT") && e.contains("at most 1e9"), "{bad}: {e}");
        }
    }
}

#[cfg(feature = "mpi")]
mod rank {
    use std::path::{Path, PathBuf};

    use anyhow::{anyhow, bail};

    use super::super::train::{prepare, print_summary};
    use super::super::workers::{adapter_list, open_workers, Workers};
    use super::super::{BackendChoice, RunArgs};
    use crate::backend::cpu::CpuBackend;
    use crate::backend::gpu::GpuBackend;
    use crate::config::{BatchSize, Config};
    use crate::model::Mlp;
    use crate::report::rundir::{create_run_dir, open_resume_dir};
    use crate::schedule::{admit, run_memory};
    use crate::train::parallel::mpi::Mpi;
    use crate::train::parallel::ranks::fnv1a;
    use crate::train::parallel::{Ranks, Sequential, Threads};
    use crate::train::{run_train_ranks, TrainError, TrainOptions, TrainSummary};

    /// This rank's part of the run.
    pub fn train(
        mut m: Mpi,
        args: &RunArgs,
        choice: BackendChoice,
        init: Option<PathBuf>,
        resume: Option<PathBuf>,
        workers: Option<usize>,
    ) -> anyhow::Result<()> {
        let root = m.rank() == 0;
        let mut args = args.clone();
        if let Some(n) = workers {
            // Checked as the flag, not as the `--set` it becomes.
            crate::config::check_worker_counts(&[n]).map_err(anyhow::Error::msg)?;
            args.set.push(format!("train.workers={n}"));
        }
        let adapters = adapter_list(args.adapter.as_deref())?;
        let cfg = match &resume {
            Some(run) => resume_config(run, &args.set, root)?,
            None => admit::load_train_config(args.config.as_deref(), &args.set)?,
        };
        if cfg.train.batch_size == BatchSize::Auto {
            bail!("--mpi needs a fixed train.batch_size, not \"auto\": pick one with `batchscope sweep` first");
        }
        if cfg.train.max_seconds > 0.0 {
            // Each rank's clock would stop it at another step, and the others would wait on
            // its gradients for ever.
            bail!("--mpi does not take train.max_seconds (each rank's clock would stop it at another step); bound the run with train.steps");
        }
        if m.size() > 1 && cfg.monitor.curvature_every > 0 {
            // The ranks' data-parallel step never runs the monitor's R-operator pass: its
            // figures were zeros (gᵀHg 0, a predicted ΔL of 0).
            bail!(
                "--mpi with {} ranks does not take monitor.curvature_every (the R-operator pass is whole-batch, one process's); run the monitor in one process",
                m.size()
            );
        }
        let params = Mlp::new(cfg.mlp_spec())?.num_params() as u64;
        let setup = [
            (
                "the config (a hash of config.toml with --set and --workers)",
                fnv1a(cfg.to_toml().bytes()),
            ),
            ("the parameter count", params),
            ("--resume", u64::from(resume.is_some())),
        ];
        m.agree(&setup).map_err(|e| {
            anyhow!(
                "{e}; every rank must train the same config (the same --config, --set and --workers)"
            )
        })?;
        let dir = match (&resume, root) {
            (Some(run), _) => run.clone(),
            (None, true) => {
                if let Some(p) = &init {
                    crate::train::checkpoint::load(p)?;
                }
                create_run_dir(args.out.as_deref(), "train")?
            }
            // Other ranks write nothing.
            (None, false) => PathBuf::new(),
        };
        let opts = TrainOptions {
            init: init.filter(|_| root),
            resume: resume.is_some(),
            progress: args.progress && root,
            // The ranks stop together or not at all (SIGTERM: train::parallel::mpi).
            stop_on_signal: false,
        };
        let summary = match run(m, cfg, &opts, &dir, choice, &adapters) {
            Ok(s) => s,
            Err(e) if matches!(e.downcast_ref(), Some(TrainError::AlreadyComplete { .. })) => {
                if root {
                    eprintln!("{}: {e}", dir.display());
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if root {
            print_summary(&summary, &dir);
        }
        Ok(())
    }

    /// The config of a `--resume` run directory (plus `--set`), read on every rank.
    fn resume_config(run: &Path, set: &[String], root: bool) -> anyhow::Result<Config> {
        let dir = open_resume_dir(run)?;
        let cfg_path = dir.join("config.toml");
        if !cfg_path.exists() {
            bail!(
                "--resume {}: no config.toml there (every rank reads it: the run directory must be readable on every host)",
                dir.display()
            );
        }
        if root && !dir.join("last.safetensors").exists() {
            bail!(
                "--resume {}: no last.safetensors checkpoint there{}",
                dir.display(),
                crate::app::train::no_checkpoint_hint(&dir)
            );
        }
        crate::app::train::refuse_new_loss_scale(set)?;
        if root {
            // One job at a time resumes a run; rank 0 writes it.
            crate::report::run_lock::lock_run(&dir)?;
        }
        let cfg = admit::load_resumed_config(&cfg_path, set, true)?;
        if root {
            let last = dir.join("last.safetensors");
            crate::train::resume_guard::check_checkpoint_config(&last, &cfg)?;
            crate::report::rundir::remove_stale_temporaries(&dir);
        }
        Ok(cfg)
    }

    /// Open this rank's `train.workers` backends and train.
    fn run(
        m: Mpi,
        mut cfg: Config,
        opts: &TrainOptions,
        dir: &Path,
        choice: BackendChoice,
        adapters: &[String],
    ) -> anyhow::Result<TrainSummary> {
        let n = cfg.train.workers.max(1);
        let root = m.rank() == 0;
        let ranks: Option<Box<dyn Ranks>> = Some(Box::new(m));
        match open_workers(choice, adapters, n, cfg.gpu.autotune)? {
            Workers::Cpu(v) => {
                if root {
                    prepare(&mut cfg, &v[0], opts, dir)?;
                } else if let BatchSize::Fixed(batch) = cfg.train.batch_size {
                    run_memory::check_cpu_step(&cfg, batch)?;
                }
                let refs: Vec<&CpuBackend> = v.iter().collect();
                Ok(run_train_ranks(&refs, Box::new(Threads), ranks, &cfg, opts, dir)?)
            }
            Workers::Gpu(v) => {
                if root {
                    prepare(&mut cfg, &v[0], opts, dir)?;
                }
                let refs: Vec<&GpuBackend> = v.iter().collect();
                Ok(run_train_ranks(&refs, Box::new(Sequential), ranks, &cfg, opts, dir)?)
            }
        }
    }
}

#[cfg(all(test, not(feature = "mpi")))]
mod tests {
    use super::*;

    #[test]
    fn mpi_without_the_feature_names_the_rebuild() {
        let e = train(&RunArgs::default(), BackendChoice::Cpu, None, None, None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--features mpi") && !msg.contains('\n'), "{msg}");
    }
}

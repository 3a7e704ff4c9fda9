//! Command-line interface (clap derive). Doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use batchscope::commands::{BackendChoice as Choice, RunArgs};

#[derive(Parser, Debug)]
#[command(
    name = "batchscope",
    version,
    about = "Measure batch size, throughput, curvature and gradient noise of neural-network training on a GPU (wgpu) and its CPU twin."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Which backend runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// The best GPU adapter, or the CPU backend (with a notice) when none exists.
    Auto,
    /// A GPU adapter through wgpu; an error when none exists.
    Gpu,
    /// The CPU backend (the reference implementation).
    Cpu,
}

impl From<BackendChoice> for Choice {
    fn from(c: BackendChoice) -> Self {
        match c {
            BackendChoice::Auto => Choice::Auto,
            BackendChoice::Gpu => Choice::Gpu,
            BackendChoice::Cpu => Choice::Cpu,
        }
    }
}

/// Options shared by the commands that run a model.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// TOML config (the embedded configs/default.toml when omitted).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override a config value: `--set train.lr=0.1` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// Pick the GPU adapter whose name contains this (case-insensitive).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Output directory (default runs/<command>-<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Common {
    pub fn run_args(&self) -> RunArgs {
        RunArgs {
            config: self.config.clone(),
            set: self.set.clone(),
            adapter: self.adapter.clone(),
            out: self.out.clone(),
            progress: !self.quiet,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every GPU adapter wgpu sees, with the limits that bound batch size.
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Train a model: minibatch SGD, surrogate and 0-1 loss, early stopping, checkpoints.
    Train {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// Start from these weights (safetensors, `layers.{i}.weight` [out, in]).
        #[arg(long, value_name = "CKPT.safetensors")]
        init: Option<PathBuf>,
        /// Continue the run in RUN_DIR from its last checkpoint (its config.toml, plus --set).
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "init", "out"])]
        resume: Option<PathBuf>,
    },
    /// Sweep power-of-two batch sizes, measure throughput, and pick a batch size by policy.
    Sweep {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// Smallest batch size (rounded up to a power of two).
        #[arg(long)]
        min_batch: Option<usize>,
        /// Largest batch size.
        #[arg(long)]
        max_batch: Option<usize>,
        /// max_throughput | knee | knee:F | largest_fit | time_to_target:B_NOISE
        #[arg(long)]
        policy: Option<String>,
    },
    /// The same sweep on the GPU and on the CPU backend, side by side, with the speedup.
    Compare {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        min_batch: Option<usize>,
        #[arg(long)]
        max_batch: Option<usize>,
    },
}

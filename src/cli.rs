//! Command-line interface (clap derive). Doc comments are the `--help` text.

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "batchscope", version, about = "Measure batch size, throughput, curvature and gradient noise of neural-network training on a GPU (wgpu) and its CPU twin.")]
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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every GPU adapter wgpu sees, with the limits that bound batch size.
    Devices {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

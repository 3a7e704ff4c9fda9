//! Command-line interface (clap derive). Doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use batchscope::app::{BackendChoice as Choice, RunArgs};

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
    /// The best hardware GPU adapter; the CPU backend (with a notice) when none exists, or when
    /// the only adapters are software rasterisers (lavapipe / llvmpipe), which it outruns.
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
    /// TOML config (when omitted, the command's embedded default: configs/default.toml; rnn
    /// configs/long_term.toml, depth configs/deep_tanh.toml, landscape configs/landscape.toml,
    /// time-to-target configs/time_to_target.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override a config value: `--set train.lr=0.1` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// The GPU adapter: its index in `batchscope devices`, or a part of its name
    /// (case-insensitive) that only it has, or its whole name.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Output directory (default runs/<command>-<UTC time>; `tune` writes its table files only
    /// when given one, and the autotune cache in every case).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Arithmetic of the MLP step: `f32`, or `f16` (mixed precision, dynamic loss scaling);
    /// the same as `--set model.precision="f16"`. `sweep` also takes both, `f32,f16`: one
    /// sweep per precision in one table, CSV and plot.
    #[arg(long, value_parser = ["f32", "f16"], value_delimiter = ',', value_name = "P[,P]")]
    pub precision: Vec<String>,
}

/// The options of a command that runs on one backend: [`Common`] and `--backend`.
#[derive(Args, Debug, Clone)]
pub struct OnBackend {
    #[command(flatten)]
    pub common: Common,
    /// Which backend runs the model.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
}

impl OnBackend {
    pub fn run_args(&self) -> RunArgs {
        self.common.run_args()
    }

    pub fn backend(&self) -> Choice {
        self.backend.into()
    }
}

impl Common {
    pub fn run_args(&self) -> RunArgs {
        RunArgs {
            config: self.config.clone(),
            set: self
                .set
                .iter()
                .cloned()
                .chain(
                    (self.precision.len() == 1)
                        .then(|| format!("model.precision=\"{}\"", self.precision[0])),
                )
                .collect(),
            adapter: self.adapter.clone(),
            out: self.out.clone(),
            progress: !self.quiet,
        }
    }
}

impl Common {
    /// `--precision` checked: no value twice, and a list only where `list_ok` (the sweep).
    pub fn precisions(&self, command: &str, list_ok: bool) -> Result<&[String], String> {
        let p = &self.precision;
        let f32_only = match command {
            "rnn" => Some("trains its recurrent network in f32 only"),
            "depth" => Some("measures the per-layer norms of the f32 step only"),
            "curvature" => Some("measures the Hessian of the f32 loss only"),
            "noise" => Some("measures gradient noise of the f32 loss only"),
            "landscape" => Some("evaluates the f32 loss only"),
            _ => None,
        };
        if let Some(why) = f32_only.filter(|_| p.iter().any(|x| x != "f32")) {
            return Err(format!("--precision {}: `{command}` {why}", p.join(",")));
        }
        if let Some(i) = (1..p.len()).find(|&i| p[..i].contains(&p[i])) {
            return Err(format!("--precision {} names {} twice", p.join(","), p[i]));
        }
        if p.len() > 1 && !list_ok {
            return Err(format!(
                "--precision {}: `{command}` takes one precision; only `sweep` takes a list",
                p.join(",")
            ));
        }
        Ok(p)
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
        on: OnBackend,
        /// Start from these weights (safetensors, `layers.{i}.weight` [out, in]).
        #[arg(long, value_name = "CKPT.safetensors")]
        init: Option<PathBuf>,
        /// Continue the run in RUN_DIR from its last checkpoint (its config.toml, plus --set).
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "init", "out"])]
        resume: Option<PathBuf>,
        /// Data-parallel replicas (train.workers), each on batch_size/N rows of every batch; with
        /// --adapter a,b,... one adapter (index or name) per worker.
        #[arg(long, value_name = "N")]
        workers: Option<usize>,
        /// Train as one rank of an MPI job (`mpirun -np N batchscope train ... --mpi`): the global
        /// batch is split across ranks (train.workers each), rank 0 writes the run directory.
        /// Needs a build with `--features mpi`.
        #[arg(long)]
        mpi: bool,
    },
    /// Sweep power-of-two batch sizes, measure throughput, and pick a batch size by policy.
    Sweep {
        #[command(flatten)]
        on: OnBackend,
        /// Smallest batch size (rounded up to a power of two).
        #[arg(long)]
        min_batch: Option<usize>,
        /// Largest batch size.
        #[arg(long)]
        max_batch: Option<usize>,
        /// max_throughput | knee | knee:F | largest_fit | time_to_target:B_NOISE | time_to_target:auto
        #[arg(long)]
        policy: Option<String>,
        /// Also measure data-parallel scaling at these worker counts (`1,2,4`): throughput,
        /// efficiency, all-reduce share and time to target per worker count (workers.csv).
        #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
        workers: Vec<usize>,
    },
    /// Where a training step's time goes: every dispatch timed and named by op and layer, with
    /// FLOPs, bytes and the roof that bounds it (profile.csv, profile.svg).
    Profile {
        #[command(flatten)]
        on: OnBackend,
        /// Batch size to profile (repeatable; default 1, 64 and 4096).
        #[arg(long = "batch", value_name = "N")]
        batch: Vec<usize>,
    },
    /// Time every matmul kernel candidate for the products of the config's training step at
    /// these batch sizes on the GPU, keep the fastest per shape in the autotune cache
    /// (BATCHSCOPE_AUTOTUNE_CACHE, else ~/.cache/batchscope/autotune.json) that runs with
    /// gpu.autotune = "cached" or "on" use; a table per shape, tune.csv with --out.
    Tune {
        #[command(flatten)]
        common: Common,
        /// Batch sizes whose step shapes are tuned (default 1,64,4096; 1,64 on a software
        /// adapter).
        #[arg(long = "batch-sizes", value_delimiter = ',', value_name = "N,N,...")]
        batch_sizes: Vec<usize>,
    },
    /// Matrix-product throughput on the GPU, to hold against cuBLAS: square sizes (or given
    /// shapes) in each layout and precision, every matmul kernel candidate timed (GPU
    /// timestamps), the default and the fastest in TFLOP/s, % of the device's peak, and the
    /// ratio to a peer's figure (--peers: peer_ref.py's or benches/peer_gemm.py's CSV).
    Gemm {
        /// Square sizes n, products n x n x n (default 1024,4096,8192; 256,512 on a software
        /// adapter).
        #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
        sizes: Vec<usize>,
        /// A product of another shape, M x N x K (repeatable: --shape 4096x784x1024).
        #[arg(long = "shape", value_name = "MxNxK")]
        shapes: Vec<String>,
        /// Layouts: nn, nt (B stored transposed), tn (A stored transposed), tt.
        #[arg(long, value_delimiter = ',', value_name = "L,L,...", default_value = "nn,nt,tn")]
        layouts: Vec<String>,
        /// Precisions: f32 (fp32 products), f16 (packed halves with f32 sums; tensor cores
        /// where the adapter offers cooperative matrices).
        #[arg(long, value_delimiter = ',', value_name = "P[,P]", default_value = "f32")]
        precision: Vec<String>,
        /// Peer figures to compare with (CSV what,size_or_batch,value,unit; sgemm_tn, hgemm, ...).
        #[arg(long, value_name = "PEERS.csv")]
        peers: Option<PathBuf>,
        /// The GPU adapter: its index in `batchscope devices`, or a part of its name
        /// (case-insensitive) that only it has, or its whole name.
        #[arg(long)]
        adapter: Option<String>,
        /// Output directory for gemm.csv, gemm.svg and summary.json (nothing is written without
        /// it).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also time the arithmetic ceilings: the fp32 FMA, the tiled kernels' inner loop and
        /// the tensor-core loops with no memory traffic (ceilings.csv with --out).
        #[arg(long)]
        ceilings: bool,
    },
    /// Gradient noise: minibatch error vs batch size (σ/√n), the noise scale B_simple.
    Noise {
        #[command(flatten)]
        on: OnBackend,
        /// Measure at these parameters (safetensors) instead of the initialisation.
        #[arg(long, value_name = "CKPT.safetensors")]
        checkpoint: Option<PathBuf>,
        /// Largest minibatch size (powers of two from 1).
        #[arg(long, default_value_t = 1024)]
        max_n: usize,
        /// Minibatches drawn per size.
        #[arg(long, default_value_t = 32)]
        draws: usize,
        /// Seed of the minibatch draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Skip the Hessian-vector products (GᵀHG, tr(HΣ), B_noise).
        #[arg(long)]
        no_curvature: bool,
    },
    /// Validate the time_to_target policy: train at each power-of-two B with ε_opt(B) to
    /// train.target_val_error and plot measured against predicted wall time (embedded default:
    /// configs/time_to_target.toml).
    TimeToTarget {
        #[command(flatten)]
        on: OnBackend,
    },
    /// Plot one metrics.jsonl field of several train runs on one SVG (vs examples seen).
    Overlay {
        /// Train run directories.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The field: val_error, val_loss, train_loss, train_full_error, grad_norm, ...
        #[arg(long, default_value = "val_error")]
        field: String,
        /// A legend label per run (in order).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Output SVG.
        #[arg(long, default_value = "overlay.svg")]
        out: PathBuf,
        /// Logarithmic y axis.
        #[arg(long)]
        log_y: bool,
    },
    /// The same sweep on the GPU and on the CPU backend, side by side, with the speedup.
    Compare {
        #[command(flatten)]
        common: Common,
        /// Smallest batch size (rounded up to a power of two).
        #[arg(long)]
        min_batch: Option<usize>,
        /// Largest batch size.
        #[arg(long)]
        max_batch: Option<usize>,
    },
    /// Hessian of the training loss at initialization or a checkpoint, by Hessian-vector
    /// products: λmax, λmin, top eigenvalues, trace, spectral density (SLQ), gᵀHg, 2/λmax.
    Curvature {
        #[command(flatten)]
        on: OnBackend,
        #[command(flatten)]
        args: CurvatureArgs,
    },
    /// Train a recurrent network by BPTT once per [[variant]]: per-time-step gradient norms
    /// ‖∂L/∂h_t‖ against ρ(W)^(T−t), spectrum of W, loss spikes and clip events.
    Rnn {
        #[command(flatten)]
        on: OnBackend,
    },
    /// Per-layer gradient norms of a deep MLP (tanh or identity, weight gain per [[variant]]).
    Depth {
        #[command(flatten)]
        on: OnBackend,
    },
    /// Loss along lines and planes through the parameters, the straight path from init, and the
    /// path to a permuted / rescaled twin (trains the config's model first without --checkpoint).
    Landscape {
        #[command(flatten)]
        on: OnBackend,
        /// Slice through these weights (safetensors with the model's tensor names).
        #[arg(long, value_name = "CKPT.safetensors")]
        checkpoint: Option<PathBuf>,
    },
}

impl Command {
    /// The command's name and its shared options, for the commands that run a model.
    pub fn common(&self) -> Option<(&'static str, &Common)> {
        match self {
            Command::Devices { .. } | Command::Overlay { .. } | Command::Gemm { .. } => None,
            Command::Train { on, .. } => Some(("train", &on.common)),
            Command::Sweep { on, .. } => Some(("sweep", &on.common)),
            Command::Profile { on, .. } => Some(("profile", &on.common)),
            Command::Noise { on, .. } => Some(("noise", &on.common)),
            Command::TimeToTarget { on } => Some(("time-to-target", &on.common)),
            Command::Curvature { on, .. } => Some(("curvature", &on.common)),
            Command::Rnn { on } => Some(("rnn", &on.common)),
            Command::Depth { on } => Some(("depth", &on.common)),
            Command::Landscape { on, .. } => Some(("landscape", &on.common)),
            Command::Tune { common, .. } => Some(("tune", common)),
            Command::Compare { common, .. } => Some(("compare", common)),
        }
    }

    /// A flag and a `--set` of the config key it stands for, both given: refused (the flag
    /// won, or the last `--set`, without a word). Two `--set`s of one key are checked by
    /// [`conflicting_sets`](batchscope::config::conflicting_sets).
    pub fn flag_and_set_agree(&self) -> Result<(), String> {
        let Some((_, common)) = self.common() else { return Ok(()) };
        let mut flags: Vec<(String, &str)> = Vec::new();
        let mut given = |on: bool, flag: &str, key: &'static str| {
            if on {
                flags.push((flag.to_string(), key));
            }
        };
        given(!common.precision.is_empty(), "--precision", "model.precision");
        match self {
            Command::Train { workers, .. } => given(workers.is_some(), "--workers", "train.workers"),
            Command::Sweep { min_batch, max_batch, policy, .. } => {
                given(min_batch.is_some(), "--min-batch", "sweep.min_batch");
                given(max_batch.is_some(), "--max-batch", "sweep.max_batch");
                given(policy.is_some(), "--policy", "sweep.policy");
                // `knee:F` sets the knee's fraction, as `sweep.knee_fraction` does (the policy
                // won unsaid); a bare `knee` takes the key's fraction.
                if let Some(p) = policy.as_deref().filter(|p| knee_with_fraction(p)) {
                    given(true, &format!("--policy {p}"), "sweep.knee_fraction");
                }
            }
            Command::Compare { min_batch, max_batch, .. } => {
                given(min_batch.is_some(), "--min-batch", "sweep.min_batch");
                given(max_batch.is_some(), "--max-batch", "sweep.max_batch");
            }
            _ => {}
        }
        for (flag, key) in flags {
            let set_here = |arg: &&String| arg.split_once('=').is_some_and(|(k, _)| k.trim() == key);
            if let Some(arg) = common.set.iter().find(set_here) {
                return Err(format!("{flag} and --set {arg} both set {key}: give one"));
            }
        }
        Ok(())
    }
}

/// Whether a `--policy` is `knee:F`, a knee with its own fraction (the name's case ignored, as
/// the policy parser ignores it).
fn knee_with_fraction(policy: &str) -> bool {
    policy.split_once(':').is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("knee"))
}

/// Options of `batchscope curvature`.
#[derive(Args, Debug, Clone)]
pub struct CurvatureArgs {
    /// Analyse these weights (safetensors) instead of the config's initialization.
    #[arg(long, value_name = "CKPT.safetensors")]
    pub checkpoint: Option<PathBuf>,
    /// Average the loss over the first N training examples (default: as many as a work budget
    /// of 2^28 parameters × examples per Hessian-vector product allows, at most all of them).
    #[arg(long, value_name = "N")]
    pub examples: Option<usize>,
    /// Also estimate λmax, the trace and the gradient on random batches of N examples and report
    /// their spread (repeatable: --batch 64 --batch 1024).
    #[arg(long = "batch", value_name = "N")]
    pub batch: Vec<usize>,
    /// Random batches per --batch size.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// How many of the largest eigenvalues to report.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Lanczos steps per run (at most the number of parameters).
    #[arg(long, default_value_t = 64)]
    pub lanczos_steps: usize,
    /// Lanczos runs from random starts for the spectral density (SLQ).
    #[arg(long, default_value_t = 4)]
    pub slq_runs: usize,
    /// Most power-iteration steps for λmax.
    #[arg(long, default_value_t = 100)]
    pub power_iters: usize,
    /// Most Hutchinson probes for the trace.
    #[arg(long, default_value_t = 200)]
    pub trace_samples: usize,
    /// Stop the trace estimate once its relative standard error is below this.
    #[arg(long, default_value_t = 0.005)]
    pub trace_tol: f64,
    /// Seed of the random probes and batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl CurvatureArgs {
    pub fn options(&self, progress: bool) -> batchscope::curvature::CurvatureOptions {
        batchscope::curvature::CurvatureOptions {
            checkpoint: self.checkpoint.clone(),
            examples: self.examples,
            batches: self.batch.clone(),
            repeats: self.repeats,
            top_k: self.top_k,
            lanczos_steps: self.lanczos_steps,
            slq_runs: self.slq_runs,
            power_iters: self.power_iters,
            trace_samples: self.trace_samples,
            trace_tol: self.trace_tol,
            seed: self.seed,
            progress,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag of every command says what it does in `--help` (compare's `--min-batch` and
    /// `--max-batch` had no text).
    #[test]
    fn every_flag_has_help_text() {
        let cli = super::Cli::command();
        let mut bare = Vec::new();
        for cmd in cli.get_subcommands() {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !matches!(id, "help" | "version") {
                    bare.push(format!("{} --{}", cmd.get_name(), arg.get_long().unwrap_or(id)));
                }
            }
        }
        assert!(bare.is_empty(), "flags without help text: {bare:?}");
    }
}

//! `batchscope landscape --config FILE [--checkpoint CKPT] [--out DIR]`.
//!
//! The config is a `train` config (MLP) or an `rnn` config, plus a `[landscape]` section. The
//! parameters θ come from `--checkpoint`, or, without one, from training the config's model first
//! (into `<run>/train/`), so one command shows the slice through a trained model and the path
//! from its initialisation. Writes CSV tables, SVG plots and summary.json.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::backend::Backend;
use crate::config::{
    Config, ConfigText, DataKind, DirSpec, LandscapeConfig, Mode, RnnConfig, LANDSCAPE_DEFAULT_TOML,
};
use crate::landscape::direction;
use crate::landscape::objective::{MlpObjective, Objective, RnnObjective};
use crate::landscape::symmetry::{check_twin, mlp_twin, rnn_twin, TwinError, TwinSpec};
use crate::model::{Mlp, Rnn};
use crate::profile::Profilable;
use crate::report::rundir::{create_run_dir, write_atomic};
use crate::schedule::admit;
use crate::train::checkpoint;
use crate::train::rnn::run_rnn;
use crate::train::{run_train, TrainOptions};

mod slices;

/// The model a landscape config describes.
enum ModelCfg {
    Mlp(Box<Config>),
    Rnn(Box<RnnConfig>),
}

/// `batchscope landscape`.
pub fn landscape(args: &RunArgs, backend: BackendChoice, ckpt: Option<PathBuf>) -> anyhow::Result<()> {
    let mut text = ConfigText::load(
        args.config.as_deref(),
        LANDSCAPE_DEFAULT_TOML,
        "configs/landscape.toml",
        &args.set,
    )?;
    let origin = text.origin.clone();
    let lc: LandscapeConfig = text.take_section("landscape")?;
    lc.validate(&origin)?;
    let has_variants = text.table.contains_key("variant");
    let variants = text.variants("base")?;
    let table = if lc.variant.is_empty() {
        if has_variants {
            let names: Vec<&str> = variants.iter().map(|v| v.0.as_str()).collect();
            return Err(text
                .invalid(
                    "landscape.variant",
                    format!(
                        "the config has [[variant]] tables ({}) and landscape measures one model: name the one to use (landscape.variant = \"{}\"), or remove them",
                        names.join(", "),
                        names[0]
                    ),
                )
                .into());
        }
        text.table.clone()
    } else {
        let names: Vec<&str> = variants.iter().map(|v| v.0.as_str()).collect();
        match variants.iter().find(|v| v.0 == lc.variant) {
            Some(v) => v.1.clone(),
            None => {
                return Err(text
                    .invalid(
                        "landscape.variant",
                        format!("no [[variant]] named `{}` (have: {})", lc.variant, names.join(", ")),
                    )
                    .into())
            }
        }
    };
    let model = if table.contains_key("rnn") || table.contains_key("sequence") {
        ModelCfg::Rnn(Box::new(RnnConfig::from_table(table, &origin)?))
    } else {
        let cfg = admit::config_from_table(table, &origin)?;
        super::backend::refuse_f16(&cfg, "landscape", "evaluates the f32 loss")?;
        if ckpt.is_none() {
            // It trains the model first, at one fixed batch size.
            if cfg.train.batch_size == crate::config::BatchSize::Auto {
                return Err(text
                    .invalid(
                        "train.batch_size",
                        "= \"auto\" is not supported by `landscape`, which trains the model first: give a number, or --checkpoint a trained model".into(),
                    )
                    .into());
            }
            admit::check_batch_fits(&cfg, &origin)?;
        }
        // The evaluation holds its training examples in memory, streamed or not.
        let rows = match lc.eval_train {
            0 => cfg.data.n_train,
            m => cfg.data.n_train.min(m as u64),
        };
        admit::check_resident_rows(&cfg, rows, &origin)?;
        ModelCfg::Mlp(Box::new(cfg))
    };
    // The Hessian direction needs Hessian-vector products, which exist for the MLP only: say so
    // before anything trains.
    let uses =
        |mode: Mode, dirs: Vec<DirSpec>| lc.modes.contains(&mode) && dirs.contains(&DirSpec::Hessian);
    if matches!(model, ModelCfg::Rnn(_))
        && (uses(Mode::Line, lc.line_dirs()) || uses(Mode::Plane, lc.plane_dirs()))
    {
        bail!("landscape: the \"hessian\" direction needs Hessian-vector products, which exist for the MLP only (this config is an RNN's)");
    }
    // A twin the hidden units cannot have (sign flips of ReLU, rescaled tanh): say so before
    // anything trains.
    if lc.modes.contains(&Mode::Symmetry) {
        let hidden_act = match &model {
            ModelCfg::Mlp(c) => (!c.model.hidden.is_empty()).then(|| c.mlp_spec().activation),
            ModelCfg::Rnn(c) => Some(c.rnn_spec().activation),
        };
        let ts = TwinSpec {
            seed: lc.seed,
            permute: lc.permute,
            rescale: lc.rescale,
            sign_flips: lc.sign_flips,
        };
        if let Some(act) = hidden_act {
            check_twin(&ts, act).map_err(|e| anyhow::anyhow!("landscape symmetry: {e}"))?;
        }
    }
    // Fail on a bad checkpoint before creating the run directory.
    for p in ckpt.iter().chain(lc.start.iter()) {
        checkpoint::load(p)?;
    }
    let dir = create_run_dir(args.out.as_deref(), "landscape")?;
    let model_toml = match &model {
        ModelCfg::Mlp(c) => c.to_toml(),
        ModelCfg::Rnn(c) => c.to_toml(),
    };
    #[derive(serde::Serialize)]
    struct Section<'a> {
        landscape: &'a LandscapeConfig,
    }
    let section =
        toml::to_string_pretty(&Section { landscape: &lc }).context("serialising [landscape]")?;
    write_atomic(&dir.join("config.toml"), format!("{model_toml}\n{section}").as_bytes())?;
    eprintln!("run directory: {}", dir.display());
    let task =
        Landscape { model: &model, lc: &lc, ckpt: ckpt.as_deref(), dir: &dir, progress: args.progress };
    let summary = with_backend(backend, args.adapter.as_deref(), task)?;
    crate::report::jsonl::write_pretty(&dir.join("summary.json"), &summary)?;
    println!("wrote: {}", dir.display());
    Ok(())
}

/// The tensors `names` with `shapes` of a checkpoint.
pub fn load_tensors(
    path: &Path,
    names: &[String],
    shapes: &[Vec<usize>],
) -> anyhow::Result<Vec<Vec<f32>>> {
    Ok(direction::load_tensors(path, names, shapes)?)
}

type TwinFn = Box<dyn Fn(&[Vec<f32>], &TwinSpec) -> Result<Vec<Vec<f32>>, TwinError>>;

/// A model ready for slicing: its objective, the end (current) and start parameters, its twin map.
pub(super) struct Prepared<'a, B: Backend> {
    pub(super) obj: Box<dyn Objective<B> + 'a>,
    /// The MLP and its evaluated training examples, for Hessian-vector products.
    pub(super) hessian: Option<(Mlp, crate::data::Dataset)>,
    pub(super) end: Vec<Vec<f32>>,
    pub(super) start: Vec<Vec<f32>>,
    pub(super) twin: TwinFn,
    pub(super) names: Vec<String>,
    pub(super) shapes: Vec<Vec<usize>>,
    pub(super) origin: String,
}

/// Every slice of the config on backend `b`; the table on stdout, summary.json's value back.
struct Landscape<'a> {
    model: &'a ModelCfg,
    lc: &'a LandscapeConfig,
    ckpt: Option<&'a Path>,
    dir: &'a Path,
    progress: bool,
}

impl BackendTask for Landscape<'_> {
    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        match self.model {
            ModelCfg::Mlp(c) => c.gpu.autotune,
            ModelCfg::Rnn(_) => Default::default(),
        }
    }

    type Output = serde_json::Value;

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<serde_json::Value> {
        let p = prepare(b, self.model, self.lc, self.ckpt, self.dir, self.progress)?;
        slices::run(b, p, self.lc, self.dir)
    }
}

/// Every file the slices read (`file:` directions, `landscape.start`) loads with the model's
/// tensors: checked before any training, so a wrong path fails at once, not after it.
/// A direction file of zeros is refused here too (it was found after the training).
fn check_files(lc: &LandscapeConfig, names: &[String], shapes: &[Vec<usize>]) -> anyhow::Result<()> {
    let line = lc.line_dirs().into_iter().map(|d| ("landscape.line_directions", d));
    let plane = lc.plane_dirs().into_iter().map(|d| ("landscape.plane_directions", d));
    let files = line.chain(plane).filter_map(|(key, d)| match d {
        DirSpec::File(p) => Some((key, p)),
        _ => None,
    });
    for (key, p) in files {
        // The checkpoint error names the file (once).
        let tensors = direction::load_tensors(&p, names, shapes)
            .map_err(|e| e.of_key(key, "a file: direction"))?;
        if crate::stats::global_norm(&tensors) == 0.0 {
            let what = format!("file:{}", p.display());
            Err(direction::LandscapeError::Degenerate { what, problem: "is zero".into() })?;
        }
    }
    if let Some(p) = &lc.start {
        direction::load_tensors(p, names, shapes)
            .map_err(|e| e.of_key("landscape.start", "the start point"))?;
    }
    Ok(())
}

fn prepare<'a, B: Backend>(
    b: &'a B,
    model: &ModelCfg,
    lc: &LandscapeConfig,
    ckpt: Option<&Path>,
    dir: &Path,
    progress: bool,
) -> anyhow::Result<Prepared<'a, B>> {
    match model {
        ModelCfg::Mlp(cfg) => {
            let mlp = Mlp::new(cfg.mlp_spec())?;
            let (names, shapes) = mlp.param_layout();
            check_files(lc, &names, &shapes)?;
            let (end, origin) = match ckpt {
                Some(p) => (load_tensors(p, &names, &shapes)?, format!("checkpoint {}", p.display())),
                None => {
                    let tdir = dir.join("train");
                    std::fs::create_dir_all(&tdir)
                        .with_context(|| format!("creating {}", tdir.display()))?;
                    eprintln!("no --checkpoint: training the config's model first ({})", tdir.display());
                    // A train run directory like `train`'s: config.toml makes it resumable.
                    super::output::write_config(&tdir, &cfg.to_toml())?;
                    let s = run_train(b, cfg, &TrainOptions { progress, ..Default::default() }, &tdir)?;
                    eprintln!("trained {} steps: {}", s.steps, s.stopped_reason);
                    let last = tdir.join("last.safetensors");
                    (load_tensors(&last, &names, &shapes)?, format!("trained here ({})", last.display()))
                }
            };
            let start = match &lc.start {
                Some(p) => load_tensors(p, &names, &shapes)?,
                None => mlp.init_host_scaled(cfg.model.init_seed, cfg.model.init_scale),
            };
            // Synthetic example i is a function of (seed, i): generate only the evaluated prefix.
            let mut data = cfg.data.clone();
            if data.kind != DataKind::Npy && lc.eval_train > 0 {
                data.n_train = data.n_train.min(lc.eval_train as u64);
            }
            let train = crate::data::build_train(&data, cfg.data_outputs())?;
            let val = crate::data::build_validation(&cfg.data, cfg.data_outputs())?;
            let m = if lc.eval_train == 0 { train.n } else { lc.eval_train.min(train.n) };
            let train = train.select(&(0..m).collect::<Vec<_>>());
            let obj = MlpObjective::new(b, mlp.clone(), &train, &val, lc.chunk)?;
            let (sizes, act) = (mlp.spec.sizes.clone(), mlp.spec.activation);
            let twin: TwinFn = Box::new(move |p, t| mlp_twin(&sizes, act, p, t));
            let hessian = Some((mlp, train));
            Ok(Prepared { obj: Box::new(obj), hessian, end, start, twin, names, shapes, origin })
        }
        ModelCfg::Rnn(cfg) => {
            let rnn = Rnn::new(cfg.rnn_spec())?;
            let (names, shapes) = rnn.param_layout();
            check_files(lc, &names, &shapes)?;
            let (end, origin) = match ckpt {
                Some(p) => (load_tensors(p, &names, &shapes)?, format!("checkpoint {}", p.display())),
                None => {
                    let tdir = dir.join("train");
                    eprintln!("no --checkpoint: training the config's RNN first ({})", tdir.display());
                    std::fs::create_dir_all(&tdir)
                        .with_context(|| format!("creating {}", tdir.display()))?;
                    // The trained run says what it trained, as the MLP's does.
                    super::output::write_config(&tdir, &cfg.to_toml())?;
                    let (s, _) = run_rnn(b, cfg, "train", &tdir, progress)?;
                    if let Some(step) = s.diverged_at {
                        let hint = match cfg.train.clip_norm > 0.0 {
                            true => {
                                format!("lower train.lr or train.clip_norm = {}", cfg.train.clip_norm)
                            }
                            false => "lower train.lr or enable train.clip_norm".to_string(),
                        };
                        bail!("training diverged at step {step}: there is no finite θ to slice through ({hint})");
                    }
                    let last = tdir.join("last.safetensors");
                    (load_tensors(&last, &names, &shapes)?, format!("trained here ({})", last.display()))
                }
            };
            let start = match &lc.start {
                Some(p) => load_tensors(p, &names, &shapes)?,
                None => rnn.init_host(&cfg.rnn_init()),
            };
            let n_train = cfg.sequence.n_train;
            let m = if lc.eval_train == 0 { n_train } else { lc.eval_train.min(n_train) };
            let (train, val) = cfg.seq_spec().train_val(m, cfg.sequence.n_val)?;
            let obj = RnnObjective::new(b, rnn.clone(), &train, &val, lc.chunk)?;
            let spec = rnn.spec.clone();
            let twin: TwinFn = Box::new(move |p, t| rnn_twin(&spec, p, t));
            Ok(Prepared { obj: Box::new(obj), hessian: None, end, start, twin, names, shapes, origin })
        }
    }
}

//! `batchscope depth --config FILE`: per-layer gradient norms of a deep MLP, at initialisation
//! and during a short SGD run, once per `[[variant]]` (activation, weight gain).
//!
//! Run directory: `config.toml`, `summary.json`, `layer_norms.csv`, `layer_norms_init.svg`,
//! `delta_norms_init.svg`, and per variant `<name>/layer_norms.svg` over training steps.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::config::{Config, ConfigError, ConfigText, DepthConfig, LandscapeConfig, DEPTH_DEFAULT_TOML};
use crate::experiments::depth::{run_depth, DepthPoint, DepthRun};
use crate::profile::Profilable;
use crate::report::csv::{Cell, CsvWriter};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::{create_run_dir, write_atomic};
use crate::report::table::Table;
use crate::schedule::admit;

/// The first setting of `cfg` that depth's short run (fixed steps, constant learning rate, no
/// evaluation, checkpoints or monitors, a resident training set) would ignore, if any.
fn ignored_by_depth(cfg: &Config) -> Option<&'static str> {
    let (t, d) = (&cfg.train, crate::config::TrainConfig::default());
    let m = &cfg.monitor;
    [
        // It trains train.steps steps, however many epochs they make.
        (t.epochs != d.epochs, "train.epochs"),
        (t.one_pass != d.one_pass, "train.one_pass"),
        (t.max_seconds != d.max_seconds, "train.max_seconds"),
        (t.lr_schedule != d.lr_schedule, "train.lr_schedule"),
        (t.patience != d.patience, "train.patience"),
        (t.target_val_error != d.target_val_error, "train.target_val_error"),
        (t.eval_every != d.eval_every, "train.eval_every"),
        (t.eval_train != d.eval_train, "train.eval_train"),
        (t.checkpoint_every != d.checkpoint_every, "train.checkpoint_every"),
        (m.curvature_every > 0, "monitor.curvature_every"),
        (m.noise_every > 0, "monitor.noise_every"),
        (cfg.data.mode != crate::config::DataMode::Resident, "data.mode"),
        // It times nothing: a batch-size sweep's settings are another command's.
        (cfg.sweep != crate::config::SweepConfig::default(), "the [sweep] section"),
        // Its minibatches are a new permutation each epoch, whatever these say.
        (t.shuffle != d.shuffle, "train.shuffle"),
        (t.sorted_by_label != d.sorted_by_label, "train.sorted_by_label"),
    ]
    .into_iter()
    .find_map(|(set, key)| set.then_some(key))
}

/// `batchscope depth`.
pub fn depth(args: &RunArgs, backend: BackendChoice) -> anyhow::Result<()> {
    let mut text = ConfigText::load(
        args.config.as_deref(),
        DEPTH_DEFAULT_TOML,
        "configs/deep_tanh.toml",
        &args.set,
    )?;
    let origin = text.origin.clone();
    let dc: DepthConfig = text.take_section("depth")?;
    dc.validate(&origin)?;
    // The growth per layer is fit over the hidden layers past the first: fewer than 3 give no
    // fit (a run of 1 wrote null growth and exited 0). Said of depth.layers, where it is set.
    if (1..MIN_HIDDEN_LAYERS).contains(&dc.layers) {
        Err(text.invalid(
            "depth.layers",
            format!(
                "must be 0 (model.hidden gives the layers) or at least {MIN_HIDDEN_LAYERS}, got {}: \
                 depth fits the growth of the per-layer norms over the hidden layers",
                dc.layers
            ),
        ))?;
    }
    // A [landscape] section belongs to `batchscope landscape` (one file serves both); it is
    // checked as that command checks it (an unknown key or a NaN range passed without a word),
    // then set aside.
    let landscape: LandscapeConfig = text.take_section("landscape")?;
    landscape.validate(&origin)?;
    let resolved = text.table.clone();
    let mut cfgs: Vec<(String, Config)> = Vec::new();
    for (name, mut t) in text.variants("run")? {
        let at = text.variant_origin(&name);
        let given = t.get("model").and_then(|m| m.get("hidden")).is_some();
        if given && dc.hidden().is_some() {
            anyhow::bail!(
                "{at}: model.hidden is set, but depth.layers = {} builds the \
                 layers (depth.width wide); set depth.layers = 0 to use model.hidden",
                dc.layers
            );
        }
        if let Some(hidden) = dc.hidden() {
            let model = t.entry("model").or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(m) = model {
                m.insert(
                    "hidden".into(),
                    toml::Value::Array(hidden.iter().map(|&w| toml::Value::Integer(w as i64)).collect()),
                );
            }
        }
        let cfg = admit::config_from_table(t, &at)?;
        // The per-layer norms are those of one f32 step on one worker.
        if !cfg.model.precision.is_f32() || cfg.train.workers > 1 || cfg.train.accumulate > 1 {
            anyhow::bail!(
                "{at}: depth measures the f32 step of one worker \
                 (model.precision = \"f32\", train.workers = 1, train.accumulate = 1)"
            );
        }
        // depth.layers = 0: model.hidden gives the layers, from the file, a --set or the
        // variant's `set` list (the error names which).
        let n = cfg.model.hidden.len();
        if n < MIN_HIDDEN_LAYERS {
            Err(ConfigError::Invalid {
                origin: at.clone(),
                key: "model.hidden".into(),
                message: format!(
                    "has {n} hidden layer{}, where depth needs at least {MIN_HIDDEN_LAYERS}: it \
                     fits the growth of the per-layer norms over them (depth.layers = 0 takes \
                     the layers from model.hidden)",
                    if n == 1 { "" } else { "s" }
                ),
            })?;
        }
        if let Some(key) = ignored_by_depth(&cfg) {
            anyhow::bail!(
                "{at}: depth trains train.steps plain steps at a constant \
                 train.lr and does not use {key}; leave it at its default"
            );
        }
        // Every variant runs on the one backend, which runs one autotune mode.
        if let Some((first, c)) = cfgs.first().filter(|(_, c)| c.gpu.autotune != cfg.gpu.autotune) {
            anyhow::bail!(
                "{at}: gpu.autotune = {} differs from variant {first}'s {}; the variants run on one backend: set gpu.autotune outside [[variant]]",
                serde_json::json!(cfg.gpu.autotune),
                serde_json::json!(c.gpu.autotune)
            );
        }
        cfgs.push((name.clone(), cfg));
    }
    let dir = create_run_dir(args.out.as_deref(), "depth")?;
    let mut all = resolved;
    all.insert("depth".into(), toml::Value::try_from(&dc).context("serialising [depth]")?);
    write_atomic(
        &dir.join("config.toml"),
        toml::to_string_pretty(&all).context("serialising the config")?.as_bytes(),
    )?;
    eprintln!("run directory: {}", dir.display());
    // Every logged step's norms, written as they are measured.
    let mut csv = CsvWriter::create(
        &dir.join("layer_norms.csv"),
        &["variant", "step", "layer", "weight_grad_norm", "delta_norm", "loss"],
    )?;
    let (runs, device) =
        with_backend(backend, args.adapter.as_deref(), DepthRuns { cfgs: &cfgs, csv: &mut csv })?;
    report(&dir, &runs, device)?;
    println!("wrote: {}", dir.display());
    Ok(())
}

/// The fewest hidden layers whose norms a growth per layer is fit to (the first and last
/// layers have other shapes; a line needs two of the rest).
const MIN_HIDDEN_LAYERS: usize = 3;

/// One depth run per variant, and the device's name.
struct DepthRuns<'a> {
    cfgs: &'a [(String, Config)],
    csv: &'a mut CsvWriter,
}

/// A point's `layer_norms.csv` rows, one per layer.
fn csv_rows(name: &str, p: &DepthPoint) -> Vec<Vec<Cell>> {
    (0..p.norms.weight.len())
        .map(|l| {
            vec![
                Cell::Text(name.to_string()),
                Cell::from(p.step),
                Cell::from(l + 1),
                Cell::Num(p.norms.weight[l]),
                Cell::Num(p.norms.delta[l]),
                Cell::Num(p.loss),
            ]
        })
        .collect()
}

impl BackendTask for DepthRuns<'_> {
    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        self.cfgs.first().map_or(Default::default(), |(_, c)| c.gpu.autotune)
    }

    type Output = (Vec<DepthRun>, String);

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<Self::Output> {
        // Every variant's step against the host's memory before the first trains (a deep
        // variant at a large batch aborted the process where `train` refused it).
        for (name, cfg) in self.cfgs {
            super::train::check_step_memory(cfg, b)
                .map_err(|e| anyhow::anyhow!("[[variant]] {name}: {e}"))?;
        }
        let mut runs = Vec::new();
        for (name, cfg) in self.cfgs {
            eprintln!(
                "variant {name}: {} layers, {}, init_scale {}",
                cfg.model.hidden.len() + 1,
                cfg.model.activation.name(),
                cfg.model.init_scale
            );
            let csv = &mut *self.csv;
            runs.push(run_depth(b, cfg, name, &mut |p| Ok(csv.write_rows(&csv_rows(name, p))?))?);
        }
        Ok((runs, b.device_name()))
    }
}

fn report(dir: &Path, runs: &[DepthRun], device: String) -> anyhow::Result<()> {
    let per_layer = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().map(|(l, &n)| ((l + 1) as f64, n)).collect()
    };
    let mut weight_init = Vec::new();
    let mut delta_init = Vec::new();
    let mut table = Table::new([
        "variant",
        "layers",
        "‖∂L/∂W_1‖/‖∂L/∂W_L‖",
        "ln g",
        "δ growth/layer",
        "W growth/layer",
        "loss init",
        "loss end",
        "val init → end",
        "diverged",
    ]);
    for r in runs {
        let init = &r.points[0];
        weight_init.push(Series::new(r.name.clone(), per_layer(&init.norms.weight)));
        delta_init.push(Series::new(r.name.clone(), per_layer(&init.norms.delta)));
        let curves: Vec<Series> = plotted(&r.points)
            .map(|p| Series::new(format!("step {}", p.step), per_layer(&p.norms.weight)))
            .collect();
        std::fs::create_dir_all(dir.join(&r.name))
            .with_context(|| format!("creating {}", dir.join(&r.name).display()))?;
        line_plot(
            &dir.join(&r.name).join("layer_norms.svg"),
            &PlotSpec::new(
                format!("{}: ‖∂L/∂W_l‖ during training", r.name),
                "layer l (1 = input)",
                "‖∂L/∂W_l‖",
            )
            .log_y(),
            &curves,
        )?;
        let last = r.points.last().map_or(f64::NAN, |p| p.loss);
        table.row([
            r.name.clone(),
            r.layers.to_string(),
            format!("{:.3e}", r.first_over_last_init),
            format!("{:+.4}", r.init_scale.ln()),
            r.delta_growth_init.map_or("-".into(), |g| format!("{g:+.4}")),
            r.weight_growth_init.map_or("-".into(), |g| format!("{g:+.4}")),
            format!("{:.4}", init.loss),
            format!("{last:.4}"),
            validation_change(r),
            r.diverged_at.map_or("no".into(), |s| format!("step {s}")),
        ]);
    }
    line_plot(
        &dir.join("layer_norms_init.svg"),
        &PlotSpec::new("‖∂L/∂W_l‖ by layer at initialisation", "layer l (1 = input)", "‖∂L/∂W_l‖")
            .log_y(),
        &weight_init,
    )?;
    line_plot(
        &dir.join("delta_norms_init.svg"),
        &PlotSpec::new(
            "Back-propagated signal ‖∂L/∂z_l‖ by layer at initialisation",
            "layer l (1 = input)",
            "‖∂L/∂z_l‖",
        )
        .log_y(),
        &delta_init,
    )?;
    let summary = DepthSummary { command: "depth", device: &device, variants: runs };
    crate::report::jsonl::write_pretty(&dir.join("summary.json"), &summary)?;
    println!("{device} — growth per layer = −d ln‖·‖/dl over the hidden layers (identity MLP theory for δ: ln g)");
    print!("{}", table.render());
    Ok(())
}

/// summary.json of `depth`.
#[derive(Serialize)]
struct DepthSummary<'a> {
    command: &'static str,
    device: &'a str,
    variants: &'a [DepthRun],
}

/// The most steps a variant's `layer_norms.svg` draws a curve for.
const PLOTTED_STEPS: usize = 9;

/// Of a variant's kept points, the [`PLOTTED_STEPS`] its `layer_norms.svg` draws: evenly
/// spaced, the first and last included.
fn plotted(points: &[DepthPoint]) -> impl Iterator<Item = &DepthPoint> {
    let n = points.len();
    let picks = n.min(PLOTTED_STEPS);
    (0..picks).map(move |i| match picks {
        1 => &points[0],
        _ => &points[i * (n - 1) / (picks - 1)],
    })
}

/// The validation figure at initialisation and after the last step: the 0-1 error of a
/// classification, a regression's loss; `-` without validation rows or past a divergence.
fn validation_change(r: &DepthRun) -> String {
    let show = |loss: Option<f64>, error: Option<f64>| match (error, loss) {
        (Some(e), _) => format!("{:.1}%", 100.0 * e),
        (None, Some(l)) => format!("{l:.4}"),
        (None, None) => "-".into(),
    };
    format!(
        "{} → {}",
        show(r.val_loss_init, r.val_error_init),
        show(r.val_loss_final, r.val_error_final)
    )
}

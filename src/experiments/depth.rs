//! `batchscope depth --config FILE`: per-layer gradient norms of a deep MLP, at initialisation
//! and during a short SGD run, once per `[[variant]]` (activation, weight gain).
//!
//! For each layer l = 1..L (input layer first) it measures `‖∂L/∂W_l‖` (the weight gradient)
//! and `‖∂L/∂z_l‖` (the back-propagated signal). In an identity MLP whose square hidden layers
//! have weights of scale g/√n, each layer back multiplies the signal by ≈ g, so `‖∂L/∂z_l‖`
//! grows or shrinks as g^(L−l) — the depth analogue of λ^(T−t) in a recurrent net — while
//! `‖∂L/∂W_l‖ ≈ ‖∂L/∂z_l‖ ‖a_{l−1}‖` stays nearly flat (the forward activations scale as g^l).
//!
//! Run directory: `config.toml`, `summary.json`, `layer_norms.csv`, `layer_norms_init.svg`,
//! `delta_norms_init.svg`, and per variant `<name>/layer_norms.svg` over training steps.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;

use super::config::{parse_table, ConfigText, DepthConfig, DEPTH_DEFAULT_TOML};
use crate::backend::Backend;
use crate::commands::{open_backend, AnyBackend, BackendChoice, RunArgs};
use crate::config::{Config, OptimizerKind, Shuffle};
use crate::data::{BatchOrder, Labels};
use crate::model::{Mlp, Targets};
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::{create_run_dir, write_atomic};
use crate::report::table::Table;
use crate::train::diagnostics::{
    finish_layer_norms, fit_line, layer_norms, record_layer_norms, LayerNorms,
};
use crate::train::{Clip, Optimizer, TrainState};

/// Norms measured at one step.
#[derive(Clone, Debug, Serialize)]
pub struct DepthPoint {
    /// 0 = at initialisation (before any update).
    pub step: u64,
    pub loss: f64,
    pub norms: LayerNorms,
}

/// One variant's run.
#[derive(Clone, Debug, Serialize)]
pub struct DepthRun {
    pub name: String,
    pub activation: String,
    pub init_scale: f32,
    pub layers: usize,
    pub points: Vec<DepthPoint>,
    pub diverged_at: Option<u64>,
    /// Growth per layer towards the input at init, `−d ln‖∂L/∂z_l‖/dl` over the hidden layers.
    pub delta_growth_init: Option<f64>,
    /// The same for `‖∂L/∂W_l‖`.
    pub weight_growth_init: Option<f64>,
    /// `‖∂L/∂W_1‖ / ‖∂L/∂W_L‖` at init.
    pub first_over_last_init: f64,
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
    let dc: DepthConfig = match text.take("depth") {
        Some(toml::Value::Table(t)) => parse_table(t, &origin)?,
        Some(_) => return Err(text.invalid("depth", "must be a table ([depth])".into()).into()),
        None => DepthConfig::default(),
    };
    dc.validate(&origin)?;
    text.take("landscape");
    let resolved = text.table.clone();
    let mut cfgs = Vec::new();
    for (name, mut t) in text.variants("run")? {
        if let Some(hidden) = dc.hidden() {
            let model = t.entry("model").or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(m) = model {
                m.insert(
                    "hidden".into(),
                    toml::Value::Array(hidden.iter().map(|&w| toml::Value::Integer(w as i64)).collect()),
                );
            }
        }
        let s = toml::to_string(&t).context("re-serialising the config")?;
        cfgs.push((name.clone(), Config::from_toml(&s, &format!("{origin} [[variant]] {name}"))?));
    }
    let dir = create_run_dir(args.out.as_deref(), "depth")?;
    let mut all = resolved;
    all.insert("depth".into(), toml::Value::try_from(&dc).context("serialising [depth]")?);
    write_atomic(
        &dir.join("config.toml"),
        toml::to_string_pretty(&all).context("serialising the config")?.as_bytes(),
    )?;
    eprintln!("run directory: {}", dir.display());
    let b = open_backend(backend, args.adapter.as_deref())?;
    let mut runs = Vec::new();
    for (name, cfg) in &cfgs {
        eprintln!(
            "variant {name}: {} layers, {}, init_scale {}",
            cfg.model.hidden.len() + 1,
            cfg.model.activation.name(),
            cfg.model.init_scale
        );
        let r = match &b {
            AnyBackend::Cpu(c) => run_depth(c, cfg, name)?,
            AnyBackend::Gpu(g) => run_depth(g.as_ref(), cfg, name)?,
        };
        runs.push(r);
    }
    report(&dir, &runs, b_name(&b))?;
    println!("wrote: {}", dir.display());
    Ok(())
}

fn b_name(b: &AnyBackend) -> String {
    match b {
        AnyBackend::Cpu(c) => c.device_name(),
        AnyBackend::Gpu(g) => g.device_name(),
    }
}

/// Measure per-layer norms at init, then train `train.steps` steps logging every `log_every`.
pub fn run_depth<B: Backend>(b: &B, cfg: &Config, name: &str) -> anyhow::Result<DepthRun> {
    let mlp = Mlp::new(cfg.mlp_spec())?;
    let layers = mlp.layers();
    let batch = match cfg.train.batch_size {
        crate::config::BatchSize::Fixed(n) => n,
        crate::config::BatchSize::Auto => {
            bail!("train.batch_size = \"auto\" is not supported by `depth`; give a number")
        }
    };
    let train = crate::data::build_train(&cfg.data, cfg.data_outputs())?;
    if batch > train.n {
        bail!("train.batch_size = {batch} exceeds the {} training examples", train.n);
    }
    let x_all = b.upload(&train.x)?;
    let (labels_all, values_all, k, class) = match &train.targets {
        Labels::Classes { labels, .. } => (b.upload_idx(labels)?, b.zeros(1)?, 1, true),
        Labels::Values { targets, outputs } => {
            (b.upload_idx(&[0])?, b.upload(targets)?, *outputs, false)
        }
    };
    let opt = match cfg.train.optimizer {
        OptimizerKind::Sgd => Optimizer::Sgd { weight_decay: cfg.train.weight_decay },
        OptimizerKind::Momentum => {
            Optimizer::Momentum { mu: cfg.train.momentum, weight_decay: cfg.train.weight_decay }
        }
    };
    let clip = Clip { norm: cfg.train.clip_norm, value: cfg.train.clip_value };
    let params = mlp.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale)?;
    let mut st = TrainState::new(b, mlp.clone(), params, batch, &opt)?;
    let mut order = BatchOrder::new(Shuffle::Epoch, false, cfg.train.seed, train.n, None);
    let spe = (train.n / batch).max(1) as u64;
    let mut idx = b.upload_idx(&vec![0u32; batch])?;
    let mut x = b.zeros(batch * mlp.inputs())?;
    let mut labels = b.upload_idx(&vec![0u32; batch])?;
    let mut values = b.zeros(batch * k)?;
    let mut stats = b.zeros(2 * layers)?;
    let mut points = Vec::new();
    let mut diverged_at = None;
    let steps = cfg.train.steps;
    for step in 0..=steps {
        let batch_idx =
            order.batch(step / spe, (step % spe) as usize, batch).context("minibatch order")?.to_vec();
        b.write_idx(&mut idx, &batch_idx)?;
        b.gather_rows(batch, mlp.inputs(), &x_all, &idx, &mut x)?;
        if class {
            b.gather_idx(batch, &labels_all, &idx, &mut labels)?;
        } else {
            b.gather_rows(batch, k, &values_all, &idx, &mut values)?;
        }
        let t = if class { Targets::Classes(&labels) } else { Targets::Values(&values) };
        if step == 0 {
            // At initialisation: one forward/backward, no update.
            let mut grads = st.params.zeros_like(b)?;
            let norms = layer_norms(b, &mlp, &st.params, &x, &t, &mut st.ws, &mut grads)?;
            let m = b.read(&st.ws.loss)?;
            let loss = m.iter().take(batch).map(|&v| v as f64).sum::<f64>() / batch as f64;
            points.push(DepthPoint { step: 0, loss, norms });
            continue;
        }
        let log_now = step.is_multiple_of(cfg.train.log_every) || step == steps;
        // ‖g‖ is read only on logged steps.
        st.measure_grad_norm = log_now;
        st.record_step(b, &x, &t, &opt, cfg.train.lr, &clip)?;
        if log_now {
            // The workspace and gradients still hold this step's backward pass.
            record_layer_norms(b, &mlp, &st.ws, &st.grads, &mut stats, 0)?;
            let m = st.read_metrics(b)?;
            let s = b.read(&stats)?;
            let finite = m.loss.is_finite() && m.grad_norm.is_finite();
            points.push(DepthPoint { step, loss: m.loss, norms: finish_layer_norms(layers, &s, 0) });
            if !finite {
                diverged_at = Some(step);
                break;
            }
        } else {
            b.flush()?;
        }
    }
    let init = &points[0].norms;
    let growth = |v: &[f64]| -> Option<f64> {
        // Hidden layers only (the first and last layers have other shapes).
        let hidden: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .skip(1)
            .take(layers.saturating_sub(2))
            .map(|(l, &n)| ((l + 1) as f64, n.ln()))
            .collect();
        let (xs, ys): (Vec<f64>, Vec<f64>) = hidden.into_iter().unzip();
        fit_line(&xs, &ys).map(|(s, _)| -s)
    };
    Ok(DepthRun {
        name: name.to_string(),
        activation: cfg.model.activation.name().to_string(),
        init_scale: cfg.model.init_scale,
        layers,
        delta_growth_init: growth(&init.delta),
        weight_growth_init: growth(&init.weight),
        first_over_last_init: init.weight.first().copied().unwrap_or(f64::NAN)
            / init.weight.last().copied().unwrap_or(f64::NAN),
        points,
        diverged_at,
    })
}

fn report(dir: &Path, runs: &[DepthRun], device: String) -> anyhow::Result<()> {
    let per_layer = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().map(|(l, &n)| ((l + 1) as f64, n)).collect()
    };
    let mut rows = Vec::new();
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
        "diverged",
    ]);
    for r in runs {
        let init = &r.points[0];
        weight_init.push(Series::new(r.name.clone(), per_layer(&init.norms.weight)));
        delta_init.push(Series::new(r.name.clone(), per_layer(&init.norms.delta)));
        let curves: Vec<Series> = r
            .points
            .iter()
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
        for p in &r.points {
            for l in 0..r.layers {
                rows.push(vec![
                    Cell::Text(r.name.clone()),
                    Cell::Int(p.step as i64),
                    Cell::Int(l as i64 + 1),
                    Cell::Num(p.norms.weight[l]),
                    Cell::Num(p.norms.delta[l]),
                    Cell::Num(p.loss),
                ]);
            }
        }
        let last = r.points.last().map_or(f64::NAN, |p| p.loss);
        table.row([
            r.name.clone(),
            r.layers.to_string(),
            format!("{:.3e}", r.first_over_last_init),
            format!("{:+.4}", (r.init_scale as f64).ln()),
            r.delta_growth_init.map_or("-".into(), |g| format!("{g:+.4}")),
            r.weight_growth_init.map_or("-".into(), |g| format!("{g:+.4}")),
            format!("{:.4}", init.loss),
            format!("{last:.4}"),
            r.diverged_at.map_or("no".into(), |s| format!("step {s}")),
        ]);
    }
    write_csv(
        &dir.join("layer_norms.csv"),
        &["variant", "step", "layer", "weight_grad_norm", "delta_norm", "loss"],
        &rows,
    )?;
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
    let summary = json!({ "command": "depth", "device": device, "variants": runs });
    write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).context("serialising summary")?.as_bytes(),
    )?;
    println!("{device} — growth per layer = −d ln‖·‖/dl over the hidden layers (identity MLP theory for δ: ln g)");
    print!("{}", table.render());
    Ok(())
}

//! `batchscope landscape --config FILE [--checkpoint CKPT] [--out DIR]`.
//!
//! The config is a `train` config (MLP) or an `rnn` config, plus a `[landscape]` section. The
//! parameters θ come from `--checkpoint`, or, without one, from training the config's model first
//! (into `<run>/train/`), so one command shows the slice through a trained model and the path
//! from its initialisation. Writes CSV tables, SVG plots and summary.json.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde_json::json;

use super::config::{DirSpec, LandscapeConfig, Mode, LANDSCAPE_DEFAULT_TOML};
use super::directions::{
    coords, difference, global_norm, normalize, path_coords, random_direction, Normalize,
};
use super::objective::{MlpObjective, Objective, RnnObjective, Split};
use super::symmetry::{mlp_twin, rnn_twin, TwinError, TwinSpec};
use super::{centre_derivatives, evaluate_points, upload_like, PointLoss};
use crate::backend::Backend;
use crate::commands::{open_backend, AnyBackend, BackendChoice, RunArgs};
use crate::config::{Config, DataKind};
use crate::curvature::{power_iteration, HvpOperator, HvpOptions, PowerOptions};
use crate::experiments::config::{parse_table, ConfigText, RnnConfig};
use crate::model::{Mlp, ParamSet, Rnn};
use crate::report::csv::{write_csv, Cell};
use crate::report::heatmap::{heatmap, HeatmapSpec, Mark};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::{create_run_dir, write_atomic};
use crate::report::table::Table;
use crate::train::checkpoint;
use crate::train::rnn::run_rnn;
use crate::train::{run_train, TrainOptions};

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
    let lc: LandscapeConfig = match text.take("landscape") {
        Some(toml::Value::Table(t)) => parse_table(t, &origin)?,
        Some(_) => return Err(text.invalid("landscape", "must be a table ([landscape])".into()).into()),
        None => LandscapeConfig::default(),
    };
    lc.validate(&origin)?;
    let variants = text.variants("base")?;
    let table = if lc.variant.is_empty() {
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
        let s = toml::to_string(&table).context("re-serialising the config")?;
        ModelCfg::Mlp(Box::new(Config::from_toml(&s, &origin)?))
    };
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
    let b = open_backend(backend, args.adapter.as_deref())?;
    let summary = match &b {
        AnyBackend::Cpu(c) => run(c, &model, &lc, ckpt.as_deref(), &dir, args.progress)?,
        AnyBackend::Gpu(g) => run(g.as_ref(), &model, &lc, ckpt.as_deref(), &dir, args.progress)?,
    };
    let text = serde_json::to_string_pretty(&summary).context("serialising summary")?;
    write_atomic(&dir.join("summary.json"), text.as_bytes())?;
    println!("wrote: {}", dir.display());
    Ok(())
}

/// The tensors `names` with `shapes` of a checkpoint.
pub fn load_tensors(
    path: &Path,
    names: &[String],
    shapes: &[Vec<usize>],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let ck = checkpoint::load(path)?;
    names
        .iter()
        .zip(shapes)
        .map(|(n, s)| Ok(ck.expect_shape(n, s)?.data.clone()))
        .collect::<Result<Vec<_>, checkpoint::CheckpointError>>()
        .map_err(|e| anyhow!("{e} (is it a checkpoint of this config's model?)"))
}

type TwinFn = Box<dyn Fn(&[Vec<f32>], &TwinSpec) -> Result<Vec<Vec<f32>>, TwinError>>;

/// A model ready for slicing: its objective, the end (current) and start parameters, its twin map.
struct Prepared<'a, B: Backend> {
    obj: Box<dyn Objective<B> + 'a>,
    /// The MLP and its evaluated training examples, for Hessian-vector products.
    hessian: Option<(Mlp, crate::data::Dataset)>,
    end: Vec<Vec<f32>>,
    start: Vec<Vec<f32>>,
    twin: TwinFn,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    origin: String,
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
            let (end, origin) = match ckpt {
                Some(p) => (load_tensors(p, &names, &shapes)?, format!("checkpoint {}", p.display())),
                None => {
                    let tdir = dir.join("train");
                    std::fs::create_dir_all(&tdir)
                        .with_context(|| format!("creating {}", tdir.display()))?;
                    eprintln!("no --checkpoint: training the config's model first ({})", tdir.display());
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
            let (end, origin) = match ckpt {
                Some(p) => (load_tensors(p, &names, &shapes)?, format!("checkpoint {}", p.display())),
                None => {
                    let tdir = dir.join("train");
                    eprintln!("no --checkpoint: training the config's RNN first ({})", tdir.display());
                    let (s, _) = run_rnn(b, cfg, "train", &tdir, progress)?;
                    if let Some(step) = s.diverged_at {
                        bail!("training diverged at step {step}: there is no finite θ to slice through (lower train.lr or enable train.clip_norm)");
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

/// One line of a slice's CSV.
fn rows(points: &[PointLoss]) -> Vec<Vec<Cell>> {
    let opt = |v: Option<f64>| v.map_or(Cell::Empty, Cell::Num);
    points
        .iter()
        .map(|p| {
            let mut r: Vec<Cell> = p.coords.iter().map(|&c| Cell::Num(c)).collect();
            r.extend([Cell::Num(p.train_loss), opt(p.train_error), opt(p.val_loss), opt(p.val_error)]);
            r
        })
        .collect()
}

fn series(name: &str, xs: &[f64], points: &[PointLoss], val: bool) -> Series {
    let pts = xs
        .iter()
        .zip(points)
        .filter_map(|(&x, p)| if val { p.val_loss.map(|v| (x, v)) } else { Some((x, p.train_loss)) })
        .collect();
    Series::new(name, pts)
}

fn finite_min(points: &[PointLoss], xs: &[f64]) -> (f64, f64) {
    points
        .iter()
        .zip(xs)
        .filter(|(p, _)| p.train_loss.is_finite())
        .map(|(p, &x)| (p.train_loss, x))
        .fold((f64::INFINITY, f64::NAN), |a, b| if b.0 < a.0 { b } else { a })
}

/// What a direction came with: `‖g‖` of the gradient, `λ` of the Hessian eigenvector.
#[derive(Clone, Copy, Debug, Default)]
struct DirInfo {
    gradient_norm: Option<f64>,
    eigenvalue: Option<f64>,
}

/// A direction per `spec`, normalised against `base_host`.
#[allow(clippy::too_many_arguments)]
fn direction<B: Backend>(
    b: &B,
    p: &mut Prepared<'_, B>,
    base: &ParamSet<B>,
    base_host: &[Vec<f32>],
    spec: &DirSpec,
    seed: u64,
    how: Normalize,
) -> anyhow::Result<(Vec<Vec<f32>>, DirInfo)> {
    let mut info = DirInfo::default();
    let mut d = match spec {
        DirSpec::Gradient => {
            let mut g = base.zeros_like(b)?;
            p.obj.mean_grad(b, base, &mut g)?;
            let host: Vec<Vec<f32>> =
                g.to_host(b)?.into_iter().map(|t| t.into_iter().map(|v| -v).collect()).collect();
            info.gradient_norm = Some(global_norm(&host));
            host
        }
        DirSpec::Random => random_direction(&p.shapes, seed),
        DirSpec::File(path) => load_tensors(path, &p.names, &p.shapes)?,
        DirSpec::Hessian => {
            let (mlp, data) = p.hessian.as_ref().ok_or_else(|| {
                anyhow!("landscape: the \"hessian\" direction needs Hessian-vector products, which exist for the MLP only")
            })?;
            let params = ParamSet::from_host(b, &p.names, &p.shapes, base_host)?;
            let mut op =
                HvpOperator::new(b, mlp.clone(), params, data, HvpOptions::for_budget(mlp, 256 << 20))?;
            let r = power_iteration(&mut op, &PowerOptions { max_iters: 100, tol: 1e-4, seed })?;
            eprintln!(
                "top Hessian eigenvalue λ = {:.4e} ({} HVPs{})",
                r.eigenvalue,
                r.iterations,
                if r.converged { "" } else { ", not converged" }
            );
            info.eigenvalue = Some(r.eigenvalue);
            let mut off = 0;
            p.shapes
                .iter()
                .map(|s| {
                    let n: usize = s.iter().product();
                    off += n;
                    r.vector[off - n..off].to_vec()
                })
                .collect()
        }
    };
    normalize(&mut d, base_host, &p.shapes, how);
    Ok((d, info))
}

fn run<B: Backend>(
    b: &B,
    model: &ModelCfg,
    lc: &LandscapeConfig,
    ckpt: Option<&Path>,
    dir: &Path,
    progress: bool,
) -> anyhow::Result<serde_json::Value> {
    let mut p = prepare(b, model, lc, ckpt, dir, progress)?;
    let (names, shapes) = (p.names.clone(), p.shapes.clone());
    let theta = ParamSet::from_host(b, &names, &shapes, &p.end)?;
    let theta_host = p.end.clone();
    let (l0, e0) = p.obj.evaluate(b, &theta, Split::Train)?;
    let val0 =
        if p.obj.examples(Split::Val) > 0 { Some(p.obj.evaluate(b, &theta, Split::Val)?) } else { None };
    let class = p.obj.classification();
    let theta_norm = global_norm(&p.end);
    eprintln!(
        "θ: {} ({} parameters, ‖θ‖ = {theta_norm:.4}); train loss {l0:.5}",
        p.origin,
        p.end.iter().map(Vec::len).sum::<usize>()
    );
    let mut table = Table::new(["slice", "points", "loss at θ", "min loss", "at", "note"]);
    let mut out = serde_json::Map::new();
    out.insert("command".into(), json!("landscape"));
    out.insert("model".into(), json!(p.obj.kind()));
    out.insert("device".into(), json!(b.device_name()));
    out.insert("theta".into(), json!(p.origin));
    out.insert("theta_norm".into(), json!(theta_norm));
    out.insert("train_examples".into(), json!(p.obj.examples(Split::Train)));
    out.insert("val_examples".into(), json!(p.obj.examples(Split::Val)));
    out.insert("train_loss".into(), json!(l0));
    out.insert("train_error".into(), json!(class.then_some(e0)));
    out.insert("val_loss".into(), json!(val0.map(|v| v.0)));
    out.insert("val_error".into(), json!(val0.and_then(|v| class.then_some(v.1))));
    let loss_label = if class { "loss (NLL)" } else { "loss (½ squared error)" };
    let header = |coords: &[&'static str]| -> Vec<&'static str> {
        let mut h = coords.to_vec();
        h.extend(["train_loss", "train_error", "val_loss", "val_error"]);
        h
    };

    for mode in &lc.modes {
        match mode {
            Mode::Line => {
                let alphas = coords(-lc.range, lc.range, lc.points);
                let pts: Vec<Vec<f64>> = alphas.iter().map(|&a| vec![a]).collect();
                let mut plot = Vec::new();
                let mut lines = Vec::new();
                for (i, spec) in lc.line_dirs().iter().enumerate() {
                    let (d, info) = direction(
                        b,
                        &mut p,
                        &theta,
                        &theta_host,
                        spec,
                        lc.seed + i as u64,
                        lc.normalize,
                    )?;
                    let dp = upload_like(b, &theta, &d)?;
                    let res = evaluate_points(b, p.obj.as_mut(), &theta, &[&dp], &pts)?;
                    let tag = match spec {
                        DirSpec::File(_) => format!("file{i}"),
                        s => format!(
                            "{}{}",
                            s.label(),
                            if lc.line_dirs().iter().filter(|x| *x == s).count() > 1 {
                                i.to_string()
                            } else {
                                String::new()
                            }
                        ),
                    };
                    write_csv(&dir.join(format!("line_{tag}.csv")), &header(&["alpha"]), &rows(&res))?;
                    let losses: Vec<f64> = res.iter().map(|r| r.train_loss).collect();
                    let (slope, curv) = centre_derivatives(&alphas, &losses).unzip();
                    let (lmin, amin) = finite_min(&res, &alphas);
                    plot.push(series(&format!("{tag} (train)"), &alphas, &res, false));
                    if res.iter().any(|r| r.val_loss.is_some()) {
                        plot.push(series(&format!("{tag} (validation)"), &alphas, &res, true));
                    }
                    let note = match (slope, curv) {
                        (Some(s), Some(c)) => format!("dL/dα {s:.3e}, d²L/dα² {c:.3e}"),
                        _ => String::new(),
                    };
                    table.row([
                        format!("line {tag}"),
                        lc.points.to_string(),
                        format!("{:.5}", losses[lc.points / 2]),
                        format!("{lmin:.5}"),
                        format!("α = {amin:.3}"),
                        note,
                    ]);
                    lines.push(json!({
                        "direction": tag,
                        "direction_norm": global_norm(&d),
                        "gradient_norm": info.gradient_norm,
                        "hessian_eigenvalue": info.eigenvalue,
                        "loss_at_theta": losses[lc.points / 2],
                        "min_loss": lmin, "argmin_alpha": amin,
                        "loss_at_ends": [losses[0], losses[lc.points - 1]],
                        "slope_at_theta": slope, "curvature_at_theta": curv,
                        "points": res,
                    }));
                }
                let title =
                    format!("Loss along lines through θ ({} normalised)", norm_name(lc.normalize));
                line_plot(
                    &dir.join("line.svg"),
                    &PlotSpec::new(title, "α (θ + α d)", loss_label).log_y(),
                    &plot,
                )?;
                out.insert("lines".into(), json!(lines));
            }
            Mode::Plane => {
                let ds = lc.plane_dirs();
                let (d1, _) =
                    direction(b, &mut p, &theta, &theta_host, &ds[0], lc.seed + 100, lc.normalize)?;
                let (d2, _) =
                    direction(b, &mut p, &theta, &theta_host, &ds[1], lc.seed + 101, lc.normalize)?;
                let cos = cosine(&d1, &d2);
                let (p1, p2) = (upload_like(b, &theta, &d1)?, upload_like(b, &theta, &d2)?);
                let axis = coords(-lc.range, lc.range, lc.grid);
                let pts: Vec<Vec<f64>> =
                    axis.iter().flat_map(|&y| axis.iter().map(move |&x| vec![x, y])).collect();
                let res = evaluate_points(b, p.obj.as_mut(), &theta, &[&p1, &p2], &pts)?;
                write_csv(&dir.join("plane.csv"), &header(&["alpha", "beta"]), &rows(&res))?;
                let mark = [Mark { x: 0.0, y: 0.0, label: " θ".into() }];
                let (l1, l2) = (ds[0].label(), ds[1].label());
                let train: Vec<f64> = res.iter().map(|r| r.train_loss).collect();
                let log_z = train.iter().all(|&v| v > 0.0 || !v.is_finite());
                let spec = |what: &str| HeatmapSpec {
                    title: format!(
                        "{what} loss over a plane through θ ({} normalised)",
                        norm_name(lc.normalize)
                    ),
                    x_label: format!("α ({l1})"),
                    y_label: format!("β ({l2})"),
                    z_label: loss_label.into(),
                    log_z,
                    contours: lc.contours,
                };
                heatmap(&dir.join("plane_train.svg"), &spec("Training"), &axis, &axis, &train, &mark)?;
                if res.iter().all(|r| r.val_loss.is_some()) {
                    let val: Vec<f64> = res.iter().map(|r| r.val_loss.unwrap_or(f64::NAN)).collect();
                    heatmap(&dir.join("plane_val.svg"), &spec("Validation"), &axis, &axis, &val, &mark)?;
                }
                let c = (lc.grid / 2) * lc.grid + lc.grid / 2;
                let (lmin, _) = finite_min(&res, &vec![0.0; res.len()]);
                let max =
                    train.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
                table.row([
                    "plane".to_string(),
                    (lc.grid * lc.grid).to_string(),
                    format!("{:.5}", train[c]),
                    format!("{lmin:.5}"),
                    "-".into(),
                    format!("max {max:.4}, cos(d1, d2) = {cos:.3}"),
                ]);
                out.insert(
                    "plane".into(),
                    json!({
                        "directions": [l1, l2], "cosine_d1_d2": cos, "grid": lc.grid, "range": lc.range,
                        "loss_at_theta": train[c], "min_loss": lmin, "max_loss": max,
                    }),
                );
            }
            Mode::Path => {
                let d = difference(&p.start, &p.end);
                let dist = global_norm(&d);
                let start = ParamSet::from_host(b, &names, &shapes, &p.start)?;
                let dp = upload_like(b, &theta, &d)?;
                let alphas = path_coords(lc.margin, lc.points);
                let pts: Vec<Vec<f64>> = alphas.iter().map(|&a| vec![a]).collect();
                let res = evaluate_points(b, p.obj.as_mut(), &start, &[&dp], &pts)?;
                write_csv(&dir.join("path.csv"), &header(&["alpha"]), &rows(&res))?;
                let mut plot = vec![series("train", &alphas, &res, false)];
                if res.iter().any(|r| r.val_loss.is_some()) {
                    plot.push(series("validation", &alphas, &res, true));
                }
                let title = "Loss on the straight path θ_init + α (θ_final − θ_init)";
                line_plot(
                    &dir.join("path.svg"),
                    &PlotSpec::new(title, "α (0 = start, 1 = θ)", loss_label).log_y(),
                    &plot,
                )?;
                let inside: Vec<f64> = alphas
                    .iter()
                    .zip(&res)
                    .filter(|(a, _)| (0.0..=1.0).contains(*a))
                    .map(|(_, r)| r.train_loss)
                    .collect();
                let rises = inside.windows(2).filter(|w| w[1] > w[0] * (1.0 + 1e-6)).count();
                let max_inside = inside.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let (ls, le) = (
                    inside.first().copied().unwrap_or(f64::NAN),
                    inside.last().copied().unwrap_or(f64::NAN),
                );
                table.row([
                    "path init→θ".to_string(),
                    alphas.len().to_string(),
                    format!("{le:.5}"),
                    format!("{:.5}", inside.iter().copied().fold(f64::INFINITY, f64::min)),
                    "-".into(),
                    format!("start {ls:.4}, max {max_inside:.4}, {rises} rises, ‖Δθ‖ {dist:.3}"),
                ]);
                out.insert(
                    "path".into(),
                    json!({
                        "distance": dist, "relative_distance": dist / theta_norm.max(1e-30),
                        "loss_start": ls, "loss_end": le, "max_loss_on_path": max_inside,
                        "monotone": rises == 0, "rises": rises, "points": res,
                    }),
                );
            }
            Mode::Symmetry => {
                let ts = TwinSpec {
                    seed: lc.seed,
                    permute: lc.permute,
                    rescale: lc.rescale,
                    sign_flips: lc.sign_flips,
                };
                let twin_host = (p.twin)(&p.end, &ts).map_err(|e| anyhow!("landscape symmetry: {e}"))?;
                let twin = ParamSet::from_host(b, &names, &shapes, &twin_host)?;
                let (lt, _) = p.obj.evaluate(b, &twin, Split::Train)?;
                let d = difference(&p.end, &twin_host);
                let dist = global_norm(&d);
                let dp = upload_like(b, &theta, &d)?;
                let alphas = path_coords(lc.margin, lc.points);
                let pts: Vec<Vec<f64>> = alphas.iter().map(|&a| vec![a]).collect();
                let res = evaluate_points(b, p.obj.as_mut(), &theta, &[&dp], &pts)?;
                write_csv(&dir.join("symmetry.csv"), &header(&["alpha"]), &rows(&res))?;
                let mut plot = vec![series("train", &alphas, &res, false)];
                if res.iter().any(|r| r.val_loss.is_some()) {
                    plot.push(series("validation", &alphas, &res, true));
                }
                let what = twin_name(&ts);
                line_plot(
                    &dir.join("symmetry.svg"),
                    &PlotSpec::new(
                        format!("θ → its {what} twin (equal loss at both ends)"),
                        "α (0 = θ, 1 = twin)",
                        loss_label,
                    )
                    .log_y(),
                    &plot,
                )?;
                let inside = alphas
                    .iter()
                    .zip(&res)
                    .filter(|(a, _)| (0.0..=1.0).contains(*a))
                    .map(|(_, r)| r.train_loss);
                let barrier = inside.fold(f64::NEG_INFINITY, f64::max) - l0.max(lt);
                let rel = (lt - l0).abs() / l0.abs().max(1e-30);
                table.row([
                    format!("twin ({what})"),
                    alphas.len().to_string(),
                    format!("{l0:.5}"),
                    format!("{lt:.5}"),
                    "twin".into(),
                    format!(
                        "|Δ| {:.1e} (rel {rel:.1e}), barrier {barrier:.4}, ‖Δθ‖ {dist:.3}",
                        (lt - l0).abs()
                    ),
                ]);
                out.insert("symmetry".into(), json!({
                    "twin": what, "loss_model": l0, "loss_twin": lt, "abs_difference": (lt - l0).abs(),
                    "relative_difference": rel, "barrier": barrier, "distance": dist,
                    "relative_distance": dist / theta_norm.max(1e-30), "points": res,
                }));
            }
        }
        eprintln!("landscape: {mode:?} done");
    }
    print!("{}", table.render());
    Ok(serde_json::Value::Object(out))
}

fn cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let dot: f64 = a.iter().flatten().zip(b.iter().flatten()).map(|(&x, &y)| x as f64 * y as f64).sum();
    dot / (global_norm(a) * global_norm(b)).max(1e-300)
}

fn norm_name(n: Normalize) -> &'static str {
    match n {
        Normalize::Filter => "filter",
        Normalize::Unit => "unit",
        Normalize::None => "not",
    }
}

fn twin_name(t: &TwinSpec) -> String {
    let mut parts = Vec::new();
    if t.permute {
        parts.push("permuted".to_string());
    }
    if t.rescale > 1.0 {
        parts.push(format!("rescaled ×[1/{0}, {0}]", t.rescale));
    }
    if t.sign_flips {
        parts.push("sign-flipped".to_string());
    }
    if parts.is_empty() {
        "identical".into()
    } else {
        parts.join(", ")
    }
}

//! The slices of `batchscope landscape`: lines, a plane, the path from the start and the path
//! to a twin, each evaluated, written (CSV, SVG) and summarised (table row, summary.json entry).

use std::path::Path;

use anyhow::anyhow;
use serde_json::json;

use super::Prepared;
use crate::backend::Backend;
use crate::config::{DirSpec, LandscapeConfig, Mode};
use crate::landscape::direction::{direction, DirInfo, DirectionModel};
use crate::landscape::directions::{coords, difference, global_norm, path_coords, Normalize};
use crate::landscape::objective::Split;
use crate::landscape::symmetry::TwinSpec;
use crate::landscape::{centre_derivatives, evaluate_points, upload_like, PointLoss};
use crate::model::ParamSet;
use crate::report::csv::{write_csv, Cell};
use crate::report::heatmap::{heatmap, HeatmapSpec, Mark};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::table::Table;

/// Evaluate every slice of `lc` through the prepared model into `dir`; print the table.
pub(super) fn run<B: Backend>(
    b: &B,
    mut p: Prepared<'_, B>,
    lc: &LandscapeConfig,
    dir: &Path,
) -> anyhow::Result<serde_json::Value> {
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
    let table = Table::new(["slice", "points", "loss at θ", "min loss", "at", "note"]);
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
    if !l0.is_finite() {
        return Err(anyhow!(
            "the training loss at θ ({}) is not finite ({l0}): no slice through it means anything",
            p.origin
        ));
    }
    if lc.modes.contains(&Mode::Path) {
        // The path's start: its loss NaN or inf made the path's figures null and its plot empty.
        let start = ParamSet::from_host(b, &names, &shapes, &p.start)?;
        let (ls, _) = p.obj.evaluate(b, &start, Split::Train)?;
        if !ls.is_finite() {
            let from = match &lc.start {
                Some(f) => format!("landscape.start = {}", f.display()),
                None => "the initialization (model.init_scale, model.init_seed)".into(),
            };
            return Err(anyhow!("the training loss at the path's start, {from}, is not finite ({ls}): the path from it cannot be drawn"));
        }
    }
    let loss_label = if class { "loss (NLL)" } else { "loss (½ squared error)" };
    let at = At { b, lc, dir, names, shapes, theta, theta_host, l0, theta_norm, loss_label };
    let mut rec = Record { table, out };
    for mode in &lc.modes {
        match mode {
            Mode::Line => lines(&at, &mut p, &mut rec)?,
            Mode::Plane => plane(&at, &mut p, &mut rec)?,
            Mode::Path => path(&at, &mut p, &mut rec)?,
            Mode::Symmetry => symmetry(&at, &mut p, &mut rec)?,
        }
        eprintln!("landscape: {mode:?} done");
    }
    print!("{}", rec.table.render());
    Ok(serde_json::Value::Object(rec.out))
}

/// What every slice reads: the model at θ and the config.
struct At<'a, B: Backend> {
    b: &'a B,
    lc: &'a LandscapeConfig,
    dir: &'a Path,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    theta: ParamSet<B>,
    theta_host: Vec<Vec<f32>>,
    /// Training loss at θ.
    l0: f64,
    theta_norm: f64,
    loss_label: &'static str,
}

/// What every slice adds to: the printed table and the summary.json entries.
struct Record {
    table: Table,
    out: serde_json::Map<String, serde_json::Value>,
}

/// `θ + α d` for each line direction: line_<tag>.csv, line.svg.
fn lines<B: Backend>(at: &At<'_, B>, p: &mut Prepared<'_, B>, rec: &mut Record) -> anyhow::Result<()> {
    let At { b, lc, dir, loss_label, ref theta, ref theta_host, .. } = *at;
    let Record { table, out } = rec;
    let alphas = coords(-lc.range, lc.range, lc.points);
    let pts: Vec<Vec<f64>> = alphas.iter().map(|&a| vec![a]).collect();
    let mut plot = Vec::new();
    let mut lines = Vec::new();
    for (i, spec) in lc.line_dirs().iter().enumerate() {
        let (d, info) = dir_of(b, p, theta, theta_host, spec, lc.seed + i as u64, lc.normalize)?;
        let dp = upload_like(b, theta, &d)?;
        let res = evaluate_points(b, p.obj.as_mut(), theta, &[&dp], &pts)?;
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
    let title = format!("Loss along lines through θ ({} normalised)", norm_name(lc.normalize));
    line_plot(&dir.join("line.svg"), &PlotSpec::new(title, "α (θ + α d)", loss_label).log_y(), &plot)?;
    out.insert("lines".into(), json!(lines));
    Ok(())
}

/// `θ + α d₁ + β d₂` over the grid: plane.csv, plane_train.svg, plane_val.svg.
fn plane<B: Backend>(at: &At<'_, B>, p: &mut Prepared<'_, B>, rec: &mut Record) -> anyhow::Result<()> {
    let At { b, lc, dir, loss_label, ref theta, ref theta_host, .. } = *at;
    let Record { table, out } = rec;
    let ds = lc.plane_dirs();
    let (d1, _) = dir_of(b, p, theta, theta_host, &ds[0], lc.seed + 100, lc.normalize)?;
    let (d2, _) = dir_of(b, p, theta, theta_host, &ds[1], lc.seed + 101, lc.normalize)?;
    let cos = cosine(&d1, &d2);
    if cos.abs() > 1.0 - 1e-6 {
        // A file direction equal to the gradient, say: the "plane" was a line.
        return Err(anyhow!(
            "the plane's directions {} and {} are parallel (cos = {cos:.6}): they span a line, not a plane",
            ds[0].label(),
            ds[1].label()
        ));
    }
    let (p1, p2) = (upload_like(b, theta, &d1)?, upload_like(b, theta, &d2)?);
    let axis = coords(-lc.range, lc.range, lc.grid);
    let pts: Vec<Vec<f64>> = axis.iter().flat_map(|&y| axis.iter().map(move |&x| vec![x, y])).collect();
    let res = evaluate_points(b, p.obj.as_mut(), theta, &[&p1, &p2], &pts)?;
    write_csv(&dir.join("plane.csv"), &header(&["alpha", "beta"]), &rows(&res))?;
    let mark = [Mark { x: 0.0, y: 0.0, label: " θ".into() }];
    let (l1, l2) = (ds[0].label(), ds[1].label());
    let train: Vec<f64> = res.iter().map(|r| r.train_loss).collect();
    let log_z = train.iter().all(|&v| v > 0.0 || !v.is_finite());
    let spec = |what: &str| HeatmapSpec {
        title: format!("{what} loss over a plane through θ ({} normalised)", norm_name(lc.normalize)),
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
    let max = train.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
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
    Ok(())
}

/// The straight path from the start to θ: path.csv, path.svg.
fn path<B: Backend>(at: &At<'_, B>, p: &mut Prepared<'_, B>, rec: &mut Record) -> anyhow::Result<()> {
    let At { b, lc, dir, loss_label, theta_norm, ref theta, .. } = *at;
    let Record { table, out } = rec;
    let d = difference(&p.start, &p.end);
    let dist = global_norm(&d);
    if dist == 0.0 {
        return Err(anyhow!(
            "the path's start is θ itself (distance 0): there is no path to draw (landscape.start names θ's own weights?)"
        ));
    }
    let dp = upload_like(b, theta, &d)?;
    let alphas = path_coords(lc.margin, lc.points);
    // Evaluated as θ + (α − 1)(θ − start): α = 1 is θ itself. From the start, start + 1·Δ
    // rounds away from θ in f32 when the start is far (the path's end lost 0.88 → 1.10).
    let pts: Vec<Vec<f64>> = alphas.iter().map(|&a| vec![a - 1.0]).collect();
    let mut res = evaluate_points(b, p.obj.as_mut(), theta, &[&dp], &pts)?;
    for (r, &a) in res.iter_mut().zip(&alphas) {
        r.coords = vec![a];
    }
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
    let (ls, le) =
        (inside.first().copied().unwrap_or(f64::NAN), inside.last().copied().unwrap_or(f64::NAN));
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
            // Relative to ‖θ‖, none when θ = 0 (it read 4.4e30).
            "distance": dist, "relative_distance": (theta_norm > 0.0).then(|| dist / theta_norm),
            "loss_start": ls, "loss_end": le, "max_loss_on_path": max_inside,
            "monotone": rises == 0, "rises": rises, "points": res,
        }),
    );
    Ok(())
}

/// θ to its permuted / rescaled twin: symmetry.csv, symmetry.svg.
fn symmetry<B: Backend>(
    at: &At<'_, B>,
    p: &mut Prepared<'_, B>,
    rec: &mut Record,
) -> anyhow::Result<()> {
    let At { b, lc, dir, loss_label, l0, theta_norm, ref names, ref shapes, ref theta, .. } = *at;
    let Record { table, out } = rec;
    let ts =
        TwinSpec { seed: lc.seed, permute: lc.permute, rescale: lc.rescale, sign_flips: lc.sign_flips };
    let twin_host = (p.twin)(&p.end, &ts).map_err(|e| anyhow!("landscape symmetry: {e}"))?;
    let twin = ParamSet::from_host(b, names, shapes, &twin_host)?;
    let (lt, _) = p.obj.evaluate(b, &twin, Split::Train)?;
    let d = difference(&p.end, &twin_host);
    let dist = global_norm(&d);
    let dp = upload_like(b, theta, &d)?;
    let alphas = path_coords(lc.margin, lc.points);
    let pts: Vec<Vec<f64>> = alphas.iter().map(|&a| vec![a]).collect();
    let res = evaluate_points(b, p.obj.as_mut(), theta, &[&dp], &pts)?;
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
    let inside =
        alphas.iter().zip(&res).filter(|(a, _)| (0.0..=1.0).contains(*a)).map(|(_, r)| r.train_loss);
    let barrier = inside.fold(f64::NEG_INFINITY, f64::max) - l0.max(lt);
    let rel = (lt - l0).abs() / l0.abs().max(1e-30);
    table.row([
        format!("twin ({what})"),
        alphas.len().to_string(),
        format!("{l0:.5}"),
        format!("{lt:.5}"),
        "twin".into(),
        format!("|Δ| {:.1e} (rel {rel:.1e}), barrier {barrier:.4}, ‖Δθ‖ {dist:.3}", (lt - l0).abs()),
    ]);
    out.insert(
        "symmetry".into(),
        json!({
            "twin": what, "loss_model": l0, "loss_twin": lt, "abs_difference": (lt - l0).abs(),
            "relative_difference": rel, "barrier": barrier, "distance": dist,
            "relative_distance": (theta_norm > 0.0).then(|| dist / theta_norm), "points": res,
        }),
    );
    Ok(())
}

/// The CSV header of a slice with these coordinates.
fn header(coords: &[&'static str]) -> Vec<&'static str> {
    let mut h = coords.to_vec();
    h.extend(["train_loss", "train_error", "val_loss", "val_error"]);
    h
}

/// A direction per `spec`, normalised against `base_host`.
fn dir_of<B: Backend>(
    b: &B,
    p: &mut Prepared<'_, B>,
    base: &ParamSet<B>,
    base_host: &[Vec<f32>],
    spec: &DirSpec,
    seed: u64,
    how: Normalize,
) -> anyhow::Result<(Vec<Vec<f32>>, DirInfo)> {
    let hessian = p.hessian.as_ref().map(|(m, d)| (m, d));
    let m = DirectionModel { obj: p.obj.as_mut(), hessian, names: &p.names, shapes: &p.shapes };
    let (d, info) = direction(b, m, (base, base_host), spec, seed, how)?;
    if let Some(lambda) = info.eigenvalue {
        eprintln!(
            "top Hessian eigenvalue λ = {:.4e} ({} HVPs{})",
            lambda,
            info.hvp_iterations,
            if info.converged { "" } else { ", not converged" }
        );
    }
    Ok((d, info))
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

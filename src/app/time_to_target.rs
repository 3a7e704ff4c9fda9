//! `batchscope time-to-target`: validates the `time_to_target` policy. Measures B_noise and
//! ε_max at initialisation, the time per step t(B) by a sweep, predicts the wall time
//! T(B) ∝ (1 + B_noise/B)·t(B), then trains at every power-of-two B with ε_opt(B) until the
//! validation 0-1 error reaches `train.target_val_error`, and plots measured against predicted.

use anyhow::{bail, Context};

use super::output::{write_config, write_summary};
use super::ttt_rows::{relate_to_best, steps_model, TttRow};
use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::config::TIME_TO_TARGET_DEFAULT_TOML;
use crate::config::{BatchSize, Config, OptimizerKind};
use crate::noise::{eps_opt, measure_with, NoiseArgs};
use crate::profile::Profilable;
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::create_run_dir;
use crate::report::table::Table;
use crate::schedule::admit;
use crate::schedule::sweep::run_sweep;
use crate::schedule::timing_stats::{choice_stability, stability_line, Resampling, Stability};
use crate::schedule::{choose, predicted_time_curve, Policy};
use crate::train::{run_train, TrainError, TrainOptions};

/// The experiment's results: B_noise, ε_max, the rows, the predicted best B and the device.
struct Outcome {
    b_noise: f64,
    b_noise_se: Option<f64>,
    eps_max: f64,
    rows: Vec<TttRow>,
    /// The predicted best B, and how often resampling the sweep and B_noise predicts it again.
    chosen: PredictedBest,
    device: String,
    dir: std::path::PathBuf,
}

/// Measure B_noise and ε_max, sweep t(B), then train at every B of the sweep.
struct Experiment<'a> {
    cfg: &'a Config,
    args: &'a RunArgs,
}

impl BackendTask for Experiment<'_> {
    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        self.cfg.gpu.autotune
    }

    type Output = Outcome;

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<Outcome> {
        let dir = create_run_dir(self.args.out.as_deref(), "time-to-target")?;
        write_config(&dir, &self.cfg.to_toml())?;
        let (noise, rows, chosen) = experiment(b, self.cfg, &dir, self.args.progress)?;
        let (b_noise, b_noise_se, eps_max) = noise;
        Ok(Outcome { b_noise, b_noise_se, eps_max, rows, chosen, device: b.device_name(), dir })
    }
}

/// B_noise (and its standard error) and ε_max at initialisation.
type NoiseAtInit = (f64, Option<f64>, f64);

/// The predicted best B and how firmly resampling supports it.
type PredictedBest = (usize, Option<Stability>);

fn experiment<B: Profilable>(
    b: &B,
    cfg: &Config,
    dir: &std::path::Path,
    progress: bool,
) -> anyhow::Result<(NoiseAtInit, Vec<TttRow>, PredictedBest)> {
    let args = NoiseArgs {
        checkpoint: None,
        max_n: 1,
        draws: crate::noise::INIT_DRAWS,
        seed: cfg.train.seed,
        curvature: true,
    };
    let noise = measure_with(b, cfg, &args, progress)?;
    let (bn, em) = match (noise.b_noise, noise.eps_max) {
        (Some(bn), Some(em)) => (bn, em),
        _ => bail!("B_noise and ε_max could not be measured at initialisation (GᵀHG ≤ 0)"),
    };
    let se = noise.b_noise_se.map_or(String::new(), |se| format!(" ± {se:.1}"));
    eprintln!("B_noise = {bn:.1}{se} ({} draws), ε_max = {em:.4}", crate::noise::INIT_DRAWS);
    let report = run_sweep(b, cfg, &mut |_| {})?;
    let points = report.points();
    let policy = Policy::TimeToTarget { b_noise: bn };
    let chosen = choose(&policy, &points)?.batch;
    let resampling = Resampling::seeded(cfg.train.seed).with_b_noise_se(noise.b_noise_se);
    let stability = choice_stability(&policy, &report.timed_points(), &resampling);
    let curve = predicted_time_curve(&points, bn);
    if curve.len() < 2 && points.len() >= 2 {
        // The sweep skipped all but one: it compares with nothing (refused before any training;
        // a range of one size is the config's own choice).
        let why = match points.iter().find(|p| !p.is_usable()) {
            Some(p) => {
                format!(" (B = {}: {})", p.batch, p.skipped.as_deref().unwrap_or("no usable time"))
            }
            None => String::new(),
        };
        bail!(
            "the sweep timed {} of {} batch sizes{why}: time-to-target compares at least 2",
            curve.len(),
            points.len()
        );
    }
    let mut rows = Vec::new();
    // The rows a run trains on (an npy file's split, not data.n_train, which npy data ignores).
    let training_rows = crate::data::resolve::training_rows(cfg)?;
    for (batch, pred) in curve {
        let ms =
            points.iter().find(|p| p.batch == batch).map(|p| p.ms_per_step_median).unwrap_or(f64::NAN);
        // The run trains at ε_opt(B) (momentum's share of it) rounded to f32; its row says that
        // rate, as config.toml writes it, so that the row joins its run's files.
        let lr = crate::stats::f32_as_written(run_rate(cfg, eps_opt(em, bn, batch as f64)) as f32);
        let mut c = cfg.clone();
        c.train.batch_size = BatchSize::Fixed(batch);
        c.train.lr = lr as f32;
        let run_dir = dir.join(format!("B{batch:05}"));
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("cannot create {}", run_dir.display()))?;
        let mut row = TttRow {
            batch,
            ms_per_step: Some(ms),
            lr,
            predicted_rel: Some(pred),
            predicted_steps_rel: Some(steps_model(bn, batch)),
            steps: None,
            measured_steps_rel: None,
            seconds: None,
            reached: false,
            measured_rel: None,
            wall_rel: None,
            note: String::new(),
        };
        if (batch as u64) > training_rows {
            row.note = "batch larger than the training set".into();
            rows.push(row);
            continue;
        }
        // Its config.toml, as `train` writes one: the run resumes with `train --resume`.
        super::output::write_config(&run_dir, &c.to_toml())?;
        match run_train(b, &c, &TrainOptions { progress, ..Default::default() }, &run_dir) {
            Ok(s) => {
                row.steps = Some(s.steps);
                row.seconds = Some(s.train_s);
                row.reached = s.stopped_reason.starts_with("reached train.target_val_error");
                row.note = s.stopped_reason;
            }
            Err(TrainError::Diverged { step, .. }) => row.note = format!("diverged at step {step}"),
            Err(e) => return Err(e.into()),
        }
        eprintln!("B = {batch}: {}", row.note);
        rows.push(row);
    }
    // The batch sizes the sweep did not time, with its reason (they were left out unsaid).
    let run: Vec<usize> = rows.iter().map(|r| r.batch).collect();
    for p in points.iter().filter(|p| !p.is_usable() && !run.contains(&p.batch)) {
        rows.push(TttRow {
            batch: p.batch,
            ms_per_step: None,
            lr: crate::stats::f32_as_written(run_rate(cfg, eps_opt(em, bn, p.batch as f64)) as f32),
            predicted_rel: None,
            predicted_steps_rel: None,
            steps: None,
            measured_steps_rel: None,
            seconds: None,
            reached: false,
            measured_rel: None,
            wall_rel: None,
            note: format!(
                "not timed by the sweep: {}",
                p.skipped.as_deref().unwrap_or("no usable time")
            ),
        });
    }
    rows.sort_by_key(|r| r.batch);
    relate_to_best(&mut rows);
    Ok(((bn, noise.b_noise_se, em), rows, (chosen, stability)))
}

/// The learning rate of a run whose SGD step is to be `step` (ε_opt(B), a plain-SGD step):
/// `step` itself for SGD; `step · (1 − μ)` for momentum, whose steady step is lr / (1 − μ)
/// (taken as the rate, ε_opt made every step 1 / (1 − μ) = 10× the optimum at μ = 0.9, and 7
/// of 9 batch sizes never reached the target).
fn run_rate(cfg: &Config, step: f64) -> f64 {
    match cfg.train.optimizer {
        OptimizerKind::Momentum => step * (1.0 - cfg.train.momentum as f64),
        OptimizerKind::Sgd => step,
    }
}

/// The settings of `cfg` (those off their defaults) that time-to-target sets itself (a run per
/// power of two of the sweep range, each at ε_opt(B), chosen by the measured policy), with
/// what it uses instead.
fn set_by_time_to_target(cfg: &Config) -> Vec<(&'static str, &'static str)> {
    let (t, s) = (&cfg.train, &cfg.sweep);
    let (dt, ds) = (crate::config::TrainConfig::default(), crate::config::SweepConfig::default());
    [
        (
            t.batch_size != dt.batch_size,
            "train.batch_size",
            "it trains every power of two of sweep.min_batch..sweep.max_batch",
        ),
        (
            t.lr != dt.lr,
            "train.lr",
            "each run's learning rate is ε_opt(B) = ε_max / (1 + B_noise / B), measured",
        ),
        (s.policy != ds.policy, "sweep.policy", "it picks by time_to_target with the measured B_noise"),
    ]
    .into_iter()
    .filter_map(|(set, key, why)| set.then_some((key, why)))
    .collect()
}

/// `batchscope time-to-target`.
pub fn time_to_target(args: &RunArgs, backend: BackendChoice) -> anyhow::Result<()> {
    let (path, set) = (args.config.as_deref(), &args.set);
    let mut cfg =
        admit::load_config_or(path, set, TIME_TO_TARGET_DEFAULT_TOML, "configs/time_to_target.toml")?;
    if cfg.train.target_val_error <= 0.0 {
        bail!("time-to-target needs train.target_val_error > 0 (see configs/time_to_target.toml)");
    }
    // A config written for `train` or `sweep` runs here too; what this command sets itself is
    // said, not silently dropped.
    for (key, why) in set_by_time_to_target(&cfg) {
        eprintln!("notice: {key} is not used: {why}");
    }
    super::output::notice_weight_decay(&cfg, "B_noise and ε_max (the runs train with it)");
    if cfg.train.optimizer == OptimizerKind::Momentum {
        eprintln!(
            "notice: train.optimizer = \"momentum\" (μ = {}): each run's rate is ε_opt(B) · (1 − μ), so that its steady step lr / (1 − μ) is the SGD step ε_opt(B)",
            cfg.train.momentum
        );
    }
    // A batch larger than the training set is never trained on: it is not timed either.
    let n_train = usize::try_from(crate::data::resolve::training_rows(&cfg)?).unwrap_or(usize::MAX);
    if cfg.sweep.min_batch > n_train {
        bail!(
            "sweep.min_batch = {} is larger than the training set (data.n_train = {n_train}): no batch size to time",
            cfg.sweep.min_batch
        );
    }
    cfg.sweep.max_batch = cfg.sweep.max_batch.min(n_train);
    // Time and train only batch sizes a run can use, each checked as `train` would check it.
    let (usable, bound) = super::train::usable_sweep(&cfg)
        .map_err(|e| anyhow::anyhow!("{e}; time-to-target sweeps at most data.n_train = {n_train}"))?;
    if !bound.is_empty() {
        eprintln!("batch sizes {}..{}{bound}", usable.sweep.min_batch, usable.sweep.max_batch);
    }
    let cfg = usable;
    for batch in crate::schedule::powers_of_two(cfg.sweep.min_batch, cfg.sweep.max_batch) {
        let mut c = cfg.clone();
        c.train.batch_size = BatchSize::Fixed(batch);
        c.validate_resolved(&format!("(time-to-target at B = {batch})"))?;
    }
    let Outcome {
        b_noise: bn,
        b_noise_se: bn_se,
        eps_max: em,
        rows,
        chosen: (chosen, stability),
        device,
        dir,
    } = with_backend(backend, args.adapter.as_deref(), Experiment { cfg: &cfg, args })?;
    let header = [
        "batch",
        "ms_per_step",
        "lr",
        "predicted_rel",
        "predicted_steps_rel",
        "steps",
        "measured_steps_rel",
        "seconds",
        "reached",
        "measured_rel",
        "wall_rel",
        "note",
    ];
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            vec![
                Cell::from(r.batch),
                Cell::from(r.ms_per_step),
                Cell::Num(r.lr),
                Cell::from(r.predicted_rel),
                Cell::from(r.predicted_steps_rel),
                r.steps.map_or(Cell::Empty, Cell::from),
                Cell::from(r.measured_steps_rel),
                r.seconds.map(Cell::Num).unwrap_or(Cell::Empty),
                Cell::from(r.reached),
                r.measured_rel.map(Cell::Num).unwrap_or(Cell::Empty),
                r.wall_rel.map(Cell::Num).unwrap_or(Cell::Empty),
                Cell::Text(r.note.clone()),
            ]
        })
        .collect();
    write_csv(&dir.join("time_to_target.csv"), &header, &cells)?;
    let best_measured = rows
        .iter()
        .filter(|r| r.measured_rel.is_some())
        .min_by(|a, c| {
            a.measured_rel.unwrap_or(f64::INFINITY).total_cmp(&c.measured_rel.unwrap_or(f64::INFINITY))
        })
        .map(|r| r.batch);
    // The target is checked at evaluations: a run's steps are known to that cadence.
    let step_resolution = match cfg.train.eval_every {
        0 => "each epoch's end".to_string(),
        k => format!("{k} steps (train.eval_every)"),
    };
    let summary = serde_json::json!({
        "command": "time-to-target",
        "device": device,
        "b_noise": bn,
        "b_noise_se": bn_se,
        "b_noise_draws": crate::noise::INIT_DRAWS,
        "eps_max": em,
        "step_resolution": step_resolution,
        "target_val_error": crate::stats::f32_as_written(cfg.train.target_val_error),
        "predicted_best_batch": chosen,
        "predicted_best_stability": stability,
        "measured_best_batch": best_measured,
        "rows": rows,
    });
    write_summary(&dir, summary)?;
    line_plot(
        &dir.join("time_to_target.svg"),
        &PlotSpec::new(
            // The percentage as the config writes it (0.001 was "0 %").
            format!(
                "Time to {} % validation error: measured vs predicted",
                100.0 * crate::stats::f32_as_written(cfg.train.target_val_error)
            ),
            "batch size",
            "wall time / best",
        )
        .log2_x()
        .log_y(),
        &[
            Series {
                name: format!("predicted (1 + {bn:.1}/B)·t(B)"),
                points: rows
                    .iter()
                    .filter_map(|r| r.predicted_rel.map(|p| (r.batch as f64, p)))
                    .collect(),
            },
            Series {
                name: "measured: steps to target × t(B)".into(),
                points: rows
                    .iter()
                    .filter_map(|r| r.measured_rel.map(|m| (r.batch as f64, m)))
                    .collect(),
            },
        ],
    )?;
    let mut t =
        Table::new(["B", "ms/step", "lr", "predicted", "steps", "steps rel", "seconds", "measured"]);
    for r in &rows {
        t.row([
            r.batch.to_string(),
            r.ms_per_step.map(|m| format!("{m:.3}")).unwrap_or_else(|| "-".into()),
            format!("{:.4}", r.lr),
            r.predicted_rel.map(|p| format!("{p:.2}")).unwrap_or_else(|| "-".into()),
            r.steps.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            match (r.measured_steps_rel, r.predicted_steps_rel) {
                (Some(m), Some(p)) => format!("{m:.2} (model {p:.2})"),
                _ => "-".into(),
            },
            r.seconds.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into()),
            // A run that stopped short of the target says so before why it stopped (its note
            // alone, "reached train.steps = N", read as reached under `measured`).
            r.measured_rel.map(|m| format!("{m:.2}")).unwrap_or_else(|| match r.note.as_str() {
                "" => "-".into(),
                note if r.steps.is_some() => format!("target not reached: {note}"),
                note => note.to_string(),
            }),
        ]);
    }
    let se = bn_se.map_or(String::new(), |se| format!(" ± {se:.1}"));
    println!(
        "{device} — B_noise {bn:.1}{se}, ε_max {em:.4}, target validation 0-1 error {}",
        cfg.train.target_val_error
    );
    print!("{}", t.render());
    println!(
        "measured = steps × ms/step over the best (steps known to {step_resolution}); steps rel: over the largest B's"
    );
    println!(
        "predicted best B: {chosen}; measured best B: {}",
        best_measured.map(|b| b.to_string()).unwrap_or_else(|| "none reached the target".into())
    );
    if let Some(s) = &stability {
        println!("predicted: {}", stability_line(s));
    }
    println!("wrote: {}", dir.display());
    Ok(())
}

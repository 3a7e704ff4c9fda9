//! `batchscope rnn --config FILE`: train an RNN on a sequence task once per `[[variant]]` and
//! report the gradient diagnostics of 8.2.4–8.2.5.
//!
//! Run directory: `config.toml`, `summary.json`, `variants.csv`, and
//! - `dh_norms_init.svg`: ‖∂L/∂h_t‖ / ‖∂L/∂h_T‖ against t at initialisation for every variant,
//!   with the theory ρ(W)^(T−t) beside each (exact for an identity RNN with W = λQ);
//! - `growth.svg`: the fitted growth per step back in time during training, against ln ρ(W₀);
//! - `loss.svg`: training loss of every variant; `clipping.svg`: loss with spikes and clip events
//!   marked, one panel per variant (the cliff experiment);
//! - per variant `<name>/`: metrics.jsonl, init/last checkpoints, `loss.svg` (loss and ‖g‖ with
//!   spikes and clip events), `dh_norms.svg` (‖∂L/∂h_t‖ at several training steps),
//!   `spectrum.svg` (ρ(W) and σ₁(W) during training).

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::config::sequences::SeqTask;
use crate::config::{ConfigText, LandscapeConfig, OptimizerKind, RnnConfig, RNN_DEFAULT_TOML};
use crate::profile::Profilable;
use crate::report::csv::{write_csv, Cell};
use crate::report::heatmap::{event_plot, EventPanel, MarkerShape, Markers};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::{create_run_dir, write_atomic};
use crate::report::table::Table;
use crate::schedule::host_memory::host_limit;
use crate::schedule::rnn_memory::{check_rnn, RnnSizes};
use crate::train::rnn::{run_rnn, RnnMetricsLine, RnnRunSummary};

/// `batchscope rnn`.
pub fn rnn(args: &RunArgs, backend: BackendChoice) -> anyhow::Result<()> {
    let mut text =
        ConfigText::load(args.config.as_deref(), RNN_DEFAULT_TOML, "configs/long_term.toml", &args.set)?;
    // A [landscape] section belongs to `batchscope landscape`: checked as that command checks
    // it (an unknown key passed without a word), then written back into config.toml as given.
    let landscape = text.table.get("landscape").cloned();
    let checked: LandscapeConfig = text.take_section("landscape")?;
    checked.validate(&text.origin)?;
    let resolved = text.table.clone();
    let variants = text.variants("run")?;
    let cfgs: Vec<(String, RnnConfig)> = variants
        .into_iter()
        .map(|(name, t)| Ok((name.clone(), RnnConfig::from_table(t, &text.variant_origin(&name))?)))
        .collect::<anyhow::Result<_>>()?;
    check_memory(&cfgs, backend)?;
    let dir = create_run_dir(args.out.as_deref(), "rnn")?;
    let mut all = resolved;
    if let Some(l) = landscape {
        all.insert("landscape".into(), l);
    }
    write_atomic(
        &dir.join("config.toml"),
        toml::to_string_pretty(&all).context("serialising the config")?.as_bytes(),
    )?;
    eprintln!("run directory: {}", dir.display());
    let runs = with_backend(
        backend,
        args.adapter.as_deref(),
        RunAll { cfgs: &cfgs, dir: &dir, progress: args.progress },
    )?;
    report(&dir, &cfgs, &runs)?;
    println!("wrote: {}", dir.display());
    Ok(())
}

/// Refuse, before anything is allocated, a variant whose sequences, parameters and BPTT
/// workspace cannot fit the host's memory (on the CPU backend, which `auto` may fall back to,
/// the device side counts too).
fn check_memory(cfgs: &[(String, RnnConfig)], backend: BackendChoice) -> anyhow::Result<()> {
    let limit = host_limit();
    for (name, c) in cfgs {
        let (s, t) = (&c.sequence, &c.train);
        let copy = s.task == SeqTask::Copy;
        let sizes = RnnSizes {
            hidden: c.rnn.hidden,
            length: s.length,
            batch: t.batch_size,
            inputs: if copy { s.symbols.checked_add(1) } else { Some(2) },
            outputs: if copy { s.symbols } else { 1 },
            classification: copy,
            n_train: s.n_train,
            n_val: s.n_val,
            momentum: t.optimizer == OptimizerKind::Momentum,
        };
        check_rnn(&sizes, backend != BackendChoice::Gpu, limit)
            .with_context(|| format!("variant {name}"))?;
    }
    Ok(())
}

/// One BPTT run per variant, each into `dir/<name>`.
struct RunAll<'a> {
    cfgs: &'a [(String, RnnConfig)],
    dir: &'a Path,
    progress: bool,
}

impl BackendTask for RunAll<'_> {
    type Output = Vec<(RnnRunSummary, Vec<RnnMetricsLine>)>;

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<Self::Output> {
        let RunAll { cfgs, dir, progress } = self;
        let mut out = Vec::new();
        for (name, cfg) in cfgs {
            eprintln!(
                "variant {name}: {} RNN, H = {}, W = {} × {}, {:?} T = {}, {} steps, clip_norm {}",
                cfg.rnn.activation.name(),
                cfg.rnn.hidden,
                cfg.rnn.w_scale,
                cfg.rnn.w_init.name(),
                cfg.sequence.task,
                cfg.sequence.length,
                cfg.train.steps,
                cfg.train.clip_norm
            );
            out.push(run_rnn(b, cfg, name, &dir.join(name), progress)?);
        }
        Ok(out)
    }
}

fn opt(v: Option<f64>) -> Cell {
    v.map_or(Cell::Empty, Cell::Num)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// Plots, CSV, summary.json and the terminal table of a finished `rnn` run.
pub fn report(
    dir: &Path,
    cfgs: &[(String, RnnConfig)],
    runs: &[(RnnRunSummary, Vec<RnnMetricsLine>)],
) -> anyhow::Result<()> {
    let mut dh = Vec::new();
    let mut growth = Vec::new();
    let mut loss = Vec::new();
    let mut clip_panels = Vec::new();
    let mut rows = Vec::new();
    let mut table = Table::new([
        "variant",
        "ρ(W₀)",
        "σ₁(W₀)",
        "ln ρ(W₀)",
        "growth/step init",
        "growth/step end",
        "final loss",
        "baseline",
        "clips",
        "‖g‖ > thr",
        "spikes",
        "diverged",
    ]);
    for ((name, cfg), (s, lines)) in cfgs.iter().zip(runs) {
        let vdir = dir.join(name);
        let t_len = s.dh_norms_init.len();
        if let Some(&last) = s.dh_norms_init.last() {
            let rel = |v: f64| if last > 0.0 { v / last } else { f64::NAN };
            dh.push(Series::new(
                format!("{name} measured"),
                s.dh_norms_init.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, rel(v))).collect(),
            ));
            let rho = s.spectral_radius_init;
            dh.push(Series::new(
                format!("{name} ρ^(T−t), ρ = {rho:.3}"),
                (1..=t_len).map(|t| (t as f64, rho.powi((t_len - t) as i32))).collect(),
            ));
        }
        growth.push(Series::new(
            format!("{name} measured"),
            lines.iter().filter_map(|l| l.backward_growth.map(|g| (l.step as f64, g))).collect(),
        ));
        growth.push(Series::new(
            format!("{name} ln ρ(W) of the step"),
            lines
                .iter()
                .filter(|l| l.spectral_radius > 0.0)
                .map(|l| (l.step as f64, l.spectral_radius.ln()))
                .collect(),
        ));
        loss.push(Series::new(
            name.clone(),
            lines.iter().map(|l| (l.step as f64, l.train_loss)).collect(),
        ));
        let panel = events_panel(name, s, lines);
        event_plot(
            &vdir.join("loss.svg"),
            &format!("{name}: loss spikes and clip events"),
            "step",
            &[panel.clone(), grad_panel(s, lines)],
        )?;
        clip_panels.push(panel);
        // ‖∂L/∂h_t‖ at up to five logged steps, first and last included.
        // (Of the lines that kept them: run_rnn keeps a bounded few.)
        let with: Vec<&RnnMetricsLine> = lines.iter().filter(|l| !l.dh_norms.is_empty()).collect();
        let picks: Vec<&RnnMetricsLine> = if with.len() <= 5 {
            with
        } else {
            (0..5).map(|k| with[k * (with.len() - 1) / 4]).collect()
        };
        let curves: Vec<Series> = picks
            .iter()
            .map(|l| {
                Series::new(
                    format!("step {}", l.step),
                    l.dh_norms.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect(),
                )
            })
            .collect();
        line_plot(
            &vdir.join("dh_norms.svg"),
            &PlotSpec::new(format!("{name}: ‖∂L/∂h_t‖ during training"), "time step t", "‖∂L/∂h_t‖")
                .log_y(),
            &curves,
        )?;
        line_plot(
            &vdir.join("spectrum.svg"),
            &PlotSpec::new(format!("{name}: spectrum of W (power iteration)"), "step", "value"),
            &[
                Series::new(
                    "spectral radius ρ(W)",
                    lines.iter().map(|l| (l.step as f64, l.spectral_radius)).collect(),
                ),
                Series::new(
                    "top singular value σ₁(W)",
                    lines.iter().map(|l| (l.step as f64, l.top_singular)).collect(),
                ),
            ],
        )?;
        rows.push(vec![
            Cell::Text(name.clone()),
            Cell::Text(cfg.rnn.activation.name().into()),
            Cell::Text(cfg.rnn.w_init.name().into()),
            Cell::from(cfg.rnn.w_scale),
            Cell::from(cfg.sequence.length),
            Cell::Num(s.spectral_radius_init),
            Cell::Num(s.top_singular_init),
            Cell::Num(s.growth_theory),
            opt(s.growth_init),
            opt(s.growth_final),
            Cell::Num(s.spectral_radius_final),
            opt(s.final_train_loss),
            opt(s.final_val_loss),
            opt(s.final_val_error),
            Cell::Num(s.baseline_loss),
            Cell::Num(s.clip_norm),
            Cell::from(s.clip_events),
            Cell::from(s.spikes.len()),
            Cell::from(s.spikes_near_clip),
            Cell::Num(s.grad_threshold),
            Cell::from(s.large_grad_steps),
            Cell::from(s.spikes_after_large_grad),
            s.diverged_at.map_or(Cell::Empty, Cell::from),
            Cell::Num(s.steps_per_s),
        ]);
        table.row([
            name.clone(),
            format!("{:.4}", s.spectral_radius_init),
            format!("{:.4}", s.top_singular_init),
            format!("{:+.4}", s.growth_theory),
            fmt_opt(s.growth_init, 4),
            fmt_opt(s.growth_final, 4),
            if s.diverged_at.is_some() {
                "diverged".into()
            } else {
                fmt_opt(s.final_val_loss.or(s.final_train_loss), 4)
            },
            format!("{:.4}", s.baseline_loss),
            s.clip_events.to_string(),
            if s.grad_threshold > 0.0 {
                format!("{} (thr {})", s.large_grad_steps, s.grad_threshold)
            } else {
                "-".into()
            },
            format!(
                "{} ({} at/after ‖g‖ > thr, {} near a clip)",
                s.spikes.len(),
                s.spikes_after_large_grad,
                s.spikes_near_clip
            ),
            s.diverged_at.map_or("no".into(), |v| format!("step {v}")),
        ]);
    }
    let header = [
        "variant",
        "activation",
        "w_init",
        "w_scale",
        "length",
        "spectral_radius_init",
        "top_singular_init",
        "growth_theory",
        "growth_init",
        "growth_final",
        "spectral_radius_final",
        "final_train_loss",
        "final_val_loss",
        "final_val_error",
        "baseline_loss",
        "clip_norm",
        "clip_events",
        "spikes",
        "spikes_near_clip",
        "grad_threshold",
        "large_grad_steps",
        "spikes_after_large_grad",
        "diverged_at",
        "steps_per_s",
    ];
    write_csv(&dir.join("variants.csv"), &header, &rows)?;
    line_plot(
        &dir.join("dh_norms_init.svg"),
        &PlotSpec::new(
            "Gradient through time at initialisation: ‖∂L/∂h_t‖ / ‖∂L/∂h_T‖",
            "time step t",
            "relative norm",
        )
        .log_y(),
        &dh,
    )?;
    line_plot(
        &dir.join("growth.svg"),
        &PlotSpec::new(
            "Growth per step back in time, −d ln‖∂L/∂h_t‖/dt",
            "training step",
            "growth per step",
        ),
        &growth,
    )?;
    line_plot(
        &dir.join("loss.svg"),
        &PlotSpec::new("Training loss (minibatch, before the update)", "step", "loss").log_y(),
        &loss,
    )?;
    event_plot(
        &dir.join("clipping.svg"),
        "Loss spikes (circles) and clip events (crosses)",
        "step",
        &clip_panels,
    )?;
    let summary = json!({
        "command": "rnn",
        "device": runs.first().map(|r| r.0.device.clone()),
        "variants": runs.iter().map(|r| &r.0).collect::<Vec<_>>(),
    });
    crate::report::jsonl::write_pretty(&dir.join("summary.json"), &summary)?;
    if let Some(r) = runs.first() {
        println!(
            "{} — growth per step = −d ln‖∂L/∂h_t‖/dt (theory for an identity RNN: ln ρ(W))",
            r.0.device
        );
    }
    print!("{}", table.render());
    Ok(())
}

fn events_panel(name: &str, s: &RnnRunSummary, lines: &[RnnMetricsLine]) -> EventPanel {
    let mut lines_s = vec![Series::new(
        format!("{name} train loss"),
        lines.iter().map(|l| (l.step as f64, l.train_loss)).collect(),
    )];
    let val: Vec<(f64, f64)> =
        lines.iter().filter_map(|l| l.val_loss.map(|v| (l.step as f64, v))).collect();
    if !val.is_empty() {
        lines_s.push(Series::new("validation", val));
    }
    let spikes = lines.iter().filter(|l| l.loss_spike).map(|l| (l.step as f64, l.train_loss)).collect();
    let clips = lines
        .iter()
        .filter(|l| l.clipped_since_last > 0)
        .map(|l| (l.step as f64, l.train_loss))
        .collect();
    let mut markers = vec![
        Markers {
            name: format!("spike ({})", s.spikes.len()),
            points: spikes,
            shape: MarkerShape::Circle,
        },
        Markers {
            name: format!("clipped ({})", s.clip_events),
            points: clips,
            shape: MarkerShape::Cross,
        },
    ];
    if let Some(step) = s.diverged_at {
        // The loss is not finite there: mark the step at the top of the panel (at the chance
        // baseline when no logged loss was finite).
        markers.push(Markers {
            name: format!("diverged (step {step})"),
            points: vec![(step as f64, s.max_train_loss.unwrap_or(s.baseline_loss))],
            shape: MarkerShape::Triangle,
        });
    }
    EventPanel {
        y_label: format!("loss ({name})"),
        log_y: true,
        lines: lines_s,
        markers,
        hlines: vec![("baseline (input-blind)".into(), s.baseline_loss)],
    }
}

fn grad_panel(s: &RnnRunSummary, lines: &[RnnMetricsLine]) -> EventPanel {
    let clips = lines
        .iter()
        .filter(|l| l.clipped_since_last > 0)
        .map(|l| (l.step as f64, l.grad_norm))
        .collect();
    let mut hlines = Vec::new();
    if s.clip_norm > 0.0 {
        hlines.push((format!("clip_norm = {}", s.clip_norm), s.clip_norm));
    } else if s.grad_threshold > 0.0 {
        hlines.push((format!("threshold {} (not clipped)", s.grad_threshold), s.grad_threshold));
    }
    EventPanel {
        y_label: "‖g‖ before clipping".into(),
        log_y: true,
        lines: vec![Series::new(
            "gradient norm",
            lines.iter().map(|l| (l.step as f64, l.grad_norm)).collect(),
        )],
        markers: vec![Markers { name: "clipped".into(), points: clips, shape: MarkerShape::Cross }],
        hlines,
    }
}

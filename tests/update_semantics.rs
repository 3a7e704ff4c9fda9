//! What a training step does to the parameters, read from the files a run writes (on both
//! backends): weight decay, the gradient norm it logs, both clips in their documented order and
//! the step schedule of the learning rate; and an evaluation's loss against its closed form on
//! sets that do not fill the evaluation's chunks. Each was a mutant of the engine that every
//! other test let through (a mutation audit, 2026-12-07): weight decay dropped, the logged norm
//! missing a tensor, value clipping before norm clipping, the schedule an epoch early, the loss
//! divided by the chunks' capacity.

mod common;

use std::path::{Path, PathBuf};

use batchscope::checkpoint;
use common::cli::stderr;
use common::tmpdir;

/// A full-batch SGD run: every step's gradient is the whole set's, whatever the order.
const FULL_BATCH: &str = "[model]\nhidden = [8]\nactivation = \"tanh\"\n[data]\nkind = \"gaussian_mixture\"\nn_train = 256\nn_val = 64\ndim = 4\nclasses = 3\nseparation = 2.0\n[train]\nbatch_size = 256\noptimizer = \"sgd\"\nsteps = 1\nlog_every = 1\n";

fn train(backend: &str, config: &Path, out: &Path, sets: &[String], init: Option<&Path>) -> PathBuf {
    let mut c = common::cli::batchscope("update-semantics");
    c.args(["train", "--backend", backend, "--quiet", "--config"]).arg(config).arg("--out").arg(out);
    for s in sets {
        c.args(["--set", s]);
    }
    if let Some(p) = init {
        c.arg("--init").arg(p);
    }
    let o = c.output().expect("run batchscope");
    assert!(o.status.success(), "{}: {}", out.display(), stderr(&o));
    out.to_path_buf()
}

/// Every weight and bias of a run's last checkpoint, in the checkpoint's (name) order.
fn params(run: &Path) -> Vec<f64> {
    let ck = checkpoint::load(&run.join("last.safetensors")).expect("checkpoint");
    ck.tensors
        .iter()
        .filter(|t| t.name.starts_with("layers."))
        .flat_map(|t| t.data.iter().map(|&v| v as f64))
        .collect()
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn assert_all_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: {g} vs {w} (scale {scale})");
    }
}

#[test]
fn a_step_applies_weight_decay_logs_its_norm_and_clips_norm_then_value() {
    let d = tmpdir("update-semantics");
    let cfg = d.join("full_batch.toml");
    std::fs::write(&cfg, FULL_BATCH).expect("config");
    for backend in ["cpu", "gpu"] {
        let at = |name: &str| d.join(format!("{backend}-{name}"));
        // θ₀: one step from the initialisation, so that no parameter is special.
        let start = train(backend, &cfg, &at("start"), &["train.lr=0.05".into()], None);
        let theta = params(&start);
        let init = start.join("last.safetensors");
        let step = |name: &str, extra: &[&str]| {
            let mut sets: Vec<String> = vec!["train.lr=1.0".into()];
            sets.extend(extra.iter().map(|s| s.to_string()));
            params(&train(backend, &cfg, &at(name), &sets, Some(&init)))
        };
        // Plain: θ₁ = θ₀ − g, and the logged norm is ‖g‖.
        let plain = step("plain", &[]);
        let g: Vec<f64> = theta.iter().zip(&plain).map(|(a, b)| a - b).collect();
        let g_norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let logged = metrics(&at("plain"))[0]["grad_norm"].as_f64().expect("grad_norm");
        assert!(
            (logged - g_norm).abs() <= 1e-5 * g_norm,
            "{backend}: grad_norm {logged} vs ‖Δθ‖ {g_norm}"
        );
        // Weight decay 0.5: θ₁ − θ₁(plain) = −0.5 θ₀.
        let decayed = step("decay", &["train.weight_decay=0.5"]);
        let diff: Vec<f64> = decayed.iter().zip(&plain).map(|(a, b)| a - b).collect();
        let want: Vec<f64> = theta.iter().map(|t| -0.5 * t).collect();
        assert_all_close(&format!("{backend}: weight decay"), &diff, &want, 1e-5);
        // Both clips: the norm to half of ‖g‖, then each element to ±v, v cutting some.
        let c = 0.5 * g_norm;
        let scaled: Vec<f64> = g.iter().map(|v| v * c / g_norm).collect();
        let v = 0.5 * scaled.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let clipped = step("clip", &[&format!("train.clip_norm={c}"), &format!("train.clip_value={v}")]);
        let want: Vec<f64> = theta.iter().zip(&scaled).map(|(t, s)| t - s.clamp(-v, v)).collect();
        assert!(scaled.iter().any(|s| s.abs() > v) && scaled.iter().any(|s| s.abs() < v));
        assert_all_close(&format!("{backend}: clip norm then value"), &clipped, &want, 1e-4);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `lr_schedule = "step"`: lr × decay^⌊epoch / lr_step_epochs⌋ on every logged step.
#[test]
fn the_step_schedule_decays_at_the_epochs_it_names() {
    let d = tmpdir("lr-schedule");
    let cfg = d.join("schedule.toml");
    let text = FULL_BATCH
        .replace("batch_size = 256\n", "batch_size = 64\n")
        .replace("steps = 1\n", "epochs = 5\n");
    std::fs::write(&cfg, text).expect("config");
    for backend in ["cpu", "gpu"] {
        let sets = [
            "train.lr=0.1",
            "train.lr_schedule=\"step\"",
            "train.lr_decay=0.5",
            "train.lr_step_epochs=2",
        ];
        let run = train(backend, &cfg, &d.join(backend), &sets.map(String::from), None);
        let lines = metrics(&run);
        assert_eq!(lines.len(), 20, "{backend}: 4 steps an epoch, 5 epochs");
        for l in &lines {
            let epoch = l["epoch"].as_u64().expect("epoch");
            let want = 0.1f32 * 0.5f32.powi((epoch / 2) as i32);
            let got = l["lr"].as_f64().expect("lr");
            assert!((got - want as f64).abs() <= 1e-7, "{backend} epoch {epoch}: lr {got} vs {want}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// At weights ≈ 0 every softmax row is uniform: the loss of any set is ln K. Sets of 1 100 and
/// 1 500 rows fill neither their 1 024-row evaluation chunks nor a multiple of them.
#[test]
fn evaluated_losses_are_per_example_on_ragged_sets() {
    let d = tmpdir("eval-loss");
    let cfg = d.join("eval.toml");
    let text = "[model]\nhidden = [8]\ninit_scale = 0.000001\n[data]\nkind = \"gaussian_mixture\"\nn_train = 1100\nn_val = 1500\ndim = 4\nclasses = 3\n[train]\nbatch_size = 100\nsteps = 1\nlr = 0.000000001\neval_every = 1\neval_train = true\n";
    std::fs::write(&cfg, text).expect("config");
    for backend in ["cpu", "gpu"] {
        let run = train(backend, &cfg, &d.join(backend), &[], None);
        let line = &metrics(&run)[0];
        for key in ["val_loss", "train_full_loss"] {
            let got = line[key].as_f64().expect(key);
            assert!((got - 3f64.ln()).abs() < 1e-4, "{backend} {key}: {got} vs ln 3");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

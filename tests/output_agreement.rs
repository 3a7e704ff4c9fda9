//! One quantity, one value in every file that holds it (found by the output audit of
//! 2026-12-07): a CSV row joins its run directory's config.toml and metrics.jsonl, and an f32
//! setting is written as config.toml writes it in every file, not widened to f64 in some.

mod common;

use std::path::Path;
use std::process::Output;

use common::cli::stderr;
use common::tmpdir;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(args: &[&str]) -> Output {
    common::cli::batchscope("agreement").args(args).output().expect("run batchscope")
}

/// The cells of column `name` of a CSV (no quoted commas in these files' numbers).
fn column(csv: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(csv).expect("csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} in {header:?}"));
    lines.map(|l| l.split(',').nth(i).unwrap_or_default().to_string()).collect()
}

/// time_to_target.csv's `lr` is the rate each `B<batch>/` run trained at, as its config.toml
/// and metrics.jsonl write it (it was ε_opt(B) in f64, which no run used: 0.0701647249961258
/// against 0.070164725).
#[test]
fn time_to_target_rows_carry_the_learning_rate_their_runs_used() {
    let d = tmpdir("ttt-lr");
    let cfg = d.join("ttt.toml");
    std::fs::write(
        &cfg,
        "[model]\nhidden = [8]\n[data]\nkind = \"gaussian_mixture\"\nn_train = 256\nn_val = 64\ndim = 4\nclasses = 3\nseparation = 4.0\n[train]\noptimizer = \"sgd\"\nepochs = 0\nsteps = 8\ntarget_val_error = 0.2\neval_every = 4\nlog_every = 4\n[sweep]\nmin_batch = 1\nmax_batch = 4\nwarmup_steps = 1\ntimed_steps = 1\n",
    )
    .expect("config");
    let out = d.join("ttt");
    let o =
        run(&["time-to-target", "--config", s(&cfg), "--backend", "cpu", "--quiet", "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = out.join("time_to_target.csv");
    let (batches, lrs) = (column(&csv, "batch"), column(&csv, "lr"));
    assert!(!batches.is_empty());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    for (i, (batch, lr)) in batches.iter().zip(&lrs).enumerate() {
        let run_dir = out.join(format!("B{:05}", batch.parse::<usize>().expect("batch")));
        let config = std::fs::read_to_string(run_dir.join("config.toml")).expect("run config");
        assert!(config.contains(&format!("\nlr = {lr}\n")), "B = {batch}: lr {lr} not in\n{config}");
        let first = std::fs::read_to_string(run_dir.join("metrics.jsonl")).expect("metrics");
        assert!(first.contains(&format!("\"lr\":{lr},")), "B = {batch}: lr {lr} not in metrics.jsonl");
        assert_eq!(summary["rows"][i]["lr"].to_string(), *lr, "summary.json's row {i}");
    }
    // With momentum μ each rate is ε_opt(B)·(1 − μ), the momentum rate whose steady step is
    // the SGD step ε_opt(B) (ε_opt(B) itself made every step 10× the optimum at μ = 0.9).
    let out = d.join("ttt-momentum");
    let set = ["--set", "train.optimizer=\"momentum\"", "--set", "train.momentum=0.9"];
    let mut args =
        vec!["time-to-target", "--config", s(&cfg), "--backend", "cpu", "--quiet", "--out", s(&out)];
    args.extend_from_slice(&set);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("ε_opt(B) · (1 − μ)"), "the rule is said: {}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    let (b_noise, eps_max) = (summary["b_noise"].as_f64(), summary["eps_max"].as_f64());
    let (b_noise, eps_max) = (b_noise.expect("b_noise"), eps_max.expect("eps_max"));
    for row in summary["rows"].as_array().expect("rows") {
        let (batch, lr) = (row["batch"].as_f64().expect("batch"), row["lr"].as_f64().expect("lr"));
        let want = eps_max / (1.0 + b_noise / batch) * (1.0 - 0.9f32 as f64);
        assert!((lr - want).abs() <= 1e-6 * want, "B = {batch}: lr {lr}, ε_opt(B)·(1 − μ) = {want}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// rnn: `w_scale`, `clip_norm` and `grad_threshold` are `0.9` and `0.3` in variants.csv, the
/// top summary.json and the variant's own (the top summary and the CSV said
/// 0.8999999761581421 and 0.30000001192092896); a diverged W's ρ is NaN, not ∞.
#[test]
fn rnn_settings_are_written_as_config_toml_writes_them() {
    let d = tmpdir("rnn-widened");
    let cfg = d.join("rnn.toml");
    std::fs::write(
        &cfg,
        "[rnn]\nhidden = 8\nactivation = \"identity\"\nw_init = \"orthogonal\"\nw_scale = 1.0\n[sequence]\ntask = \"adding\"\nlength = 6\nn_train = 64\nn_val = 16\n[train]\nbatch_size = 16\noptimizer = \"sgd\"\nlr = 0.01\nsteps = 8\nclip_norm = 0.3\nlog_every = 2\neval_every = 4\n[diagnostics]\npower_iters = 20\n[[variant]]\nname = \"vanishing\"\nset = [\"rnn.w_scale=0.9\"]\n[[variant]]\nname = \"exploding\"\nset = [\"rnn.w_scale=3.0\", \"train.lr=1000.0\", \"train.clip_norm=0.0\"]\n",
    )
    .expect("config");
    let out = d.join("rnn");
    let o = run(&["rnn", "--config", s(&cfg), "--backend", "cpu", "--quiet", "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = out.join("variants.csv");
    let numbers = |name: &str| -> Vec<f64> {
        column(&csv, name).iter().map(|c| c.parse().unwrap_or_else(|_| panic!("{name}: {c}"))).collect()
    };
    assert_eq!(numbers("w_scale"), [0.9, 3.0]);
    assert_eq!(numbers("clip_norm"), [0.3, 0.0]);
    assert_eq!(numbers("grad_threshold")[0], 0.3);
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary");
    let top: serde_json::Value = serde_json::from_str(&text).expect("json");
    let v = &top["variants"][0];
    assert_eq!((v["w_scale"].to_string(), v["clip_norm"].to_string()), ("0.9".into(), "0.3".into()));
    assert_eq!(v["grad_threshold"].to_string(), "0.3");
    let own: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("vanishing/summary.json")).expect("summary"),
    )
    .expect("json");
    for key in ["w_scale", "clip_norm", "grad_threshold"] {
        assert_eq!(own[key], v[key], "{key}: the variant's summary.json and the top one");
    }
    // The exploding variant (lr 1000, no clipping) diverges: its final W holds NaN or ∞.
    let exploding = &top["variants"][1];
    assert!(exploding["diverged_at"].is_u64(), "{exploding}");
    let final_radius = &column(&csv, "spectral_radius_final")[1];
    let json_radius = &exploding["spectral_radius_final"];
    match final_radius.as_str() {
        "NaN" => assert!(json_radius.is_null()),
        "inf" => assert!(json_radius.is_null()),
        other => panic!("a diverged W's radius is not finite: {other}"),
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `batchscope sweep --backend cpu --config cfg --policy policy` (and `sets`) into `out`: its
/// summary.json, the sweep asserted to have succeeded.
fn sweep_with_policy(cfg: &Path, policy: &str, sets: &[&str], out: &Path) -> serde_json::Value {
    let mut args = vec!["sweep", "--config", s(cfg), "--backend", "cpu", "--quiet", "--policy", policy];
    for kv in sets {
        args.extend(["--set", kv]);
    }
    args.extend(["--out", s(out)]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
        .expect("json")
}

/// sweep's `by_policy` gives each policy at the run's settings: its knee at
/// `sweep.knee_fraction` is the run's own pick (it said knee:0.9 whatever the fraction, beside a
/// `chosen_batch` of the configured knee), and a `--policy Knee` spelling is that knee too.
#[test]
fn sweep_by_policy_agrees_with_the_chosen_batch() {
    let d = tmpdir("by-policy");
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, common::tiny_config(1, 16, 2)).expect("config");
    for (i, policy) in ["knee", "Knee"].iter().enumerate() {
        let summary =
            sweep_with_policy(&cfg, policy, &["sweep.knee_fraction=0.5"], &d.join(format!("sweep{i}")));
        assert_eq!(summary["policy"], "knee:0.5", "--policy {policy}");
        let knee = summary["by_policy"]
            .as_array()
            .expect("by_policy")
            .iter()
            .find(|p| p["policy"].as_str().is_some_and(|p| p.starts_with("knee")))
            .expect("a knee row")
            .clone();
        assert_eq!(knee["policy"], "knee:0.5");
        assert_eq!(knee["batch"], summary["chosen_batch"], "{summary}");
        // `knee_batch` is the README's legacy alias of `diminishing_returns_batch`, not the pick.
        assert_eq!(summary["knee_batch"], summary["diminishing_returns_batch"], "{summary}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A `--policy` spelled with dashes or capitals is written to config.toml as summary.json's
/// `policy` says it (`max-throughput` was kept as typed beside a summary's `max_throughput`).
#[test]
fn sweep_policy_spelling_is_canonical_in_config_toml() {
    let d = tmpdir("policy-spelling");
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, common::tiny_config(1, 4, 1)).expect("config");
    for (i, (typed, canonical)) in
        [("max-throughput", "max_throughput"), ("Largest-Fit", "largest_fit")].iter().enumerate()
    {
        let out = d.join(format!("sweep{i}"));
        let summary = sweep_with_policy(&cfg, typed, &[], &out);
        assert_eq!(summary["policy"], *canonical, "--policy {typed}");
        let toml = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
        assert!(toml.contains(&format!("policy = \"{canonical}\"")), "--policy {typed}: {toml}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

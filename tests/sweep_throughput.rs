//! The sweep's throughput is the batch over the median step: in sweep.csv and summary.json,
//! `examples_per_s = batch · 1000 / ms_per_step_median` (from the fastest step, `ms_min`, it
//! overstated what a run sustains).

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{read_csv, tiny_config, tmpdir};

/// `batchscope sweep --backend cpu` of a tiny model over B = 1..`max_batch` with `timed` steps,
/// and `sets`: the run directory and the finished process (asserted to have succeeded).
fn cpu_sweep(tag: &str, max_batch: usize, timed: usize, sets: &[&str]) -> (PathBuf, Output) {
    let d = tmpdir(tag);
    let c = d.join("tiny.toml");
    std::fs::write(&c, tiny_config(1, max_batch, timed)).expect("write config");
    let out = d.join("s");
    let mut cmd = common::cli::batchscope(tag);
    cmd.args(["sweep", "--backend", "cpu", "--quiet", "--config"]).arg(&c).arg("--out").arg(&out);
    for kv in sets {
        cmd.args(["--set", kv]);
    }
    let o = cmd.output().expect("run batchscope");
    assert!(o.status.success(), "{}", common::cli::stderr(&o));
    (out, o)
}

/// The column `name` of sweep.csv's header.
fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name}"))
}

/// `batchscope sweep --backend cpu` at B = 1..16 with 7 timed steps: every row's
/// examples_per_s is batch · 1000 / its median step time, in the CSV and the summary alike.
#[test]
fn sweep_throughput_is_the_batch_over_the_median_step() {
    let (out, _) = cpu_sweep("sweep-throughput", 16, 7, &[]);
    let (header, rows) = read_csv(&out.join("sweep.csv"));
    let col = |name: &str| column(&header, name);
    let num = |r: &Vec<String>, name: &str| -> f64 {
        r[col(name)].parse().unwrap_or_else(|_| panic!("{name} = {:?}", r[col(name)]))
    };
    assert_eq!(rows.len(), 5, "B = 1, 2, 4, 8, 16");
    let mut min_differs = 0;
    for r in &rows {
        let (batch, med) = (num(r, "batch"), num(r, "ms_per_step_median"));
        let (eps, min) = (num(r, "examples_per_s"), num(r, "ms_min"));
        let want = batch * 1000.0 / med;
        println!("B = {batch}: median {med} ms, min {min} ms, {eps} examples/s");
        assert!((eps - want).abs() <= 1e-6 * want, "B = {batch}: {eps} examples/s, not {want}");
        min_differs += usize::from(min < med * (1.0 - 1e-6));
    }
    assert!(min_differs > 0, "some row's fastest step is faster than its median");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    let js_rows = s["rows"].as_array().expect("summary rows");
    assert_eq!(js_rows.len(), rows.len());
    for r in js_rows {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        let want = f("batch") * 1000.0 / f("ms_per_step_median");
        assert!((f("examples_per_s") - want).abs() <= 1e-6 * want, "summary row {r}");
    }
}

/// `sweep.rounds = 3` times every batch size three times (the second round descending): each
/// row holds its three rounds of timed steps, its median is the pooled steps' median, its
/// interval holds that median at ≥ 95 % coverage, and the pick comes with how often 1000
/// resamples of the steps make it again, in summary.json and on stdout.
#[test]
fn rounds_pool_their_steps_and_the_pick_says_how_firm_it_is() {
    let (out, o) = cpu_sweep("sweep-rounds", 8, 6, &["sweep.rounds=3"]);
    let (header, rows) = read_csv(&out.join("sweep.csv"));
    let col = |name: &str| column(&header, name);
    assert_eq!(rows.len(), 4, "B = 1, 2, 4, 8");
    assert!(rows.iter().all(|r| r[col("rounds")] == "3"), "{rows:?}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    for r in s["rows"].as_array().expect("summary rows") {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        let rounds = r["step_ms"].as_array().expect("step_ms");
        assert_eq!(rounds.len(), 3, "{r}");
        let mut all: Vec<f64> = rounds
            .iter()
            .flat_map(|round| round.as_array().expect("a round").iter().map(|v| v.as_f64().expect("ms")))
            .collect();
        assert_eq!(all.len(), 18, "6 timed steps in each of 3 rounds: {r}");
        all.sort_by(f64::total_cmp);
        let median = (all[8] + all[9]) / 2.0;
        assert!((f("ms_per_step_median") - median).abs() <= 1e-12 * median, "{r}");
        assert_eq!((f("ms_min"), f("ms_max")), (all[0], all[17]), "{r}");
        // n = 18: [x₅, x₁₄] covers 1 − 2·P(Bin(18, ½) ≤ 4) = 96.9 %.
        assert_eq!((f("ms_ci_low"), f("ms_ci_high")), (all[4], all[13]), "{r}");
        assert!((f("ms_ci_coverage") - 0.969).abs() < 1e-3, "{r}");
    }
    let st = &s["choice_stability"];
    assert_eq!(st["batch"], s["chosen_batch"], "{st}");
    assert_eq!(st["resamples"], 1000, "{st}");
    let others: f64 = st["alternatives"]
        .as_array()
        .expect("alternatives")
        .iter()
        .map(|a| a["fraction"].as_f64().expect("fraction"))
        .sum();
    let agreement = st["agreement"].as_f64().expect("agreement");
    assert!((agreement + others - 1.0).abs() < 1e-9, "{st}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let said = format!("of 1000 resamples of the timed steps pick B = {} again", st["batch"]);
    assert!(stdout.contains(&said), "{stdout}");
    let _ = std::fs::remove_dir_all(out.parent().expect("the scratch directory"));
}

//! The sweep's throughput is the batch over the median step: in sweep.csv and summary.json,
//! `examples_per_s = batch · 1000 / ms_per_step_median` (from the fastest step, `ms_min`, it
//! overstated what a run sustains).

mod common;

use common::{read_csv, tiny_config, tmpdir};

/// `batchscope sweep --backend cpu` at B = 1..16 with 7 timed steps: every row's
/// examples_per_s is batch · 1000 / its median step time, in the CSV and the summary alike.
#[test]
fn sweep_throughput_is_the_batch_over_the_median_step() {
    let d = tmpdir("sweep");
    let c = d.join("tiny.toml");
    std::fs::write(&c, tiny_config(1, 16, 7)).expect("write config");
    let out = d.join("s");
    let o = common::cli::batchscope("sweep-throughput")
        .args(["sweep", "--backend", "cpu", "--quiet", "--config"])
        .arg(&c)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run batchscope");
    assert!(o.status.success(), "{}", common::cli::stderr(&o));
    let (header, rows) = read_csv(&out.join("sweep.csv"));
    let col =
        |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name}"));
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

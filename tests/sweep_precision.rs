//! `batchscope sweep --precision f32,f16` on both backends: one sweep.csv with a `precision`
//! column and the peak each row is divided by (f32 rows against the fp32 probe, f16 rows
//! against the f16 peak: the tensor-core figure where the adapter runs f16 products on
//! cooperative matrices and the table knows it, else the f16 product probe), one table and one
//! throughput plot with a series per precision; a single-precision sweep keeps today's columns
//! and plot series.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{read_csv, tmpdir};

/// The columns of a single-precision sweep.csv (unchanged by the two-precision sweep).
const SINGLE: [&str; 21] = [
    "backend",
    "batch",
    "ms_per_step_median",
    "ms_min",
    "ms_max",
    "examples_per_s",
    "gflops",
    "fraction_of_peak",
    "host_overhead_ms",
    "bytes_predicted",
    "timing",
    "skipped",
    "gpu_util_pct",
    "sm_clock_mhz",
    "power_w",
    "mem_used_mib",
    "mem_predicted_mib",
    "rounds",
    "ms_ci_low",
    "ms_ci_high",
    "ms_ci_coverage",
];

fn sweep(backend: &str, config: &Path, out: &Path, precision: &str) -> Output {
    let xdg = std::env::temp_dir().join("batchscope-sweep-precision-xdg");
    let _ = std::fs::create_dir_all(&xdg);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700));
    }
    Command::new(env!("CARGO_BIN_EXE_batchscope"))
        .env("RUST_LOG", "error")
        .env("XDG_RUNTIME_DIR", &xdg)
        .args(["sweep", "--backend", backend, "--quiet", "--precision", precision])
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run batchscope")
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or(f64::NAN)
}

/// The f16 roof a sweep on `backend` divides by where it is a hardware figure: (GFLOP/s, its
/// source) of the tensor-core table where the binary's adapter runs f16 products on cooperative
/// matrices and the table knows it, with the adapter's name; `None` where the sweep measures
/// the f16 product probe instead ("f16 matmul": the CPU backend, lavapipe).
fn f16_tensor_roof(backend: &str) -> Option<(f64, String, String)> {
    use batchscope::backend::Backend;
    use batchscope::model::Precision;
    use batchscope::profile::sweep_util::tensor_peak;
    if backend != "gpu" {
        return None;
    }
    let g = common::binary_gpu();
    tensor_peak(&g, Precision::F16).map(|(gflops, what)| (gflops, what, g.device_name()))
}

fn both_precisions(backend: &str) {
    let tensor = f16_tensor_roof(backend);
    let d = tmpdir(&format!("sweep-precision-{backend}"));
    let config = d.join("tiny.toml");
    std::fs::write(&config, common::tiny_config(1, 4, 2)).expect("write config");
    let out = d.join("both");
    let o = sweep(backend, &config, &out, "f32,f16");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    println!("{stdout}");
    let (header, rows) = read_csv(&out.join("sweep.csv"));
    let mut want: Vec<&str> = SINGLE.to_vec();
    want.extend(["precision", "peak_gflops", "peak_source"]);
    assert_eq!(header, want);
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    assert_eq!(rows.len(), 6, "B = 1, 2, 4 at each precision");
    let of = |p: &str| rows.iter().filter(|r| r[col("precision")] == p).collect::<Vec<_>>();
    let (f32_rows, f16_rows) = (of("f32"), of("f16"));
    assert_eq!((f32_rows.len(), f16_rows.len()), (3, 3));
    for r in &rows {
        let (g, peak, frac) =
            (num(&r[col("gflops")]), num(&r[col("peak_gflops")]), num(&r[col("fraction_of_peak")]));
        assert!(g > 0.0 && peak > 0.0, "{r:?}");
        assert!((frac - g / peak).abs() <= 1e-9 * frac.abs().max(1.0), "% peak of its own peak: {r:?}");
    }
    // Each precision's rows share one peak; the f16 peak is the f16 product's, named so.
    let source = |rs: &[&Vec<String>]| rs[0][col("peak_source")].clone();
    assert!(f32_rows.iter().all(|r| r[col("peak_source")] == source(&f32_rows)));
    assert!(source(&f16_rows).contains("f16"), "{}", source(&f16_rows));
    assert!(!source(&f32_rows).contains("f16"), "{}", source(&f32_rows));
    if let Some((gflops, what, _)) = &tensor {
        for r in &f16_rows {
            assert_eq!((num(&r[col("peak_gflops")]), &r[col("peak_source")]), (*gflops, what), "{r:?}");
        }
    }
    // One table, a row per (B, precision), and each precision's peak line.
    assert!(stdout.contains("precision") && stdout.contains("% peak"), "{stdout}");
    assert!(stdout.contains("f16 peak") && stdout.contains("f32 peak"), "{stdout}");
    let svg = std::fs::read_to_string(out.join("throughput.svg")).expect("throughput.svg");
    assert!(svg.contains("f32 examples/s") && svg.contains("f16 examples/s"), "one series each");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(s["precisions"].as_array().map(Vec::len), Some(2), "{s}");

    // One precision: today's columns and series, whichever precision it is.
    for p in ["f32", "f16"] {
        let one = d.join(p);
        let o = sweep(backend, &config, &one, p);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (header, rows) = read_csv(&one.join("sweep.csv"));
        assert_eq!(header, SINGLE.to_vec(), "{p}");
        assert_eq!(rows.len(), 3);
        let svg = std::fs::read_to_string(one.join("throughput.svg")).expect("throughput.svg");
        assert!(!svg.contains("f32 examples/s") && !svg.contains("f16 examples/s"), "{p}");
        let s = std::fs::read_to_string(one.join("summary.json")).expect("summary");
        let json: serde_json::Value = serde_json::from_str(&s).expect("json");
        match (p, &tensor) {
            // The tensor-core figure where the f16 products run on cooperative matrices.
            ("f16", Some((gflops, what, device))) => {
                assert_eq!(json["device"].as_str(), Some(device.as_str()), "the adapter asked: {s}");
                assert_eq!(json["peak_probe"].as_str(), Some(what.as_str()), "{s}");
                assert_eq!(json["peak_gflops"].as_f64(), Some(*gflops), "{s}");
                assert!(!s.contains("f16 matmul"), "{p}'s peak is no probe: {s}");
            }
            // Else f16 measures the f16 product's probe, and f32 the fp32 one.
            _ => assert_eq!(s.contains("f16 matmul"), p == "f16", "{p}'s peak probe: {s}"),
        }
    }
}

#[test]
fn both_precisions_in_one_sweep_on_both_backends() {
    for backend in ["cpu", "gpu"] {
        both_precisions(backend);
    }
}

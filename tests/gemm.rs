//! `batchscope gemm` end to end on whatever adapter exists (lavapipe in CI): every product of
//! the asked sizes, shapes, layouts and precisions has every candidate timed; gemm.csv holds
//! one default and one fastest row per product, TFLOP/s that are 2mnk / ms, and ratios to the
//! peers file; every candidate's product checks out against the exact reference; bad input is
//! one error line. Timings on lavapipe are CPU figures: these tests
//! check the plumbing and the arithmetic of the report, not which kernel wins.

mod common;

use std::collections::BTreeMap;

use common::cli::{assert_clean_error, batchscope, snapshot, stderr};
use common::{read_csv, tmpdir};

/// gemm.csv's columns: the file contract other tools read.
const HEADER: &str = "precision,layout,m,n,k,candidate,ms,tflops,default,fastest,pct_of_peak,\
                      peak_tflops,peer_tflops,ratio_to_peer,timing,verified";

#[test]
fn gemm_times_every_product_and_writes_the_ratios_to_the_peers() {
    let _ = common::gpu(); // no adapter: fails here, naming the fix
    let dir = tmpdir("report");
    let peers = dir.join("peers.csv");
    std::fs::write(
        &peers,
        "what,size_or_batch,value,unit\ndevice,0,Some GPU,name\nsgemm,48,0.5,TFLOP/s\n\
         sgemm_tn,48,0.25,TFLOP/s\nhgemm,48,nan,TFLOP/s\nmlp_torch_eager,1,835.0,examples/s\n",
    )
    .expect("peers");
    let out = dir.join("run");
    let o = batchscope("gemm-report")
        .args(["gemm", "--sizes", "48", "--shape", "20x36x70", "--layouts", "nn,tn"])
        .args(["--precision", "f32,f16", "--peers"])
        .arg(&peers)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run batchscope gemm");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "stdout = {stdout}\nstderr = {}", stderr(&o));
    assert!(stdout.contains("fastest") && stdout.contains("% peak"), "{stdout}");
    assert!(stdout.contains("kernel runs computed the exact product"), "{stdout}");
    assert!(!stdout.contains("WRONG"), "{stdout}");
    // f16 was asked for: the tensor-core kernels' first-use verdicts (or why none runs).
    assert!(stdout.contains("tensor cores: "), "{stdout}");
    assert!(
        stdout.contains("kernels: trusted modules") || stdout.contains("kernels: with wgpu"),
        "{stdout}"
    );
    let (header, rows) = read_csv(&out.join("gemm.csv"));
    assert_eq!(header.join(","), HEADER);
    // 2 precisions x 2 layouts x 2 shapes.
    let mut products: BTreeMap<(String, String, String), Vec<&Vec<String>>> = BTreeMap::new();
    for r in &rows {
        products
            .entry((r[0].clone(), r[1].clone(), format!("{}x{}x{}", r[2], r[3], r[4])))
            .or_default()
            .push(r);
    }
    assert_eq!(products.len(), 8, "{:?}", products.keys().collect::<Vec<_>>());
    for (key, cands) in &products {
        let flag = |col: usize| cands.iter().filter(|r| r[col] == "1").count();
        assert_eq!((flag(8), flag(9)), (1, 1), "{key:?}: one default and one fastest");
        let dims: Vec<f64> = cands[0][2..5].iter().map(|d| d.parse().expect("dim")).collect();
        let flops = 2.0 * dims[0] * dims[1] * dims[2];
        let mut fastest_ms = f64::INFINITY;
        for r in cands {
            let (ms, tflops): (f64, f64) = (r[6].parse().expect("ms"), r[7].parse().expect("tflops"));
            assert!(ms > 0.0, "{r:?}");
            let want = flops / (ms * 1e-3) / 1e12;
            assert!((tflops - want).abs() <= 1e-9 * want, "{r:?}: {tflops} vs {want}");
            fastest_ms = fastest_ms.min(ms);
            assert_eq!(r[14], cands[0][14], "one clock per product");
            assert_eq!(r[15], "1", "every kernel computes the exact product on this adapter: {r:?}");
        }
        let fastest = cands.iter().find(|r| r[9] == "1").expect("fastest row");
        assert_eq!(fastest[6].parse::<f64>().expect("ms"), fastest_ms, "{key:?}");
        // f32 candidates are the base tile, the tile family and (few rows) the skinny kernel;
        // f16 ones the packed kernel (and the cooperative one where the adapter has it).
        match key.0.as_str() {
            "f32" => assert!(cands.len() >= 2 && cands.iter().any(|r| r[5] == "tiled"), "{key:?}"),
            _ => assert!(cands.iter().any(|r| r[5] == "f16_packed"), "{key:?}"),
        }
    }
    // Ratios only where the peers file has a finite figure for that square product.
    for r in &rows {
        let peer = match (r[0].as_str(), r[1].as_str(), r[2].as_str(), r[4].as_str()) {
            ("f32", "nn", "48", "48") => Some(0.5),
            ("f32", "tn", "48", "48") => Some(0.25),
            _ => None,
        };
        match peer {
            Some(p) => {
                assert_eq!(r[12].parse::<f64>().expect("peer"), p, "{r:?}");
                let ratio: f64 = r[13].parse().expect("ratio");
                let tflops: f64 = r[7].parse().expect("tflops");
                assert!((ratio - tflops / p).abs() <= 1e-9 * ratio.max(1e-12), "{r:?}");
            }
            None => assert!(r[12].is_empty() && r[13].is_empty(), "{r:?}"),
        }
    }
    let svg = std::fs::read_to_string(out.join("gemm.svg")).expect("gemm.svg");
    assert!(svg.starts_with("<svg") && svg.contains("batchscope f32 nn") && svg.contains("peer f32 tn"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["command"], "gemm");
    assert!(summary["tensor_cores"].as_str().is_some_and(|t| !t.is_empty()), "{summary}");
    // Trusted modules unless the environment asks for wgpu's shader checks.
    let checks = std::env::var("BATCHSCOPE_SHADER_CHECKS").as_deref() == Ok("1");
    assert_eq!(summary["shader_checks"], checks, "{summary}");
    assert_eq!(summary["products"].as_array().map(Vec::len), Some(8));
    for p in summary["products"].as_array().into_iter().flatten() {
        assert_eq!(p["wrong"].as_array().map(Vec::len), Some(0), "{p}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gemm_bad_input_is_one_error_line_and_leaves_a_run_alone() {
    let _ = common::gpu();
    let dir = tmpdir("bad");
    let run = |args: &[&str]| batchscope("gemm-bad").arg("gemm").args(args).output().expect("run");
    assert_clean_error(&run(&["--sizes", "0"]), &["--sizes 0", "1..=32768"]);
    assert_clean_error(&run(&["--sizes", "40000"]), &["--sizes 40000"]);
    assert_clean_error(&run(&["--shape", "64x64"]), &["--shape", "MxNxK"]);
    assert_clean_error(&run(&["--sizes", "16", "--layouts", "nx"]), &["--layouts", "nn, nt, tn or tt"]);
    assert_clean_error(&run(&["--sizes", "16", "--precision", "bf16"]), &["--precision", "f32 or f16"]);
    // A product past every adapter's binding limit (4 GiB operands) is refused at once, before
    // any upload or the host reference.
    let o = run(&["--shape", "32768x32768x32768", "--layouts", "nn"]);
    assert_clean_error(&o, &["no product could be timed", "needs 4294967296 bytes"]);
    // Beside a product that runs, it is skipped, and summary.json says so; a product asked
    // for twice is timed once.
    let out = dir.join("partial");
    let o = run(&[
        "--sizes",
        "16,16",
        "--shape",
        "32768x32768x32768",
        "--layouts",
        "nn",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["products"].as_array().map(Vec::len), Some(1), "16³ once");
    let skipped = summary["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].as_str().is_some_and(|s| s.starts_with("f32 32768x32768x32768 nn: ")),
        "{skipped:?}"
    );
    let missing = dir.join("missing.csv");
    let o = run(&["--sizes", "16", "--peers", missing.to_str().expect("utf-8")]);
    assert_clean_error(&o, &["cannot read peer figures", "missing.csv"]);
    let garbage = dir.join("garbage.csv");
    std::fs::write(&garbage, "what,size_or_batch,value,unit\nsgemm,16,1\n").expect("write");
    let o = run(&["--sizes", "16", "--peers", garbage.to_str().expect("utf-8")]);
    assert_clean_error(&o, &["garbage.csv", "line 2", "3 fields"]);
    // An --out that is a file fails before any timing, and the file is left as it was.
    let file = dir.join("a-file");
    std::fs::write(&file, "keep me\n").expect("write");
    let o = run(&["--sizes", "16", "--out", file.to_str().expect("utf-8")]);
    assert_clean_error(&o, &["a-file", "not a directory"]);
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep me\n");
    // An existing run directory is refused by name before any timing, and never touched.
    let existing = dir.join("existing");
    std::fs::create_dir_all(&existing).expect("dir");
    std::fs::write(existing.join("gemm.csv"), "earlier results\n").expect("write");
    let before = snapshot(&existing);
    let o = run(&["--sizes", "16", "--layouts", "nn", "--out", existing.to_str().expect("utf-8")]);
    assert_clean_error(&o, &["existing", "already holds files", "gemm.csv"]);
    assert_eq!(snapshot(&existing), before);
    assert!(!dir.join("existing-1").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--ceilings`: every ceiling timed or said why not, each checked against its CPU twin;
/// ceilings.csv and summary.json carry them, and each product is held against its loop's
/// ceiling in one line.
#[test]
fn gemm_ceilings_are_exact_and_written() {
    let _ = common::gpu();
    let dir = tmpdir("ceilings");
    let out = dir.join("run");
    let o = batchscope("gemm-ceilings")
        .args(["gemm", "--sizes", "32", "--layouts", "nn", "--ceilings", "--out"])
        .arg(&out)
        .output()
        .expect("run batchscope gemm --ceilings");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "stdout = {stdout}\nstderr = {}", stderr(&o));
    assert!(!stdout.contains("WRONG"), "{stdout}");
    // The product's fastest kernel against its loop's ceiling (skinny: the FMA chains; tiled
    // and the tile family: the tiled inner loop).
    let held = stdout.lines().find(|l| l.starts_with("f32 nn 32x32x32: ") && l.ends_with(" ceiling"));
    assert!(
        held.is_some_and(|l| l.contains("% of the tiled_inner") || l.contains("% of the fp32_fma")),
        "{stdout}"
    );
    let (header, rows) = read_csv(&out.join("ceilings.csv"));
    assert_eq!(
        header.join(","),
        "ceiling,workgroups,iterations,ms,tflops,peak_tflops,pct_of_peak,exact,timing,note"
    );
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "fp32_fma",
            "tiled_inner",
            "coop_regs_2x2",
            "coop_regs_4x4",
            "coop_staged",
            "coop_staged_v4",
            "coop_staged_v8"
        ]
    );
    for r in &rows {
        match r[7].as_str() {
            // Ran: exact, and TFLOP/s = flops / ms.
            "1" => assert!(r[4].parse::<f64>().is_ok_and(|t| t > 0.0) && r[9].is_empty(), "{r:?}"),
            // Did not run (the tensor-core ones without cooperative matrices): why.
            "" => assert!(r[0].starts_with("coop") && r[9].starts_with("not run: "), "{r:?}"),
            _ => panic!("a ceiling whose output was not its CPU twin's: {r:?}"),
        }
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["ceilings"].as_array().map(Vec::len), Some(7), "{summary}");
    assert_eq!(summary["ceilings"][0]["exact"], true, "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Untrusted inputs through the binary: checkpoints written by other tools (no checksum,
//! PyTorch `nn.Sequential` names, F16 weights), NaN weights, extra tensors, and `.npy` headers
//! whose element count overflows 64 bits. Each bad input is exit 2 with exactly one `error:`
//! line and no panic; each good one trains or is analysed.

mod common;
use common::cli::{assert_clean_error, npy_bytes, stderr};
use common::tmpdir;
use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

use safetensors::tensor::{Dtype, TensorView};

fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_batchscope"));
    c.env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run batchscope")
}

fn assert_ok(o: &Output) -> String {
    let err = stderr(o);
    assert!(o.status.success(), "stderr = {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A 6-8-3 tanh MLP on a small Gaussian mixture.
const TINY: &str = "[model]\nhidden = [8]\nactivation = \"tanh\"\n[data]\nkind = \"gaussian_mixture\"\nn_train = 256\nn_val = 64\ndim = 6\nclasses = 3\nseed = 3\n[train]\nbatch_size = 32\nepochs = 1\nlog_every = 4\n";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A safetensors file as `safetensors.torch.save_file` writes it (no metadata): tensors
/// `(name, shape, little-endian bytes, dtype)`.
fn write_foreign(path: &Path, tensors: &[(String, Vec<usize>, Vec<u8>, Dtype)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b, d)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("view")))
        .collect();
    std::fs::write(
        path,
        safetensors::serialize(views, None::<HashMap<String, String>>).expect("serialize"),
    )
    .expect("write");
}

/// The 6-8-3 model's tensors under `names` (weight, bias per layer), f32, values `fill(i)`.
fn mlp_tensors(
    names: [&str; 4],
    fill: impl Fn(usize) -> f32,
) -> Vec<(String, Vec<usize>, Vec<u8>, Dtype)> {
    let shapes = [vec![8, 6], vec![8], vec![3, 8], vec![3]];
    names
        .iter()
        .zip(shapes)
        .map(|(n, s)| {
            let v: Vec<f32> = (0..s.iter().product::<usize>()).map(&fill).collect();
            (n.to_string(), s, f32_bytes(&v), Dtype::F32)
        })
        .collect()
}

fn small(i: usize) -> f32 {
    ((i * 37 % 17) as f32 - 8.0) * 0.0625
}

#[test]
fn checkpoints_from_other_tools_load_for_init_and_curvature() {
    let d = tmpdir("foreign");
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, TINY).expect("config");
    let cs = cfg.to_str().expect("utf-8");
    let seq = d.join("sequential.safetensors");
    write_foreign(&seq, &mlp_tensors(["0.weight", "0.bias", "2.weight", "2.bias"], small));
    let named = d.join("layers.safetensors");
    write_foreign(
        &named,
        &mlp_tensors(["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"], small),
    );
    // F16 weights (exactly representable values): converted to f32.
    let half = d.join("half.safetensors");
    let mut h = mlp_tensors(["0.weight", "0.bias", "2.weight", "2.bias"], small);
    for t in &mut h {
        t.2 =
            t.2.chunks_exact(4)
                .flat_map(|c| f32_to_f16(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                .collect();
        t.3 = Dtype::F16;
    }
    write_foreign(&half, &h);

    for (i, ck) in [&seq, &named, &half].into_iter().enumerate() {
        let out = d.join(format!("train{i}"));
        let err = assert_ok(&run(&[
            "train",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            cs,
            "--init",
            ck.to_str().unwrap_or_default(),
            "--out",
            out.to_str().unwrap_or_default(),
        ]));
        // Loaded twice (checked before the run directory, then read): said once.
        assert_eq!(err.matches("no checksum").count(), 1, "{err}");
        assert!(out.join("last.safetensors").exists());
        let out = d.join(format!("curv{i}"));
        assert_ok(&run(&[
            "curvature",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            cs,
            "--checkpoint",
            ck.to_str().unwrap_or_default(),
            "--out",
            out.to_str().unwrap_or_default(),
            "--slq-runs",
            "1",
            "--lanczos-steps",
            "12",
            "--trace-samples",
            "16",
            "--power-iters",
            "30",
        ]));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
                .expect("json");
        assert!(s["lambda_max"].as_f64().is_some_and(f64::is_finite), "{s}");
    }
    // The same weights under either naming give the same analysis.
    let loss = |i: usize| {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.join(format!("curv{i}/summary.json"))).expect("summary"),
        )
        .expect("json");
        s["loss"].as_f64().expect("loss")
    };
    assert_eq!(loss(0), loss(1));

    // Extra tensors are named; so is a wrong model.
    let extra = d.join("extra.safetensors");
    let mut t = mlp_tensors(["0.weight", "0.bias", "2.weight", "2.bias"], small);
    t.push(("1.running_mean".into(), vec![8], f32_bytes(&[0.0; 8]), Dtype::F32));
    write_foreign(&extra, &t);
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        cs,
        "--init",
        extra.to_str().unwrap_or_default(),
    ]);
    assert_clean_error(&o, &["1.running_mean", "extra.safetensors"]);
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        cs,
        "--set",
        "model.hidden=[5]",
        "--init",
        seq.to_str().unwrap_or_default(),
        "--out",
        d.join("wrong").to_str().unwrap_or_default(),
    ]);
    assert_clean_error(&o, &["layers.0.weight", "[5, 6]"]);
    // An integer dtype is named.
    let ints = d.join("ints.safetensors");
    let mut t = mlp_tensors(["0.weight", "0.bias", "2.weight", "2.bias"], small);
    t[1] = ("0.bias".into(), vec![8], vec![0u8; 64], Dtype::I64);
    write_foreign(&ints, &t);
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        cs,
        "--init",
        ints.to_str().unwrap_or_default(),
    ]);
    assert_clean_error(&o, &["I64", "0.bias"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn nan_weights_are_refused_naming_the_tensor_and_count() {
    let d = tmpdir("nan");
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, TINY).expect("config");
    let cs = cfg.to_str().expect("utf-8");
    let ck = d.join("nan.safetensors");
    let mut t =
        mlp_tensors(["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"], small);
    let mut w = vec![0.1f32; 24];
    w[3] = f32::NAN;
    w[7] = f32::INFINITY;
    w[20] = f32::NAN;
    t[2].2 = f32_bytes(&w);
    write_foreign(&ck, &t);
    let out = d.join("out");
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        cs,
        "--init",
        ck.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    assert_clean_error(&o, &["layers.1.weight", "3 non-finite", "nan.safetensors"]);
    assert!(!out.exists(), "refused before the run directory is made");
    let o = run(&[
        "curvature",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        cs,
        "--checkpoint",
        ck.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    assert_clean_error(&o, &["layers.1.weight", "3 non-finite"]);
    // batchscope's own (checksummed) files are checked the same way.
    let own = d.join("own.safetensors");
    let mut c = batchscope::train::checkpoint::Checkpoint::new();
    c.push("layers.0.weight", vec![2], vec![1.0, f32::NEG_INFINITY]);
    batchscope::train::checkpoint::save(&own, &c).expect("save");
    let o = run(&[
        "train",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        cs,
        "--init",
        own.to_str().unwrap_or_default(),
    ]);
    assert_clean_error(&o, &["layers.0.weight", "1 non-finite"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn npy_shapes_whose_element_count_overflows_are_one_line_errors() {
    let d = tmpdir("overflow");
    // (features shape, labels shape, labels dtype, config extra): each count wraps to a small
    // number modulo 2^64, which the data bytes then match.
    let cases = [
        (
            "(4, 4611686018427387904)",
            "(4,)",
            "<i8",
            "dim = 4611686018427387904\nclasses = 3\n",
            "[model]\nhidden = [4]\n",
        ),
        (
            "(9223372036854775809, 2)",
            "(9223372036854775809, 2)",
            "<f4",
            "dim = 2\noutputs = 2\n",
            "[model]\nhidden = [4]\nloss = \"mse\"\n",
        ),
        (
            "(0, 4611686018427387904, 4)",
            "(0,)",
            "<i8",
            "dim = 4\nclasses = 3\n",
            "[model]\nhidden = [4]\n",
        ),
    ];
    for (k, (fshape, lshape, ldtype, data_extra, model)) in cases.iter().enumerate() {
        let x = d.join(format!("x{k}.npy"));
        let y = d.join(format!("y{k}.npy"));
        std::fs::write(
            &x,
            npy_bytes(
                &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {fshape}, }}"),
                &[0u8; 64],
            ),
        )
        .expect("x");
        std::fs::write(
            &y,
            npy_bytes(
                &format!("{{'descr': '{ldtype}', 'fortran_order': False, 'shape': {lshape}, }}"),
                &[0u8; 64],
            ),
        )
        .expect("y");
        let cfg = d.join(format!("c{k}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "{model}[data]\nkind = \"npy\"\n{data_extra}features = \"{}\"\nlabels = \"{}\"\n[train]\nbatch_size = 2\nepochs = 1\n",
                x.display(),
                y.display()
            ),
        )
        .expect("config");
        for backend in ["cpu", "gpu"] {
            let o = run(&[
                "train",
                "--backend",
                backend,
                "--quiet",
                "--config",
                cfg.to_str().unwrap_or_default(),
                "--out",
                d.join(format!("o{k}-{backend}")).to_str().unwrap_or_default(),
            ]);
            let err = stderr(&o);
            if backend == "gpu" && err.contains("adapter") {
                continue; // no GPU here: the CPU run covers the loader
            }
            assert_clean_error(&o, &[]);
            println!(
                "case {k} on {backend}: {}",
                err.lines().find(|l| l.starts_with("error:")).unwrap_or_default()
            );
            assert!(err.contains(&format!("x{k}.npy")) || err.contains("dim"), "{err}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// f32 → IEEE binary16 for values that f16 holds exactly (the test's weights).
fn f32_to_f16(v: f32) -> u16 {
    if v == 0.0 {
        return if v.is_sign_negative() { 0x8000 } else { 0 };
    }
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let man = ((bits >> 13) & 0x3ff) as u16;
    assert!((1..31).contains(&exp) && bits & 0x1fff == 0, "{v} is not an exact normal f16");
    sign | ((exp as u16) << 10) | man
}

//! Seeded mutation fuzzing of the `.npy` and safetensors loaders (`cargo fuzz` needs nightly):
//! valid files are bit-flipped, truncated, extended, given edited headers (huge shapes, wrong
//! dtypes, wrong lengths) and handed to the library loaders, which must return `Ok` or a typed
//! error and never panic; a smaller set goes through the binary, which must exit 0 or 2 with
//! exactly one `error:` line on failure.

mod common;
use common::cli::npy_bytes;
use common::tmpdir;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use batchscope::data::npy::{read_features, read_labels, write_npy_f32, write_npy_labels};
use batchscope::train::checkpoint::{self, Checkpoint};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};

/// Valid `.npy` seeds: f32 features, int64 labels, f32 targets, a v2.0 header, u8 labels.
fn npy_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let x = dir.join("seed-x.npy");
    write_npy_f32(&x, &[6, 3], &(0..18).map(|i| i as f32 * 0.25).collect::<Vec<_>>()).expect("x");
    let y = dir.join("seed-y.npy");
    write_npy_labels(&y, &[0, 1, 2, 1, 0, 2]).expect("y");
    let t = dir.join("seed-t.npy");
    write_npy_f32(&t, &[6, 2], &[0.5; 12]).expect("t");
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n";
    v2.extend_from_slice(&(h.len() as u32).to_le_bytes());
    v2.extend_from_slice(h.as_bytes());
    v2.extend_from_slice(&[0u8; 16]);
    let u8s = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", &[0, 1, 2, 0]);
    vec![
        std::fs::read(x).expect("x"),
        std::fs::read(y).expect("y"),
        std::fs::read(t).expect("t"),
        v2,
        u8s,
    ]
}

/// Valid safetensors seeds: a batchscope checkpoint (checksummed) and foreign files (no
/// metadata; PyTorch names; F16 / BF16 / F64).
fn safetensors_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let own = dir.join("seed-own.safetensors");
    let ck = Checkpoint::new()
        .with_tensor("layers.0.weight", vec![3, 2], vec![0.5, -1.0, 2.0, 0.25, 0.0, 1.5])
        .with_tensor("layers.0.bias", vec![3], vec![0.1, 0.2, 0.3])
        .with_tensor("optimizer.velocity.layers.0.weight", vec![3, 2], vec![0.0; 6])
        .with_meta("step", "12");
    checkpoint::save(&own, &ck).expect("save");
    let mut seeds = vec![std::fs::read(own).expect("own")];
    // A weight [3, 2] and a bias [3]: 9 values per dtype.
    let vals = [0.5f32, -1.0, 2.0, 0.25, 0.0, 1.5, -0.5, 1.0, 0.125];
    let f32b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    // f16 / bf16 bit patterns of the same values.
    let f16b: Vec<u8> = [0x3800u16, 0xbc00, 0x4000, 0x3400, 0, 0x3e00, 0xb800, 0x3c00, 0x3000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let bf16b: Vec<u8> = vals.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect();
    let f64b: Vec<u8> = vals.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
    for (bytes, dtype, names) in [
        (&f32b, Dtype::F32, ["0.weight", "0.bias"]),
        (&f16b, Dtype::F16, ["0.weight", "0.bias"]),
        (&bf16b, Dtype::BF16, ["layers.0.weight", "layers.0.bias"]),
        (&f64b, Dtype::F64, ["2.weight", "2.bias"]),
    ] {
        let split = bytes.len() * 6 / 9;
        let views = vec![
            (names[0].to_string(), TensorView::new(dtype, vec![3, 2], &bytes[..split]).expect("w")),
            (names[1].to_string(), TensorView::new(dtype, vec![3], &bytes[split..]).expect("b")),
        ];
        seeds.push(safetensors::serialize(views, None::<HashMap<String, String>>).expect("serialize"));
    }
    seeds
}

const HUGE: [&str; 8] = [
    "18446744073709551615",
    "9223372036854775809",
    "4611686018427387904",
    "4294967297",
    "18446744073709551616",
    "0",
    "-1",
    "340282366920938463463374607431768211456",
];
const DTYPES: [&str; 12] =
    ["<f8", "|u1", ">f4", "<c8", "|O", "<U3", "|b1", "<f2", "<i2", "<V4", "<M8[s]", "f4"];

/// One mutation of `seed` (never the seed unchanged, except by chance of a no-op edit).
fn mutate(seed: &[u8], r: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    if b.is_empty() {
        return vec![r.random()];
    }
    match r.random_range(0..9) {
        // Bit flips.
        0 | 1 => {
            for _ in 0..r.random_range(1..8) {
                let i = r.random_range(0..b.len());
                b[i] ^= 1 << r.random_range(0..8);
            }
        }
        // Truncation.
        2 => b.truncate(r.random_range(0..b.len())),
        // Garbage appended or a byte range overwritten.
        3 => {
            let n = r.random_range(1..64);
            if r.random_bool(0.5) {
                b.extend((0..n).map(|_| r.random::<u8>()));
            } else {
                let i = r.random_range(0..b.len());
                for j in i..(i + n).min(b.len()) {
                    b[j] = r.random();
                }
            }
        }
        // A length field (npy header length, safetensors header size) changed.
        4 => {
            let (at, w) = if b.starts_with(b"\x93NUMPY") { (8, 2) } else { (0, 8) };
            if b.len() >= at + w {
                let v: u64 = match r.random_range(0..3) {
                    0 => r.random(),
                    1 => r.random_range(0..256),
                    _ => u64::MAX,
                };
                b[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
        }
        // Header text edits: huge or odd shapes, other dtypes, Fortran order, NaN data.
        _ => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let edited = edit_text(&text, r);
            b = edited.into_bytes();
            if r.random_bool(0.3) {
                // A NaN somewhere in the data.
                let n = b.len();
                if n >= 4 {
                    let i = r.random_range(n.saturating_sub(16)..n - 3);
                    b[i..i + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                }
            }
        }
    }
    b
}

fn edit_text(text: &str, r: &mut ChaCha8Rng) -> String {
    let huge = |r: &mut ChaCha8Rng| HUGE[r.random_range(0..HUGE.len())];
    match r.random_range(0..5) {
        0 => {
            // npy shape tuple / safetensors shape list.
            let (open, close) =
                if text.contains("'shape': (") { ("'shape': (", ")") } else { ("\"shape\":[", "]") };
            match text.find(open) {
                Some(i) => {
                    let start = i + open.len();
                    let end = start + text[start..].find(close).unwrap_or(0);
                    let dims: Vec<&str> = (0..r.random_range(0..4)).map(|_| huge(r)).collect();
                    let sep = if r.random_bool(0.5) { ", " } else { "," };
                    format!("{}{}{}", &text[..start], dims.join(sep), &text[end..])
                }
                None => text.to_string(),
            }
        }
        1 => {
            let d = DTYPES[r.random_range(0..DTYPES.len())];
            let st = ["F64", "I64", "BOOL", "F8_E4M3", "U8", "F16", "BF16", "XX"][r.random_range(0..8)];
            text.replacen("<f4", d, 1).replacen("<i8", d, 1).replacen("\"F32\"", &format!("\"{st}\""), 1)
        }
        2 => text.replacen("False", "True", 1),
        3 => {
            // safetensors data offsets.
            match text.find("\"data_offsets\":[") {
                Some(i) => {
                    let start = i + 16;
                    let end = start + text[start..].find(']').unwrap_or(0);
                    format!("{}0,{}{}", &text[..start], huge(r), &text[end..])
                }
                None => text.replacen("'descr'", "'dscr'", 1),
            }
        }
        _ => text.replacen("crc32:", "crc32:0", 1).replacen("layers.0", "layers.7", 1).replacen(
            "'shape'",
            "\"shape\"",
            1,
        ),
    }
}

/// Loads `path` with every loader that applies; `Err(message)` on a panic.
fn load_all(path: &Path, npy: bool) -> Result<(), String> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        if npy {
            if let Ok((x, n, d)) = read_features(path) {
                assert_eq!(x.len(), n * d, "features [{n}, {d}]");
            }
            for outputs in [1, 2, 3] {
                if let Ok((labels, n)) = read_labels(path, outputs) {
                    let rows = match labels {
                        batchscope::data::Labels::Classes { labels, .. } => labels.len(),
                        batchscope::data::Labels::Values { targets, outputs } => targets.len() / outputs,
                    };
                    assert_eq!(rows, n, "labels rows");
                }
            }
        } else if let Ok(ck) = checkpoint::load(path) {
            for t in &ck.tensors {
                assert_eq!(t.data.len(), t.numel(), "{}", t.name);
                assert!(t.data.iter().all(|v| v.is_finite()), "{} loaded non-finite", t.name);
            }
        }
    }));
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn mutated_files_never_panic_the_loaders() {
    let t0 = Instant::now();
    let dir = tmpdir("lib");
    let mut r = ChaCha8Rng::seed_from_u64(0xf022);
    let (npy, st) = (npy_seeds(&dir), safetensors_seeds(&dir));
    for (i, s) in npy.iter().chain(&st).enumerate() {
        let p = dir.join(format!("seed{i}"));
        std::fs::write(&p, s).expect("write");
        assert!(load_all(&p, i < npy.len()).is_ok());
    }
    let mut failures = Vec::new();
    const FILES: usize = 3000;
    for k in 0..FILES {
        let is_npy = k % 2 == 0;
        let seeds = if is_npy { &npy } else { &st };
        let mut bytes = mutate(&seeds[r.random_range(0..seeds.len())], &mut r);
        if r.random_bool(0.2) {
            bytes = mutate(&bytes.clone(), &mut r); // a second mutation on top
        }
        let p = dir.join(format!("m{k}.{}", if is_npy { "npy" } else { "safetensors" }));
        std::fs::write(&p, &bytes).expect("write");
        if let Err(msg) = load_all(&p, is_npy) {
            failures.push(format!("{}: {msg}", p.display()));
        } else {
            let _ = std::fs::remove_file(&p); // keep failing inputs for inspection
        }
    }
    println!("{FILES} mutated files in {:.2} s", t0.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} panics, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mutated_files_through_the_binary_exit_cleanly() {
    let t0 = Instant::now();
    let dir = tmpdir("bin");
    let mut r = ChaCha8Rng::seed_from_u64(0xb17);
    let (npy, st) = (npy_seeds(&dir), safetensors_seeds(&dir));
    let labels = dir.join("labels.npy");
    write_npy_labels(&labels, &[0, 1, 2, 1, 0, 2]).expect("labels");
    const RUNS: usize = 50;
    for k in 0..RUNS {
        let (args, target): (Vec<String>, PathBuf) = if k % 2 == 0 {
            // Mutated features (seed 0: f32 [6, 3]) for a tiny npy run.
            let x = dir.join(format!("x{k}.npy"));
            std::fs::write(&x, mutate(&npy[0], &mut r)).expect("x");
            let cfg = dir.join(format!("c{k}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "[model]\nhidden = [4]\n[data]\nkind = \"npy\"\nclasses = 3\nfeatures = \"{}\"\nlabels = \"{}\"\nval_fraction = 0.2\n[train]\nbatch_size = 2\nepochs = 1\n",
                    x.display(),
                    labels.display()
                ),
            )
            .expect("config");
            (vec!["--config".into(), cfg.display().to_string()], x)
        } else {
            // A mutated checkpoint for --init of the linear model it fits (2 inputs, 3 classes).
            let ck = dir.join(format!("k{k}.safetensors"));
            std::fs::write(&ck, mutate(&st[r.random_range(0..st.len())], &mut r)).expect("ck");
            let cfg = dir.join(format!("c{k}.toml"));
            std::fs::write(
                &cfg,
                "[model]\nhidden = []\n[data]\nkind = \"gaussian_mixture\"\nn_train = 64\nn_val = 16\ndim = 2\nclasses = 3\n[train]\nbatch_size = 16\nepochs = 1\n",
            )
            .expect("config");
            (
                vec![
                    "--config".into(),
                    cfg.display().to_string(),
                    "--init".into(),
                    ck.display().to_string(),
                ],
                ck,
            )
        };
        let out = dir.join(format!("o{k}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_batchscope"))
            .args(["train", "--backend", "cpu", "--quiet", "--out", out.to_str().unwrap_or_default()])
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{}: {err}", target.display());
        match o.status.code() {
            Some(0) => {}
            Some(2) => assert_eq!(
                err.lines().filter(|l| l.starts_with("error:")).count(),
                1,
                "{}: one error line: {err}",
                target.display()
            ),
            c => panic!("{}: exit {c:?}: {err}", target.display()),
        }
    }
    println!("{RUNS} binary runs in {:.2} s", t0.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}

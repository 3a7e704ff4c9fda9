//! Checkpoint files: bitwise round trip, the safetensors layout PyTorch reads, and every way a
//! file can be bad (missing, truncated, corrupted, wrong dtype, unverifiable, wrong shape), plus
//! atomic replacement: a failed save never damages the checkpoint already on disk.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use batchscope::train::checkpoint::{self, Checkpoint, CheckpointError, NamedTensor};
use safetensors::Dtype;

/// A scratch directory unique to this process and test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        Scratch(common::tmpdir(name))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Names in the directory, sorted (to see leftover temporary files).
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(rd) = fs::read_dir(&self.0) {
                for e in rd.flatten() {
                    let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755));
                }
            }
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A 2-layer MLP 4-3-2 with momentum state, and values that test bit exactness.
fn sample() -> Checkpoint {
    let w0: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.37).collect();
    // +0, -0, subnormals (non-finite values are refused on load: see `non_finite_values_...`).
    let b0 = vec![f32::from_bits(1), -0.0, f32::MIN_POSITIVE / 4.0];
    let w1: Vec<f32> = vec![f32::MAX, f32::MIN, 1e-38, 3.4e38, 1.0 / 3.0, -2.5];
    Checkpoint::new()
        .with_tensor("layers.0.weight", vec![3, 4], w0.clone())
        .with_tensor("layers.0.bias", vec![3], b0)
        .with_tensor("layers.1.weight", vec![2, 3], w1)
        .with_tensor("layers.1.bias", vec![2], vec![0.5, -0.5])
        .with_tensor(
            "optimizer.velocity.layers.0.weight",
            vec![3, 4],
            w0.iter().map(|v| v * 0.1).collect(),
        )
        .with_tensor("rng.state", vec![], vec![42.0]) // a scalar
        .with_tensor("empty", vec![0, 5], vec![])
        .with_meta("step", "1234")
        .with_meta("epoch", "7")
        .with_meta("config", "[model]\nlayers = [4, 3, 2]\nname = \"ünïcode ✓\"\n")
}

fn bits(t: &NamedTensor) -> Vec<u32> {
    t.data.iter().map(|v| v.to_bits()).collect()
}

fn assert_bitwise_equal(a: &Checkpoint, b: &Checkpoint) {
    assert_eq!(a.tensors.len(), b.tensors.len());
    for t in &a.tensors {
        let u = b.get(&t.name).unwrap_or_else(|| panic!("tensor {} lost", t.name));
        assert_eq!(t.shape, u.shape, "{}", t.name);
        assert_eq!(bits(t), bits(u), "{}", t.name);
    }
    assert_eq!(a.metadata, b.metadata);
}

/// The header of a safetensors file, as JSON.
fn header(path: &Path) -> serde_json::Value {
    let bytes = fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

fn expect_err(r: Result<Checkpoint, CheckpointError>) -> CheckpointError {
    match r {
        Ok(_) => panic!("loading must fail"),
        Err(e) => e,
    }
}

#[test]
fn round_trip_is_bitwise() {
    let s = Scratch::new("roundtrip");
    let p = s.path("ck.safetensors");
    let ck = sample();
    checkpoint::save(&p, &ck).unwrap();
    let back = checkpoint::load(&p).unwrap();
    assert_bitwise_equal(&ck, &back);
    assert_eq!(back.source.as_deref(), Some(p.as_path()));
    // Sorted by name, reserved keys removed again.
    let names: Vec<&str> = back.tensors.iter().map(|t| t.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(!back.metadata.contains_key("checksum") && !back.metadata.contains_key("format"));
    // Saving what was loaded gives the same content again.
    let p2 = s.path("ck2.safetensors");
    checkpoint::save(&p2, &back).unwrap();
    assert_bitwise_equal(&ck, &checkpoint::load(&p2).unwrap());
    assert_eq!(header(&p)["__metadata__"]["checksum"], header(&p2)["__metadata__"]["checksum"]);
    assert_eq!(s.listing(), ["ck.safetensors", "ck2.safetensors"], "temporary files left behind");
}

#[test]
fn layout_is_what_pytorch_load_file_reads() {
    // safetensors.torch.load_file needs: an 8-byte little-endian header length, a JSON header
    // with dtype/shape/data_offsets per tensor and string-only `__metadata__`, then the data.
    let s = Scratch::new("layout");
    let p = s.path("ck.safetensors");
    checkpoint::save(&p, &sample()).unwrap();
    let h = header(&p);
    let w = &h["layers.0.weight"];
    assert_eq!(w["dtype"], "F32");
    assert_eq!(w["shape"], serde_json::json!([3, 4])); // nn.Linear: [out, in]
    assert_eq!(h["layers.0.bias"]["shape"], serde_json::json!([3]));
    let meta = h["__metadata__"].as_object().unwrap();
    assert!(meta.values().all(|v| v.is_string()));
    assert_eq!(meta["format"], "batchscope-checkpoint-v1");
    let sum = meta["checksum"].as_str().unwrap();
    assert!(sum.starts_with("crc32:") && sum.len() == 14, "{sum}");
    // Data: little-endian f32 at the stated offsets.
    let bytes = fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let off = w["data_offsets"][0].as_u64().unwrap() as usize + 8 + n;
    let first = f32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
    assert_eq!(first, -5.5 * 0.37);
    // The crate's own reader agrees.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("layers.1.bias").unwrap().dtype(), Dtype::F32);
}

#[test]
fn missing_file_and_non_safetensors_files_are_errors_naming_the_file() {
    let s = Scratch::new("bad-files");
    let e = expect_err(checkpoint::load(&s.path("nope.safetensors")));
    assert!(matches!(e, CheckpointError::NotFound { .. }), "{e}");
    assert!(
        e.to_string().contains("nope.safetensors") && e.to_string().contains("does not exist"),
        "{e}"
    );

    for (name, bytes) in [
        ("empty.safetensors", Vec::new()),
        ("text.safetensors", b"hello, this is not a checkpoint".to_vec()),
        ("huge-header.safetensors", u64::MAX.to_le_bytes().to_vec()),
        ("bad-json.safetensors", [8u64.to_le_bytes().to_vec(), b"{not json".to_vec()].concat()),
    ] {
        let p = s.path(name);
        fs::write(&p, &bytes).unwrap();
        let e = expect_err(checkpoint::load(&p));
        assert!(matches!(e, CheckpointError::Format { .. }), "{name}: {e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    let e = expect_err(checkpoint::load(&s.0));
    assert!(e.to_string().contains(&*s.0.to_string_lossy()), "{e}");
}

#[test]
fn truncated_files_are_rejected() {
    let s = Scratch::new("truncated");
    let p = s.path("ck.safetensors");
    checkpoint::save(&p, &sample()).unwrap();
    let full = fs::read(&p).unwrap();
    for keep in [full.len() - 1, full.len() - 4, full.len() / 2, 12, 7] {
        let q = s.path("cut.safetensors");
        fs::write(&q, &full[..keep]).unwrap();
        let e = expect_err(checkpoint::load(&q));
        assert!(matches!(e, CheckpointError::Format { .. }), "keep {keep}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("cut.safetensors") && msg.contains("truncated or corrupted"), "{msg}");
    }
}

#[test]
fn corrupted_data_or_metadata_fails_the_checksum() {
    let s = Scratch::new("corrupt");
    let p = s.path("ck.safetensors");
    checkpoint::save(&p, &sample()).unwrap();
    let full = fs::read(&p).unwrap();

    // One flipped bit in the last tensor byte.
    let mut bytes = full.clone();
    *bytes.last_mut().unwrap() ^= 0x01;
    fs::write(&p, &bytes).unwrap();
    let e = expect_err(checkpoint::load(&p));
    assert!(matches!(e, CheckpointError::ChecksumMismatch { .. }), "{e}");
    assert!(e.to_string().contains("ck.safetensors") && e.to_string().contains("corrupted"), "{e}");

    // Every single byte of the data region flipped in turn is caught (CRC-32 catches any
    // single-byte error).
    let n = u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
    for i in (8 + n)..full.len() {
        let mut b = full.clone();
        b[i] = !b[i];
        fs::write(&p, &b).unwrap();
        assert!(
            matches!(checkpoint::load(&p), Err(CheckpointError::ChecksumMismatch { .. })),
            "byte {i}"
        );
    }

    // A metadata value changed in place (still valid JSON): "step":"1234" -> "1334".
    let text = String::from_utf8_lossy(&full[8..8 + n]).into_owned();
    let at = 8 + text.find("\"1234\"").expect("step in header") + 2;
    let mut b = full.clone();
    b[at] = b'3';
    fs::write(&p, &b).unwrap();
    assert!(matches!(checkpoint::load(&p), Err(CheckpointError::ChecksumMismatch { .. })));
}

#[test]
fn wrong_dtype_missing_checksum_and_foreign_format_are_errors() {
    let s = Scratch::new("dtype");
    // F64 tensor in an otherwise plausible file.
    let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(Dtype::F64, vec![2], &data).unwrap();
    let meta: std::collections::HashMap<String, String> =
        [("checksum".to_string(), "crc32:00000000".to_string())].into();
    let p = s.path("f64.safetensors");
    fs::write(&p, safetensors::serialize([("layers.0.bias", view)], Some(meta)).unwrap()).unwrap();
    let e = expect_err(checkpoint::load(&p));
    assert!(matches!(e, CheckpointError::Dtype { .. }), "{e}");
    assert!(
        e.to_string().contains("F64")
            && e.to_string().contains("layers.0.bias")
            && e.to_string().contains("f64.safetensors"),
        "{e}"
    );

    // Valid F32 safetensors without a checksum (another tool's): loaded unverified, with a notice.
    let f: Vec<u8> = [0.25f32, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![2], &f).unwrap();
    let q = s.path("torch.safetensors");
    fs::write(&q, safetensors::serialize([("layers.0.bias", view)], None).unwrap()).unwrap();
    assert_eq!(
        checkpoint::load(&q).unwrap().expect_shape("layers.0.bias", &[2]).unwrap().data,
        vec![0.25, -1.0]
    );
    let ck = checkpoint::load_unverified(&q).unwrap();
    assert_eq!(ck.expect_shape("layers.0.bias", &[2]).unwrap().data, vec![0.25, -1.0]);

    // PyTorch's and Hugging Face's tag (`save_file(..., metadata={"format": "pt"})`) marks
    // another tool's file, not an unknown batchscope version: converted and renamed like one
    // without a tag.
    let f16_bytes = |v: &[f32]| -> Vec<u8> {
        v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
    };
    let (w, b) = (f16_bytes(&[0.5, 2.0]), f16_bytes(&[0.25]));
    let w = safetensors::tensor::TensorView::new(Dtype::F16, vec![1, 2], &w).unwrap();
    let b = safetensors::tensor::TensorView::new(Dtype::F16, vec![1], &b).unwrap();
    let meta: std::collections::HashMap<String, String> =
        [("format".to_string(), "pt".to_string())].into();
    let pt = s.path("pt.safetensors");
    fs::write(&pt, safetensors::serialize([("0.weight", w), ("0.bias", b)], Some(meta)).unwrap())
        .unwrap();
    let ck = checkpoint::load(&pt).unwrap();
    assert_eq!(ck.expect_shape("layers.0.weight", &[1, 2]).unwrap().data, vec![0.5, 2.0]);
    assert_eq!(ck.expect_shape("layers.0.bias", &[1]).unwrap().data, vec![0.25]);
    assert!(!ck.metadata.contains_key("format"));

    // A future format tag is refused rather than misread.
    let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![2], &f).unwrap();
    let meta: std::collections::HashMap<String, String> =
        [("format".to_string(), "batchscope-checkpoint-v9".to_string())].into();
    let r = s.path("v9.safetensors");
    fs::write(&r, safetensors::serialize([("x", view)], Some(meta)).unwrap()).unwrap();
    let e = expect_err(checkpoint::load_unverified(&r));
    assert!(matches!(e, CheckpointError::UnsupportedFormat { .. }), "{e}");
}

#[test]
fn non_finite_values_are_saved_bitwise_but_refused_on_load() {
    let s = Scratch::new("nonfinite");
    let p = s.path("nan.safetensors");
    let nan = f32::from_bits(0x7fc0_1234); // NaN with a payload
    let ck = sample().with_tensor(
        "layers.2.weight",
        vec![2, 2],
        vec![nan, 1.0, f32::INFINITY, f32::NEG_INFINITY],
    );
    checkpoint::save(&p, &ck).unwrap();
    let bytes = fs::read(&p).unwrap();
    let want: Vec<u8> =
        [nan, 1.0, f32::INFINITY, f32::NEG_INFINITY].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(bytes.windows(16).any(|w| w == want.as_slice()), "written bitwise");
    let e = expect_err(checkpoint::load(&p));
    assert!(matches!(e, CheckpointError::NonFinite { count: 3, total: 4, .. }), "{e}");
    assert!(
        e.to_string().contains("layers.2.weight") && e.to_string().contains("nan.safetensors"),
        "{e}"
    );
}

#[test]
fn expect_shape_reports_expected_and_found_with_the_file() {
    let s = Scratch::new("shape");
    let p = s.path("model.safetensors");
    checkpoint::save(&p, &sample()).unwrap();
    let ck = checkpoint::load(&p).unwrap();
    assert_eq!(ck.expect_shape("layers.0.weight", &[3, 4]).unwrap().data.len(), 12);
    let e = ck.expect_shape("layers.0.weight", &[4, 3]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CheckpointError::Shape { .. }), "{msg}");
    assert!(
        msg.contains("model.safetensors")
            && msg.contains("[3, 4]")
            && msg.contains("[4, 3]")
            && msg.contains("layers.0.weight"),
        "{msg}"
    );
    let e = ck.expect_shape("layers.9.weight", &[1]).unwrap_err();
    assert!(
        matches!(e, CheckpointError::MissingTensor { .. })
            && e.to_string().contains("model.safetensors"),
        "{e}"
    );
    // Built in memory: the message says so instead of naming a file.
    let e = sample().expect_shape("layers.1.bias", &[3]).unwrap_err();
    assert!(e.to_string().contains("(in memory)"), "{e}");
}

#[test]
fn invalid_checkpoints_are_refused_before_touching_the_disk() {
    let s = Scratch::new("invalid");
    let p = s.path("ck.safetensors");
    checkpoint::save(&p, &sample()).unwrap();
    let before = fs::read(&p).unwrap();
    let bad_len = sample().with_tensor("layers.2.weight", vec![2, 2], vec![1.0; 3]);
    let e = checkpoint::save(&p, &bad_len).unwrap_err();
    assert!(matches!(e, CheckpointError::InvalidTensor { .. }), "{e}");
    assert!(
        e.to_string().contains("layers.2.weight") && e.to_string().contains("ck.safetensors"),
        "{e}"
    );
    let mut dup = sample();
    dup.push("layers.0.bias", vec![1], vec![0.0]);
    assert!(matches!(checkpoint::save(&p, &dup), Err(CheckpointError::InvalidTensor { .. })));
    assert_eq!(fs::read(&p).unwrap(), before);
    assert_eq!(s.listing(), ["ck.safetensors"]);
}

#[test]
fn overwrite_replaces_whole_and_failed_saves_leave_the_old_file_intact() {
    let s = Scratch::new("atomic");
    let p = s.path("ck.safetensors");
    let old = sample();
    checkpoint::save(&p, &old).unwrap();

    // Success: replaced whole, no temporaries.
    let new =
        Checkpoint::new().with_tensor("layers.0.weight", vec![1, 1], vec![9.0]).with_meta("step", "9");
    checkpoint::save(&p, &new).unwrap();
    assert_bitwise_equal(&new, &checkpoint::load(&p).unwrap());
    checkpoint::save(&p, &old).unwrap();
    assert_eq!(s.listing(), ["ck.safetensors"]);
    let old_bytes = fs::read(&p).unwrap();

    // The temporary file cannot be created: the target's parent is a regular file.
    let blocker = s.path("not-a-dir");
    fs::write(&blocker, b"keep me").unwrap();
    let e = checkpoint::save(&blocker.join("ck.safetensors"), &new).unwrap_err();
    assert!(matches!(e, CheckpointError::Write { .. }), "{e}");
    assert!(e.to_string().contains("not-a-dir"), "{e}");
    assert_eq!(fs::read(&blocker).unwrap(), b"keep me");

    // The rename cannot happen: a directory occupies the target name. It survives untouched and
    // no temporary file is left beside it.
    let occupied = s.path("dir.safetensors");
    fs::create_dir(&occupied).unwrap();
    fs::write(occupied.join("inside"), b"x").unwrap();
    let e = checkpoint::save(&occupied, &new).unwrap_err();
    assert!(e.to_string().contains("dir.safetensors"), "{e}");
    assert_eq!(fs::read(occupied.join("inside")).unwrap(), b"x");
    assert_eq!(s.listing(), ["ck.safetensors", "dir.safetensors", "not-a-dir"]);

    // The checkpoint itself was never disturbed by the failures.
    assert_eq!(fs::read(&p).unwrap(), old_bytes);
    assert_bitwise_equal(&old, &checkpoint::load(&p).unwrap());
}

#[cfg(unix)]
#[test]
fn save_into_read_only_directory_fails_and_keeps_the_old_checkpoint() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("readonly");
    let dir = s.path("ro");
    fs::create_dir(&dir).unwrap();
    let p = dir.join("ck.safetensors");
    let old = sample();
    checkpoint::save(&p, &old).unwrap();
    let old_bytes = fs::read(&p).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();

    // Root (as in CI) bypasses directory permissions; then this case cannot fail, and the
    // parent-is-a-file and directory-in-the-way cases of the test above are the evidence.
    let probe = dir.join("probe");
    if fs::File::create(&probe).is_ok() {
        let _ = fs::remove_file(&probe);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        eprintln!(
            "note: directory permissions do not bind this user (root); read-only case not exercised"
        );
        return;
    }
    let new = Checkpoint::new().with_tensor("layers.0.weight", vec![1, 1], vec![9.0]);
    let e = checkpoint::save(&p, &new).unwrap_err();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(e, CheckpointError::Write { .. }), "{e}");
    assert!(e.to_string().contains("ck.safetensors"), "{e}");
    assert_eq!(fs::read(&p).unwrap(), old_bytes);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "temporary file left behind");
    let _: BTreeMap<String, String> = checkpoint::load(&p).unwrap().metadata;
}

/// A file padded past its data was read whole (2.5 GB of RSS for a 2 KB header) before the
/// parser refused it; now the header is read first. A tensor named twice in the header was
/// loaded as the last of the two without a word.
#[test]
fn padding_and_a_name_given_twice_are_refused_from_the_header() {
    let s = Scratch::new("header-scan");
    let p = s.path("ck.safetensors");
    checkpoint::save(&p, &sample()).unwrap();
    let full = fs::read(&p).unwrap();
    let padded = s.path("padded.safetensors");
    fs::write(&padded, &full).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&padded)
        .unwrap()
        .set_len(full.len() as u64 + (1 << 30))
        .unwrap();
    let e = expect_err(checkpoint::load(&padded)).to_string();
    assert!(
        e.contains("padded.safetensors") && e.contains("the header describes") && e.contains("holds"),
        "{e}"
    );
    // The header's text with `layers.1.bias` given again (the same length: `layers.0.bias`
    // renamed), the file otherwise as saved.
    let n = u64::from_le_bytes(full[..8].try_into().unwrap()) as usize;
    let text = String::from_utf8(full[8..8 + n].to_vec()).unwrap();
    assert!(text.contains("\"layers.0.bias\""));
    let twice = text.replace("\"layers.0.bias\"", "\"layers.1.bias\"");
    let mut bytes = full[..8].to_vec();
    bytes.extend_from_slice(twice.as_bytes());
    bytes.extend_from_slice(&full[8 + n..]);
    let q = s.path("twice.safetensors");
    fs::write(&q, bytes).unwrap();
    let e = expect_err(checkpoint::load(&q)).to_string();
    assert!(e.contains("names tensor `layers.1.bias` twice"), "{e}");
}

/// Optimizer state other than momentum's velocity (another tool's `optimizer.adam_m.*`) was
/// taken and dropped without a word; it is refused by name as any unexpected tensor is. A
/// missing velocity is named as a momentum run's state, not with the layers' naming hint.
#[test]
fn optimizer_state_other_than_velocity_is_refused_by_name() {
    let names: Vec<String> =
        ["layers.0.weight", "layers.0.bias"].iter().map(|s| s.to_string()).collect();
    let base = Checkpoint::new().with_tensor("layers.0.weight", vec![1, 1], vec![0.5]).with_tensor(
        "layers.0.bias",
        vec![1],
        vec![0.0],
    );
    let path = Path::new("ck.safetensors");
    let velocity = base.clone().with_tensor("optimizer.velocity.layers.0.bias", vec![1], vec![0.1]);
    assert!(checkpoint::refuse_unexpected(&velocity, path, "", &names).is_ok());
    let adam = base.clone().with_tensor("optimizer.adam_m.layers.0.bias", vec![1], vec![0.1]);
    let e = checkpoint::refuse_unexpected(&adam, path, "", &names).unwrap_err().to_string();
    assert!(e.contains("`optimizer.adam_m.layers.0.bias`") && e.contains("optimizer.velocity"), "{e}");
    let e = base.expect_shape("optimizer.velocity.layers.0.bias", &[1]).unwrap_err().to_string();
    assert!(e.contains("train.optimizer = \"momentum\"") && !e.contains("nn.Sequential"), "{e}");
}

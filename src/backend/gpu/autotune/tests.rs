//! The choice logic without a device: candidates by limits, the pick from fake timings, the
//! cache key, file round trip, corrupt and stale files, unknown candidates, step shapes.

use super::shapes::mlp_step_gemms;
use super::*;

fn lavapipe() -> wgpu::Limits {
    wgpu::Limits {
        max_compute_workgroup_storage_size: 32 * 1024,
        max_compute_invocations_per_workgroup: 1024,
        max_compute_workgroup_size_x: 1024,
        ..wgpu::Limits::default()
    }
}

pub(super) fn device(driver_info: &str) -> DeviceKey {
    DeviceKey {
        name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
        vendor: 0x10005,
        device: 0,
        driver: "llvmpipe".into(),
        driver_info: driver_info.into(),
        backend: "Vulkan".into(),
    }
}

pub(super) fn entry(dev: &DeviceKey, g: &Gemm, choice: &str) -> Entry {
    Entry {
        device: dev.clone(),
        shape: ShapeKey::of(g),
        choice: choice.into(),
        method: "wall_clock".into(),
        timings: vec![CandidateTime { candidate: choice.into(), ms: 0.25 }],
    }
}

pub(super) fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("batchscope-autotune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.join("autotune.json")
}

#[test]
fn candidates_start_with_the_default_and_respect_the_limits() {
    let small = Gemm::nn(8, 1024, 784).trans(false, true);
    let c = candidates(&small, &lavapipe());
    assert_eq!(c[0], Candidate::Skinny, "choose's pick comes first");
    assert!(c.contains(&Candidate::Tiled));
    assert_eq!(c.len(), 2 + TILES.len(), "{c:?}");
    let wgrad = Gemm::nn(1024, 784, 8).trans(true, false);
    let c = candidates(&wgrad, &lavapipe());
    assert_eq!(c[0], Candidate::Tiled);
    assert!(!c.contains(&Candidate::Skinny), "m = 1024 is not skinny");
    // The output layer's dZ·W (k = 10) and X·Wᵀ (n = 10) at a large batch: skinny is timed.
    for g in [Gemm::nn(4096, 1024, 10), Gemm::nn(4096, 10, 1024).trans(false, true)] {
        assert!(candidates(&g, &lavapipe()).contains(&Candidate::Skinny), "{g:?}");
    }
    let tight = wgpu::Limits { max_compute_workgroup_storage_size: 16 * 1024, ..lavapipe() };
    let c = candidates(&wgrad, &tight);
    assert!(!c.contains(&Candidate::Tile(TileCfg { bm: 128, bn: 128, bk: 16 })), "32 KiB > 16 KiB");
    assert!(c.contains(&Candidate::Tile(TileCfg { bm: 64, bn: 64, bk: 16 })), "16 KiB fits");
    for c in c {
        assert_eq!(Candidate::parse(&c.name()), Some(c));
    }
}

#[test]
fn pick_takes_the_fastest_beyond_the_margin_and_ignores_failures() {
    let t64 = Candidate::Tile(TileCfg { bm: 64, bn: 64, bk: 8 });
    let t128 = Candidate::Tile(TileCfg { bm: 128, bn: 64, bk: 8 });
    let d = Candidate::Tiled;
    assert_eq!(pick(d, &[(d, Some(1.0)), (t64, Some(0.5)), (t128, Some(0.7))]), Some(t64));
    // Within 3 % of the default: the default stays.
    assert_eq!(pick(d, &[(d, Some(1.0)), (t64, Some(0.98))]), Some(d));
    assert_eq!(pick(d, &[(d, Some(1.0)), (t64, Some(0.96))]), Some(t64));
    // A failed default: the fastest that ran.
    assert_eq!(pick(d, &[(d, None), (t64, Some(2.0)), (t128, Some(1.5))]), Some(t128));
    // Ties go to the earlier candidate; NaN and nothing timed are no choice.
    assert_eq!(pick(d, &[(t64, Some(0.5)), (t128, Some(0.5))]), Some(t64));
    assert_eq!(pick(d, &[(d, None), (t64, Some(f64::NAN))]), None);
    assert_eq!(pick(d, &[]), None);
}

#[test]
fn the_cache_key_holds_adapter_driver_and_shape() {
    let g = Gemm::nn(64, 128, 64).trans(false, true);
    let (a, b) = (device("Mesa 22.3.6"), device("Mesa 23.0.0"));
    let mut cache = TuneCache::default();
    cache.insert(entry(&a, &g, "t64x64k8"));
    let all = candidates(&g, &lavapipe());
    let t64 = Candidate::Tile(TileCfg { bm: 64, bn: 64, bk: 8 });
    assert_eq!(cache.choice(&a, ShapeKey::of(&g), &all), Some(t64));
    assert_eq!(cache.choice(&b, ShapeKey::of(&g), &all), None, "another driver re-tunes");
    let nn = Gemm::nn(64, 128, 64);
    assert_eq!(cache.choice(&a, ShapeKey::of(&nn), &all), None, "the transposes are in the key");
    let other_k = Gemm::nn(64, 128, 65).trans(false, true);
    assert_eq!(cache.choice(&a, ShapeKey::of(&other_k), &all), None);
    // alpha and beta are not.
    assert_eq!(cache.choice(&a, ShapeKey::of(&g.scaled(0.5, 1.0)), &all), Some(t64));
    let mut name = a.clone();
    name.name = "NVIDIA H200".into();
    assert_eq!(cache.choice(&name, ShapeKey::of(&g), &all), None);
}

#[test]
fn the_file_round_trips_byte_for_byte() {
    let path = tmp("roundtrip");
    let mut cache = TuneCache::default();
    let d = device("Mesa 22.3.6");
    for g in mlp_step_gemms(&[64, 128, 10], 64) {
        cache.insert(entry(&d, &g, "tiled"));
    }
    cache.save(&path).expect("save");
    let loaded = TuneCache::load(&path);
    assert!(loaded.warning.is_none(), "{:?}", loaded.warning);
    assert_eq!(loaded.cache, cache);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), cache.to_json());
    let dir = path.parent().expect("parent");
    assert_eq!(std::fs::read_dir(dir).expect("dir").count(), 1, "no temporary file is left");
    let _ = std::fs::remove_dir_all(dir);
}

/// One malformed entry (a field missing, a number past its type) is dropped with a warning and
/// the others kept: it used to empty the whole cache.
#[test]
fn a_malformed_entry_is_dropped_alone() {
    let path = tmp("malformed-entry");
    let mut cache = TuneCache::default();
    let d = device("Mesa 22.3.6");
    for g in mlp_step_gemms(&[64, 128, 10], 64) {
        cache.insert(entry(&d, &g, "tiled"));
    }
    let n = cache.len();
    let mut file: serde_json::Value = serde_json::from_str(&cache.to_json()).expect("json");
    let entries = file["entries"].as_array_mut().expect("entries");
    entries[0].as_object_mut().expect("an entry").remove("device");
    entries[1]["shape"]["m"] = serde_json::json!(-1);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, file.to_string()).expect("write");
    let loaded = TuneCache::load(&path);
    assert_eq!(loaded.cache.len(), n - 2);
    let w = loaded.warning.expect("a warning");
    assert!(
        w.contains("ignoring 2 malformed entries") && w.contains(&format!("the other {} kept", n - 2)),
        "{w}"
    );
    assert!(loaded.foreign.is_none());
    let _ = std::fs::remove_dir_all(path.parent().expect("parent"));
}

/// A cache path that is a symlink (a cache kept elsewhere, shared between checkouts): a save
/// replaces the file it names and leaves the link a link, a dangling one included.
#[cfg(unix)]
#[test]
fn a_save_through_a_symlink_updates_its_target() {
    let path = tmp("symlink");
    let dir = path.parent().expect("parent").to_path_buf();
    let (real, link) = (dir.join("real").join("autotune.json"), dir.join("link.json"));
    let mut cache = TuneCache::default();
    cache.insert(entry(&device("x"), &Gemm::nn(1, 2, 3), "skinny"));
    cache.save(&real).expect("save the target");
    std::os::unix::fs::symlink(std::path::Path::new("real").join("autotune.json"), &link).expect("link");
    cache.insert(entry(&device("x"), &Gemm::nn(4, 5, 6), "tiled"));
    cache.save(&link).expect("save through the link");
    assert!(std::fs::symlink_metadata(&link).expect("stat").file_type().is_symlink(), "still a link");
    assert_eq!(TuneCache::load(&real).cache, cache, "the target holds the saved entries");
    assert_eq!(TuneCache::load(&link).cache, cache);
    let mut names: Vec<_> = std::fs::read_dir(dir.join("real")).expect("dir").flatten().collect();
    assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
    // A dangling link: the save creates the file it names.
    let (missing, dangling) = (dir.join("new").join("autotune.json"), dir.join("dangling.json"));
    std::os::unix::fs::symlink(&missing, &dangling).expect("link");
    cache.save(&dangling).expect("save through a dangling link");
    assert!(std::fs::symlink_metadata(&dangling).expect("stat").file_type().is_symlink());
    assert_eq!(TuneCache::load(&missing).cache, cache);
    names = std::fs::read_dir(&dir).expect("dir").flatten().collect();
    assert_eq!(names.len(), 4, "real/, new/ and the two links: {names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A cache path that names somebody else's file (a checkpoint, a metrics file, a directory):
/// loading warns, and saving is an error that leaves the file as it was.
#[test]
fn a_file_that_is_no_cache_is_never_overwritten() {
    let path = tmp("foreign");
    let dir = path.parent().expect("parent").to_path_buf();
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut cache = TuneCache::default();
    cache.insert(entry(&device("x"), &Gemm::nn(1, 2, 3), "skinny"));
    let checkpoint: &[u8] = b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}\xff\xfe";
    // Files that begin as a cache does but are none: an editor's launch.json, a record with a
    // `version` key, a cut JSON file whose version is no number, a newer build's.
    let launch: &[u8] = b"{\n  \"version\": \"0.2.0\",\n  \"configurations\": []\n}\n";
    let versioned: &[u8] = b"{\"version\":7,\"name\":\"x\"}";
    let cut: &[u8] = b"{\"version\": \"1\", \"entries\": [";
    let newer: &[u8] = b"{\"version\": 999, \"entries\": []}";
    let no_entries: &[u8] = b"{\"version\": 1}";
    let cases: [(&[u8], &str); 9] = [
        (checkpoint, "not an autotune cache"),
        (b"[]", "not an autotune cache"),
        (b"{\"step\": 1, \"loss\": 0.5}\n", "not an autotune cache"),
        (b"\x00\x01garbage", "not an autotune cache"),
        (launch, "not an autotune cache"),
        (versioned, "not an autotune cache"),
        (cut, "not an autotune cache"),
        (newer, "version 999, newer than"),
        (no_entries, "not an autotune cache"),
    ];
    for (bytes, expected) in cases {
        std::fs::write(&path, bytes).expect("write");
        let loaded = TuneCache::load(&path);
        assert!(loaded.cache.is_empty());
        let why = loaded.foreign.expect("foreign");
        assert!(why.contains(expected), "{why}");
        let w = loaded.warning.expect("one warning");
        assert!(w.contains("left as it is"), "{w}");
        let err = cache.save(&path).expect_err("refused").to_string();
        assert!(err.contains("refusing to overwrite") && !err.contains('\n'), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "the file is unchanged");
    }
    // A file larger than any cache (sparse: no disk is used), even one that begins as a cache.
    std::fs::write(&path, b"{\"version\": 1, \"entries\": []}").expect("write");
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(cache::MAX_CACHE_BYTES + 1).expect("grow");
    drop(file);
    let why = TuneCache::load(&path).foreign.expect("foreign");
    assert!(why.contains("larger than"), "{why}");
    assert!(cache.save(&path).is_err());
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), cache::MAX_CACHE_BYTES + 1);
    // A directory at the path.
    std::fs::remove_file(&path).expect("rm");
    std::fs::create_dir_all(&path).expect("mkdir");
    assert!(TuneCache::load(&path).foreign.expect("foreign").contains("not a regular file"));
    assert!(cache.save(&path).is_err());
    assert!(path.is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_stale_and_missing_files_are_rebuilt_without_error() {
    let path = tmp("corrupt");
    let missing = TuneCache::load(&path);
    assert!(missing.cache.is_empty() && missing.warning.is_none(), "a missing file is no news");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    for (text, why) in [
        ("{\"version\": 1, \"entries\": [", "not a cache file"),
        ("  {\n  \"version\": 1, \"entries\": [{]}", "not a cache file"),
        // Entries are read one by one, after the version (a_malformed_entry_is_dropped_alone).
        ("{\"version\": 1, \"entries\": [{\"choice\": 3}]}", "version 1"),
        ("  {\n  \"entries\": [1, 2],  \"version\": 1}", "version 1"),
        ("{\"version\": 0, \"entries\": []}", "version 0"),
        // Version 1's choices were never checked against the exact product.
        ("{\"version\": 1, \"entries\": []}", "version 1"),
    ] {
        std::fs::write(&path, text).expect("write");
        let loaded = TuneCache::load(&path);
        assert!(loaded.cache.is_empty() && loaded.foreign.is_none());
        let w = loaded.warning.expect("one warning");
        assert!(w.contains(why) && w.contains("rebuilding"), "{w}");
    }
    // Rebuilt: the next save replaces the corrupt file with a valid one.
    let mut cache = TuneCache::default();
    cache.insert(entry(&device("x"), &Gemm::nn(1, 2, 3), "skinny"));
    cache.save(&path).expect("save");
    assert_eq!(TuneCache::load(&path).cache, cache);
    let _ = std::fs::remove_dir_all(path.parent().expect("parent"));
}

#[test]
fn unknown_or_unrunnable_choices_are_ignored() {
    let d = device("Mesa 22.3.6");
    let g = Gemm::nn(1024, 784, 64).trans(true, false);
    let mut cache = TuneCache::default();
    cache.insert(entry(&d, &g, "t256x256k32"));
    let all = candidates(&g, &lavapipe());
    assert_eq!(cache.choice(&d, ShapeKey::of(&g), &all), None, "a name this build lacks");
    cache.insert(entry(&d, &g, "t128x128k16"));
    let tight = wgpu::Limits { max_compute_workgroup_storage_size: 16 * 1024, ..lavapipe() };
    let small = candidates(&g, &tight);
    assert_eq!(cache.choice(&d, ShapeKey::of(&g), &small), None, "too big for this adapter");
    assert_eq!(
        cache.choice(&d, ShapeKey::of(&g), &all),
        Some(Candidate::Tile(TileCfg { bm: 128, bn: 128, bk: 16 }))
    );
    // An entry of a file written by a newer build with unknown fields still parses.
    let text = cache.to_json().replace("\"method\"", "\"extra\": 1, \"method\"");
    assert_eq!(TuneCache::from_json(&text).map(|(c, dropped)| (c.len(), dropped)), Ok((1, 0)));
}

#[test]
fn step_shapes_follow_the_mlp() {
    let s = mlp_step_gemms(&[784, 1024, 1024, 10], 32);
    let labels: Vec<String> = s.iter().map(|g| ShapeKey::of(g).label()).collect();
    assert_eq!(
        labels,
        [
            "32x1024x784 NT",
            "32x1024x1024 NT",
            "32x10x1024 NT",
            "10x1024x32 TN",
            "32x1024x10 NN",
            "1024x1024x32 TN",
            "32x1024x1024 NN",
            "1024x784x32 TN",
        ]
    );
    assert!(mlp_step_gemms(&[5], 4).is_empty());
}

#[test]
fn mode_parses_from_the_config_spelling() {
    #[derive(serde::Deserialize)]
    struct T {
        m: AutotuneMode,
    }
    for (s, m) in
        [("off", AutotuneMode::Off), ("cached", AutotuneMode::Cached), ("on", AutotuneMode::On)]
    {
        let t: T = toml::from_str(&format!("m = \"{s}\"")).expect("parse");
        assert_eq!(t.m, m);
    }
    assert!(toml::from_str::<T>("m = \"always\"").is_err());
    assert_eq!(AutotuneMode::default(), AutotuneMode::Off);
}

#[test]
fn f16_candidates_are_coop_and_packed_only_where_coop_runs() {
    use crate::backend::gpu::matmul_f16::HalfKernel;
    // lavapipe (no cooperative matrices): the packed kernel alone, nothing to time.
    assert_eq!(half_candidates(HalfKernel::Packed, true, true), vec![Candidate::HalfPacked]);
    // Where coop runs, the rule's block size is the default, first; then the other, then packed.
    use Candidate::{HalfCoop, HalfCoop64, HalfCoopStaged, HalfCoopStagedV4 as V4, HalfPacked};
    use Candidate::{HalfCoop64V4 as C64V4, HalfCoop64V8 as C64V8, HalfCoopStagedV8 as V8};
    use Candidate::{HalfCoopV4 as CV4, HalfCoopV8 as CV8};
    assert_eq!(
        half_candidates(HalfKernel::Coop, true, true),
        vec![HalfCoop, HalfCoopStaged, V4, V8, HalfCoop64, C64V4, C64V8, CV4, CV8, HalfPacked]
    );
    assert_eq!(
        half_candidates(HalfKernel::Coop64, true, true),
        vec![HalfCoop64, HalfCoopStaged, V4, V8, C64V4, C64V8, HalfCoop, CV4, CV8, HalfPacked]
    );
    // The rule's kernels with wider loads (BATCHSCOPE_COOP_LOADS=vec4|vec8) first.
    assert_eq!(
        half_candidates(HalfKernel::CoopStagedV4, true, true),
        vec![V4, HalfCoopStaged, V8, HalfCoop64, C64V4, C64V8, HalfCoop, CV4, CV8, HalfPacked]
    );
    assert_eq!(
        half_candidates(HalfKernel::CoopV8, true, true),
        vec![CV8, HalfCoopStaged, V4, V8, HalfCoop64, C64V4, C64V8, HalfCoop, CV4, HalfPacked]
    );
    for (name, c, k) in [
        ("f16_coop_staged_v4", V4, HalfKernel::CoopStagedV4),
        ("f16_coop_v4", CV4, HalfKernel::CoopV4),
        ("f16_coop64_v4", C64V4, HalfKernel::Coop64V4),
        ("f16_coop_staged_v8", V8, HalfKernel::CoopStagedV8),
        ("f16_coop_v8", CV8, HalfKernel::CoopV8),
        ("f16_coop64_v8", C64V8, HalfKernel::Coop64V8),
    ] {
        assert_eq!(Candidate::parse(name), Some(c));
        assert_eq!(half_kernel_of(c), Some(k));
        assert_eq!(c.name(), name);
    }
    // BATCHSCOPE_COOP64=0: the 64x64 kernels are no candidates; limits too small: no staged one.
    assert_eq!(
        half_candidates(HalfKernel::Coop, false, true),
        vec![HalfCoop, HalfCoopStaged, V4, V8, CV4, CV8, HalfPacked]
    );
    assert_eq!(
        half_candidates(HalfKernel::Coop, true, false),
        vec![HalfCoop, HalfCoop64, C64V4, C64V8, CV4, CV8, HalfPacked]
    );
    for c in half_candidates(HalfKernel::Coop, true, true) {
        assert_eq!(Candidate::parse(&c.name()), Some(c));
        assert!(c.launch(&Gemm::nn(64, 64, 64)).is_none(), "no f32 launch");
        assert!(half_kernel_of(c).is_some(), "{c:?} runs an f16 kernel");
    }
    assert_eq!(half_kernel_of(Candidate::HalfCoop64), Some(HalfKernel::Coop64));
    // No cooperative kernel for a short side of C: the skinny kernel, then the packed one.
    assert_eq!(half_candidates(HalfKernel::Skinny, true, true), vec![Candidate::HalfSkinny, HalfPacked]);
    assert_eq!(Candidate::parse("f16_skinny"), Some(Candidate::HalfSkinny));
    assert_eq!(half_kernel_of(Candidate::HalfSkinny), Some(HalfKernel::Skinny));
    assert!(Candidate::HalfSkinny.launch(&Gemm::nn(8, 10, 64)).is_none(), "no f32 launch");
    assert_eq!(half_kernel_of(Candidate::Tiled), None);
    // The f32 candidates never include an f16 kernel.
    let g = Gemm::nn(64, 128, 64);
    let f32_cands = candidates(&g, &lavapipe());
    assert!(!f32_cands.iter().any(|c| half_kernel_of(*c).is_some()));
    // The pick: coop is the default, so packed must beat it by the margin to be chosen.
    let t = |coop: Option<f64>, packed: Option<f64>| {
        pick(Candidate::HalfCoop, &[(Candidate::HalfCoop, coop), (Candidate::HalfPacked, packed)])
    };
    assert_eq!(t(Some(1.0), Some(0.5)), Some(Candidate::HalfPacked));
    assert_eq!(t(Some(1.0), Some(0.99)), Some(Candidate::HalfCoop), "within the margin");
    assert_eq!(t(None, Some(2.0)), Some(Candidate::HalfPacked), "coop failed");
    assert_eq!(t(None, None), None);
}

#[test]
fn f16_entries_have_their_own_key_and_f32_files_are_unchanged() {
    let dev = device("Mesa 23.2.1");
    let g = Gemm::nn(256, 128, 64);
    let mut cache = TuneCache::default();
    cache.insert(entry(&dev, &g, "tiled"));
    let half = Entry { shape: ShapeKey::of_half(&g), ..entry(&dev, &g, "f16_coop") };
    cache.insert(half);
    assert_eq!(cache.len(), 2, "one entry per precision");
    assert_eq!(
        cache.choice(&dev, ShapeKey::of(&g), &candidates(&g, &lavapipe())),
        Some(Candidate::Tiled)
    );
    use crate::backend::gpu::matmul_f16::HalfKernel;
    let coop = half_candidates(HalfKernel::Coop64, true, true);
    assert_eq!(cache.choice(&dev, ShapeKey::of_half(&g), &coop), Some(Candidate::HalfCoop));
    // An adapter without coop ignores a cached coop choice.
    let packed = half_candidates(HalfKernel::Packed, true, true);
    assert_eq!(cache.choice(&dev, ShapeKey::of_half(&g), &packed), None);
    assert!(ShapeKey::of_half(&g).label().ends_with(" f16"));
    // f32 keys serialize as before (no `f16` field); files without it load as f32 keys.
    let f32_json = serde_json::to_string(&ShapeKey::of(&g)).expect("json");
    assert!(!f32_json.contains("f16"), "{f32_json}");
    let back: ShapeKey = serde_json::from_str(&f32_json).expect("parse");
    assert_eq!(back, ShapeKey::of(&g));
    let text = cache.to_json();
    assert_eq!(TuneCache::from_json(&text).expect("round trip"), (cache, 0));
}

#[test]
fn a_wrong_candidate_is_never_chosen() {
    let g = Gemm::nn(256, 256, 256);
    let wrong = verify::Mismatch { row: 0, col: 3, got: 1.0, want: 0.5 };
    let fast = Candidate::Tile(TileCfg { bm: 64, bn: 64, bk: 16 });
    let r = TuneResult {
        shape: ShapeKey::of(&g),
        times: vec![(Candidate::Tiled, Some(1.0)), (fast, Some(0.1)), (Candidate::Skinny, None)],
        wrong: vec![(fast, wrong)],
        choice: Candidate::Tiled,
        method: "wall_clock",
    };
    assert!(r.agrees(Candidate::Tiled) && !r.agrees(fast) && r.agrees(Candidate::Skinny));
    assert_eq!(pick(Candidate::Tiled, &r.times), Some(fast), "10x faster, if it were right");
    assert_eq!(r.usable(), vec![(Candidate::Tiled, Some(1.0)), (fast, None), (Candidate::Skinny, None)]);
    assert_eq!(pick(Candidate::Tiled, &r.usable()), Some(Candidate::Tiled));
    let all_wrong = TuneResult { wrong: vec![(Candidate::Tiled, wrong), (fast, wrong)], ..r };
    assert_eq!(pick(Candidate::Tiled, &all_wrong.usable()), None, "nothing right: nothing cached");
}

#[test]
fn a_cache_with_text_after_it_is_left_as_it_is_and_an_empty_file_is_filled() {
    let path = tmp("trailing");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut cache = TuneCache::default();
    cache.insert(entry(&device("x"), &Gemm::nn(1, 2, 3), "skinny"));
    // Notes after a whole cache, or two copies of one: somebody's edit, not a cut. It was
    // rebuilt from this run's entries alone, and the notes and the other entries were lost.
    for extra in ["\nMY NOTES: keep these\n".to_string(), cache.to_json()] {
        let text = cache.to_json() + &extra;
        std::fs::write(&path, &text).expect("write");
        let loaded = TuneCache::load(&path);
        let why = loaded.foreign.expect("foreign");
        assert!(why.contains("followed by more text"), "{why}");
        assert!(cache.save(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text, "left as it is");
    }
    // An empty file holds nothing to lose: no warning, and the save fills it (it was refused).
    for empty in ["", "  \n"] {
        std::fs::write(&path, empty).expect("write");
        let loaded = TuneCache::load(&path);
        assert!(loaded.foreign.is_none() && loaded.warning.is_none() && loaded.cache.is_empty());
        cache.save(&path).expect("save");
        assert_eq!(TuneCache::load(&path).cache, cache);
    }
    let _ = std::fs::remove_dir_all(path.parent().expect("parent"));
}

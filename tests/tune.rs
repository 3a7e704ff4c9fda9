//! The matmul autotuner end to end on the software adapter: `batchscope tune` writes the cache,
//! its table and tune.csv; a corrupt cache gives one warning and is rebuilt; a training run is
//! bitwise reproducible given the cache, and `off` (the default) is the untuned path. Timings on
//! lavapipe are CPU figures: these tests check plumbing and determinism, not which kernel wins.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use batchscope::backend::gpu::autotune::shapes::mlp_step_gemms;
use batchscope::backend::gpu::autotune::{Candidate, DeviceKey, ShapeKey, TuneCache};
use batchscope::backend::gpu::{AutotuneMode, GpuBackend};
use batchscope::config::Config;
use batchscope::train::{run_train, MetricsLine, TrainOptions};
use common::{read_csv, tmpdir};

const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.toml");

fn tune(cache: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batchscope"));
    c.env("RUST_LOG", "warn").env("BATCHSCOPE_AUTOTUNE_CACHE", cache);
    c.args(["tune", "--config", QUICKSTART, "--quiet"]).args(extra);
    c.output().expect("run batchscope tune")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn tune_writes_the_cache_a_table_and_tune_csv() {
    let dir = tmpdir("cli");
    let cache = dir.join("cache").join("autotune.json");
    let out = dir.join("run");
    let o = tune(&cache, &["--batch-sizes", "8,64", "--out", out.to_str().expect("utf-8")]);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout = {stdout}\nstderr = {stderr}");
    assert!(!stderr.contains("autotune cache"), "no cache yet is no warning: {stderr}");
    // quickstart is 64-128-10: 5 products per step, none shared between B = 8 and B = 64.
    let want: Vec<ShapeKey> = [8, 64]
        .iter()
        .flat_map(|&b| mlp_step_gemms(&[64, 128, 10], b))
        .map(|g| ShapeKey::of(&g))
        .collect();
    assert_eq!(want.len(), 10);
    assert_eq!(stdout.matches("← chosen").count(), 10, "{stdout}");
    assert!(stdout.contains("8x128x64 NT") && stdout.contains("GFLOP/s"), "{stdout}");
    // The timings of a software adapter (lavapipe, `DeviceType::Cpu`) are labelled CPU figures;
    // a real GPU's are not. The binary opened the adapter the helper does: the table's first line
    // names it.
    let gpu = common::binary_gpu();
    let device = batchscope::backend::Backend::device_name(&gpu);
    assert!(stdout.starts_with(&format!("{device} — model")), "{device}: {stdout}");
    let labelled = stdout.contains("a software adapter: these are CPU figures, not a GPU's");
    assert_eq!(labelled, gpu.adapter().runs_on_cpu(), "software-adapter timings labelled: {stdout}");
    let loaded = TuneCache::load(&cache);
    assert!(loaded.warning.is_none(), "{:?}", loaded.warning);
    assert_eq!(loaded.cache.len(), 10);
    let (header, rows) = read_csv(&out.join("tune.csv"));
    assert_eq!(
        header,
        [
            "shape",
            "m",
            "n",
            "k",
            "trans_a",
            "trans_b",
            "candidate",
            "ms",
            "gflops",
            "chosen",
            "verified"
        ]
    );
    assert_eq!(rows.iter().filter(|r| r[9] == "1").count(), 10, "one choice per shape");
    for r in &rows {
        assert!(Candidate::parse(&r[6]).is_some(), "{r:?}");
        let ms: f64 = r[7].parse().expect("ms");
        assert!(ms > 0.0, "{r:?}");
        assert_eq!(r[10], "1", "every candidate computes the exact product on lavapipe: {r:?}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["shapes"].as_array().map(|a| a.len()), Some(10));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--precision f16` tunes the f16 step's products as f16 products (packed halves; the
/// cooperative kernels too where the adapter has them and they pass their first-use check).
#[test]
fn tune_with_f16_tunes_the_half_products() {
    let dir = tmpdir("cli-f16");
    let cache = dir.join("autotune.json");
    let out = dir.join("run");
    let o = tune(
        &cache,
        &["--precision", "f16", "--batch-sizes", "8", "--out", out.to_str().expect("utf-8")],
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout = {stdout}\nstderr = {stderr}");
    assert!(stdout.contains("f16 step") && stdout.contains("8x128x64 NT f16"), "{stdout}");
    assert_eq!(stdout.matches("← chosen").count(), 5, "{stdout}");
    let (_, rows) = read_csv(&out.join("tune.csv"));
    assert!(!rows.is_empty() && rows.iter().all(|r| r[0].ends_with(" f16")), "{rows:?}");
    assert!(rows.iter().all(|r| r[6].starts_with("f16_")), "only f16 kernels: {rows:?}");
    assert!(rows.iter().any(|r| r[6] == "f16_packed" && r[10] == "1"), "{rows:?}");
    let loaded = TuneCache::load(&cache).cache;
    let gpu = GpuBackend::new(None).expect("GPU backend (lavapipe)");
    let device = DeviceKey::of(gpu.adapter());
    for g in mlp_step_gemms(&[64, 128, 10], 8) {
        assert!(loaded.get(&device, ShapeKey::of_half(&g)).is_some(), "{g:?} tuned as f16");
        assert!(loaded.get(&device, ShapeKey::of(&g)).is_none(), "{g:?} not as f32");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_cache_warns_once_and_is_rebuilt() {
    let dir = tmpdir("corrupt");
    let cache = dir.join("autotune.json");
    std::fs::write(&cache, "{\"version\": 1, \"entries\": [ {\"device\": ").expect("write");
    let o = tune(&cache, &["--batch-sizes", "4"]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.matches("autotune cache").count(), 1, "one warning: {stderr}");
    assert!(stderr.contains("rebuilding"), "{stderr}");
    let loaded = TuneCache::load(&cache);
    assert!(loaded.warning.is_none(), "rebuilt: {:?}", loaded.warning);
    assert_eq!(loaded.cache.len(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

fn quickstart(steps: usize) -> Config {
    let sets = [
        "train.epochs=0".to_string(),
        format!("train.steps={steps}"),
        "train.eval_every=8".to_string(),
        "train.log_every=4".to_string(),
    ];
    Config::load(Some(Path::new(QUICKSTART)), &sets).expect("quickstart config")
}

fn train(mode: AutotuneMode, cache: &Path, name: &str) -> Vec<String> {
    let gpu = GpuBackend::new(None).expect("GPU backend (lavapipe)");
    gpu.set_autotune_at(mode, Some(cache.to_path_buf()));
    let dir = tmpdir(name);
    run_train(&gpu, &quickstart(24), &TrainOptions::default(), &dir).expect("train");
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics.jsonl");
    let _ = std::fs::remove_dir_all(&dir);
    text.lines()
        .map(|l| {
            let mut m: MetricsLine = serde_json::from_str(l).expect("metrics line");
            m.elapsed_s = 0.0;
            serde_json::to_string(&m).expect("json")
        })
        .collect()
}

/// `on` tunes every product the run uses (the step's shapes among them) and saves them;
/// `cached` then reproduces the run bit for bit; `off` and an empty cache are the plain path.
#[test]
fn training_is_bitwise_reproducible_given_the_cache() {
    let dir = tmpdir("train");
    let cache = dir.join("autotune.json");
    let tuned = train(AutotuneMode::On, &cache, "on");
    let loaded = TuneCache::load(&cache).cache;
    let gpu = GpuBackend::new(None).expect("GPU backend");
    let device = DeviceKey::of(gpu.adapter());
    for g in mlp_step_gemms(&[64, 128, 10], 64) {
        assert!(loaded.get(&device, ShapeKey::of(&g)).is_some(), "{g:?} was not tuned");
    }
    let again = train(AutotuneMode::Cached, &cache, "cached");
    assert_eq!(tuned, again, "the same cache must give the same bits");
    let off = train(AutotuneMode::Off, &cache, "off");
    let empty = train(AutotuneMode::Cached, &dir.join("absent.json"), "empty");
    assert_eq!(off, empty, "no cache entry: the pure choose path");
    assert!(!dir.join("absent.json").exists(), "`cached` never writes the file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// f16 products under `on`: where the adapter has no cooperative matrices (lavapipe) the
/// packed kernel is the only candidate, nothing is timed or cached for f16, and the run equals
/// `off` bit for bit; where it has them, the f16 step shapes get their own (`f16`) entries.
#[test]
fn f16_products_tune_only_where_there_is_a_choice() {
    let dir = tmpdir("f16");
    let cache = dir.join("autotune.json");
    let run = |mode: AutotuneMode, name: &str| {
        let gpu = GpuBackend::new(None).expect("GPU backend (lavapipe)");
        gpu.set_autotune_at(mode, Some(cache.clone()));
        let out = tmpdir(name);
        let mut c = quickstart(12);
        c.model.precision = batchscope::model::Precision::F16;
        run_train(&gpu, &c, &TrainOptions::default(), &out).expect("train f16");
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics.jsonl");
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                let mut m: MetricsLine = serde_json::from_str(l).expect("metrics line");
                m.elapsed_s = 0.0;
                serde_json::to_string(&m).expect("json")
            })
            .collect();
        (lines, gpu.autotune_cache(), batchscope::profile::Profilable::tensor_f16(&gpu))
    };
    let (on, tuned, coop) = run(AutotuneMode::On, "f16-on");
    let (off, _, _) = run(AutotuneMode::Off, "f16-off");
    let gpu = GpuBackend::new(None).expect("GPU backend");
    let device = DeviceKey::of(gpu.adapter());
    let f16_entries = mlp_step_gemms(&[64, 128, 10], 64)
        .iter()
        .filter(|g| tuned.get(&device, ShapeKey::of_half(g)).is_some())
        .count();
    if coop {
        assert!(f16_entries > 0, "an adapter with cooperative matrices tunes f16 shapes");
    } else {
        // Without cooperative matrices the skinny kernel and the packed one are the choice
        // where a side of C is short (the output layer, the batch rows); elsewhere one
        // candidate, nothing to time. A tuned run may take the packed kernel, which sums in
        // another order: the two runs are not compared.
        let want = mlp_step_gemms(&[64, 128, 10], 64)
            .iter()
            .filter(|g| g.m.min(g.n) <= batchscope::backend::gpu::matmul_f16::skinny::TUNE_MAX_SIDE)
            .count();
        assert_eq!(f16_entries, want, "skinny against packed timed where a side of C is short");
        assert_eq!(on.len(), off.len(), "the same logged steps");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every command that runs the training step's products on the GPU honours `gpu.autotune`:
/// with `on` and no cache yet, each tunes the shapes it runs and saves them. `compare`,
/// `time-to-target`, `noise`, `curvature` and data-parallel `train` recorded the setting in
/// their config.toml and ran the shape rule (no cache file was written).
#[test]
fn every_gpu_command_honours_gpu_autotune() {
    let d = tmpdir("autotune-everywhere");
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, common::tiny_config(1, 2, 1)).expect("config");
    let c = cfg.to_str().expect("path");
    let on = ["--set", "gpu.autotune=\"on\"", "--quiet"];
    let runs: [(&str, &[&str]); 5] = [
        ("compare", &["compare", "--config", c, "--max-batch", "2"]),
        (
            "time-to-target",
            &[
                "time-to-target",
                "--config",
                c,
                "--backend",
                "gpu",
                "--set",
                "train.steps=2",
                "--set",
                "train.epochs=0",
                "--set",
                "train.target_val_error=0.5",
            ],
        ),
        ("noise", &["noise", "--config", c, "--backend", "gpu", "--max-n", "4", "--draws", "2"]),
        ("curvature", &["curvature", "--config", c, "--backend", "gpu", "--examples", "32"]),
        (
            "train --workers",
            &["train", "--config", c, "--backend", "gpu", "--workers", "2", "--set", "train.steps=2"],
        ),
    ];
    for (i, (name, args)) in runs.iter().enumerate() {
        let cache = d.join(format!("cache{i}.json"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_batchscope"));
        cmd.env("BATCHSCOPE_AUTOTUNE_CACHE", &cache).args(*args).args(on);
        let out = d.join(format!("out{i}"));
        let o = cmd.arg("--out").arg(&out).output().expect("run batchscope");
        assert!(o.status.success(), "{name}: {}", text(&o.stderr));
        let loaded = TuneCache::load(&cache);
        assert!(!loaded.cache.is_empty(), "{name} with gpu.autotune = \"on\" tuned nothing");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `gpu.autotune` where it changes nothing is one notice, not silence and not an error:
/// `cached` with no cache file (the default kernels run, as with `off`), and `cached` / `on` on
/// the CPU backend; `off` and a cache that exists say nothing.
#[test]
fn gpu_autotune_that_changes_nothing_is_said() {
    let d = tmpdir("autotune-inert");
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, common::tiny_config(1, 2, 1)).expect("config");
    let c = cfg.to_str().expect("path");
    let missing = d.join("none").join("cache.json");
    let train = |backend: &str, mode: &str, cache: &Path, out: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_batchscope"))
            .env("RUST_LOG", "warn")
            .env("BATCHSCOPE_AUTOTUNE_CACHE", cache)
            .args(["train", "--config", c, "--backend", backend, "--quiet", "--set", "train.steps=2"])
            .args(["--set", &format!("gpu.autotune=\"{mode}\""), "--out"])
            .arg(d.join(out))
            .output()
            .expect("run batchscope");
        assert!(o.status.success(), "{backend} {mode}: {}", text(&o.stderr));
        text(&o.stderr)
    };
    let e = train("gpu", "cached", &missing, "a");
    assert_eq!(e.matches("notice: gpu.autotune = \"cached\"").count(), 1, "{e}");
    assert!(e.contains(&format!("no autotune cache at {}", missing.display())), "{e}");
    assert!(!missing.exists(), "cached wrote a cache");
    for mode in ["cached", "on"] {
        let e = train("cpu", mode, &missing, &format!("cpu-{mode}"));
        assert!(e.contains(&format!("gpu.autotune = \"{mode}\" picks GPU matmul kernels")), "{e}");
        assert!(e.contains("CPU backend, where it changes nothing"), "{e}");
    }
    let e = train("cpu", "off", &missing, "cpu-off");
    assert!(!e.contains("gpu.autotune"), "off is no notice: {e}");
    // With a cache there (written by "on"), cached says nothing.
    let cache = d.join("cache.json");
    train("gpu", "on", &cache, "on");
    assert!(cache.exists(), "on saved no cache");
    let e = train("gpu", "cached", &cache, "cached");
    assert!(!e.contains("gpu.autotune"), "a cache there is no notice: {e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// On a software adapter (lavapipe here) `tune` with no `--batch-sizes` tunes 1 and 64, and
/// says so: 4096's shapes took it past five minutes on two cores, and a tune stopped then kept
/// nothing (the cache is now saved shape by shape).
#[test]
fn tune_defaults_on_a_software_adapter_are_small() {
    let d = tmpdir("tune-software-defaults");
    let cfg = d.join("tiny.toml");
    std::fs::write(&cfg, common::tiny_config(1, 2, 1)).expect("config");
    let cache = d.join("cache.json");
    let mut c = Command::new(env!("CARGO_BIN_EXE_batchscope"));
    c.env("BATCHSCOPE_AUTOTUNE_CACHE", &cache).args(["tune", "--quiet", "--config"]).arg(&cfg);
    let o = c.output().expect("run batchscope tune");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    let gpu = GpuBackend::new(None).expect("a GPU adapter (lavapipe in CI)");
    let software = gpu.adapter().device_type == format!("{:?}", wgpu::DeviceType::Cpu);
    drop(gpu);
    if software {
        assert!(err.contains("software adapter") && err.contains("1,64"), "{err}");
        assert!(out.contains("batch sizes [1, 64]"), "{out}");
    } else {
        assert!(out.contains("batch sizes [1, 64, 4096]"), "a hardware adapter's defaults: {out}");
    }
    assert!(!TuneCache::load(&cache).cache.is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

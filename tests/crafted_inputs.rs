//! Crafted inputs found by an audit of the binary (2026-12-02), each once a panic, an abort, an
//! overwritten file, a stray directory or an unbounded run: now exit 2 with one `error:` line
//! (or a bounded run), and nothing that existed is changed.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cli::{assert_clean_error, npy_bytes, snapshot, stderr};
use common::tmpdir;

fn bin() -> Command {
    common::cli::batchscope("crafted")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run batchscope")
}

/// `COMMAND --backend cpu --quiet --config CONFIG` and `extra`.
fn on_cpu(command: &str, config: &Path, extra: &[&str]) -> Output {
    let mut a = vec![command, "--backend", "cpu", "--quiet", "--config", s(config)];
    a.extend_from_slice(extra);
    run(&a)
}

/// `train --backend cpu --quiet --config CONFIG` and `extra`.
fn train_cpu(config: &Path, extra: &[&str]) -> Output {
    on_cpu("train", config, extra)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `common::tiny_config(1, max_batch, 1)` written to `dir/tiny.toml`.
fn tiny_at(dir: &Path, max_batch: usize) -> std::path::PathBuf {
    let tiny = dir.join("tiny.toml");
    std::fs::write(&tiny, common::tiny_config(1, max_batch, 1)).expect("config");
    tiny
}

/// A finished tiny CPU run in `dir/run` and its config at `dir/tiny.toml`.
fn finished_run(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let tiny = tiny_at(dir, 16);
    let run_dir = dir.join("run");
    let o = train_cpu(&tiny, &["--out", s(&run_dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    (tiny, run_dir)
}

/// [`finished_run`]'s run directory, its config.toml and that file's text.
fn finished_run_config(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let (_, run_dir) = finished_run(dir);
    let cfg_path = run_dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).expect("config.toml");
    (run_dir, cfg_path, text)
}

/// `train --resume RUN --backend cpu --quiet --set SET`.
fn resume_cpu(run_dir: &Path, set: &str) -> Output {
    run(&["train", "--resume", s(run_dir), "--backend", "cpu", "--quiet", "--set", set])
}

/// `RUN/last.safetensors` rewritten as `original` with metadata `key = value`: `resume` is one
/// error line holding `want`, and the run directory is left byte for byte.
fn refused_with(
    run_dir: &Path,
    original: &batchscope::checkpoint::Checkpoint,
    (key, value): (&str, &str),
    resume: &dyn Fn() -> Output,
    want: &[&str],
) {
    let mut ck = original.clone();
    ck.metadata.insert(key.to_string(), value.to_string());
    batchscope::checkpoint::save(&run_dir.join("last.safetensors"), &ck).expect("tampered checkpoint");
    let before = snapshot(run_dir);
    assert_clean_error(&resume(), want);
    assert!(snapshot(run_dir) == before, "the refused resume ({key} = {value}) changed the run");
}

/// With `original` written back as `RUN/last.safetensors`, `resume` succeeds.
fn restored_resumes(
    run_dir: &Path,
    original: &batchscope::checkpoint::Checkpoint,
    resume: &dyn Fn() -> Output,
) {
    batchscope::checkpoint::save(&run_dir.join("last.safetensors"), original).expect("checkpoint");
    let o = resume();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `BATCHSCOPE_AUTOTUNE_CACHE` naming a checkpoint (or any file that is no cache) is refused
/// before any timing, and the file is left byte for byte; `tune` used to replace it with JSON.
#[test]
fn an_autotune_cache_path_naming_a_checkpoint_never_overwrites_it() {
    let d = tmpdir("cache-over-checkpoint");
    let (tiny, run_dir) = finished_run(&d);
    let before = snapshot(&run_dir);
    for victim in ["last.safetensors", "metrics.jsonl"] {
        let o = bin()
            .env("BATCHSCOPE_AUTOTUNE_CACHE", run_dir.join(victim))
            .args(["tune", "--quiet", "--config", s(&tiny), "--batch-sizes", "1"])
            .output()
            .expect("run");
        assert_clean_error(&o, &["refusing to overwrite", victim, "not an autotune cache"]);
    }
    let o = bin()
        .env("BATCHSCOPE_AUTOTUNE_CACHE", &run_dir)
        .args(["tune", "--quiet", "--config", s(&tiny), "--batch-sizes", "1"])
        .output()
        .expect("run");
    assert_clean_error(&o, &["refusing to overwrite", "not a regular file"]);
    assert!(snapshot(&run_dir) == before, "the run directory changed");
    // Files that begin as a cache does (`{"version"`) but are none, or a newer build's cache:
    // these were once overwritten on the strength of their first bytes.
    for (name, text, why) in [
        ("launch.json", "{\"version\": \"0.2.0\", \"configurations\": []}\n", "not an autotune cache"),
        ("record.json", "{\"version\":7,\"name\":\"x\"}", "not an autotune cache"),
        ("newer.json", "{\"version\": 999, \"entries\": []}", "version 999"),
    ] {
        let victim = d.join(name);
        std::fs::write(&victim, text).expect("victim");
        let o = bin()
            .env("BATCHSCOPE_AUTOTUNE_CACHE", &victim)
            .args(["tune", "--quiet", "--config", s(&tiny), "--batch-sizes", "1"])
            .output()
            .expect("run");
        assert_clean_error(&o, &["refusing to overwrite", name, why]);
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), text, "{name} changed");
    }
    // Batch sizes whose operands overflow a byte count: one error naming the shape and the
    // limit, and no cache entry (they once wrapped, "tuned" and were cached with exit 0).
    let cache = d.join("cache.json");
    for batch in ["4611686018427387904", "18446744073709551615"] {
        let o = bin()
            .env("BATCHSCOPE_AUTOTUNE_CACHE", &cache)
            .args(["tune", "--quiet", "--config", s(&tiny), "--batch-sizes", batch])
            .output()
            .expect("run");
        assert_clean_error(&o, &["tuning", batch, "max_buffer_size"]);
        assert!(!cache.exists(), "a refused tune wrote a cache");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A 40-row `.npy` dataset: features [40, 3] f32, labels [40] i64 in 0..3.
fn write_npy_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let x: Vec<u8> = (0..120).flat_map(|i| (((i * 37 % 11) as f32 - 5.0) / 5.0).to_le_bytes()).collect();
    let y: Vec<u8> = (0..40i64).flat_map(|i| (i % 3).to_le_bytes()).collect();
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    std::fs::write(&xp, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (40, 3), }", &x))
        .expect("x");
    std::fs::write(&yp, npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (40,), }", &y))
        .expect("y");
    (xp, yp)
}

fn npy_config(dir: &Path, x: &Path, y: &Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("npy.toml");
    let text = format!(
        "[model]\nhidden = [4]\n[data]\nkind = \"npy\"\ndim = 0\nfeatures = \"{}\"\nlabels = \"{}\"\n{extra}[train]\nbatch_size = 2\nsteps = 2\n",
        s(x),
        s(y)
    );
    std::fs::write(&cfg, text).expect("config");
    cfg
}

/// Messages say what they mean: an empty checkpoint path is named as such (it read "checkpoint
/// does not exist" with a double space), a huge policy argument is short (10^308 printed 309
/// digits), an `--out` in use names `--resume` only when it holds a train run, and an `.npy`
/// file's trailing bytes are warned about once (it was three times).
#[test]
fn messages_say_what_they_mean() {
    let d = tmpdir("messages");
    let tiny = tiny_at(&d, 16);
    let o = on_cpu("landscape", &tiny, &["--set", "landscape.start=\"\"", "--out", s(&d.join("l"))]);
    assert_clean_error(&o, &["the checkpoint path is empty"]);
    let o = on_cpu("sweep", &tiny, &["--policy", "time_to_target:1e308", "--out", s(&d.join("p"))]);
    assert_clean_error(&o, &["1e308 must be"]);
    assert!(stderr(&o).len() < 300, "{}", stderr(&o));
    let other = d.join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), "mine").expect("write");
    let o = train_cpu(&tiny, &["--out", s(&other)]);
    assert_clean_error(&o, &["already holds files"]);
    assert!(!stderr(&o).contains("--resume"), "{}", stderr(&o));
    let (_, run_dir) = finished_run(&d);
    let o = train_cpu(&tiny, &["--out", s(&run_dir)]);
    assert_clean_error(&o, &["it holds a train run", "train --resume"]);
    let (x, y) = write_npy_pair(&d);
    let mut bytes = std::fs::read(&x).expect("x");
    bytes.extend_from_slice(&[0; 12]);
    std::fs::write(&x, bytes).expect("x with trailing bytes");
    let cfg = npy_config(&d, &x, &y, "");
    let o = bin()
        .env("RUST_LOG", "warn")
        .args(["train", "--backend", "cpu", "--quiet", "--config", s(&cfg), "--out", s(&d.join("n"))])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("bytes after the array data are ignored").count(),
        1,
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `data.duplicates` of an `.npy` dataset counts against the host's memory and the u32 row
/// numbering; 10¹² repeats used to abort on an 8 TB allocation.
#[test]
fn npy_duplicates_past_the_host_or_the_row_numbering_are_config_errors() {
    let d = tmpdir("npy-duplicates");
    let (x, y) = write_npy_pair(&d);
    for (dup, needle) in [("1000000000000", "data.duplicates"), ("100000000", "")] {
        let cfg = npy_config(&d, &x, &y, &format!("duplicates = {dup}\n"));
        let out = d.join(format!("out-{dup}"));
        let o = train_cpu(&cfg, &["--out", s(&out)]);
        assert_clean_error(&o, &[needle]);
        assert!(!out.exists(), "duplicates = {dup}: a failed run left its directory");
    }
    // A modest repeat count still trains.
    let cfg = npy_config(&d, &x, &y, "duplicates = 3\n");
    let out = d.join("out-3");
    let o = train_cpu(&cfg, &["--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// `.npy` data needs neither `data.dim` nor, for regression, `data.outputs`: a config that
/// leaves them out takes D and K from the files (config.toml says what was used); a value
/// written that the files contradict is one error naming the key and the value to write.
#[test]
fn npy_dim_and_outputs_come_from_the_files_when_left_out() {
    let d = tmpdir("npy-infer");
    let (x, _) = write_npy_pair(&d);
    let t: Vec<u8> = (0..80).flat_map(|i| ((i % 7) as f32 / 7.0).to_le_bytes()).collect();
    let yp = d.join("t.npy");
    std::fs::write(&yp, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (40, 2), }", &t))
        .expect("t");
    let cfg = |extra: &str| {
        let c = d.join("mse.toml");
        let text = format!(
            "[model]\nhidden = [4]\nloss = \"mse\"\n[data]\nkind = \"npy\"\nfeatures = \"{}\"\nlabels = \"{}\"\n{extra}[train]\nbatch_size = 2\nsteps = 2\n",
            s(&x),
            s(&yp)
        );
        std::fs::write(&c, text).expect("config");
        c
    };
    let out = d.join("inferred");
    let o = train_cpu(&cfg(""), &["--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written = std::fs::read_to_string(out.join("config.toml")).expect("config.toml");
    assert!(written.contains("dim = 3") && written.contains("outputs = 2"), "{written}");
    // Nor does it name counts and shapes of data it never generated (it said n_train = 16384
    // and separation = 3.0 of 40 rows from files), and a resume reads it back as it was.
    for unread in ["n_train", "n_val", "separation", "noise_std", "teacher_hidden", "classes"] {
        assert!(!written.contains(&format!("\n{unread} = ")), "{unread} in {written}");
    }
    let o =
        run(&["train", "--resume", s(&out), "--backend", "cpu", "--quiet", "--set", "train.steps=3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (extra, needles) in [
        ("dim = 5\n", ["data.dim", "= 5", "holds 3 features"]),
        ("outputs = 3\n", ["data.outputs", "= 3", "holds 2 target columns"]),
    ] {
        let out = d.join("refused");
        let o = train_cpu(&cfg(extra), &["--out", s(&out)]);
        assert_clean_error(&o, &needles);
        assert!(!out.exists(), "{extra}: a refused run left its directory");
    }
    // Targets of no columns name the labels file (it read "memory model: layer sizes must be
    // positive, got [4, 8, 0]").
    let empty = d.join("t0.npy");
    std::fs::write(
        &empty,
        npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (40, 0), }", &[]),
    )
    .expect("t0");
    std::fs::write(
        d.join("mse0.toml"),
        std::fs::read_to_string(cfg("")).expect("config").replace(s(&yp), s(&empty)),
    )
    .expect("config");
    let out = d.join("no-targets");
    let o = train_cpu(&d.join("mse0.toml"), &["--out", s(&out)]);
    assert_clean_error(&o, &["data.labels", "t0.npy", "0 target columns"]);
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// A header dict that does not parse is one short line, not the parser's diagram (a nested
/// one used to print 87 KB); one nested 24 deep in a key of its own, 150 bytes, used to take
/// the parser over a minute (its time doubles with each level).
#[test]
fn a_malformed_npy_header_is_one_short_error_line() {
    let d = tmpdir("npy-header");
    let (_, y) = write_npy_pair(&d);
    let data = vec![0u8; 480];
    let deep = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}}}", "(".repeat(30_000));
    for (name, dict) in [
        ("typo", "{'descr': '<f4', 'fortran_order': Flase, 'shape': (40, 3), }".to_string()),
        ("deep", deep),
        (
            "nested",
            format!(
                "{{'descr': '<f4', 'fortran_order': False, 'shape': (40, 3), 'x': {}{}}}",
                "[".repeat(24),
                "]".repeat(24)
            ),
        ),
    ] {
        let x = d.join(format!("x-{name}.npy"));
        std::fs::write(&x, npy_bytes(&dict, &data)).expect("x");
        let cfg = npy_config(&d, &x, &y, "");
        let o = train_cpu(&cfg, &["--out", s(&d.join(name))]);
        assert_clean_error(&o, &["x-", "header"]);
        let err = stderr(&o);
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        assert!(line.len() < 600, "{name}: {} bytes: {line}", line.len());
        assert!(!err.contains("-->") && !err.contains("^---"), "{name}: a parser diagram: {err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `landscape.range`, `margin` and `rescale` are bounded (2 · range used to overflow f64 in the
/// plane's heatmap axes and panic in the plotting library); grid counts are odd; the model it
/// trains has a fixed batch size.
#[test]
fn landscape_coefficients_past_f32_are_config_errors() {
    let d = tmpdir("landscape-range");
    // A twin rescaled by up to 10^30 per unit filled the landscape's files with NaN.
    for set in [
        "landscape.range=1e308",
        "landscape.margin=1e300",
        "landscape.range=1e16",
        "landscape.rescale=1e30",
        // An even count has no α = 0: "loss at θ" was read at α = 1/3.
        "landscape.points=4",
        "landscape.grid=20",
        // `landscape` trains at one batch size: "auto" read "must be resolved by a sweep before
        // training (the CLI does this)" and left config.toml and an empty train/.
        "train.batch_size=\"auto\"",
    ] {
        let key = set.split('=').next().unwrap_or_default();
        let out = d.join(key);
        let o = run(&["landscape", "--backend", "cpu", "--quiet", "--set", set, "--out", s(&out)]);
        assert_clean_error(&o, &[key]);
        assert!(!out.exists(), "{set}: a failed run left its directory");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Errors found after the run directory was claimed (the batch size against the data, a
/// validation split that leaves no training rows) leave no directory holding only
/// `config.toml`; an `--out` directory that existed empty is kept, empty.
#[test]
fn a_run_that_fails_before_its_first_output_leaves_no_directory() {
    let d = tmpdir("stray-dir");
    let tiny = tiny_at(&d, 16);
    let fresh = d.join("fresh");
    let o = train_cpu(&tiny, &["--set", "train.batch_size=1000", "--out", s(&fresh)]);
    assert_clean_error(&o, &["batch"]);
    assert!(!fresh.exists(), "the failed run left {}", fresh.display());
    let given = d.join("given");
    std::fs::create_dir_all(&given).expect("mkdir");
    let o = train_cpu(&tiny, &["--set", "train.batch_size=1000", "--out", s(&given)]);
    assert_clean_error(&o, &["batch"]);
    assert!(given.is_dir(), "a directory the user made is kept");
    assert_eq!(std::fs::read_dir(&given).expect("dir").count(), 0, "and left empty");
    // The parents it made for `--out`, and the default `runs/` in the working directory, go too.
    let nested = d.join("made").join("for").join("it");
    let o = train_cpu(&tiny, &["--set", "train.batch_size=1000", "--out", s(&nested)]);
    assert_clean_error(&o, &["batch"]);
    assert!(!d.join("made").exists(), "the failed run left the parents it made for --out");
    let cwd = d.join("cwd");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let args = ["train", "--backend", "cpu", "--quiet", "--config", s(&tiny)];
    let o = bin().args(args).args(["--set", "train.batch_size=1000"]).current_dir(&cwd).output();
    assert_clean_error(&o.expect("run batchscope"), &["batch"]);
    assert_eq!(std::fs::read_dir(&cwd).expect("dir").count(), 0, "the failed run left runs/");
    let _ = std::fs::remove_dir_all(&d);
}

/// A checkpoint with layer tensors the model has no parameter for is refused by name
/// (`--init` used to load the layers it knew and ignore `layers.7.weight`).
#[test]
fn a_checkpoint_with_layers_the_model_lacks_is_refused_by_name() {
    let d = tmpdir("extra-layers");
    let (tiny, run_dir) = finished_run(&d);
    let ck = std::fs::read(run_dir.join("last.safetensors")).expect("checkpoint");
    let loaded = safetensors::SafeTensors::deserialize(&ck).expect("parse");
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        loaded.tensors().into_iter().filter(|(n, _)| n.starts_with("layers.")).collect();
    let extra_bytes = vec![0u8; 4 * 3];
    let extra =
        safetensors::tensor::TensorView::new(safetensors::tensor::Dtype::F32, vec![3], &extra_bytes)
            .expect("view");
    tensors.push(("layers.7.bias".to_string(), extra));
    let deeper = d.join("deeper.safetensors");
    std::fs::write(
        &deeper,
        safetensors::serialize(tensors, None::<std::collections::HashMap<String, String>>)
            .expect("serialize"),
    )
    .expect("write");
    let out = d.join("init");
    let o = train_cpu(&tiny, &["--init", s(&deeper), "--out", s(&out)]);
    assert_clean_error(&o, &["layers.7.bias"]);
    assert!(!out.exists());
    // Any other tensor a batchscope checkpoint (checksum and all) holds beside the model's and
    // their optimizer state is refused by name too, by every command that loads one (these were
    // ignored: only `layers.<i>.weight|bias` names were checked).
    let original = batchscope::checkpoint::load(&run_dir.join("last.safetensors")).expect("load");
    for name in [
        "zzz",
        "layers.0.extra",
        "layers.x.weight",
        "layers.18446744073709551616.weight",
        "optimizer.velocity.layers.9.weight",
        "optimizer..layers.0.weight",
    ] {
        let mut ck = original.clone();
        ck.push(name, vec![3], vec![0.0; 3]);
        let crafted = d.join("crafted.safetensors");
        batchscope::checkpoint::save(&crafted, &ck).expect("save");
        let out = d.join("crafted-init");
        assert_clean_error(&train_cpu(&tiny, &["--init", s(&crafted), "--out", s(&out)]), &[name]);
        assert!(!out.exists(), "{name}: a refused --init left its directory");
        let out = d.join("crafted-curvature");
        let args = ["curvature", "--backend", "cpu", "--quiet", "--config", s(&tiny)];
        let o = run(&[&args[..], &["--checkpoint", s(&crafted), "--out", s(&out)]].concat());
        assert_clean_error(&o, &[name]);
        assert!(!out.exists(), "{name}: a refused curvature left its directory");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `sweep.time_budget_s` bounds a batch size's own warm-up and timed steps: a step count
/// near u64::MAX with a one-second budget used to run until killed. Step counts are now at most
/// 10⁵ (with no budget nothing else would end them); the budget still stops a sweep at that
/// bound within its second. (A bound on termination, not a timing: the generous limit only
/// catches the hang.)
#[test]
fn the_sweep_budget_bounds_the_steps_of_a_batch_size() {
    let d = tmpdir("sweep-budget");
    let tiny = tiny_at(&d, 2);
    let mut child = bin()
        .args([
            "sweep",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            s(&tiny),
            "--set",
            "sweep.warmup_steps=100000",
            "--set",
            "sweep.timed_steps=100000",
            "--set",
            "sweep.time_budget_s=1",
            "--out",
            s(&d.join("sweep")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = status.expect("the budgeted sweep did not stop on its own");
    assert!(status.success(), "{status:?}");
    assert!(d.join("sweep").join("sweep.csv").is_file());
    let _ = std::fs::remove_dir_all(&d);
}

/// Inputs that are devices (a link to `/dev/zero`) are read up to a bound, then refused: a
/// config, an `--init` checkpoint, a run's files on resume, `overlay`'s metrics (each used to
/// be read until memory ran out).
#[cfg(unix)]
#[test]
fn device_files_as_inputs_are_bounded_reads_and_refused() {
    let d = tmpdir("dev-zero");
    let (tiny, run_dir) = finished_run(&d);
    let zero = d.join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    let o = train_cpu(&zero, &["--out", s(&d.join("a"))]);
    assert_clean_error(&o, &["zero.toml", "larger than"]);
    let o = train_cpu(&tiny, &["--init", "/dev/zero", "--out", s(&d.join("b"))]);
    assert_clean_error(&o, &["/dev/zero", "larger than"]);
    for file in ["config.toml", "metrics.jsonl", "last.safetensors"] {
        let copy = d.join(format!("resume-{file}"));
        std::fs::create_dir_all(&copy).expect("mkdir");
        for e in std::fs::read_dir(&run_dir).expect("run").flatten() {
            std::fs::copy(e.path(), copy.join(e.file_name())).expect("copy");
        }
        std::fs::remove_file(copy.join(file)).expect("rm");
        std::os::unix::fs::symlink("/dev/zero", copy.join(file)).expect("symlink");
        let o = run(&[
            "train",
            "--resume",
            s(&copy),
            "--backend",
            "cpu",
            "--quiet",
            "--set",
            "train.epochs=2",
        ]);
        assert_clean_error(&o, &[file, "larger than"]);
    }
    let o = run(&[
        "overlay",
        s(&d.join("resume-metrics.jsonl")),
        "--field",
        "val_error",
        "--out",
        s(&d.join("o.svg")),
    ]);
    assert_clean_error(&o, &["metrics.jsonl", "larger than"]);
    let _ = std::fs::remove_dir_all(&d);
}

/// A resume's `--set` may not change what the checkpoint holds (the optimizer: SGD drops the
/// velocities, and the next resume could not load the run; the precision; the model) or what
/// its steps are drawn from (the data, the batch size, the shuffle and its seed).
#[test]
fn a_resume_keeps_its_optimizer_and_precision() {
    let d = tmpdir("resume-optimizer");
    let (_, run_dir) = finished_run(&d);
    let before = snapshot(&run_dir);
    let resume = |set: &[&str]| {
        let mut a = vec!["train", "--resume", s(&run_dir), "--backend", "cpu", "--quiet"];
        a.extend_from_slice(set);
        run(&a)
    };
    // What the checkpoint holds, and what its steps were drawn from (these once resumed under a
    // config.toml that no longer described the run).
    for set in [
        "train.optimizer=\"sgd\"",
        "model.precision=\"f16\"",
        "model.hidden=[4]",
        "data.n_train=128",
        "data.separation=1.0",
        "train.batch_size=8",
        "train.seed=9",
        "train.shuffle=\"none\"",
    ] {
        let key = set.split('=').next().unwrap_or_default();
        let o = resume(&["--set", set, "--set", "train.epochs=2"]);
        assert_clean_error(&o, &[key, "resumed run keeps"]);
    }
    assert!(snapshot(&run_dir) == before, "the refused resumes changed the run");
    // How the run goes on may change, and config.toml then says so (a plain resume after an
    // interruption goes on the same way).
    let o = resume(&["--set", "train.epochs=2", "--set", "train.log_every=3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config = std::fs::read_to_string(run_dir.join("config.toml")).expect("config");
    assert!(config.contains("epochs = 2") && config.contains("log_every = 3"), "{config}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A `model.hidden` list past the layer limit is a config error of one short line (5 million
/// layers passed the memory check and were killed by the kernel's OOM killer; a refused deep
/// model's message printed every width).
#[test]
fn a_model_past_the_layer_limit_is_one_short_error() {
    let d = tmpdir("deep-model");
    let widths = vec!["8"; 100_001].join(",");
    let cfg = d.join("deep.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n",
            common::tiny_config(1, 16, 1).replace("hidden = [8]", &format!("hidden = [{widths}]"))
        ),
    )
    .expect("config");
    let o = train_cpu(&cfg, &["--out", s(&d.join("out"))]);
    assert_clean_error(&o, &["model.hidden", "100001 hidden layers"]);
    assert!(stderr(&o).len() < 1000, "{} bytes of stderr", stderr(&o).len());
    let _ = std::fs::remove_dir_all(&d);
}

/// `depth` builds its layers from `[depth]` and measures the f32 step of one worker: settings
/// it would ignore are errors, not silently dropped.
#[test]
fn depth_refuses_settings_it_would_ignore() {
    let d = tmpdir("depth-settings");
    for (flags, needle) in [
        (vec!["--precision", "f16"], "f32 step only"),
        (vec!["--set", "model.precision=\"f16\""], "f32 step of one worker"),
        (vec!["--set", "train.workers=2"], "f32 step of one worker"),
        (vec!["--set", "model.hidden=[4]"], "depth.layers = 0"),
    ] {
        let out = d.join("out");
        let mut a = vec!["depth", "--backend", "cpu", "--quiet", "--out", s(&out)];
        a.extend(flags.iter().copied());
        assert_clean_error(&run(&a), &[needle]);
        assert!(!out.exists());
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A loss scale whose reciprocal overflows (below 2^-126) is a config error, not a run that
/// reports divergence; a checkpoint whose scaler state was edited (a zero, negative or
/// subnormal scale, counts that are negative, fractional or past 2^24) is refused by key name,
/// not resumed under a misleading "written before it was saved" notice; the run is untouched.
#[test]
fn loss_scales_out_of_range_are_refused_by_key() {
    let d = tmpdir("loss-scale-range");
    let tiny = tiny_at(&d, 16);
    let f16 = "model.precision=\"f16\"";
    for (scale, rule) in [
        ("1e-39", "2^-126"),
        ("0", "2^-126"),
        ("-2", "2^-126"),
        ("1e39", "past the largest value an f32"),
    ] {
        let o = train_cpu(&tiny, &["--set", f16, "--set", &format!("train.loss_scale={scale}")]);
        assert_clean_error(&o, &["train.loss_scale", rule]);
    }
    let run_dir = d.join("run");
    let o = train_cpu(&tiny, &["--set", f16, "--out", s(&run_dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let last = run_dir.join("last.safetensors");
    let original = batchscope::checkpoint::load(&last).expect("checkpoint");
    for key in ["amp.loss_scale", "amp.clean_steps", "amp.skipped_steps"] {
        assert!(original.metadata.contains_key(key), "an f16 checkpoint saves {key}");
    }
    let resume = || resume_cpu(&run_dir, "train.epochs=2");
    let cases = [
        ("amp.loss_scale", "0"),
        ("amp.loss_scale", "-1"),
        ("amp.loss_scale", "1e-45"),
        ("amp.loss_scale", "inf"),
        ("amp.loss_scale", "many"),
        ("amp.clean_steps", "-3"),
        ("amp.clean_steps", "2.5"),
        ("amp.skipped_steps", "1e30"),
        ("amp.skipped_steps", "NaN"),
        // 2^24 + 1: rounds to 2^24 in f32, so it is checked before it is rounded.
        ("amp.clean_steps", "16777217"),
        ("amp.skipped_steps", "1.6777217e7"),
    ];
    for (key, value) in cases {
        refused_with(&run_dir, &original, (key, value), &resume, &[key, "last.safetensors"]);
    }
    // One key of three removed: not a checkpoint from before the state was saved.
    let mut ck = original.clone();
    ck.metadata.remove("amp.clean_steps");
    batchscope::checkpoint::save(&last, &ck).expect("checkpoint");
    assert_clean_error(&resume(), &["amp.clean_steps", "missing"]);
    restored_resumes(&run_dir, &original, &resume);
    let _ = std::fs::remove_dir_all(&d);
}

/// Progress counters of a crafted checkpoint that no run reaches are refused by name before
/// anything is written (a count near u64::MAX used to wrap in the resumed run's summary, a
/// minibatch past the epoch's last was taken, and a malformed rank count was read as 1).
#[test]
fn resumed_counters_no_run_reaches_are_refused() {
    let d = tmpdir("counters");
    let (_, run_dir) = finished_run(&d);
    let last = run_dir.join("last.safetensors");
    let original = batchscope::checkpoint::load(&last).expect("checkpoint");
    let resume = || resume_cpu(&run_dir, "train.epochs=3");
    for key in ["best_val_error", "best_step"] {
        assert!(original.metadata.contains_key(key), "the tiny run evaluated: {key} recorded");
    }
    let huge = (u64::MAX - 1).to_string();
    for (key, value, want) in [
        ("examples_seen", huge.as_str(), "past 2^53"),
        ("step", huge.as_str(), "past 2^53"),
        ("epoch", "9007199254740993", "past 2^53"),
        ("step_in_epoch", "1000", "an epoch has 8 steps"),
        // One past the last minibatch: a checkpoint at an epoch's end holds the next epoch's 0.
        ("step_in_epoch", "8", "an epoch has 8 steps"),
        ("evals_since_best", huge.as_str(), "past 2^53"),
        ("clip_events", huge.as_str(), "past 2^53"),
        ("mpi_ranks", "abc", "malformed"),
        // The best and the clock: a crafted -1 or NaN best used to be kept (no evaluation beat
        // it, best.safetensors stayed at its step), a malformed one dropped silently.
        ("best_val_error", "-1", "no 0-1 error"),
        ("best_val_error", "NaN", "no 0-1 error"),
        ("best_val_error", "2", "no 0-1 error"),
        ("best_val_error", "abc", "malformed"),
        ("best_step", "abc", "malformed"),
        ("best_step", "1000", "past `step`"),
        ("elapsed_s", "NaN", "no duration"),
        ("elapsed_s", "-1", "no duration"),
    ] {
        refused_with(&run_dir, &original, (key, value), &resume, &[key, want, "last.safetensors"]);
    }
    restored_resumes(&run_dir, &original, &resume);
    let _ = std::fs::remove_dir_all(&d);
}

/// A regression records its best validation loss (`best_val_loss`): a crafted negative or
/// non-finite one is refused by name, like a 0-1 error past [0, 1].
#[test]
fn a_regressions_recorded_best_loss_is_checked_at_resume() {
    let d = tmpdir("best-loss");
    let cfg = d.join("mse.toml");
    let text = "[model]\nhidden = [8]\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\nn_train = 256\nn_val = 64\ndim = 4\n[train]\nbatch_size = 32\nepochs = 1\nlog_every = 2\npatience = 3\n";
    std::fs::write(&cfg, text).expect("config");
    let run_dir = d.join("run");
    let o = train_cpu(&cfg, &["--out", s(&run_dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let last = run_dir.join("last.safetensors");
    let original = batchscope::checkpoint::load(&last).expect("checkpoint");
    assert!(original.metadata.contains_key("best_val_loss"), "{:?}", original.metadata.keys());
    let resume = || resume_cpu(&run_dir, "train.epochs=3");
    for value in ["-1", "NaN", "inf"] {
        let want = ["best_val_loss", "no squared-error loss", "last.safetensors"];
        refused_with(&run_dir, &original, ("best_val_loss", value), &resume, &want);
    }
    restored_resumes(&run_dir, &original, &resume);
    let _ = std::fs::remove_dir_all(&d);
}

/// A resume refuses a new `train.loss_scale`: the checkpoint's scaler state goes on (the value
/// was written to config.toml and ignored), and the run is left as it was.
#[test]
fn a_resume_refuses_a_new_starting_loss_scale() {
    let d = tmpdir("resume-loss-scale");
    let (_, run_dir) = finished_run(&d);
    let before = snapshot(&run_dir);
    assert_clean_error(&resume_cpu(&run_dir, "train.loss_scale=8"), &["train.loss_scale", "--resume"]);
    assert!(snapshot(&run_dir) == before, "the refused resume changed the run");
    let _ = std::fs::remove_dir_all(&d);
}

/// metrics.jsonl on resume: a last line cut short (a kill mid-write) is dropped with a warning;
/// a line inside that is no record is refused by number, the run left as it was (it was dropped
/// like a cut last line, and the resumed file silently lacked that step).
#[test]
fn a_resume_drops_only_a_cut_last_metrics_line() {
    let d = tmpdir("metrics-lines");
    let (_, run_dir) = finished_run(&d);
    let metrics = run_dir.join("metrics.jsonl");
    let original = std::fs::read_to_string(&metrics).expect("metrics.jsonl");
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 3, "{original}");
    let mut inside = lines.clone();
    inside[1] = &lines[1][..lines[1].len() / 2];
    std::fs::write(&metrics, inside.join("\n") + "\n").expect("write");
    let before = snapshot(&run_dir);
    assert_clean_error(
        &resume_cpu(&run_dir, "train.epochs=2"),
        &["metrics.jsonl", "line 2", "no metrics record"],
    );
    assert!(snapshot(&run_dir) == before, "the refused resume changed the run");
    // The same cut on the last line: a kill's, dropped.
    let cut = format!("{}\n{}", original.trim_end(), &lines[1][..lines[1].len() / 2]);
    std::fs::write(&metrics, cut).expect("write");
    let o = resume_cpu(&run_dir, "train.epochs=2");
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// A resume refused for its metrics file (gone, a directory) leaves the run as it was: the
/// `--set` that would have continued it reaches config.toml only once the run can go on.
#[test]
fn a_resume_refused_for_its_metrics_leaves_config_toml_as_it_was() {
    let d = tmpdir("resume-metrics");
    let (_, run_dir) = finished_run(&d);
    let metrics = run_dir.join("metrics.jsonl");
    std::fs::remove_file(&metrics).expect("remove metrics.jsonl");
    let before = snapshot(&run_dir);
    assert_clean_error(&resume_cpu(&run_dir, "train.epochs=3"), &["metrics.jsonl", "to resume"]);
    assert!(snapshot(&run_dir) == before, "the refused resume rewrote the run directory");
    std::fs::create_dir(&metrics).expect("metrics.jsonl as a directory");
    let before = snapshot(&run_dir);
    assert_clean_error(&resume_cpu(&run_dir, "train.epochs=3"), &["metrics.jsonl"]);
    assert!(snapshot(&run_dir) == before, "the refused resume rewrote the run directory");
    let _ = std::fs::remove_dir_all(&d);
}

/// A resume that diverges before it saves a checkpoint leaves the run's checkpoints,
/// config.toml and summary.json as it found them. Its `--set` used to reach config.toml at
/// once, so that a plain resume diverged again, and the finished run's summary.json was
/// replaced by the failed continuation's. (A rate of 50 trains its first epoch, 8 steps, and
/// diverges at step 12 of a longer run; a resume may not change the rate.)
#[test]
fn a_resume_that_diverges_before_its_first_checkpoint_leaves_the_run_as_it_was() {
    let d = tmpdir("resume-diverges");
    let tiny = tiny_at(&d, 16);
    let run_dir = d.join("run");
    let o = train_cpu(&tiny, &["--set", "train.lr=50", "--out", s(&run_dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let kept = ["config.toml", "summary.json", "last.safetensors", "best.safetensors"];
    let read = |f: &str| std::fs::read(run_dir.join(f)).expect("a file of the finished run");
    let before: Vec<Vec<u8>> = kept.iter().map(|f| read(f)).collect();
    let o = resume_cpu(&run_dir, "train.epochs=3");
    assert_clean_error(&o, &["diverged at step 12", "last.safetensors", "left as they were"]);
    for (f, was) in kept.iter().zip(&before) {
        assert!(read(f) == *was, "the diverged resume rewrote {f}");
    }
    // config.toml still describes the run that finished (1 epoch, 8 steps).
    let config = String::from_utf8(read("config.toml")).expect("utf-8");
    assert!(config.contains("epochs = 1") && config.contains("lr = 50"), "{config}");
    let summary: serde_json::Value =
        serde_json::from_slice(&read("summary.json")).expect("summary.json");
    assert_eq!(summary["steps"], 8, "{summary}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A sweep does not time, nor pick, a batch larger than the training set (no run can train at
/// it): the range stops at `data.n_train` with a notice, and a range wholly past it is refused.
#[test]
fn the_sweep_stops_at_the_training_set() {
    let d = tmpdir("sweep-n-train");
    let tiny = tiny_at(&d, 16);
    let out = d.join("s");
    let range = ["--min-batch", "64", "--max-batch", "9223372036854775807", "--out", s(&out)];
    let o = on_cpu("sweep", &tiny, &range);
    assert!(o.status.success(), "{}", stderr(&o));
    let notice = "past the training set (data.n_train = 256) are not timed";
    assert!(stderr(&o).contains(notice), "{}", stderr(&o));
    let (_, rows) = common::read_csv(&out.join("sweep.csv"));
    let batches: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(batches, ["64", "128", "256"]);
    // `train.batch_size = "auto"` sweeps the same way: it used to pick B = 4096 by throughput
    // and then refuse to train at it.
    let auto = d.join("auto");
    let o = train_cpu(
        &tiny,
        &[
            "--set",
            "train.batch_size=\"auto\"",
            "--set",
            "sweep.max_batch=4096",
            "--set",
            "sweep.policy=\"max_throughput\"",
            "--out",
            s(&auto),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("(B ≤ data.n_train = 256)"), "{}", stderr(&o));
    let summary = std::fs::read_to_string(auto.join("summary.json")).expect("summary.json");
    let v: serde_json::Value = serde_json::from_str(&summary).expect("json");
    let b = v["batch_size"].as_u64().expect("batch_size");
    assert!(b <= 256 && b.is_power_of_two(), "auto chose {b}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The sweep divides by a configured `sweep.peak_gflops` (it measured its own probe and
/// ignored the key); a peak that is no device's (a denormal, 1e308) is refused by key.
#[test]
fn the_sweep_takes_a_configured_peak_and_refuses_absurd_ones() {
    let d = tmpdir("sweep-peak");
    let tiny = tiny_at(&d, 4);
    let sweep = |peak: &str, out: &str| {
        let set = format!("sweep.peak_gflops={peak}");
        let out = d.join(out);
        run(&[
            "sweep",
            "--backend",
            "cpu",
            "--quiet",
            "--config",
            s(&tiny),
            "--set",
            &set,
            "--out",
            s(&out),
        ])
    };
    let o = sweep("1000", "a");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout.contains("peak 1000.0 GFLOP/s (sweep.peak_gflops)"), "{stdout}");
    for bad in ["5e-324", "1e308"] {
        assert_clean_error(&sweep(bad, "b"), &["sweep.peak_gflops", "[1e-3, 1e9]"]);
    }
    assert!(!d.join("b").exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// `--precision f16` on a command that measures the f32 loss only is refused, not ignored (the
/// results would have been f32 figures labelled as asked).
#[test]
fn f32_only_commands_refuse_f16() {
    for cmd in ["curvature", "noise", "landscape", "depth"] {
        let o = run(&[cmd, "--backend", "cpu", "--quiet", "--precision", "f16"]);
        assert_clean_error(&o, &["--precision f16", cmd, "f32"]);
    }
}

/// `time-to-target` times and trains only batch sizes the training set can fill: a sweep past
/// `data.n_train` is cut there (it used to time sizes it would never train), and a sweep that
/// starts past it is one error line before any work.
#[test]
fn time_to_target_stops_at_the_training_set() {
    let d = tmpdir("ttt-n-train");
    let tiny = tiny_at(&d, 16);
    let ttt = |set: &[&str], out: &Path| {
        let mut a = vec!["time-to-target", "--backend", "cpu", "--quiet", "--config", s(&tiny)];
        for kv in ["train.target_val_error=0.5", "data.n_train=64"].iter().chain(set) {
            a.extend_from_slice(&["--set", kv]);
        }
        a.extend_from_slice(&["--out", s(out)]);
        run(&a)
    };
    let refused = d.join("refused");
    let o = ttt(&["sweep.min_batch=128", "sweep.max_batch=256"], &refused);
    assert_clean_error(&o, &["sweep.min_batch", "data.n_train = 64"]);
    assert!(!refused.exists(), "a refused run left its directory");
    let cut = d.join("cut");
    let o = ttt(&["sweep.min_batch=32", "sweep.max_batch=1024"], &cut);
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = common::read_csv(&cut.join("time_to_target.csv"));
    let col = header.iter().position(|h| h == "batch").expect("batch column");
    let batches: Vec<&str> = rows.iter().map(|r| r[col].as_str()).collect();
    assert_eq!(batches, ["32", "64"], "only sizes ≤ n_train are timed and trained");
    // Each is a train run directory, config.toml and all (`train --resume` found none).
    assert!(cut.join("B00032/config.toml").exists() && cut.join("B00064/config.toml").exists());
    // What the command sets itself is said (the tiny config names a batch size; it used to be
    // dropped silently, and so were a learning rate and a policy).
    let err = stderr(&o);
    assert!(err.contains("notice: train.batch_size is not used: it trains every power of two"), "{err}");
    assert!(!err.contains("notice: train.lr"), "{err}");
    let noted = d.join("noted");
    let o = ttt(&["sweep.min_batch=16", "train.lr=0.3", "sweep.policy=\"max_throughput\""], &noted);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("notice: train.lr is not used: each run's learning rate is ε_opt(B)"), "{err}");
    assert!(err.contains("notice: sweep.policy is not used"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `profile` keeps `sweep.time_budget_s` as a sweep does: 10⁵ timed steps (the most) under a budget
/// of a millisecond take one timed step per batch size (it once ran them all).
#[test]
fn the_profile_keeps_the_sweep_time_budget() {
    let d = tmpdir("profile-budget");
    let tiny = tiny_at(&d, 16);
    let out = d.join("p");
    let o = run(&[
        "profile",
        "--backend",
        "cpu",
        "--quiet",
        "--config",
        s(&tiny),
        "--batch",
        "1",
        "--batch",
        "8",
        "--set",
        "sweep.timed_steps=100000",
        "--set",
        "sweep.warmup_steps=100000",
        "--set",
        "sweep.time_budget_s=0.001",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary"))
            .expect("json");
    let steps: Vec<u64> = summary["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|p| p["steps"].as_u64().expect("steps"))
        .collect();
    assert_eq!(steps, [1, 1], "one timed step per batch size past the budget");
    let _ = std::fs::remove_dir_all(&d);
}

/// A `file:` direction or `landscape.start` that does not load is one error line, naming the
/// file once, before the config's model is trained (it came after the training, its cause
/// repeated).
#[test]
fn a_landscape_direction_file_is_checked_before_training() {
    let d = tmpdir("landscape-file");
    let missing = d.join("missing.safetensors");
    let garbage = d.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").expect("garbage");
    let dirs = |p: &Path| format!("landscape.line_directions=[\"gradient\", \"file:{}\"]", s(p));
    let start = |p: &Path| format!("landscape.start=\"{}\"", s(p));
    for (i, set) in [dirs(&missing), dirs(&garbage), start(&missing)].into_iter().enumerate() {
        let out = d.join(format!("out{i}"));
        let o = run(&["landscape", "--backend", "cpu", "--quiet", "--set", &set, "--out", s(&out)]);
        let name = if set.contains("garbage") { "garbage.safetensors" } else { "missing.safetensors" };
        assert_clean_error(&o, &[name]);
        let err = stderr(&o);
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        assert_eq!(line.matches(name).count(), 1, "the cause is said once: {line}");
        assert!(!err.contains("trained"), "it trained first: {err}");
        assert!(!out.exists(), "a refused run left its directory");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `RAYON_NUM_THREADS` of a million (or past 32 per core) is one error line at once; the run
/// used to spawn the threads and stall for good. Values within the bound still run.
#[test]
fn a_thread_count_that_would_stall_is_refused() {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let d = tmpdir("rayon-threads");
    let tiny = tiny_at(&d, 16);
    for n in [1_000_000, 32 * cores + 1] {
        let o = bin()
            .env("RAYON_NUM_THREADS", n.to_string())
            .args(["train", "--backend", "cpu", "--quiet", "--config", s(&tiny)])
            .args(["--out", s(&d.join("refused"))])
            .output()
            .expect("run");
        assert_clean_error(&o, &["RAYON_NUM_THREADS", &n.to_string(), "at most"]);
        assert!(!d.join("refused").exists());
    }
    let o = bin()
        .env("RAYON_NUM_THREADS", "3")
        .args(["train", "--backend", "cpu", "--quiet", "--config", s(&tiny), "--out", s(&d.join("ok"))])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// `train.batch_size = "auto"` sweeps only the batch sizes the run can use: with the noise
/// monitor on, B > `monitor.noise_small_batch` (it used to pick any B and drop the monitor's
/// readings silently); with workers and accumulation, a multiple of their product. A range that
/// holds none, or a product no power of two divides, is one error line before anything trains.
#[test]
fn an_automatic_batch_size_is_one_the_monitors_and_workers_can_use() {
    let d = tmpdir("auto-batch");
    let tiny = tiny_at(&d, 16);
    let auto = "train.batch_size=\"auto\"";
    let run_dir = d.join("noise");
    let o = train_cpu(
        &tiny,
        &[
            "--set",
            auto,
            "--set",
            "monitor.noise_every=1",
            "--set",
            "monitor.noise_small_batch=3",
            "--out",
            s(&run_dir),
        ],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("sweeping 4..16 (B ≥ 4: monitor.noise_small_batch + 1)"), "{err}");
    let cfg = batchscope::config::Config::load(Some(&run_dir.join("config.toml")), &[]).expect("config");
    let batchscope::config::BatchSize::Fixed(b) = cfg.train.batch_size else { panic!("resolved") };
    assert!(b >= 4, "chose B = {b}");
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).expect("metrics");
    let lines: Vec<serde_json::Value> =
        metrics.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l["noise_trace"].is_number(), "every step has a noise reading: {l}");
    }
    for (sets, needles) in [
        (
            vec![auto, "monitor.noise_every=1", "monitor.noise_small_batch=31"],
            vec!["B ≥ 32", "monitor.noise_small_batch", "sweep.max_batch = 16"],
        ),
        (vec![auto, "train.workers=3"], vec!["train.workers × train.accumulate = 3"]),
        (vec![auto, "train.workers=8", "train.accumulate=4"], vec!["B ≥ 32", "train.workers"]),
    ] {
        let out = d.join("refused");
        let mut a = vec!["--out", s(&out)];
        for set in &sets {
            a.extend(["--set", set]);
        }
        assert_clean_error(&train_cpu(&tiny, &a), &needles);
        assert!(!out.exists(), "{sets:?}: a refused run left its directory");
    }
    // Workers × accumulation raise the sweep's start the same way.
    let out = d.join("workers");
    let o = train_cpu(
        &tiny,
        &["--set", auto, "--set", "train.workers=2", "--set", "train.accumulate=2", "--out", s(&out)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("(B ≥ 4: train.workers × train.accumulate)"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// Early stopping and a target error read the validation error: an `.npy` split that holds no
/// validation rows (`data.val_fraction = 0`) is refused naming the setting, not a run that never
/// stops early.
#[test]
fn settings_that_read_the_validation_error_need_validation_rows() {
    let d = tmpdir("no-validation");
    let (x, y) = write_npy_pair(&d);
    let cfg = npy_config(&d, &x, &y, "val_fraction = 0.0\n");
    for (set, key) in [
        ("train.patience=2", "train.patience"),
        ("train.target_val_error=0.2", "train.target_val_error"),
        // Evaluations of the validation set alone (val_loss null on every line, exit 0).
        ("train.eval_every=4", "train.eval_every"),
    ] {
        let out = d.join("out");
        let o = train_cpu(&cfg, &["--set", set, "--out", s(&out)]);
        assert_clean_error(&o, &[key, "data.val_fraction = 0"]);
        assert!(!out.exists(), "{set}: a refused run left its directory");
    }
    // Without them, training on every row is fine, and so are evaluations of the training set.
    let o = train_cpu(&cfg, &["--out", s(&d.join("ok"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let both = ["--set", "train.eval_every=1", "--set", "train.eval_train=true"];
    let o = train_cpu(&cfg, &[&both[..], &["--out", s(&d.join("ok2"))]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    // ... and they happen: every step logs the training set's loss and 0-1 error (a run
    // without validation rows used to log nulls there).
    let metrics = std::fs::read_to_string(d.join("ok2/metrics.jsonl")).expect("metrics");
    let evals: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .collect();
    assert!(!evals.is_empty(), "{metrics}");
    for v in &evals {
        assert!(v["train_full_loss"].as_f64().is_some_and(f64::is_finite), "{v}");
        assert!(v["train_full_error"].as_f64().is_some_and(|e| (0.0..=1.0).contains(&e)), "{v}");
        assert!(v["val_loss"].is_null(), "{v}");
    }
    // rnn: sequence.n_val = 0 with evaluations (its default every 100 steps) says how to stop them.
    let rnn = d.join("rnn.toml");
    std::fs::write(&rnn, "[rnn]\nhidden = 4\n[sequence]\nlength = 4\nn_train = 64\nn_val = 0\n[train]\nbatch_size = 8\nsteps = 4\n")
        .expect("rnn config");
    let o = run(&["rnn", "--backend", "cpu", "--quiet", "--config", s(&rnn), "--out", s(&d.join("r"))]);
    assert_clean_error(&o, &["train.eval_every", "sequence.n_val = 0", "train.eval_every = 0"]);
    let o =
        run(&["rnn", "--backend", "cpu", "--quiet", "--config", s(&rnn), "--set", "train.eval_every=0"]
            .iter()
            .copied()
            .chain(["--out", s(&d.join("r2"))])
            .collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// A resume keeps the model, data, batch size, optimizer, shuffle, seed and update rule of its
/// checkpoint, whatever the run's config.toml (a text file) says now: each hand edit below used to resume
/// and train on other data, another optimizer (SGD dropped the velocities) or batch size. The
/// checkpoint's own copy of the config, under its checksum, is the reference. The run directory
/// is left byte for byte; an edit of a key a resume may change still resumes.
#[test]
fn a_hand_edited_config_toml_cannot_change_what_a_resume_keeps() {
    let d = tmpdir("edited-config");
    let (run_dir, cfg_path, original) = finished_run_config(&d);
    for (from, to, key) in [
        ("optimizer = \"momentum\"", "optimizer = \"sgd\"", "train.optimizer"),
        ("shuffle = \"epoch\"", "shuffle = \"none\"", "train.shuffle"),
        ("batch_size = 32", "batch_size = 16", "train.batch_size"),
        ("n_train = 256", "n_train = 512", "data.n_train"),
        // The update rule too: a resume at another rate rewrote config.toml as if the whole run
        // had used it (and the file no longer reproduced the run).
        ("lr = 0.05", "lr = 0.02", "train.lr"),
    ] {
        assert!(original.contains(from), "{from} in {original}");
        std::fs::write(&cfg_path, original.replacen(from, to, 1)).expect("edit");
        let before = snapshot(&run_dir);
        let o = resume_cpu(&run_dir, "train.steps=20");
        assert_clean_error(&o, &[key, "its checkpoint"]);
        assert_eq!(snapshot(&run_dir), before, "{key}: a refused resume changed the run");
    }
    // How often it logs may change on a resume, by --set or in config.toml; the rate may not.
    let o = resume_cpu(&run_dir, "train.lr=0.02");
    assert_clean_error(&o, &["train.lr", "update rule"]);
    std::fs::write(&cfg_path, original.replacen("log_every = 2", "log_every = 4", 1)).expect("edit");
    assert!(original.contains("log_every = 2"), "{original}");
    let o = resume_cpu(&run_dir, "train.steps=20");
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// `--resume` of a directory that is not a run is refused before anything in it changes: the
/// tidy-up of a killed writer's temporary files used to run first and delete a file that
/// merely looked like one.
#[test]
fn a_refused_resume_leaves_the_directory_as_it_was() {
    let d = tmpdir("not-a-run");
    let dir = d.join("notes");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(".thesis.tmp-999999-2-3"), b"draft").expect("file");
    std::fs::write(dir.join("config.toml"), b"[train]\nsteps = 2\n").expect("file");
    let before = snapshot(&dir);
    let o = run(&["train", "--resume", s(&dir), "--backend", "cpu", "--quiet"]);
    assert_clean_error(&o, &["last.safetensors"]);
    assert_eq!(snapshot(&dir), before, "a refused resume changed the directory");
    let _ = std::fs::remove_dir_all(&d);
}

/// `.npy` data is used as the files hold it: `data.label_noise` (which corrupts synthetic
/// labels) is refused rather than ignored, and integer class labels under `model.loss = "mse"`
/// say so (they were taken as one class: "label 1 is out of range for 1 classes").
#[test]
fn npy_settings_that_cannot_apply_are_refused_by_key() {
    let d = tmpdir("npy-settings");
    let (x, y) = write_npy_pair(&d);
    let noisy = npy_config(&d, &x, &y, "label_noise = 0.1\n");
    assert_clean_error(&train_cpu(&noisy, &["--out", s(&d.join("a"))]), &["data.label_noise"]);
    let plain = npy_config(&d, &x, &y, "");
    let o = train_cpu(&plain, &["--set", "model.loss=\"mse\"", "--out", s(&d.join("b"))]);
    assert_clean_error(&o, &["data.labels", "integer class labels", "mse"]);
    // One class, inferred or given, classifies nothing (every loss 0, exit 0, used to be the
    // result); a negative label says so instead of naming 4294967295 classes.
    let labels = |name: &str, values: &[i64]| {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let dict = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}", values.len());
        let p = d.join(name);
        std::fs::write(&p, npy_bytes(&dict, &bytes)).expect("labels");
        p
    };
    let zeros = npy_config(&d, &x, &labels("zeros.npy", &[0; 40]), "");
    let o = train_cpu(&zeros, &["--out", s(&d.join("c"))]);
    assert_clean_error(&o, &["data.labels", "only label 0", "at least 2 classes"]);
    let o = train_cpu(&plain, &["--set", "data.classes=1", "--out", s(&d.join("e"))]);
    assert_clean_error(&o, &["data.classes", "≥ 2", "got 1"]);
    let mut with_negative = [1i64; 40];
    with_negative[7] = -1;
    let negative = npy_config(&d, &x, &labels("negative.npy", &with_negative), "");
    let o = train_cpu(&negative, &["--out", s(&d.join("f"))]);
    assert_clean_error(&o, &["label -1 at index 7 is negative"]);
    for out in ["a", "b", "c", "e", "f"] {
        assert!(!d.join(out).exists(), "{out}: a refused run left its directory");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// What a resume still allows: a run whose config an older batchscope accepted but that a rule
/// added since refuses for new runs (here `data.val_fraction` on synthetic data, ignored there)
/// resumes with a warning naming the key; and `.npy` files that moved (config.toml pointed at
/// the new place) resume, since their paths are not what the checkpoint was made with.
#[test]
fn resumes_of_older_runs_and_moved_data_go_on() {
    let d = tmpdir("lenient-resume");
    // An "older" run: val_fraction set on synthetic data, in config.toml and in the checkpoint.
    let (run_dir, cfg_path, text) = finished_run_config(&d);
    // (config.toml leaves val_fraction out on synthetic data, which does not read it.)
    assert!(!text.contains("val_fraction"), "{text}");
    let older = text.replacen("[data]\n", "[data]\nval_fraction = 0.3\n", 1);
    assert_ne!(older, text, "config.toml has a [data] section");
    std::fs::write(&cfg_path, &older).expect("edit");
    let last = run_dir.join("last.safetensors");
    let mut ck = batchscope::checkpoint::load(&last).expect("checkpoint");
    let recorded = ck.metadata["config"].replacen("[data]\n", "[data]\nval_fraction = 0.3\n", 1);
    ck.metadata.insert("config".into(), recorded);
    batchscope::checkpoint::save(&last, &ck).expect("checkpoint");
    let o = bin()
        .env("RUST_LOG", "warn")
        .args([
            "train",
            "--resume",
            s(&run_dir),
            "--backend",
            "cpu",
            "--quiet",
            "--set",
            "train.steps=20",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("data.val_fraction"), "a warning names the key: {}", stderr(&o));
    // Moved .npy files: config.toml names their new place.
    let (x, y) = write_npy_pair(&d);
    let cfg = npy_config(&d, &x, &y, "");
    let npy_run = d.join("npy-run");
    let o = train_cpu(&cfg, &["--out", s(&npy_run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let moved = d.join("moved");
    std::fs::create_dir_all(&moved).expect("dir");
    for f in [&x, &y] {
        std::fs::rename(f, moved.join(f.file_name().expect("name"))).expect("move");
    }
    let cfg_path = npy_run.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).expect("config.toml");
    std::fs::write(
        &cfg_path,
        text.replace(s(&d.join("x.npy")), s(&moved.join("x.npy")))
            .replace(s(&d.join("y.npy")), s(&moved.join("y.npy"))),
    )
    .expect("edit");
    let o = resume_cpu(&npy_run, "train.steps=4");
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// `curvature --examples N` on streamed data is checked against the host's memory before the
/// examples are generated (only the config's resident rows were: 10⁹ examples grew past 16 GB,
/// and under `ulimit -v` aborted on a failed allocation); the refusal names the flag and leaves
/// no directory.
#[test]
fn curvature_examples_past_the_host_are_refused_before_generating() {
    let d = tmpdir("curvature-examples");
    let tiny = tiny_at(&d, 16);
    let out = d.join("out");
    let streamed = ["--set", "data.mode=\"stream\"", "--set", "data.n_train=1000000000000"];
    let extra = [&streamed[..], &["--examples", "100000000000", "--out", s(&out)]].concat();
    let o = on_cpu("curvature", &tiny, &extra);
    assert_clean_error(&o, &["100000000000 examples", "host memory", "--examples"]);
    assert!(!out.exists(), "a refused analysis left its directory");
    let _ = std::fs::remove_dir_all(&d);
}

/// `noise` fits its slope over two sizes or more: `--max-n 1` is
/// refused where its summary said `slope NaN`.
#[test]
fn noise_needs_two_minibatch_sizes() {
    let d = tmpdir("noise-max-n");
    let tiny = tiny_at(&d, 16);
    let out = d.join("out");
    let o = on_cpu("noise", &tiny, &["--out", s(&out), "--max-n", "1"]);
    assert_clean_error(&o, &["--max-n", "at least 2"]);
    assert!(!out.exists());
    let o = on_cpu("noise", &tiny, &["--out", s(&out), "--max-n", "2", "--draws", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// `overlay` of a run killed while it wrote a record: its last line is cut short (no newline).
/// The records before it are plotted and the line is named in a warning; blank lines are
/// passed over; a malformed line anywhere else stays one error naming its line.
#[test]
fn overlay_plots_a_killed_runs_records_before_its_cut_line() {
    let d = tmpdir("overlay-cut");
    let run_dir = d.join("killed");
    std::fs::create_dir_all(&run_dir).expect("mkdir");
    let record =
        |step: u64| format!("{{\"step\":{step},\"examples_seen\":{},\"val_error\":0.5}}\n", step * 64);
    let whole = format!("{}\n{}", record(1), record(2));
    let metrics = run_dir.join("metrics.jsonl");
    std::fs::write(&metrics, format!("{whole}{{\"step\":3,\"exam")).expect("metrics");
    let svg = d.join("cut.svg");
    let o = bin().env("RUST_LOG", "warn").args(["overlay", s(&run_dir), "--out", s(&svg)]).output();
    let o = o.expect("run batchscope");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("metrics.jsonl:4") && stderr(&o).contains("cut short"),
        "{}",
        stderr(&o)
    );
    assert!(svg.is_file());
    // The same line inside the file (followed by a newline and more records) is no cut.
    std::fs::write(&metrics, format!("{whole}{{\"step\":3,\"exam\n{}", record(4))).expect("metrics");
    let o = run(&["overlay", s(&run_dir), "--out", s(&d.join("mid.svg"))]);
    assert_clean_error(&o, &["metrics.jsonl:4", "not JSON"]);
    assert!(!d.join("mid.svg").exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// An out-of-range value is blamed on where it came from: the config file names the file,
/// `--set` or a flag that sets the key (`--workers`) names the command line; it used to name
/// the file for both, which holds no such line.
#[test]
fn an_invalid_value_names_the_file_or_the_command_line_that_gave_it() {
    let d = tmpdir("invalid-origin");
    let tiny = tiny_at(&d, 16);
    let text = std::fs::read_to_string(&tiny).expect("config");
    let negative = d.join("negative.toml");
    std::fs::write(&negative, text.replacen("[train]\n", "[train]\nlr = -1.0\n", 1)).expect("config");
    let o = train_cpu(&negative, &["--out", s(&d.join("a"))]);
    assert_clean_error(&o, &["config", "negative.toml", "`train.lr`", "got -1"]);
    let o = train_cpu(&tiny, &["--set", "train.lr=-1", "--out", s(&d.join("b"))]);
    assert_clean_error(&o, &["`train.lr` set on the command line", "got -1"]);
    assert!(!stderr(&o).contains("tiny.toml"), "{}", stderr(&o));
    let o = train_cpu(&tiny, &["--workers", "0", "--out", s(&d.join("c"))]);
    assert_clean_error(&o, &["--workers", "1..=1024", "got 0"]);
    let _ = std::fs::remove_dir_all(&d);
}

/// A run killed before its first checkpoint (config.toml and an empty metrics.jsonl) cannot be
/// resumed: `--resume` and `--out` on it say so and how to start it again, the command they
/// suggest runs, and the directory is left as it was.
#[test]
fn a_run_killed_before_its_first_checkpoint_says_how_to_start_again() {
    let d = tmpdir("killed-early");
    let (_, cfg_path, text) = finished_run_config(&d);
    let killed = d.join("killed");
    std::fs::create_dir(&killed).expect("dir");
    std::fs::write(killed.join("config.toml"), &text).expect("config");
    std::fs::write(killed.join("metrics.jsonl"), "").expect("metrics");
    let before = snapshot(&killed);
    let again = format!("batchscope train --config {}", s(&killed.join("config.toml")));
    let o = run(&["train", "--resume", s(&killed), "--backend", "cpu", "--quiet"]);
    assert_clean_error(&o, &["no last.safetensors", "stopped before its first checkpoint", &again]);
    let o = train_cpu(&cfg_path, &["--out", s(&killed)]);
    assert_clean_error(&o, &["already holds files", "stopped before its first checkpoint", &again]);
    assert!(snapshot(&killed) == before, "a refused command changed the killed run");
    let o = train_cpu(&killed.join("config.toml"), &["--out", s(&d.join("again"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("again/last.safetensors").is_file());
    let _ = std::fs::remove_dir_all(&d);
}

/// Settings that changed nothing, found by the data audit of 2026-12-07, refused by key: a
/// count of generated examples for npy data (the files' rows are the data), label noise and
/// label order for a regression (it has targets), and a `depth` minibatch order (its batches
/// are a new permutation each epoch); `noise` on npy data counts copies as one example.
#[test]
fn data_settings_a_run_would_ignore_are_refused() {
    let d = tmpdir("ignored-data");
    let (x, y) = write_npy_pair(&d);
    let npy = npy_config(&d, &x, &y, "");
    for (set, key) in [("data.n_train=5", "data.n_train"), ("data.n_val=3", "data.n_val")] {
        let o = train_cpu(&npy, &["--set", set, "--out", s(&d.join("a"))]);
        assert_clean_error(&o, &[key, "npy", "data.val_fraction"]);
    }
    // 40 rows, 39 of them validation: one training row, repeated, is one example.
    let out_n = d.join("n");
    let dup = ["--set", "data.val_fraction=0.975", "--set", "data.duplicates=4", "--out", s(&out_n)];
    assert_clean_error(&on_cpu("noise", &npy, &dup), &["data.duplicates = 4"]);
    let tiny = d.join("regression.toml");
    let text = "[model]\nhidden = [4]\nloss = \"mse\"\n[data]\nkind = \"linear_regression\"\nn_train = 64\nn_val = 16\ndim = 4\n[train]\nbatch_size = 8\nsteps = 2\n";
    std::fs::write(&tiny, text).expect("config");
    let out_b = d.join("b");
    let sorted = ["--set", "train.sorted_by_label=true", "--set", "train.shuffle=\"none\""];
    for (sets, key) in [
        (&["--set", "data.label_noise=0.2"][..], "data.label_noise"),
        (&sorted[..], "train.sorted_by_label"),
    ] {
        let o = train_cpu(&tiny, &[sets, &["--out", s(&out_b)]].concat());
        assert_clean_error(&o, &[key, "regression"]);
    }
    for set in ["train.shuffle=\"none\"", "train.shuffle=\"once\""] {
        let o = run(&["depth", "--backend", "cpu", "--quiet", "--set", set, "--out", s(&d.join("c"))]);
        assert_clean_error(&o, &["train.shuffle"]);
    }
    for out in ["a", "b", "c", "n"] {
        assert!(!d.join(out).exists(), "a refused run left {out}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A finished one-pass run cannot be extended by more steps or epochs (it ends with its pass):
/// its resume says how it can be (it advised train.steps and train.epochs, which did nothing).
#[test]
fn a_finished_one_pass_run_says_how_to_extend_it() {
    let d = tmpdir("one-pass-done");
    let tiny = tiny_at(&d, 16);
    let run_dir = d.join("run");
    let o = train_cpu(&tiny, &["--set", "train.one_pass=true", "--out", s(&run_dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = resume_cpu(&run_dir, "train.epochs=5");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("train.one_pass=false"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// Found by the README audit of 2026-12-07: an f32 setting past f32's range given by `--set`
/// names the `--set` (it was blamed on the config file, the embedded default included), and
/// `rnn --precision f32`, what rnn runs, is taken (every value was refused).
#[test]
fn an_f32_overflow_names_its_set_and_rnn_takes_precision_f32() {
    let d = tmpdir("overflow-set");
    let tiny = tiny_at(&d, 16);
    let o = train_cpu(&tiny, &["--set", "train.lr=1e39", "--out", s(&d.join("a"))]);
    assert_clean_error(&o, &["`train.lr`", "1e39", "given by --set train.lr"]);
    let args = ["rnn", "--backend", "cpu", "--quiet", "--precision", "f32", "--set", "train.steps=2"];
    let o = run(&[&args[..], &["--out", s(&d.join("rnn"))]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let o =
        run(&["rnn", "--backend", "cpu", "--quiet", "--precision", "f16", "--out", s(&d.join("r16"))]);
    assert_clean_error(&o, &["--precision f16", "f32 only"]);
    let _ = std::fs::remove_dir_all(&d);
}

/// `depth` runs every variant on one backend in one autotune mode: a variant's own
/// `gpu.autotune` was written to config.toml and never applied (review of 2026-12-07).
#[test]
fn depth_refuses_a_variant_autotune_mode() {
    let d = tmpdir("depth-variant-autotune");
    let cfg = d.join("depth.toml");
    let text = "[depth]\nlayers = 3\nwidth = 4\n[data]\nn_train = 64\nn_val = 16\ndim = 4\nclasses = 3\n[train]\nbatch_size = 16\nsteps = 2\n[[variant]]\nname = \"a\"\nset = []\n[[variant]]\nname = \"b\"\nset = [\"gpu.autotune=\\\"on\\\"\"]\n";
    std::fs::write(&cfg, text).expect("config");
    let o = on_cpu("depth", &cfg, &["--out", s(&d.join("run"))]);
    assert_clean_error(&o, &["[[variant]] b", "gpu.autotune", "outside [[variant]]"]);
    assert!(!d.join("run").exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// A write past `ulimit -f` is one error line naming the file, exit 2: SIGXFSZ killed the
/// process with no word (exit 153).
#[cfg(unix)]
#[test]
fn a_write_past_the_file_size_limit_is_an_error_line() {
    use std::os::unix::process::CommandExt;
    let d = tmpdir("fsize");
    let tiny = tiny_at(&d, 16);
    let out = d.join("run");
    let mut c = bin();
    c.args(["train", "--backend", "cpu", "--quiet", "--config", s(&tiny), "--out", s(&out)]);
    // SAFETY: between fork and exec the child only calls setrlimit, which is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 512, rlim_max: 512 };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let o = c.output().expect("run batchscope");
    assert_clean_error(&o, &["File too large"]);
    // It names the file asked for, not the hidden temporary it was written through.
    assert!(!stderr(&o).contains(".tmp-"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

/// A damaged best.safetensors is one error line that says the way on (a missing one only
/// warns and tracks the best anew; a damaged one blocked the resume with no word of that):
/// moved aside, the run resumes.
#[test]
fn a_damaged_best_checkpoint_names_the_way_on() {
    let d = tmpdir("damaged-best");
    let (_, run_dir) = finished_run(&d);
    let best = run_dir.join("best.safetensors");
    let bytes = std::fs::read(&best).expect("best.safetensors");
    std::fs::write(&best, &bytes[..bytes.len() / 2]).expect("truncate");
    let before = snapshot(&run_dir);
    assert_clean_error(&resume_cpu(&run_dir, "train.epochs=2"), &["best.safetensors", "move it aside"]);
    assert!(snapshot(&run_dir) == before, "the refused resume changed the run");
    std::fs::rename(&best, d.join("damaged.safetensors")).expect("move aside");
    let o = resume_cpu(&run_dir, "train.epochs=2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(best.is_file(), "the best is tracked anew");
    let _ = std::fs::remove_dir_all(&d);
}

/// The `init` metadata of the safetensors checkpoint at `path` (its JSON header's
/// `__metadata__`).
fn checkpoint_init(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).expect("checkpoint");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header JSON");
    header["__metadata__"]["init"].as_str().map(str::to_string)
}

/// A run started from `--init` says which weights: its summary.json and every checkpoint name
/// the file with its size and CRC-32, and a resume carries that on (the run directory once held
/// no trace of where its weights came from).
#[test]
fn a_run_started_from_init_records_its_weights_through_resume() {
    let d = tmpdir("init-recorded");
    let (tiny, first) = finished_run(&d);
    let start = first.join("last.safetensors");
    let ckpt_bytes = std::fs::metadata(&start).expect("checkpoint").len();
    let summary = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary"))
            .expect("JSON")
    };
    assert!(summary(&first).get("init").is_none(), "a run from its own init names no --init");
    assert_eq!(checkpoint_init(&start), None);
    let second = d.join("second");
    let o = train_cpu(&tiny, &["--init", s(&start), "--out", s(&second)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let recorded = summary(&second)["init"].as_str().expect("summary.json names --init").to_string();
    let want = format!("{} ({ckpt_bytes} bytes crc32:", start.display());
    assert!(recorded.starts_with(&want) && recorded.ends_with(')'), "{recorded} vs {want}");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&recorded), "the printed summary names it");
    assert_eq!(checkpoint_init(&second.join("last.safetensors")).as_deref(), Some(recorded.as_str()));
    // The first run's file changes: the second run's record still says what it started from.
    std::fs::remove_dir_all(&first).expect("remove the first run");
    let o = resume_cpu(&second, "train.epochs=2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary(&second)["init"].as_str(), Some(recorded.as_str()));
    assert_eq!(checkpoint_init(&second.join("last.safetensors")).as_deref(), Some(recorded.as_str()));
    let _ = std::fs::remove_dir_all(&d);
}

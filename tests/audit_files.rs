//! Crafted input files found by the audit of 2026-12-07 (labels, run directories, checkpoints,
//! the autotune cache), each once an abort, lost work or a silent change: now exit 2 with one
//! `error:` line naming the file, before any work, and nothing that existed is changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::cli::{assert_clean_error, npy_bytes, snapshot, stderr};
use common::tmpdir;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn train_cpu(config: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["train", "--backend", "cpu", "--quiet", "--config", s(config)];
    a.extend_from_slice(extra);
    common::cli::batchscope("audit-files").args(&a).output().expect("run batchscope")
}

/// 40 rows of 3 features, and `npy.toml` training on them with labels `labels`.
fn npy_run(dir: &Path, labels: &Path) -> PathBuf {
    let x: Vec<u8> = (0..120).flat_map(|i| (((i * 37 % 11) as f32 - 5.0) / 5.0).to_le_bytes()).collect();
    let xp = dir.join("x.npy");
    std::fs::write(&xp, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (40, 3), }", &x))
        .expect("x");
    let cfg = dir.join("npy.toml");
    let text = format!(
        "[model]\nhidden = [4]\n[data]\nkind = \"npy\"\nfeatures = \"{}\"\nlabels = \"{}\"\n[train]\nbatch_size = 2\nsteps = 2\n",
        s(&xp),
        s(labels)
    );
    std::fs::write(&cfg, text).expect("config");
    cfg
}

fn labels_file(dir: &Path, name: &str, descr: &str, rows: u64, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows},), }}");
    std::fs::write(&p, npy_bytes(&dict, data)).expect("labels");
    p
}

/// A labels file of 2^31 rows (a sparse 2 GiB file) beside 40 rows of features: every label
/// was widened to i128 (32 GiB) to find the classes before the rows were compared, and the
/// allocation aborted the process (exit 134), after the run directory was made.
#[test]
fn a_labels_file_of_the_wrong_length_is_refused_from_its_header() {
    let dir = tmpdir("long-labels");
    let y = labels_file(&dir, "y.npy", "|u1", 1 << 31, &[1]);
    let file = std::fs::OpenOptions::new().write(true).open(&y).expect("open");
    file.set_len(std::fs::metadata(&y).expect("len").len() + (1 << 31) - 1).expect("sparse");
    let cfg = npy_run(&dir, &y);
    let out = dir.join("run");
    let started = std::time::Instant::now();
    let o = train_cpu(&cfg, &["--out", s(&out)]);
    assert_clean_error(&o, &["`data.labels`", "holds 2147483648 rows", "data.features holds 40"]);
    assert!(started.elapsed().as_secs() < 20, "read the file: {:?}", started.elapsed());
    assert!(!out.exists(), "no run directory");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Labels of a dtype neither loss takes are named by dtype the first time (f64 labels were
/// told they held f32 targets and to use mse, which then refused '<f8').
#[test]
fn labels_of_an_unsupported_dtype_are_named_by_dtype() {
    let dir = tmpdir("label-dtypes");
    let f8: Vec<u8> = (0..40).flat_map(|i| ((i % 3) as f64).to_le_bytes()).collect();
    let y = labels_file(&dir, "y8.npy", "<f8", 40, &f8);
    let cfg = npy_run(&dir, &y);
    for loss in ["softmax_xent", "mse"] {
        let o =
            train_cpu(&cfg, &["--set", &format!("model.loss=\"{loss}\""), "--out", s(&dir.join(loss))]);
        assert_clean_error(&o, &["`data.labels`", "dtype '<f8' is not supported", "astype"]);
        assert!(!stderr(&o).contains("holds f32 targets"), "{}", stderr(&o));
    }
    let b1 = labels_file(&dir, "yb.npy", "|b1", 40, &[1u8; 40]);
    let o = train_cpu(&npy_run(&dir, &b1), &["--out", s(&dir.join("b1"))]);
    assert_clean_error(&o, &["dtype '|b1' is not supported"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A label past u32 (the labels' type on every backend) is named as such (it read "out of
/// range for 4294967295 classes" with data.classes never set); a label just below it makes a
/// model past the host, and the refusal counts the file's rows (it counted data.n_val, a
/// generator's setting: "2048 resident examples").
#[test]
fn huge_labels_name_the_limit_and_the_file_rows() {
    let dir = tmpdir("huge-labels");
    let max: Vec<u8> =
        (0..40u64).flat_map(|i| if i == 7 { u64::MAX } else { i % 3 }.to_le_bytes()).collect();
    let y = labels_file(&dir, "ymax.npy", "<u8", 40, &max);
    let o = train_cpu(&npy_run(&dir, &y), &["--out", s(&dir.join("a"))]);
    assert_clean_error(
        &o,
        &["label 18446744073709551615 at index 7", "largest class label batchscope holds (4294967294)"],
    );
    let near: Vec<u8> =
        (0..40u32).flat_map(|i| if i == 0 { u32::MAX - 1 } else { i % 3 }.to_le_bytes()).collect();
    let y = labels_file(&dir, "ynear.npy", "<u4", 40, &near);
    let o = train_cpu(&npy_run(&dir, &y), &["--out", s(&dir.join("b"))]);
    assert_clean_error(&o, &["4294967295]", "40 resident examples", "host memory"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Features of no rows are said to hold none (it read "train.batch_size is 2, more than the 0
/// training examples").
#[test]
fn features_of_no_rows_are_said_to_hold_none() {
    let dir = tmpdir("no-rows");
    let y = labels_file(&dir, "y.npy", "<i8", 0, &[]);
    let cfg = npy_run(&dir, &y);
    let x = dir.join("x.npy");
    std::fs::write(&x, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", &[]))
        .expect("x");
    let before = snapshot(&dir);
    let o = train_cpu(&cfg, &["--out", s(&dir.join("run"))]);
    assert_clean_error(&o, &["`data.features`", "holds no rows (shape [0, 3])"]);
    assert_eq!(snapshot(&dir), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A finished tiny CPU run in `dir/run` (its config at `dir/tiny.toml`).
fn finished_run(dir: &Path) -> PathBuf {
    let tiny = dir.join("tiny.toml");
    std::fs::write(&tiny, common::tiny_config(1, 16, 1)).expect("config");
    let run = dir.join("run");
    let o = train_cpu(&tiny, &["--out", s(&run)]);
    assert!(o.status.success(), "{}", stderr(&o));
    run
}

fn resume_cpu(run: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["train", "--backend", "cpu", "--quiet", "--resume", s(run)];
    a.extend_from_slice(extra);
    common::cli::batchscope("audit-files").args(&a).output().expect("run batchscope")
}

/// A directory where the run writes `summary.json` (or a plot) failed that write only after
/// the resumed steps had moved the checkpoints and metrics on; the run, complete, could never
/// write its summary again. Refused now before any step, the run as it was.
#[test]
fn a_resume_whose_output_names_are_taken_is_refused_before_a_step() {
    let dir = tmpdir("resume-names");
    let run = finished_run(&dir);
    for name in ["summary.json", "loss.svg"] {
        let p = run.join(name);
        let _ = std::fs::remove_file(&p);
        std::fs::create_dir(&p).expect("dir");
        std::fs::write(p.join("keep"), b"mine").expect("keep");
        let before = snapshot(&run);
        let o = resume_cpu(&run, &["--set", "train.epochs=3"]);
        assert_clean_error(&o, &[name, "is a directory", "move it aside"]);
        assert_eq!(snapshot(&run), before, "{name}: the run is as it was");
        std::fs::remove_dir_all(&p).expect("rm");
    }
    let o = resume_cpu(&run, &["--set", "train.epochs=3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(run.join("summary.json").is_file() && run.join("loss.svg").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tune --out` in use was refused only after every candidate was timed and the cache was
/// written: a failed command had changed the cache. Refused now before the GPU opens.
#[test]
fn tune_refuses_its_out_before_timing_or_writing_the_cache() {
    let dir = tmpdir("tune-out");
    let run = finished_run(&dir);
    let cache = dir.join("cache.json");
    let before = snapshot(&run);
    let o = common::cli::batchscope("audit-files")
        .env("BATCHSCOPE_AUTOTUNE_CACHE", &cache)
        .args(["tune", "--config", s(&dir.join("tiny.toml")), "--batch-sizes", "1", "--out", s(&run)])
        .output()
        .expect("run");
    assert_clean_error(&o, &["already holds files"]);
    assert!(!stderr(&o).contains("cache:") && !cache.exists(), "the cache was written");
    assert_eq!(snapshot(&run), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An `--out` that is a link to nothing said "cannot create directory: File exists"; overlay's
/// `--out` that is a directory said "the file exists".
#[cfg(unix)]
#[test]
fn outputs_that_are_dangling_links_or_directories_are_named_as_such() {
    let dir = tmpdir("out-kinds");
    let run = finished_run(&dir);
    let link = dir.join("dangle");
    std::os::unix::fs::symlink(dir.join("nowhere"), &link).expect("link");
    let o = train_cpu(&dir.join("tiny.toml"), &["--out", s(&link)]);
    assert_clean_error(&o, &["dangle", "symbolic link to nothing"]);
    assert!(!dir.join("nowhere").exists());
    let overlay = |out: &Path| {
        common::cli::batchscope("audit-files")
            .args(["overlay", s(&run), "--out", s(out)])
            .output()
            .expect("run")
    };
    assert_clean_error(&overlay(&run), &["is a directory", "overlay.svg"]);
    assert_clean_error(&overlay(&link), &["symbolic link to nothing"]);
    assert!(!dir.join("nowhere").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A resume of `.npy` files rewritten with other rows (or the same rows, other values) trained
/// on without a word, on a new training and validation set. The files may move; what they hold
/// may not change.
#[test]
fn a_resume_keeps_what_its_npy_files_hold() {
    let dir = tmpdir("resume-npy");
    let y: Vec<u8> = (0..40i64).flat_map(|i| (i % 3).to_le_bytes()).collect();
    let labels = labels_file(&dir, "y.npy", "<i8", 40, &y);
    let cfg = npy_run(&dir, &labels);
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .expect("cfg")
            .replace("steps = 2", "steps = 4\ncheckpoint_every = 2"),
    )
    .expect("cfg");
    let run = dir.join("run");
    let o = train_cpu(&cfg, &["--out", s(&run), "--set", "train.steps=2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = dir.join("x.npy");
    let original = std::fs::read(&x).expect("x");
    // The same shape, one value changed.
    let mut other = original.clone();
    let last = other.len() - 1;
    other[last] ^= 0x01;
    std::fs::write(&x, &other).expect("x");
    let before = snapshot(&run);
    let o = resume_cpu(&run, &["--set", "train.steps=4"]);
    assert_clean_error(&o, &["the .npy data is not what the run was trained on", "crc32:"]);
    assert_eq!(snapshot(&run), before, "the run is as it was");
    // Moved, and named by --set: the same bytes resume.
    let moved = dir.join("moved");
    std::fs::create_dir(&moved).expect("dir");
    std::fs::write(moved.join("x.npy"), &original).expect("x");
    std::fs::rename(&labels, moved.join("y.npy")).expect("y");
    let features = format!("data.features=\"{}\"", s(&moved.join("x.npy")));
    let labels = format!("data.labels=\"{}\"", s(&moved.join("y.npy")));
    let o = resume_cpu(&run, &["--set", "train.steps=4", "--set", &features, "--set", &labels]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Relative `.npy` paths are read from the current directory, and the run's config.toml names
/// the files absolute: a run started next to its data resumes from anywhere (the relative
/// path was read again from the resuming process's directory, and the resume was refused).
#[test]
fn relative_npy_paths_are_recorded_absolute_and_resume_from_anywhere() {
    let dir = tmpdir("relative-npy");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let y: Vec<u8> = (0..40i64).flat_map(|i| (i % 3).to_le_bytes()).collect();
    labels_file(&data, "y.npy", "<i8", 40, &y);
    npy_run(&data, &data.join("y.npy"));
    let text = "[model]\nhidden = [4]\n[data]\nkind = \"npy\"\nfeatures = \"data/x.npy\"\n\
                labels = \"data/y.npy\"\n[train]\nbatch_size = 2\nsteps = 4\ncheckpoint_every = 2\n";
    std::fs::write(dir.join("rel.toml"), text).expect("config");
    let run = dir.join("run");
    let args =
        ["train", "--backend", "cpu", "--quiet", "--config", "rel.toml", "--set", "train.steps=2"];
    let o = common::cli::batchscope("audit-files")
        .current_dir(&dir)
        .args(args)
        .args(["--out", s(&run)])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let recorded = std::fs::read_to_string(run.join("config.toml")).expect("config.toml");
    let features = format!("features = \"{}\"", s(&dir.join("data").join("x.npy")));
    assert!(recorded.contains(&features), "{features} in\n{recorded}");
    // From another directory, where data/x.npy is nothing.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let o = common::cli::batchscope("audit-files")
        .current_dir(&elsewhere)
        .args(["train", "--backend", "cpu", "--quiet", "--resume", s(&run), "--set", "train.steps=4"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = std::fs::read_to_string(run.join("summary.json")).expect("summary");
    assert!(summary.contains("\"steps\": 4") || summary.contains("\"steps\":4"), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `landscape`'s weight files: a `file:` direction of zeros was found after the training (the
/// run left `train/` and half its slices), and a path start whose loss overflows wrote a path
/// of NaN and inf with exit 0.
#[test]
fn landscape_refuses_a_zero_direction_file_and_a_start_past_f32_before_any_slice() {
    let dir = tmpdir("landscape-files");
    let model = "[model]\nhidden = [8]\n[data]\nkind = \"teacher\"\nn_train = 64\nn_val = 16\ndim = 4\nclasses = 3\n\
                 teacher_hidden = 8\n[train]\nbatch_size = 8\nlr = 0.05\nepochs = 1\n";
    let (train_cfg, cfg) = (dir.join("train.toml"), dir.join("ls.toml"));
    std::fs::write(&train_cfg, model).expect("config");
    let slices =
        "[landscape]\nmodes = [\"line\", \"path\"]\nline_directions = [\"random\"]\npoints = 5\n";
    std::fs::write(&cfg, format!("{model}{slices}")).expect("config");
    let trained = dir.join("trained");
    assert!(train_cpu(&train_cfg, &["--out", s(&trained)]).status.success());
    let last = trained.join("last.safetensors");
    let mut ck = batchscope::checkpoint::load(&last).expect("checkpoint");
    ck.tensors.iter_mut().for_each(|t| t.data.iter_mut().for_each(|v| *v = 0.0));
    let zero = dir.join("zero.safetensors");
    batchscope::checkpoint::save(&zero, &ck).expect("zero");
    let mut ck = batchscope::checkpoint::load(&last).expect("checkpoint");
    ck.tensors.iter_mut().for_each(|t| t.data.iter_mut().for_each(|v| *v *= 1e20));
    let big = dir.join("big.safetensors");
    batchscope::checkpoint::save(&big, &ck).expect("big");
    let landscape = |set: &str, out: &Path, extra: &[&str]| {
        let mut args =
            vec!["landscape", "--backend", "cpu", "--quiet", "--config", s(&cfg), "--set", set];
        args.extend(extra);
        args.extend(["--out", s(out)]);
        common::cli::batchscope("audit-files").args(&args).output().expect("run")
    };
    // Without --checkpoint it trains first, into train/: a train run directory `train
    // --resume` takes (it had no config.toml).
    let out = dir.join("trains");
    let o = landscape("landscape.points=3", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let train_dir = out.join("train");
    let resume =
        ["train", "--backend", "cpu", "--quiet", "--resume", s(&train_dir), "--set", "train.epochs=2"];
    let o = common::cli::batchscope("audit-files").args(resume).output().expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.join("zero-dir");
    let o = landscape(&format!("landscape.line_directions=[\"file:{}\"]", s(&zero)), &out, &[]);
    assert_clean_error(&o, &["zero.safetensors", "is zero"]);
    assert!(!out.exists(), "refused before the training");
    let out = dir.join("big-start");
    let o = landscape(&format!("landscape.start=\"{}\"", s(&big)), &out, &["--checkpoint", s(&last)]);
    assert_clean_error(&o, &["path's start", "big.safetensors", "not finite"]);
    assert!(!out.join("line.svg").exists(), "refused before any slice");
    // A start that is θ's own weights: a path of length 0 (it wrote one, `monotone`).
    let out = dir.join("same-start");
    let o = landscape(&format!("landscape.start=\"{}\"", s(&last)), &out, &["--checkpoint", s(&last)]);
    assert_clean_error(&o, &["path's start is θ itself"]);
    // The gradient twice spans a line, not a plane (its cosine was 1).
    let out = dir.join("line-plane");
    let o = landscape(
        "landscape.plane_directions=[\"gradient\", \"gradient\"]",
        &out,
        &["--set", "landscape.modes=[\"plane\"]"],
    );
    assert_clean_error(&o, &["landscape.plane_directions", "twice"]);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Landscape slices on both backends: the point α = 0 of a line is the loss at θ; a network's
//! permuted / rescaled twin has the same loss to rounding; the `landscape`, `rnn` and `depth`
//! commands run end to end and their summaries hold the measured figures.

mod common;

use std::path::Path;

use batchscope::app::{BackendChoice, RunArgs};
use batchscope::backend::{Activation, Backend};
use batchscope::config::Config;
use batchscope::data::sequences::{SeqSpec, SeqTask};
use batchscope::landscape::directions::{coords, difference, normalize, random_direction, Normalize};
use batchscope::landscape::symmetry::{mlp_twin, rnn_twin, TwinSpec};
use batchscope::landscape::{
    evaluate_points, upload_like, MlpObjective, Objective, RnnObjective, Split,
};
use batchscope::model::{LossKind, Mlp, MlpSpec, ParamSet, Rnn, RnnInit, RnnSpec, WInit};
use common::tmpdir;

const MLP_TOML: &str = r#"
[model]
hidden = [12, 10]
activation = "relu"
[data]
kind = "gaussian_mixture"
n_train = 200
n_val = 100
dim = 5
classes = 3
separation = 2.0
seed = 4
[train]
batch_size = 20
lr = 0.05
epochs = 2
log_every = 5
"#;

fn mlp_objective<B: Backend>(b: &B, act: Activation) -> (MlpObjective<B>, Mlp) {
    let cfg = Config::from_toml(MLP_TOML, "test").unwrap();
    let (train, val) = batchscope::data::build_resident(&cfg.data, cfg.data_outputs()).unwrap();
    let mlp = Mlp::new(MlpSpec { activation: act, ..cfg.mlp_spec() }).unwrap();
    // Chunks of 64 rows: the losses are sums over several chunks.
    (MlpObjective::new(b, mlp.clone(), &train, &val, 64).unwrap(), mlp)
}

fn rnn_objective<B: Backend>(b: &B) -> (RnnObjective<B>, Rnn) {
    let seq = SeqSpec { task: SeqTask::Adding, length: 7, symbols: 0, distractors: false, seed: 3 };
    let (train, val) = seq.train_val(96, 40).unwrap();
    let spec = RnnSpec {
        inputs: seq.dim(),
        hidden: 6,
        outputs: 1,
        steps: 7,
        activation: Activation::Tanh,
        loss: LossKind::Mse,
    };
    let rnn = Rnn::new(spec).unwrap();
    (RnnObjective::new(b, rnn.clone(), &train, &val, 32).unwrap(), rnn)
}

/// Relative difference, for losses compared to rounding.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(1e-12)
}

fn line_centre_is_theta<B: Backend, O: Objective<B>>(b: &B, obj: &mut O, theta_host: &[Vec<f32>]) {
    let (names, shapes) = obj.layout();
    let theta = ParamSet::from_host(b, &names, &shapes, theta_host).unwrap();
    let (l0, e0) = obj.evaluate(b, &theta, Split::Train).unwrap();
    let (v0, _) = obj.evaluate(b, &theta, Split::Val).unwrap();
    // −g, the steepest-descent direction.
    let mut g = theta.zeros_like(b).unwrap();
    obj.mean_grad(b, &theta, &mut g).unwrap();
    g.scale(b, -1.0).unwrap();
    let mut random = random_direction(&shapes, 9);
    normalize(&mut random, theta_host, &shapes, Normalize::Filter);
    let dirs = [g, upload_like(b, &theta, &random).unwrap()];
    let alphas = coords(-0.5, 0.5, 5);
    let pts: Vec<Vec<f64>> = alphas.iter().map(|&a| vec![a]).collect();
    for d in &dirs {
        let res = evaluate_points(b, obj, &theta, &[d], &pts).unwrap();
        assert_eq!(res[2].coords, vec![0.0]);
        assert!(
            rel(l0, res[2].train_loss) < 1e-6,
            "{}: line at α = 0 gives {} but L(θ) = {l0}",
            b.device_name(),
            res[2].train_loss
        );
        assert!(rel(v0, res[2].val_loss.unwrap()) < 1e-6);
        if let Some(e) = res[2].train_error {
            assert_eq!(e, e0);
        }
        assert!(
            res.iter().any(|r| rel(l0, r.train_loss) > 1e-4),
            "moving along the line must change the loss"
        );
    }
    // The plane's centre, too.
    let pts = vec![vec![0.0, 0.0], vec![0.1, -0.2]];
    let res = evaluate_points(b, obj, &theta, &[&dirs[0], &dirs[1]], &pts).unwrap();
    assert!(rel(l0, res[0].train_loss) < 1e-6);
    // Minus the gradient is a descent direction: a small step lowers the loss.
    let res = evaluate_points(b, obj, &theta, &[&dirs[0]], &[vec![1e-2]]).unwrap();
    assert!(
        res[0].train_loss < l0,
        "a step along −g should lower the loss: {} vs {l0}",
        res[0].train_loss
    );
}

fn landscape_line_at_zero_is_the_loss_at_theta<B: Backend>(b: &B) {
    let (mut obj, mlp) = mlp_objective(b, Activation::Relu);
    line_centre_is_theta(b, &mut obj, &mlp.init_host(3));
    let (mut robj, rnn) = rnn_objective(b);
    line_centre_is_theta(
        b,
        &mut robj,
        &rnn.init_host(&RnnInit { w_init: WInit::Orthogonal, w_scale: 0.9, seed: 2 }),
    );
}
both_backends!(line_at_alpha_zero_equals_loss_at_theta, landscape_line_at_zero_is_the_loss_at_theta);

fn twins_have_equal_loss<B: Backend>(b: &B) {
    let cases = [
        (Activation::Relu, TwinSpec { seed: 1, permute: true, rescale: 3.0, sign_flips: false }),
        (Activation::Tanh, TwinSpec { seed: 2, permute: true, rescale: 1.0, sign_flips: true }),
        (Activation::Identity, TwinSpec { seed: 3, permute: true, rescale: 2.0, sign_flips: true }),
    ];
    for (act, ts) in cases {
        let (mut obj, mlp) = mlp_objective(b, act);
        let theta = mlp.init_host(5);
        let twin = mlp_twin(&mlp.spec.sizes, act, &theta, &ts).unwrap();
        let d = difference(&theta, &twin);
        assert!(
            batchscope::landscape::directions::global_norm(&d) > 0.1,
            "{act:?}: the twin must be another point"
        );
        let (names, shapes) = mlp.param_layout();
        let pa = ParamSet::from_host(b, &names, &shapes, &theta).unwrap();
        let pb = ParamSet::from_host(b, &names, &shapes, &twin).unwrap();
        for split in [Split::Train, Split::Val] {
            let (la, ea) = obj.evaluate(b, &pa, split).unwrap();
            let (lb, eb) = obj.evaluate(b, &pb, split).unwrap();
            assert!(
                rel(la, lb) < 2e-6,
                "{} {act:?} {split:?}: model {la} vs twin {lb}",
                b.device_name()
            );
            assert_eq!(ea, eb, "{act:?}: the twin classifies every example the same way");
        }
    }
    let (mut obj, rnn) = rnn_objective(b);
    let theta = rnn.init_host(&RnnInit { w_init: WInit::Normal, w_scale: 1.2, seed: 4 });
    let twin = rnn_twin(
        &rnn.spec,
        &theta,
        &TwinSpec { seed: 5, permute: true, rescale: 1.0, sign_flips: true },
    )
    .unwrap();
    let (names, shapes) = rnn.param_layout();
    let pa = ParamSet::from_host(b, &names, &shapes, &theta).unwrap();
    let pb = ParamSet::from_host(b, &names, &shapes, &twin).unwrap();
    let (la, _) = obj.evaluate(b, &pa, Split::Train).unwrap();
    let (lb, _) = obj.evaluate(b, &pb, Split::Train).unwrap();
    assert!(rel(la, lb) < 2e-6, "{} RNN: model {la} vs twin {lb}", b.device_name());
}
both_backends!(permuted_and_rescaled_twins_have_equal_loss, twins_have_equal_loss);

fn args(dir: &Path, config: &str) -> RunArgs {
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    RunArgs {
        config: Some(cfg),
        set: Vec::new(),
        adapter: None,
        out: Some(dir.join("out")),
        progress: false,
    }
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("out").join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn landscape_command_trains_then_slices_an_mlp() {
    let dir = tmpdir("mlp");
    let text =
        format!("{MLP_TOML}\n[landscape]\npoints = 9\ngrid = 5\nrescale = 2.0\neval_train = 128\n");
    batchscope::app::landscape::landscape(&args(&dir, &text), BackendChoice::Cpu, None).unwrap();
    let s = summary(&dir);
    let l0 = s["train_loss"].as_f64().unwrap();
    for line in s["lines"].as_array().unwrap() {
        assert!(rel(l0, line["loss_at_theta"].as_f64().unwrap()) < 1e-6, "{line}");
    }
    let sym = &s["symmetry"];
    assert!(sym["relative_difference"].as_f64().unwrap() < 2e-6, "{sym}");
    assert!(sym["relative_distance"].as_f64().unwrap() > 0.1);
    let path = &s["path"];
    assert!(rel(l0, path["loss_end"].as_f64().unwrap()) < 1e-3, "the path ends at θ: {path}");
    assert!(path["loss_start"].as_f64().unwrap() > l0, "training lowered the loss: {path}");
    for f in [
        "line.svg",
        "plane_train.svg",
        "plane_val.svg",
        "path.svg",
        "symmetry.svg",
        "plane.csv",
        "train/last.safetensors",
        "config.toml",
    ] {
        assert!(dir.join("out").join(f).exists(), "{f} missing");
    }
    // Slicing the saved checkpoint again gives the same loss at θ.
    let dir2 = tmpdir("mlp-ckpt");
    let ck = dir.join("out").join("train").join("last.safetensors");
    // A provided direction: θ itself (the line is the ray through the origin).
    let text2 = format!(
        "{MLP_TOML}\n[landscape]\nmodes = [\"line\"]\nline_directions = [\"random\", \"file:{}\"]\nnormalize = \"none\"\npoints = 3\neval_train = 128\n",
        ck.display()
    );
    batchscope::app::landscape::landscape(&args(&dir2, &text2), BackendChoice::Cpu, Some(ck.clone()))
        .unwrap();
    let s2 = summary(&dir2);
    assert!(rel(l0, s2["train_loss"].as_f64().unwrap()) < 1e-6);
    let file_line = &s2["lines"][1];
    assert!(
        (file_line["direction_norm"].as_f64().unwrap() - s["theta_norm"].as_f64().unwrap()).abs() < 1e-3,
        "{file_line}"
    );
    assert!(rel(l0, file_line["loss_at_theta"].as_f64().unwrap()) < 1e-6);
    // A zero direction (here a file of zeros) slices nothing: an error naming it, not a flat
    // line read as a measurement.
    let mut zeros = batchscope::checkpoint::load(&ck).unwrap();
    zeros.tensors.iter_mut().for_each(|t| t.data.iter_mut().for_each(|v| *v = 0.0));
    let zero_path = dir.join("zeros.safetensors");
    batchscope::checkpoint::save(&zero_path, &zeros).unwrap();
    for normalize in ["none", "filter", "unit"] {
        // One directory each: a refused run's claimed --out keeps its config.toml until the
        // binary's error path takes it back, which a library call does not reach.
        let dir3 = tmpdir(&format!("mlp-zero-direction-{normalize}"));
        let text3 = format!(
            "{MLP_TOML}\n[landscape]\nmodes = [\"line\"]\nline_directions = [\"file:{}\"]\nnormalize = \"{normalize}\"\npoints = 3\neval_train = 128\n",
            zero_path.display()
        );
        let e = batchscope::app::landscape::landscape(
            &args(&dir3, &text3),
            BackendChoice::Cpu,
            Some(ck.clone()),
        )
        .expect_err("a zero direction")
        .to_string();
        assert!(e.contains("zeros.safetensors direction is zero"), "{normalize}: {e}");
    }
    // [[variant]] tables that landscape.variant does not choose from are refused, not ignored.
    let text4 = format!("{MLP_TOML}\n[[variant]]\nname = \"fast\"\nset = [\"train.lr=0.5\"]\n");
    let dir4 = tmpdir("mlp-unchosen-variants");
    let e = batchscope::app::landscape::landscape(
        &args(&dir4, &text4),
        BackendChoice::Cpu,
        Some(ck.clone()),
    )
    .expect_err("variants it would ignore")
    .to_string();
    assert!(e.contains("landscape.variant") && e.contains("fast"), "{e}");
    let _ =
        (std::fs::remove_dir_all(&dir), std::fs::remove_dir_all(&dir2), std::fs::remove_dir_all(&dir4));
}

/// With unit directions, the slope of the line along −g at θ is −‖g‖ and the curvature along
/// the top Hessian eigenvector is its eigenvalue λ (8.10 seen on the landscape).
#[test]
fn lines_along_gradient_and_hessian_agree_with_g_and_lambda() {
    let dir = tmpdir("hessian");
    let text = format!(
        "{MLP_TOML}\n[landscape]\nmodes = [\"line\"]\nline_directions = [\"gradient\", \"hessian\"]\nnormalize = \"unit\"\nrange = 0.02\npoints = 5\neval_train = 0\n"
    );
    batchscope::app::landscape::landscape(&args(&dir, &text), BackendChoice::Cpu, None).unwrap();
    let s = summary(&dir);
    let (g, h) = (&s["lines"][0], &s["lines"][1]);
    let gnorm = g["gradient_norm"].as_f64().unwrap();
    let slope = g["slope_at_theta"].as_f64().unwrap();
    assert!(rel(gnorm, -slope) < 0.02, "dL/dα along −g/‖g‖ = {slope}, ‖g‖ = {gnorm}");
    let lambda = h["hessian_eigenvalue"].as_f64().unwrap();
    let curv = h["curvature_at_theta"].as_f64().unwrap();
    assert!(
        lambda > 0.0 && rel(lambda, curv) < 0.05,
        "d²L/dα² along the top eigenvector = {curv}, λ = {lambda}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `layer_norms(..).weight` is the per-layer norm of the weight gradients `loss_and_grad` computes.
fn layer_norms_are_weight_gradient_norms<B: Backend>(b: &B) {
    use batchscope::model::Targets;
    use batchscope::train::diagnostics::layer_norms;
    let mlp = Mlp::new(MlpSpec {
        sizes: vec![5, 7, 7, 7, 3],
        activation: Activation::Tanh,
        loss: LossKind::SoftmaxXent,
    })
    .unwrap();
    let p = mlp.init(b, 2).unwrap();
    let rows = 6;
    let x = b.upload(&common::uniform(1, rows * 5, 1.0)).unwrap();
    let y = b.upload_idx(&common::indices(2, rows, 3)).unwrap();
    let mut ws = mlp.workspace(b, rows).unwrap();
    let mut grads = p.zeros_like(b).unwrap();
    let norms = layer_norms(b, &mlp, &p, &x, &Targets::Classes(&y), &mut ws, &mut grads).unwrap().weight;
    let host = grads.to_host(b).unwrap();
    assert_eq!(norms.len(), 4);
    for (l, n) in norms.iter().enumerate() {
        let want = host[2 * l].iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        assert!(rel(want, *n) < 1e-5, "layer {l}: {n} vs {want}");
    }
    let full = layer_norms(b, &mlp, &p, &x, &Targets::Classes(&y), &mut ws, &mut grads).unwrap();
    let dz_last = b.read(&ws.dz[3]).unwrap();
    let want = dz_last.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    assert!(rel(want, full.delta[3]) < 1e-5, "‖∂L/∂logits‖ {} vs {want}", full.delta[3]);
}
both_backends!(layer_grad_norms_are_weight_gradient_norms, layer_norms_are_weight_gradient_norms);

const RNN_TOML: &str = r#"
[rnn]
hidden = 6
activation = "identity"
w_init = "diag"
w_scale = 0.8
[sequence]
task = "adding"
length = 8
n_train = 128
n_val = 32
[train]
batch_size = 32
lr = 0.01
steps = 8
log_every = 4
eval_every = 8
"#;

#[test]
fn rnn_command_measures_growth_ln_lambda_and_landscape_slices_it() {
    let dir = tmpdir("rnn");
    let text = format!("{RNN_TOML}\n[[variant]]\nname = \"lambda_0.8\"\n[[variant]]\nname = \"lambda_1.25\"\nset = [\"rnn.w_scale=1.25\"]\n");
    batchscope::app::rnn::rnn(&args(&dir, &text), BackendChoice::Cpu).unwrap();
    let s = summary(&dir);
    let v = s["variants"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    for (run, lambda) in v.iter().zip([0.8f64, 1.25]) {
        let g = run["growth_init"].as_f64().unwrap();
        assert!((g - lambda.ln()).abs() < 1e-4, "growth {g} vs ln λ = {}", lambda.ln());
        assert!((run["spectral_radius_init"].as_f64().unwrap() - lambda).abs() < 1e-5);
    }
    for f in [
        "dh_norms_init.svg",
        "growth.svg",
        "clipping.svg",
        "variants.csv",
        "lambda_0.8/loss.svg",
        "lambda_1.25/dh_norms.svg",
        "lambda_1.25/spectrum.svg",
    ] {
        assert!(dir.join("out").join(f).exists(), "{f} missing");
    }
    let dir2 = tmpdir("rnn-landscape");
    let text = format!("{RNN_TOML}\n[landscape]\nmodes = [\"line\", \"path\", \"symmetry\"]\npoints = 5\nsign_flips = true\n");
    batchscope::app::landscape::landscape(&args(&dir2, &text), BackendChoice::Cpu, None).unwrap();
    let s = summary(&dir2);
    assert_eq!(s["model"], "rnn");
    assert!(s["symmetry"]["relative_difference"].as_f64().unwrap() < 2e-6, "{}", s["symmetry"]);
    let _ = (std::fs::remove_dir_all(&dir), std::fs::remove_dir_all(&dir2));
}

#[test]
fn depth_command_measures_per_layer_norms() {
    let dir = tmpdir("depth");
    let text = r#"
[depth]
layers = 12
width = 16
[model]
activation = "identity"
[data]
kind = "gaussian_mixture"
n_train = 128
n_val = 16
dim = 8
classes = 3
[train]
batch_size = 32
optimizer = "sgd"
lr = 0.001
steps = 4
log_every = 2
[[variant]]
name = "g0.7"
set = ["model.init_scale=0.7"]
[[variant]]
name = "g1.4"
set = ["model.init_scale=1.4"]
"#;
    batchscope::app::depth::depth(&args(&dir, text), BackendChoice::Cpu).unwrap();
    let s = summary(&dir);
    let v = s["variants"].as_array().unwrap();
    let mut growth = Vec::new();
    for (run, gain) in v.iter().zip([0.7f64, 1.4]) {
        assert_eq!(run["layers"], 13);
        assert_eq!(run["points"].as_array().unwrap().len(), 3, "init, step 2, step 4");
        // The 16 validation rows, before the first step and after the last: a 0-1 error in
        // sixteenths, and a loss that is not the minibatch's.
        for key in ["val_error_init", "val_error_final"] {
            let e = run[key].as_f64().unwrap_or_else(|| panic!("{key}: {}", run[key]));
            assert!((0.0..=1.0).contains(&e) && (e * 16.0).fract() == 0.0, "{key} = {e}");
        }
        let (v0, l0) =
            (run["val_loss_init"].as_f64().unwrap(), run["points"][0]["loss"].as_f64().unwrap());
        assert!(v0.is_finite() && v0 > 0.0 && v0 != l0, "val {v0} vs minibatch {l0}");
        // Back-propagated signal: about ln g per layer (random square layers of gain g; a width
        // of 16 leaves ±0.15 of sampling noise and a −O(1/width) bias).
        let g = run["delta_growth_init"].as_f64().unwrap();
        assert!((g - gain.ln()).abs() < 0.2, "δ growth {g} vs ln g = {}", gain.ln());
        growth.push(g);
    }
    // The same draws scaled by 2: the growth differs by ln 2 per layer.
    let diff = growth[1] - growth[0];
    assert!((diff - 2f64.ln()).abs() < 0.06, "growth(1.4) − growth(0.7) = {diff}, want ln 2");
    assert!(dir.join("out").join("layer_norms_init.svg").exists());
    // Every logged step's norms, streamed: 2 variants × 3 points × 13 layers, and the header.
    let csv = std::fs::read_to_string(dir.join("out").join("layer_norms.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3 * 13, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("g0.7,0,1,"), "{csv}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary: bad configs and checkpoints give one `error:` line naming the problem, exit 2.
#[test]
fn new_commands_reject_bad_input_cleanly() {
    let dir = tmpdir("cli");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_batchscope")).args(args).output().expect("run")
    };
    let bad_rnn = dir.join("bad_rnn.toml");
    std::fs::write(&bad_rnn, "[rnn]\nhiden = 4\n").unwrap();
    let bad_dir = dir.join("bad_dir.toml");
    std::fs::write(&bad_dir, format!("{MLP_TOML}\n[landscape]\nline_directions = [\"sideways\"]\n"))
        .unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, MLP_TOML).unwrap();
    let twice = dir.join("twice.toml");
    std::fs::write(&twice, format!("{MLP_TOML}\n[landscape]\nmodes = [\"line\", \"line\"]\n")).unwrap();
    let many = dir.join("many.toml");
    let dirs = vec!["\"random\""; 65].join(", ");
    std::fs::write(&many, format!("{MLP_TOML}\n[landscape]\nline_directions = [{dirs}]\n")).unwrap();
    let rnn_hessian = dir.join("rnn_hessian.toml");
    std::fs::write(
        &rnn_hessian,
        format!("{RNN_TOML}\n[landscape]\nmodes = [\"line\"]\nline_directions = [\"hessian\"]\n"),
    )
    .unwrap();
    let missing = dir.join("nope.safetensors");
    let out = dir.join("out");
    // The evaluation holds its training examples in memory even when training streams them.
    let streamed = "data.mode=\"stream\"";
    let cases: [(Vec<&str>, &str); 9] = [
        (
            vec![
                "landscape",
                "--backend",
                "cpu",
                "--config",
                good.to_str().unwrap(),
                "--set",
                streamed,
                "--set",
                "data.n_train=4000000000000",
                "--set",
                "landscape.eval_train=0",
                "--out",
                out.to_str().unwrap(),
            ],
            "bytes",
        ),
        (
            vec!["depth", "--backend", "cpu", "--set", streamed, "--out", out.to_str().unwrap()],
            "data.mode",
        ),
        (
            vec![
                "landscape",
                "--backend",
                "cpu",
                "--config",
                rnn_hessian.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            "MLP only",
        ),
        (vec!["landscape", "--backend", "cpu", "--config", twice.to_str().unwrap()], "twice"),
        (vec!["landscape", "--backend", "cpu", "--config", many.to_str().unwrap()], "at most 64"),
        (vec!["rnn", "--backend", "cpu", "--config", bad_rnn.to_str().unwrap()], "hiden"),
        (vec!["rnn", "--backend", "cpu", "--set", "train.lr=-1"], "train.lr"),
        (
            vec!["landscape", "--backend", "cpu", "--config", bad_dir.to_str().unwrap()],
            "landscape.line_directions",
        ),
        (
            vec![
                "landscape",
                "--backend",
                "cpu",
                "--config",
                good.to_str().unwrap(),
                "--checkpoint",
                missing.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            "nope.safetensors",
        ),
    ];
    for (args, needle) in cases {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("no error line: {err}"));
        assert!(line.contains(needle), "`{line}` should name `{needle}`");
    }
    assert!(!out.exists(), "a bad checkpoint must not leave a run directory");
    let _ = std::fs::remove_dir_all(&dir);
}

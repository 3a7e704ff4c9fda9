//! Mixed-precision training on both backends: the f16 quickstart reaches the f32 run's
//! validation error, f16 runs log the loss scale and skipped steps (f32 runs do not), an
//! overflowing step is skipped exactly, halving the scale, and the GPU's paired updates train
//! bit for bit like one update per tensor, in both precisions.

mod common;

use std::path::{Path, PathBuf};

use batchscope::backend::half::scaler;
use batchscope::backend::Backend;
use batchscope::config::Config;
use batchscope::model::{Mlp, Targets};
use batchscope::train::amp::MixedState;
use batchscope::train::{run_train, Clip, Optimizer, TrainOptions, TrainState};
use common::{indices, tmpdir, uniform};

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml")
}

fn lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics line"))
        .collect()
}

fn f16_quickstart<B: Backend>(b: &B) {
    let mut errors = Vec::new();
    for precision in ["f32", "f16"] {
        let dir = tmpdir(&format!("qs-{precision}-{:?}", b.kind()));
        let sets = vec![format!("model.precision=\"{precision}\"")];
        let cfg = Config::load(Some(&quickstart()), &sets).expect("config");
        let s = run_train(b, &cfg, &TrainOptions::default(), &dir).expect("train");
        let err = s.final_val_error.expect("val error");
        let m = lines(&dir);
        let last = m.last().expect("a metrics line");
        match precision {
            "f32" => assert!(last.get("loss_scale").is_none() && last.get("skipped_steps").is_none()),
            _ => {
                let scale = last["loss_scale"].as_f64().expect("loss_scale");
                let skipped = last["skipped_steps"].as_u64().expect("skipped_steps");
                println!("{precision}: loss scale {scale}, {skipped} skipped steps");
                assert!(scale > 0.0 && scale.is_finite());
            }
        }
        // config.toml names the precision only when it is not the default f32.
        assert_eq!(cfg.to_toml().contains("precision = \"f16\""), precision == "f16");
        assert!(!cfg.to_toml().contains("loss_scale"));
        println!("{} {precision}: validation error {:.2}%", b.device_name(), 100.0 * err);
        errors.push(err);
    }
    let gap = 100.0 * (errors[1] - errors[0]);
    assert!(gap <= 0.5, "f16 validation error is {gap:.2} points above f32's");
}
both_backends!(f16_quickstart_reaches_the_f32_validation_error, f16_quickstart);

/// Two classes of a small MLP: one clean step at scale 1024, then the scale is forced to 2^100
/// (d logits × S overflow f16, so the gradients are inf/NaN): that step alone is skipped —
/// parameters and velocity untouched — and the scale halves; the next clean step updates again.
fn overflow_skips_exactly_that_step<B: Backend>(b: &B) {
    let cfg = Config::load(Some(&quickstart()), &[]).expect("config");
    let model = Mlp::new(cfg.mlp_spec()).expect("model");
    let rows = 32;
    let opt = Optimizer::of(&cfg.train);
    let params = model.init(b, 5).expect("init");
    let mut st = TrainState::new(b, model.clone(), params, rows, &opt).expect("state");
    st.mixed = Some(MixedState::new(b, &model, rows, 1024.0, 1000).expect("f16 state"));
    let x = b.upload(&uniform(3, rows * model.inputs(), 2.0)).expect("x");
    let labels = b.upload_idx(&indices(4, rows, model.outputs() as u32)).expect("labels");
    let t = Targets::Classes(&labels);
    let snapshot = |st: &TrainState<B>| -> Vec<Vec<f32>> {
        let mut v: Vec<Vec<f32>> = st.params.tensors.iter().map(|p| b.read(p).unwrap()).collect();
        if let Some(vel) = &st.velocity {
            v.extend(vel.tensors.iter().map(|p| b.read(p).unwrap()));
        }
        v
    };
    let state = |st: &TrainState<B>| b.read(&st.mixed.as_ref().unwrap().scaler).unwrap();
    let clip = Clip::default();
    st.record_step(b, &x, &t, &opt, 0.05, &clip).expect("step 1");
    assert_eq!(state(&st), vec![1024.0, 0.0, 1.0, 0.0]);
    let after1 = snapshot(&st);
    // Inject an overflow: a loss scale no f16 gradient survives.
    let mut s = state(&st);
    s[scaler::SCALE] = 2f32.powi(100);
    b.write(&mut st.mixed.as_mut().unwrap().scaler, &s).expect("write scale");
    st.record_step(b, &x, &t, &opt, 0.05, &clip).expect("step 2");
    assert_eq!(state(&st), vec![2f32.powi(99), 0.0, 0.0, 1.0], "halved, one skipped step");
    assert_eq!(snapshot(&st), after1, "the overflowed step must not change any parameter");
    let mut s = state(&st);
    s[scaler::SCALE] = 1024.0;
    b.write(&mut st.mixed.as_mut().unwrap().scaler, &s).expect("write scale");
    st.record_step(b, &x, &t, &opt, 0.05, &clip).expect("step 3");
    assert_eq!(state(&st), vec![1024.0, 0.0, 1.0, 1.0]);
    let after3 = snapshot(&st);
    assert_ne!(after3, after1, "a clean step updates again");
    assert!(after3.iter().flatten().all(|v| v.is_finite()));
}
both_backends!(
    an_overflowing_f16_step_is_skipped_and_halves_the_scale,
    overflow_skips_exactly_that_step
);

/// metrics.jsonl without `elapsed_s`.
fn stripped(dir: &Path) -> Vec<serde_json::Value> {
    let mut m = lines(dir);
    for l in &mut m {
        l.as_object_mut().expect("object").remove("elapsed_s");
    }
    m
}

/// An f16 run whose scaler moves (an initial scale that overflows, growth every 3 clean
/// steps) stopped at step 45 and resumed equals the uninterrupted run bitwise: the scale, the
/// clean-step counter and the skipped steps travel in the checkpoint. A checkpoint without
/// them (written before they were saved) still resumes, with a fresh scale.
fn f16_resume_is_bitwise<B: Backend>(b: &B) {
    use batchscope::train::{amp, checkpoint};
    let sets: Vec<String> = [
        "model.precision=\"f16\"",
        "train.epochs=0",
        "train.steps=100",
        "train.eval_every=20",
        "train.log_every=5",
        "train.loss_scale=16777216",
        "train.loss_scale_growth_interval=3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut c = Config::load(Some(&quickstart()), &sets).expect("config");
    let (full, part, old) = (
        tmpdir(&format!("f16-full-{:?}", b.kind())),
        tmpdir(&format!("f16-part-{:?}", b.kind())),
        tmpdir(&format!("f16-old-{:?}", b.kind())),
    );
    let resume = TrainOptions { resume: true, ..Default::default() };
    c.train.steps = 100;
    run_train(b, &c, &TrainOptions::default(), &full).expect("uninterrupted");
    // summary.json says the run was f16 and where its loss scale ended (as the last line does).
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("summary.json")).expect("summary"))
            .expect("json");
    let last = lines(&full).pop().expect("metrics");
    assert_eq!(summary["precision"], "f16", "{summary}");
    assert_eq!(summary["loss_scale"], last["loss_scale"], "{summary}");
    assert_eq!(summary["skipped_steps"], last["skipped_steps"], "{summary}");
    c.train.steps = 45;
    run_train(b, &c, &TrainOptions::default(), &part).expect("first part");
    run_train(b, &c, &TrainOptions::default(), &old).expect("first part, old format");
    let last = old.join("last.safetensors");
    let mut ck = checkpoint::load(&last).expect("checkpoint");
    for k in amp::META_KEYS {
        assert!(ck.metadata.remove(k).is_some(), "{k} saved");
    }
    checkpoint::save(&last, &ck).expect("save without the scaler state");
    c.train.steps = 100;
    run_train(b, &c, &resume, &part).expect("resumed");
    run_train(b, &c, &resume, &old).expect("resumed from an old checkpoint");
    let (a, r, o) = (stripped(&full), stripped(&part), stripped(&old));
    let skipped = a.last().and_then(|l| l["skipped_steps"].as_u64()).expect("skipped_steps");
    let scales: Vec<f64> = a.iter().filter_map(|l| l["loss_scale"].as_f64()).collect();
    assert!(skipped > 0, "the initial scale overflows");
    assert!(scales.windows(2).any(|w| w[1] > w[0]), "the scale grows: {scales:?}");
    assert_eq!(a.len(), r.len(), "same number of metric lines");
    for (x, y) in a.iter().zip(&r) {
        assert_eq!(x, y, "the resumed f16 run differs from the uninterrupted one");
    }
    assert_eq!(o.len(), a.len());
    assert_ne!(o, a, "a fresh scale at step 45 changes the rest of the run");
    println!("f16 resume bitwise on {} ({skipped} skipped steps)", b.device_name());
}
both_backends!(f16_resume_equals_uninterrupted_run_bitwise, f16_resume_is_bitwise);

/// The GPU's paired updates (a layer's weight and bias per dispatch: `update_params`,
/// `amp_unscale_all`, `amp_update_params`) train bit for bit like one dispatch per tensor, in
/// f32 and in f16 through overflows (skipped steps) and growths, with momentum and weight decay:
/// the same metrics and the same checkpoint bytes.
#[test]
fn paired_gpu_updates_train_bitwise_like_one_tensor_updates() {
    for precision in ["f32", "f16"] {
        let sets: Vec<String> = [
            format!("model.precision=\"{precision}\""),
            "train.epochs=0".into(),
            "train.steps=40".into(),
            "train.eval_every=20".into(),
            "train.log_every=5".into(),
            "train.weight_decay=0.001".into(),
            "train.loss_scale=16777216".into(),
            "train.loss_scale_growth_interval=3".into(),
        ]
        .into();
        let cfg = Config::load(Some(&quickstart()), &sets).expect("config");
        let mut runs = Vec::new();
        for pairs in [true, false] {
            let b = common::gpu();
            b.set_update_pairs(pairs);
            let dir = tmpdir(&format!("pairs-{precision}-{pairs}"));
            run_train(&b, &cfg, &TrainOptions::default(), &dir).expect("train");
            let ck = batchscope::checkpoint::load(&dir.join("last.safetensors")).expect("checkpoint");
            let mut meta = ck.metadata.clone();
            meta.remove("elapsed_s");
            let tensors: Vec<(String, Vec<u32>)> = ck
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.data.iter().map(|v| v.to_bits()).collect()))
                .collect();
            runs.push((stripped(&dir), (tensors, meta)));
        }
        assert!(!runs[0].0.is_empty());
        assert_eq!(
            runs[0].0, runs[1].0,
            "{precision}: metrics differ between paired and one-tensor updates"
        );
        assert!(
            runs[0].1 == runs[1].1,
            "{precision}: checkpoints differ between paired and one-tensor updates"
        );
        if precision == "f16" {
            let skipped = runs[0].0.last().and_then(|l| l["skipped_steps"].as_u64()).expect("skipped");
            assert!(skipped > 0, "the initial scale overflows");
        }
    }
}

/// The GPU's f16 step with the weight gradients unscaled in their products' stores trains bit
/// for bit like the step with unscale dispatches after the backward pass (and bias-gradient
/// dispatches after the products), through overflows
/// and growths, at a batch whose bias gradients are summed per invocation (16) and one whose
/// bias gradients run in col_sum workgroups of the product's dispatch (64).
#[test]
fn fused_unscale_trains_bitwise_like_unscale_dispatches() {
    for batch in [16, 64] {
        let sets: Vec<String> = vec![
            "model.precision=\"f16\"".into(),
            format!("train.batch_size={batch}"),
            "train.epochs=0".into(),
            "train.steps=40".into(),
            "train.eval_every=20".into(),
            "train.log_every=5".into(),
            "train.loss_scale=16777216".into(),
            "train.loss_scale_growth_interval=3".into(),
        ];
        let cfg = Config::load(Some(&quickstart()), &sets).expect("config");
        let mut runs = Vec::new();
        for fused in [true, false] {
            let b = common::gpu();
            b.set_fused_unscale(fused);
            // The fused run sums bias gradients past B = 32 in col_sum workgroups on any adapter.
            b.set_col_sum_workgroups(fused);
            let dir = tmpdir(&format!("fused-unscale-{batch}-{fused}"));
            run_train(&b, &cfg, &TrainOptions::default(), &dir).expect("train");
            b.set_fused_unscale(true);
            let ck = batchscope::checkpoint::load(&dir.join("last.safetensors")).expect("checkpoint");
            let tensors: Vec<(String, Vec<u32>)> = ck
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.data.iter().map(|v| v.to_bits()).collect()))
                .collect();
            runs.push((stripped(&dir), tensors));
        }
        assert_eq!(runs[0].0, runs[1].0, "B = {batch}: metrics differ, fused unscale against unfused");
        assert!(
            runs[0].1 == runs[1].1,
            "B = {batch}: checkpoints differ, fused unscale against unfused"
        );
        let skipped = runs[0].0.last().and_then(|l| l["skipped_steps"].as_u64()).expect("skipped");
        assert!(skipped > 0, "the initial scale overflows");
    }
}

/// The monitors of an f16 run measure in f32 whatever the loss scale: gᵀHg and the actual ΔL
/// equal the f32 run's (gᵀHg grew with the scale S, since the R-operator read ∂L/∂z and ∂L/∂a
/// times S, and ΔL compared an f16 loss with an f32 one); a step the scaler skipped measured
/// nothing, so its monitor fields are absent (its norm, reported as 0, gave the noise monitor
/// |G|² below 0).
fn f16_monitors_measure_in_f32<B: Backend>(b: &B) {
    let run = |tag: &str, sets: &[&str]| {
        let dir = tmpdir(&format!("mon-{tag}-{:?}", b.kind()));
        let mut all = vec![
            "train.epochs=0",
            "train.steps=5",
            "train.log_every=1",
            "monitor.curvature_every=5",
            "train.loss_scale_growth_interval=100000",
        ];
        all.extend_from_slice(sets);
        let sets: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        let cfg = Config::load(Some(&quickstart()), &sets).expect("config");
        run_train(b, &cfg, &TrainOptions::default(), &dir).expect("train");
        lines(&dir)[4].clone()
    };
    let f32_line = run("f32", &[]);
    let field = |l: &serde_json::Value, k: &str| l[k].as_f64().unwrap_or_else(|| panic!("{k}: {l}"));
    for scale in ["1", "1024", "65536"] {
        let l = run(
            &format!("s{scale}"),
            &["model.precision=\"f16\"", &format!("train.loss_scale={scale}")],
        );
        assert_eq!(l["skipped_steps"].as_u64(), Some(0), "{l}");
        for (k, tol) in [("gTHg", 1e-3), ("gTg", 1e-3), ("actual_delta_loss", 1e-3)] {
            let (a, want) = (field(&l, k), field(&f32_line, k));
            assert!((a - want).abs() <= tol * want.abs(), "S = {scale}: {k} {a} against f32's {want}");
        }
    }
    // Every step overflows at 2^100 at first: the skipped steps' monitor fields are null.
    let dir = tmpdir(&format!("mon-skipped-{:?}", b.kind()));
    let sets: Vec<String> = [
        "model.precision=\"f16\"",
        "train.loss_scale=1.2676506e30",
        "train.epochs=0",
        "train.steps=3",
        "train.log_every=1",
        "monitor.curvature_every=1",
        "monitor.noise_every=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = Config::load(Some(&quickstart()), &sets).expect("config");
    run_train(b, &cfg, &TrainOptions::default(), &dir).expect("train");
    for l in lines(&dir) {
        assert_eq!(l["skipped_steps"].as_u64(), Some(l["step"].as_u64().unwrap_or(0)), "{l}");
        for k in ["gTg", "gTHg", "actual_delta_loss", "noise_g2", "noise_trace", "b_simple"] {
            assert!(l.get(k).is_some_and(|v| v.is_null()), "a skipped step measured {k}: {l}");
        }
    }
}
both_backends!(f16_monitors_measure_in_f32_at_any_loss_scale, f16_monitors_measure_in_f32);

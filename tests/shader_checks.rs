//! wgpu's shader runtime checks change no result. batchscope compiles its kernels as trusted
//! modules, without the index clamps and loop counters wgpu adds by default
//! (src/backend/gpu/pipelines.rs); compiled with them instead, training runs in both precisions
//! (a small batch: the skinny and fused small-batch kernels; a large one: the tiled products, the
//! fused weight-gradient steps, gradient clipping, the f16 loss scaler through overflows) and
//! Hessian-vector products give the same bits. Every product kernel is compared the same way in
//! src/backend/gpu/matmul/tile_tests.rs.

mod common;

use std::path::{Path, PathBuf};

use batchscope::backend::{Activation, Backend};
use batchscope::config::Config;
use batchscope::model::{hvp, LossKind, Mlp, MlpSpec, ParamSet, Targets};
use batchscope::train::{run_train, TrainOptions};
use common::{indices, tmpdir, uniform};

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml")
}

/// metrics.jsonl without `elapsed_s`, and the last checkpoint's tensors as bits.
type RunBits = (Vec<serde_json::Value>, Vec<(String, Vec<u32>)>);

fn run_bits(checks: bool, cfg: &Config, name: &str) -> RunBits {
    let b = common::gpu();
    b.set_shader_checks(checks);
    assert_eq!(b.shader_checks(), checks);
    let dir = tmpdir(&format!("{name}-checks-{checks}"));
    run_train(&b, cfg, &TrainOptions::default(), &dir).expect("train");
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("metrics line");
            v.as_object_mut().expect("object").remove("elapsed_s");
            v
        })
        .collect();
    let ck = batchscope::checkpoint::load(&dir.join("last.safetensors")).expect("checkpoint");
    let tensors = ck
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.data.iter().map(|v| v.to_bits()).collect()))
        .collect();
    (metrics, tensors)
}

#[test]
fn training_runs_are_bitwise_the_same_with_wgpus_shader_checks() {
    let cases = [("f32", 8, "relu"), ("f32", 160, "tanh"), ("f16", 8, "relu"), ("f16", 96, "tanh")];
    for (precision, batch, act) in cases {
        let sets: Vec<String> = vec![
            format!("model.precision=\"{precision}\""),
            format!("model.activation=\"{act}\""),
            "model.hidden=[48, 40]".into(),
            format!("train.batch_size={batch}"),
            "train.epochs=0".into(),
            "train.steps=12".into(),
            "train.eval_every=6".into(),
            "train.log_every=3".into(),
            "train.weight_decay=0.001".into(),
            "train.clip_norm=2.0".into(),
            "train.loss_scale=16777216".into(),
            "train.loss_scale_growth_interval=3".into(),
        ];
        let cfg = Config::load(Some(&quickstart()), &sets).expect("config");
        let name = format!("{precision}-{batch}");
        let trusted = run_bits(false, &cfg, &name);
        let checked = run_bits(true, &cfg, &name);
        assert_eq!(trusted.0.len(), 4, "{name}: a metrics line every 3 steps");
        assert_eq!(trusted.0, checked.0, "{name}: metrics differ with wgpu's shader checks");
        assert!(trusted.1 == checked.1, "{name}: checkpoints differ with wgpu's shader checks");
        println!(
            "{name} {act}: {} metrics lines and {} tensors, the same bits",
            trusted.0.len(),
            trusted.1.len()
        );
    }
}

#[test]
fn hessian_vector_products_are_bitwise_the_same_with_wgpus_shader_checks() {
    for (act, loss, rows) in
        [(Activation::Tanh, LossKind::SoftmaxXent, 37), (Activation::Relu, LossKind::Mse, 6)]
    {
        let mlp = Mlp::new(MlpSpec { sizes: vec![20, 33, 17, 5], activation: act, loss }).unwrap();
        let (names, shapes) = mlp.param_layout();
        let sized = |seed: u64, scale: f32| -> Vec<Vec<f32>> {
            shapes
                .iter()
                .enumerate()
                .map(|(i, s)| uniform(seed + i as u64, s.iter().product(), scale))
                .collect()
        };
        let (params, v) = (sized(10, 0.4), sized(30, 1.0));
        let x = uniform(50, rows * 20, 1.5);
        let labels = indices(51, rows, 5);
        let targets = uniform(52, rows * 5, 1.0);
        let mut out_bits = Vec::new();
        for checks in [false, true] {
            let b = common::gpu();
            b.set_shader_checks(checks);
            let p = ParamSet::from_host(&b, &names, &shapes, &params).unwrap();
            let vs = ParamSet::from_host(&b, &names, &shapes, &v).unwrap();
            let mut out = p.zeros_like(&b).unwrap();
            let mut ws = mlp.workspace(&b, rows).unwrap();
            let mut rws = mlp.rop_workspace(&b, rows).unwrap();
            let xb = b.upload(&x).unwrap();
            let (lb, tb) = (b.upload_idx(&labels).unwrap(), b.upload(&targets).unwrap());
            let t = match loss {
                LossKind::SoftmaxXent => Targets::Classes(&lb),
                LossKind::Mse => Targets::Values(&tb),
            };
            hvp(&b, &mlp, &p, &vs, &xb, &t, &mut ws, &mut rws, &mut out).unwrap();
            let flat = out.to_flat(&b).unwrap();
            assert!(flat.iter().any(|&h| h != 0.0) && flat.iter().all(|h| h.is_finite()));
            out_bits.push(flat.iter().map(|h| h.to_bits()).collect::<Vec<u32>>());
        }
        assert_eq!(out_bits[0], out_bits[1], "{act:?} {loss:?}: H v differs with wgpu's shader checks");
    }
}

/// Unless the environment asks for wgpu's checks, a backend compiles trusted modules, and
/// switching recompiles: a kernel dispatched before and after each switch gives the same bits.
#[test]
fn trusted_modules_are_the_default_and_switching_recompiles() {
    let b = common::gpu();
    let asked = std::env::var("BATCHSCOPE_SHADER_CHECKS").as_deref() == Ok("1");
    assert_eq!(b.shader_checks(), asked, "the default follows BATCHSCOPE_SHADER_CHECKS");
    let x = b.upload(&uniform(7, 1000, 3.0)).unwrap();
    let sum = |b: &batchscope::backend::gpu::GpuBackend| {
        let mut out = b.zeros(1).unwrap();
        b.sum(1000, &x, &mut out, 0).unwrap();
        b.read(&out).unwrap()[0].to_bits()
    };
    let first = sum(&b);
    for checks in [!asked, asked, true, false] {
        b.set_shader_checks(checks);
        assert_eq!(b.shader_checks(), checks);
        assert_eq!(sum(&b), first, "checks {checks}");
    }
}

/// What trusted modules remove, counted in the SPIR-V naga emits for a Vulkan device (wgpu's
/// options: restricted indexing and loop bounding when checked; storage buffers left to the
/// device's robust access either way): every entry point of every shader has no more
/// instructions trusted than checked, and the hot kernels lose their clamps. The counts are
/// printed (device-independent figures; the README quotes them after `spirv-opt -O`).
#[test]
fn trusted_spirv_drops_the_index_clamps_and_loop_counters() {
    use batchscope::backend::gpu::kernels::Shader;
    use naga::proc::BoundsCheckPolicy;
    let tiles = batchscope::backend::gpu::tile::TILES.map(Shader::MatmulTile);
    let hot = ["matmul_tiled_nn4", "matmul_skinny8", "dgrad_wgrad_update_momentum", "linear_xent_sums"];
    let mut shown = Vec::new();
    for shader in Shader::ALL.into_iter().chain(tiles.into_iter().take(1)) {
        let (module, info) = common::spirv::module_of(shader);
        for ep in &module.entry_points {
            let counts = [true, false].map(|checked| {
                let index = match checked {
                    true => BoundsCheckPolicy::Restrict,
                    false => BoundsCheckPolicy::Unchecked,
                };
                let options =
                    common::spirv::vulkan_options(index, BoundsCheckPolicy::Unchecked, checked);
                let what = shader.file_name();
                spirv_counts(&common::spirv::entry_spirv((&module, &info), &ep.name, &options, &what))
            });
            let [(ci, cu), (ti, tu)] = counts;
            assert!(
                ti <= ci,
                "{} {}: {ti} instructions trusted, {ci} checked",
                shader.file_name(),
                ep.name
            );
            assert!(tu <= cu, "{} {}: {tu} clamps trusted, {cu} checked", shader.file_name(), ep.name);
            if hot.contains(&ep.name.as_str()) && shader.file_name() != "matmul_tile.wgsl" {
                assert!(cu >= 5 && tu * 3 <= cu, "{}: {cu} clamps checked, {tu} trusted", ep.name);
                shown.push(format!(
                    "{:<30} {ci:>6} -> {ti:>6} instructions, {cu:>3} -> {tu} UMin",
                    ep.name
                ));
            }
        }
    }
    assert_eq!(shown.len(), hot.len(), "{shown:?}");
    println!("naga SPIR-V, wgpu's checks -> trusted:\n{}", shown.join("\n"));
}

/// Instructions of a SPIR-V module, and its `UMin`s (GLSL.std.450 extended instruction 38,
/// naga's index clamp).
fn spirv_counts(words: &[u32]) -> (usize, usize) {
    let (mut at, mut n, mut umin) = (5, 0, 0);
    while at < words.len() {
        let (count, opcode) = ((words[at] >> 16) as usize, words[at] & 0xffff);
        // OpExtInst: result type, result, set, instruction, operands.
        if opcode == 12 && words.get(at + 4) == Some(&38) {
            umin += 1;
        }
        n += 1;
        at += count.max(1);
    }
    (n, umin)
}

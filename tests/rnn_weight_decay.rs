//! `batchscope rnn` applies `train.weight_decay`: one SGD step from the same initialization with
//! decay wd and without differs by exactly −lr·wd·θ₀ (the decay was dropped when the RNN's
//! optimizer was built, and both variants trained alike).

mod common;

use batchscope::checkpoint;
use common::tmpdir;

/// An adding-problem RNN, one SGD step (lr 0.1), two variants: wd = 0 and wd = 0.5.
const ONE_STEP: &str = r#"
[rnn]
hidden = 8
activation = "tanh"
w_init = "orthogonal"
w_scale = 1.0
init_seed = 1

[sequence]
task = "adding"
length = 6
n_train = 64
n_val = 16
seed = 42

[train]
batch_size = 16
optimizer = "sgd"
lr = 0.1
steps = 1
log_every = 1
eval_every = 0

[diagnostics]
power_iters = 20

[[variant]]
name = "plain"
set = ["train.weight_decay=0.0"]

[[variant]]
name = "decayed"
set = ["train.weight_decay=0.5"]
"#;

/// θ_decayed − θ_plain = −lr·wd·θ₀ after one step, for every tensor (elementwise, to 10⁻⁵ of
/// the largest |lr·wd·θ₀| of the tensor).
#[test]
fn rnn_weight_decay_shrinks_the_parameters_by_lr_wd_theta() {
    let d = tmpdir("rnn-wd");
    let c = d.join("rnn.toml");
    std::fs::write(&c, ONE_STEP).expect("write config");
    let out = d.join("run");
    let o = common::cli::batchscope("rnn-wd")
        .args(["rnn", "--backend", "cpu", "--quiet", "--config"])
        .arg(&c)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run batchscope");
    assert!(o.status.success(), "{}", common::cli::stderr(&o));
    let ck = |variant: &str, file: &str| {
        checkpoint::load(&out.join(variant).join(file))
            .unwrap_or_else(|e| panic!("{variant}/{file}: {e}"))
    };
    let (init_plain, init_decayed) =
        (ck("plain", "init.safetensors"), ck("decayed", "init.safetensors"));
    let (plain, decayed) = (ck("plain", "last.safetensors"), ck("decayed", "last.safetensors"));
    let (lr, wd) = (0.1f64, 0.5f64);
    let mut checked = 0;
    for t0 in &init_plain.tensors {
        let same = init_decayed.get(&t0.name).expect("the same tensors");
        assert_eq!(t0.data, same.data, "{}: the variants start from the same parameters", t0.name);
        let (p, q) = (plain.get(&t0.name).expect("plain"), decayed.get(&t0.name).expect("decayed"));
        let want: Vec<f64> = t0.data.iter().map(|&v| -lr * wd * v as f64).collect();
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if scale == 0.0 {
            // A tensor initialized at 0 (a bias): decay moves nothing.
            assert_eq!(p.data, q.data, "{}", t0.name);
            continue;
        }
        let worst = p
            .data
            .iter()
            .zip(&q.data)
            .zip(&want)
            .map(|((&a, &c), w)| ((c as f64 - a as f64) - w).abs())
            .fold(0.0, f64::max);
        println!("{}: {} values, worst |Δ + lr·wd·θ₀| {worst:.2e} of {scale:.2e}", t0.name, want.len());
        assert!(
            worst <= 1e-5 * scale,
            "{}: Δθ is not −lr·wd·θ₀ (worst error {worst}, scale {scale})",
            t0.name
        );
        checked += 1;
    }
    assert!(checked >= 2, "the recurrent and input weights are decayed");
}

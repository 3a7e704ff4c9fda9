//! `depth`'s per-layer gradient norms are the gradient's, ‖∂L/∂W_l‖, at every logged step:
//! with clipping on they used to be read after the clipping had rescaled the gradients in
//! place, so every step after the first showed the clipped norms and hid the exploding
//! gradients the experiment exists to show.

mod common;

use batchscope::backend::Backend;
use batchscope::config::Config;
use batchscope::experiments::depth::run_depth;

/// Full batch, and a first update clipped to almost nothing (‖Δθ‖ ≤ lr · clip): step 1 sees
/// the examples of step 0 at all but the same θ, so its gradient norms equal the initial ones
/// (to that change), not the clipped norms (a factor clip / ‖g‖ below them).
fn norms_are_read_before_clipping<B: Backend>(b: &B) {
    for clip in ["train.clip_norm=0.01", "train.clip_value=0.0001"] {
        let sets: Vec<String> = [
            "model.hidden=[8,8,8]",
            "model.activation=\"tanh\"",
            "model.init_scale=1.5",
            "data.kind=\"gaussian_mixture\"",
            "data.dim=4",
            "data.classes=3",
            "data.n_train=128",
            "data.n_val=16",
            "train.batch_size=128",
            "train.optimizer=\"sgd\"",
            "train.lr=0.01",
            "train.epochs=0",
            "train.steps=2",
            "train.log_every=1",
            clip,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cfg = Config::load(None, &sets).expect("config");
        let run = run_depth(b, &cfg, "clipped").expect("depth");
        assert_eq!(run.points.len(), 3, "steps 0, 1, 2");
        let (init, later) = (&run.points[0].norms, &run.points[1].norms);
        for (l, (&a, &z)) in init.weight.iter().zip(&later.weight).enumerate() {
            assert!(
                (a - z).abs() <= 1e-3 * a,
                "{clip}: layer {l}: ‖∂L/∂W‖ {z} at step 1 against {a} at step 0 (same θ to 1e-4, same batch)"
            );
        }
    }
}
both_backends!(depth_norms_are_the_unclipped_gradients, norms_are_read_before_clipping);

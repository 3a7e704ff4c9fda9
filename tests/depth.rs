//! `depth`'s per-layer gradient norms are the gradient's, ‖∂L/∂W_l‖, at every logged step:
//! with clipping on they used to be read after the clipping had rescaled the gradients in
//! place, so every step after the first showed the clipped norms and hid the exploding
//! gradients the experiment exists to show. A long run keeps a bounded few of its logged
//! points (it held every one, 1.2 GB at 60 000 logged steps) and streams the rest.

mod common;

use batchscope::backend::Backend;
use batchscope::config::Config;
use batchscope::experiments::depth::{run_depth, KEPT_POINTS};

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
        let run = run_depth(b, &cfg, "clipped", &mut |_| Ok(())).expect("depth");
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

/// 301 logged points of a 300-step run: the sink sees each, in order; the run keeps at most
/// [`KEPT_POINTS`], evenly spaced from initialisation to the last step, and the kept ones are
/// the sink's own (the same norms).
fn long_runs_keep_a_bounded_few_points<B: Backend>(b: &B) {
    let sets: Vec<String> = [
        "model.hidden=[6,6,6]",
        "data.kind=\"gaussian_mixture\"",
        "data.dim=4",
        "data.classes=3",
        "data.n_train=64",
        "data.n_val=16",
        "train.batch_size=16",
        "train.optimizer=\"sgd\"",
        "train.lr=0.01",
        "train.epochs=0",
        "train.steps=300",
        "train.log_every=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = Config::load(None, &sets).expect("config");
    let mut seen = Vec::new();
    let run = run_depth(b, &cfg, "long", &mut |p| {
        seen.push(p.clone());
        Ok(())
    })
    .expect("depth");
    assert_eq!(seen.iter().map(|p| p.step).collect::<Vec<_>>(), (0..=300).collect::<Vec<u64>>());
    let kept: Vec<u64> = run.points.iter().map(|p| p.step).collect();
    assert!(kept.len() <= KEPT_POINTS && kept.len() >= KEPT_POINTS / 2, "{kept:?}");
    assert_eq!((kept[0], kept.last().copied()), (0, Some(300)));
    let gaps: Vec<u64> = kept.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[..gaps.len() - 1].iter().all(|&g| g == gaps[0]), "even spacing: {gaps:?}");
    for p in &run.points {
        let s = &seen[p.step as usize];
        assert_eq!((p.loss.to_bits(), &p.norms.weight), (s.loss.to_bits(), &s.norms.weight));
    }
}
both_backends!(depth_keeps_a_bounded_few_logged_points, long_runs_keep_a_bounded_few_points);

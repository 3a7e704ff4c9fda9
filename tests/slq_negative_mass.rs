//! SLQ's negative eigen-mass and the condition estimate against the exact spectrum of small
//! tanh MLPs' Hessians (built column by column from HVPs and decomposed densely).
//!
//! "Exact" is the fraction of eigenvalues below `−1e-4 · max|λ|`. With 64 Lanczos steps the
//! spectrum is resolved only to about span/64 near 0, where these Hessians hold 14–53 % of their
//! eigenvalues (a softmax null space and its neighbours): no quadrature rule recovers the sign
//! split inside one node, so the estimate is held to 0.15 of the exact fraction (the weight of
//! about one unresolved node) and must lie in the Chebyshev–Markov–Stieltjes bracket, which must
//! contain the exact value. Counting nodes by their sign alone (the old rule) was 0.2–0.33 off.

mod common;

use batchscope::backend::Activation;
use batchscope::curvature::slq::{conditioning, ConditionStatus, NEGATIVE_TOL};
use batchscope::curvature::{lanczos, random_unit, slq, DenseSym, HvpOperator, HvpOptions, SlqOptions};
use batchscope::data::{Dataset, Labels};
use batchscope::model::{LossKind, Mlp, MlpSpec, ParamSet};
use common::{cpu, indices, uniform};

#[test]
fn negative_mass_and_condition_match_the_exact_spectrum() {
    let b = cpu();
    let mlp = Mlp::new(MlpSpec {
        sizes: vec![6, 16, 16, 4],
        activation: Activation::Tanh,
        loss: LossKind::SoftmaxXent,
    })
    .expect("mlp");
    // (init scale, seed): the first is the case (sign count 0.64 against exact 0.43).
    for (scale, seed) in [(1.0f32, 1u64), (0.5, 2), (1.0, 3), (0.1, 4)] {
        let rows = 128;
        let data = Dataset {
            x: uniform(seed, rows * 6, 1.5),
            targets: Labels::Classes { labels: indices(seed + 1, rows, 4), classes: 4 },
            n: rows,
            dim: 6,
        };
        let (names, shapes) = mlp.param_layout();
        let params = ParamSet::from_host(&b, &names, &shapes, &mlp.init_host_scaled(seed + 5, scale))
            .expect("params");
        let mut op = HvpOperator::new(
            &b,
            mlp.clone(),
            params,
            &data,
            HvpOptions { chunk_rows: 128, cache_bytes: 1 << 24 },
        )
        .expect("operator");
        let eig = DenseSym::from_op(&mut op).expect("dense").eigenvalues().expect("eig");
        let n = eig.len();
        let lmax = eig[n - 1];
        let thr = NEGATIVE_TOL * eig[0].abs().max(lmax.abs());
        let exact = eig.iter().filter(|&&l| l < -thr).count() as f64 / n as f64;

        let sq = slq(&mut op, &SlqOptions { runs: 4, steps: 64, seed: 0 }, None).expect("slq");
        let mass = sq.mass_below(thr);
        let sign_count: f64 =
            sq.nodes.iter().zip(&sq.weights).filter(|(t, _)| **t < -thr).map(|(_, w)| w).sum();
        let (lo, hi) = sq.mass_bracket(thr);
        println!("scale {scale} seed {seed}: exact {exact:.3} estimate {mass:.3} bracket [{lo:.3}, {hi:.3}] sign count {sign_count:.3}");
        assert!((mass - exact).abs() <= 0.15, "seed {seed}: negative mass {mass} vs exact {exact}");
        // The estimate and the bracket sum the same node weights in different orders: allow
        // their rounding (a few ulps), nothing more.
        let ulps = 1e-12;
        assert!(lo - ulps <= mass && mass <= hi + ulps, "seed {seed}: {mass} outside [{lo}, {hi}]");
        assert!(lo <= exact && exact <= hi, "seed {seed}: exact {exact} outside [{lo}, {hi}]");
        if seed == 1 {
            assert!((mass - exact).abs() < (sign_count - exact).abs(), "better than counting signs");
        }

        // Softmax's shift invariance makes these Hessians singular: eigenvalues within the
        // tolerance exist, and the condition estimate says so instead of a finite number.
        assert!(eig.iter().any(|l| l.abs() <= thr), "seed {seed}: singular within tolerance");
        let ritz = lanczos(&mut op, &random_unit(17, n), 64).expect("lanczos").ritz().expect("ritz");
        // 64 steps need not converge a Ritz value onto the null space: singular or unresolved,
        // never a finite number.
        let k = conditioning(&ritz.values, &ritz.residuals, lmax, thr);
        assert_eq!(k.estimate, None, "seed {seed}: {k:?}");
        assert!(matches!(k.status, ConditionStatus::Singular | ConditionStatus::Unresolved), "{k:?}");
    }
}

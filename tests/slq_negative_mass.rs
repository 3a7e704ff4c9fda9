//! SLQ's negative eigen-mass and the condition estimate against the exact spectrum of a small
//! tanh MLP's Hessian (built column by column from HVPs and decomposed densely).

mod common;

use batchscope::backend::Activation;
use batchscope::curvature::{lanczos, random_unit, slq, DenseSym, HvpOperator, HvpOptions, SlqOptions};
use batchscope::data::{Dataset, Labels};
use batchscope::model::{LossKind, Mlp, MlpSpec, ParamSet};
use common::{cpu, indices, uniform};

#[test]
fn experiment() {
    let b = cpu();
    for (scale, seed) in [(1.0f32, 1u64), (0.5, 2), (1.0, 3), (0.1, 4)] {
        let mlp = Mlp::new(MlpSpec {
            sizes: vec![6, 16, 16, 4],
            activation: Activation::Tanh,
            loss: LossKind::SoftmaxXent,
        })
        .unwrap();
        let rows = 128;
        let data = Dataset {
            x: uniform(seed, rows * 6, 1.5),
            targets: Labels::Classes { labels: indices(seed + 1, rows, 4), classes: 4 },
            n: rows,
            dim: 6,
        };
        let (names, shapes) = mlp.param_layout();
        let params =
            ParamSet::from_host(&b, &names, &shapes, &mlp.init_host_scaled(seed + 5, scale)).unwrap();
        let mut op = HvpOperator::new(
            &b,
            mlp.clone(),
            params,
            &data,
            HvpOptions { chunk_rows: 128, cache_bytes: 1 << 24 },
        )
        .unwrap();
        let eig = DenseSym::from_op(&mut op).unwrap().eigenvalues().unwrap();
        let n = eig.len();
        let scale_l = eig[0].abs().max(eig[n - 1].abs());
        let thr = 1e-4 * scale_l;
        let exact = eig.iter().filter(|&&l| l < -thr).count() as f64 / n as f64;
        let near0 = eig.iter().filter(|&&l| l.abs() <= thr).count();
        let ritz = lanczos(&mut op, &random_unit(17, n), 64).unwrap().ritz().unwrap();
        let min_i = (0..ritz.values.len())
            .min_by(|&i, &j| ritz.values[i].abs().total_cmp(&ritz.values[j].abs()))
            .unwrap();
        let sq = slq(&mut op, &SlqOptions { runs: 4, steps: 64, seed: 0 }, Some(&ritz)).unwrap();
        println!(
            "scale {scale} seed {seed}: n {n} λ [{:.4}, {:.4}] exact {exact:.3} near0 {near0} | nodes-count {:.3} | new {:.3} | min|θ| {:.3e} r {:.3e} w {:.3e} cond_old {:.1}",
            eig[0], eig[n - 1], sq.mass_below(thr), sq.negative_mass_of(thr), ritz.values[min_i], ritz.residuals[min_i], ritz.weights[min_i], eig[n-1] / ritz.values[min_i].abs()
        );
    }
}

//! `GpuBackend::set_auto_rule`: the rule `MatmulVariant::Auto` follows (the skinny kernel up to
//! more rows, a smaller tile of the autotuner's family for short grids) changes which kernel runs
//! a product, never what it computes: every product and fused epilogue of a training step equals
//! the CPU (the reference) within float tolerance on ragged shapes under each rule, and a short
//! training run under each rule tracks the CPU's.

mod common;

use batchscope::backend::gpu::auto_rule::{AutoRule, SMALL_GRID_TILES};
use batchscope::backend::gpu::tile::TileCfg;
use batchscope::backend::{Activation, Backend, Epilogue, Gemm};
use batchscope::config::OptimizerKind;
use batchscope::train::Optimizer;
use common::steps::mlp_run;
use common::{assert_close, cpu, gpu, uniform};

/// The default (the skinny kernel to 128 rows or 16 columns), the rule before it (32 rows), the
/// 64x64 tile for short grids, both, and the skinny kernel for shallow products and small
/// weight gradients (the output layer's backward).
fn rules() -> [AutoRule; 5] {
    let t64 = Some(TileCfg { bm: 64, bn: 64, bk: 8 });
    let old = AutoRule { skinny_max_m: 32, skinny_max_n: 0, ..AutoRule::default() };
    [
        AutoRule::default(),
        old,
        AutoRule { small_grid_tile: t64, ..old },
        AutoRule { small_grid_tile: t64, ..AutoRule::default() },
        AutoRule { skinny_max_k: 40, skinny_ta_max_m: 16, ..AutoRule::default() },
    ]
}

/// `C = op(A)·op(B)` with a bias + ReLU epilogue for plain A, a bias-gradient one for
/// transposed A (the weight gradient), and nothing for the rest; every output.
fn product<B: Backend>(b: &B, g: &Gemm, seed: u64) -> Vec<Vec<f32>> {
    let a = b.upload(&uniform(seed, g.m * g.k, 1.0)).unwrap();
    let w = b.upload(&uniform(seed + 1, g.k * g.n, 1.0)).unwrap();
    let mut c = b.upload(&uniform(seed + 2, g.m * g.n, 9.0)).unwrap();
    match (g.trans_a, g.trans_b) {
        (false, _) => {
            let bias = b.upload(&uniform(seed + 3, g.n, 1.0)).unwrap();
            let mut y = b.upload(&uniform(seed + 4, g.m * g.n, 9.0)).unwrap();
            let epi = Epilogue::BiasAct(Activation::Relu, &bias, &mut y);
            b.matmul_epilogue(g, &a, &w, &mut c, epi).unwrap();
            vec![b.read(&c).unwrap(), b.read(&y).unwrap()]
        }
        (true, false) => {
            let mut gb = b.upload(&uniform(seed + 5, g.m, 9.0)).unwrap();
            b.matmul_epilogue(g, &a, &w, &mut c, Epilogue::BiasGrad { s: &a, bias_grad: &mut gb })
                .unwrap();
            vec![b.read(&c).unwrap(), b.read(&gb).unwrap()]
        }
        (true, true) => {
            b.matmul(g, &a, &w, &mut c).unwrap();
            vec![b.read(&c).unwrap()]
        }
    }
}

#[test]
fn every_rule_computes_the_cpu_products() {
    let (c, g) = (cpu(), gpu());
    let mut cases = 0;
    for rule in rules() {
        g.set_auto_rule(rule);
        // Batch rows past 32 (skinny past its old reach, the short grids), ragged widths and
        // depths, the step's three layouts: X·Wᵀ, dZ·W and dZᵀ·X.
        for (i, &(m, n, k)) in [
            (33, 77, 129),
            (64, 300, 784),
            (100, 10, 257),
            (128, 129, 64),
            (129, 96, 33),
            (300, 520, 100),
            (10, 300, 517),
            (10, 300, 24),
        ]
        .iter()
        .enumerate()
        {
            for (ta, tb) in [(false, true), (false, false), (true, false)] {
                let gm = Gemm::nn(m, n, k).trans(ta, tb);
                // The rule is what runs: skinny where it says so, the small-grid tile's module
                // where it applies, else matmul.wgsl's tiled kernel.
                let name = g.matmul_kernel_name(&gm).expect("kernel");
                let plain = m <= rule.skinny_max_m || n <= rule.skinny_max_n || k <= rule.skinny_max_k;
                let skinny = if ta { m <= rule.skinny_ta_max_m } else { plain };
                assert_eq!(name.contains("skinny"), skinny, "{rule:?} {gm:?}: {name}");
                let short_grid = m.div_ceil(128) * n.div_ceil(128) < SMALL_GRID_TILES;
                let tile = !skinny && short_grid && rule.small_grid_tile.is_some();
                assert_eq!(!skinny && !name.starts_with("Matmul::"), tile, "{rule:?} {gm:?}: {name}");
                let want = product(&c, &gm, 40 + i as u64);
                let got = product(&g, &gm, 40 + i as u64);
                let tol = 1e-5 * (gm.k.max(gm.m) as f32).sqrt() * 4.0;
                for (j, (w, o)) in want.iter().zip(&got).enumerate() {
                    assert_close(&format!("{rule:?} {gm:?} output {j}"), w, o, tol, tol);
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 5 * 8 * 3);
}

#[test]
fn training_under_every_rule_tracks_the_cpu() {
    let (c, g) = (cpu(), gpu());
    let opt = Optimizer::new(OptimizerKind::Momentum, 0.9, 0.0);
    let sizes = [96, 200, 130, 10];
    for rows in [48, 100] {
        let (mut sc, xc, yc) = mlp_run(&c, &sizes, Activation::Relu, rows, &opt);
        let want = common::steps::losses(&c, &mut sc, (&xc, &yc), &opt, 5);
        for rule in rules() {
            g.set_auto_rule(rule);
            let (mut sg, xg, yg) = mlp_run(&g, &sizes, Activation::Relu, rows, &opt);
            let got = common::steps::losses(&g, &mut sg, (&xg, &yg), &opt, 5);
            assert_close(&format!("{rule:?} B = {rows}: losses"), &want, &got, 1e-4, 1e-4);
            let (pw, pg) = (sc.params.to_flat(&c).unwrap(), sg.params.to_flat(&g).unwrap());
            assert_close(&format!("{rule:?} B = {rows}: parameters"), &pw, &pg, 1e-4, 1e-4);
        }
    }
}

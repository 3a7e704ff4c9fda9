//! The tile family's scalar kernel (`shaders/matmul_tile.wgsl`, `matmul_tiled`) reads no element
//! of A past the ragged end of k: with K = 17 the last slice's first vec4 of a row holds k = 16
//! and zeros, and the element after it, A[i, 17], is A[i + 1, 0] in memory. A NaN there must
//! stay in row i + 1 of C (a bound of `p + 1 <= k1` read it, and NaN · 0 made row i NaN).

mod common;

use batchscope::backend::gpu::tile::TILES;
use batchscope::backend::gpu::MatmulVariant;
use batchscope::backend::{Backend, Gemm};
use common::{assert_close, uniform};

fn product<B: Backend>(b: &B, g: &Gemm, a: &[f32], bm: &[f32]) -> Vec<f32> {
    let a = b.upload(a).expect("A");
    let bb = b.upload(bm).expect("B");
    let mut c = b.upload(&vec![0.0; g.m * g.n]).expect("C");
    b.matmul(g, &a, &bb, &mut c).expect("matmul");
    b.read(&c).expect("read C")
}

/// C = A·B with A 20×17 holding NaN at [4, 0], [9, 0], [14, 0], on every tile of the family the
/// adapter runs (the auto rule's small-grid tile, skinny kernels off): rows 3, 8, 13 of C (whose
/// next element in memory is a NaN) are finite and equal the CPU's, every row without a NaN
/// too; rows 4, 9, 14 are NaN on both.
#[test]
fn tile_kernels_read_nothing_past_a_ragged_k() {
    let gpu = common::gpu();
    let cpu = common::cpu();
    let (m, n, k) = (20, 8, 17);
    let g = Gemm::nn(m, n, k);
    let mut a = uniform(1, m * k, 1.0);
    let nan_rows = [4, 9, 14];
    for &r in &nan_rows {
        a[r * k] = f32::NAN;
    }
    let bm = uniform(2, k * n, 1.0);
    let want = product(&cpu, &g, &a, &bm);
    gpu.set_matmul_variant(MatmulVariant::Auto);
    let mut ran = 0;
    for tile in TILES {
        gpu.set_auto_rule(common::family_rule(tile));
        let kernel = gpu.matmul_kernel_name(&g).expect("kernel");
        if !kernel.contains(&tile.name()) {
            println!("{}: not run here ({kernel})", tile.name());
            continue;
        }
        assert!(kernel.ends_with("::matmul_tiled"), "the scalar entry point for k = 17: {kernel}");
        let got = product(&gpu, &g, &a, &bm);
        for i in 0..m {
            let (w, o) = (&want[i * n..(i + 1) * n], &got[i * n..(i + 1) * n]);
            if nan_rows.contains(&i) {
                assert!(w.iter().all(|v| v.is_nan()), "CPU row {i}: {w:?}");
                assert!(o.iter().all(|v| v.is_nan()), "{kernel} row {i}: {o:?}");
            } else {
                assert!(o.iter().all(|v| v.is_finite()), "{kernel} row {i} read past k: {o:?}");
                assert_close(&format!("{kernel} row {i}"), w, o, 1e-5, 1e-5);
            }
        }
        println!("{kernel}: rows before a NaN row finite and equal to the CPU's");
        ran += 1;
    }
    gpu.set_auto_rule(batchscope::backend::gpu::auto_rule::AutoRule::default());
    assert!(ran > 0, "no tile of the family runs on this adapter");
}

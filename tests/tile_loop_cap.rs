//! The tile family's kernels (`shaders/matmul_tile.wgsl`) walk all of k in each invocation,
//! and Debian 12's llvmpipe stops each invocation after 65 535 loop iterations, which these
//! count as bk + 2 per slice of bk: a product of ones read 52 429 of k at bk = 8 and 58 255 at
//! bk = 16 whatever its depth, silently. Up to the cap each product is whole; past it, refused
//! by name. One test in its own binary: `BATCHSCOPE_SPLITK=0` (read once per process) makes
//! every product walk all of k.

mod common;

use batchscope::backend::gpu::tile::TILES;
use batchscope::backend::gpu::MatmulVariant;
use batchscope::backend::{Backend, Gemm};

#[test]
fn family_tiles_run_to_the_loop_cap_and_are_refused_past_it() {
    std::env::set_var("BATCHSCOPE_SPLITK", "0");
    let gpu = common::gpu();
    let capped = gpu.loop_iteration_limit().expect("loop probe").is_some();
    gpu.set_matmul_variant(MatmulVariant::Auto);
    let mut ran = 0;
    for tile in TILES {
        gpu.set_auto_rule(common::family_rule(tile));
        let (whole, cut) = match tile.bk {
            8 => (52_424, 52_432),
            _ => (58_240, 58_256),
        };
        for (k, past_cap) in [(whole, false), (cut, true)] {
            let g = Gemm::nn(8, 8, k);
            let kernel = gpu.matmul_kernel_name(&g).expect("kernel");
            if !kernel.contains(&tile.name()) {
                println!("{}: not run here ({kernel})", tile.name());
                continue;
            }
            let ones = gpu.upload(&vec![1.0; 8 * k]).expect("A");
            let mut c = gpu.zeros(64).expect("C");
            match (gpu.matmul(&g, &ones, &ones, &mut c), capped && past_cap) {
                (Err(e), true) => {
                    let e = e.to_string();
                    assert!(e.contains(&format!("depth {k} in one pass")), "{kernel}: {e}");
                }
                (Ok(()), false) => {
                    assert_eq!(gpu.read(&c).expect("C"), vec![k as f32; 64], "{kernel} k = {k}");
                    ran += 1;
                }
                (done, refused) => panic!("{kernel} k = {k}: {done:?}, expected refused = {refused}"),
            }
        }
    }
    assert!(ran > 0, "no tile of the family ran");
}

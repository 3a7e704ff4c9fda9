//! The staged cooperative-matrix kernel (`shaders/matmul_coop_staged.wgsl`) in its three load widths
//! (workgroup memory of f16, vec4<f16> or 16-byte elements, `backend/gpu/staged.rs`) against the CPU twin, at the tile side
//! the adapter offers: 16x16 on subgroups of 32 (NVIDIA), or 8x8 on subgroups of 8 (Mesa's
//! lavapipe from 26.x; `.ci/coop_lavapipe.sh` runs this file there). Every length of the
//! kernel scales with the tile side, so at 8x8 a CPU runs the same indexing, clamping,
//! staging and epilogues that the H200 runs at 16x16.
//!
//! Hardware-gated like `f16_parity`'s `matmul_coop_matches_cpu`: the parity test is ignored
//! by default and fails where no configuration exists; `staged_kernels_say_where_they_run`
//! always runs and says loudly whether it could.

mod common;

use batchscope::backend::cpu::f16::round_f16;
use batchscope::backend::gpu::autotune::verify::pattern;
use batchscope::backend::gpu::matmul_f16::{self, HalfKernel};
use batchscope::backend::gpu::{coop_check, matmul_coop, GpuBackend};
use batchscope::backend::{Backend, Gemm};
use common::half::{half_of, ops};
use common::{cpu, gpu, uniform};

/// The staged kernel in its three load widths.
const STAGED: [HalfKernel; 3] =
    [HalfKernel::CoopStaged, HalfKernel::CoopStagedV4, HalfKernel::CoopStagedV8];

/// Shapes in tiles (m, n, k): one tile; ragged within one block; a deep k (784 at 16x16) of 49
/// tiles, an odd count (a half-empty last slice); two and three blocks with clamped last
/// blocks; 7 tiles of depth.
const SHAPES_IN_TILES: [(usize, usize, usize); 5] =
    [(1, 1, 1), (3, 5, 2), (6, 4, 49), (5, 9, 3), (10, 17, 7)];

const PAIRS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

/// `kernel`'s product of `a`, `b` (f32 values stored as halves) on the GPU, C starting as NaN.
fn gpu_product(gp: &GpuBackend, kernel: HalfKernel, g: &Gemm, a: &[f32], b: &[f32]) -> Vec<f32> {
    let (ha, hb) = (half_of(gp, a), half_of(gp, b));
    let out = gp.upload(&vec![f32::NAN; g.m * g.n]).unwrap();
    matmul_f16::matmul_half(&gp.dev, kernel, g, &ha.words.0, ha.len, &hb.words.0, hb.len, &out.0)
        .unwrap_or_else(|e| panic!("{kernel:?} {g:?}: {e}"));
    gp.read(&out).unwrap()
}

/// The CPU twin's f16 product (operands rounded to f16, f32 sums).
fn cpu_product(g: &Gemm, a: &[f32], b: &[f32]) -> Vec<f32> {
    let c = cpu();
    let (ha, hb) = (half_of(&c, a), half_of(&c, b));
    let mut out = c.upload(&vec![f32::NAN; g.m * g.n]).unwrap();
    ops(&c).matmul_half(g, &ha, &hb, &mut out).unwrap();
    c.read(&out).unwrap()
}

/// `Σ_p |a_ip b_pj|` of the f16-rounded operands, per element of C.
fn magnitudes(g: &Gemm, a: &[f32], b: &[f32]) -> Vec<f64> {
    let at =
        |i: usize, p: usize| round_f16(if g.trans_a { a[p * g.m + i] } else { a[i * g.k + p] }) as f64;
    let bt =
        |p: usize, j: usize| round_f16(if g.trans_b { b[j * g.k + p] } else { b[p * g.n + j] }) as f64;
    (0..g.m * g.n).map(|e| (0..g.k).map(|p| (at(e / g.n, p) * bt(p, e % g.n)).abs()).sum()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Always runs: says loudly whether the staged parity test can run here; where it cannot, a
/// staged product is one clear error, not a panic or a wrong result.
#[test]
fn staged_kernels_say_where_they_run() {
    let gp = gpu();
    let name = gp.dev.ctx.summary.name.clone();
    match matmul_coop::coop_shape(&gp.dev.ctx) {
        None => {
            let why = matmul_coop::unavailable_reason(&gp.dev.ctx).expect("a reason");
            println!(
                "\n*** STAGED COOPERATIVE-MATRIX PARITY NOT RUN on {name}: {why}. \
                 `staged_kernels_match_cpu_at_the_adapters_tile` is ignored here; it is NOT a pass \
                 (.ci/coop_lavapipe.sh runs it on Mesa's lavapipe). ***\n"
            );
            for kernel in STAGED {
                let g = Gemm::nn(64, 64, 64);
                let (a, b) = (uniform(1, 64 * 64, 1.0), uniform(2, 64 * 64, 1.0));
                let (ha, hb) = (half_of(&gp, &a), half_of(&gp, &b));
                let out = gp.upload(&vec![0.0; 64 * 64]).unwrap();
                let err = matmul_f16::matmul_half(
                    &gp.dev,
                    kernel,
                    &g,
                    &ha.words.0,
                    ha.len,
                    &hb.words.0,
                    hb.len,
                    &out.0,
                )
                .expect_err("no staged kernel here");
                assert!(err.to_string().contains(&why), "{kernel:?}: {err}");
            }
        }
        Some(s) => println!(
            "\n*** staged cooperative kernels run on {name} at {t}x{t} tiles, subgroups of {sg}: \
             `cargo test --release --test coop_staged -- --ignored` ***\n",
            t = s.tile,
            sg = s.subgroup
        ),
    }
}

/// Every load width against the CPU twin at the adapter's tile side, every transpose pair:
/// - exact operands (multiples of 1/8: every sum exact in f32): the CPU's bits;
/// - uniform operands: within `2 (k + 2) u32 Σ|a b|` of the CPU, and the same bits for every
///   width (the same multiply-adds in the same order);
/// - the first-use check's product and fused stores (bias + ReLU with the f16 copy, ReLU', the
///   loss scaler's unscaling) on its 80x144x48 shape, against the packed kernel bit for bit.
#[test]
#[ignore = "needs 16x16 (subgroups of 32) or 8x8 (subgroups of 8) f16 cooperative matrices: see staged_kernels_say_where_they_run"]
fn staged_kernels_match_cpu_at_the_adapters_tile() {
    let gp = gpu();
    let Some(shape) = matmul_coop::coop_shape(&gp.dev.ctx) else {
        panic!("no staged cooperative configuration on {}", gp.dev.ctx.summary.name);
    };
    let t = shape.tile as usize;
    let mut cases = 0;
    for (s, &(mt, nt, kt)) in SHAPES_IN_TILES.iter().enumerate() {
        for (ta, tb) in PAIRS {
            let g = Gemm::nn(mt * t, nt * t, kt * t).trans(ta, tb);
            let salt = 10 * s as u64;
            let (ea, eb) = (pattern(g.m * g.k, salt + 1), pattern(g.k * g.n, salt + 2));
            let exact = bits(&cpu_product(&g, &ea, &eb));
            let (ua, ub) = (uniform(salt + 3, g.m * g.k, 1.0), uniform(salt + 4, g.k * g.n, 1.0));
            let want = cpu_product(&g, &ua, &ub);
            let mag = magnitudes(&g, &ua, &ub);
            let kf = g.k as f64 + 2.0;
            let gamma = 2.0 * kf / 16_777_216.0;
            let mut first: Option<Vec<u32>> = None;
            for kernel in STAGED {
                let what = format!("{kernel:?} {}x{}x{} ta={ta} tb={tb} at {t}x{t}", g.m, g.n, g.k);
                assert!(
                    bits(&gpu_product(&gp, kernel, &g, &ea, &eb)) == exact,
                    "{what}: exact operands"
                );
                let got = gpu_product(&gp, kernel, &g, &ua, &ub);
                for (i, (&o, &w)) in got.iter().zip(&want).enumerate() {
                    let tol = gamma * mag[i] + 1e-30;
                    assert!(((o - w) as f64).abs() <= tol, "{what} [{i}]: {o} vs {w} (tol {tol})");
                }
                match &first {
                    None => first = Some(bits(&got)),
                    Some(b) => assert!(*b == bits(&got), "{what}: other bits than the f16 staging"),
                }
                cases += 1;
            }
        }
    }
    for kernel in STAGED {
        for (ta, tb) in PAIRS {
            let (m, n, k) = coop_check::SHAPE;
            let g = Gemm::nn(m, n, k).trans(ta, tb);
            assert_eq!(coop_check::check_one(&gp.dev, kernel, &g).unwrap(), None, "{kernel:?} {g:?}");
            assert_eq!(coop_check::check_stores(&gp.dev, kernel, &g).unwrap(), None, "{kernel:?} {g:?}");
            cases += 1;
        }
    }
    println!("staged parity ok at {t}x{t}, subgroups of {}: {cases} cases", shape.subgroup);
}

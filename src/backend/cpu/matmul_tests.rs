//! Unit tests of the matmul family: every kernel against the f64 triple loop, the shape table,
//! and thread-count independence of the hand-written kernels.

use super::matmul::{choose_with, matmul_naive, mkl, openblas, sgemm_with, Kernel, Machine};
use super::tests::{assert_close, rand_vec, transpose, with_threads};
use super::CpuBackend;
use crate::backend::{Backend, BackendError, Gemm};

/// The machines the shape table tells apart.
const PLAIN: Machine = Machine::PLAIN;
const BLAS: Machine = Machine { blas: true, ..Machine::PLAIN };
const WIDE_DOT: Machine = Machine { wide_dot: true, ..Machine::PLAIN };
const MKL: Machine = Machine { mkl: true, ..Machine::PLAIN };

/// Whether `which` can run here (the two system libraries are loaded only where installed).
fn loaded(which: Kernel) -> bool {
    match which {
        Kernel::OpenBlas => openblas::get().is_some(),
        Kernel::Mkl => mkl::get().is_some(),
        _ => true,
    }
}

#[test]
fn matmul_2x3_every_transpose() {
    // A = [[1,2,3],[4,5,6]] (2x3), B = [[7,8],[9,10],[11,12]] (3x2):
    // A·B = [[1*7+2*9+3*11, 1*8+2*10+3*12], [4*7+5*9+6*11, 4*8+5*10+6*12]] = [[58,64],[139,154]].
    let a = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
    let want = [58.0, 64.0, 139.0, 154.0];
    let cpu = CpuBackend::new();
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let sa = if ta { transpose(&a, 2, 3) } else { a.clone() };
        let sb = if tb { transpose(&b, 3, 2) } else { b.clone() };
        let mut c = vec![f32::NAN; 4];
        cpu.matmul(&Gemm::nn(2, 2, 3).trans(ta, tb), &sa, &sb, &mut c).unwrap();
        assert_eq!(c, want, "trans_a={ta} trans_b={tb}");
        // alpha = 2, beta = -1 on C = want: 2*AB - AB = AB.
        cpu.matmul(&Gemm::nn(2, 2, 3).trans(ta, tb).scaled(2.0, -1.0), &sa, &sb, &mut c).unwrap();
        assert_eq!(c, want, "alpha/beta, trans_a={ta} trans_b={tb}");
    }
}

#[test]
fn matmul_ragged_shapes_match_naive_for_every_kernel() {
    let dims = [1usize, 3, 17, 65];
    let mut seed = 1;
    for &m in &dims {
        for &n in &dims {
            for &k in &dims {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-1.5, 0.25)] {
                        seed += 1;
                        let g = Gemm::nn(m, n, k).trans(ta, tb).scaled(alpha, beta);
                        let a = rand_vec(m * k, seed);
                        let b = rand_vec(k * n, seed + 1000);
                        let c0 = rand_vec(m * n, seed + 2000);
                        let mut want = c0.clone();
                        matmul_naive(&g, &a, &b, &mut want).unwrap();
                        for which in Kernel::ALL.into_iter().filter(|w| w.supports(&g)) {
                            let mut c = c0.clone();
                            sgemm_with(which, &g, &a, &b, &mut c).unwrap();
                            let what = format!("{} {g:?}", which.name());
                            assert_close(&c, &want, 1e-5 * k as f32, 1e-5, &what);
                        }
                    }
                }
            }
        }
    }
}

/// `g` in a layout `which` supports (`Dot` needs `A · Bᵀ`, the others take `op(A) · B`).
fn layout_for(which: Kernel, g: Gemm) -> Gemm {
    if which == Kernel::Dot {
        g.trans(false, true)
    } else {
        g.trans(which == Kernel::Gemm || which == Kernel::Rows, false)
    }
}

#[test]
fn matmul_beta_zero_ignores_nan_and_empty_dims() {
    for which in Kernel::ALL.into_iter().filter(|&w| loaded(w)) {
        let (m, n, k) = (17, 65, 3);
        let g = layout_for(which, Gemm::nn(m, n, k));
        let (a, b) = (rand_vec(m * k, 1), rand_vec(k * n, 2));
        let mut c = vec![f32::NAN; m * n];
        sgemm_with(which, &g, &a, &b, &mut c).unwrap();
        assert!(c.iter().all(|v| v.is_finite()), "{}", which.name());

        // k == 0: C = beta * C; beta == 0 overwrites NaN with 0.
        let mut c = vec![f32::NAN, 2.0];
        sgemm_with(which, &layout_for(which, Gemm::nn(1, 2, 0)), &[], &[], &mut c).unwrap();
        assert_eq!(c, [0.0, 0.0]);
        let mut c = vec![1.0, 2.0];
        let g = layout_for(which, Gemm::nn(1, 2, 0).scaled(1.0, 3.0));
        sgemm_with(which, &g, &[], &[], &mut c).unwrap();
        assert_eq!(c, [3.0, 6.0]);
        // m == 0 or n == 0: nothing to do, nothing to check but the lengths.
        sgemm_with(which, &layout_for(which, Gemm::nn(0, 5, 7)), &[], &rand_vec(35, 3), &mut [])
            .unwrap();
        sgemm_with(which, &layout_for(which, Gemm::nn(5, 0, 7)), &rand_vec(35, 3), &[], &mut [])
            .unwrap();
    }
}

#[test]
fn matmul_kernel_rejects_unsupported_layout() {
    let (a, b, mut c) = (rand_vec(6, 1), rand_vec(6, 2), vec![0.0; 4]);
    let nt = Gemm::nn(2, 2, 3).trans(false, true);
    assert!(matches!(sgemm_with(Kernel::Rows, &nt, &a, &b, &mut c), Err(BackendError::Invalid { .. })));
    let tn = Gemm::nn(2, 2, 3).trans(true, false);
    assert!(matches!(sgemm_with(Kernel::Dot, &tn, &a, &b, &mut c), Err(BackendError::Invalid { .. })));
}

/// The shape table on the products of an MLP 784-1024-1024-10 train step, without OpenBLAS.
#[test]
fn matmul_table_picks_thin_kernels_for_thin_products() {
    let fwd = |b: usize, o: usize, i: usize| choose_with(&Gemm::nn(b, o, i).trans(false, true), PLAIN);
    let dw = |b: usize, o: usize, i: usize| choose_with(&Gemm::nn(o, i, b).trans(true, false), PLAIN);
    let dx = |b: usize, o: usize, i: usize| choose_with(&Gemm::nn(b, i, o), PLAIN);
    for b in [2, 8, 32] {
        assert_eq!(fwd(b, 1024, 784), Kernel::Dot, "fwd B={b}");
        assert_eq!(dx(b, 1024, 1024), Kernel::Gemm, "dX B={b}");
    }
    for b in [1, 2, 4, 8, 16] {
        assert_eq!(dw(b, 1024, 784), Kernel::Rows, "dW B={b}");
    }
    assert_eq!(dw(17, 1024, 784), Kernel::Gemm, "dW B=17");
    for b in [32, 512, 4096] {
        assert_eq!(fwd(b, 10, 1024), Kernel::Dot, "output layer fwd B={b}");
    }
    for b in [1, 64, 4096] {
        assert_eq!(fwd(b, 1024, 784), Kernel::Gemm, "fwd B={b}");
        if b > 1 {
            assert_eq!(dw(b, 1024, 784), Kernel::Gemm, "dW B={b}");
        }
        assert_eq!(dx(b, 1024, 1024), Kernel::Gemm, "dX B={b}");
    }
}

/// With OpenBLAS loaded, the mid-batch batch-row products move to it; the rest stay.
#[test]
fn matmul_table_with_openblas_takes_mid_batch_row_products() {
    let fwd = |b: usize| choose_with(&Gemm::nn(b, 1024, 784).trans(false, true), BLAS);
    let dw = |b: usize| choose_with(&Gemm::nn(1024, 784, b).trans(true, false), BLAS);
    let dx = |b: usize| choose_with(&Gemm::nn(b, 1024, 1024), BLAS);
    for b in [64, 128, 256] {
        assert_eq!(fwd(b), Kernel::OpenBlas, "fwd B={b}");
    }
    for b in [1, 8, 32, 512, 4096] {
        assert_ne!(fwd(b), Kernel::OpenBlas, "fwd B={b}");
    }
    for b in [32, 64] {
        assert_eq!(dx(b), Kernel::OpenBlas, "dX B={b}");
    }
    for b in [1, 8, 128, 4096] {
        assert_eq!(dx(b), Kernel::Gemm, "dX B={b}");
    }
    for b in [1, 2, 64, 4096] {
        assert_ne!(dw(b), Kernel::OpenBlas, "dW B={b}");
    }
    // The narrow output layer stays on the dot kernel.
    assert_eq!(choose_with(&Gemm::nn(64, 10, 1024).trans(false, true), BLAS), Kernel::Dot);
}

/// With the dot kernel's AVX-512 path and no OpenBLAS, the forward product stays on the dot
/// kernel up to 128 rows; with OpenBLAS in the table, its measured rows stand.
#[test]
fn matmul_table_with_the_wide_dot_takes_forward_products_to_128_rows() {
    let fwd = |b: usize, on: Machine| choose_with(&Gemm::nn(b, 1024, 784).trans(false, true), on);
    for b in [2, 32, 64, 128] {
        assert_eq!(fwd(b, WIDE_DOT), Kernel::Dot, "fwd B={b}");
    }
    for b in [1, 256, 4096] {
        assert_eq!(fwd(b, WIDE_DOT), Kernel::Gemm, "fwd B={b}");
    }
    let both = Machine { blas: true, wide_dot: true, mkl: false };
    assert_eq!(fwd(64, both), Kernel::OpenBlas);
    assert_eq!(fwd(32, both), Kernel::Dot);
    // Input and weight gradients are not dot products of rows.
    assert_eq!(choose_with(&Gemm::nn(64, 1024, 1024), WIDE_DOT), Kernel::Gemm);
    assert_eq!(choose_with(&Gemm::nn(1024, 784, 64).trans(true, false), WIDE_DOT), Kernel::Gemm);
}

/// With MKL every product of the MLP step moves to it but the tiny-batch weight gradients
/// (the rows kernel, fused with the step) and the narrow output layer's forward product (dot).
#[test]
fn matmul_table_with_mkl_takes_every_product_but_the_fused_and_narrow_ones() {
    for on in [MKL, Machine { blas: true, wide_dot: true, mkl: true }] {
        let fwd = |b: usize| choose_with(&Gemm::nn(b, 1024, 784).trans(false, true), on);
        let dw = |b: usize| choose_with(&Gemm::nn(1024, 784, b).trans(true, false), on);
        let dx = |b: usize| choose_with(&Gemm::nn(b, 1024, 1024), on);
        for b in [1, 2, 32, 64, 256, 4096] {
            assert_eq!(fwd(b), Kernel::Mkl, "fwd B={b}");
            assert_eq!(dx(b), Kernel::Mkl, "dX B={b}");
        }
        for b in [1, 4, 8] {
            assert_eq!(dw(b), Kernel::Rows, "dW B={b}");
        }
        for b in [9, 16, 64, 4096] {
            assert_eq!(dw(b), Kernel::Mkl, "dW B={b}");
        }
        for b in [32, 4096] {
            assert_eq!(choose_with(&Gemm::nn(b, 10, 1024).trans(false, true), on), Kernel::Dot);
        }
        // The output layer's own weight gradient and input gradient go to MKL.
        assert_eq!(choose_with(&Gemm::nn(10, 1024, 64).trans(true, false), on), Kernel::Mkl);
        assert_eq!(choose_with(&Gemm::nn(64, 1024, 10), on), Kernel::Mkl);
    }
}

/// MKL's pieces that need no library: `BATCHSCOPE_BLAS` values naming MKL, its version string,
/// and which of its code paths are AVX-512.
#[test]
fn mkl_paths_versions_and_branches_are_read() {
    assert!(mkl::is_mkl_path("/opt/intel/oneapi/mkl/latest/lib/libmkl_rt.so.2"));
    assert!(mkl::is_mkl_path("libmkl_rt.so"));
    for not in ["/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "mkl", "/opt/mkl/libblas.so", ""] {
        assert!(!mkl::is_mkl_path(not), "{not}");
    }
    let full = "Intel(R) oneAPI Math Kernel Library Version 2026.2-Product Build 20260915 for Intel(R) 64 architecture applications";
    assert_eq!(mkl::short_version(full), "oneMKL 2026.2");
    assert_eq!(
        mkl::short_version("Intel(R) Math Kernel Library Version 2019.0.5 Product Build"),
        "oneMKL 2019.0.5"
    );
    assert_eq!(mkl::short_version("something else"), "oneMKL");
    for b in [12, 14, 15] {
        assert!(mkl::branch_is_avx512(b), "{b}");
    }
    for b in [0, 2, 4, 8, 10, 11, 13] {
        assert!(!mkl::branch_is_avx512(b), "{b}");
    }
}

/// Where `BATCHSCOPE_BLAS` names MKL (CI points it at the `mkl` wheel's libmkl_rt), it loads and
/// its kernel runs the tests above; its products are the same bits call after call (the
/// reproducibility mode it is loaded with), and its table takes the MLP's large products.
#[test]
fn mkl_loads_where_named_and_repeats_its_bits() {
    let named =
        std::env::var(openblas::ENV).is_ok_and(|v| v.trim() == "mkl" || mkl::is_mkl_path(v.trim()));
    if !named {
        eprintln!("mkl_loads_where_named_and_repeats_its_bits: {} names no MKL; the MKL kernel is not tested here", openblas::ENV);
        return;
    }
    let lib = mkl::get().unwrap_or_else(|| {
        panic!("{} names MKL but it did not load: {:?}", openblas::ENV, mkl::unused())
    });
    assert!(lib.version.starts_with("oneMKL"), "{}", lib.version);
    for g in [Gemm::nn(300, 1000, 784).trans(false, true), Gemm::nn(1000, 784, 300).trans(true, false)] {
        let (a, b) = (rand_vec(g.m * g.k, 1), rand_vec(g.k * g.n, 2));
        let run = || {
            let mut c = vec![0.0; g.m * g.n];
            sgemm_with(Kernel::Mkl, &g, &a, &b, &mut c).unwrap();
            c
        };
        let first = run();
        for _ in 0..3 {
            assert_eq!(first, run(), "{g:?}");
        }
        let mut want = vec![0.0; g.m * g.n];
        matmul_naive(&g, &a, &b, &mut want).unwrap();
        assert_close(&first, &want, 1e-5 * g.k as f32, 1e-5, "mkl");
    }
    if lib.as_wide_as_gemm() {
        assert_eq!(super::matmul::choose(&Gemm::nn(512, 1024, 1024).trans(false, true)), Kernel::Mkl);
    }
}

/// The padded copy is the one workspace a product keeps: a weight with aliasing rows, counted
/// whatever the batch (evaluation chunks run on `gemm`).
#[test]
fn matmul_workspace_is_the_padded_copy() {
    use super::matmul::workspace_bytes;
    assert_eq!(workspace_bytes(1024, 1024), 1024 * 1040 * 4);
    assert_eq!(workspace_bytes(1024, 512), 1024 * 528 * 4);
    assert_eq!(workspace_bytes(1024, 784), 0);
    assert_eq!(workspace_bytes(10, 1024), 0); // the 10-class layer is never padded
}

/// OpenBLAS takes part in the table only with kernels as wide as `gemm`'s: its AVX-512 cores are
/// recognised by name, its AVX2 ones (what 0.3.21 runs on AMD Zen 5) are not.
#[test]
fn openblas_avx512_cores_are_recognised_by_name() {
    for core in ["SkylakeX", "Cooperlake", "SapphireRapids", "SKYLAKEX"] {
        assert!(openblas::core_has_avx512(core), "{core}");
    }
    for core in ["Haswell", "Zen", "Sandybridge", "Prescott", "", "SkylakeX2"] {
        assert!(!openblas::core_has_avx512(core), "{core}");
    }
}

/// Where Debian's or Ubuntu's `libopenblas0` is installed (CI installs it), it loads, so the
/// OpenBLAS kernel's tests above run instead of skipping it.
#[test]
fn openblas_loads_where_installed() {
    let installed =
        ["/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"]
            .iter()
            .any(|p| std::path::Path::new(p).exists());
    let switched_off = std::env::var(openblas::ENV).is_ok_and(|v| {
        matches!(v.trim(), "builtin" | "off" | "none" | "mkl") || mkl::is_mkl_path(v.trim())
    });
    if installed && !switched_off {
        let blas = openblas::get().expect("libopenblas.so.0 is installed but did not load");
        assert!(!blas.core.is_empty(), "openblas_get_corename() gave nothing");
    } else {
        eprintln!("openblas_loads_where_installed: libopenblas.so.0 not installed (or switched off); the OpenBLAS kernel is not tested here");
    }
}

/// The hand-written kernels give bitwise the same product on 1 and 3 pool threads (each
/// element is one fixed chain of operations whatever the split); so does OpenBLAS, whose split
/// into blocks is a function of the shape alone.
#[test]
fn matmul_thin_kernels_do_not_depend_on_thread_count() {
    let cases = [
        (Kernel::Rows, Gemm::nn(8, 1000, 300)),
        (Kernel::Rows, Gemm::nn(500, 300, 8).trans(true, false).scaled(0.5, 1.0)),
        (Kernel::Dot, Gemm::nn(8, 1000, 301).trans(false, true)),
        (Kernel::Dot, Gemm::nn(1000, 10, 300).trans(false, true).scaled(2.0, -1.0)),
        (Kernel::OpenBlas, Gemm::nn(200, 1000, 300).trans(false, true)),
        (Kernel::OpenBlas, Gemm::nn(64, 1000, 999).scaled(0.5, 1.0)),
        (Kernel::OpenBlas, Gemm::nn(1000, 500, 64).trans(true, false)),
    ];
    for (which, g) in cases.into_iter().filter(|(w, g)| w.supports(g)) {
        let (a, b, c0) = (rand_vec(g.m * g.k, 1), rand_vec(g.k * g.n, 2), rand_vec(g.m * g.n, 3));
        let run = |threads: usize| {
            let mut c = c0.clone();
            with_threads(threads, || sgemm_with(which, &g, &a, &b, &mut c)).unwrap();
            c
        };
        let one = run(1);
        assert_eq!(one, run(3), "{} {g:?}", which.name());
        let mut want = c0.clone();
        matmul_naive(&g, &a, &b, &mut want).unwrap();
        assert_close(&one, &want, 1e-5 * g.k as f32, 1e-5, which.name());
    }
}

#[test]
fn matmul_short_operands_are_shape_errors() {
    let cpu = CpuBackend::new();
    let g = Gemm::nn(2, 3, 4);
    let (a, b, c) = (vec![0.0; 8], vec![0.0; 12], vec![0.0; 6]);
    for (la, lb, lc, operand) in [(7, 12, 6, "a"), (8, 11, 6, "b"), (8, 12, 5, "c")] {
        let mut cc = c[..lc].to_vec();
        match cpu.matmul(&g, &a[..la].to_vec(), &b[..lb].to_vec(), &mut cc) {
            Err(BackendError::Shape { op: "matmul", operand: o, .. }) => assert_eq!(o, operand),
            other => panic!("short {operand}: {other:?}"),
        }
    }
    // Longer buffers are fine: only the prefix is used.
    let mut long_c = vec![7.0; 10];
    cpu.matmul(&g, &vec![1.0; 9], &vec![1.0; 13], &mut long_c).unwrap();
    assert_eq!(long_c, [4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 7.0, 7.0, 7.0, 7.0]);
}

// ---- bias, column sums, BLAS-1 -----------------------------------------------------------

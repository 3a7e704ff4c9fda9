//! Unit tests of the CPU backend on small hand-computed cases and naive f64 references.

use super::CpuBackend;
use crate::backend::{Activation, Backend, BackendError, MomentumStep};

/// Deterministic values in [-1, 1) (64-bit LCG, top bits).
pub(super) fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `|want - got| <= atol + rtol * |want|` elementwise, with the first mismatch in the message.
pub(super) fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "{what}: [{i}] got {g}, want {w}");
    }
}

/// Stored `[rows, cols]` row-major matrix transposed to `[cols, rows]`.
pub(super) fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = x[r * cols + c];
        }
    }
    t
}

pub(super) fn with_threads<T: Send>(n: usize, f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
        Ok(pool) => pool.install(f),
        Err(e) => panic!("thread pool: {e}"),
    }
}

// ---- matmul ------------------------------------------------------------------------------

#[test]
fn add_bias_and_col_sum() {
    let cpu = CpuBackend::new();
    let mut x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
    cpu.add_bias(2, 3, &mut x, &vec![10.0, 20.0, 30.0]).unwrap();
    assert_eq!(x, [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    // out = 0.5 * [25, 47, 69] + 2 * [1, 1, 1]
    let mut out = vec![1.0; 3];
    cpu.col_sum(2, 3, 0.5, &x, 2.0, &mut out).unwrap();
    assert_eq!(out, [14.5, 25.5, 36.5]);
    let mut out = vec![f32::NAN; 3];
    cpu.col_sum(2, 3, 1.0, &x, 0.0, &mut out).unwrap();
    assert_eq!(out, [25.0, 47.0, 69.0]);
    assert!(matches!(
        cpu.add_bias(2, 3, &mut x, &vec![0.0; 2]),
        Err(BackendError::Shape { operand: "bias", .. })
    ));
    assert!(matches!(
        cpu.col_sum(3, 3, 1.0, &x, 0.0, &mut out),
        Err(BackendError::Shape { operand: "x", .. })
    ));
}

#[test]
fn col_sum_large_matches_f64_and_thread_count() {
    let (rows, cols) = (300, 1000);
    let x = rand_vec(rows * cols, 7);
    let mut want = vec![0.0f32; cols];
    for (c, w) in want.iter_mut().enumerate() {
        *w = (0..rows).map(|r| x[r * cols + c] as f64).sum::<f64>() as f32;
    }
    let run = |t| {
        with_threads(t, || {
            let mut out = vec![0.0; cols];
            CpuBackend::new().col_sum(rows, cols, 1.0, &x, 0.0, &mut out).unwrap();
            out
        })
    };
    let (one, three) = (run(1), run(3));
    assert_eq!(one, want);
    assert_eq!(one, three);
}

#[test]
fn axpy_scale_and_parallel_bitwise() {
    let cpu = CpuBackend::new();
    let mut y = vec![1.0, 2.0, 3.0];
    cpu.axpy(2, 2.0, &vec![1.0, -1.0, 100.0], &mut y).unwrap();
    assert_eq!(y, [3.0, 0.0, 3.0]);
    cpu.scale(3, -0.5, &mut y).unwrap();
    assert_eq!(y, [-1.5, -0.0, -1.5]);
    assert!(matches!(cpu.axpy(4, 1.0, &vec![0.0; 4], &mut y), Err(BackendError::Shape { .. })));

    let n = (1 << 17) + 5;
    let x = rand_vec(n, 3);
    let run = |t| {
        with_threads(t, || {
            let mut y = rand_vec(n, 4);
            cpu.axpy(n, 0.3, &x, &mut y).unwrap();
            y
        })
    };
    let y1 = run(1);
    let y0 = rand_vec(n, 4);
    assert!(y1.iter().zip(&y0).zip(&x).all(|((&y, &y0), &x)| y == y0 + 0.3 * x));
    assert_eq!(y1, run(4));
}

// ---- activations -------------------------------------------------------------------------

#[test]
fn activations_forward_backward() {
    let cpu = CpuBackend::new();
    let z = vec![-2.0, -0.0, 0.5, 3.0];
    let dy = vec![1.0, 2.0, 3.0, 4.0];
    let mut y = vec![0.0; 4];
    let mut dz = vec![0.0; 4];
    cpu.act_forward(Activation::Relu, 4, &z, &mut y).unwrap();
    assert_eq!(y, [0.0, 0.0, 0.5, 3.0]);
    cpu.act_backward(Activation::Relu, 4, &z, &dy, &mut dz).unwrap();
    assert_eq!(dz, [0.0, 0.0, 3.0, 4.0]);
    cpu.act_forward(Activation::Identity, 4, &z, &mut y).unwrap();
    assert_eq!(y, z);
    cpu.act_backward(Activation::Identity, 4, &z, &dy, &mut dz).unwrap();
    assert_eq!(dz, dy);
    cpu.act_forward(Activation::Tanh, 4, &z, &mut y).unwrap();
    let want: Vec<f32> = z.iter().map(|v| v.tanh()).collect();
    assert_eq!(y, want);
    // tanh'(z) = 1 - tanh²(z): tanh(0.5) = 0.46211716, so 1 - 0.21355227 = 0.78644773.
    cpu.act_backward(Activation::Tanh, 4, &z, &dy, &mut dz).unwrap();
    assert_close(&dz[2..3], &[3.0 * 0.786_447_7], 1e-6, 1e-6, "tanh'");
    assert!(matches!(
        cpu.act_backward(Activation::Tanh, 5, &z, &dy, &mut dz),
        Err(BackendError::Shape { .. })
    ));
}

#[test]
fn act_second_matches_difference_of_first_derivative() {
    let cpu = CpuBackend::new();
    let z: Vec<f32> = vec![-1.5, -0.3, 0.0, 0.7, 2.0];
    let dy = vec![0.5, -1.0, 2.0, 1.5, -0.25];
    let rz = vec![1.0, 2.0, -1.0, 0.5, 3.0];
    for act in [Activation::Identity, Activation::Relu] {
        let mut out = vec![1.0; 5];
        cpu.act_second(act, 5, &z, &dy, &rz, &mut out).unwrap();
        assert_eq!(out, [1.0; 5], "{act:?}: φ'' = 0");
    }
    let mut out = vec![1.0; 5];
    cpu.act_second(Activation::Tanh, 5, &z, &dy, &rz, &mut out).unwrap();
    // φ''(z) by central differences of φ'(z) = 1 - tanh²(z) in f64.
    let d1 = |z: f64| 1.0 - z.tanh().powi(2);
    let h = 1e-5;
    for i in 0..5 {
        let z = z[i] as f64;
        let d2 = (d1(z + h) - d1(z - h)) / (2.0 * h);
        let want = 1.0 + dy[i] as f64 * d2 * rz[i] as f64;
        assert!((out[i] as f64 - want).abs() < 1e-5, "[{i}] {} vs {want}", out[i]);
    }
}

// ---- losses ------------------------------------------------------------------------------

#[test]
fn softmax_xent_known_row() {
    let cpu = CpuBackend::new();
    // logits [1, 2, 3]: softmax = e^(z - 3) / (e^-2 + e^-1 + 1) = [0.09003057, 0.24472847, 0.66524096],
    // loss for label 2 = -ln 0.66524096 = 0.40760596; for label 0 = 2.40760596.
    let logits = vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0];
    let labels = vec![2u32, 0];
    let (mut loss, mut correct, mut d) = (vec![0.0; 2], vec![0.0; 2], vec![0.0; 6]);
    cpu.softmax_xent(2, 3, &logits, &labels, 0.5, &mut loss, &mut correct, &mut d).unwrap();
    assert_close(&loss, &[0.407_605_96, 2.407_606], 1e-6, 1e-6, "loss");
    assert_eq!(correct, [1.0, 0.0]);
    let p = [0.090_030_57, 0.244_728_47, 0.665_240_96];
    let want = [0.5 * p[0], 0.5 * p[1], 0.5 * (p[2] - 1.0), 0.5 * (p[0] - 1.0), 0.5 * p[1], 0.5 * p[2]];
    assert_close(&d, &want, 1e-7, 1e-6, "dlogits");
}

#[test]
fn softmax_xent_is_stable_and_takes_first_argmax() {
    let cpu = CpuBackend::new();
    // Huge equal logits: softmax [½, ½], loss ln 2; ties go to the first index.
    let logits = vec![1000.0, 1000.0, 5.0, 7.0, 7.0, -1e4];
    let (mut loss, mut correct, mut d) = (vec![0.0; 2], vec![0.0; 2], vec![0.0; 6]);
    // Two rows of three: row 0 = [1000, 1000, 5], row 1 = [7, 7, -1e4].
    let labels = vec![1u32, 0];
    cpu.softmax_xent(2, 3, &logits, &labels, 1.0, &mut loss, &mut correct, &mut d).unwrap();
    assert_close(&loss, &[std::f32::consts::LN_2, std::f32::consts::LN_2], 1e-6, 1e-6, "loss");
    assert_eq!(correct, [0.0, 1.0], "row 0 argmax is index 0, row 1 argmax is index 0");
    assert!(d.iter().all(|v| v.is_finite()));
}

#[test]
fn softmax_xent_bad_label_is_invalid_and_writes_nothing() {
    let cpu = CpuBackend::new();
    let (mut loss, mut correct, mut d) = (vec![9.0; 2], vec![9.0; 2], vec![9.0; 6]);
    let r = cpu.softmax_xent(2, 3, &vec![0.0; 6], &vec![0, 3], 1.0, &mut loss, &mut correct, &mut d);
    assert!(matches!(r, Err(BackendError::Invalid { op: "softmax_xent", .. })), "{r:?}");
    assert_eq!((loss, correct, d), (vec![9.0; 2], vec![9.0; 2], vec![9.0; 6]));
    let r = cpu.softmax_xent(
        2,
        3,
        &vec![0.0; 5],
        &vec![0, 1],
        1.0,
        &mut vec![0.0; 2],
        &mut vec![0.0; 2],
        &mut vec![0.0; 6],
    );
    assert!(matches!(r, Err(BackendError::Shape { operand: "logits", .. })), "{r:?}");
}

#[test]
fn softmax_xent_rop_matches_jacobian_and_differences() {
    let cpu = CpuBackend::new();
    let (rows, classes) = (3, 5);
    let logits = rand_vec(rows * classes, 11).iter().map(|v| 3.0 * v).collect::<Vec<_>>();
    let rl = rand_vec(rows * classes, 12);
    let mut out = vec![f32::NAN; rows * classes];
    cpu.softmax_xent_rop(rows, classes, &logits, &rl, 0.25, &mut out).unwrap();
    for r in 0..rows {
        let z: Vec<f64> = logits[r * classes..(r + 1) * classes].iter().map(|&v| v as f64).collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / s).collect();
        // (diag(p) - p pᵀ) rl, explicitly.
        for i in 0..classes {
            let mut acc = 0.0;
            for j in 0..classes {
                let h = if i == j { p[i] } else { 0.0 } - p[i] * p[j];
                acc += h * rl[r * classes + j] as f64;
            }
            let got = out[r * classes + i] as f64;
            assert!((got - 0.25 * acc).abs() < 1e-6, "[{r},{i}] {got} vs {}", 0.25 * acc);
        }
        let row_sum: f32 = out[r * classes..(r + 1) * classes].iter().sum();
        assert!(row_sum.abs() < 1e-6, "rows of the R-op sum to zero");
    }
    // Directional derivative of dlogits along rl, by central differences.
    let eps = 1e-2f32;
    let labels = vec![0u32, 1, 4];
    let grad_at = |s: f32| {
        let z: Vec<f32> = logits.iter().zip(&rl).map(|(&z, &r)| z + s * r).collect();
        let mut d = vec![0.0; rows * classes];
        cpu.softmax_xent(
            rows,
            classes,
            &z,
            &labels,
            0.25,
            &mut vec![0.0; rows],
            &mut vec![0.0; rows],
            &mut d,
        )
        .unwrap();
        d
    };
    let (dp, dm) = (grad_at(eps), grad_at(-eps));
    let fd: Vec<f32> = dp.iter().zip(&dm).map(|(a, b)| (a - b) / (2.0 * eps)).collect();
    assert_close(&out, &fd, 1e-3, 1e-2, "R-op vs differences");
}

#[test]
fn mse_per_row() {
    let cpu = CpuBackend::new();
    let pred = vec![1.0, 2.0, 3.0, 0.0];
    let target = vec![0.0, 4.0, 3.0, -1.0];
    let (mut loss, mut d) = (vec![0.0; 2], vec![0.0; 4]);
    cpu.mse(2, 2, &pred, &target, 2.0, &mut loss, &mut d).unwrap();
    // row 0: ½(1 + 4) = 2.5; row 1: ½(0 + 1) = 0.5.
    assert_eq!(loss, [2.5, 0.5]);
    assert_eq!(d, [2.0, -4.0, 0.0, 2.0]);
    assert!(matches!(
        cpu.mse(3, 2, &pred, &target, 1.0, &mut loss, &mut d),
        Err(BackendError::Shape { operand: "pred", .. })
    ));
}

// ---- reductions --------------------------------------------------------------------------

#[test]
fn reductions_match_f64_and_are_thread_independent() {
    for n in [0usize, 1, 7, 4097, (1 << 20) + 3] {
        let x = rand_vec(n, 21);
        let y = rand_vec(n, 22);
        let want_sum = x.iter().map(|&v| v as f64).sum::<f64>();
        let want_dot = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>();
        let want_sq = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>();
        let run = |t| {
            with_threads(t, || {
                let cpu = CpuBackend::new();
                let mut out = vec![f32::NAN; 4];
                cpu.sum(n, &x, &mut out, 1).unwrap();
                cpu.dot(n, &x, &y, &mut out, 2).unwrap();
                cpu.sum_sq(n, &x, &mut out, 3).unwrap();
                out
            })
        };
        let one = run(1);
        let tol = |w: f64| 1e-6 * (1.0 + w.abs());
        assert!(one[0].is_nan(), "other slots untouched");
        assert!((one[1] as f64 - want_sum).abs() <= tol(want_sum), "n={n} sum {} vs {want_sum}", one[1]);
        assert!((one[2] as f64 - want_dot).abs() <= tol(want_dot), "n={n} dot {} vs {want_dot}", one[2]);
        assert!((one[3] as f64 - want_sq).abs() <= tol(want_sq), "n={n} sum_sq {} vs {want_sq}", one[3]);
        let three = run(3);
        assert_eq!(one[1..].to_vec(), three[1..].to_vec(), "n={n}: bitwise equal across thread counts");
    }
    let cpu = CpuBackend::new();
    assert!(matches!(
        cpu.sum(2, &vec![1.0; 2], &mut vec![0.0; 2], 2),
        Err(BackendError::Shape { operand: "out", .. })
    ));
    assert!(matches!(
        cpu.dot(3, &vec![1.0; 3], &vec![1.0; 2], &mut vec![0.0], 0),
        Err(BackendError::Shape { operand: "y", .. })
    ));
    assert!(matches!(
        cpu.sum_sq(0, &vec![], &mut vec![0.0], usize::MAX),
        Err(BackendError::Shape { .. })
    ));
}

// ---- optimizer updates -------------------------------------------------------------------

#[test]
fn sgd_and_momentum_updates() {
    let cpu = CpuBackend::new();
    // p = 1 - 0.1 * (0.5 + 0.2 * 1) = 0.93; p = 2 - 0.1 * (-1 + 0.2 * 2) = 2.06.
    let mut p = vec![1.0, 2.0];
    cpu.sgd_update(2, 0.1, 0.2, &vec![0.5, -1.0], &mut p).unwrap();
    assert_close(&p, &[0.93, 2.06], 1e-7, 1e-6, "sgd");
    // v = 0.9 * 1 + (0.5 + 0.2 * 1) = 1.6, p = 1 - 0.1 * 1.6 = 0.84;
    // v = 0.9 * 0 + (-1 + 0.2 * 2) = -0.6, p = 2 + 0.06 = 2.06.
    let (mut v, mut p) = (vec![1.0, 0.0], vec![1.0, 2.0]);
    let step = |lr, mu, weight_decay| MomentumStep { lr, mu, weight_decay };
    cpu.momentum_update(2, &step(0.1, 0.9, 0.2), &vec![0.5, -1.0], &mut v, &mut p).unwrap();
    assert_close(&v, &[1.6, -0.6], 1e-7, 1e-6, "velocity");
    assert_close(&p, &[0.84, 2.06], 1e-7, 1e-6, "param");
    assert!(matches!(
        cpu.momentum_update(2, &step(0.1, 0.9, 0.0), &vec![0.0; 2], &mut vec![0.0; 1], &mut p),
        Err(BackendError::Shape { operand: "velocity", .. })
    ));

    // The parallel path equals the sequential expression bit for bit.
    let n = (1 << 17) + 9;
    let g = rand_vec(n, 31);
    let (mut v, mut p) = (rand_vec(n, 32), rand_vec(n, 33));
    let (v0, p0) = (v.clone(), p.clone());
    let step = MomentumStep { lr: 0.01, mu: 0.9, weight_decay: 1e-4 };
    with_threads(3, || cpu.momentum_update(n, &step, &g, &mut v, &mut p)).unwrap();
    for i in 0..n {
        let vi = 0.9 * v0[i] + (g[i] + 1e-4 * p0[i]);
        assert_eq!((v[i], p[i]), (vi, p0[i] - 0.01 * vi), "[{i}]");
    }
}

// ---- data movement and memory ------------------------------------------------------------

#[test]
fn gathers_and_memory_ops() {
    let cpu = CpuBackend::new();
    let src = cpu.upload(&[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]).unwrap(); // [3, 2]
    let idx = cpu.upload_idx(&[2, 0, 2]).unwrap();
    let mut dst = cpu.zeros(6).unwrap();
    cpu.gather_rows(3, 2, &src, &idx, &mut dst).unwrap();
    assert_eq!(cpu.read(&dst).unwrap(), [20.0, 21.0, 0.0, 1.0, 20.0, 21.0]);
    let r = cpu.gather_rows(2, 2, &src, &vec![1, 3], &mut dst);
    assert!(matches!(r, Err(BackendError::Invalid { op: "gather_rows", .. })), "{r:?}");

    let labels = vec![7u32, 8, 9];
    let mut out = vec![0u32; 3];
    cpu.gather_idx(3, &labels, &idx, &mut out).unwrap();
    assert_eq!(out, [9, 7, 9]);
    let r = cpu.gather_idx(1, &labels, &vec![3], &mut out);
    assert!(matches!(r, Err(BackendError::Invalid { op: "gather_idx", .. })), "{r:?}");
    assert!(matches!(cpu.gather_idx(4, &labels, &idx, &mut out), Err(BackendError::Shape { .. })));

    cpu.write(&mut dst, &[5.0, 6.0]).unwrap();
    assert_eq!(dst[..3], [5.0, 6.0, 0.0]);
    assert!(matches!(cpu.write(&mut dst, &[0.0; 7]), Err(BackendError::Shape { .. })));
    let mut big = cpu.zeros(8).unwrap();
    cpu.copy(&dst, &mut big).unwrap();
    assert_eq!(big[6..], [0.0, 0.0]);
    assert!(matches!(cpu.copy(&big, &mut dst), Err(BackendError::Shape { .. })));
    cpu.fill(&mut big, 2.5).unwrap();
    assert_eq!((cpu.len(&big), big[7]), (8, 2.5));
    let mut ib = cpu.upload_idx(&[1, 2, 3]).unwrap();
    cpu.write_idx(&mut ib, &[9]).unwrap();
    assert_eq!((cpu.read_idx(&ib).unwrap(), cpu.len_idx(&ib)), (vec![9, 2, 3], 3));
    cpu.flush().unwrap();
    cpu.sync().unwrap();
    assert!(cpu.device_name().starts_with("CPU ("), "{}", cpu.device_name());
}

/// The fused `add_bias_act` equals `add_bias` then `act_forward` bitwise (same float operations
/// per element), on ragged shapes on both sides of the parallel threshold, on 1 and 3 threads.
#[test]
fn add_bias_act_fused_equals_two_passes() {
    let cpu = CpuBackend::new();
    for act in [Activation::Identity, Activation::Relu, Activation::Tanh] {
        for (rows, cols) in [(1, 1), (3, 17), (65, 1000), (300, 257), (1, 70_001)] {
            let n = rows * cols;
            let (x, bias) = (rand_vec(n, 5), rand_vec(cols, 6));
            let mut z_two = x.clone();
            let mut y_two = vec![f32::NAN; n];
            cpu.add_bias(rows, cols, &mut z_two, &bias).unwrap();
            cpu.act_forward(act, n, &z_two, &mut y_two).unwrap();
            for threads in [1, 3] {
                let (mut z, mut y) = (x.clone(), vec![f32::NAN; n]);
                with_threads(threads, || cpu.add_bias_act(act, rows, cols, &mut z, &bias, &mut y))
                    .unwrap();
                assert_eq!(z, z_two, "{act:?} {rows}x{cols} z, {threads} threads");
                assert_eq!(y, y_two, "{act:?} {rows}x{cols} y, {threads} threads");
            }
        }
    }
    let (mut z, mut y) = (vec![0.0; 6], vec![0.0; 5]);
    assert!(matches!(
        cpu.add_bias_act(Activation::Relu, 2, 3, &mut z, &vec![0.0; 3], &mut y),
        Err(BackendError::Shape { .. })
    ));
}

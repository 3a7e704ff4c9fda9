//! A padded copy of `B` for the `gemm` crate where the columns of `op(B)` alias in L1.
//!
//! In `A · Bᵀ` (a layer's forward product `X · Wᵀ`, `W: [n, k]`) the columns of `op(B)` are the
//! rows of `W`, `k` floats apart, and `gemm` packs a panel of them at once. When `k` is a
//! multiple of 512 (rows 2 KiB apart, e.g. the 1024-wide hidden layer) those rows fall into the
//! same few L1 sets and the packing thrashes: on AMD Zen 5, `64 × 1024 × 1024` ran at 80 GFLOP/s
//! against 240 with the rows 16 floats longer (`docs/CPU_PERF.md`). Copying `W` into longer rows
//! costs one pass over it and gives the rate back; the product reads the same values in the same
//! order, so its bits do not change (`padded_product_has_the_same_bits`).

use rayon::prelude::*;
use std::cell::Cell;

use crate::backend::Gemm;

/// `k` multiples whose rows alias (2 KiB apart, and every multiple of that).
pub(super) const ALIASING_K: usize = 512;
/// Floats added to every copied row (one 64-byte line).
pub(super) const PAD: usize = 16;
/// Rows of `C` from which the copy pays for itself (at batch 1 the product reads `W` once, as
/// the copy would).
pub(super) const MIN_M: usize = 8;
/// Columns of `C` from which the copy pays for itself (a narrow output layer stays in cache).
pub(super) const MIN_N: usize = 32;
/// Rows of `W` copied by one rayon task.
const ROWS_PER_TASK: usize = 64;
/// Largest copy kept for the thread's next product (larger ones are freed after use, so a wide
/// layer's copy does not stay allocated for the life of the thread).
const KEEP_BYTES: usize = 64 << 20;

/// Whether `gemm` should read `B` from a padded copy for `g`.
pub(super) fn wanted(g: &Gemm) -> bool {
    g.trans_b && g.k.is_multiple_of(ALIASING_K) && g.m >= MIN_M && g.n >= MIN_N
}

thread_local! {
    /// The copy's storage, kept per calling thread between products (one weight matrix).
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f(copy, stride)` on `b: [n, k]` copied into `n` rows of `stride = k + PAD` floats.
///
/// The storage is taken out of the thread's scratch for the call, so a product started inside
/// `f` on the same thread (rayon work stealing) gets storage of its own.
pub(super) fn with_padded_rows<R>(
    b: &[f32],
    n: usize,
    k: usize,
    f: impl FnOnce(&[f32], usize) -> R,
) -> R {
    let stride = k + PAD;
    let mut copy = SCRATCH.with(Cell::take);
    copy.resize(n * stride, 0.0);
    copy.par_chunks_mut(stride * ROWS_PER_TASK).zip(b[..n * k].par_chunks(k * ROWS_PER_TASK)).for_each(
        |(dst, src)| {
            for (d, s) in dst.chunks_mut(stride).zip(src.chunks(k)) {
                d[..k].copy_from_slice(s);
            }
        },
    );
    let out = f(&copy, stride);
    if copy.capacity() * 4 <= KEEP_BYTES {
        SCRATCH.with(|s| s.set(copy));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::matmul::{matmul_naive, sgemm_with, Kernel};
    use crate::backend::cpu::tests::rand_vec;

    #[test]
    fn padded_rows_hold_the_rows() {
        let (n, k) = (131, 37); // ragged: n not a multiple of ROWS_PER_TASK
        let b = rand_vec(n * k, 3);
        let copied = with_padded_rows(&b, n, k, |c, stride| {
            assert_eq!(stride, k + PAD);
            (0..n).all(|j| c[j * stride..j * stride + k] == b[j * k..(j + 1) * k])
        });
        assert!(copied);
    }

    /// A product started inside another's use of the copy (rayon work stealing runs one on the
    /// same thread) gets storage of its own: neither copy is overwritten.
    #[test]
    fn nested_copies_do_not_share_storage() {
        let (outer, inner) = (rand_vec(40 * 8, 1), rand_vec(33 * 5, 2));
        let held = with_padded_rows(&outer, 40, 8, |c, stride| {
            let nested = with_padded_rows(&inner, 33, 5, |d, s| {
                (0..33).all(|j| d[j * s..j * s + 5] == inner[j * 5..j * 5 + 5])
            });
            nested && (0..40).all(|j| c[j * stride..j * stride + 8] == outer[j * 8..j * 8 + 8])
        });
        assert!(held);
    }

    /// The padded product against `gemm` on the unpadded operand (strided call) bit for bit, and
    /// against the f64 reference, on ragged `m`, `n` and both aliasing `k`s of the MLP.
    #[test]
    fn padded_product_has_the_same_bits() {
        for (m, n, k) in [(8, 32, 512), (37, 129, 1024), (64, 1024, 1024)] {
            let g = Gemm::nn(m, n, k).trans(false, true);
            assert!(wanted(&g), "{g:?}");
            let (a, b) = (rand_vec(m * k, 1), rand_vec(n * k, 2));
            let mut padded = vec![0.0; m * n];
            sgemm_with(Kernel::Gemm, &g, &a, &b, &mut padded).unwrap();
            let mut plain = vec![0.0; m * n];
            super::super::crates::gemm_strided(&g, &a, &b, k, &mut plain);
            assert!(padded.iter().zip(&plain).all(|(x, y)| x.to_bits() == y.to_bits()), "{g:?}");
            let mut reference = vec![0.0; m * n];
            matmul_naive(&g, &a, &b, &mut reference).unwrap();
            let tol = 1e-5 * k as f32;
            assert!(padded.iter().zip(&reference).all(|(x, y)| (x - y).abs() <= tol), "{g:?}");
        }
    }

    #[test]
    fn only_aliasing_transposed_products_are_padded() {
        assert!(wanted(&Gemm::nn(64, 1024, 1024).trans(false, true)));
        assert!(!wanted(&Gemm::nn(64, 1024, 784).trans(false, true))); // fwd1: k = 784
        assert!(!wanted(&Gemm::nn(64, 1024, 1024))); // dX: B is read along its rows
        assert!(!wanted(&Gemm::nn(1, 1024, 1024).trans(false, true))); // batch 1: matrix-vector
        assert!(!wanted(&Gemm::nn(64, 10, 1024).trans(false, true))); // the 10-class layer
    }
}

//! Calls into the two SGEMM crates, with transposes expressed as strides (nothing is copied).

use crate::backend::Gemm;

/// Row and column strides of the stored operands, as `((rs_a, cs_a), (rs_b, cs_b))`.
///
/// `A` is stored `[m,k]` (element `(i,p)` at `i*k + p`) or, with `trans_a`, `[k,m]` (at `p*m + i`);
/// `B` is stored `[k,n]` (element `(p,j)` at `p*n + j`) or, with `trans_b`, `[n,k]` (at `j*k + p`).
pub(super) fn strides(g: &Gemm) -> ((usize, usize), (usize, usize)) {
    let (m, n, k) = (g.m, g.n, g.k);
    let sa = if g.trans_a { (1, m) } else { (k, 1) };
    let sb = if g.trans_b { (1, k) } else { (n, 1) };
    (sa, sb)
}

/// `gemm` 0.19 on rayon's pool (all its threads when there is more than one).
///
/// `a`, `b`, `c` hold exactly `m*k`, `k*n`, `m*n` elements; `m, n, k > 0`.
pub(super) fn gemm_crate(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let ((rsa, csa), (rsb, csb)) = strides(g);
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the slices hold exactly the elements the strides address:
    // A (i,p) at i*rsa + p*csa < m*k, B (p,j) at p*rsb + j*csb < k*n, C (i,j) at i*n + j < m*n;
    // C does not alias A or B (distinct borrows). `gemm` computes
    // dst = alpha_g * dst + beta_g * lhs * rhs, and reads dst only when `read_dst`.
    unsafe {
        gemm::gemm(
            g.m,
            g.n,
            g.k,
            c.as_mut_ptr(),
            1,
            g.n as isize,
            g.beta != 0.0,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            csb as isize,
            rsb as isize,
            g.beta,
            g.alpha,
            false,
            false,
            false,
            par,
        );
    }
}

/// `matrixmultiply` 0.3 (its own kernels, single-threaded: the crate's `threading` pool is off).
///
/// Same preconditions as [`gemm_crate`].
pub(super) fn matrixmultiply_crate(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let ((rsa, csa), (rsb, csb)) = strides(g);
    // SAFETY: as in `gemm_crate`; `sgemm` does not read C when beta == 0.
    unsafe {
        matrixmultiply::sgemm(
            g.m,
            g.k,
            g.n,
            g.alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            g.beta,
            c.as_mut_ptr(),
            g.n as isize,
            1,
        );
    }
}

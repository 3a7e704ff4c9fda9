//! Calls into the two SGEMM crates, with transposes expressed as strides (nothing is transposed;
//! `gemm` may read an aliasing `W` from a padded copy, [`super::pad`]).

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
/// `a`, `b`, `c` hold exactly `m*k`, `k*n`, `m*n` elements; `m, n, k > 0`. Where the columns of
/// `op(B)` alias in L1 ([`super::pad::wanted`]) `gemm` reads them from a padded copy.
pub(super) fn gemm_crate(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    if super::pad::wanted(g) {
        super::pad::with_padded_rows(b, g.n, g.k, |b, ldb| gemm_strided(g, a, b, ldb, c));
    } else {
        let ldb = if g.trans_b { g.k } else { g.n };
        gemm_strided(g, a, b, ldb, c);
    }
}

/// [`gemm_crate`] with `B`'s rows `ldb` floats apart (`ldb >= k` with `trans_b`, else `>= n`).
///
/// `b` holds the rows of `B` (`n` of them with `trans_b`, else `k`) at that stride: at least
/// `(rows - 1) * ldb + row length` elements.
pub(super) fn gemm_strided(g: &Gemm, a: &[f32], b: &[f32], ldb: usize, c: &mut [f32]) {
    let ((rsa, csa), _) = strides(g);
    let (rsb, csb) = if g.trans_b { (1, ldb) } else { (ldb, 1) };
    let (rows, len) = if g.trans_b { (g.n, g.k) } else { (g.k, g.n) };
    // What the safety argument below rests on, checked whatever the caller (`m, n, k > 0`).
    let b_needed = rows.checked_sub(1).and_then(|r| r.checked_mul(ldb)).and_then(|x| x.checked_add(len));
    assert!(
        g.m > 0
            && ldb >= len
            && b_needed.is_some_and(|need| b.len() >= need)
            && g.m.checked_mul(g.k).is_some_and(|need| a.len() >= need)
            && g.m.checked_mul(g.n).is_some_and(|need| c.len() >= need),
        "gemm_strided: operands shorter than {g:?} with ldb = {ldb}"
    );
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the slices hold every element the strides address:
    // A (i,p) at i*rsa + p*csa < m*k, B (p,j) at p*rsb + j*csb <= (rows-1)*ldb + len - 1 (checked
    // above), C (i,j) at i*n + j < m*n; C does not alias A or B (distinct borrows). `gemm`
    // computes dst = alpha_g * dst + beta_g * lhs * rhs, and reads dst only when `read_dst`.
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

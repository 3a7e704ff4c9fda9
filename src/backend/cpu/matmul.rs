//! The matmul family (CPU twin of `shaders/matmul.wgsl`): `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]`.
//!
//! The main path calls a tuned SGEMM crate; transposes are expressed as strides, never copied.
//! Both candidate crates stay callable through [`sgemm_with`] so `benches/cpu_gemm.rs` can compare
//! them; [`DEFAULT_CRATE`] is the one the backend uses (the faster one on the bench, see there).
//! [`matmul_naive`] is the plain triple loop in f64, the reference for tests only.

use crate::backend::{check_len, gemm_lens, Gemm, Result};

/// Which SGEMM implementation to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgemmCrate {
    /// `gemm` 0.19 (sarah-quinones), threaded through rayon's global pool.
    Gemm,
    /// `matrixmultiply` 0.3 with its own thread pool (`MATMUL_NUM_THREADS`, default: physical cores).
    MatrixMultiply,
}

impl SgemmCrate {
    pub fn name(self) -> &'static str {
        match self {
            SgemmCrate::Gemm => "gemm",
            SgemmCrate::MatrixMultiply => "matrixmultiply",
        }
    }
}

/// The crate [`super::CpuBackend::matmul`] uses, chosen on `cargo bench --bench cpu_gemm` (2-core
/// AVX2 EPYC): `gemm` is 1.3–3.6× faster on the thin products of a 10-class output layer, within
/// ±10 % on the 784/1024-wide ones (crate order varies between runs), and about 7 % slower at 1024³
/// and 2048³; it also shares rayon's pool with the other ops instead of starting a second one.
pub const DEFAULT_CRATE: SgemmCrate = SgemmCrate::Gemm;

/// Row and column strides of the stored operands, as `((rs_a, cs_a), (rs_b, cs_b))`.
///
/// `A` is stored `[m,k]` (element `(i,p)` at `i*k + p`) or, with `trans_a`, `[k,m]` (at `p*m + i`);
/// `B` is stored `[k,n]` (element `(p,j)` at `p*n + j`) or, with `trans_b`, `[n,k]` (at `j*k + p`).
fn strides(g: &Gemm) -> ((isize, isize), (isize, isize)) {
    let (m, n, k) = (g.m as isize, g.n as isize, g.k as isize);
    let sa = if g.trans_a { (1, m) } else { (k, 1) };
    let sb = if g.trans_b { (1, k) } else { (n, 1) };
    (sa, sb)
}

/// Checks the operand lengths of `g`: `a >= m*k`, `b >= k*n`, `c >= m*n`.
pub fn check_gemm(g: &Gemm, a: usize, b: usize, c: usize) -> Result<()> {
    let (la, lb, lc) = gemm_lens(g);
    check_len("matmul", "a", a, la)?;
    check_len("matmul", "b", b, lb)?;
    check_len("matmul", "c", c, lc)
}

/// `C = alpha * op(A) * op(B) + beta * C` with the crate of [`DEFAULT_CRATE`].
///
/// `a: [m,k]` (or `[k,m]` with `trans_a`), `b: [k,n]` (or `[n,k]` with `trans_b`), `c: [m,n]`;
/// longer buffers are fine, only the prefix is used. With `beta == 0` the old `C` is not read.
pub fn matmul(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    sgemm_with(DEFAULT_CRATE, g, a, b, c)
}

/// Same as [`matmul`] with an explicit choice of crate (for benches and cross-checks).
pub fn sgemm_with(which: SgemmCrate, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    check_gemm(g, a.len(), b.len(), c.len())?;
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let c = &mut c[..m * n];
    if k == 0 {
        // op(A)·op(B) is the zero matrix: C = beta * C, and beta == 0 overwrites (NaN included).
        if g.beta == 0.0 {
            c.fill(0.0);
        } else {
            c.iter_mut().for_each(|x| *x *= g.beta);
        }
        return Ok(());
    }
    let a = &a[..m * k];
    let b = &b[..k * n];
    let ((rsa, csa), (rsb, csb)) = strides(g);
    let (rsc, csc) = (n as isize, 1isize);
    match which {
        SgemmCrate::Gemm => {
            let threads = rayon::current_num_threads();
            let par =
                if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
            // SAFETY: the slices above hold exactly the elements the strides address:
            // A (i,p) at i*rsa + p*csa < m*k, B (p,j) at p*rsb + j*csb < k*n, C (i,j) at i*n + j < m*n;
            // C does not alias A or B (distinct borrows). `gemm` computes
            // dst = alpha_g * dst + beta_g * lhs * rhs, and reads dst only when `read_dst`.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    csc,
                    rsc,
                    g.beta != 0.0,
                    a.as_ptr(),
                    csa,
                    rsa,
                    b.as_ptr(),
                    csb,
                    rsb,
                    g.beta,
                    g.alpha,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
        SgemmCrate::MatrixMultiply => {
            // SAFETY: as above; `sgemm` does not read C when beta == 0.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    g.alpha,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    g.beta,
                    c.as_mut_ptr(),
                    rsc,
                    csc,
                );
            }
        }
    }
    Ok(())
}

/// Reference product by the triple loop, accumulated in f64 (tests and kernel validation only).
///
/// Same shapes and semantics as [`matmul`], including `beta == 0` ignoring the old `C`.
pub fn matmul_naive(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    check_gemm(g, a.len(), b.len(), c.len())?;
    let (m, n, k) = (g.m, g.n, g.k);
    let ((rsa, csa), (rsb, csb)) = strides(g);
    let (rsa, csa, rsb, csb) = (rsa as usize, csa as usize, rsb as usize, csb as usize);
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64;
            }
            let old = if g.beta == 0.0 { 0.0 } else { g.beta as f64 * c[i * n + j] as f64 };
            c[i * n + j] = (g.alpha as f64 * acc + old) as f32;
        }
    }
    Ok(())
}

//! The "rows" kernel: `C[i, :] = alpha * Σ_p op(A)[i,p] · B[p, :] + beta * C[i, :]` for a `B`
//! stored row-major `[k, n]` (no `trans_b`) and any `A` strides.
//!
//! Each row of `C` is a combination of rows of `B`, so `B` is only ever read along its rows and
//! nothing is packed: this is the kernel for the thin products of a train step at small batch
//! (`dX = dY · W` with `m = B`, `dW = dYᵀ · X` with `k = B`) and for the `k = 10` input gradient of
//! a 10-class output layer. Every element of `C` is one chain of fused multiply-adds in `p`
//! order, whatever the tiling or task split, so the result does not depend on the thread count,
//! and the AVX2 path equals the portable one bitwise.

use super::tasks::{run_blocks, Grid, RawC};

/// Rows of `C` per register tile.
const MR: usize = 4;
/// Columns of `C` per register tile (two 8-lane vectors).
const NR: usize = 16;
/// Target bytes of the `B` panel (`k` rows × one task's columns) a task keeps in L2.
const PANEL_BYTES: usize = 256 << 10;

/// One product for the rows kernel; pointers cover the `m*k`, `k*n` and `m*n` elements addressed.
#[derive(Clone, Copy)]
pub(super) struct Rows {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// `op(A)[i,p]` at `a + i*rsa + p*csa`.
    pub a: *const f32,
    pub rsa: usize,
    pub csa: usize,
    /// `B[p,j]` at `b + p*n + j`.
    pub b: *const f32,
    pub c: RawC,
    pub alpha: f32,
    pub beta: f32,
}

// SAFETY: the raw pointers are only dereferenced inside `run`, whose tasks write disjoint parts
// of C and only read A and B, which the caller keeps borrowed for the call.
unsafe impl Send for Rows {}
unsafe impl Sync for Rows {}

impl Rows {
    /// `alpha * acc + beta * old` (the old value is not read when `beta == 0`).
    #[inline(always)]
    fn out(&self, acc: f32, old: impl FnOnce() -> f32) -> f32 {
        if self.beta == 0.0 {
            self.alpha * acc
        } else {
            self.alpha * acc + self.beta * old()
        }
    }

    /// Portable path for rows `i0..i1`, columns `j0..j1` (also the AVX2 path's ragged edges).
    ///
    /// # Safety
    /// The rectangle lies inside `C` and no other thread touches it during the call.
    unsafe fn block_scalar(&self, i0: usize, i1: usize, j0: usize, j1: usize) {
        for i in i0..i1 {
            for j in j0..j1 {
                let mut acc = 0.0f32;
                for p in 0..self.k {
                    let a = *self.a.add(i * self.rsa + p * self.csa);
                    acc = a.mul_add(*self.b.add(p * self.n + j), acc);
                }
                let c = self.c.at(i * self.n + j);
                *c = self.out(acc, || *c);
            }
        }
    }

    /// Columns per task: a multiple of [`NR`] whose `B` panel fits [`PANEL_BYTES`].
    fn task_cols(&self) -> usize {
        let fit = (PANEL_BYTES / 4 / self.k.max(1)) / NR * NR;
        fit.max(NR).min(self.n.div_ceil(NR) * NR)
    }

    /// Runs the whole product on the calling thread (AVX2 and FMA where the CPU has them): the
    /// same bits as [`Rows::run`], whose elements do not depend on the split.
    pub fn run_here(&self) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the whole of C, which the caller borrows mutably for the call; the CPU has
            // AVX2 and FMA.
            unsafe { self.block_avx2(0, self.m, 0, self.n) };
            return;
        }
        // SAFETY: the whole of C, borrowed mutably by the caller for the call.
        unsafe { self.block_scalar(0, self.m, 0, self.n) }
    }

    /// Runs the whole product over rayon's pool.
    pub fn run(&self) {
        let grid = Grid::new(self.m, self.n, MR, self.m, self.task_cols(), self.m * self.n * self.k);
        run_blocks(
            &grid,
            self,
            Rows::block_scalar,
            #[cfg(target_arch = "x86_64")]
            Rows::block_avx2,
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Rows, MR, NR};

    impl Rows {
        /// Rows `i0..i1`, columns `j0..j1` with 4×16 register tiles; ragged edges in scalar.
        ///
        /// # Safety
        /// As [`Rows::block_scalar`]; the CPU has AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn block_avx2(&self, i0: usize, i1: usize, j0: usize, j1: usize) {
            let jv = j0 + (j1 - j0) / NR * NR;
            let mut i = i0;
            while i < i1 {
                let mr = MR.min(i1 - i);
                let mut j = j0;
                while j < jv {
                    match mr {
                        4 => self.tile::<4>(i, j),
                        3 => self.tile::<3>(i, j),
                        2 => self.tile::<2>(i, j),
                        _ => self.tile::<1>(i, j),
                    }
                    j += NR;
                }
                i += mr;
            }
            if jv < j1 {
                self.block_scalar(i0, i1, jv, j1);
            }
        }

        /// `C[i0..i0+R, j0..j0+16]`: per `p`, two vectors of `B`'s row times `R` broadcasts.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn tile<const R: usize>(&self, i0: usize, j0: usize) {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            let mut arow = [std::ptr::null::<f32>(); R];
            for (r, ar) in arow.iter_mut().enumerate() {
                *ar = self.a.add((i0 + r) * self.rsa);
            }
            let mut b = self.b.add(j0);
            for p in 0..self.k {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for r in 0..R {
                    let a = _mm256_set1_ps(*arow[r].add(p * self.csa));
                    acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
                }
                b = b.add(self.n);
            }
            let alpha = _mm256_set1_ps(self.alpha);
            let beta = _mm256_set1_ps(self.beta);
            for (r, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    let c = self.c.at((i0 + r) * self.n + j0 + 8 * v);
                    let mut x = _mm256_mul_ps(alpha, acc);
                    if self.beta != 0.0 {
                        x = _mm256_add_ps(x, _mm256_mul_ps(beta, _mm256_loadu_ps(c)));
                    }
                    _mm256_storeu_ps(c, x);
                }
            }
        }
    }
}

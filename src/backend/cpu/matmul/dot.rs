//! The "dot" kernel: `C[i,j] = alpha * Σ_p A[i,p] · B[j,p] + beta * C[i,j]` for `A` stored
//! `[m, k]` and `B` stored `[n, k]` (`trans_b`, no `trans_a`): every element is a dot product of
//! two contiguous rows.
//!
//! This is the forward product `Z = X · Wᵀ` of a layer at small batch (`m = B`) and of a narrow
//! output layer (`n = 10`), where packing a GEMM operand costs more than it saves. Each dot product
//! is summed over [`LANES`] interleaved partial sums (lane `l` takes `p ≡ l mod LANES` below
//! `k8`), combined by a fixed tree, then the `k % LANES` tail is added in order: the same on
//! every path (scalar, AVX2, AVX-512) and for every split, so the result depends neither on the
//! thread count nor on the CPU's vector width.
//!
//! The AVX-512 path ([`super::dot_avx512`]) keeps the 8-lane arithmetic: each 16-lane register
//! holds the 8 partial sums of two dot products, so it runs twice the work per instruction with
//! the same bits (1.7× the AVX2 path on AMD Zen 5, one thread).

use super::tasks::{run_blocks, Grid, RawC};

/// Partial sums per dot product (one 8-lane vector).
pub(super) const LANES: usize = 8;
/// Rows of `A` per register tile (AVX2).
const MR: usize = 2;
/// Rows of `B` per register tile (AVX2).
const NR: usize = 4;
/// Task rectangles are multiples of this many rows and columns (whole AVX-512 tiles: 4 rows of
/// `A`, 8 rows of `B`; whole AVX2 tiles too).
const TASK_ROWS_STEP: usize = 4;
const TASK_COLS_STEP: usize = 8;
/// Target bytes of `B` rows one task reads (kept in L2 across its rows of `A`).
const PANEL_BYTES: usize = 256 << 10;

/// One product for the dot kernel; pointers cover the `m*k`, `n*k` and `m*n` elements addressed.
#[derive(Clone, Copy)]
pub(super) struct Dot {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const f32,
    pub b: *const f32,
    pub c: RawC,
    pub alpha: f32,
    pub beta: f32,
}

// SAFETY: as for `Rows`: tasks write disjoint rectangles of C and only read A and B.
unsafe impl Send for Dot {}
unsafe impl Sync for Dot {}

/// The fixed combination of the lane sums: `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`.
#[inline(always)]
fn tree(l: &[f32; LANES]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

impl Dot {
    #[inline(always)]
    fn out(&self, acc: f32, old: impl FnOnce() -> f32) -> f32 {
        if self.beta == 0.0 {
            self.alpha * acc
        } else {
            self.alpha * acc + self.beta * old()
        }
    }

    /// `Σ_{k8 <= p < k} A[i,p] B[j,p]` added in order onto `s`.
    ///
    /// # Safety
    /// `i < m`, `j < n`.
    #[inline(always)]
    unsafe fn tail(&self, i: usize, j: usize, k8: usize, mut s: f32) -> f32 {
        let (a, b) = (self.a.add(i * self.k), self.b.add(j * self.k));
        for p in k8..self.k {
            s = (*a.add(p)).mul_add(*b.add(p), s);
        }
        s
    }

    /// `alpha · acc + beta · C[i,j]` with the `k % LANES` tail added first: the epilogue of every
    /// path, from the 8 lane sums of `C[i,j]`.
    ///
    /// # Safety
    /// `i < m`, `j < n`, and no other thread touches `C[i,j]` during the call.
    #[inline(always)]
    pub(super) unsafe fn store(&self, i: usize, j: usize, lanes: &[f32; LANES]) {
        let k8 = self.k / LANES * LANES;
        let v = self.tail(i, j, k8, tree(lanes));
        let c = self.c.at(i * self.n + j);
        *c = self.out(v, || *c);
    }

    /// Portable path for rows `i0..i1`, columns `j0..j1`.
    ///
    /// # Safety
    /// The rectangle lies inside `C` and no other thread touches it during the call.
    pub(super) unsafe fn block_scalar(&self, i0: usize, i1: usize, j0: usize, j1: usize) {
        let k8 = self.k / LANES * LANES;
        for i in i0..i1 {
            for j in j0..j1 {
                let (a, b) = (self.a.add(i * self.k), self.b.add(j * self.k));
                let mut l = [0.0f32; LANES];
                for p in (0..k8).step_by(LANES) {
                    for (q, s) in l.iter_mut().enumerate() {
                        *s = (*a.add(p + q)).mul_add(*b.add(p + q), *s);
                    }
                }
                self.store(i, j, &l);
            }
        }
    }

    /// Columns (rows of `B`) per task: a multiple of [`TASK_COLS_STEP`] whose rows fit
    /// [`PANEL_BYTES`].
    fn task_cols(&self) -> usize {
        let step = TASK_COLS_STEP;
        let fit = (PANEL_BYTES / 4 / self.k.max(1)) / step * step;
        fit.max(step).min(self.n.div_ceil(step) * step)
    }

    /// Rows of `A` per task: those that fit [`PANEL_BYTES`] (read once per tile of `B` rows).
    fn task_rows(&self) -> usize {
        (PANEL_BYTES / 4 / self.k.max(1)).max(TASK_ROWS_STEP)
    }

    /// Runs the whole product over rayon's pool, on the widest path the CPU has.
    pub fn run(&self) {
        let (rows, cols) = (self.task_rows(), self.task_cols());
        let grid = Grid::new(self.m, self.n, TASK_ROWS_STEP, rows, cols, self.m * self.n * self.k);
        #[cfg(target_arch = "x86_64")]
        let wide: super::tasks::Block<Dot> =
            if super::dot_avx512::available() { Dot::block_avx512 } else { Dot::block_avx2 };
        run_blocks(
            &grid,
            self,
            Dot::block_scalar,
            #[cfg(target_arch = "x86_64")]
            wide,
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Dot, LANES, MR, NR};

    impl Dot {
        /// Rows `i0..i1`, columns `j0..j1` in 2×4 register tiles: the tile's `B` rows stay in L1
        /// while the task's rows of `A` pass over them.
        ///
        /// # Safety
        /// As [`Dot::block_scalar`]; the CPU has AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(in crate::backend::cpu::matmul) unsafe fn block_avx2(
            &self,
            i0: usize,
            i1: usize,
            j0: usize,
            j1: usize,
        ) {
            let mut j = j0;
            while j < j1 {
                let nr = NR.min(j1 - j);
                let mut i = i0;
                while i < i1 {
                    let mr = MR.min(i1 - i);
                    match (mr, nr) {
                        (2, 4) => self.tile::<2, 4>(i, j),
                        (2, 3) => self.tile::<2, 3>(i, j),
                        (2, 2) => self.tile::<2, 2>(i, j),
                        (2, _) => self.tile::<2, 1>(i, j),
                        (_, 4) => self.tile::<1, 4>(i, j),
                        (_, 3) => self.tile::<1, 3>(i, j),
                        (_, 2) => self.tile::<1, 2>(i, j),
                        _ => self.tile::<1, 1>(i, j),
                    }
                    i += mr;
                }
                j += nr;
            }
        }

        /// `C[i0..i0+R, j0..j0+S]`.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn tile<const R: usize, const S: usize>(&self, i0: usize, j0: usize) {
            let k8 = self.k / LANES * LANES;
            let mut acc = [[_mm256_setzero_ps(); S]; R];
            let mut p = 0;
            while p < k8 {
                let mut b = [_mm256_setzero_ps(); S];
                for (s, b) in b.iter_mut().enumerate() {
                    *b = _mm256_loadu_ps(self.b.add((j0 + s) * self.k + p));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = _mm256_loadu_ps(self.a.add((i0 + r) * self.k + p));
                    for (acc, &b) in acc.iter_mut().zip(&b) {
                        *acc = _mm256_fmadd_ps(a, b, *acc);
                    }
                }
                p += LANES;
            }
            for (r, acc) in acc.iter().enumerate() {
                for (s, &acc) in acc.iter().enumerate() {
                    let mut l = [0.0f32; LANES];
                    _mm256_storeu_ps(l.as_mut_ptr(), acc);
                    self.store(i0 + r, j0 + s, &l);
                }
            }
        }
    }
}

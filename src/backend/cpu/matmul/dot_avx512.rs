//! The dot kernel's AVX-512 path ([`super::dot`]) with the AVX2 path's bits.
//!
//! The AVX2 path keeps, per element of `C`, one 8-lane register of partial sums (lane `l` takes
//! `p ≡ l mod 8`). Here a 16-lane register holds those 8 lanes for two elements side by side:
//! `[B row j | B row j+1]` (two 8-float loads) times `[A row i | A row i]` (one broadcast), so
//! each half runs the AVX2 path's exact chain of fused multiply-adds and its lanes are combined by
//! the same tree. A 4 × 8 tile (4 rows of `A`, 8 rows of `B`: 16 accumulators) needs 4 broadcasts
//! and 4 paired loads for 16 multiply-adds of 16 lanes, against 6 loads for 8 of 8 lanes in the
//! AVX2 path's 2 × 4 tile. Edges of a task's rectangle run the AVX2 tiles.

use super::dot::{Dot, LANES};

/// Rows of `A` per tile.
const TILE_ROWS: usize = 4;
/// Pairs of rows of `B` per tile.
const TILE_PAIRS: usize = 4;

/// Whether this CPU runs the AVX-512 path (AVX-512F, with the AVX2 and FMA of its edges).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Dot, LANES, TILE_PAIRS, TILE_ROWS};

    /// `[lo[0..8] | hi[0..8]]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn pair(lo: *const f32, hi: *const f32) -> __m512 {
        let lo = _mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(lo)));
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(lo, _mm256_castps_pd(_mm256_loadu_ps(hi))))
    }

    /// `[x[0..8] | x[0..8]]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn twice(x: *const f32) -> __m512 {
        _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(x))))
    }

    impl Dot {
        /// Rows `i0..i1`, columns `j0..j1`: whole 4 × 8 tiles with AVX-512 (the tile's 8 rows of
        /// `B` stay in L1 while the rows of `A` pass), the edges with the AVX2 tiles.
        ///
        /// # Safety
        /// As [`Dot::block_scalar`]; the CPU has AVX-512F, AVX2 and FMA
        /// ([`super::available`]).
        #[target_feature(enable = "avx512f,avx2,fma")]
        pub(in crate::backend::cpu::matmul) unsafe fn block_avx512(
            &self,
            i0: usize,
            i1: usize,
            j0: usize,
            j1: usize,
        ) {
            let cols = 2 * TILE_PAIRS;
            let i_end = i0 + (i1 - i0) / TILE_ROWS * TILE_ROWS;
            let j_end = j0 + (j1 - j0) / cols * cols;
            let mut j = j0;
            while j < j_end {
                let mut i = i0;
                while i < i_end {
                    self.tile512(i, j);
                    i += TILE_ROWS;
                }
                j += cols;
            }
            if i_end < i1 && j0 < j_end {
                self.block_avx2(i_end, i1, j0, j_end);
            }
            if j_end < j1 {
                self.block_avx2(i0, i1, j_end, j1);
            }
        }

        /// `C[i0..i0+4, j0..j0+8]`.
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[inline]
        unsafe fn tile512(&self, i0: usize, j0: usize) {
            let k = self.k;
            let k8 = k / LANES * LANES;
            let mut acc = [[_mm512_setzero_ps(); TILE_PAIRS]; TILE_ROWS];
            let mut p = 0;
            while p < k8 {
                let mut b = [_mm512_setzero_ps(); TILE_PAIRS];
                for (s, b) in b.iter_mut().enumerate() {
                    let j = j0 + 2 * s;
                    *b = pair(self.b.add(j * k + p), self.b.add((j + 1) * k + p));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = twice(self.a.add((i0 + r) * k + p));
                    for (acc, &b) in acc.iter_mut().zip(&b) {
                        *acc = _mm512_fmadd_ps(a, b, *acc);
                    }
                }
                p += LANES;
            }
            for (r, acc) in acc.iter().enumerate() {
                for (s, &acc) in acc.iter().enumerate() {
                    let (mut lo, mut hi) = ([0.0f32; LANES], [0.0f32; LANES]);
                    _mm256_storeu_ps(lo.as_mut_ptr(), _mm512_castps512_ps256(acc));
                    let upper = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc));
                    _mm256_storeu_ps(hi.as_mut_ptr(), _mm256_castpd_ps(upper));
                    self.store(i0 + r, j0 + 2 * s, &lo);
                    self.store(i0 + r, j0 + 2 * s + 1, &hi);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tasks::RawC;
    use super::*;
    use crate::backend::cpu::tests::rand_vec;

    /// Every path of the dot kernel writes the same bits, on ragged shapes (edges in rows,
    /// columns and `k % 8`), with `beta` both 0 and not.
    #[test]
    fn dot_paths_write_the_same_bits() {
        #[cfg(target_arch = "x86_64")]
        let have_avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let have_avx2 = false;
        if !available() {
            eprintln!("dot_paths_write_the_same_bits: NOT RUN for AVX-512 — this CPU has no AVX-512F");
        }
        let shapes = [
            (4, 8, 8, 0.0),
            (4, 8, 5, 0.0),
            (7, 19, 13, 0.0),
            (9, 17, 1030, 0.5),
            (32, 1024, 784, 0.0),
            (3, 5, 3, 1.0),
        ];
        for (m, n, k, beta) in shapes {
            let (a, b) = (rand_vec(m * k, 1), rand_vec(n * k, 2));
            let c0 = rand_vec(m * n, 3);
            let run = |path: usize| {
                let mut c = c0.clone();
                let dot = Dot {
                    m,
                    n,
                    k,
                    a: a.as_ptr(),
                    b: b.as_ptr(),
                    c: RawC::new(&mut c),
                    alpha: 0.75,
                    beta,
                };
                // SAFETY: one call over the whole of C on this thread; the wide paths only where
                // the CPU has their features.
                unsafe {
                    match path {
                        0 => dot.block_scalar(0, m, 0, n),
                        #[cfg(target_arch = "x86_64")]
                        1 => dot.block_avx2(0, m, 0, n),
                        #[cfg(target_arch = "x86_64")]
                        2 => dot.block_avx512(0, m, 0, n),
                        #[cfg(target_arch = "x86_64")]
                        _ => {
                            // Rectangles that start off the tile grid, as a task split makes.
                            let (mi, nj) = (m / 3, n / 3);
                            for (i0, i1) in [(0, mi), (mi, m)] {
                                for (j0, j1) in [(0, nj), (nj, n)] {
                                    dot.block_avx512(i0, i1, j0, j1);
                                }
                            }
                        }
                        #[cfg(not(target_arch = "x86_64"))]
                        _ => unreachable!(),
                    }
                }
                c
            };
            let scalar = run(0);
            let same = |c: &[f32]| c.iter().zip(&scalar).all(|(x, y)| x.to_bits() == y.to_bits());
            if have_avx2 {
                assert!(same(&run(1)), "AVX2 path differs from the scalar one at {m}x{n}x{k}");
            }
            if available() {
                assert!(same(&run(2)), "AVX-512 path differs from the scalar one at {m}x{n}x{k}");
                assert!(same(&run(3)), "AVX-512 path on split rectangles differs at {m}x{n}x{k}");
            }
        }
    }
}

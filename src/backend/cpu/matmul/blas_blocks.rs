//! A product on OpenBLAS split into blocks of `C` that run on rayon's pool.
//!
//! The split is a function of the shape alone (never of the thread count), so the same shape
//! always makes the same `cblas_sgemm` calls and the result does not depend on the pool size.
//! It cuts the dimension whose cut duplicates the smaller operand: column blocks of `C` each
//! pack all of `op(A)` (`m·k`), row blocks each pack all of `op(B)` (`k·n`).

use rayon::prelude::*;

use super::openblas::{Call, OpenBlas};
use crate::backend::Gemm;

/// Multiply-adds per block, at least (smaller blocks cost more in packing than they balance).
const FMAS_PER_BLOCK: usize = 1 << 24;
/// Blocks per product, at most.
const MAX_BLOCKS: usize = 32;
/// Block edges are multiples of this (a whole number of micro-tiles on AVX-512).
const ALIGN: usize = 32;

/// How a product is cut: `parts` blocks of `len` along rows (`by_rows`) or columns of `C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub by_rows: bool,
    pub len: usize,
    pub parts: usize,
}

/// The split of `g`: pure in the shape.
pub fn split(g: &Gemm) -> Split {
    let fmas = g.m * g.n * g.k;
    let want = (fmas / FMAS_PER_BLOCK).clamp(1, MAX_BLOCKS);
    // Cutting rows re-packs op(B) per block; cutting columns re-packs op(A).
    let by_rows = g.k * g.n <= g.m * g.k;
    let extent = if by_rows { g.m } else { g.n };
    let len = extent.div_ceil(want).div_ceil(ALIGN).max(1) * ALIGN;
    let len = len.min(extent.max(1));
    Split { by_rows, len, parts: extent.div_ceil(len).max(1) }
}

/// `C = alpha · op(A) · op(B) + beta · C` for `a`, `b`, `c` of exactly `m·k`, `k·n`, `m·n`.
pub(super) fn run(blas: &OpenBlas, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let s = split(g);
    let (m, n, k) = (g.m, g.n, g.k);
    let lda = if g.trans_a { m } else { k };
    let ldb = if g.trans_b { k } else { n };
    let (pa, pb) = (a.as_ptr() as usize, b.as_ptr() as usize);
    let pc = c.as_mut_ptr() as usize;
    let block = |part: usize| {
        let lo = part * s.len;
        let hi = ((part + 1) * s.len).min(if s.by_rows { m } else { n });
        // Offsets (in elements) of the block's first A, B and C element.
        let (oa, ob, oc, bm, bn) = if s.by_rows {
            let oa = if g.trans_a { lo } else { lo * k };
            (oa, 0, lo * n, hi - lo, n)
        } else {
            let ob = if g.trans_b { lo * k } else { lo };
            (0, ob, lo, m, hi - lo)
        };
        let call = Call {
            trans_a: g.trans_a,
            trans_b: g.trans_b,
            m: bm,
            n: bn,
            k,
            alpha: g.alpha,
            lda,
            ldb,
            beta: g.beta,
            ldc: n,
        };
        // SAFETY: the block's rows (or columns) of C are disjoint from every other block's and
        // inside C; A and B are only read; offsets and leading dimensions stay inside the slices.
        unsafe {
            blas.sgemm(
                call,
                (pa as *const f32).add(oa),
                (pb as *const f32).add(ob),
                (pc as *mut f32).add(oc),
            )
        };
    };
    if s.parts > 1 && rayon::current_num_threads() > 1 {
        (0..s.parts).into_par_iter().for_each(block);
    } else {
        (0..s.parts).for_each(block);
    }
}

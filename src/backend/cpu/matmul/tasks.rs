//! Splitting one product of the hand-written kernels into rectangles of `C` run on rayon's pool.
//!
//! Each element of `C` is computed whole by one rectangle, in the same order whatever the
//! split, so the split (and the thread count) never changes the result.

use rayon::prelude::*;

/// Below this many multiply-adds a product runs on the calling thread (waking the pool costs
/// more than the work).
const PAR_FMAS: usize = 1 << 19;
/// Rectangles per pool thread, for load balance.
const TASKS_PER_THREAD: usize = 4;

/// `C` as a raw pointer, so tasks on several threads can each write their own rectangle.
#[derive(Clone, Copy)]
pub(super) struct RawC(*mut f32);

impl RawC {
    pub fn new(c: &mut [f32]) -> Self {
        RawC(c.as_mut_ptr())
    }

    /// Pointer to element `idx` of `C`.
    ///
    /// # Safety
    /// `idx` lies inside the slice given to [`RawC::new`], which is still mutably borrowed.
    #[inline(always)]
    pub unsafe fn at(self, idx: usize) -> *mut f32 {
        self.0.add(idx)
    }
}

/// Rectangles of `C[m, n]`: column blocks of `cols`, row blocks (multiples of `mr`, at most
/// `max_rows`) when the column blocks alone are too few for the pool.
pub(super) struct Grid {
    m: usize,
    n: usize,
    rows: usize,
    cols: usize,
    parallel: bool,
}

impl Grid {
    /// `fmas`: the product's multiply-adds, deciding whether the pool is used at all.
    pub fn new(m: usize, n: usize, mr: usize, max_rows: usize, cols: usize, fmas: usize) -> Self {
        let threads = rayon::current_num_threads();
        let cols = cols.max(1);
        let parallel = threads > 1 && fmas >= PAR_FMAS;
        let col_blocks = n.div_ceil(cols);
        let want = if parallel { TASKS_PER_THREAD * threads } else { 1 };
        let row_blocks = want.div_ceil(col_blocks).max(1);
        let rows = m.div_ceil(row_blocks).min(max_rows).div_ceil(mr).max(1) * mr;
        Grid { m, n, rows, cols, parallel }
    }

    fn count(&self) -> (usize, usize) {
        (self.m.div_ceil(self.rows), self.n.div_ceil(self.cols))
    }
}

/// Calls `f(i0, i1, j0, j1)` once per rectangle (rows `i0..i1`, columns `j0..j1`), in parallel
/// when the grid says so; rectangles are disjoint and cover `C`.
pub(super) fn for_tasks(g: &Grid, f: impl Fn(usize, usize, usize, usize) + Sync + Send) {
    let (rb, cb) = g.count();
    let one = |t: usize| {
        let (bi, bj) = (t % rb, t / rb);
        let (i0, j0) = (bi * g.rows, bj * g.cols);
        f(i0, (i0 + g.rows).min(g.m), j0, (j0 + g.cols).min(g.n));
    };
    if g.parallel && rb * cb > 1 {
        (0..rb * cb).into_par_iter().for_each(one);
    } else {
        (0..rb * cb).for_each(one);
    }
}

/// A kernel over one rectangle of `C` (rows `i0..i1`, columns `j0..j1`).
///
/// # Safety (of calling one)
/// The rectangle lies inside `C` and no other running call writes it; an AVX2 kernel also needs
/// a CPU with AVX2 and FMA.
pub(super) type Block<K> = unsafe fn(&K, usize, usize, usize, usize);

/// Runs `kernel` on every task of `grid` over rayon's pool: its AVX2+FMA block where the CPU has
/// both (checked once), its scalar twin elsewhere.
pub(super) fn run_blocks<K: Sync>(
    grid: &Grid,
    kernel: &K,
    scalar: Block<K>,
    #[cfg(target_arch = "x86_64")] avx2: Block<K>,
) {
    #[cfg(target_arch = "x86_64")]
    let block = if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        avx2
    } else {
        scalar
    };
    #[cfg(not(target_arch = "x86_64"))]
    let block = scalar;
    // SAFETY: the grid's rectangles are disjoint and inside C; the AVX2 block is only chosen on
    // a CPU that has AVX2 and FMA.
    for_tasks(grid, |i0, i1, j0, j1| unsafe { block(kernel, i0, i1, j0, j1) });
}

//! Checking every timed candidate's product before it may be chosen: a kernel that is fast and
//! wrong on some driver (a cooperative-matrix load from a misaligned base, a tile that clamps
//! wrongly at a ragged edge) must never be picked by the autotuner or reported as the fastest
//! by `batchscope gemm`.
//!
//! The operands hold a seeded pattern of multiples of 1/8 in [-1/2, 1/2] ([`pattern`]): exact
//! in f16, their products exact in f32, and every partial sum of fewer than 2^20 of them a
//! multiple of 1/64 below 2^18, also exact. So every correct kernel computes every element of
//! `C = op(A) op(B)` (alpha = 1, beta = 0: the caller checks the candidate's launch of that
//! product) exactly, in any summation order, split-k and tensor cores alike. C is zeroed, the
//! candidate runs once, and whole rows of C ([`check_rows`]: one in each 16-row tile of the
//! first 128-row block, both sides of the 64- and 128-row block edges, the middle, the last
//! two) are read back and compared with an f64 host reference ([`Reference`]). The tolerance,
//! [`REL_TOL`] of `Σ|a b|`, only absorbs a rounding or two; a misplaced, missing or repeated
//! term (at least 1/64) is above it for every k below 2^18.

use rayon::prelude::*;

use crate::backend::gpu::{GpuDevice, RawBuf};
use crate::backend::half::half_words;
use crate::backend::{BackendError, Gemm, Result};

/// Largest accepted `|got - want|` as a fraction of `|alpha| Σ_p |a_ip b_pj|` (at most k/4):
/// 2^-22, four f32 roundings of the sum's magnitude. A product's smallest term, 1/64, exceeds
/// it for every k below 2^18.
pub const REL_TOL: f64 = 1.0 / (1u64 << 22) as f64;

/// Rows of C read back per check, at most.
pub const MAX_ROWS: usize = 16;

/// Salts of the A and B operands of a check.
pub const SALTS: (u64, u64) = (1, 2);

/// Columns of C per parallel task of the reference.
const COLS_PER_TASK: usize = 256;

/// Elements generated and written per piece of an upload (16 MiB of f32).
const UPLOAD_CHUNK: usize = 1 << 22;

/// Element `e` of the operand with `salt`: a multiple of 1/8 in [-1/2, 1/2] from a mixed hash
/// of the index (so a shifted or transposed index reads a different value).
pub fn pattern_value(e: u64, salt: u64) -> f32 {
    let mut x = e.wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    ((x % 9) as f32 - 4.0) * 0.125
}

/// `len` elements of [`pattern_value`] with `salt`.
pub fn pattern(len: usize, salt: u64) -> Vec<f32> {
    (0..len as u64).into_par_iter().map(|e| pattern_value(e, salt)).collect()
}

/// The rows of an `m`-row C that a check reads: one in each 16-row tile of the first 128-row
/// block (0, 16, .., 112: every accumulator row of the 64x64 and 128x128 kernels), both sides
/// of the 64- and 128-row edges (15, 63, 127, 128), the middle and the last two; those below
/// `m`, distinct and ascending, at most [`MAX_ROWS`].
pub fn check_rows(m: usize) -> Vec<usize> {
    let fixed = [0, 15, 16, 32, 48, 63, 64, 80, 96, 112, 127, 128];
    let mut rows: Vec<usize> = fixed
        .into_iter()
        .chain([m / 2 + 1, m.saturating_sub(2), m.saturating_sub(1)])
        .filter(|&r| r < m)
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows.truncate(MAX_ROWS);
    rows
}

/// Where a candidate's product first left the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mismatch {
    pub row: usize,
    pub col: usize,
    pub got: f32,
    pub want: f64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "C[{}, {}] = {} where {} is exact", self.row, self.col, self.got, self.want)
    }
}

/// The exact values of some rows of `C = alpha op(A) op(B)` and their tolerances.
#[derive(Clone, Debug)]
pub struct Reference {
    pub rows: Vec<usize>,
    n: usize,
    /// `[rows, n]`: alpha Σ_p op(A)[i,p] op(B)[p,j] in f64.
    want: Vec<f64>,
    /// `[rows, n]`: the largest accepted |got - want|.
    tol: Vec<f64>,
}

impl Reference {
    /// The reference rows [`check_rows`] of `g` on the [`pattern`] operands with `salts`
    /// (A's, B's).
    pub fn of_pattern(g: &Gemm, (salt_a, salt_b): (u64, u64)) -> Reference {
        Reference::new(g, |e| pattern_value(e as u64, salt_a), |e| pattern_value(e as u64, salt_b))
    }

    /// The reference rows [`check_rows`] of `g` with element `e` of A and B as stored given by
    /// `a(e)` and `b(e)` (`A: [m,k]` or `[k,m]` with `g.trans_a`, `B: [k,n]` or `[n,k]` with
    /// `g.trans_b`). Host memory is O(rows (n + k)), never the operands: each element of B
    /// is asked for once, columns in parallel chunks.
    pub fn new(g: &Gemm, a: impl Fn(usize) -> f32 + Sync, b: impl Fn(usize) -> f32 + Sync) -> Reference {
        let (m, n, k) = (g.m, g.n, g.k);
        let rows = check_rows(m);
        let alpha = g.alpha as f64;
        // [rows][k]: the rows of op(A) the check reads.
        let arows: Vec<Vec<f64>> = rows
            .iter()
            .map(|&i| (0..k).map(|p| a(if g.trans_a { p * m + i } else { i * k + p }) as f64).collect())
            .collect();
        let chunks: Vec<(Vec<f64>, Vec<f64>)> = (0..n.div_ceil(COLS_PER_TASK))
            .into_par_iter()
            .map(|c| {
                let (j0, j1) = (c * COLS_PER_TASK, n.min((c + 1) * COLS_PER_TASK));
                let w = j1 - j0;
                // [rows][w]: Σ x y and Σ |x y| over p.
                let mut want = vec![0.0f64; rows.len() * w];
                let mut size = vec![0.0f64; rows.len() * w];
                for p in 0..k {
                    for j in j0..j1 {
                        let y = b(if g.trans_b { j * k + p } else { p * n + j }) as f64;
                        for (r, arow) in arows.iter().enumerate() {
                            let xy = arow[p] * y;
                            want[r * w + j - j0] += xy;
                            size[r * w + j - j0] += xy.abs();
                        }
                    }
                }
                (want, size)
            })
            .collect();
        let mut want = vec![0.0f64; rows.len() * n];
        let mut tol = vec![0.0f64; rows.len() * n];
        for (c, (cw, cs)) in chunks.iter().enumerate() {
            let j0 = c * COLS_PER_TASK;
            let w = n.min(j0 + COLS_PER_TASK) - j0;
            for r in 0..rows.len() {
                for jj in 0..w {
                    want[r * n + j0 + jj] = alpha * cw[r * w + jj];
                    tol[r * n + j0 + jj] =
                        REL_TOL * alpha.abs() * cs[r * w + jj] + f64::from(f32::MIN_POSITIVE);
                }
            }
        }
        Reference { rows, n, want, tol }
    }

    /// `None` when `got` (the rows [`Reference::rows`] of C, `[rows, n]`) agrees, else the
    /// first element that does not (a NaN never agrees).
    pub fn check(&self, got: &[f32]) -> Option<Mismatch> {
        let bad = |e: usize| {
            let g = got.get(e).copied().unwrap_or(f32::NAN);
            // A NaN difference fails too.
            let d = (g as f64 - self.want[e]).abs();
            d.is_nan() || d > self.tol[e]
        };
        let e = (0..self.want.len()).find(|&e| bad(e))?;
        Some(Mismatch {
            row: self.rows[e / self.n.max(1)],
            col: e % self.n.max(1),
            got: got.get(e).copied().unwrap_or(f32::NAN),
            want: self.want[e],
        })
    }
}

/// `len` elements of [`pattern_value`] with `salt` on the device: as f32, or (`half`) as packed
/// halves (exact), element 2w in the low bits of word w. Generated, written and submitted in
/// pieces of [`UPLOAD_CHUNK`] elements: host memory stays bounded whatever the operand's size.
pub fn upload_pattern(dev: &GpuDevice, what: &str, len: usize, salt: u64, half: bool) -> Result<RawBuf> {
    let words = if half { half_words(len) } else { len };
    let buf = dev.alloc(what, words)?;
    // The writes land after all recorded work (it may use this arena memory).
    dev.flush()?;
    for start in (0..len).step_by(UPLOAD_CHUNK) {
        let end = len.min(start + UPLOAD_CHUNK);
        let x: Vec<f32> =
            (start as u64..end as u64).into_par_iter().map(|e| pattern_value(e, salt)).collect();
        let (offset, bytes) = match half {
            // `start` is even (a multiple of the chunk): whole words.
            true => {
                let bits =
                    |i: usize| x.get(i).map_or(0u32, |&v| u32::from(half::f16::from_f32(v).to_bits()));
                let packed: Vec<u32> =
                    (0..half_words(x.len())).map(|w| bits(2 * w) | bits(2 * w + 1) << 16).collect();
                (start / 2 * 4, bytemuck::cast_slice::<u32, u8>(&packed).to_vec())
            }
            false => (start * 4, bytemuck::cast_slice::<f32, u8>(&x).to_vec()),
        };
        dev.ctx.queue.write_buffer(&buf.buffer, offset as u64, &bytes);
        if end < len {
            // wgpu holds each write's staging copy until a submit runs it: run this piece now,
            // so at most one piece is staged at a time.
            dev.ctx.queue.submit(std::iter::empty());
            dev.wait()?;
        }
    }
    Ok(buf)
}

/// The rows `rows` of the `[_, n]` f32 matrix in `c`, concatenated (one copy per row into one
/// staging buffer; submits and waits).
pub fn read_rows(dev: &GpuDevice, c: &RawBuf, rows: &[usize], n: usize) -> Result<Vec<f32>> {
    let row_bytes = (n * 4) as u64;
    let size = row_bytes * rows.len() as u64;
    if size == 0 {
        return Ok(Vec::new());
    }
    if let Some(&last) = rows.last() {
        if (last as u64 + 1) * row_bytes > c.bytes() {
            return Err(BackendError::Invalid {
                op: "autotune check",
                message: format!("row {last} of {n} columns lies past a {}-byte buffer", c.bytes()),
            });
        }
    }
    let staging = dev.ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("autotune check rows"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    dev.with_encoder(|enc| {
        for (slot, &r) in rows.iter().enumerate() {
            enc.copy_buffer_to_buffer(
                &c.buffer,
                r as u64 * row_bytes,
                &staging,
                slot as u64 * row_bytes,
                row_bytes,
            );
        }
    });
    dev.flush()?;
    let bytes = dev.map_read(&staging, size)?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(g: &Gemm, a: &[f32], b: &[f32], i: usize, j: usize) -> f64 {
        (0..g.k)
            .map(|p| {
                let x = if g.trans_a { a[p * g.m + i] } else { a[i * g.k + p] };
                let y = if g.trans_b { b[j * g.k + p] } else { b[p * g.n + j] };
                x as f64 * y as f64
            })
            .sum::<f64>()
            * g.alpha as f64
    }

    #[test]
    fn the_pattern_is_exact_in_f16_and_varied() {
        let v = pattern(4096, 3);
        for &x in &v {
            assert_eq!(half::f16::from_f32(x).to_f32(), x);
            assert!((-0.5..=0.5).contains(&x) && (x * 8.0).fract() == 0.0, "{x}");
        }
        let distinct: std::collections::BTreeSet<i32> = v.iter().map(|x| (x * 8.0) as i32).collect();
        assert_eq!(distinct.len(), 9);
        assert_ne!(pattern(64, 1), pattern(64, 2), "the salt changes the operand");
        assert_eq!(pattern(64, 1), pattern(64, 1));
    }

    #[test]
    fn check_rows_cover_the_block_edges_within_m() {
        assert_eq!(check_rows(1), vec![0]);
        assert_eq!(check_rows(17), vec![0, 9, 15, 16]);
        assert_eq!(
            check_rows(200),
            vec![0, 15, 16, 32, 48, 63, 64, 80, 96, 101, 112, 127, 128, 198, 199]
        );
        // Every 16-row tile of a 128-row block is read, whatever m.
        let big = check_rows(8192);
        assert!((0..8).all(|t| big.iter().any(|r| r / 16 == t)), "{big:?}");
        assert!(check_rows(8192).len() <= MAX_ROWS);
        assert!(check_rows(0).is_empty());
    }

    #[test]
    fn the_reference_is_the_exact_product_in_every_layout() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let g = Gemm::nn(70, 36, 50).trans(ta, tb).scaled(0.5, 0.0);
            let (a, b) = (pattern(70 * 50, 1), pattern(50 * 36, 2));
            let r = Reference::new(&g, |e| a[e], |e| b[e]);
            assert_eq!(
                Reference::of_pattern(&g, (1, 2)).want,
                r.want,
                "the pattern operands' reference"
            );
            let mut got = Vec::new();
            for &i in &r.rows {
                got.extend((0..36).map(|j| naive(&g, &a, &b, i, j) as f32));
            }
            assert_eq!(r.check(&got), None, "({ta}, {tb})");
            // One misplaced term (the smallest a product can be, 1/64 · alpha) is caught.
            let mut off = got.clone();
            off[40] += 1.0 / 128.0;
            let bad = r.check(&off).expect("caught");
            assert_eq!((bad.row, bad.col), (r.rows[1], 4), "({ta}, {tb})");
            // Reading B with the other transpose is caught.
            let swapped = Gemm::nn(70, 36, 50).trans(ta, !tb).scaled(0.5, 0.0);
            let mut wrong = Vec::new();
            for &i in &r.rows {
                wrong.extend((0..36).map(|j| naive(&swapped, &a, &b, i, j) as f32));
            }
            assert!(r.check(&wrong).is_some(), "({ta}, {tb})");
            let mut nan = got.clone();
            nan[7] = f32::NAN;
            assert_eq!(r.check(&nan).map(|m| m.col), Some(7));
            assert!(r.check(&got[..got.len() - 1]).is_some(), "a short read never agrees");
        }
    }
}

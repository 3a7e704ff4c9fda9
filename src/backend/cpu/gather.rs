//! The gather family (CPU twin of `shaders/gather.wgsl`): the rows and labels of a minibatch.

use crate::backend::{check_len, BackendError, Result};

/// Error for the first `idx[r] >= limit`, if any.
fn check_indices(op: &'static str, idx: &[u32], limit: usize) -> Result<()> {
    match idx.iter().enumerate().find(|(_, &i)| i as usize >= limit) {
        Some((r, &i)) => Err(BackendError::Invalid {
            op,
            message: format!("index {i} at position {r} is out of range (source has {limit} rows)"),
        }),
        None => Ok(()),
    }
}

/// `dst[r, :] = src[idx[r], :]` for `src: [N, cols]` (`N = src.len() / cols`), `idx: [rows]`,
/// `dst: [rows, cols]`. An index `>= N` is `BackendError::Invalid`, reported before any write.
pub fn gather_rows(rows: usize, cols: usize, src: &[f32], idx: &[u32], dst: &mut [f32]) -> Result<()> {
    const OP: &str = "gather_rows";
    check_len(OP, "idx", idx.len(), rows)?;
    check_len(OP, "dst", dst.len(), rows * cols)?;
    if cols == 0 {
        return Ok(());
    }
    let idx = &idx[..rows];
    check_indices(OP, idx, src.len() / cols)?;
    for (d, &i) in dst[..rows * cols].chunks_mut(cols).zip(idx) {
        let i = i as usize;
        d.copy_from_slice(&src[i * cols..(i + 1) * cols]);
    }
    Ok(())
}

/// `dst[r] = src[idx[r]]` for `idx, dst: [rows]` (labels of a minibatch). An index
/// `>= src.len()` is `BackendError::Invalid`, reported before any write.
pub fn gather_idx(rows: usize, src: &[u32], idx: &[u32], dst: &mut [u32]) -> Result<()> {
    const OP: &str = "gather_idx";
    check_len(OP, "idx", idx.len(), rows)?;
    check_len(OP, "dst", dst.len(), rows)?;
    let idx = &idx[..rows];
    check_indices(OP, idx, src.len())?;
    for (d, &i) in dst[..rows].iter_mut().zip(idx) {
        *d = src[i as usize];
    }
    Ok(())
}

/// `dst[r, :] = src[idx[r] - first, :]` for `r < rows` with `first <= idx[r] < first + src_rows`;
/// other rows are untouched. `src: [src_rows, cols]`, `dst: [rows, cols]`.
pub fn gather_rows_window(
    rows: usize,
    cols: usize,
    src: &[f32],
    first: usize,
    src_rows: usize,
    idx: &[u32],
    dst: &mut [f32],
) -> Result<()> {
    const OP: &str = "gather_rows_window";
    check_len(OP, "src", src.len(), src_rows * cols)?;
    check_len(OP, "idx", idx.len(), rows)?;
    check_len(OP, "dst", dst.len(), rows * cols)?;
    if cols == 0 {
        return Ok(());
    }
    for (d, &i) in dst[..rows * cols].chunks_mut(cols).zip(&idx[..rows]) {
        let i = i as usize;
        if i >= first && i - first < src_rows {
            let s = i - first;
            d.copy_from_slice(&src[s * cols..(s + 1) * cols]);
        }
    }
    Ok(())
}

//! The elementwise family: fill, copy, axpy, scale, add_bias (CPU twin of
//! `shaders/elementwise.wgsl`). Large buffers are split over rayon (see [`super::par`]).

use rayon::prelude::*;

use super::par::{for_chunks, PAR_MIN};
use crate::backend::{check_len, Result};

/// `y[i] = value` for every element.
pub fn fill(y: &mut [f32], value: f32) -> Result<()> {
    y.fill(value);
    Ok(())
}

/// `dst[..src.len()] = src`; `dst` must hold at least `src.len()` elements.
pub fn copy(src: &[f32], dst: &mut [f32]) -> Result<()> {
    check_len("copy", "dst", dst.len(), src.len())?;
    dst[..src.len()].copy_from_slice(src);
    Ok(())
}

/// `x[r, c] += bias[c]` for `x: [rows, cols]`, `bias: [cols]`.
pub fn add_bias(rows: usize, cols: usize, x: &mut [f32], bias: &[f32]) -> Result<()> {
    check_len("add_bias", "x", x.len(), rows * cols)?;
    check_len("add_bias", "bias", bias.len(), cols)?;
    if cols == 0 {
        return Ok(());
    }
    let bias = &bias[..cols];
    let row = |xr: &mut [f32]| xr.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
    let x = &mut x[..rows * cols];
    if rows * cols > PAR_MIN {
        x.par_chunks_mut(cols).for_each(row);
    } else {
        x.chunks_mut(cols).for_each(row);
    }
    Ok(())
}

/// `y[i] = alpha * x[i] + y[i]` for `x, y: [n]`.
pub fn axpy(n: usize, alpha: f32, x: &[f32], y: &mut [f32]) -> Result<()> {
    check_len("axpy", "x", x.len(), n)?;
    check_len("axpy", "y", y.len(), n)?;
    for_chunks(&mut y[..n], |off, ys| {
        let x = &x[off..off + ys.len()];
        ys.iter_mut().zip(x).for_each(|(y, &x)| *y += alpha * x);
    });
    Ok(())
}

/// `x[i] *= alpha` for `x: [n]`.
pub fn scale(n: usize, alpha: f32, x: &mut [f32]) -> Result<()> {
    check_len("scale", "x", x.len(), n)?;
    for_chunks(&mut x[..n], |_, xs| xs.iter_mut().for_each(|x| *x *= alpha));
    Ok(())
}

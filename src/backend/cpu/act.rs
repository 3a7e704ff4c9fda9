//! The act family: activations φ, their derivatives, and act_forward / act_backward /
//! act_second (CPU twin of `shaders/act.wgsl`).

use rayon::prelude::*;

use super::par::{for_chunks, CHUNK, PAR_MIN};
use crate::backend::{check_len, Activation, Result};

/// φ(z).
#[inline]
pub fn act(act: Activation, z: f32) -> f32 {
    match act {
        Activation::Identity => z,
        Activation::Relu => {
            if z > 0.0 {
                z
            } else {
                0.0
            }
        }
        Activation::Tanh => z.tanh(),
    }
}

/// φ'(z): identity 1, relu `[z > 0]`, tanh `1 - tanh²(z)`.
#[inline]
pub fn act_deriv(act: Activation, z: f32) -> f32 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if z > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Tanh => {
            let t = z.tanh();
            1.0 - t * t
        }
    }
}

/// φ''(z): identity and relu 0 (relu's kink is ignored), tanh `-2 tanh(z) (1 - tanh²(z))`.
#[inline]
pub fn act_deriv2(act: Activation, z: f32) -> f32 {
    match act {
        Activation::Identity | Activation::Relu => 0.0,
        Activation::Tanh => {
            let t = z.tanh();
            -2.0 * t * (1.0 - t * t)
        }
    }
}

/// `y[i] = φ(z[i])` over one chunk, with the activation's match outside the loop so that each
/// arm's loop vectorises (the same expression per element as [`act`]).
#[inline]
fn forward_chunk(a: Activation, z: &[f32], ys: &mut [f32]) {
    fn each(z: &[f32], ys: &mut [f32], f: impl Fn(f32) -> f32) {
        ys.iter_mut().zip(z).for_each(|(y, &z)| *y = f(z));
    }
    match a {
        Activation::Identity => each(z, ys, |z| act(Activation::Identity, z)),
        Activation::Relu => each(z, ys, |z| act(Activation::Relu, z)),
        Activation::Tanh => each(z, ys, |z| act(Activation::Tanh, z)),
    }
}

/// `y[i] = φ(z[i])` for `z, y: [n]`.
pub fn act_forward(a: Activation, n: usize, z: &[f32], y: &mut [f32]) -> Result<()> {
    check_len("act_forward", "z", z.len(), n)?;
    check_len("act_forward", "y", y.len(), n)?;
    for_chunks(&mut y[..n], |off, ys| forward_chunk(a, &z[off..off + ys.len()], ys));
    Ok(())
}

/// `z[r, c] += bias[c]`, then `y[r, c] = φ(z[r, c])`, for `z, y: [rows, cols]`, `bias: [cols]`,
/// in one pass over memory (each element sees the same float operations as `add_bias` followed
/// by [`act_forward`]).
pub fn add_bias_act(
    a: Activation,
    rows: usize,
    cols: usize,
    z: &mut [f32],
    bias: &[f32],
    y: &mut [f32],
) -> Result<()> {
    let n = rows * cols;
    check_len("add_bias_act", "x", z.len(), n)?;
    check_len("add_bias_act", "bias", bias.len(), cols)?;
    check_len("add_bias_act", "y", y.len(), n)?;
    if cols == 0 {
        return Ok(());
    }
    let bias = &bias[..cols];
    // Whole rows per task, about CHUNK elements each.
    let rows_per = (CHUNK / cols).max(1);
    let task = |(zs, ys): (&mut [f32], &mut [f32])| {
        for (zr, yr) in zs.chunks_mut(cols).zip(ys.chunks_mut(cols)) {
            zr.iter_mut().zip(bias).for_each(|(z, b)| *z += b);
            forward_chunk(a, zr, yr);
        }
    };
    let (z, y) = (&mut z[..n], &mut y[..n]);
    if n > PAR_MIN {
        z.par_chunks_mut(rows_per * cols).zip(y.par_chunks_mut(rows_per * cols)).for_each(task);
    } else {
        task((z, y));
    }
    Ok(())
}

/// `g φ'(z)`: ReLU's as a select, `g` where `z > 0` and +0 elsewhere whatever `g` is (a
/// negative `g` gives +0, not -0; an inf or NaN `g` is masked, as PyTorch's threshold_backward):
/// the twin of the kernels' `dgrad` / `epi_dgrad`, which no compiler's algebra can change.
#[inline]
pub fn act_dgrad(act: Activation, g: f32, z: f32) -> f32 {
    match act {
        Activation::Relu => {
            if z > 0.0 {
                g
            } else {
                0.0
            }
        }
        Activation::Identity => g,
        Activation::Tanh => g * act_deriv(Activation::Tanh, z),
    }
}

/// `dz[i] = dy[i] φ'(z[i])` ([`act_dgrad`]) for `z, dy, dz: [n]`.
pub fn act_backward(a: Activation, n: usize, z: &[f32], dy: &[f32], dz: &mut [f32]) -> Result<()> {
    check_len("act_backward", "z", z.len(), n)?;
    check_len("act_backward", "dy", dy.len(), n)?;
    check_len("act_backward", "dz", dz.len(), n)?;
    fn each(z: &[f32], dy: &[f32], dzs: &mut [f32], f: impl Fn(f32, f32) -> f32) {
        for ((d, &z), &g) in dzs.iter_mut().zip(z).zip(dy) {
            *d = f(g, z);
        }
    }
    for_chunks(&mut dz[..n], |off, dzs| {
        let (z, dy) = (&z[off..off + dzs.len()], &dy[off..off + dzs.len()]);
        // The match outside the loop, so that each arm's loop vectorises.
        match a {
            Activation::Identity => each(z, dy, dzs, |g, z| act_dgrad(Activation::Identity, g, z)),
            Activation::Relu => each(z, dy, dzs, |g, z| act_dgrad(Activation::Relu, g, z)),
            Activation::Tanh => each(z, dy, dzs, |g, z| act_dgrad(Activation::Tanh, g, z)),
        }
    });
    Ok(())
}

/// `out[i] += dy[i] * φ''(z[i]) * rz[i]` for `z, dy, rz, out: [n]`.
///
/// For identity and relu φ'' = 0 and `out` is left unchanged.
pub fn act_second(
    a: Activation,
    n: usize,
    z: &[f32],
    dy: &[f32],
    rz: &[f32],
    out: &mut [f32],
) -> Result<()> {
    check_len("act_second", "z", z.len(), n)?;
    check_len("act_second", "dy", dy.len(), n)?;
    check_len("act_second", "rz", rz.len(), n)?;
    check_len("act_second", "out", out.len(), n)?;
    if a != Activation::Tanh {
        return Ok(());
    }
    for_chunks(&mut out[..n], |off, os| {
        let end = off + os.len();
        for (((o, &z), &g), &r) in os.iter_mut().zip(&z[off..end]).zip(&dy[off..end]).zip(&rz[off..end])
        {
            *o += g * act_deriv2(a, z) * r;
        }
    });
    Ok(())
}

//! Pointwise ops: bias, column sums, BLAS-1, activations and their derivatives, optimizer updates.
//!
//! Each element is computed by the same scalar expression whatever the chunking, so splitting
//! large buffers over rayon (above [`PAR_MIN`] elements) leaves results bitwise unchanged.

use rayon::prelude::*;

use crate::backend::{check_len, Activation, Result};

/// Below this many elements a loop on the calling thread beats waking the pool.
pub const PAR_MIN: usize = 1 << 16;
/// Elements per rayon task for pointwise ops.
const CHUNK: usize = 1 << 14;
/// Columns per rayon task in [`col_sum`].
const COL_BLOCK: usize = 256;

/// Runs `f(offset, chunk)` over `out` in chunks of [`CHUNK`], in parallel when `out` is large.
fn for_chunks(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if out.len() > PAR_MIN {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, ch)| f(i * CHUNK, ch));
    } else {
        f(0, out);
    }
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

/// `out[c] = alpha * sum_r x[r, c] + beta * out[c]` for `x: [rows, cols]`, `out: [cols]`.
///
/// The sum over rows is accumulated in f64 in row order. With `beta == 0` the old `out` is not
/// read (NaN included), as in `matmul`.
pub fn col_sum(
    rows: usize,
    cols: usize,
    alpha: f32,
    x: &[f32],
    beta: f32,
    out: &mut [f32],
) -> Result<()> {
    check_len("col_sum", "x", x.len(), rows * cols)?;
    check_len("col_sum", "out", out.len(), cols)?;
    if cols == 0 {
        return Ok(());
    }
    // Columns [c0, c0 + o.len()) of the result.
    let block = |c0: usize, o: &mut [f32]| {
        let w = o.len();
        let mut acc = vec![0.0f64; w];
        for r in 0..rows {
            let xr = &x[r * cols + c0..r * cols + c0 + w];
            acc.iter_mut().zip(xr).for_each(|(a, &v)| *a += v as f64);
        }
        for (o, a) in o.iter_mut().zip(&acc) {
            let old = if beta == 0.0 { 0.0 } else { beta as f64 * *o as f64 };
            *o = (alpha as f64 * a + old) as f32;
        }
    };
    let out = &mut out[..cols];
    if rows * cols > PAR_MIN && cols > COL_BLOCK {
        out.par_chunks_mut(COL_BLOCK).enumerate().for_each(|(i, o)| block(i * COL_BLOCK, o));
    } else {
        block(0, out);
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

/// `y[i] = φ(z[i])` for `z, y: [n]`.
pub fn act_forward(a: Activation, n: usize, z: &[f32], y: &mut [f32]) -> Result<()> {
    check_len("act_forward", "z", z.len(), n)?;
    check_len("act_forward", "y", y.len(), n)?;
    for_chunks(&mut y[..n], |off, ys| {
        let z = &z[off..off + ys.len()];
        ys.iter_mut().zip(z).for_each(|(y, &z)| *y = act(a, z));
    });
    Ok(())
}

/// `dz[i] = dy[i] * φ'(z[i])` for `z, dy, dz: [n]`.
pub fn act_backward(a: Activation, n: usize, z: &[f32], dy: &[f32], dz: &mut [f32]) -> Result<()> {
    check_len("act_backward", "z", z.len(), n)?;
    check_len("act_backward", "dy", dy.len(), n)?;
    check_len("act_backward", "dz", dz.len(), n)?;
    for_chunks(&mut dz[..n], |off, dzs| {
        let end = off + dzs.len();
        for ((d, &z), &g) in dzs.iter_mut().zip(&z[off..end]).zip(&dy[off..end]) {
            *d = g * act_deriv(a, z);
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

/// Plain SGD with L2 weight decay: `p -= lr * (g + wd * p)` for `grad, param: [n]`.
pub fn sgd_update(n: usize, lr: f32, wd: f32, grad: &[f32], param: &mut [f32]) -> Result<()> {
    check_len("sgd_update", "grad", grad.len(), n)?;
    check_len("sgd_update", "param", param.len(), n)?;
    for_chunks(&mut param[..n], |off, ps| {
        let g = &grad[off..off + ps.len()];
        ps.iter_mut().zip(g).for_each(|(p, &g)| *p -= lr * (g + wd * *p));
    });
    Ok(())
}

/// Heavy-ball momentum: `v = mu * v + (g + wd * p)`, then `p -= lr * v`, for
/// `grad, velocity, param: [n]`.
pub fn momentum_update(
    n: usize,
    lr: f32,
    mu: f32,
    wd: f32,
    grad: &[f32],
    velocity: &mut [f32],
    param: &mut [f32],
) -> Result<()> {
    check_len("momentum_update", "grad", grad.len(), n)?;
    check_len("momentum_update", "velocity", velocity.len(), n)?;
    check_len("momentum_update", "param", param.len(), n)?;
    let step = |g: &[f32], v: &mut [f32], p: &mut [f32]| {
        for ((v, p), &g) in v.iter_mut().zip(p.iter_mut()).zip(g) {
            *v = mu * *v + (g + wd * *p);
            *p -= lr * *v;
        }
    };
    let (g, v, p) = (&grad[..n], &mut velocity[..n], &mut param[..n]);
    if n > PAR_MIN {
        g.par_chunks(CHUNK)
            .zip(v.par_chunks_mut(CHUNK))
            .zip(p.par_chunks_mut(CHUNK))
            .for_each(|((g, v), p)| step(g, v, p));
    } else {
        step(g, v, p);
    }
    Ok(())
}

/// Global-norm clipping: `x[..n] *= min(1, max_norm / √s)` with `s = Σ stats[first..first+count]`
/// (f32 accumulation in slot order, as the GPU kernel); a clipped step adds 1 to
/// `stats[count_slot]` when given (it must lie outside the norm slots).
pub fn clip_by_global_norm(
    n: usize,
    max_norm: f32,
    first: usize,
    count: usize,
    count_slot: Option<usize>,
    stats: &mut [f32],
    x: &mut [f32],
) -> Result<()> {
    const OP: &str = "clip_by_global_norm";
    check_len(OP, "x", x.len(), n)?;
    check_len(OP, "stats", stats.len(), first + count)?;
    if let Some(slot) = count_slot {
        check_len(OP, "stats", stats.len(), slot + 1)?;
        if (first..first + count).contains(&slot) {
            return Err(crate::backend::BackendError::Invalid {
                op: OP,
                message: "count_slot overlaps the norm slots".into(),
            });
        }
    }
    let mut s = 0.0f32;
    for v in &stats[first..first + count] {
        s += *v;
    }
    let norm = s.sqrt();
    let clipped = norm > max_norm;
    let f = if clipped { max_norm / norm } else { 1.0 };
    x[..n].iter_mut().for_each(|v| *v *= f);
    if let (Some(slot), true) = (count_slot, clipped) {
        stats[slot] += 1.0;
    }
    Ok(())
}

//! The act family: activations φ, their derivatives, and act_forward / act_backward /
//! act_second (CPU twin of `shaders/act.wgsl`).

use super::par::for_chunks;
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

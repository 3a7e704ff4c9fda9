//! Host wrapper of `shaders/update.wgsl`: the optimizer updates sgd_update, momentum_update
//! and momentum_update2 (two tensors at once).
//! Each function records one dispatch; lengths were checked by the caller.

use bytemuck::{Pod, Zeroable};

use super::device::{GpuDevice, RawBuf};
use super::kernels as k;
use super::launch::{launch_1d, u32_of};
use crate::backend::{MomentumStep, Result};

/// Mirrors `struct Opt` in update.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct OptParams {
    n: u32,
    lr: f32,
    mu: f32,
    wd: f32,
}

/// `p -= lr (g + wd p)` over `n` elements.
pub fn sgd_update(
    dev: &GpuDevice,
    n: usize,
    lr: f32,
    wd: f32,
    grad: &RawBuf,
    param: &RawBuf,
) -> Result<()> {
    let p = OptParams { n: u32_of("sgd_update", "n", n)?, lr, mu: 0.0, wd };
    launch_1d(dev, &k::SGD_UPDATE, n, &p, &[grad, param])
}

/// `v = mu v + (g + wd p); p -= lr v` over `n` elements.
pub fn momentum_update(
    dev: &GpuDevice,
    n: usize,
    step: &MomentumStep,
    grad: &RawBuf,
    vel: &RawBuf,
    param: &RawBuf,
) -> Result<()> {
    let MomentumStep { lr, mu, weight_decay: wd } = *step;
    let p = OptParams { n: u32_of("momentum_update", "n", n)?, lr, mu, wd };
    launch_1d(dev, &k::MOMENTUM_UPDATE, n, &p, &[grad, vel, param])
}

/// Mirrors `struct Opt2` in update.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct OptPairParams {
    n: u32,
    lr: f32,
    mu: f32,
    wd: f32,
    n1: u32,
    _pad: [u32; 3],
}

/// [`momentum_update`] of two tensors in one dispatch: `n[t]` elements of `bufs[t] = [grad,
/// velocity, param]`.
pub fn momentum_update_pair(
    dev: &GpuDevice,
    n: [usize; 2],
    step: &MomentumStep,
    bufs: [[&RawBuf; 3]; 2],
) -> Result<()> {
    let MomentumStep { lr, mu, weight_decay: wd } = *step;
    let op = "momentum_update2";
    let total = n[0] + n[1];
    u32_of(op, "n", total)?;
    let p = OptPairParams {
        n: u32_of(op, "n", n[0])?,
        lr,
        mu,
        wd,
        n1: u32_of(op, "n1", n[1])?,
        _pad: [0; 3],
    };
    let [[g0, v0, p0], [g1, v1, p1]] = bufs;
    launch_1d(dev, &k::MOMENTUM_UPDATE2, total, &p, &[g0, v0, p0, g1, v1, p1])
}

#[cfg(test)]
mod tests {
    use crate::backend::gpu::GpuBackend;
    use crate::backend::{Backend, MomentumStep, MomentumTensor};

    /// Both tensors of a pair get the bits of their own `momentum_update`, on ragged sizes
    /// (and an empty weight or bias).
    #[test]
    fn momentum_pair_equals_two_updates_bitwise() {
        let be = match GpuBackend::new(None) {
            Ok(b) => b,
            Err(e) => panic!("no GPU backend: {e}"),
        };
        let step = MomentumStep { lr: 0.037, mu: 0.9, weight_decay: 1e-3 };
        let vals = |n: usize, s: usize| -> Vec<f32> {
            (0..n).map(|j| ((j * 7919 + s * 104_729) % 1000) as f32 * 1.9e-3 - 0.95).collect()
        };
        for (s, (n0, n1)) in [(1000usize, 37usize), (257, 1), (0, 5), (3, 0)].into_iter().enumerate() {
            let up = |n: usize, k: usize| be.upload(&vals(n, 10 * s + k)).expect("upload");
            let (g0, g1) = (up(n0, 0), up(n1, 1));
            let (mut v0, mut v1, mut p0, mut p1) = (up(n0, 2), up(n1, 3), up(n0, 4), up(n1, 5));
            let (mut w0, mut w1, mut q0, mut q1) = (up(n0, 2), up(n1, 3), up(n0, 4), up(n1, 5));
            be.momentum_update(n0, &step, &g0, &mut w0, &mut q0).expect("update");
            be.momentum_update(n1, &step, &g1, &mut w1, &mut q1).expect("update");
            let t0 = MomentumTensor { n: n0, grad: &g0, velocity: &mut v0, param: &mut p0 };
            let t1 = MomentumTensor { n: n1, grad: &g1, velocity: &mut v1, param: &mut p1 };
            be.momentum_update_pair(&step, [t0, t1]).expect("pair");
            let bits =
                |b| -> Vec<u32> { be.read(b).expect("read").iter().map(|v| v.to_bits()).collect() };
            for (got, want) in [(&v0, &w0), (&v1, &w1), (&p0, &q0), (&p1, &q1)] {
                assert_eq!(bits(got), bits(want), "sizes {n0}, {n1}");
            }
        }
    }
}

//! The CPU's [`Backend::wgrad_update`] at tiny batches: where the weight gradient runs on the
//! rows kernel ([`Kernel::Rows`]: `k = B` of 1 to 16, 1 to 8 with MKL, at least 16 rows), each
//! block of rows of gW is computed and
//! the optimizer step applied to the same rows of W (and its velocity) while they are still in
//! cache, one rayon task per block. The unfused path writes all of gW, then reads it back from
//! memory for the update: at these batches the update is most of the step's traffic, so skipping
//! that re-read is most of what is left to save. The same bits: the rows kernel's elements do not
//! depend on the split, and the update is `cpu::update`'s own per-element code.
//!
//! [`Backend::wgrad_update`]: crate::backend::Backend::wgrad_update

use rayon::prelude::*;

use super::matmul::{self, Kernel};
use super::par::PAR_MIN;
use super::update::{momentum_slice, sgd_slice};
use super::CpuBackend;
use crate::backend::{check_len, layer_step, Backend, Gemm, LayerStep, ParamUpdate, Result, UpdateRule};

/// Bytes of each of gW, W (and the velocity) per task: their rows stay in L1/L2 between the
/// product and the update.
const BLOCK_BYTES: usize = 32 << 10;

/// Whether the CPU fuses `g`: a weight gradient that [`matmul::choose`] runs on the rows kernel,
/// overwriting its output.
pub fn fuses(g: &Gemm) -> bool {
    g.trans_a && g.beta == 0.0 && matmul::choose(g) == Kernel::Rows
}

/// [`Backend::wgrad_update`] on the CPU: fused where [`fuses`], else the unfused default.
pub fn wgrad_update(
    b: &CpuBackend,
    g: &Gemm,
    dz: &Vec<f32>,
    x: &Vec<f32>,
    gw: &mut Vec<f32>,
    gb: &mut Vec<f32>,
    step: LayerStep<'_, Vec<f32>>,
) -> Result<()> {
    if !fuses(g) {
        return layer_step::unfused(b, g, dz, x, gw, gb, step);
    }
    let op = "wgrad_update";
    let (m, n, k) = (g.m, g.n, g.k);
    check_len(op, "dz", dz.len(), k * m)?;
    check_len(op, "x", x.len(), k * n)?;
    check_len(op, "gw", gw.len(), m * n)?;
    check_len(op, "weight", step.weight.param.len(), m * n)?;
    let LayerStep { rule, weight, bias } = step;
    let velocity = match (&rule, weight.velocity) {
        (UpdateRule::Momentum(_), Some(v)) => {
            check_len(op, "weight velocity", v.len(), m * n)?;
            Some(v)
        }
        (UpdateRule::Momentum(_), None) => return Err(ParamUpdate::<Vec<f32>>::no_velocity()),
        (UpdateRule::Sgd { .. }, _) => None,
    };
    // The bias gradient and step as the unfused path does them (m elements).
    b.col_sum(k, m, 1.0, dz, 0.0, gb)?;
    let mut bias_step = [ParamUpdate { n: m, grad: &*gb, velocity: bias.velocity, param: bias.param }];
    b.update_params(&rule, &mut bias_step)?;
    // The weights, a block of rows per task: gW's rows, then the step of the same rows.
    let rows = (BLOCK_BYTES / 4 / n.max(1)).clamp(1, m.max(1));
    let chunk = rows * n;
    let (gw, w) = (&mut gw[..m * n], &mut weight.param[..m * n]);
    let block = |t: usize, gc: &mut [f32], wc: &mut [f32], vc: Option<&mut [f32]>| -> Result<()> {
        matmul::weight_grad_rows(g, t * rows, dz, x, gc)?;
        match (rule, vc) {
            (UpdateRule::Momentum(s), Some(vc)) => momentum_slice(&s, gc, vc, wc),
            (UpdateRule::Sgd { lr, weight_decay }, _) => sgd_slice(lr, weight_decay, gc, wc),
            (UpdateRule::Momentum(_), None) => return Err(ParamUpdate::<Vec<f32>>::no_velocity()),
        }
        Ok(())
    };
    let parallel = m * n > PAR_MIN;
    match velocity {
        Some(v) => {
            let v = &mut v[..m * n];
            if parallel {
                let blocks =
                    gw.par_chunks_mut(chunk).zip(w.par_chunks_mut(chunk)).zip(v.par_chunks_mut(chunk));
                blocks.enumerate().try_for_each(|(t, ((gc, wc), vc))| block(t, gc, wc, Some(vc)))
            } else {
                let blocks = gw.chunks_mut(chunk).zip(w.chunks_mut(chunk)).zip(v.chunks_mut(chunk));
                blocks.enumerate().try_for_each(|(t, ((gc, wc), vc))| block(t, gc, wc, Some(vc)))
            }
        }
        None if parallel => {
            let blocks = gw.par_chunks_mut(chunk).zip(w.par_chunks_mut(chunk));
            blocks.enumerate().try_for_each(|(t, (gc, wc))| block(t, gc, wc, None))
        }
        None => {
            let blocks = gw.chunks_mut(chunk).zip(w.chunks_mut(chunk));
            blocks.enumerate().try_for_each(|(t, (gc, wc))| block(t, gc, wc, None))
        }
    }
}

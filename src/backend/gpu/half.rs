//! [`HalfOps`] on the GPU: packed half buffers, [`super::matmul_f16`], [`super::amp`].

use super::autotune::Candidate;
use super::{amp, matmul_f16, GpuBackend, GpuBuf};
use crate::backend::half::{half_words, HalfBuf, HalfOps, ScaleGrowth};
use crate::backend::{check_len, Gemm, MomentumStep, Result};

impl HalfOps for GpuBackend {
    type Buf = GpuBuf;

    fn zeros_half(&self, len: usize) -> Result<HalfBuf<GpuBuf>> {
        Ok(HalfBuf { words: GpuBuf(self.dev.alloc("f16 buffer", half_words(len))?), len })
    }

    fn to_half(&self, n: usize, x: &GpuBuf, out: &mut HalfBuf<GpuBuf>) -> Result<()> {
        check_len("to_half", "out", out.len, n)?;
        matmul_f16::to_half(&self.dev, n, &x.0, &out.words.0)
    }

    fn read_half(&self, src: &HalfBuf<GpuBuf>) -> Result<Vec<f32>> {
        let bytes = self.dev.read_bytes(&src.words.0)?;
        let mut out: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect();
        out.truncate(src.len);
        Ok(out)
    }

    fn matmul_half(
        &self,
        g: &Gemm,
        a: &HalfBuf<GpuBuf>,
        b: &HalfBuf<GpuBuf>,
        c: &mut GpuBuf,
    ) -> Result<()> {
        let kernel = match self.tuned_half(g)? {
            Some(Candidate::HalfCoop) => matmul_f16::HalfKernel::Coop,
            Some(Candidate::HalfPacked) => matmul_f16::HalfKernel::Packed,
            _ => matmul_f16::choose(&self.dev, g),
        };
        matmul_f16::matmul_half(&self.dev, kernel, g, &a.words.0, a.len, &b.words.0, b.len, &c.0)
    }

    fn amp_scale(&self, n: usize, state: &GpuBuf, x: &mut GpuBuf) -> Result<()> {
        amp::amp_scale(&self.dev, n, &state.0, &x.0)
    }

    fn amp_unscale(&self, n: usize, state: &mut GpuBuf, x: &mut GpuBuf) -> Result<()> {
        amp::amp_unscale(&self.dev, n, &state.0, &x.0)
    }

    fn amp_sgd(
        &self,
        n: usize,
        lr: f32,
        weight_decay: f32,
        state: &GpuBuf,
        grad: &GpuBuf,
        param: &mut GpuBuf,
    ) -> Result<()> {
        amp::amp_sgd(&self.dev, n, lr, weight_decay, &state.0, &grad.0, &param.0)
    }

    fn amp_momentum(
        &self,
        n: usize,
        step: &MomentumStep,
        state: &GpuBuf,
        grad: &GpuBuf,
        velocity: &mut GpuBuf,
        param: &mut GpuBuf,
    ) -> Result<()> {
        amp::amp_momentum(&self.dev, n, step, &state.0, &grad.0, &velocity.0, &param.0)
    }

    fn amp_update_scale(&self, growth: &ScaleGrowth, state: &mut GpuBuf) -> Result<()> {
        amp::amp_update_scale(&self.dev, growth, &state.0)
    }
}

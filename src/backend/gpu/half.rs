//! [`HalfOps`] on the GPU: packed half buffers, [`super::matmul_f16`], [`super::amp`].

use super::autotune::half_kernel_of;
use super::device::RawBuf;
use super::matmul::{fuses_serial_bias_grad, Epilogue as Store};
use super::matmul_f16::{HalfKernel, HalfStore};
use super::{amp, matmul_coop, matmul_f16, update, GpuBackend, GpuBuf};
use crate::backend::half::{half_words, HalfBuf, HalfOps, ScaleGrowth, ToHalf};
use crate::backend::{
    check_len, half_epilogue, Epilogue, Gemm, MomentumStep, ParamUpdate, Result, UpdateRule,
};

impl HalfOps for GpuBackend {
    type Buf = GpuBuf;

    fn zeros_half(&self, len: usize) -> Result<HalfBuf<GpuBuf>> {
        Ok(HalfBuf { words: GpuBuf(self.dev.alloc("f16 buffer", half_words(len))?), len })
    }

    fn to_half(&self, n: usize, x: &GpuBuf, out: &mut HalfBuf<GpuBuf>) -> Result<()> {
        check_len("to_half", "out", out.len, n)?;
        matmul_f16::to_half(&self.dev, n, &x.0, &out.words.0)
    }

    fn to_half_all(&self, items: &mut [ToHalf<'_, GpuBuf>]) -> Result<()> {
        for (n, _, out) in items.iter() {
            check_len("to_half", "out", out.len, *n)?;
        }
        let raw: Vec<(usize, &RawBuf, &RawBuf)> =
            items.iter().map(|(n, x, out)| (*n, &x.0, &out.words.0)).collect();
        matmul_f16::to_half_many(&self.dev, &raw)
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
        let kernel = self.half_kernel(g)?;
        matmul_f16::matmul_half(&self.dev, kernel, g, &a.words.0, a.len, &b.words.0, b.len, &c.0)
    }

    fn amp_scale(&self, n: usize, state: &GpuBuf, x: &mut GpuBuf) -> Result<()> {
        amp::amp_scale(&self.dev, n, &state.0, &x.0)
    }

    fn amp_scale_to_half(
        &self,
        n: usize,
        state: &GpuBuf,
        x: &mut GpuBuf,
        out: &mut HalfBuf<GpuBuf>,
    ) -> Result<()> {
        check_len("amp_scale_to_half", "out", out.len, n)?;
        amp::amp_scale_half(&self.dev, n, &state.0, &x.0, &out.words.0)
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

    fn amp_unscale_all(&self, state: &mut GpuBuf, xs: &mut [(usize, &mut GpuBuf)]) -> Result<()> {
        let xs: Vec<(usize, &RawBuf)> = xs.iter().map(|(n, x)| (*n, &x.0)).collect();
        amp::amp_unscale_all(&self.dev, &state.0, &xs, self.update_pairs())
    }

    fn amp_update_params(
        &self,
        rule: &UpdateRule,
        state: &GpuBuf,
        tensors: &mut [ParamUpdate<'_, GpuBuf>],
    ) -> Result<()> {
        let guard = update::Guard::UnlessFoundInf(&state.0);
        update::update_params(&self.dev, rule, tensors, self.update_pairs(), guard)
    }

    fn amp_update_scale(&self, growth: &ScaleGrowth, state: &mut GpuBuf) -> Result<()> {
        amp::amp_update_scale(&self.dev, growth, &state.0)
    }
}

impl GpuBackend {
    /// The f16 kernel for `g`: the one set by [`GpuBackend::set_half_kernel`] where it can run
    /// `g`, else the autotuner's choice, else [`matmul_f16::choose`].
    fn half_kernel(&self, g: &Gemm) -> Result<matmul_f16::HalfKernel> {
        if let Some(k) = self.choices.half_kernel.get().filter(|&k| self.half_kernel_runs(k, g)) {
            return Ok(k);
        }
        Ok(match self.tuned_half(g)?.and_then(half_kernel_of) {
            Some(k) => k,
            None => matmul_f16::choose(&self.dev, g),
        })
    }

    /// Whether `kernel` can run the f16 product `g` here: the packed and skinny kernels always, a
    /// cooperative one where the adapter offers it, the shape fits it and its workgroup does.
    pub fn half_kernel_runs(&self, kernel: HalfKernel, g: &Gemm) -> bool {
        match kernel.coop_block() {
            None => true,
            Some(block) => {
                matmul_coop::available(&self.dev.ctx)
                    && matmul_coop::eligible(g, &self.dev)
                    && block.fits_on(&self.dev.ctx)
            }
        }
    }

    /// Run every f16 product that `kernel` can run on it (`None`: the rule, or the autotuner's
    /// choice); `BATCHSCOPE_F16_KERNEL=packed|skinny|coop|coop64|coop_staged` (the cooperative
    /// ones also with `_v4` or `_v8`) sets it from the environment, for A/B timing on a device and for the tests of each kernel.
    pub fn set_half_kernel(&self, kernel: Option<HalfKernel>) {
        self.choices.half_kernel.set(kernel);
    }

    /// Whether `Backend::matmul_half_epilogue` fuses for `g` (else it records the unfused ops);
    /// the bias gradient also needs [`GpuBackend::fuses_half_bias_grad`].
    pub fn fuses_half_epilogue(&self, g: &Gemm) -> Result<bool> {
        Ok(matmul_f16::fuses(self.half_kernel(g)?))
    }

    /// Whether the kernel chosen for `g` sums the bias gradient in the product's dispatch: the
    /// packed and skinny kernels serially per invocation up to k = 32, then in col_sum
    /// workgroups after the product's (where [`GpuBackend::set_col_sum_workgroups`] is on),
    /// the cooperative ones up to k = 32; `n > 0` either way.
    pub fn fuses_half_bias_grad(&self, g: &Gemm) -> Result<bool> {
        Ok(g.n > 0
            && match self.half_kernel(g)? {
                HalfKernel::Packed | HalfKernel::Skinny => {
                    self.choices.col_sum_workgroups.get() || fuses_serial_bias_grad(g)
                }
                HalfKernel::Coop
                | HalfKernel::Coop64
                | HalfKernel::CoopStaged
                | HalfKernel::CoopV4
                | HalfKernel::Coop64V4
                | HalfKernel::CoopStagedV4
                | HalfKernel::CoopV8
                | HalfKernel::Coop64V8
                | HalfKernel::CoopStagedV8 => fuses_serial_bias_grad(g),
            })
    }

    /// Sum the packed f16 product's bias gradient past k = 32 in `ceil(m / 32)` col_sum
    /// workgroups of the product's own dispatch (`true`), or in a dispatch after it (`false`:
    /// `col_sum`, or `amp_col_sum_unscale` with the unscaling). The same bits either way. On
    /// by default but on an adapter that runs on the CPU (`BATCHSCOPE_COL_SUM_WORKGROUPS=0|1`
    /// decides): llvmpipe spends on each workgroup of the product's dispatch that returns at
    /// once about what a product tile costs, so the extra grid rows cost 7–100 % of the
    /// product (784-1024-1024-10 f16 at B = 512: 1975 ms/step with the dispatch after, 2195
    /// with the workgroups), while a second dispatch costs it 0.3 ms.
    pub fn set_col_sum_workgroups(&self, on: bool) {
        self.choices.col_sum_workgroups.set(on);
    }

    /// Unscale the weight gradients of a single-replica f16 step in their products' stores
    /// (`true`, the default; `BATCHSCOPE_FUSED_UNSCALE=0|1` for A/B timing on a device) or in
    /// unscale dispatches after the product (`false`, the layout before). The same bits and the
    /// same found-inf flag either way.
    pub fn set_fused_unscale(&self, on: bool) {
        self.choices.fused_unscale.set(on);
    }

    /// `Backend::matmul_half_epilogue`: one `matmul_f16` dispatch with the epilogue and the f16
    /// rounding in its store, where the chosen kernel [`matmul_f16::fuses`] (and, for the bias
    /// gradient, [`GpuBackend::fuses_half_bias_grad`]); else unfused.
    pub(super) fn matmul_half_fused(
        &self,
        g: &Gemm,
        ab: [&HalfBuf<GpuBuf>; 2],
        c: &mut GpuBuf,
        epi: Epilogue<'_, GpuBackend>,
        half: Option<&mut HalfBuf<GpuBuf>>,
    ) -> Result<()> {
        epi.check(g)?;
        let kernel = self.half_kernel(g)?;
        let bias_grad = matches!(epi, Epilogue::BiasGrad { .. });
        if !matmul_f16::fuses(kernel) || (bias_grad && !self.fuses_half_bias_grad(g)?) {
            return half_epilogue::unfused(self, g, ab, c, epi, half);
        }
        if let Some(h) = &half {
            check_len("matmul_half_epilogue", "half", h.len, g.m * g.n)?;
        }
        let store = matmul_f16::HalfStore {
            epi: match &epi {
                Epilogue::Bias(bias) => Store::Bias(&bias.0),
                Epilogue::BiasAct(act, bias, y) => Store::BiasAct(*act, &bias.0, &y.0),
                Epilogue::ActGrad { act, z, .. } => Store::ActGrad(*act, &z.0),
                Epilogue::BiasGrad { s, bias_grad } => Store::BiasGrad(&s.0, &bias_grad.0),
            },
            half: half.as_ref().map(|h| &h.words.0),
            unscale: None,
        };
        let [a, b] = ab;
        let ops = [(&a.words.0, a.len), (&b.words.0, b.len)];
        matmul_f16::matmul_half_store(&self.dev, kernel, g, ops, &c.0, store)
    }

    /// `Backend::matmul_half_bias_grad_unscaled`: the weight gradient and its bias gradient
    /// unscaled in the product's store, one dispatch where the kernel sums the bias gradient
    /// ([`GpuBackend::fuses_half_bias_grad`]), else the product unscaled in its store and
    /// `amp_col_sum_unscale`; unfused after `set_fused_unscale(false)`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn matmul_half_bias_grad_unscaled_fused(
        &self,
        g: &Gemm,
        ab: [&HalfBuf<GpuBuf>; 2],
        c: &mut GpuBuf,
        s: &GpuBuf,
        bias_grad: &mut GpuBuf,
        state: &mut GpuBuf,
    ) -> Result<()> {
        let kernel = self.half_kernel(g)?;
        if !self.choices.fused_unscale.get() || !matmul_f16::fuses(kernel) {
            return half_epilogue::unfused_unscaled(self, g, ab, c, s, bias_grad, state);
        }
        let [a, b] = ab;
        let ops = [(&a.words.0, a.len), (&b.words.0, b.len)];
        let unscale = Some(&state.0);
        if self.fuses_half_bias_grad(g)? {
            let store = HalfStore { epi: Store::BiasGrad(&s.0, &bias_grad.0), half: None, unscale };
            return matmul_f16::matmul_half_store(&self.dev, kernel, g, ops, &c.0, store);
        }
        check_len("matmul_half_bias_grad_unscaled", "s", s.0.len, g.k * g.m)?;
        check_len("matmul_half_bias_grad_unscaled", "bias_grad", bias_grad.0.len, g.m)?;
        let store = HalfStore { epi: Store::None, half: None, unscale };
        matmul_f16::matmul_half_store(&self.dev, kernel, g, ops, &c.0, store)?;
        amp::amp_col_sum_unscale(&self.dev, g.k, g.m, &state.0, &s.0, &bias_grad.0)
    }
}

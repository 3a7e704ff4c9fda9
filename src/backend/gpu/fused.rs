//! The GPU's fused ops: [`Backend::matmul_epilogue`], the product's launch (tuned or by
//! variant) with the epilogue fused into its store (`matmul.wgsl`'s epilogue section), one
//! dispatch where the unfused path records two (the naive kernel, which has no epilogue, runs
//! the unfused default); and [`Backend::sums`], two vectors per two-pass reduction.
//!
//! [`Backend::matmul_epilogue`]: crate::backend::Backend::matmul_epilogue
//! [`Backend::sums`]: crate::backend::Backend::sums

use super::matmul::{
    self, fuses, fuses_bias_grad, launch_of, record_epi, Epilogue as Store, Launch, MatmulVariant,
};
use super::{reduce, GpuBackend, GpuBuf};
use crate::backend::{check_len, epilogue, gemm_lens, Epilogue, Gemm, Result};

impl GpuBackend {
    /// The launch [`Backend::matmul`] records for `g`: the autotuner's choice, else the variant's.
    pub(super) fn launch_for(&self, g: &Gemm) -> Result<Launch> {
        if let Some(launch) = self.tuned_launch(g)? {
            return Ok(launch);
        }
        Ok(match self.matmul_variant() {
            MatmulVariant::Auto => self.choices.auto_rule.get().launch(g, &self.dev.ctx.limits),
            v => launch_of(v, g),
        })
    }

    /// The entry point [`crate::backend::Backend::matmul`] runs for `g` here (the autotuner's
    /// choice, else the backend's variant and [`super::auto_rule::AutoRule`]), for reports and
    /// tests.
    pub fn matmul_kernel_name(&self, g: &Gemm) -> Result<&'static str> {
        Ok(self.launch_for(g)?.kernel.name)
    }

    /// `C = alpha * op(a) * op(b) + beta * C` ([`crate::backend::Backend::matmul`]): the
    /// autotuner's launch where it has one, else the backend's variant.
    pub(super) fn matmul_plain(&self, g: &Gemm, a: &GpuBuf, b: &GpuBuf, c: &GpuBuf) -> Result<()> {
        let (la, lb, lc) = gemm_lens(g);
        check_len("matmul", "a", a.0.len, la)?;
        check_len("matmul", "b", b.0.len, lb)?;
        check_len("matmul", "c", c.0.len, lc)?;
        matmul::record(&self.dev, &self.launch_for(g)?, g, &a.0, &b.0, &c.0)
    }

    /// `C = alpha * op(a) * op(b) + beta * C`, then `epi`, fused where the launch can.
    pub(super) fn matmul_fused(
        &self,
        g: &Gemm,
        a: &GpuBuf,
        b: &GpuBuf,
        c: &mut GpuBuf,
        epi: Epilogue<'_, GpuBackend>,
    ) -> Result<()> {
        let (la, lb, lc) = gemm_lens(g);
        check_len("matmul", "a", a.0.len, la)?;
        check_len("matmul", "b", b.0.len, lb)?;
        check_len("matmul", "c", c.0.len, lc)?;
        epi.check(g)?;
        let launch = self.launch_for(g)?;
        let bias_grad_fuses = match &epi {
            Epilogue::BiasGrad { s, .. } => {
                let staged = self.choices.staged_bias_grad.get() && s.0.id == a.0.id;
                fuses_bias_grad(&launch, g, staged)
            }
            _ => true,
        };
        if !fuses(&launch) || !bias_grad_fuses {
            return epilogue::unfused(self, g, a, b, c, epi);
        }
        let store = match &epi {
            Epilogue::Bias(bias) => Store::Bias(&bias.0),
            Epilogue::BiasAct(act, bias, y) => Store::BiasAct(*act, &bias.0, &y.0),
            Epilogue::ActGrad { act, z, .. } => Store::ActGrad(*act, &z.0),
            Epilogue::BiasGrad { s, bias_grad } => Store::BiasGrad(&s.0, &bias_grad.0),
        };
        record_epi(&self.dev, &launch, g, &a.0, &b.0, &c.0, store)
    }

    /// Sum the bias gradient of a weight-gradient product inside its dispatches at every depth
    /// (`true`, the default everywhere: the tiled kernels from their staged slices of dz, split-k
    /// in its reduce) or, past k = 32, in a `col_sum` dispatch of its own (`false`, the layout
    /// before; `BATCHSCOPE_STAGED_BIAS_GRAD=0|1` for A/B timing on a device). The same bits
    /// either way.
    pub fn set_staged_bias_grad(&self, on: bool) {
        self.choices.staged_bias_grad.set(on);
    }

    /// Whether `Backend::matmul_epilogue` fuses for `g` (else it records the unfused ops); the
    /// bias gradient also needs [`matmul::fuses_bias_grad`].
    pub fn fuses_epilogue(&self, g: &Gemm) -> Result<bool> {
        Ok(fuses(&self.launch_for(g)?))
    }

    /// `out[slot] = Σ_{i<n} x[i]` for every `(x, slot)` of `terms`, two vectors per reduction.
    pub(super) fn sums_fused(
        &self,
        n: usize,
        terms: &[(&GpuBuf, usize)],
        out: &mut GpuBuf,
    ) -> Result<()> {
        for &(x, slot) in terms {
            check_len("sums", "x", x.0.len, n)?;
            check_len("sums", "out", out.0.len, slot + 1)?;
        }
        let raw: Vec<_> = terms.iter().map(|&(x, slot)| (&x.0, slot)).collect();
        reduce::sums(&self.dev, n, &raw, &out.0)
    }
}

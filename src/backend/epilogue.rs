//! [`Epilogue`]: what [`Backend::matmul_epilogue`] does to the product's output `C [m, n]`,
//! and the unfused default (the product, then the element-wise op), which every fused
//! implementation must equal bit for bit.

use super::{check_len, Activation, Backend, BackendError, Gemm, Result};

/// The element-wise op applied to `C [m, n]` after `C = alpha * op(A) * op(B) + beta * C`.
pub enum Epilogue<'a, B: Backend + ?Sized> {
    /// `C[r, j] += bias[j]` ([`Backend::add_bias`]), `bias: [n]`.
    Bias(&'a B::Buf),
    /// `C[r, j] += bias[j]`, then `y = φ(C)` ([`Backend::add_bias_act`]); `bias: [n]`,
    /// `y: [m, n]`.
    BiasAct(Activation, &'a B::Buf, &'a mut B::Buf),
    /// `C = (alpha * op(A) * op(B)) ⊙ φ'(z)` (`g.beta` must be 0), `z: [m, n]`: the default
    /// computes the product into `scratch [m, n]`, then [`Backend::act_backward`]; a fused
    /// backend leaves `scratch` untouched.
    ActGrad { act: Activation, z: &'a B::Buf, scratch: &'a mut B::Buf },
    /// `C` as the product leaves it, and `bias_grad[r] = Σ_{i<k} s[i, r]` for `r < m`
    /// ([`Backend::col_sum`] with alpha 1, beta 0), `s: [k, m]`, `bias_grad: [m]`: the weight gradient
    /// `gW [out, in] = dzᵀ · x` with its bias gradient `gb = Σ_rows dz` (`s = dz [rows, out]`,
    /// cuBLASLt's BGRADA epilogue).
    BiasGrad { s: &'a B::Buf, bias_grad: &'a mut B::Buf },
}

impl<'a, B: Backend + ?Sized> Epilogue<'a, B> {
    /// The same epilogue for another backend over the same buffers (a wrapper's inner one).
    pub fn cast<C: Backend<Buf = B::Buf> + ?Sized>(self) -> Epilogue<'a, C> {
        match self {
            Epilogue::Bias(bias) => Epilogue::Bias(bias),
            Epilogue::BiasAct(act, bias, y) => Epilogue::BiasAct(act, bias, y),
            Epilogue::ActGrad { act, z, scratch } => Epilogue::ActGrad { act, z, scratch },
            Epilogue::BiasGrad { s, bias_grad } => Epilogue::BiasGrad { s, bias_grad },
        }
    }

    /// `act bwd`'s precondition: the product is not accumulated into `C`.
    pub fn check(&self, g: &Gemm) -> Result<()> {
        if matches!(self, Epilogue::ActGrad { .. }) && g.beta != 0.0 {
            return Err(BackendError::Invalid {
                op: "matmul_epilogue",
                message: format!("the activation-gradient epilogue needs beta = 0, got {}", g.beta),
            });
        }
        Ok(())
    }
}

/// The default of [`Backend::matmul_epilogue`]: [`Backend::matmul`], then the element-wise op.
pub fn unfused<B: Backend + ?Sized>(
    b: &B,
    g: &Gemm,
    x: &B::Buf,
    w: &B::Buf,
    c: &mut B::Buf,
    epi: Epilogue<'_, B>,
) -> Result<()> {
    epi.check(g)?;
    match epi {
        Epilogue::Bias(bias) => {
            b.matmul(g, x, w, c)?;
            b.add_bias(g.m, g.n, c, bias)
        }
        Epilogue::BiasAct(act, bias, y) => {
            b.matmul(g, x, w, c)?;
            b.add_bias_act(act, g.m, g.n, c, bias, y)
        }
        Epilogue::ActGrad { act, z, scratch } => {
            check_len("matmul_epilogue", "scratch", b.len(scratch), g.m * g.n)?;
            b.matmul(g, x, w, scratch)?;
            b.act_backward(act, g.m * g.n, z, scratch, c)
        }
        Epilogue::BiasGrad { s, bias_grad } => {
            b.matmul(g, x, w, c)?;
            b.col_sum(g.k, g.m, 1.0, s, 0.0, bias_grad)
        }
    }
}

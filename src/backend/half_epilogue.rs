//! The mixed-precision form of [`Epilogue`]: [`Backend::matmul_half_epilogue`] runs an f16
//! product (f32 sums) with an f32 epilogue on its output and, optionally, the f16 rounding of
//! the epilogue's result — the next product's f16 operand. [`unfused`] is the default (the
//! product, the element-wise op, then [`HalfOps::to_half`]); a fused backend must equal it bit
//! for bit.
//!
//! [`HalfOps::to_half`]: super::half::HalfOps::to_half

use super::half::{HalfBuf, HalfOps};
use super::{check_len, Backend, BackendError, Epilogue, Gemm, Result};

/// The default of [`Backend::matmul_half_epilogue`]: `C [m, n] = alpha * op(A) op(B) + beta * C`
/// with half `ab` ([`super::half::HalfOps::matmul_half`]), then `epi` as
/// [`super::epilogue::unfused`] applies it, then `half [m, n] = f16(y or C)` when given.
pub fn unfused<B: Backend + ?Sized>(
    b: &B,
    g: &Gemm,
    ab: [&HalfBuf<B::Buf>; 2],
    c: &mut B::Buf,
    epi: Epilogue<'_, B>,
    half: Option<&mut HalfBuf<B::Buf>>,
) -> Result<()> {
    epi.check(g)?;
    let h = half_ops_of(b, "matmul_half_epilogue")?;
    let n = g.m * g.n;
    let y = match epi {
        Epilogue::Bias(bias) => {
            h.matmul_half(g, ab[0], ab[1], c)?;
            b.add_bias(g.m, g.n, c, bias)?;
            None
        }
        Epilogue::BiasAct(act, bias, y) => {
            h.matmul_half(g, ab[0], ab[1], c)?;
            b.add_bias_act(act, g.m, g.n, c, bias, y)?;
            Some(y)
        }
        Epilogue::ActGrad { act, z, scratch } => {
            check_len("matmul_half_epilogue", "scratch", b.len(scratch), n)?;
            h.matmul_half(g, ab[0], ab[1], scratch)?;
            b.act_backward(act, n, z, scratch, c)?;
            None
        }
        Epilogue::BiasGrad { s, bias_grad } => {
            h.matmul_half(g, ab[0], ab[1], c)?;
            b.col_sum(g.k, g.m, 1.0, s, 0.0, bias_grad)?;
            None
        }
    };
    match (half, y) {
        (Some(out), Some(y)) => h.to_half(n, y, out),
        (Some(out), None) => h.to_half(n, c, out),
        (None, _) => Ok(()),
    }
}

/// The default of [`Backend::matmul_half_bias_grad_unscaled`]: [`unfused`] with
/// `Epilogue::BiasGrad { s, bias_grad }`, then `c [m, n]` and `bias_grad [m]` unscaled by the
/// loss scaler `state` ([`HalfOps::amp_unscale_all`]).
#[allow(clippy::too_many_arguments)]
pub fn unfused_unscaled<B: Backend + ?Sized>(
    b: &B,
    g: &Gemm,
    ab: [&HalfBuf<B::Buf>; 2],
    c: &mut B::Buf,
    s: &B::Buf,
    bias_grad: &mut B::Buf,
    state: &mut B::Buf,
) -> Result<()> {
    let h = half_ops_of(b, "matmul_half_bias_grad_unscaled")?;
    let epi = Epilogue::BiasGrad { s, bias_grad: &mut *bias_grad };
    b.matmul_half_epilogue(g, ab, c, epi, None)?;
    h.amp_unscale_all(state, &mut [(g.m * g.n, c), (g.m, bias_grad)])
}

fn half_ops_of<'b, B: Backend + ?Sized>(
    b: &'b B,
    op: &'static str,
) -> Result<&'b dyn HalfOps<Buf = B::Buf>> {
    b.half_ops().ok_or_else(|| BackendError::Invalid {
        op,
        message: format!("the {:?} backend has no f16 ops", b.kind()),
    })
}

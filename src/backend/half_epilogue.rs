//! The mixed-precision form of [`Epilogue`]: [`Backend::matmul_half_epilogue`] runs an f16
//! product (f32 sums) with an f32 epilogue on its output and, optionally, the f16 rounding of
//! the epilogue's result — the next product's f16 operand. [`unfused`] is the default (the
//! product, the element-wise op, then [`HalfOps::to_half`]); a fused backend must equal it bit
//! for bit.
//!
//! [`HalfOps::to_half`]: super::half::HalfOps::to_half

use super::half::HalfBuf;
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
    let h = b.half_ops().ok_or_else(|| BackendError::Invalid {
        op: "matmul_half_epilogue",
        message: format!("the {:?} backend has no f16 ops", b.kind()),
    })?;
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

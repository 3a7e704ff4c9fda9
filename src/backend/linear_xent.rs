//! [`Backend::linear_xent_sums`]: a classifier's output layer and its loss as one op (the
//! logits' product with its bias, softmax cross-entropy with d logits, and the step's minibatch
//! sums), its loss operands, and the unfused default every fused implementation must equal bit
//! for bit.
//!
//! [`Backend::linear_xent_sums`]: super::Backend::linear_xent_sums

use super::{Backend, Epilogue, Gemm, Result, StepSums};

/// Softmax cross-entropy's operands and outputs in [`super::Backend::linear_xent_sums`]:
/// `labels [rows]` in, `loss`, `correct [rows]` and `dlogits [rows, classes]` out, the gradient
/// scaled by `grad_scale` (`1/B` for a minibatch mean), as in [`Backend::softmax_xent`].
pub struct XentOutputs<'a, Buf, IdxBuf> {
    pub labels: &'a IdxBuf,
    pub grad_scale: f32,
    pub loss: &'a mut Buf,
    pub correct: &'a mut Buf,
    pub dlogits: &'a mut Buf,
}

/// The default of [`super::Backend::linear_xent_sums`]: [`Backend::matmul_epilogue`] with the
/// bias (`logits [m, n] = op(x) · op(w) + bias`), then [`Backend::softmax_xent_sums`] over the
/// `m` rows of `n` classes.
pub fn unfused<B: Backend + ?Sized>(
    b: &B,
    g: &Gemm,
    [x, w, bias]: [&B::Buf; 3],
    logits: &mut B::Buf,
    xent: XentOutputs<'_, B::Buf, B::IdxBuf>,
    sums: &mut StepSums<'_, B::Buf>,
) -> Result<()> {
    b.matmul_epilogue(g, x, w, logits, Epilogue::Bias(bias))?;
    let XentOutputs { labels, grad_scale, loss, correct, dlogits } = xent;
    b.softmax_xent_sums(g.m, g.n, logits, labels, grad_scale, loss, correct, dlogits, sums)
}

//! The products of one MLP training step, as `batchscope tune` times them.

use super::ShapeKey;
use crate::backend::Gemm;

/// The distinct GEMM shapes of one training step of an MLP with layer sizes `sizes` (inputs,
/// hidden widths, outputs) at batch `batch`, in first-use order. Mirrors `Mlp::forward` and
/// `Mlp::backward`: per layer l (`in` → `out`) the forward `Z [B,out] = X [B,in] · Wᵀ` (NT,
/// W stored [out,in]), the weight gradient `gW [out,in] = dZᵀ · X` (TN, dZ stored [B,out]) and,
/// above the first layer, `dA [B,in] = dZ [B,out] · W [out,in]` (NN).
pub fn mlp_step_gemms(sizes: &[usize], batch: usize) -> Vec<Gemm> {
    let layers = sizes.len().saturating_sub(1);
    let mut all = Vec::with_capacity(3 * layers);
    for l in 0..layers {
        all.push(Gemm::nn(batch, sizes[l + 1], sizes[l]).trans(false, true));
    }
    for l in (0..layers).rev() {
        let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
        all.push(Gemm::nn(fan_out, fan_in, batch).trans(true, false));
        if l > 0 {
            all.push(Gemm::nn(batch, fan_in, fan_out));
        }
    }
    let mut seen = Vec::new();
    all.retain(|g| {
        let key = ShapeKey::of(g);
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    all
}

//! The CPU backend: the specification every GPU kernel must equal.
//!
//! Buffers are `Vec<f32>` / `Vec<u32>` and every op runs eagerly on the calling thread, using
//! rayon's global pool for large ops. `matmul` runs the kernel a fixed shape table picks
//! ([`matmul::choose`]: hand-written thin kernels or the `gemm` crate); losses and reductions accumulate in f64; all results are independent of the thread count.
//! One submodule per kernel family, named as its shader (`shaders/<family>.wgsl`) and its GPU
//! host wrapper (`backend/gpu/<family>.rs`); their slice-level functions are public so GPU tests
//! can use them as references.

pub mod act;
pub mod amp;
pub mod ceilings;
pub mod clip;
pub mod datagen;
pub mod elementwise;
pub mod f16;
pub mod gather;
pub mod layer_step;
pub mod matmul;
pub mod mse;
mod par;
pub mod reduce;
pub mod share;
mod timed;
pub mod update;
pub mod xent;

#[cfg(test)]
mod matmul_tests;
#[cfg(test)]
mod tests;

use super::{
    check_len, Activation, Backend, BackendKind, Gemm, GenSpec, GlobalNorm, LayerStep, MomentumStep,
    Result,
};

/// Eager CPU implementation of [`Backend`] on rayon's global thread pool.
#[derive(Clone, Debug)]
pub struct CpuBackend {
    /// CPU model from `/proc/cpuinfo`, when it can be read.
    model: Option<String>,
}

impl CpuBackend {
    /// A backend on rayon's global pool (its size: `RAYON_NUM_THREADS`, default the core count).
    pub fn new() -> Self {
        CpuBackend { model: cpu_model() }
    }

    /// Threads of rayon's global pool that large ops are split over.
    pub fn threads(&self) -> usize {
        rayon::current_num_threads()
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// The `model name` line of `/proc/cpuinfo` (Linux), if any.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Backend for CpuBackend {
    type Buf = Vec<f32>;
    type IdxBuf = Vec<u32>;

    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn half_ops(&self) -> Option<&dyn super::half::HalfOps<Buf = Vec<f32>>> {
        Some(self)
    }

    /// `"CPU (N threads, <model>)"`, or `"CPU (N threads)"` when the model is unknown, with the
    /// system BLAS the shape table uses (oneMKL, else the OpenBLAS core), and why it leaves one
    /// out where it does.
    fn device_name(&self) -> String {
        let blas = matmul::blas_name();
        match &self.model {
            Some(m) => format!("CPU ({} threads, {m}{blas})", self.threads()),
            None => format!("CPU ({} threads{blas})", self.threads()),
        }
    }

    // ---- memory -------------------------------------------------------------------------

    /// A new `[len]` buffer of zeros.
    fn zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    /// A new `[data.len()]` buffer holding `data`.
    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    /// A new `[data.len()]` index buffer holding `data`.
    fn upload_idx(&self, data: &[u32]) -> Result<Vec<u32>> {
        Ok(data.to_vec())
    }

    /// `dst[..data.len()] = data`; `dst` must hold at least `data.len()` elements.
    fn write(&self, dst: &mut Vec<f32>, data: &[f32]) -> Result<()> {
        check_len("write", "dst", dst.len(), data.len())?;
        dst[..data.len()].copy_from_slice(data);
        Ok(())
    }

    /// `dst[..data.len()] = data`; `dst` must hold at least `data.len()` elements.
    fn write_idx(&self, dst: &mut Vec<u32>, data: &[u32]) -> Result<()> {
        check_len("write_idx", "dst", dst.len(), data.len())?;
        dst[..data.len()].copy_from_slice(data);
        Ok(())
    }

    /// A copy of the whole buffer.
    fn read(&self, src: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(src.clone())
    }

    fn read_into(&self, src: &Vec<f32>, out: &mut [f32]) -> Result<()> {
        check_len("read_into", "src", src.len(), out.len())?;
        out.copy_from_slice(&src[..out.len()]);
        Ok(())
    }

    /// A copy of the whole index buffer.
    fn read_idx(&self, src: &Vec<u32>) -> Result<Vec<u32>> {
        Ok(src.clone())
    }

    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }

    fn len_idx(&self, buf: &Vec<u32>) -> usize {
        buf.len()
    }

    /// `dst[..src.len()] = src`; `dst` must hold at least `src.len()` elements.
    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>) -> Result<()> {
        elementwise::copy(src, dst)
    }

    fn fill(&self, dst: &mut Vec<f32>, value: f32) -> Result<()> {
        elementwise::fill(dst, value)
    }

    /// No-op: the CPU backend runs eagerly.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// No-op: the CPU backend runs eagerly.
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    // ---- linear algebra -----------------------------------------------------------------

    /// `C[m,n] = alpha * op(A) * op(B) + beta * C` with `A: [m,k]` (`[k,m]` if `trans_a`),
    /// `B: [k,n]` (`[n,k]` if `trans_b`); see [`matmul::matmul`].
    fn matmul(&self, g: &Gemm, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) -> Result<()> {
        matmul::matmul(g, a, b, c)
    }

    fn add_bias(&self, rows: usize, cols: usize, x: &mut Vec<f32>, bias: &Vec<f32>) -> Result<()> {
        elementwise::add_bias(rows, cols, x, bias)
    }

    /// `x[r, c] += bias[c]`, `y = φ(x)` in one pass (see [`act::add_bias_act`]).
    fn add_bias_act(
        &self,
        act: Activation,
        rows: usize,
        cols: usize,
        x: &mut Vec<f32>,
        bias: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        act::add_bias_act(act, rows, cols, x, bias, y)
    }

    /// `out[c] = alpha * sum_r x[r, c] + beta * out[c]` for `x: [rows, cols]`, `out: [cols]`.
    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &Vec<f32>,
        beta: f32,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        reduce::col_sum(rows, cols, alpha, x, beta, out)
    }

    /// `y[i] = alpha * x[i] + y[i]` for `x, y: [n]`.
    fn axpy(&self, n: usize, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        elementwise::axpy(n, alpha, x, y)
    }

    /// `x[i] *= alpha` for `x: [n]`.
    fn scale(&self, n: usize, alpha: f32, x: &mut Vec<f32>) -> Result<()> {
        elementwise::scale(n, alpha, x)
    }

    // ---- activations --------------------------------------------------------------------

    /// `y[i] = φ(z[i])` for `z, y: [n]`.
    fn act_forward(&self, act: Activation, n: usize, z: &Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        act::act_forward(act, n, z, y)
    }

    /// `dz[i] = dy[i] * φ'(z[i])` for `z, dy, dz: [n]`.
    fn act_backward(
        &self,
        act: Activation,
        n: usize,
        z: &Vec<f32>,
        dy: &Vec<f32>,
        dz: &mut Vec<f32>,
    ) -> Result<()> {
        act::act_backward(act, n, z, dy, dz)
    }

    /// `out[i] += dy[i] * φ''(z[i]) * rz[i]` for `z, dy, rz, out: [n]`.
    fn act_second(
        &self,
        act: Activation,
        n: usize,
        z: &Vec<f32>,
        dy: &Vec<f32>,
        rz: &Vec<f32>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        act::act_second(act, n, z, dy, rz, out)
    }

    // ---- losses -------------------------------------------------------------------------

    /// Softmax cross-entropy: `logits, dlogits: [rows, classes]`, `labels, loss, correct: [rows]`.
    fn softmax_xent(
        &self,
        rows: usize,
        classes: usize,
        logits: &Vec<f32>,
        labels: &Vec<u32>,
        grad_scale: f32,
        loss: &mut Vec<f32>,
        correct: &mut Vec<f32>,
        dlogits: &mut Vec<f32>,
    ) -> Result<()> {
        xent::softmax_xent(rows, classes, logits, labels, grad_scale, loss, correct, dlogits)
    }

    /// `out[r] = grad_scale * p ⊙ (rl - p·rl)` for `logits, rlogits, out: [rows, classes]`.
    fn softmax_xent_rop(
        &self,
        rows: usize,
        classes: usize,
        logits: &Vec<f32>,
        rlogits: &Vec<f32>,
        grad_scale: f32,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        xent::softmax_xent_rop(rows, classes, logits, rlogits, grad_scale, out)
    }

    /// Squared error: `pred, target, dpred: [rows, cols]`, `loss: [rows]`.
    fn mse(
        &self,
        rows: usize,
        cols: usize,
        pred: &Vec<f32>,
        target: &Vec<f32>,
        grad_scale: f32,
        loss: &mut Vec<f32>,
        dpred: &mut Vec<f32>,
    ) -> Result<()> {
        mse::mse(rows, cols, pred, target, grad_scale, loss, dpred)
    }

    // ---- reductions ---------------------------------------------------------------------

    /// `out[slot] = Σ_{i<n} x[i]` for `x: [n]` (deterministic, f64 accumulation).
    fn sum(&self, n: usize, x: &Vec<f32>, out: &mut Vec<f32>, slot: usize) -> Result<()> {
        reduce::sum(n, x, out, slot)
    }

    /// `out[slot] = Σ_{i<n} x[i] * y[i]` for `x, y: [n]` (deterministic, f64 accumulation).
    fn dot(&self, n: usize, x: &Vec<f32>, y: &Vec<f32>, out: &mut Vec<f32>, slot: usize) -> Result<()> {
        reduce::dot(n, x, y, out, slot)
    }

    /// `out[slot] = Σ_{i<n} x[i]²` for `x: [n]` (deterministic, f64 accumulation).
    fn sum_sq(&self, n: usize, x: &Vec<f32>, out: &mut Vec<f32>, slot: usize) -> Result<()> {
        reduce::sum_sq(n, x, out, slot)
    }

    // ---- optimizer updates --------------------------------------------------------------

    /// `p -= lr * (g + wd * p)` for `grad, param: [n]`.
    fn sgd_update(
        &self,
        n: usize,
        lr: f32,
        weight_decay: f32,
        grad: &Vec<f32>,
        param: &mut Vec<f32>,
    ) -> Result<()> {
        update::sgd_update(n, lr, weight_decay, grad, param)
    }

    /// `v = mu * v + (g + wd * p)`, `p -= lr * v` for `grad, velocity, param: [n]`.
    fn wgrad_update(
        &self,
        g: &Gemm,
        dz: &Vec<f32>,
        x: &Vec<f32>,
        gw: &mut Vec<f32>,
        gb: &mut Vec<f32>,
        step: LayerStep<'_, Vec<f32>>,
    ) -> Result<()> {
        layer_step::wgrad_update(self, g, dz, x, gw, gb, step)
    }

    fn momentum_update(
        &self,
        n: usize,
        step: &MomentumStep,
        grad: &Vec<f32>,
        velocity: &mut Vec<f32>,
        param: &mut Vec<f32>,
    ) -> Result<()> {
        update::momentum_update(n, step, grad, velocity, param)
    }

    // ---- data movement ------------------------------------------------------------------

    /// `dst[r, :] = src[idx[r], :]` for `src: [N, cols]`, `idx: [rows]`, `dst: [rows, cols]`.
    fn gather_rows(
        &self,
        rows: usize,
        cols: usize,
        src: &Vec<f32>,
        idx: &Vec<u32>,
        dst: &mut Vec<f32>,
    ) -> Result<()> {
        gather::gather_rows(rows, cols, src, idx, dst)
    }

    /// `dst[r] = src[idx[r]]` for `idx, dst: [rows]`.
    fn gather_idx(&self, rows: usize, src: &Vec<u32>, idx: &Vec<u32>, dst: &mut Vec<u32>) -> Result<()> {
        gather::gather_idx(rows, src, idx, dst)
    }

    /// Rows of `dst` whose index lies in `[first, first + src_rows)` copied from the window.
    fn gather_rows_window(
        &self,
        rows: usize,
        cols: usize,
        src: &Vec<f32>,
        first: usize,
        src_rows: usize,
        idx: &Vec<u32>,
        dst: &mut Vec<f32>,
    ) -> Result<()> {
        gather::gather_rows_window(rows, cols, src, first, src_rows, idx, dst)
    }

    /// `x *= min(1, max_norm / √Σ stats[first..first+count])`, counting a clipped step.
    fn clip_by_global_norm(
        &self,
        n: usize,
        norm: &GlobalNorm,
        stats: &mut Vec<f32>,
        x: &mut Vec<f32>,
    ) -> Result<()> {
        clip::clip_by_global_norm(n, norm, stats, x)
    }

    /// `x = clamp(x, -limit, limit)`.
    fn clip_by_value(&self, n: usize, limit: f32, x: &mut Vec<f32>) -> Result<()> {
        clip::clip_by_value(n, limit, x)
    }

    /// The CPU twin of the counter-based stream generator.
    fn generate(
        &self,
        spec: &GenSpec,
        first: u64,
        rows: usize,
        table: &Vec<f32>,
        x: &mut Vec<f32>,
        labels: &mut Vec<u32>,
        targets: &mut Vec<f32>,
    ) -> Result<()> {
        datagen::generate(spec, first, rows, table, x, labels, targets)
    }

    fn max_binding_bytes(&self) -> u64 {
        u64::MAX
    }
}

//! The `Backend` trait: every op a model needs, with its shapes.
//!
//! Two implementations: [`cpu::CpuBackend`] (the specification every kernel must equal) and
//! [`gpu::GpuBackend`] (WGSL compute shaders through wgpu). Model code (forward, backward, R-op)
//! is written once over this trait, so both backends run the same algorithm.
//!
//! Conventions:
//! - Buffers are flat, row-major `f32` (`Buf`) or `u32` (`IdxBuf`); shapes are passed to each op
//!   and documented as `[rows, cols]`. Every op checks the lengths it reads and writes.
//! - GPU ops are *recorded*; nothing runs until [`Backend::flush`] (submit) or a read. Reading a
//!   buffer to the host is an explicit synchronisation point. The CPU backend runs eagerly.
//! - Reductions write their result into a device buffer slot (`out[slot]`) so a whole training
//!   step, norms included, stays on the device; they are deterministic (tree + second pass).

pub mod ceiling;
pub mod cpu;
pub mod epilogue;
pub mod error;
pub mod global_norm;
pub mod gpu;
pub mod half;
pub mod half_epilogue;
pub mod knobs;
pub mod layer_step;
pub mod linear_xent;
pub mod rng;
pub mod scope;
pub mod step_sums;
pub mod timed;
pub mod types;
pub mod update;

pub use epilogue::Epilogue;
pub use error::BackendError;
pub use global_norm::GlobalNorm;
pub use layer_step::{Dgrad, LayerStep, ParamState};
pub use linear_xent::XentOutputs;
pub use scope::Scope;
pub use step_sums::StepSums;
pub use types::{check_len, gemm_lens, Activation, BackendKind, Gemm, GenKind, GenSpec, MomentumStep};
pub use update::{ParamUpdate, UpdateRule};

pub type Result<T> = std::result::Result<T, BackendError>;

/// Every op a model needs. Shapes are in the doc comment of each op; lengths are checked.
pub trait Backend {
    /// A device buffer of `f32`.
    type Buf;
    /// A device buffer of `u32` (labels, indices).
    type IdxBuf;

    fn kind(&self) -> BackendKind;
    /// Human-readable device name (adapter name, or CPU model and thread count).
    fn device_name(&self) -> String;
    /// Whether this device's buffers are host memory (the CPU backend; a software adapter such
    /// as lavapipe): a run's buffers on it count against the host's memory.
    fn buffers_in_host_memory(&self) -> bool {
        self.kind() == BackendKind::Cpu
    }
    /// Name the model context of the ops recorded next (read by profilers; a no-op otherwise).
    fn scope(&self, _scope: Scope) {}
    /// The mixed-precision ops ([`half::HalfOps`]), when this backend has them.
    fn half_ops(&self) -> Option<&dyn half::HalfOps<Buf = Self::Buf>> {
        None
    }

    // ---- memory -------------------------------------------------------------------------
    /// A new buffer of `len` zeros.
    fn zeros(&self, len: usize) -> Result<Self::Buf>;
    /// A new buffer holding `data`.
    fn upload(&self, data: &[f32]) -> Result<Self::Buf>;
    /// A new index buffer holding `data`.
    fn upload_idx(&self, data: &[u32]) -> Result<Self::IdxBuf>;
    /// Overwrite `dst[..data.len()]` with `data` (ordered with recorded ops).
    fn write(&self, dst: &mut Self::Buf, data: &[f32]) -> Result<()>;
    /// Overwrite `dst[..data.len()]` with `data` (ordered with recorded ops).
    fn write_idx(&self, dst: &mut Self::IdxBuf, data: &[u32]) -> Result<()>;
    /// Copy the whole buffer to the host. A synchronisation point on the GPU.
    fn read(&self, src: &Self::Buf) -> Result<Vec<f32>>;
    /// Copy the first `out.len()` elements of `src` into `out` (a host buffer the caller keeps
    /// from step to step). A synchronisation point on the GPU.
    fn read_into(&self, src: &Self::Buf, out: &mut [f32]) -> Result<()> {
        check_len("read_into", "src", self.len(src), out.len())?;
        let all = self.read(src)?;
        out.copy_from_slice(&all[..out.len()]);
        Ok(())
    }
    /// Copy the whole index buffer to the host. A synchronisation point on the GPU.
    fn read_idx(&self, src: &Self::IdxBuf) -> Result<Vec<u32>>;
    /// Number of elements of a buffer.
    fn len(&self, buf: &Self::Buf) -> usize;
    /// Number of elements of an index buffer.
    fn len_idx(&self, buf: &Self::IdxBuf) -> usize;
    /// `dst[..src.len()] = src`.
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf) -> Result<()>;
    /// `dst[i] = value` for every element.
    fn fill(&self, dst: &mut Self::Buf, value: f32) -> Result<()>;
    /// The largest buffer one op may bind, in bytes (GPU: `max_storage_buffer_binding_size`).
    fn max_binding_bytes(&self) -> u64;
    /// Submit everything recorded so far (GPU); returns without waiting. No-op on the CPU.
    fn flush(&self) -> Result<()>;
    /// Submit and wait until the device is idle.
    fn sync(&self) -> Result<()>;

    // ---- linear algebra -----------------------------------------------------------------
    /// See [`Gemm`]: `C[m,n] = alpha * op(A) * op(B) + beta * C`.
    fn matmul(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) -> Result<()>;
    /// [`Backend::matmul`], then `epi` on `C [m, n]` ([`epilogue::unfused`], the default); a
    /// backend may fuse `epi` into the product's store when every element sees the same float
    /// operations.
    fn matmul_epilogue(
        &self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        c: &mut Self::Buf,
        epi: Epilogue<'_, Self>,
    ) -> Result<()> {
        epilogue::unfused(self, g, a, b, c, epi)
    }
    /// [`half::HalfOps::matmul_half`], then `epi` and, with `half`, the f16 rounding of the
    /// epilogue's result ([`half_epilogue::unfused`], the default; a backend may fuse).
    fn matmul_half_epilogue(
        &self,
        g: &Gemm,
        ab: [&half::HalfBuf<Self::Buf>; 2],
        c: &mut Self::Buf,
        epi: Epilogue<'_, Self>,
        half: Option<&mut half::HalfBuf<Self::Buf>>,
    ) -> Result<()> {
        half_epilogue::unfused(self, g, ab, c, epi, half)
    }
    /// The weight gradient of an f16 step with its bias gradient, unscaled:
    /// [`Backend::matmul_half_epilogue`] with `Epilogue::BiasGrad { s, bias_grad }`, then
    /// [`half::HalfOps::amp_unscale_all`] of `c [m, n]` and `bias_grad [m]` with the loss
    /// scaler `state` ([`half_epilogue::unfused_unscaled`], the default); a backend may unscale
    /// in the product's store when every element sees the same float operations and the same
    /// elements raise the found-inf flag.
    #[allow(clippy::too_many_arguments)]
    fn matmul_half_bias_grad_unscaled(
        &self,
        g: &Gemm,
        ab: [&half::HalfBuf<Self::Buf>; 2],
        c: &mut Self::Buf,
        s: &Self::Buf,
        bias_grad: &mut Self::Buf,
        state: &mut Self::Buf,
    ) -> Result<()> {
        half_epilogue::unfused_unscaled(self, g, ab, c, s, bias_grad, state)
    }
    /// `x[r, c] += bias[c]` for `x: [rows, cols]`, `bias: [cols]`.
    fn add_bias(&self, rows: usize, cols: usize, x: &mut Self::Buf, bias: &Self::Buf) -> Result<()>;
    /// `out[c] = alpha * sum_r x[r, c] + beta * out[c]` for `x: [rows, cols]`, `out: [cols]`.
    /// With `beta == 0` the old contents of `out` are ignored (NaN included).
    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &Self::Buf,
        beta: f32,
        out: &mut Self::Buf,
    ) -> Result<()>;
    /// `y[i] = alpha * x[i] + y[i]` for `i < n`.
    fn axpy(&self, n: usize, alpha: f32, x: &Self::Buf, y: &mut Self::Buf) -> Result<()>;
    /// `x[i] *= alpha` for `i < n`.
    fn scale(&self, n: usize, alpha: f32, x: &mut Self::Buf) -> Result<()>;

    // ---- activations --------------------------------------------------------------------
    /// `x[r, c] += bias[c]`, then `y = φ(x)`, for `x, y: [rows, cols]`: [`Backend::add_bias`]
    /// followed by [`Backend::act_forward`] (the default); a backend may fuse the two as long
    /// as every element sees the same float operations.
    #[allow(clippy::too_many_arguments)]
    fn add_bias_act(
        &self,
        act: Activation,
        rows: usize,
        cols: usize,
        x: &mut Self::Buf,
        bias: &Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()> {
        self.add_bias(rows, cols, x, bias)?;
        self.act_forward(act, rows * cols, x, y)
    }
    /// `y[i] = φ(z[i])` for `i < n`.
    fn act_forward(&self, act: Activation, n: usize, z: &Self::Buf, y: &mut Self::Buf) -> Result<()>;
    /// `dz[i] = dy[i] * φ'(z[i])` for `i < n` (also the R-forward `Ry = φ'(z) ⊙ Rz`).
    fn act_backward(
        &self,
        act: Activation,
        n: usize,
        z: &Self::Buf,
        dy: &Self::Buf,
        dz: &mut Self::Buf,
    ) -> Result<()>;
    /// `out[i] += dy[i] * φ''(z[i]) * rz[i]` for `i < n`: the second-derivative term of the
    /// R-backward pass, `R{dz} = R{dy} ⊙ φ'(z) + dy ⊙ φ''(z) ⊙ R{z}`.
    fn act_second(
        &self,
        act: Activation,
        n: usize,
        z: &Self::Buf,
        dy: &Self::Buf,
        rz: &Self::Buf,
        out: &mut Self::Buf,
    ) -> Result<()>;

    // ---- losses -------------------------------------------------------------------------
    /// Softmax cross-entropy over `logits: [rows, classes]` with `labels: [rows]`.
    /// Writes `loss[r] = -log softmax(logits[r])[labels[r]]` (the surrogate NLL),
    /// `correct[r] = 1` if the first argmax equals the label else `0` (so 0-1 loss is `1-correct`),
    /// and `dlogits[r, c] = grad_scale * (softmax(logits[r])[c] - [c == labels[r]])`.
    #[allow(clippy::too_many_arguments)]
    fn softmax_xent(
        &self,
        rows: usize,
        classes: usize,
        logits: &Self::Buf,
        labels: &Self::IdxBuf,
        grad_scale: f32,
        loss: &mut Self::Buf,
        correct: &mut Self::Buf,
        dlogits: &mut Self::Buf,
    ) -> Result<()>;
    /// [`Backend::softmax_xent`], then the step's minibatch sums of `loss` and `correct`
    /// ([`StepSums::record`], the default); the GPU does both in one dispatch when one
    /// workgroup covers the rows, with the bits of the two ops.
    #[allow(clippy::too_many_arguments)]
    fn softmax_xent_sums(
        &self,
        rows: usize,
        classes: usize,
        logits: &Self::Buf,
        labels: &Self::IdxBuf,
        grad_scale: f32,
        loss: &mut Self::Buf,
        correct: &mut Self::Buf,
        dlogits: &mut Self::Buf,
        sums: &mut StepSums<'_, Self::Buf>,
    ) -> Result<()> {
        self.softmax_xent(rows, classes, logits, labels, grad_scale, loss, correct, dlogits)?;
        sums.record(self, rows, loss, correct)
    }
    /// A classifier's output layer and loss: `logits [m, n] = op(x) · op(w) + bias` (`g`; the
    /// forward `x [rows, in] · Wᵀ` with `W [classes, in]` stored, `trans_b`), then
    /// [`Backend::softmax_xent_sums`] of the `m` rows of `n` classes with `xent`'s operands.
    /// The logits are written. The default is [`linear_xent::unfused`]; the GPU does all of it
    /// in one dispatch at small batches, with the same bits.
    fn linear_xent_sums(
        &self,
        g: &Gemm,
        x_w_bias: [&Self::Buf; 3],
        logits: &mut Self::Buf,
        xent: XentOutputs<'_, Self::Buf, Self::IdxBuf>,
        sums: &mut StepSums<'_, Self::Buf>,
    ) -> Result<()> {
        linear_xent::unfused(self, g, x_w_bias, logits, xent, sums)
    }
    /// R-operator of softmax cross-entropy's gradient (the Gauss-Newton block of the loss):
    /// `out[r] = grad_scale * (diag(p) - p pᵀ) rlogits[r]` with `p = softmax(logits[r])`,
    /// for `logits, rlogits, out: [rows, classes]`.
    fn softmax_xent_rop(
        &self,
        rows: usize,
        classes: usize,
        logits: &Self::Buf,
        rlogits: &Self::Buf,
        grad_scale: f32,
        out: &mut Self::Buf,
    ) -> Result<()>;
    /// Squared error per example over `pred, target: [rows, cols]`:
    /// `loss[r] = ½ Σ_c (pred - target)²`, `dpred = grad_scale * (pred - target)`.
    #[allow(clippy::too_many_arguments)]
    fn mse(
        &self,
        rows: usize,
        cols: usize,
        pred: &Self::Buf,
        target: &Self::Buf,
        grad_scale: f32,
        loss: &mut Self::Buf,
        dpred: &mut Self::Buf,
    ) -> Result<()>;

    // ---- reductions (deterministic, result stays on the device) -------------------------
    /// `out[slot] = Σ_{i<n} x[i]`.
    fn sum(&self, n: usize, x: &Self::Buf, out: &mut Self::Buf, slot: usize) -> Result<()>;
    /// `out[slot] = Σ_{i<n} x[i]` for every `(x, slot)` of `terms` ([`Backend::sum`] each, the
    /// default); a backend may reduce several vectors at once when every sum keeps the bits of
    /// [`Backend::sum`].
    fn sums(&self, n: usize, terms: &[(&Self::Buf, usize)], out: &mut Self::Buf) -> Result<()> {
        terms.iter().try_for_each(|&(x, slot)| self.sum(n, x, out, slot))
    }
    /// `out[slot] = Σ_{i<n} x[i] * y[i]`.
    fn dot(
        &self,
        n: usize,
        x: &Self::Buf,
        y: &Self::Buf,
        out: &mut Self::Buf,
        slot: usize,
    ) -> Result<()>;
    /// `out[slot] = Σ_{i<n} x[i]²`.
    fn sum_sq(&self, n: usize, x: &Self::Buf, out: &mut Self::Buf, slot: usize) -> Result<()>;

    // ---- optimizer updates --------------------------------------------------------------
    /// Plain SGD with L2 weight decay: `p -= lr * (g + wd * p)` for `i < n`.
    fn sgd_update(
        &self,
        n: usize,
        lr: f32,
        weight_decay: f32,
        grad: &Self::Buf,
        param: &mut Self::Buf,
    ) -> Result<()>;
    /// Heavy-ball momentum: `v = mu * v + (g + wd * p)`, then `p -= lr * v`, for `i < n`.
    fn momentum_update(
        &self,
        n: usize,
        step: &MomentumStep,
        grad: &Self::Buf,
        velocity: &mut Self::Buf,
        param: &mut Self::Buf,
    ) -> Result<()>;
    /// `rule` applied to every tensor of `tensors` (a model's whole update): the same float
    /// operations as one [`Backend::sgd_update`] or [`Backend::momentum_update`] per tensor,
    /// which is what this default does; the GPU records two tensors per dispatch.
    fn update_params(
        &self,
        rule: &UpdateRule,
        tensors: &mut [ParamUpdate<'_, Self::Buf>],
    ) -> Result<()> {
        update::per_tensor(self, rule, tensors)
    }
    /// A dense layer's backward-and-update: `gW [m, n] = dzᵀ · x` (`g` with `trans_a`; `dz`
    /// stored `[k, m]`, `x: [k, n]`), `gb [m] = Σ_rows dz`, then `step` of the layer's weight
    /// with `gW` and of its bias with `gb`. Both gradients are written. The default is
    /// [`layer_step::unfused`] ([`Backend::matmul_epilogue`] with the bias gradient, then
    /// [`Backend::update_params`]); the GPU does all of it in one dispatch at small k, with the
    /// same bits.
    #[allow(clippy::too_many_arguments)]
    fn wgrad_update(
        &self,
        g: &Gemm,
        dz: &Self::Buf,
        x: &Self::Buf,
        gw: &mut Self::Buf,
        gb: &mut Self::Buf,
        step: LayerStep<'_, Self::Buf>,
    ) -> Result<()> {
        layer_step::unfused(self, g, dz, x, gw, gb, step)
    }

    /// A hidden-input layer's whole backward-and-update: `dz_prev [k, n] = (dz · W) ⊙ φ'(z)`
    /// (`dgrad`; `W [m, n]` the layer's weight before the step), then [`Backend::wgrad_update`]
    /// of `g` (`gW [m, n] = dzᵀ · x`, `gb`, and `step`). The default is
    /// [`layer_step::unfused_with_dgrad`]; the GPU does all of it in one dispatch at small
    /// batches (a workgroup owns a block of W's columns: it reads them for `dz_prev`, then
    /// updates them), with the same bits.
    #[allow(clippy::too_many_arguments)]
    fn dgrad_wgrad_update(
        &self,
        g: &Gemm,
        dz: &Self::Buf,
        x: &Self::Buf,
        dgrad: Dgrad<'_, Self::Buf>,
        gw: &mut Self::Buf,
        gb: &mut Self::Buf,
        step: LayerStep<'_, Self::Buf>,
    ) -> Result<()> {
        layer_step::unfused_with_dgrad(self, g, dz, x, dgrad, gw, gb, step)
    }

    // ---- clipping -----------------------------------------------------------------------
    /// Global-norm clipping without a host round trip: with `s = Σ_{i<count} stats[first + i]`
    /// (squared norms of all gradient tensors, see [`GlobalNorm`]), `x[..n] *= min(1,
    /// max_norm / √s)`. When `count_slot` is given and the step is clipped, it is counted in `stats[count_slot..count_slot + 2]` ([`GlobalNorm::count_events`]).
    fn clip_by_global_norm(
        &self,
        n: usize,
        norm: &GlobalNorm,
        stats: &mut Self::Buf,
        x: &mut Self::Buf,
    ) -> Result<()>;
    /// `x[i] = clamp(x[i], -limit, limit)` for `i < n` (clipping by value).
    fn clip_by_value(&self, n: usize, limit: f32, x: &mut Self::Buf) -> Result<()>;

    // ---- synthetic data -----------------------------------------------------------------
    /// Synthetic examples `first .. first + rows` of the counter-based stream `spec`:
    /// `x [rows, spec.dim]`; `labels [rows]` (gaussian_mixture) or `targets [rows, spec.outputs]`
    /// (linear_regression; `labels` untouched). `table` holds the stream's fixed tensors:
    /// class means `[classes, dim]` (gaussian_mixture) or `W* [outputs, dim]` followed by the
    /// per-dimension standard deviations `[dim]` (linear_regression).
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        spec: &GenSpec,
        first: u64,
        rows: usize,
        table: &Self::Buf,
        x: &mut Self::Buf,
        labels: &mut Self::IdxBuf,
        targets: &mut Self::Buf,
    ) -> Result<()>;

    // ---- data movement ------------------------------------------------------------------
    /// `dst[r, :] = src[idx[r], :]` for `src: [N, cols]`, `idx: [rows]`, `dst: [rows, cols]`.
    /// Every index must be `< N` (checked by the caller; the GPU clamps to stay in bounds).
    fn gather_rows(
        &self,
        rows: usize,
        cols: usize,
        src: &Self::Buf,
        idx: &Self::IdxBuf,
        dst: &mut Self::Buf,
    ) -> Result<()>;
    /// Windowed gather for datasets split into several buffers: `src: [src_rows, cols]` holds
    /// global rows `first .. first + src_rows`; `dst[r, :] = src[idx[r] - first, :]` for every
    /// `r < rows` whose index falls in the window, other rows of `dst` are left untouched.
    #[allow(clippy::too_many_arguments)]
    fn gather_rows_window(
        &self,
        rows: usize,
        cols: usize,
        src: &Self::Buf,
        first: usize,
        src_rows: usize,
        idx: &Self::IdxBuf,
        dst: &mut Self::Buf,
    ) -> Result<()>;
    /// `dst[r] = src[idx[r]]` for `idx, dst: [rows]` (labels of a minibatch).
    fn gather_idx(
        &self,
        rows: usize,
        src: &Self::IdxBuf,
        idx: &Self::IdxBuf,
        dst: &mut Self::IdxBuf,
    ) -> Result<()>;
}

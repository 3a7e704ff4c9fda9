//! The GPU backend: WGSL through wgpu. [`context`] opens an adapter, [`device`] owns buffers and
//! the recorder, [`pipelines`] the kernels, [`kernels`] every entry point and the prelude; a host
//! wrapper per kernel family records its dispatches (one name in shader, wrapper, twin, test).

pub mod act;
pub mod amp;
pub mod auto_rule;
pub mod autotune;
pub mod ceilings;
mod choices;
pub mod clip;
pub mod context;
pub mod coop_check;
pub mod coop_module;
pub mod coop_shape;
pub mod datagen;
pub mod device;
pub mod dgrad_wgrad_update;
pub mod dispatch_timing;
pub mod elementwise;
mod fused;
pub mod gather;
mod graveyard;
mod half;
pub mod kernels;
pub mod launch;
pub mod linear_xent;
pub mod matmul;
pub mod matmul_coop;
pub mod matmul_f16;
pub mod mse;
mod open;
pub mod pipelines;
pub mod reduce;
pub mod retype;
pub mod staged;
pub mod tile;
mod timed;
pub mod timestamps;
pub mod update;
pub mod wgrad_update;
pub mod xent;

use crate::backend::half::HalfBuf;
use crate::backend::{
    check_len, Activation, Backend, BackendError, BackendKind, Dgrad, Epilogue, Gemm, GenSpec,
    GlobalNorm, LayerStep, MomentumStep, ParamUpdate, Result, StepSums, UpdateRule, XentOutputs,
};
pub use autotune::AutotuneMode;
pub use context::{list_adapters, AdapterSummary, GpuContext};
pub use device::{GpuDevice, RawBuf};
pub use dispatch_timing::{DeviceCounters, DispatchTime};
pub use matmul::MatmulVariant;
use std::cell::{Cell, RefCell};

/// A GPU buffer of `f32`.
#[derive(Clone, Debug)]
pub struct GpuBuf(pub RawBuf);
/// A GPU buffer of `u32`.
#[derive(Clone, Debug)]
pub struct GpuIdxBuf(pub RawBuf);

pub struct GpuBackend {
    pub dev: GpuDevice,
    matmul_variant: Cell<MatmulVariant>,
    /// Matmul autotuning (off unless [`GpuBackend::set_autotune`]; see [`autotune`]).
    tuner: RefCell<autotune::Autotuner>,
    /// Fused or unfused kernels (see [`choices`]).
    choices: choices::KernelChoices,
}

impl Backend for GpuBackend {
    type Buf = GpuBuf;
    type IdxBuf = GpuIdxBuf;

    fn kind(&self) -> BackendKind {
        BackendKind::Gpu
    }

    fn half_ops(&self) -> Option<&dyn crate::backend::half::HalfOps<Buf = GpuBuf>> {
        Some(self)
    }

    fn buffers_in_host_memory(&self) -> bool {
        self.dev.ctx.summary.runs_on_cpu()
    }

    fn device_name(&self) -> String {
        let s = &self.dev.ctx.summary;
        format!("{} ({}, {})", s.name, s.device_type, s.backend)
    }

    fn zeros(&self, len: usize) -> Result<GpuBuf> {
        Ok(GpuBuf(self.dev.alloc("f32 buffer", len)?))
    }

    fn upload(&self, data: &[f32]) -> Result<GpuBuf> {
        launch::upload_pod(&self.dev, "f32 buffer", data).map(GpuBuf)
    }

    fn upload_idx(&self, data: &[u32]) -> Result<GpuIdxBuf> {
        launch::upload_pod(&self.dev, "u32 buffer", data).map(GpuIdxBuf)
    }

    fn write(&self, dst: &mut GpuBuf, data: &[f32]) -> Result<()> {
        check_len("write", "dst", dst.0.len, data.len())?;
        self.dev.write_bytes(&dst.0, bytemuck::cast_slice(data))
    }

    fn write_idx(&self, dst: &mut GpuIdxBuf, data: &[u32]) -> Result<()> {
        check_len("write_idx", "dst", dst.0.len, data.len())?;
        self.dev.write_bytes(&dst.0, bytemuck::cast_slice(data))
    }

    fn read(&self, src: &GpuBuf) -> Result<Vec<f32>> {
        launch::read_pod(&self.dev, &src.0)
    }

    fn read_idx(&self, src: &GpuIdxBuf) -> Result<Vec<u32>> {
        launch::read_pod(&self.dev, &src.0)
    }

    fn len(&self, buf: &GpuBuf) -> usize {
        buf.0.len
    }

    fn len_idx(&self, buf: &GpuIdxBuf) -> usize {
        buf.0.len
    }

    fn copy(&self, src: &GpuBuf, dst: &mut GpuBuf) -> Result<()> {
        check_len("copy", "dst", dst.0.len, src.0.len)?;
        elementwise::copy(&self.dev, src.0.len, &src.0, &dst.0)
    }

    fn fill(&self, dst: &mut GpuBuf, value: f32) -> Result<()> {
        elementwise::fill(&self.dev, dst.0.len, value, &dst.0)
    }

    fn max_binding_bytes(&self) -> u64 {
        self.dev.ctx.limits.max_storage_buffer_binding_size.min(self.dev.ctx.limits.max_buffer_size)
    }

    fn flush(&self) -> Result<()> {
        self.dev.flush()
    }

    fn sync(&self) -> Result<()> {
        self.dev.flush().and_then(|()| self.dev.wait())
    }

    fn matmul(&self, g: &Gemm, a: &GpuBuf, b: &GpuBuf, c: &mut GpuBuf) -> Result<()> {
        self.matmul_plain(g, a, b, c)
    }

    fn matmul_epilogue(
        &self,
        g: &Gemm,
        a: &GpuBuf,
        b: &GpuBuf,
        c: &mut GpuBuf,
        epi: Epilogue<'_, Self>,
    ) -> Result<()> {
        self.matmul_fused(g, a, b, c, epi)
    }

    fn matmul_half_epilogue(
        &self,
        g: &Gemm,
        ab: [&HalfBuf<GpuBuf>; 2],
        c: &mut GpuBuf,
        epi: Epilogue<'_, Self>,
        half: Option<&mut HalfBuf<GpuBuf>>,
    ) -> Result<()> {
        self.matmul_half_fused(g, ab, c, epi, half)
    }

    fn matmul_half_bias_grad_unscaled(
        &self,
        g: &Gemm,
        ab: [&HalfBuf<GpuBuf>; 2],
        c: &mut GpuBuf,
        s: &GpuBuf,
        bias_grad: &mut GpuBuf,
        state: &mut GpuBuf,
    ) -> Result<()> {
        self.matmul_half_bias_grad_unscaled_fused(g, ab, c, s, bias_grad, state)
    }

    fn add_bias(&self, rows: usize, cols: usize, x: &mut GpuBuf, bias: &GpuBuf) -> Result<()> {
        check_len("add_bias", "x", x.0.len, rows * cols)?;
        check_len("add_bias", "bias", bias.0.len, cols)?;
        elementwise::add_bias(&self.dev, rows, cols, &bias.0, &x.0)
    }

    fn col_sum(
        &self,
        rows: usize,
        cols: usize,
        alpha: f32,
        x: &GpuBuf,
        beta: f32,
        out: &mut GpuBuf,
    ) -> Result<()> {
        check_len("col_sum", "x", x.0.len, rows * cols)?;
        check_len("col_sum", "out", out.0.len, cols)?;
        reduce::col_sum(&self.dev, rows, cols, alpha, &x.0, beta, &out.0)
    }

    fn axpy(&self, n: usize, alpha: f32, x: &GpuBuf, y: &mut GpuBuf) -> Result<()> {
        check_len("axpy", "x", x.0.len, n)?;
        check_len("axpy", "y", y.0.len, n)?;
        elementwise::axpy(&self.dev, n, alpha, &x.0, &y.0)
    }

    fn scale(&self, n: usize, alpha: f32, x: &mut GpuBuf) -> Result<()> {
        check_len("scale", "x", x.0.len, n)?;
        elementwise::scale(&self.dev, n, alpha, &x.0)
    }

    fn add_bias_act(
        &self,
        act: Activation,
        rows: usize,
        cols: usize,
        x: &mut GpuBuf,
        bias: &GpuBuf,
        y: &mut GpuBuf,
    ) -> Result<()> {
        check_len("add_bias_act", "x", x.0.len, rows * cols)?;
        check_len("add_bias_act", "bias", bias.0.len, cols)?;
        check_len("add_bias_act", "y", y.0.len, rows * cols)?;
        act::bias_act(&self.dev, act, rows, cols, &bias.0, &x.0, &y.0)
    }

    fn act_forward(&self, act: Activation, n: usize, z: &GpuBuf, y: &mut GpuBuf) -> Result<()> {
        check_len("act_forward", "z", z.0.len, n)?;
        check_len("act_forward", "y", y.0.len, n)?;
        act::act_forward(&self.dev, act, n, &z.0, &y.0)
    }

    fn act_backward(
        &self,
        act: Activation,
        n: usize,
        z: &GpuBuf,
        dy: &GpuBuf,
        dz: &mut GpuBuf,
    ) -> Result<()> {
        act::act_backward(&self.dev, act, n, &z.0, &dy.0, &dz.0)
    }

    fn act_second(
        &self,
        act: Activation,
        n: usize,
        z: &GpuBuf,
        dy: &GpuBuf,
        rz: &GpuBuf,
        out: &mut GpuBuf,
    ) -> Result<()> {
        act::act_second(&self.dev, act, n, &z.0, &dy.0, &rz.0, &out.0)
    }

    fn softmax_xent(
        &self,
        rows: usize,
        classes: usize,
        logits: &GpuBuf,
        labels: &GpuIdxBuf,
        grad_scale: f32,
        loss: &mut GpuBuf,
        correct: &mut GpuBuf,
        dlogits: &mut GpuBuf,
    ) -> Result<()> {
        xent::softmax_xent(
            &self.dev, rows, classes, &logits.0, &labels.0, grad_scale, &loss.0, &correct.0, &dlogits.0,
        )
    }

    fn softmax_xent_sums(
        &self,
        rows: usize,
        classes: usize,
        logits: &GpuBuf,
        labels: &GpuIdxBuf,
        grad_scale: f32,
        loss: &mut GpuBuf,
        correct: &mut GpuBuf,
        dlogits: &mut GpuBuf,
        sums: &mut StepSums<'_, GpuBuf>,
    ) -> Result<()> {
        let (l, c, d) = (loss, correct, dlogits);
        self.softmax_xent_sums_fused(rows, classes, logits, labels, grad_scale, l, c, d, sums)
    }

    fn linear_xent_sums(
        &self,
        g: &Gemm,
        x_w_bias: [&GpuBuf; 3],
        logits: &mut GpuBuf,
        xent: XentOutputs<'_, GpuBuf, GpuIdxBuf>,
        sums: &mut StepSums<'_, GpuBuf>,
    ) -> Result<()> {
        self.linear_xent_step(g, x_w_bias, logits, xent, sums)
    }

    fn softmax_xent_rop(
        &self,
        rows: usize,
        classes: usize,
        logits: &GpuBuf,
        rlogits: &GpuBuf,
        grad_scale: f32,
        out: &mut GpuBuf,
    ) -> Result<()> {
        check_len("softmax_xent_rop", "logits", logits.0.len, rows * classes)?;
        check_len("softmax_xent_rop", "rlogits", rlogits.0.len, rows * classes)?;
        check_len("softmax_xent_rop", "out", out.0.len, rows * classes)?;
        xent::softmax_xent_rop(&self.dev, rows, classes, &logits.0, &rlogits.0, grad_scale, &out.0)
    }

    fn mse(
        &self,
        rows: usize,
        cols: usize,
        pred: &GpuBuf,
        target: &GpuBuf,
        grad_scale: f32,
        loss: &mut GpuBuf,
        dpred: &mut GpuBuf,
    ) -> Result<()> {
        check_len("mse", "pred", pred.0.len, rows * cols)?;
        check_len("mse", "target", target.0.len, rows * cols)?;
        check_len("mse", "loss", loss.0.len, rows)?;
        check_len("mse", "dpred", dpred.0.len, rows * cols)?;
        mse::mse(&self.dev, rows, cols, &pred.0, &target.0, grad_scale, &loss.0, &dpred.0)
    }

    fn sum(&self, n: usize, x: &GpuBuf, out: &mut GpuBuf, slot: usize) -> Result<()> {
        check_len("sum", "x", x.0.len, n)?;
        check_len("sum", "out", out.0.len, slot + 1)?;
        reduce::sum(&self.dev, n, &x.0, &out.0, slot)
    }

    fn sums(&self, n: usize, terms: &[(&GpuBuf, usize)], out: &mut GpuBuf) -> Result<()> {
        self.sums_fused(n, terms, out)
    }

    fn dot(&self, n: usize, x: &GpuBuf, y: &GpuBuf, out: &mut GpuBuf, slot: usize) -> Result<()> {
        check_len("dot", "x", x.0.len, n)?;
        check_len("dot", "y", y.0.len, n)?;
        check_len("dot", "out", out.0.len, slot + 1)?;
        reduce::dot(&self.dev, n, &x.0, &y.0, &out.0, slot)
    }

    fn sum_sq(&self, n: usize, x: &GpuBuf, out: &mut GpuBuf, slot: usize) -> Result<()> {
        check_len("sum_sq", "x", x.0.len, n)?;
        check_len("sum_sq", "out", out.0.len, slot + 1)?;
        reduce::sum_sq(&self.dev, n, &x.0, &out.0, slot)
    }

    fn sgd_update(
        &self,
        n: usize,
        lr: f32,
        weight_decay: f32,
        grad: &GpuBuf,
        param: &mut GpuBuf,
    ) -> Result<()> {
        check_len("sgd_update", "grad", grad.0.len, n)?;
        check_len("sgd_update", "param", param.0.len, n)?;
        update::sgd_update(&self.dev, n, lr, weight_decay, &grad.0, &param.0)
    }

    fn momentum_update(
        &self,
        n: usize,
        step: &MomentumStep,
        grad: &GpuBuf,
        velocity: &mut GpuBuf,
        param: &mut GpuBuf,
    ) -> Result<()> {
        check_len("momentum_update", "grad", grad.0.len, n)?;
        check_len("momentum_update", "velocity", velocity.0.len, n)?;
        check_len("momentum_update", "param", param.0.len, n)?;
        update::momentum_update(&self.dev, n, step, &grad.0, &velocity.0, &param.0)
    }

    fn update_params(&self, rule: &UpdateRule, tensors: &mut [ParamUpdate<'_, GpuBuf>]) -> Result<()> {
        let pairs = self.choices.update_pairs.get();
        update::update_params(&self.dev, rule, tensors, pairs, update::Guard::Always)
    }

    fn wgrad_update(
        &self,
        g: &Gemm,
        dz: &GpuBuf,
        x: &GpuBuf,
        gw: &mut GpuBuf,
        gb: &mut GpuBuf,
        step: LayerStep<'_, GpuBuf>,
    ) -> Result<()> {
        self.wgrad_step(g, dz, x, gw, gb, step)
    }

    fn dgrad_wgrad_update(
        &self,
        g: &Gemm,
        dz: &GpuBuf,
        x: &GpuBuf,
        dgrad: Dgrad<'_, GpuBuf>,
        gw: &mut GpuBuf,
        gb: &mut GpuBuf,
        step: LayerStep<'_, GpuBuf>,
    ) -> Result<()> {
        self.dgrad_wgrad_step(g, dz, x, dgrad, gw, gb, step)
    }

    fn gather_rows(
        &self,
        rows: usize,
        cols: usize,
        src: &GpuBuf,
        idx: &GpuIdxBuf,
        dst: &mut GpuBuf,
    ) -> Result<()> {
        check_len("gather_rows", "idx", idx.0.len, rows)?;
        check_len("gather_rows", "dst", dst.0.len, rows * cols)?;
        if cols == 0 || rows == 0 {
            return Ok(());
        }
        let src_rows = src.0.len / cols;
        if src_rows == 0 {
            return Err(BackendError::Invalid { op: "gather_rows", message: "empty source".into() });
        }
        gather::gather_rows(&self.dev, rows, cols, src_rows, &src.0, &idx.0, &dst.0)
    }

    fn gather_idx(
        &self,
        rows: usize,
        src: &GpuIdxBuf,
        idx: &GpuIdxBuf,
        dst: &mut GpuIdxBuf,
    ) -> Result<()> {
        check_len("gather_idx", "idx", idx.0.len, rows)?;
        check_len("gather_idx", "dst", dst.0.len, rows)?;
        gather::gather_idx(&self.dev, rows, src.0.len, &src.0, &idx.0, &dst.0)
    }

    fn gather_rows_window(
        &self,
        rows: usize,
        cols: usize,
        src: &GpuBuf,
        first: usize,
        src_rows: usize,
        idx: &GpuIdxBuf,
        dst: &mut GpuBuf,
    ) -> Result<()> {
        check_len("gather_rows_window", "src", src.0.len, src_rows * cols)?;
        check_len("gather_rows_window", "idx", idx.0.len, rows)?;
        check_len("gather_rows_window", "dst", dst.0.len, rows * cols)?;
        if rows == 0 || cols == 0 || src_rows == 0 {
            return Ok(());
        }
        gather::gather_rows_window(&self.dev, rows, cols, first, src_rows, &src.0, &idx.0, &dst.0)
    }

    fn clip_by_global_norm(
        &self,
        n: usize,
        norm: &GlobalNorm,
        stats: &mut GpuBuf,
        x: &mut GpuBuf,
    ) -> Result<()> {
        norm.check(x.0.len, n, stats.0.len)?;
        clip::clip_by_global_norm(&self.dev, n, norm, &stats.0, &x.0)
    }

    fn clip_by_value(&self, n: usize, limit: f32, x: &mut GpuBuf) -> Result<()> {
        check_len("clip_by_value", "x", x.0.len, n)?;
        clip::clip_by_value(&self.dev, n, limit, &x.0)
    }

    fn generate(
        &self,
        spec: &GenSpec,
        first: u64,
        rows: usize,
        table: &GpuBuf,
        x: &mut GpuBuf,
        labels: &mut GpuIdxBuf,
        targets: &mut GpuBuf,
    ) -> Result<()> {
        datagen::generate(&self.dev, spec, first, rows, &table.0, &x.0, &labels.0, &targets.0)
    }
}

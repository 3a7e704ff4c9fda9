//! `v ↦ H v` of the mean loss over a set of examples, on the backend.
//!
//! The examples live on the device in chunks of at most `chunk_rows`; with `N` examples in all
//! the mean loss is `L = Σ_c (rows_c / N) L_c`, so `H v = Σ_c (rows_c / N) H_c v` with each
//! `H_c v` from the R-operator ([`crate::model::hvp`]). The parameters are fixed for the
//! operator's lifetime, so when the activations of every chunk fit in `cache_bytes` the primal
//! pass runs once and every product after that is the R-passes alone.

use std::time::Instant;

use super::{check_dim, CurvatureError, Result, SymOp};
use crate::backend::Backend;
use crate::data::{Dataset, Labels};
use crate::model::{LossKind, Mlp, ParamSet, RopWorkspace, Targets, Workspace};
use crate::stats::median;

/// How the examples are split and whether activations are kept between products.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HvpOptions {
    /// Examples per chunk (one forward / R pass each).
    pub chunk_rows: usize,
    /// Keep every chunk's primal activations when they take at most this many bytes.
    pub cache_bytes: u64,
}

impl HvpOptions {
    /// Chunks whose inputs, targets, forward and R workspaces take about `budget_bytes`
    /// together (so no single buffer comes near a binding limit).
    pub fn for_budget(mlp: &Mlp, budget_bytes: u64) -> Self {
        let data_row = 4 * (mlp.inputs() + mlp.outputs()) as u64;
        let per_row = (mlp.workspace_bytes(1) + mlp.rop_workspace_bytes(1) + data_row).max(1);
        let chunk_rows = (budget_bytes / per_row).clamp(1, 8192) as usize;
        HvpOptions { chunk_rows, cache_bytes: 4 * budget_bytes }
    }
}

/// A chunk of examples on the device.
struct Chunk<B: Backend> {
    rows: usize,
    /// `x [rows, inputs]`.
    x: B::Buf,
    /// Labels `[rows]` (classification; a 1-element placeholder otherwise).
    labels: B::IdxBuf,
    /// Targets `[rows, outputs]` (regression; a 1-element placeholder otherwise).
    targets: B::Buf,
    /// Index of its forward workspace and of its R workspace.
    ws: usize,
    rws: usize,
}

/// The Hessian of the mean loss over a dataset, at fixed parameters, as an operator.
pub struct HvpOperator<'b, B: Backend> {
    b: &'b B,
    mlp: Mlp,
    params: ParamSet<B>,
    chunks: Vec<Chunk<B>>,
    wss: Vec<Workspace<B>>,
    rwss: Vec<RopWorkspace<B>>,
    n: usize,
    /// One workspace per chunk: the primal pass is done once.
    cached: bool,
    prepared: bool,
    /// The direction `v` (device).
    v: ParamSet<B>,
    /// One chunk's `H_c v`.
    out: ParamSet<B>,
    /// `H v` (the sum over chunks).
    acc: ParamSet<B>,
    /// `[chunks]` per-chunk loss sums.
    stats: B::Buf,
    /// Hessian-vector products computed so far.
    pub products: u64,
}

impl<'b, B: Backend> HvpOperator<'b, B> {
    /// The operator of `mlp` at `params` over all examples of `data`.
    pub fn new(
        b: &'b B,
        mlp: Mlp,
        params: ParamSet<B>,
        data: &Dataset,
        opts: HvpOptions,
    ) -> Result<Self> {
        if data.n == 0 {
            return Err(CurvatureError::Setup("the Hessian needs at least one example".into()));
        }
        if data.dim != mlp.inputs() {
            return Err(CurvatureError::Setup(format!(
                "data has {} features, the model {} inputs",
                data.dim,
                mlp.inputs()
            )));
        }
        if data.outputs() != mlp.outputs() {
            return Err(CurvatureError::Setup(format!(
                "data has {} outputs, the model {}",
                data.outputs(),
                mlp.outputs()
            )));
        }
        match (&data.targets, mlp.spec.loss) {
            (Labels::Classes { .. }, LossKind::SoftmaxXent) | (Labels::Values { .. }, LossKind::Mse) => {
            }
            _ => {
                return Err(CurvatureError::Setup(
                    "the loss does not match the data's targets (classes need softmax_xent, values mse)"
                        .into(),
                ))
            }
        }
        let mut total_ws = 0u64;
        let chunk_rows = opts.chunk_rows.max(1);
        let starts: Vec<usize> = (0..data.n).step_by(chunk_rows).collect();
        for &s in &starts {
            total_ws += mlp.workspace_bytes(chunk_rows.min(data.n - s));
        }
        let cached = total_ws <= opts.cache_bytes;
        let (mut wss, mut rwss) = (Vec::new(), Vec::new());
        let mut sizes: Vec<usize> = Vec::new();
        let mut chunks = Vec::with_capacity(starts.len());
        for &start in &starts {
            let rows = chunk_rows.min(data.n - start);
            let x = b.upload(&data.x[start * data.dim..(start + rows) * data.dim])?;
            let (labels, targets) = match &data.targets {
                Labels::Classes { labels, .. } => {
                    (b.upload_idx(&labels[start..start + rows])?, b.zeros(1)?)
                }
                Labels::Values { targets, outputs } => {
                    (b.upload_idx(&[0])?, b.upload(&targets[start * outputs..(start + rows) * outputs])?)
                }
            };
            let size_idx = match sizes.iter().position(|&r| r == rows) {
                Some(i) => i,
                None => {
                    sizes.push(rows);
                    rwss.push(mlp.rop_workspace(b, rows)?);
                    if !cached {
                        wss.push(mlp.workspace(b, rows)?);
                    }
                    sizes.len() - 1
                }
            };
            let ws = if cached {
                wss.push(mlp.workspace(b, rows)?);
                wss.len() - 1
            } else {
                size_idx
            };
            chunks.push(Chunk { rows, x, labels, targets, ws, rws: size_idx });
        }
        let v = params.zeros_like(b)?;
        let out = params.zeros_like(b)?;
        let acc = params.zeros_like(b)?;
        let stats = b.zeros(chunks.len())?;
        Ok(HvpOperator {
            b,
            mlp,
            params,
            chunks,
            wss,
            rwss,
            n: data.n,
            cached,
            prepared: false,
            v,
            out,
            acc,
            stats,
            products: 0,
        })
    }

    /// Examples the loss averages over.
    pub fn examples(&self) -> usize {
        self.n
    }

    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Whether the primal activations are kept between products.
    pub fn cached(&self) -> bool {
        self.cached
    }

    pub fn params(&self) -> &ParamSet<B> {
        &self.params
    }

    pub fn model(&self) -> &Mlp {
        &self.mlp
    }

    /// The device direction `v` read by [`HvpOperator::apply_device`].
    pub fn direction_mut(&mut self) -> &mut ParamSet<B> {
        &mut self.v
    }

    /// `H v` on the device for the direction in [`HvpOperator::direction_mut`] (recorded; the
    /// GPU submits once per chunk and does not wait).
    pub fn apply_device(&mut self) -> Result<&ParamSet<B>> {
        let b = self.b;
        let single = self.chunks.len() == 1;
        if !single {
            for t in &mut self.acc.tensors {
                b.fill(t, 0.0)?;
            }
        }
        let fresh = !(self.cached && self.prepared);
        for c in &self.chunks {
            let targets = targets_of(&self.mlp, c);
            let (ws, rws) = (&mut self.wss[c.ws], &mut self.rwss[c.rws]);
            if fresh {
                self.mlp.prepare_rop(b, &self.params, &c.x, &targets, ws)?;
            }
            let dst = if single { &mut self.acc } else { &mut self.out };
            self.mlp.hvp_prepared(b, &self.params, &self.v, &c.x, ws, rws, dst)?;
            if !single {
                self.acc.axpy(b, c.rows as f32 / self.n as f32, &self.out)?;
            }
            b.flush()?;
        }
        self.prepared = self.cached;
        self.products += 1;
        Ok(&self.acc)
    }

    /// The mean loss and its gradient (flat, in [`ParamSet::to_flat`] order) over every example.
    pub fn gradient(&mut self) -> Result<(f64, Vec<f32>)> {
        let b = self.b;
        let single = self.chunks.len() == 1;
        if !single {
            for t in &mut self.acc.tensors {
                b.fill(t, 0.0)?;
            }
        }
        for (i, c) in self.chunks.iter().enumerate() {
            let targets = targets_of(&self.mlp, c);
            let ws = &mut self.wss[c.ws];
            let dst = if single { &mut self.acc } else { &mut self.out };
            self.mlp.loss_and_grad(b, &self.params, &c.x, &targets, ws, dst)?;
            b.sum(c.rows, &ws.loss, &mut self.stats, i)?;
            if !single {
                self.acc.axpy(b, c.rows as f32 / self.n as f32, &self.out)?;
            }
            b.flush()?;
        }
        // loss_and_grad leaves exactly the primal pass the R-passes need.
        self.prepared = self.cached;
        let loss: f64 = self.b.read(&self.stats)?.iter().map(|&v| v as f64).sum::<f64>() / self.n as f64;
        Ok((loss, self.acc.to_flat(b)?))
    }
}

fn targets_of<'a, B: Backend>(mlp: &Mlp, c: &'a Chunk<B>) -> Targets<'a, B> {
    match mlp.spec.loss {
        LossKind::SoftmaxXent => Targets::Classes(&c.labels),
        LossKind::Mse => Targets::Values(&c.targets),
    }
}

impl<B: Backend> SymOp for HvpOperator<'_, B> {
    fn dim(&self) -> usize {
        self.params.numel()
    }

    /// `out = H v` on flat host vectors (one upload and one readback).
    fn apply(&mut self, v: &[f32], out: &mut [f32]) -> Result<()> {
        let n = self.dim();
        check_dim("HvpOperator::apply v", v.len(), n)?;
        check_dim("HvpOperator::apply out", out.len(), n)?;
        let b = self.b;
        self.v.write_flat(b, v)?;
        let hv = self.apply_device()?.to_flat(b)?;
        out.copy_from_slice(&hv[..n]);
        Ok(())
    }
}

/// Wall-clock cost of one Hessian-vector product against one gradient on the same minibatch,
/// each followed by a device sync (medians over `reps` interleaved repetitions).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HvpTiming {
    pub rows: usize,
    pub reps: usize,
    /// Forward, loss and backward (`loss_and_grad`).
    pub grad_ms: f64,
    /// The primal pass and both R-passes (`hvp`).
    pub hvp_ms: f64,
    /// The R-passes alone, after a gradient of the same batch (`hvp_prepared`: the training
    /// monitor's marginal cost).
    pub hvp_prepared_ms: f64,
    pub hvp_over_grad: f64,
    pub prepared_over_grad: f64,
}

/// Time one gradient and one HVP of `mlp` at `params` on the first `rows` examples of `data`.
pub fn time_hvp_vs_grad<B: Backend>(
    b: &B,
    mlp: &Mlp,
    params: &ParamSet<B>,
    data: &Dataset,
    rows: usize,
    reps: usize,
) -> Result<HvpTiming> {
    let rows = rows.clamp(1, data.n.max(1));
    if data.n == 0 {
        return Err(CurvatureError::Setup("timing needs at least one example".into()));
    }
    let x = b.upload(&data.x[..rows * data.dim])?;
    let (labels, values) = match &data.targets {
        Labels::Classes { labels, .. } => (b.upload_idx(&labels[..rows])?, b.zeros(1)?),
        Labels::Values { targets, outputs } => {
            (b.upload_idx(&[0])?, b.upload(&targets[..rows * outputs])?)
        }
    };
    let targets = match mlp.spec.loss {
        LossKind::SoftmaxXent => Targets::Classes(&labels),
        LossKind::Mse => Targets::Values(&values),
    };
    let mut ws = mlp.workspace(b, rows)?;
    let mut rws = mlp.rop_workspace(b, rows)?;
    let mut grads = params.zeros_like(b)?;
    let mut out = params.zeros_like(b)?;
    let mut v = params.zeros_like(b)?;
    v.write_flat(b, &super::random_unit(11, params.numel()))?;
    // Warm-up: pipelines, allocations, caches.
    mlp.loss_and_grad(b, params, &x, &targets, &mut ws, &mut grads)?;
    crate::model::hvp(b, mlp, params, &v, &x, &targets, &mut ws, &mut rws, &mut out)?;
    b.sync()?;
    let reps = reps.max(1);
    let (mut tg, mut th, mut tp) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        mlp.loss_and_grad(b, params, &x, &targets, &mut ws, &mut grads)?;
        b.sync()?;
        tg.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        mlp.hvp_prepared(b, params, &v, &x, &ws, &mut rws, &mut out)?;
        b.sync()?;
        tp.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        crate::model::hvp(b, mlp, params, &v, &x, &targets, &mut ws, &mut rws, &mut out)?;
        b.sync()?;
        th.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (g, h, p) = (median(&mut tg), median(&mut th), median(&mut tp));
    Ok(HvpTiming {
        rows,
        reps,
        grad_ms: g,
        hvp_ms: h,
        hvp_prepared_ms: p,
        hvp_over_grad: h / g,
        prepared_over_grad: p / g,
    })
}

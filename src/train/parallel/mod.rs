//! Data parallelism in one host, and gradient accumulation.
//!
//! A step at global batch B with N replicas (`train.workers`) and k micro-batches
//! (`train.accumulate`): replica r takes the contiguous rows `r·B/N .. (r+1)·B/N` of the global
//! batch — the single-worker data order and RNG stream, partitioned — and runs k micro-batches
//! of B/(N·k) rows, each scaled by 1/(N·k) and accumulated into its gradient buffers, so the sum
//! over replicas is the global-batch mean gradient ([`replica`]). With N > 1 the gradients (and
//! the loss and correctness sums) are staged to host memory — wgpu devices cannot share
//! buffers — and summed in fixed replica order by a [`GradientReducer`] ([`reducer`]; an MPI
//! reducer can plug in there), then written back, and every replica applies the same update,
//! so the replicas' parameters stay bitwise identical (checked at the end of a run). The
//! reduction's cost (bytes and wall time per step) is measured apart from compute
//! ([`ReduceCost`]).
//!
//! Across processes (MPI ranks, [`ranks`]) the replicas are numbered globally: rank r holds
//! replicas `r·n .. (r+1)·n` of `ranks·n` and a [`Ranks`] reducer sums all of them in that order.
//!
//! Replica 0's state is the training loop's own (`runner.rs`): its metrics, checkpoints and
//! monitors are the run's. Replicas run one after another ([`Sequential`], GPU: the work is
//! recorded, then runs on all devices at once) or on threads ([`Threads`], CPU).

mod exec;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod ranks;
mod reducer;
mod replica;
pub mod scaling;

use std::time::Instant;

use serde::Serialize;

pub use exec::{ReplicaExec, Sequential, Threads};
pub use ranks::{RankError, Ranks};
pub use reducer::{GradientReducer, HostReducer, ReduceError};
pub use replica::{Accum, Replica, ReplicaMut, StepCtx};

use super::batches::{BatchSource, TrainData};
use super::optimizer::Optimizer;
use super::step::TrainState;
use super::{MetricsLine, TrainError};
use crate::backend::Backend;
use crate::config::Config;
use crate::data::device::BatchBuffers;
use crate::model::Mlp;

/// How a run splits its global batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Global batch B.
    pub batch: usize,
    /// Replicas N, over all processes.
    pub workers: usize,
    /// Micro-batches k per replica.
    pub micro: usize,
    /// Replicas in this process (N in one process; N / ranks per MPI rank).
    pub local: usize,
    /// Global index of this process's first replica.
    pub first: usize,
}

impl Split {
    /// N replicas, all in this process, k micro-batches each, at global batch `batch`.
    pub fn new(batch: usize, workers: usize, micro: usize) -> Self {
        Split { batch, workers, micro, local: workers, first: 0 }
    }

    /// `train.workers` and `train.accumulate` of `cfg` at global batch `batch`.
    pub fn of(cfg: &Config, batch: usize) -> Result<Self, TrainError> {
        Self::across(cfg, batch, 1, 0)
    }

    /// `train.workers` replicas on each of `ranks` processes, this one rank `rank`: replicas
    /// `rank·n .. (rank+1)·n` of `ranks·n`.
    pub fn across(cfg: &Config, batch: usize, ranks: usize, rank: usize) -> Result<Self, TrainError> {
        let (local, micro) = (cfg.train.workers.max(1), cfg.train.accumulate.max(1));
        let workers = local * ranks.max(1);
        if !batch.is_multiple_of(workers * micro) {
            let by = if ranks > 1 { format!(" × ranks ({ranks})") } else { String::new() };
            return Err(TrainError::Setup(format!(
                "train.batch_size ({batch}) must be a multiple of train.workers ({local}){by} × train.accumulate ({micro})"
            )));
        }
        Ok(Split { batch, workers, micro, local, first: rank * local })
    }

    /// Rows of one micro-batch, B/(N·k).
    pub fn rows(&self) -> usize {
        self.batch / (self.workers * self.micro)
    }

    /// Neither replicas nor accumulation: the plain one-state step.
    pub fn is_plain(&self) -> bool {
        self.workers == 1 && self.micro == 1
    }
}

/// The measured cost of the cross-replica reduction, apart from compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ReduceCost {
    /// Steps reduced.
    pub steps: u64,
    /// Bytes staged device → host and host → device over all replicas.
    pub bytes: u64,
    /// Wall seconds of staging and summing.
    pub reduce_s: f64,
    /// Wall seconds of the rest of the step (gradients, waits for the devices, updates).
    pub compute_s: f64,
}

impl ReduceCost {
    pub fn bytes_per_step(&self) -> f64 {
        self.bytes as f64 / self.steps.max(1) as f64
    }
    pub fn reduce_us_per_step(&self) -> f64 {
        1e6 * self.reduce_s / self.steps.max(1) as f64
    }
    pub fn compute_us_per_step(&self) -> f64 {
        1e6 * self.compute_s / self.steps.max(1) as f64
    }
    /// Share of the step's two timed phases, the replicas' compute and the reduction, spent in
    /// the reduction: `reduce / (reduce + compute)`, not of `ms_per_step`, which also holds
    /// the host's other work (batches, the update).
    pub fn share(&self) -> f64 {
        self.reduce_s / (self.reduce_s + self.compute_s).max(1e-12)
    }
}

/// summary.json's `data_parallel` object (runs with workers or accumulation only).
#[derive(Clone, Debug, Serialize)]
pub struct DataParallelSummary {
    pub workers: usize,
    pub accumulate: usize,
    /// Rows of one micro-batch on one replica.
    pub micro_batch: usize,
    pub devices: Vec<String>,
    pub reducer: &'static str,
    pub executor: &'static str,
    pub reduce_bytes_per_step: f64,
    pub reduce_us_per_step: f64,
    pub compute_us_per_step: f64,
    /// Share of the step's wall time spent in the reduction.
    pub reduce_share: f64,
    /// Every replica's parameters equal replica 0's bitwise at the end of the run.
    pub replicas_identical: bool,
    /// MPI ranks (absent in one process); `workers` counts the replicas of all ranks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranks: Option<usize>,
}

/// The replicas beyond replica 0 and what the step needs to split, reduce and measure.
pub struct Parallel<'a, B: Backend> {
    pub split: Split,
    others: Vec<Replica<'a, B>>,
    /// Replica 0's accumulator (its other parts are the training loop's).
    acc0: Accum<B>,
    exec: Box<dyn ReplicaExec<B> + 'a>,
    reducer: Box<dyn GradientReducer + 'a>,
    sum: Vec<f32>,
    pub cost: ReduceCost,
    /// `cost` at the last logged line.
    logged: ReduceCost,
}

impl<'a, B: Backend> Parallel<'a, B> {
    /// Replicas 1.. on `backends[1..]` (replica 0 is `st0` on `backends[0]`), each with its own
    /// copy of the data and a state at `split.rows()` rows, plus the guard ring of `ring` slots.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backends: &[&'a B],
        cfg: &Config,
        model: &Mlp,
        opt: &Optimizer,
        split: Split,
        ring: usize,
        st0: &TrainState<B>,
        exec: Box<dyn ReplicaExec<B> + 'a>,
        reducer: Box<dyn GradientReducer + 'a>,
    ) -> Result<Self, TrainError> {
        if backends.len() != split.local {
            return Err(TrainError::Setup(format!(
                "train.workers = {} but {} backends were opened",
                split.local,
                backends.len()
            )));
        }
        let b0 = backends[0];
        let acc0 = Accum::new(b0, st0, split.micro)?;
        let mut others = Vec::with_capacity(split.local.saturating_sub(1));
        for &b in &backends[1..] {
            let source = TrainData::load(b, cfg, model, split.batch)?.source;
            let params = model.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale)?;
            let mut st = TrainState::new(b, model.clone(), params, split.rows(), opt)?;
            crate::train::amp::for_config(b, cfg, &mut st)?;
            st.batch = split.batch;
            st.guard_ring(b, ring)?;
            let bt = BatchBuffers::new(b, split.rows(), model.inputs(), cfg.data_outputs())?;
            let acc = Accum::new(b, &st, split.micro)?;
            others.push(Replica { b, st, bt, source, acc });
        }
        let cost = ReduceCost::default();
        Ok(Parallel { split, others, acc0, exec, reducer, sum: Vec::new(), cost, logged: cost })
    }

    /// Copy replica 0's parameters and optimizer state to every other replica (after an
    /// `--init` or `--resume` loaded them into replica 0).
    pub fn broadcast(&mut self, b0: &B, st0: &TrainState<B>) -> Result<(), TrainError> {
        if self.others.is_empty() {
            return Ok(());
        }
        let params = st0.params.to_flat(b0)?;
        let velocity = st0.velocity.as_ref().map(|v| v.to_flat(b0)).transpose()?;
        // f16: the loss-scaler state (a resumed scale) too.
        let scaler = st0.mixed.as_ref().map(|m| b0.read(&m.scaler)).transpose()?;
        for r in &mut self.others {
            if let (Some(m), Some(host)) = (r.st.mixed.as_mut(), scaler.as_ref()) {
                r.b.write(&mut m.scaler, host)?;
            }
            r.st.params.write_flat(r.b, &params)?;
            if let (Some(v), Some(host)) = (r.st.velocity.as_mut(), velocity.as_ref()) {
                v.write_flat(r.b, host)?;
            }
            r.b.flush()?;
        }
        Ok(())
    }

    /// Wait until every replica's device is idle.
    pub fn sync_all(&self, b0: &B) -> Result<(), TrainError> {
        b0.sync()?;
        for r in &self.others {
            r.b.sync()?;
        }
        Ok(())
    }

    /// Whether every replica's parameters equal replica 0's bitwise (a read of each).
    pub fn replicas_identical(&self, b0: &B, st0: &TrainState<B>) -> Result<bool, TrainError> {
        let p0 = st0.params.to_flat(b0)?;
        for r in &self.others {
            let p = r.st.params.to_flat(r.b)?;
            if p.iter().zip(&p0).any(|(a, b)| a.to_bits() != b.to_bits()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One step on every replica: replica 0 is `(b0, st0, bt0, source0)`.
    pub fn step(
        &mut self,
        b0: &'a B,
        st0: &mut TrainState<B>,
        bt0: &mut BatchBuffers<B>,
        source0: &mut BatchSource<B>,
        ctx: &StepCtx<'_>,
    ) -> Result<(), TrainError> {
        let first = self.split.first;
        let mut reps = Vec::with_capacity(self.split.local);
        reps.push(ReplicaMut {
            rank: first,
            b: b0,
            st: st0,
            bt: bt0,
            source: source0,
            acc: &mut self.acc0,
        });
        for (i, r) in self.others.iter_mut().enumerate() {
            reps.push(r.as_mut(first + i + 1));
        }
        if self.split.workers == 1 {
            let r = &mut reps[0];
            r.gradient(ctx)?;
            return r.finish_local(ctx);
        }
        let t0 = Instant::now();
        // Compute: every replica's gradient, submitted.
        self.exec.each(&mut reps, &|r| {
            r.gradient(ctx)?;
            Ok(r.b.flush()?)
        })?;
        // Stage to host: wait for the device (compute), then read (reduction).
        let t1 = Instant::now();
        let waits = std::sync::Mutex::new(0.0f64);
        self.exec.each(&mut reps, &|r| {
            let t = Instant::now();
            r.b.sync()?;
            if let Ok(mut w) = waits.lock() {
                *w += t.elapsed().as_secs_f64();
            }
            r.to_host()
        })?;
        let parts: Vec<&[f32]> = reps.iter().map(|r| r.acc.host.as_slice()).collect();
        self.reducer.all_reduce(&parts, &mut self.sum).map_err(|e| TrainError::Setup(e.to_string()))?;
        let down: usize = parts.iter().map(|p| p.len()).sum();
        let t2 = Instant::now();
        // Write back (reduction) and update (compute), one phase.
        let sum = &self.sum;
        let writes = std::sync::Mutex::new(0.0f64);
        self.exec.each(&mut reps, &|r| {
            let t = Instant::now();
            r.write_reduced(sum, ctx)?;
            if let Ok(mut w) = writes.lock() {
                *w += t.elapsed().as_secs_f64();
            }
            r.update(ctx)
        })?;
        let t3 = Instant::now();
        let wait = waits.into_inner().unwrap_or(0.0);
        let write = writes.into_inner().unwrap_or(0.0);
        let c = &mut self.cost;
        c.steps += 1;
        let up = self.split.local * (sum.len() + usize::from(ctx.guard_slot.is_some()));
        c.bytes += 4 * (down + up) as u64;
        c.reduce_s += (t2 - t1).as_secs_f64() - wait + write;
        c.compute_s += (t1 - t0).as_secs_f64() + wait + (t3 - t2).as_secs_f64() - write;
        Ok(())
    }

    /// A logged line's all-reduce figures (N > 1): bytes per step, and the mean µs per step
    /// since the previous logged line.
    pub fn annotate(&mut self, line: &mut MetricsLine) {
        if self.split.workers < 2 {
            return;
        }
        let (c, last) = (&self.cost, &self.logged);
        let steps = c.steps.saturating_sub(last.steps).max(1);
        line.allreduce_bytes = Some((c.bytes - last.bytes) / steps);
        line.allreduce_us = Some(1e6 * (c.reduce_s - last.reduce_s) / steps as f64);
        self.logged = *c;
    }

    /// summary.json's `data_parallel` object.
    pub fn summary(&self, b0: &B, st0: &TrainState<B>) -> Result<DataParallelSummary, TrainError> {
        let mut devices = vec![b0.device_name()];
        devices.extend(self.others.iter().map(|r| r.b.device_name()));
        let c = &self.cost;
        Ok(DataParallelSummary {
            workers: self.split.workers,
            accumulate: self.split.micro,
            micro_batch: self.split.rows(),
            devices,
            reducer: self.reducer.name(),
            executor: self.exec.name(),
            reduce_bytes_per_step: c.bytes_per_step(),
            reduce_us_per_step: c.reduce_us_per_step(),
            compute_us_per_step: c.compute_us_per_step(),
            reduce_share: c.share(),
            replicas_identical: self.replicas_identical(b0, st0)?,
            ranks: None,
        })
    }
}

//! How many workers pay: the data-parallel step timed at (workers N, per-worker batch b), and
//! the time-to-target model over worker counts. With B_noise known, the steps to a target at
//! global batch B = N·b are S(B) = S_min(1 + B_noise/B) (McCandlish et al.), so the wall time
//! to target is T(N, b) ∝ (1 + B_noise/(N·b)) · t_step(N, b); S_min cancels in every ratio.

use std::time::Instant;

use serde::Serialize;

use super::{HostReducer, Parallel, ReduceCost, ReplicaExec, Split, StepCtx};
use crate::backend::Backend;
use crate::config::{BatchSize, Config};
use crate::data::device::BatchBuffers;
use crate::model::{Mlp, Targets};
use crate::train::batches::TrainData;
use crate::train::optimizer::{Clip, Optimizer};
use crate::train::step::TrainState;
use crate::train::TrainError;

/// One timed (workers, per-worker batch).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScalingPoint {
    pub workers: usize,
    pub per_worker_batch: usize,
    pub global_batch: usize,
    /// Wall time of the timed window over its steps (all replicas, reduction and update
    /// included; the device idle at both ends), ms.
    pub ms_per_step: f64,
    /// Global examples per second over the window.
    pub examples_per_s: f64,
    /// Share of the step spent staging and summing gradients (0 with one worker).
    pub reduce_share: f64,
    pub reduce_us_per_step: f64,
    pub reduce_bytes_per_step: f64,
}

/// Time `warmup + timed` steps of `backends.len()` replicas at `per_worker` rows each on the
/// data and model of `cfg` (monitors, evaluations and outputs off), as `train` runs them: the
/// wall time of the `timed` steps after the warm-up, each the minibatch and the step, over their
/// count. With several workers every step ends in its all-reduce (a sync); one worker runs
/// `train`'s one-worker step, submitted without a wait, so the host records a step while the
/// device runs the one before.
pub fn time_point<'a, B: Backend>(
    backends: &[&'a B],
    exec: Box<dyn ReplicaExec<B> + 'a>,
    cfg: &Config,
    per_worker: usize,
    warmup: usize,
    timed: usize,
) -> Result<ScalingPoint, TrainError> {
    let n = backends.len().max(1);
    let b0 = *backends.first().ok_or_else(|| TrainError::Setup("no backend to time".into()))?;
    let batch = n.checked_mul(per_worker).ok_or_else(|| {
        TrainError::Setup(format!("{n} workers × {per_worker} rows overflows the batch size"))
    })?;
    let mut c = cfg.clone();
    c.train.batch_size = BatchSize::Fixed(batch);
    (c.train.workers, c.train.accumulate) = (n, 1);
    let split = Split::new(batch, n, 1);
    let model = Mlp::new(c.mlp_spec())?;
    let opt = Optimizer::of(&c.train);
    let data = TrainData::load(b0, &c, &model, batch)?;
    let (mut source, is_class) = (data.source, data.eval.is_class);
    let steps_per_epoch = (data.n_train / batch as u64).max(1);
    let params = model.init_scaled(b0, c.model.init_seed, c.model.init_scale)?;
    let mut st = TrainState::new(b0, model.clone(), params, split.rows(), &opt)?;
    st.batch = batch;
    // As `train` runs a step that logs nothing (and as the replicas' steps below): no norm.
    st.measure_grad_norm = false;
    let mut bt = BatchBuffers::new(b0, split.rows(), model.inputs(), c.data_outputs())?;
    let reducer = Box::new(HostReducer);
    let mut dp = Parallel::new(backends, &c, &model, &opt, split, 0, &st, exec, reducer)?;
    let clip = Clip { norm: c.train.clip_norm, value: c.train.clip_value };
    let timed = timed.max(1);
    let mut window = Instant::now();
    for s in 0..(warmup + timed) as u64 {
        if s == warmup as u64 {
            // The window starts on an idle device: no warm-up work runs into it.
            b0.sync()?;
            dp.cost = ReduceCost::default();
            window = Instant::now();
        }
        let ctx = StepCtx {
            epoch: s / steps_per_epoch,
            step_in_epoch: s % steps_per_epoch,
            batch,
            workers: n,
            micro: 1,
            is_class,
            measure_norm: false,
            guard_slot: None,
            opt: &opt,
            lr: c.train.lr,
            clip: &clip,
        };
        if n == 1 {
            // The baseline is the step `train` runs with one worker (the fused step, which
            // keeps no gradient), not the data-parallel path at N = 1; and, as `train` does,
            // each step is submitted without waiting for it: the host records step s + 1 while
            // the device runs step s.
            source.fill(b0, &mut bt, ctx.epoch, ctx.step_in_epoch)?;
            let targets =
                if is_class { Targets::Classes(&bt.labels) } else { Targets::Values(&bt.targets) };
            st.record_step(b0, &bt.x, &targets, &opt, c.train.lr, &clip)?;
            b0.flush()?;
        } else {
            // Each step ends in the host all-reduce, which waits for every replica.
            dp.step(b0, &mut st, &mut bt, &mut source, &ctx)?;
            dp.sync_all(b0)?;
        }
    }
    b0.sync()?;
    let per_step = window.elapsed().as_secs_f64() / timed as f64;
    let cost = dp.cost;
    Ok(ScalingPoint {
        workers: n,
        per_worker_batch: per_worker,
        global_batch: batch,
        ms_per_step: 1e3 * per_step,
        examples_per_s: batch as f64 / per_step.max(1e-12),
        reduce_share: if n > 1 { cost.share() } else { 0.0 },
        reduce_us_per_step: cost.reduce_us_per_step(),
        reduce_bytes_per_step: cost.bytes_per_step(),
    })
}

/// A point with its scaling figures.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingRow {
    #[serde(flatten)]
    pub point: ScalingPoint,
    /// Throughput over one worker's at the same per-worker batch.
    pub speedup: Option<f64>,
    /// `speedup / workers`.
    pub efficiency: Option<f64>,
    /// S(B)/S_min = 1 + B_noise/B at the global batch.
    pub predicted_steps_rel: Option<f64>,
    /// T = S(B)·t_step relative to the smallest over all rows (min = 1).
    pub time_to_target_rel: Option<f64>,
}

/// The scaling table and its answer.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingReport {
    pub b_noise: Option<f64>,
    pub rows: Vec<ScalingRow>,
    /// Per worker count: the per-worker batch with the smallest time to target, and that time.
    pub best: Vec<BestAt>,
    /// The worker count past which more workers stop paying: the next count measured cuts the
    /// best time to target by less than `min_gain` (None: they still pay at the largest count).
    pub stop_paying_after: Option<usize>,
    pub min_gain: f64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct BestAt {
    pub workers: usize,
    pub per_worker_batch: usize,
    pub time_to_target_rel: f64,
}

/// Speedup and efficiency against one worker at the same per-worker batch; with `b_noise`, the
/// predicted time to target per row, the best per worker count and where workers stop paying.
pub fn analyse(points: Vec<ScalingPoint>, b_noise: Option<f64>, min_gain: f64) -> ScalingReport {
    let base = |b: usize| points.iter().find(|p| p.workers == 1 && p.per_worker_batch == b);
    let raw: Vec<Option<f64>> = points
        .iter()
        .map(|p| b_noise.map(|bn| (1.0 + bn / p.global_batch as f64) * p.ms_per_step))
        .collect();
    let min = raw.iter().flatten().copied().fold(f64::INFINITY, f64::min);
    let rows: Vec<ScalingRow> = points
        .iter()
        .zip(&raw)
        .map(|(p, t)| {
            let speedup = base(p.per_worker_batch).map(|b| p.examples_per_s / b.examples_per_s);
            ScalingRow {
                point: p.clone(),
                speedup,
                efficiency: speedup.map(|s| s / p.workers as f64),
                predicted_steps_rel: b_noise.map(|bn| 1.0 + bn / p.global_batch as f64),
                time_to_target_rel: t.map(|t| t / min),
            }
        })
        .collect();
    let mut counts: Vec<usize> = points.iter().map(|p| p.workers).collect();
    counts.sort_unstable();
    counts.dedup();
    let best: Vec<BestAt> = counts
        .iter()
        .filter_map(|&n| {
            rows.iter()
                .filter(|r| r.point.workers == n)
                .filter_map(|r| r.time_to_target_rel.map(|t| (r.point.per_worker_batch, t)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(b, t)| BestAt { workers: n, per_worker_batch: b, time_to_target_rel: t })
        })
        .collect();
    let stop_paying_after = best
        .windows(2)
        .find(|w| w[1].time_to_target_rel > w[0].time_to_target_rel * (1.0 - min_gain))
        .map(|w| w[0].workers);
    ScalingReport { b_noise, rows, best, stop_paying_after, min_gain }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(workers: usize, b: usize, ms: f64) -> ScalingPoint {
        let global_batch = workers * b;
        ScalingPoint {
            workers,
            per_worker_batch: b,
            global_batch,
            ms_per_step: ms,
            examples_per_s: global_batch as f64 / (ms / 1e3),
            ..Default::default()
        }
    }

    #[test]
    fn names_the_worker_count_past_which_workers_stop_paying() {
        // B_noise = 64: from 1 to 2 workers at b = 32 the steps drop 3 → 2 for 1.2× the step
        // time (pays); 2 → 4 workers drops 2 → 1.5 for 2× the step time (does not).
        let pts = vec![pt(1, 32, 10.0), pt(2, 32, 12.0), pt(4, 32, 24.0)];
        let r = analyse(pts, Some(64.0), 0.1);
        assert_eq!(r.stop_paying_after, Some(2));
        let s = r.rows[1].speedup.unwrap();
        assert!((s - 2.0 * 10.0 / 12.0).abs() < 1e-12);
        assert!((r.rows[1].efficiency.unwrap() - s / 2.0).abs() < 1e-12);
        assert_eq!(r.best.len(), 3);
        assert!((r.best[1].time_to_target_rel - 1.0).abs() < 1e-12);
        // Without B_noise there is no time to target and no answer.
        let r = analyse(vec![pt(1, 32, 10.0), pt(2, 32, 12.0)], None, 0.1);
        assert!(r.best.is_empty() && r.stop_paying_after.is_none());
    }
}

//! Profile the real training step at one batch size: the sweep's setup (same seeds, tiny
//! learning rate, no gradient-norm reduction), warm-up, then timed steps alternating plain
//! (no per-dispatch queries) and profiled (every dispatch timed and named).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::hooks::{Profilable, TimingMethod};
use super::wrapper::{OpCall, Profiled};
use crate::backend::{Backend, BackendError};
use crate::config::Config;
use crate::model::{LossKind, Mlp, Targets};
use crate::schedule::sweep::time_once;
use crate::train::{Clip, Optimizer, TrainState};

/// One op group of a profiled step, averaged over the profiled steps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupStats {
    pub group: String,
    /// Dispatches (GPU) or op calls (CPU backend) per step.
    pub calls_per_step: f64,
    pub us_per_step: f64,
    pub flops_per_step: f64,
    pub bytes_per_step: f64,
}

impl GroupStats {
    pub fn gflops(&self) -> f64 {
        self.flops_per_step / (self.us_per_step * 1e3)
    }
    pub fn gbps(&self) -> f64 {
        self.bytes_per_step / (self.us_per_step * 1e3)
    }
}

/// The profile of one batch size.
#[derive(Clone, Debug, Serialize)]
pub struct BatchProfile {
    pub batch: usize,
    #[serde(skip)]
    pub timing: TimingMethod,
    /// How the per-op times were measured, in words.
    pub op_timing: &'static str,
    /// `gpu_timestamps` (encoder timestamps around the step) or `host` (wall time with sync).
    pub step_timing: &'static str,
    pub steps: usize,
    /// Median step time without per-dispatch queries, ms.
    pub step_ms_plain: f64,
    /// Median step time with per-dispatch queries (or per-op timers), ms.
    pub step_ms_profiled: f64,
    /// Mean step time of the profiled steps, ms (what the per-op times add up to).
    pub step_ms_profiled_mean: f64,
    /// Σ of the per-op times of a profiled step (mean over steps), ms.
    pub ops_ms: f64,
    /// Median host time to record and submit a plain step, µs.
    pub host_record_submit_us: f64,
    /// Backend op calls per step (each records one or more dispatches on the GPU).
    pub ops_per_step: f64,
    pub dispatches_per_step: f64,
    /// Compute passes of a plain step (its dispatches share passes; a profiled step has one
    /// pass per dispatch).
    pub passes_per_step: f64,
    pub submits_per_step: f64,
    pub bytes_uploaded_per_step: f64,
    pub bytes_read_back_per_step: f64,
    /// Dispatches whose timestamps did not fit the query set (0 in practice).
    pub untimed_dispatches: u64,
    /// In order of first appearance in the step.
    pub groups: Vec<GroupStats>,
}

impl BatchProfile {
    /// Relative cost of the queries: profiled over plain step time, minus 1.
    pub fn query_overhead(&self) -> f64 {
        self.step_ms_profiled / self.step_ms_plain - 1.0
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Per call of a profiled step: (calls, ns). GPU: the dispatches tagged with the call's index;
/// host timing: the call's own timer.
fn call_times<B: Profilable>(
    b: &B,
    calls: &[OpCall],
    untimed: &mut u64,
) -> Result<Vec<(f64, f64)>, BackendError> {
    if b.timing_method() != TimingMethod::PassTimestamps {
        return Ok(calls.iter().map(|c| (1.0, c.host_ns)).collect());
    }
    let (times, dropped) = b.end_dispatch_timing()?;
    *untimed += dropped;
    let mut out = vec![(0.0, 0.0); calls.len()];
    for t in times {
        match out.get_mut(t.tag as usize) {
            Some(o) => *o = (o.0 + 1.0, o.1 + t.ns),
            None => *untimed += 1,
        }
    }
    Ok(out)
}

/// Add one profiled step's calls into the groups (in order of first appearance).
fn accumulate(groups: &mut Vec<GroupStats>, calls: &[OpCall], times: &[(f64, f64)]) {
    for (c, &(n, ns)) in calls.iter().zip(times) {
        let name = c.op.group(c.scope);
        let i = match groups.iter().position(|g| g.group == name) {
            Some(i) => i,
            None => {
                groups.push(GroupStats {
                    group: name,
                    calls_per_step: 0.0,
                    us_per_step: 0.0,
                    flops_per_step: 0.0,
                    bytes_per_step: 0.0,
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        g.calls_per_step += n;
        g.us_per_step += ns * 1e-3;
        g.flops_per_step += c.op.flops();
        g.bytes_per_step += c.op.bytes();
    }
}

/// Profile the training step of `cfg`'s model at `batch` on `b`: `sweep.warmup_steps`, then
/// `sweep.timed_steps` steps each run plain and profiled.
pub fn profile_batch<B: Profilable>(
    b: &B,
    cfg: &Config,
    batch: usize,
) -> Result<BatchProfile, BackendError> {
    profile_batch_until(b, cfg, batch, None)
}

/// [`profile_batch`] that stops warming up and timing once `deadline` is past (after one
/// warm-up and one timed step at least; `steps` in the profile says how many were timed).
pub fn profile_batch_until<B: Profilable>(
    b: &B,
    cfg: &Config,
    batch: usize,
    deadline: Option<std::time::Instant>,
) -> Result<BatchProfile, BackendError> {
    let past = || deadline.is_some_and(|d| std::time::Instant::now() >= d);
    let p = Profiled::new(b);
    let spec = cfg.mlp_spec();
    let opt = Optimizer::of(&cfg.train);
    let model = Mlp::new(spec.clone())?;
    // The sweep's inputs: the same seed, the same draws.
    let mut r = ChaCha8Rng::seed_from_u64(batch as u64);
    let (inputs, outputs) = (model.inputs(), model.outputs());
    let params = model.init_scaled(&p, cfg.model.init_seed, cfg.model.init_scale)?;
    let mut st = TrainState::new(&p, model, params, batch, &opt)?;
    crate::train::amp::for_config(&p, cfg, &mut st)?;
    let x = p.upload(&(0..batch * inputs).map(|_| r.random_range(-1.0f32..1.0)).collect::<Vec<_>>())?;
    let labels =
        p.upload_idx(&(0..batch).map(|_| r.random_range(0..outputs as u32)).collect::<Vec<_>>())?;
    let targets =
        p.upload(&(0..batch * outputs).map(|_| r.random_range(-1.0f32..1.0)).collect::<Vec<_>>())?;
    let t = match spec.loss {
        LossKind::SoftmaxXent => Targets::Classes(&labels),
        LossKind::Mse => Targets::Values(&targets),
    };
    st.measure_grad_norm = false;
    let (lr, clip) = (1e-6, Clip { norm: cfg.train.clip_norm, value: cfg.train.clip_value });
    for i in 0..cfg.sweep.warmup_steps.max(1) {
        st.record_step(&p, &x, &t, &opt, lr, &clip)?;
        // Recording runs ahead of the device: wait for it now and then, so the clock is its.
        if deadline.is_some() && i % 16 == 15 {
            p.sync()?;
            if past() {
                break;
            }
        }
    }
    p.sync()?;

    let planned = cfg.sweep.timed_steps.max(1);
    let mut steps = 0;
    let (mut plain, mut profiled, mut host) = (Vec::new(), Vec::new(), Vec::new());
    let (mut counts, mut ops_ns, mut untimed, mut op_calls) = ([0.0; 5], 0.0, 0, 0);
    let mut groups = Vec::new();
    let mut device_timed = true;
    while steps < planned {
        steps += 1;
        let c0 = b.counters();
        let (ms, host_ms, dev, c1) =
            time_once(b, &mut || st.record_step(&p, &x, &t, &opt, lr, &clip), || b.counters())?;
        // Up to the step's submit: the timing readback after it is not part of the step.
        counts[0] += (c1.dispatches - c0.dispatches) as f64;
        counts[1] += (c1.submits - c0.submits) as f64;
        counts[2] += (c1.bytes_uploaded - c0.bytes_uploaded) as f64;
        counts[3] += (c1.bytes_read_back - c0.bytes_read_back) as f64;
        counts[4] += (c1.passes - c0.passes) as f64;
        plain.push(ms);
        host.push(host_ms);
        device_timed &= dev;

        p.start();
        b.begin_dispatch_timing()?;
        let (ms, _, _, _) =
            time_once(b, &mut || st.record_step(&p, &x, &t, &opt, lr, &clip), || b.counters())?;
        let calls = p.stop();
        op_calls += calls.len();
        let times = call_times(b, &calls, &mut untimed)?;
        ops_ns += times.iter().map(|t| t.1).sum::<f64>();
        accumulate(&mut groups, &calls, &times);
        profiled.push(ms);
        if steps < planned && past() {
            log::warn!("sweep.time_budget_s reached at B = {batch}: {steps} of {planned} timed steps");
            break;
        }
    }
    let n = steps as f64;
    for g in &mut groups {
        g.calls_per_step /= n;
        g.us_per_step /= n;
        g.flops_per_step /= n;
        g.bytes_per_step /= n;
    }
    let method = b.timing_method();
    Ok(BatchProfile {
        batch,
        timing: method,
        op_timing: method.describe(),
        step_timing: if device_timed { "gpu_timestamps" } else { "host" },
        steps,
        step_ms_plain: median(&mut plain),
        step_ms_profiled_mean: profiled.iter().sum::<f64>() / n,
        step_ms_profiled: median(&mut profiled),
        ops_ms: ops_ns / n * 1e-6,
        host_record_submit_us: median(&mut host) * 1e3,
        ops_per_step: op_calls as f64 / n,
        dispatches_per_step: counts[0] / n,
        passes_per_step: counts[4] / n,
        submits_per_step: counts[1] / n,
        bytes_uploaded_per_step: counts[2] / n,
        bytes_read_back_per_step: counts[3] / n,
        untimed_dispatches: untimed,
        groups,
    })
}

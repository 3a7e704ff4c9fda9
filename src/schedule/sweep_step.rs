//! Timing one batch size of a sweep: the real training step, warmed up, then timed (again where
//! NVML saw a throttled clock); the row's statistics from its timed steps, rounds pooled.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::memory::{check_fit, estimate_for, DeviceLimits};
use super::sweep::{SweepRow, Timed};
use super::timing_stats::median_interval;
use crate::backend::BackendError;
use crate::config::Config;
use crate::model::{LossKind, Mlp, Targets};
use crate::stats::median;
use crate::telemetry::sampler::{UtilMonitor, UtilSummary, THROTTLED_BELOW};
use crate::train::{Clip, Optimizer, TrainState};

/// Time `f` (which records work and may sync) as GPU ns between marks 0 and 1 when available,
/// else host time through `sync`; `after_submit` runs between the submit and the sync. Returns
/// (device-or-host ms, host record+submit ms, device-timed, what `after_submit` returned).
pub(crate) fn time_once<B: Timed, T>(
    b: &B,
    f: &mut dyn FnMut() -> Result<(), BackendError>,
    after_submit: impl FnOnce() -> T,
) -> Result<(f64, f64, bool, T), BackendError> {
    let t0 = Instant::now();
    b.mark(0);
    f()?;
    b.mark(1);
    b.flush()?;
    let host_ms = t0.elapsed().as_secs_f64() * 1e3;
    let after = after_submit();
    b.sync()?;
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    match b.read_marks(2)? {
        Some(ns) if ns.len() == 2 && ns[1] > ns[0] => Ok(((ns[1] - ns[0]) * 1e-6, host_ms, true, after)),
        _ => Ok((wall_ms, host_ms, false, after)),
    }
}

/// A row for a batch size that was not measured (the caller fills `skipped`).
pub(super) fn unmeasured_row<B: Timed>(b: &B, batch: usize) -> SweepRow {
    SweepRow {
        backend: format!("{:?}", b.kind()).to_lowercase(),
        batch,
        ms_per_step_median: f64::NAN,
        ms_min: f64::NAN,
        ms_max: f64::NAN,
        examples_per_s: f64::NAN,
        gflops: f64::NAN,
        fraction_of_peak: f64::NAN,
        host_overhead_ms: f64::NAN,
        bytes_predicted: 0,
        timing: "none",
        skipped: None,
        util: None,
        throttled: false,
        rounds: 0,
        ms_ci_low: f64::NAN,
        ms_ci_high: f64::NAN,
        ms_ci_coverage: f64::NAN,
        step_ms: Vec::new(),
        host_ms: Vec::new(),
    }
}

/// One run of a batch size's timed steps: step ms, host ms, whether every step was device-timed,
/// and NVML's readings of the window.
type TimedWindow = (Vec<f64>, Vec<f64>, bool, Option<UtilSummary>);

/// Times a batch size's timed steps are run when NVML says the SM clock was throttled in the
/// window (the best-clocked attempt is kept), and the pause before each retry: longer each
/// time, since the H200's episodes lasted seconds (2026-12-04: 345-488 MHz for 2-4 s).
pub const THROTTLE_ATTEMPTS: usize = 4;
const THROTTLE_PAUSES_MS: [u64; THROTTLE_ATTEMPTS - 1] = [250, 1000, 2000];

/// Measure one batch size: `Ok(row)` with timings, or a row with the reason it was skipped.
pub(super) fn measure_batch<B: Timed>(
    b: &B,
    cfg: &Config,
    batch: usize,
    limits: &DeviceLimits,
    peak: f64,
    monitor: &mut UtilMonitor,
    deadline: Option<Instant>,
) -> Result<SweepRow, BackendError> {
    let spec = cfg.mlp_spec();
    let mut row = unmeasured_row(b, batch);
    let est = match estimate_for(cfg, batch) {
        Ok(e) => e,
        Err(e) => {
            row.skipped = Some(e.to_string());
            return Ok(row);
        }
    };
    row.bytes_predicted = est.total_bytes;
    if let Err(reason) = check_fit(&est, limits) {
        row.skipped = Some(format!("predicted not to fit: {reason}"));
        return Ok(row);
    }
    let opt = Optimizer::of(&cfg.train);
    let model = Mlp::new(spec.clone())?;
    let mut r = ChaCha8Rng::seed_from_u64(batch as u64);
    let inputs = model.inputs();
    let outputs = model.outputs();
    let alloc = (|| -> Result<_, BackendError> {
        let params = model.init_scaled(b, cfg.model.init_seed, cfg.model.init_scale)?;
        let mut st = TrainState::new(b, model.clone(), params, batch, &opt)?;
        crate::train::amp::for_config(b, cfg, &mut st)?;
        let x =
            b.upload(&(0..batch * inputs).map(|_| r.random_range(-1.0f32..1.0)).collect::<Vec<_>>())?;
        let labels =
            b.upload_idx(&(0..batch).map(|_| r.random_range(0..outputs as u32)).collect::<Vec<_>>())?;
        let targets =
            b.upload(&(0..batch * outputs).map(|_| r.random_range(-1.0f32..1.0)).collect::<Vec<_>>())?;
        Ok((st, x, labels, targets))
    })();
    let (mut st, x, labels, targets) = match alloc {
        Ok(v) => v,
        Err(e @ (BackendError::OutOfMemory { .. } | BackendError::ExceedsLimit { .. })) => {
            row.skipped = Some(format!("allocation failed: {e}"));
            return Ok(row);
        }
        Err(e) => return Err(e),
    };
    let t = if spec.loss == LossKind::SoftmaxXent {
        Targets::Classes(&labels)
    } else {
        Targets::Values(&targets)
    };
    // As in training between log steps: no gradient-norm reduction unless clipping needs it.
    st.measure_grad_norm = false;
    // A tiny learning rate keeps the parameters (and so the work) steady across timed steps.
    let lr = 1e-6;
    let clip = Clip { norm: cfg.train.clip_norm, value: cfg.train.clip_value };
    // The time budget bounds a batch size's own steps too: past the deadline the warm-up
    // stops (after one step) and so do the timed steps (after one), so that no step count
    // holds a budgeted sweep past its budget by more than a few steps.
    let past = || deadline.is_some_and(|d| Instant::now() >= d);
    for i in 0..cfg.sweep.warmup_steps.max(1) {
        st.record_step(b, &x, &t, &opt, lr, &clip)?;
        // Recording runs ahead of the device: wait for it now and then, so the clock is its.
        if deadline.is_some() && i % 16 == 15 {
            b.sync()?;
            if past() {
                break;
            }
        }
    }
    b.sync()?;
    // The timed steps, again where NVML saw a throttled clock (the best-clocked window kept).
    let mut best: Option<TimedWindow> = None;
    for attempt in 0..THROTTLE_ATTEMPTS {
        if attempt > 0 {
            let pause = std::time::Duration::from_millis(THROTTLE_PAUSES_MS[attempt - 1]);
            // No retry the time budget cannot hold.
            if deadline.is_some_and(|d| Instant::now() + pause >= d) {
                break;
            }
            std::thread::sleep(pause);
            // The whole warm-up again: after a pause the clock ramps up with the work.
            for _ in 0..cfg.sweep.warmup_steps.max(1) {
                st.record_step(b, &x, &t, &opt, lr, &clip)?;
            }
            b.sync()?;
        }
        let (mut ms, mut host, mut device_timed) = (Vec::new(), Vec::new(), true);
        monitor.begin();
        for _ in 0..cfg.sweep.timed_steps {
            let (m, h, dev, ()) =
                time_once(b, &mut || st.record_step(b, &x, &t, &opt, lr, &clip), || ())?;
            ms.push(m);
            host.push(h);
            device_timed &= dev;
            if past() {
                log::warn!(
                    "sweep.time_budget_s reached at B = {batch}: {} of {} timed steps",
                    ms.len(),
                    cfg.sweep.timed_steps
                );
                break;
            }
        }
        let util = monitor.end();
        let clock = |u: &Option<UtilSummary>| u.and_then(|u| u.clock_fraction());
        let throttled = util.is_some_and(|u| u.throttled());
        // A retry replaces the window kept only with a whole one whose clock was read higher.
        let whole = ms.len() == cfg.sweep.timed_steps;
        let better = |kept: &TimedWindow| {
            whole && clock(&util).zip(clock(&kept.3)).is_some_and(|(now, then)| now > then)
        };
        if best.as_ref().is_none_or(better) {
            best = Some((ms, host, device_timed, util));
        }
        if !throttled || past() {
            break;
        }
        log::warn!(
            "B = {batch}: SM clock {:.0} % of its maximum while timed (below {:.0} %): timing again",
            clock(&util).unwrap_or(1.0) * 100.0,
            THROTTLED_BELOW * 100.0
        );
    }
    let Some((ms, mut host, device_timed, util)) = best else {
        return Err(BackendError::Invalid { op: "sweep", message: "no timed window".into() });
    };
    row.util = util;
    row.throttled = util.is_some_and(|u| u.throttled());
    row.timing = if device_timed { "gpu_timestamps" } else { "host" };
    row.step_ms = vec![ms];
    row.host_ms = std::mem::take(&mut host);
    settle(&mut row, model.train_flops_per_example(), peak);
    Ok(row)
}

/// Fill a measured row's statistics from its timed steps (all rounds pooled): the median step,
/// its range and [`median_interval`], throughput and GFLOP/s at the median, host overhead.
pub(super) fn settle(row: &mut SweepRow, flops_per_example: f64, peak: f64) {
    let mut all: Vec<f64> = row.step_ms.concat();
    if all.is_empty() {
        return;
    }
    let med = median(&mut all);
    row.rounds = row.step_ms.len();
    row.ms_per_step_median = med;
    row.ms_min = all.iter().copied().fold(f64::INFINITY, f64::min);
    row.ms_max = all.iter().copied().fold(0.0, f64::max);
    if let Some(ci) = median_interval(&all) {
        (row.ms_ci_low, row.ms_ci_high, row.ms_ci_coverage) = (ci.low, ci.high, ci.coverage);
    }
    row.examples_per_s = row.batch as f64 / (med * 1e-3);
    row.gflops = flops_per_example * row.batch as f64 / (med * 1e-3) / 1e9;
    row.fraction_of_peak = row.gflops / peak;
    row.host_overhead_ms = median(&mut row.host_ms.clone());
}

/// Add another round of a batch size to its row: its timed steps as a round of their own and
/// its host times. Only like rounds are pooled: a round timed whole, on the same clock (device
/// timestamps or host), and throttled only where every round kept was; a round unlike the kept
/// ones is set aside (or replaces them, where it is unthrottled and they were not). `Err` with
/// why a round was set aside.
pub(super) fn absorb(
    row: &mut SweepRow,
    again: SweepRow,
    timed_steps: usize,
    (flops_per_example, peak): (f64, f64),
) -> Result<(), String> {
    let steps = again.step_ms.iter().map(Vec::len).sum::<usize>();
    if steps < timed_steps {
        return Err(format!("{steps} of {timed_steps} steps timed before the time budget ran out"));
    }
    if again.timing != row.timing {
        return Err(format!(
            "timed by {} where the first round was timed by {}",
            again.timing, row.timing
        ));
    }
    match (row.throttled, again.throttled) {
        (false, true) => return Err("the SM clock was throttled (the rounds kept were not)".into()),
        (true, false) => {
            // The first unthrottled round replaces the throttled ones.
            row.step_ms.clear();
            row.host_ms.clear();
            row.throttled = false;
            row.util = again.util;
        }
        _ => {}
    }
    row.step_ms.extend(again.step_ms);
    row.host_ms.extend(again.host_ms);
    settle(row, flops_per_example, peak);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;

    /// A measured row of B = 64 from `steps` (one round), timed by `timing`.
    fn round(steps: &[f64], timing: &'static str, throttled: bool) -> SweepRow {
        let mut row = unmeasured_row(&CpuBackend::new(), 64);
        row.step_ms = vec![steps.to_vec()];
        row.host_ms = vec![0.1; steps.len()];
        row.timing = timing;
        row.throttled = throttled;
        settle(&mut row, 1e6, 1e3);
        row
    }

    /// Like rounds pool; a round cut short, timed by another clock, or throttled where the kept
    /// ones were not is set aside with the reason; an unthrottled one replaces throttled ones.
    #[test]
    fn only_like_rounds_are_pooled() {
        let mut row = round(&[1.0, 2.0, 3.0], "host", false);
        absorb(&mut row, round(&[4.0, 5.0, 6.0], "host", false), 3, (1e6, 1e3)).expect("pooled");
        assert_eq!((row.rounds, row.ms_per_step_median, row.ms_max), (2, 3.5, 6.0));
        let short = absorb(&mut row, round(&[9.0], "host", false), 3, (1e6, 1e3));
        assert!(short.is_err_and(|e| e.contains("1 of 3 steps")));
        let clock = absorb(&mut row, round(&[1.0; 3], "gpu_timestamps", false), 3, (1e6, 1e3));
        assert!(clock.is_err_and(|e| e.contains("gpu_timestamps")));
        let hot = absorb(&mut row, round(&[9.0; 3], "host", true), 3, (1e6, 1e3));
        assert!(hot.is_err_and(|e| e.contains("throttled")));
        assert_eq!(row.rounds, 2, "set-aside rounds leave the row as it was");

        let mut slow = round(&[8.0; 3], "host", true);
        absorb(&mut slow, round(&[2.0; 3], "host", false), 3, (1e6, 1e3)).expect("replaces");
        assert_eq!((slow.rounds, slow.ms_per_step_median, slow.throttled), (1, 2.0, false));
        // Throughput and GFLOP/s follow the pooled median: 64 examples in 2 ms, 1 MFLOP each.
        assert!((slow.examples_per_s - 32_000.0).abs() < 1e-9);
        assert!((slow.gflops - 32.0).abs() < 1e-9);
    }
}

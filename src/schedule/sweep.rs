//! The batch-size sweep: for each power of two, warm-up then timed steps of the real training
//! step; GPU time from timestamp queries where the adapter has them, else host time around
//! submit and wait. Batches the memory model predicts cannot fit are skipped before anything is
//! dispatched; an allocation that still fails is recorded and the sweep goes on.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::host_memory::host_limit;
use super::knee::SweepPoint;
use super::memory::{check_fit, estimate_for, DeviceLimits};
use super::powers_of_two;
use super::sweep_step::{absorb, measure_batch, unmeasured_row};
use super::timing_stats::TimedPoint;
use crate::backend::{BackendError, BackendKind, Gemm};
use crate::config::Config;
use crate::model::{Mlp, Precision};
use crate::report::table::fmt_sig;
use crate::telemetry::sampler::{UtilMonitor, UtilSummary};

pub(crate) use super::sweep_step::time_once;
pub use super::sweep_step::THROTTLE_ATTEMPTS;
pub use crate::backend::timed::Timed;

/// One row of sweep.csv.
#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    pub backend: String,
    pub batch: usize,
    pub ms_per_step_median: f64,
    pub ms_min: f64,
    pub ms_max: f64,
    pub examples_per_s: f64,
    pub gflops: f64,
    /// Achieved GFLOP/s over the peak measured by a large tiled matmul: the "utilization".
    pub fraction_of_peak: f64,
    /// Host time to record and submit one step, ms.
    pub host_overhead_ms: f64,
    pub bytes_predicted: u64,
    /// `gpu_timestamps` or `host`.
    pub timing: &'static str,
    pub skipped: Option<String>,
    /// NVML readings while the timed steps ran (`None` without NVML or when skipped).
    pub util: Option<UtilSummary>,
    /// Whether the timed steps ran below [`THROTTLED_BELOW`](crate::telemetry::sampler::THROTTLED_BELOW)
    /// of the maximum SM clock in every attempt ([`THROTTLE_ATTEMPTS`]) of every round the row
    /// pools: the row is the device's clock, not the step's.
    pub throttled: bool,
    /// Rounds whose steps the row pools (`sweep.rounds`; fewer where a later round would have
    /// overrun the time budget or was set aside, [`absorb`](super::sweep_step::absorb); 0 when
    /// skipped).
    pub rounds: usize,
    /// An interval of the timed steps that holds the median step time with probability
    /// `ms_ci_coverage` ([`median_interval`](super::timing_stats::median_interval)), ms.
    pub ms_ci_low: f64,
    pub ms_ci_high: f64,
    pub ms_ci_coverage: f64,
    /// Every timed step, ms, one list per round.
    pub step_ms: Vec<Vec<f64>>,
    /// Host record-and-submit time of every timed step, ms (its median is `host_overhead_ms`).
    #[serde(skip)]
    pub host_ms: Vec<f64>,
}

impl SweepRow {
    pub fn point(&self) -> SweepPoint {
        match &self.skipped {
            Some(r) => SweepPoint::skipped(self.batch, r),
            None => SweepPoint::measured(self.batch, self.ms_per_step_median, self.ms_min, self.ms_max),
        }
    }
}

/// A whole sweep on one backend.
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    pub backend: String,
    pub device: String,
    pub model: Vec<usize>,
    pub peak_gflops: f64,
    pub peak_probe: String,
    pub rows: Vec<SweepRow>,
}

impl SweepReport {
    pub fn points(&self) -> Vec<SweepPoint> {
        self.rows.iter().map(SweepRow::point).collect()
    }

    /// The points with their timed steps, for [`choice_stability`](super::timing_stats::choice_stability).
    pub fn timed_points(&self) -> Vec<TimedPoint<'_>> {
        self.rows.iter().map(|r| TimedPoint { point: r.point(), rounds: &r.step_ms }).collect()
    }
}

/// Peak GFLOP/s of this backend: the best of five n³ matmuls (the tiled kernel on a GPU).
pub fn measure_peak<B: Timed>(b: &B) -> Result<(f64, String), BackendError> {
    let n = b.peak_probe_size();
    let mut r = ChaCha8Rng::seed_from_u64(9);
    let host: Vec<f32> = (0..n * n).map(|_| r.random_range(-1.0..1.0)).collect();
    let a = b.upload(&host)?;
    let bb = b.upload(&host)?;
    let mut c = b.zeros(n * n)?;
    let g = Gemm::nn(n, n, n);
    b.matmul(&g, &a, &bb, &mut c)?; // warm-up (pipeline creation, first touch)
    b.sync()?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let (ms, ..) = time_once(b, &mut || b.matmul(&g, &a, &bb, &mut c), || ())?;
        best = best.min(ms);
    }
    Ok((g.flops() / (best * 1e-3) / 1e9, format!("matmul {n}x{n}x{n}")))
}

/// Peak GFLOP/s of this backend's f16 product (the best of five n³ `matmul_half`, half
/// operands summed in f32: the kernel the f16 step runs, cooperative matrices where chosen).
pub fn measure_peak_f16<B: Timed>(b: &B) -> Result<(f64, String), BackendError> {
    let h = crate::model::mlp_f16::half_ops(b)?;
    let n = b.peak_probe_size();
    let mut r = ChaCha8Rng::seed_from_u64(9);
    let host: Vec<f32> = (0..n * n).map(|_| r.random_range(-1.0..1.0)).collect();
    let x = b.upload(&host)?;
    let (mut a, mut bb) = (h.zeros_half(n * n)?, h.zeros_half(n * n)?);
    h.to_half(n * n, &x, &mut a)?;
    h.to_half(n * n, &x, &mut bb)?;
    let mut c = b.zeros(n * n)?;
    let g = Gemm::nn(n, n, n);
    h.matmul_half(&g, &a, &bb, &mut c)?; // warm-up (pipeline creation, first touch)
    b.sync()?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let (ms, ..) = time_once(b, &mut || h.matmul_half(&g, &a, &bb, &mut c), || ())?;
        best = best.min(ms);
    }
    Ok((g.flops() / (best * 1e-3) / 1e9, format!("f16 matmul {n}x{n}x{n}, f16 operands, f32 sums")))
}

/// The peak the rows of a sweep in `cfg`'s precision are divided by, measured here: the fp32
/// matmul probe for f32, the f16 product probe for f16.
pub fn measure_precision_peak<B: Timed>(b: &B, cfg: &Config) -> Result<(f64, String), BackendError> {
    match cfg.model.precision {
        Precision::F32 => measure_peak(b),
        Precision::F16 => measure_peak_f16(b),
    }
}

/// The limits a training step on `b` is checked against: the adapter's, `sweep.memory_budget_mib`
/// and, on the CPU backend (whose buffers are host memory), what the OS lets us allocate.
pub fn step_limits<B: Timed>(b: &B, cfg: &Config) -> DeviceLimits {
    let budget = (cfg.sweep.memory_budget_mib > 0)
        .then(|| cfg.sweep.memory_budget_mib.saturating_mul(1024 * 1024));
    let host = match b.kind() {
        BackendKind::Cpu => host_limit().map(|l| l.bytes),
        BackendKind::Gpu => None,
    };
    let budget = match (budget, host) {
        (Some(a), Some(h)) => Some(a.min(h)),
        (a, h) => a.or(h),
    };
    b.device_limits(budget)
}

/// A batch size the memory model predicts cannot run on the device (or the host).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("batch size {batch} cannot fit: {reason}")]
pub struct BatchDoesNotFit {
    pub batch: usize,
    pub reason: String,
}

/// `Ok` when the training step of `cfg`'s model at `batch` is predicted to fit `b`
/// ([`step_limits`]); checked before anything of that size is allocated.
pub fn check_step_fits<B: Timed>(b: &B, cfg: &Config, batch: usize) -> Result<(), BatchDoesNotFit> {
    let fail = |reason: String| BatchDoesNotFit { batch, reason };
    let est = estimate_for(cfg, batch).map_err(|e| fail(e.to_string()))?;
    check_fit(&est, &step_limits(b, cfg)).map_err(|e| fail(e.to_string()))
}

/// Sweep every power of two in `[min_batch, max_batch]` on `b`.
pub fn run_sweep<B: Timed>(
    b: &B,
    cfg: &Config,
    on_row: &mut dyn FnMut(&SweepRow),
) -> Result<SweepReport, BackendError> {
    run_sweep_monitored(b, cfg, on_row, &mut UtilMonitor::new(None))
}

/// [`run_sweep`], sampling `monitor` (NVML) while each batch size's timed steps run.
pub fn run_sweep_monitored<B: Timed>(
    b: &B,
    cfg: &Config,
    on_row: &mut dyn FnMut(&SweepRow),
    monitor: &mut UtilMonitor,
) -> Result<SweepReport, BackendError> {
    run_sweep_at_peak(b, cfg, on_row, monitor, None)
}

/// Seconds that `steps` steps at `batch` are predicted to take from the last measured row: a
/// step at 2B takes at most about twice as long as at B, so 2^j B past it predicts 2^j its
/// median step (each skipped size after it is priced from it); the slowest step, preempted by
/// another process (700× the median), priced every later size past the budget.
fn predicted_seconds(last: &SweepRow, batch: usize, steps: f64) -> f64 {
    let growth = batch as f64 / last.batch.max(1) as f64;
    growth * last.ms_per_step_median * 1e-3 * steps
}

/// Rounds 2..=`sweep.rounds`: every batch size round 1 measured, timed again (allocation and
/// warm-up anew) in alternating order, descending then ascending, so that a drift of the device's
/// state over the sweep (clocks, heat, another process) lands on every size rather than on the
/// last ones; each round's steps join the row as a round of their own ([`absorb`]). Under a time
/// budget, round 1 is priced alone (as a one-round sweep is) and a later round of a size runs only
/// where its own median predicts it ends within the budget; the rows say how many rounds they kept.
fn more_rounds<B: Timed>(
    b: &B,
    cfg: &Config,
    rows: &mut [SweepRow],
    (limits, peak, flops_per_example): (&DeviceLimits, f64, f64),
    monitor: &mut UtilMonitor,
    deadline: Option<Instant>,
    on_row: &mut dyn FnMut(&SweepRow),
) -> Result<(), BackendError> {
    let measured: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].skipped.is_none()).collect();
    let one_round = (cfg.sweep.warmup_steps.max(1) + cfg.sweep.timed_steps) as f64;
    let mut over_budget = 0usize;
    for round in 1..cfg.sweep.rounds.max(1) {
        let order: Vec<usize> = match round % 2 {
            1 => measured.iter().rev().copied().collect(),
            _ => measured.clone(),
        };
        for i in order {
            let batch = rows[i].batch;
            let predicted =
                std::time::Duration::try_from_secs_f64(predicted_seconds(&rows[i], batch, one_round));
            let fits = match (deadline, predicted) {
                (None, _) => true,
                (Some(d), Ok(p)) => Instant::now().checked_add(p).is_some_and(|end| end < d),
                (Some(_), Err(_)) => false,
            };
            if !fits {
                over_budget += 1;
                on_row(&rows[i]);
                continue;
            }
            let again = measure_batch(b, cfg, batch, limits, peak, monitor, deadline)?;
            b.release_caches();
            let set_aside = match &again.skipped {
                // A size that does not allocate this time keeps the rounds it has.
                Some(reason) => Err(reason.clone()),
                None => absorb(&mut rows[i], again, cfg.sweep.timed_steps, (flops_per_example, peak)),
            };
            if let Err(why) = set_aside {
                log::warn!("B = {batch}: round {} of {} set aside: {why}", round + 1, cfg.sweep.rounds);
            }
            on_row(&rows[i]);
        }
    }
    if over_budget > 0 {
        log::warn!(
            "sweep.time_budget_s = {} s: {over_budget} later round(s) of a batch size would have overrun it and did not run; \
             the rows' `rounds` say how many timed each",
            cfg.sweep.time_budget_s
        );
    }
    Ok(())
}

/// [`run_sweep_monitored`] against `peak` (GFLOP/s, where it came from) when given, else
/// against [`measure_precision_peak`].
pub fn run_sweep_at_peak<B: Timed>(
    b: &B,
    cfg: &Config,
    on_row: &mut dyn FnMut(&SweepRow),
    monitor: &mut UtilMonitor,
    peak: Option<(f64, String)>,
) -> Result<SweepReport, BackendError> {
    let limits = step_limits(b, cfg);
    let (peak, probe) = match peak {
        Some(p) => p,
        // The fp32 peak the config gives (`sweep.peak_gflops`), as `profile` takes it.
        None if cfg.sweep.peak_gflops > 0.0 && cfg.model.precision == Precision::F32 => {
            (cfg.sweep.peak_gflops, "sweep.peak_gflops".to_string())
        }
        None => measure_precision_peak(b, cfg)?,
    };
    b.release_caches();
    let mut rows: Vec<SweepRow> = Vec::new();
    let start = Instant::now();
    // Round 1 is priced alone; later rounds run in what is left ([`more_rounds`]).
    let steps = (cfg.sweep.warmup_steps.max(1) + cfg.sweep.timed_steps) as f64;
    let budget = cfg.sweep.time_budget_s;
    let deadline = (budget > 0.0)
        .then(|| start.checked_add(std::time::Duration::try_from_secs_f64(budget).ok()?))
        .flatten();
    for batch in powers_of_two(cfg.sweep.min_batch, cfg.sweep.max_batch) {
        let last = rows.iter().rev().find(|r| r.skipped.is_none());
        if let (true, Some(last)) = (budget > 0.0, last) {
            let predicted = predicted_seconds(last, batch, steps);
            let left = budget - start.elapsed().as_secs_f64();
            if predicted > left {
                let mut row = unmeasured_row(b, batch);
                // The memory model costs nothing: the row keeps its prediction (it read 0).
                row.bytes_predicted = estimate_for(cfg, batch).map_or(0, |e| e.total_bytes);
                row.skipped = Some(format!(
                    "sweep.time_budget_s = {budget} s: predicted {} s, {} s left",
                    fmt_sig(predicted, 2),
                    fmt_sig(left.max(0.0), 2)
                ));
                on_row(&row);
                rows.push(row);
                continue;
            }
        }
        let row = measure_batch(b, cfg, batch, &limits, peak, monitor, deadline)?;
        b.release_caches();
        on_row(&row);
        rows.push(row);
    }
    let flops_per_example = Mlp::new(cfg.mlp_spec())?.train_flops_per_example();
    more_rounds(b, cfg, &mut rows, (&limits, peak, flops_per_example), monitor, deadline, on_row)?;
    // A probe taken while the machine was busy can undershoot what the steps achieved: the
    // peak is the better of the two, so the fraction of peak never exceeds 1.
    let (mut peak, mut probe) = (peak, probe);
    let best = rows.iter().filter(|r| r.skipped.is_none()).map(|r| r.gflops).fold(0.0, f64::max);
    if best > peak {
        probe = format!("{probe} measured {peak:.1} GFLOP/s; the sweep's best step reached more");
        peak = best;
        for r in rows.iter_mut().filter(|r| r.skipped.is_none()) {
            r.fraction_of_peak = r.gflops / peak;
        }
    }
    Ok(SweepReport {
        backend: format!("{:?}", b.kind()).to_lowercase(),
        device: b.device_name(),
        model: cfg.mlp_spec().sizes,
        peak_gflops: peak,
        peak_probe: probe,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::telemetry::sampler::tests::Clocks;

    fn sweep_at(clock_mhz: f64) -> SweepReport {
        let cfg = Config::load(
            None,
            &["model.hidden=[8]".into(), "sweep.min_batch=2".into(), "sweep.max_batch=2".into()],
        )
        .expect("config");
        let mut monitor = UtilMonitor::new(Some(Box::new(Clocks(clock_mhz))));
        run_sweep_at_peak(&CpuBackend::new(), &cfg, &mut |_| {}, &mut monitor, Some((1.0, "x".into())))
            .expect("sweep")
    }

    #[test]
    fn throttled_windows_are_timed_again_then_flagged() {
        let slow = sweep_at(500.0);
        assert_eq!(slow.rows.len(), 1);
        for r in &slow.rows {
            assert!(r.throttled, "B = {}", r.batch);
            assert_eq!(r.util.and_then(|u| u.clock_fraction()), Some(0.25));
            assert!(r.ms_per_step_median > 0.0);
        }
        let full = sweep_at(1990.0);
        assert!(full.rows.iter().all(|r| !r.throttled));
    }

    /// A later round runs only where it is predicted to end within the time budget: with a
    /// budget past as soon as it starts, the one size of round 1 keeps its one round of three
    /// (and its one step: the budget stops a size's own steps too); without one, all three run.
    #[test]
    fn later_rounds_run_only_within_the_time_budget() {
        let sweep = |budget: &str| {
            let sets =
                ["model.hidden=[8]", "sweep.min_batch=2", "sweep.max_batch=2", "sweep.rounds=3", budget];
            let cfg = Config::load(None, &sets.map(String::from)).expect("config");
            run_sweep_at_peak(
                &CpuBackend::new(),
                &cfg,
                &mut |_| {},
                &mut UtilMonitor::new(None),
                Some((1.0, "x".into())),
            )
            .expect("sweep")
        };
        let cut = sweep("sweep.time_budget_s=1e-9");
        assert_eq!((cut.rows[0].rounds, cut.rows[0].step_ms.len()), (1, 1), "{:?}", cut.rows[0]);
        let whole = sweep("sweep.time_budget_s=0");
        assert_eq!(whole.rows[0].rounds, 3);
        assert!(whole.rows[0].step_ms.iter().all(|r| r.len() == 8), "{:?}", whole.rows[0].step_ms);
    }

    /// Every batch size skipped past the budget is priced from the last measured one's median:
    /// 4 ms steps at B = 64 (one preempted at 2.8 s), 10 steps, predict 0.08 s at 128 and 0.32 s
    /// at 512 (each skipped row said 0.08 s, whatever its B; then the slowest step priced them).
    #[test]
    fn skipped_batch_sizes_are_priced_by_their_distance_from_the_last_measured() {
        let mut last = unmeasured_row(&CpuBackend::new(), 64);
        (last.ms_per_step_median, last.ms_max) = (4.0, 2800.0);
        let at = |batch| predicted_seconds(&last, batch, 10.0);
        assert!((at(128) - 0.08).abs() < 1e-12, "{}", at(128));
        assert!((at(512) - 0.32).abs() < 1e-12, "{}", at(512));
        assert!(at(1 << 40) > 1e8);
    }
}

//! Timing the candidates of one product shape on the device: scratch operands, a warm-up run
//! per candidate (pipeline creation), then samples of a few back-to-back products between two
//! GPU timestamps (`TIMESTAMP_QUERY_INSIDE_ENCODERS`), or by the wall clock around submit and
//! wait where the adapter has no timestamps. Runs alone: recorded work is submitted first and
//! the profiler's per-dispatch timing is paused.

use std::time::Instant;

use super::Candidate;
use crate::backend::gpu::elementwise::fill;
use crate::backend::gpu::matmul::record;
use crate::backend::gpu::matmul_f16::matmul_half;
use crate::backend::gpu::timestamps::Timestamps;
use crate::backend::gpu::{GpuDevice, RawBuf};
use crate::backend::half::half_words;
use crate::backend::{gemm_lens, Gemm, Result};

/// Aim for about this much device time per sample.
const SAMPLE_MS: f64 = 5.0;
/// Most products per sample.
const MAX_REPS: usize = 64;
/// Samples per candidate (the median is kept).
const SAMPLES: usize = 3;

/// Scratch operands of one shape: A and B hold 0.5, C zeros.
struct Operands {
    a: RawBuf,
    b: RawBuf,
    c: RawBuf,
}

impl Operands {
    fn new(dev: &GpuDevice, g: &Gemm) -> Result<Self> {
        let (la, lb, lc) = gemm_lens(g);
        let a = dev.alloc("autotune a", la)?;
        let b = dev.alloc("autotune b", lb)?;
        let c = dev.alloc("autotune c", lc)?;
        fill(dev, la, 0.5, &a)?;
        fill(dev, lb, 0.5, &b)?;
        Ok(Operands { a, b, c })
    }
}

/// The clock of one measurement.
enum Clock {
    Gpu(Timestamps),
    Wall,
}

impl Clock {
    fn name(&self) -> &'static str {
        match self {
            Clock::Gpu(_) => "gpu_timestamps",
            Clock::Wall => "wall_clock",
        }
    }
}

/// ms per product of each candidate (`None`: it failed or has no launch), and the clock's name.
pub type Timings = (Vec<(Candidate, Option<f64>)>, &'static str);

/// ms per product of every candidate (`None` for one that failed to build or run, or has no
/// launch for the shape), and the clock used.
pub fn time_candidates(dev: &GpuDevice, g: &Gemm, cands: &[Candidate]) -> Result<Timings> {
    dev.flush()?;
    let timing_was = dev.dispatch_timing_on.replace(false);
    let out = time_all(dev, g, cands);
    dev.dispatch_timing_on.set(timing_was);
    // The scratch operands die with `time_all`; their bind groups must not keep them alive.
    dev.clear_bind_groups();
    out
}

fn time_all(dev: &GpuDevice, g: &Gemm, cands: &[Candidate]) -> Result<Timings> {
    let ops = Operands::new(dev, g)?;
    let clock = match dev.ctx.has_timestamps() {
        true => Clock::Gpu(Timestamps::new(&dev.ctx.device, "autotune timestamp", 2)),
        false => Clock::Wall,
    };
    let mut times = Vec::with_capacity(cands.len());
    for &c in cands {
        let t = match time_one(dev, &clock, c, g, &ops) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("autotune: {} on {g:?} failed: {e}", c.name());
                None
            }
        };
        times.push((c, t));
    }
    Ok((times, clock.name()))
}

/// [`time_candidates`] for an f16 product: scratch half operands (words of 0.5f32, finite
/// halves), each candidate through [`matmul_half`] with its kernel.
pub fn time_half_candidates(dev: &GpuDevice, g: &Gemm, cands: &[Candidate]) -> Result<Timings> {
    dev.flush()?;
    let timing_was = dev.dispatch_timing_on.replace(false);
    let out = time_all_half(dev, g, cands);
    dev.dispatch_timing_on.set(timing_was);
    dev.clear_bind_groups();
    out
}

fn time_all_half(dev: &GpuDevice, g: &Gemm, cands: &[Candidate]) -> Result<Timings> {
    let (la, lb, lc) = gemm_lens(g);
    let a = dev.alloc("autotune f16 a", half_words(la))?;
    let b = dev.alloc("autotune f16 b", half_words(lb))?;
    let c = dev.alloc("autotune f16 c", lc)?;
    fill(dev, half_words(la), 0.5, &a)?;
    fill(dev, half_words(lb), 0.5, &b)?;
    let clock = match dev.ctx.has_timestamps() {
        true => Clock::Gpu(Timestamps::new(&dev.ctx.device, "autotune timestamp", 2)),
        false => Clock::Wall,
    };
    let mut times = Vec::with_capacity(cands.len());
    for &cand in cands {
        let Some(kernel) = super::half_kernel_of(cand) else {
            times.push((cand, None));
            continue;
        };
        let run = || matmul_half(dev, kernel, g, &a, la, &b, lb, &c);
        let t = match time_run(dev, &clock, &run) {
            Ok(t) => Some(t),
            Err(e) => {
                log::warn!("autotune: {} on {g:?} failed: {e}", cand.name());
                None
            }
        };
        times.push((cand, t));
    }
    Ok((times, clock.name()))
}

/// Median ms per product of `c`, after a warm-up run.
fn time_one(
    dev: &GpuDevice,
    clock: &Clock,
    c: Candidate,
    g: &Gemm,
    ops: &Operands,
) -> Result<Option<f64>> {
    let Some(launch) = c.launch(g) else { return Ok(None) };
    let run = || record(dev, &launch, g, &ops.a, &ops.b, &ops.c);
    time_run(dev, clock, &run).map(Some)
}

/// Median ms per call of `run` (which records one product), after a warm-up call.
fn time_run(dev: &GpuDevice, clock: &Clock, run: &dyn Fn() -> Result<()>) -> Result<f64> {
    run()?;
    dev.flush()?;
    dev.wait()?;
    let once = measure(dev, clock, 1, run)?;
    let reps = match once > 0.0 {
        true => ((SAMPLE_MS / once).ceil() as usize).clamp(1, MAX_REPS),
        false => MAX_REPS,
    };
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        samples.push(measure(dev, clock, reps, run)?);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[SAMPLES / 2])
}

/// ms per product over `reps` back-to-back products.
fn measure(dev: &GpuDevice, clock: &Clock, reps: usize, run: &dyn Fn() -> Result<()>) -> Result<f64> {
    match clock {
        Clock::Gpu(ts) => {
            dev.with_encoder(|enc| enc.write_timestamp(&ts.query_set, 0));
            for _ in 0..reps {
                run()?;
            }
            dev.with_encoder(|enc| enc.write_timestamp(&ts.query_set, 1));
            let ticks = dev.read_ticks(ts, 2)?;
            let period = dev.ctx.queue.get_timestamp_period() as f64;
            let (t0, t1) = (ticks.first().copied().unwrap_or(0), ticks.get(1).copied().unwrap_or(0));
            let ns = t1.saturating_sub(t0) as f64 * period;
            Ok(ns / 1e6 / reps as f64)
        }
        Clock::Wall => {
            dev.flush()?;
            dev.wait()?;
            let t0 = Instant::now();
            for _ in 0..reps {
                run()?;
            }
            dev.flush()?;
            dev.wait()?;
            Ok(t0.elapsed().as_secs_f64() * 1e3 / reps as f64)
        }
    }
}

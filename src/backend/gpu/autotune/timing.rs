//! Timing the candidates of one product shape on the device: scratch operands, a warm-up run
//! per candidate (pipeline creation), then samples of a few back-to-back products between two
//! GPU timestamps (`TIMESTAMP_QUERY_INSIDE_ENCODERS`), or by the wall clock around submit and
//! wait where the adapter has no timestamps. Each candidate's product is then checked against
//! an exact host reference ([`super::verify`]). Runs alone: recorded work is submitted first
//! and the profiler's per-dispatch timing is paused.

use std::time::Instant;

use super::verify::{read_rows, upload_pattern, Mismatch, Reference, SALTS};
use super::Candidate;
use crate::backend::gpu::elementwise::fill;
use crate::backend::gpu::matmul::record;
use crate::backend::gpu::matmul_f16::matmul_half;
use crate::backend::gpu::timestamps::Timestamps;
use crate::backend::gpu::{GpuDevice, RawBuf};
use crate::backend::{gemm_lens, Gemm, Result};

/// Aim for about this much device time per sample.
const SAMPLE_MS: f64 = 5.0;
/// Most products per sample.
const MAX_REPS: usize = 64;
/// Samples per candidate (the median is kept).
const SAMPLES: usize = 3;

/// Scratch operands of one shape (A and B: `verify::pattern`, as f32 or as packed halves),
/// C, and the reference rows of their product.
struct Operands {
    a: RawBuf,
    b: RawBuf,
    c: RawBuf,
    reference: Reference,
}

impl Operands {
    fn new(dev: &GpuDevice, g: &Gemm, half: bool) -> Result<Self> {
        let (la, lb, lc) = gemm_lens(g);
        // Every operand's size against the device's limits first: a product past them is
        // refused at once, before any upload or the reference's host work.
        let words = |len: usize| if half { len.div_ceil(2) } else { len };
        for (what, len) in [("autotune a", words(la)), ("autotune b", words(lb)), ("autotune c", lc)] {
            dev.ctx.check_buffer_size(what, (len as u64).saturating_mul(4))?;
        }
        let c = dev.alloc("autotune c", lc)?;
        let a = upload_pattern(dev, "autotune a", la, SALTS.0, half)?;
        let b = upload_pattern(dev, "autotune b", lb, SALTS.1, half)?;
        let reference = Reference::of_pattern(&checked(g), SALTS);
        Ok(Operands { a, b, c, reference })
    }

    /// Zero C, record the product [`checked`] of `g` once with `run`, and compare the rows
    /// read back with the reference: `None` when they agree.
    fn check(
        &self,
        dev: &GpuDevice,
        g: &Gemm,
        run: &dyn Fn(&Gemm) -> Result<()>,
    ) -> Result<Option<Mismatch>> {
        fill(dev, self.c.len(), 0.0, &self.c)?;
        run(&checked(g))?;
        let got = read_rows(dev, &self.c, &self.reference.rows, g.n)?;
        Ok(self.reference.check(&got))
    }
}

/// The product a candidate is checked on: `g`'s shape and launch with `alpha = 1`, `beta = 0`,
/// so that every correct kernel computes it exactly (`verify`), split-k's partials included.
fn checked(g: &Gemm) -> Gemm {
    g.scaled(1.0, 0.0)
}

/// The clock of one measurement.
enum Clock {
    Gpu(Timestamps),
    Wall,
}

impl Clock {
    fn of(dev: &GpuDevice) -> Clock {
        match dev.ctx.has_timestamps() {
            true => Clock::Gpu(Timestamps::new(&dev.ctx.device, "autotune timestamp", 2)),
            false => Clock::Wall,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Clock::Gpu(_) => "gpu_timestamps",
            Clock::Wall => "wall_clock",
        }
    }
}

/// What timing the candidates of one product found.
pub struct Timings {
    /// ms per product of each candidate, in the order given (`None`: it failed to build or
    /// run, or has no launch for the shape).
    pub times: Vec<(Candidate, Option<f64>)>,
    /// The timed candidates whose product disagreed with the reference, and where.
    pub wrong: Vec<(Candidate, Mismatch)>,
    /// The clock used.
    pub method: &'static str,
}

/// Records one product of a candidate: the timed shape, or the checked one ([`checked`]).
type RunProduct<'a> = dyn Fn(&Gemm) -> Result<()> + 'a;

/// Time and check every candidate of the f32 product `g`.
pub fn time_candidates(dev: &GpuDevice, g: &Gemm, cands: &[Candidate]) -> Result<Timings> {
    alone(dev, || time_all(dev, g, cands, false))
}

/// [`time_candidates`] for an f16 product: packed-half operands, each candidate through
/// [`matmul_half`] with its kernel.
pub fn time_half_candidates(dev: &GpuDevice, g: &Gemm, cands: &[Candidate]) -> Result<Timings> {
    alone(dev, || time_all(dev, g, cands, true))
}

/// Run `f` with recorded work submitted first and per-dispatch timing paused.
fn alone(dev: &GpuDevice, f: impl FnOnce() -> Result<Timings>) -> Result<Timings> {
    dev.flush()?;
    let timing_was = dev.dispatch_timing_on.replace(false);
    let out = f();
    dev.dispatch_timing_on.set(timing_was);
    // The scratch operands die with `f`; their bind groups must not keep them alive.
    dev.clear_bind_groups();
    out
}

fn time_all(dev: &GpuDevice, g: &Gemm, cands: &[Candidate], half: bool) -> Result<Timings> {
    let ops = Operands::new(dev, g, half)?;
    let clock = Clock::of(dev);
    let (la, lb, _) = gemm_lens(g);
    let mut times = Vec::with_capacity(cands.len());
    let mut wrong = Vec::new();
    let ops = &ops;
    for &c in cands {
        let launch = if half { None } else { c.launch(g) };
        let kernel = if half { super::half_kernel_of(c) } else { None };
        let run: Box<RunProduct> = match (launch, kernel) {
            (Some(l), _) => Box::new(move |p: &Gemm| record(dev, &l, p, &ops.a, &ops.b, &ops.c)),
            (None, Some(k)) => {
                Box::new(move |p: &Gemm| matmul_half(dev, k, p, &ops.a, la, &ops.b, lb, &ops.c))
            }
            (None, None) => {
                times.push((c, None));
                continue;
            }
        };
        let measured =
            time_run(dev, &clock, &|| run(g)).and_then(|t| Ok((t, ops.check(dev, g, &*run)?)));
        match measured {
            Ok((t, mismatch)) => {
                times.push((c, Some(t)));
                if let Some(m) = mismatch {
                    wrong.push((c, m));
                }
            }
            Err(e) => {
                log::warn!("autotune: {} on {g:?} failed: {e}", c.name());
                times.push((c, None));
            }
        }
    }
    Ok(Timings { times, wrong, method: clock.name() })
}

/// Median ms per call of `run` (which records some work) and the clock's name, timed alone
/// like a candidate (recorded work submitted first, per-dispatch timing paused): the
/// ceilings' clock (`super::super::ceilings`).
pub fn time_recorded(dev: &GpuDevice, run: &dyn Fn() -> Result<()>) -> Result<(f64, &'static str)> {
    dev.flush()?;
    let timing_was = dev.dispatch_timing_on.replace(false);
    let clock = Clock::of(dev);
    let out = time_run(dev, &clock, run).map(|ms| (ms, clock.name()));
    dev.dispatch_timing_on.set(timing_was);
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::matmul::{launch_of, MatmulVariant};
    use crate::backend::gpu::matmul_f16::HalfKernel;

    /// The check on the device: the right product agrees in every layout and precision; a
    /// product read with the other transpose of B, or never recorded, is caught.
    #[test]
    fn the_check_catches_a_wrong_product_on_the_device() {
        let be = crate::backend::gpu::matmul::tests::backend();
        let dev = &be.dev;
        for half in [false, true] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                // Square in k and n so that the B of either transpose has the same length.
                // Timed with alpha 0.5; checked at alpha 1 (every correct kernel exact).
                let g = Gemm::nn(130, 48, 48).trans(ta, tb).scaled(0.5, 0.0);
                let wrong = Gemm::nn(130, 48, 48).trans(ta, !tb);
                let ops = Operands::new(dev, &g, half).expect("operands");
                let (la, lb, _) = gemm_lens(&g);
                let run_as = |p: Gemm| -> Result<()> {
                    match half {
                        true => matmul_half(dev, HalfKernel::Packed, &p, &ops.a, la, &ops.b, lb, &ops.c),
                        false => {
                            record(dev, &launch_of(MatmulVariant::Tiled, &p), &p, &ops.a, &ops.b, &ops.c)
                        }
                    }
                };
                let what = format!("half {half}, ({ta}, {tb})");
                assert_eq!(ops.check(dev, &g, &|p: &Gemm| run_as(*p)).expect("check"), None, "{what}");
                let m = ops.check(dev, &g, &|_: &Gemm| run_as(wrong)).expect("check");
                assert!(m.is_some(), "{what}: the other transpose of B");
                let none =
                    ops.check(dev, &g, &|_: &Gemm| Ok(())).expect("check").expect("C left at zero");
                assert_eq!(none.got, 0.0, "{what}");
            }
        }
    }

    /// Uploads in pieces: the elements on both sides of a piece's edge, f32 and packed halves.
    #[test]
    fn a_pattern_upload_crosses_its_pieces_intact() {
        use super::super::verify::pattern_value;
        let be = crate::backend::gpu::matmul::tests::backend();
        let dev = &be.dev;
        let len = (1 << 22) + 5;
        for half in [false, true] {
            let buf = upload_pattern(dev, "pieces", len, 7, half).expect("upload");
            let bytes = dev.read_bytes(&buf).expect("read");
            let words: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
            let at = |e: usize| match half {
                true => f32::from(half::f16::from_bits((words[e / 2] >> (16 * (e % 2))) as u16)),
                false => f32::from_bits(words[e]),
            };
            for e in [0, 1, (1 << 22) - 1, 1 << 22, (1 << 22) + 1, len - 1] {
                assert_eq!(at(e), pattern_value(e as u64, 7), "element {e}, half {half}");
            }
            if half {
                assert_eq!(words[len / 2] >> 16, 0, "the odd tail's high half is zero");
            }
        }
    }
}

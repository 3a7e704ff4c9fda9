//! The last-resort peaks, measured here: the sweep's tiled-matmul probe for FLOP/s and an
//! axpy (`y += a·x`: two reads and a write per element; a plain copy may share storage on the
//! CPU backend) for memory bandwidth.

use std::time::Instant;

use crate::backend::BackendError;
use crate::schedule::sweep::{measure_peak, Timed};

/// Best of five axpys over `n` floats: GB/s counting two reads and a write per element.
pub fn measure_bandwidth<B: Timed>(b: &B, n: usize) -> Result<f64, BackendError> {
    let src = b.upload(&vec![1.0f32; n])?;
    let mut dst = b.zeros(n)?;
    b.axpy(n, 1.0, &src, &mut dst)?; // warm-up
    b.sync()?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = Instant::now();
        b.mark(0);
        b.axpy(n, 1.0, &src, &mut dst)?;
        b.mark(1);
        b.sync()?;
        let wall = t0.elapsed().as_secs_f64();
        let s = match b.read_marks(2)? {
            Some(ns) if ns.len() == 2 && ns[1] > ns[0] => (ns[1] - ns[0]) * 1e-9,
            _ => wall,
        };
        best = best.min(s);
    }
    Ok(12.0 * n as f64 / best / 1e9)
}

/// (GFLOP/s, GB/s, what ran) of the probes.
pub fn measure_peaks<B: Timed>(b: &B) -> Result<(f64, f64, String), BackendError> {
    let (gflops, what) = measure_peak(b)?;
    let n = 4 << 20;
    let gbps = measure_bandwidth(b, n)?;
    Ok((gflops, gbps, format!("{what}; axpy over 2 × {} MiB", (4 * n) >> 20)))
}

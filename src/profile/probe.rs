//! The last-resort peaks, measured here: the sweep's tiled-matmul probe for FLOP/s and an
//! axpy (`y += a·x`: two reads and a write per element; a plain copy may share storage on the
//! CPU backend) for memory bandwidth.

use std::time::Instant;

use super::hooks::Profilable;
use super::peaks::{Peak, PeakSource, Peaks, Probed};
use crate::backend::BackendError;
use crate::model::Precision;
use crate::schedule::sweep::{measure_peak, measure_peak_f16, Timed};

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

/// GFLOP/s and GB/s of the probes, each with what ran for it.
pub fn measure_peaks<B: Timed>(b: &B) -> Result<Probed, BackendError> {
    let (gflops, gflops_probe) = measure_peak(b)?;
    let n = 4 << 20;
    let gbps = measure_bandwidth(b, n)?;
    Ok(Probed {
        gflops, gflops_probe, gbps, gbps_probe: format!("axpy over 2 × {} MiB", (4 * n) >> 20)
    })
}

/// Which FLOP/s roof a profile in some precision divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoofKind {
    /// The fp32 peak (NVML, the adapter table, the config or the fp32 probe).
    Fp32,
    /// The f16 tensor-core peak of the adapter table, where the cooperative kernel runs.
    F16Tensor,
    /// The f16 product probe (packed f16 operands, f32 sums), measured here.
    F16Probe,
    /// `sweep.peak_gflops` of the config, taken as given.
    Config,
}

impl RoofKind {
    pub fn name(self) -> &'static str {
        match self {
            RoofKind::Fp32 => "fp32",
            RoofKind::F16Tensor => "f16_tensor",
            RoofKind::F16Probe => "f16_probe",
            RoofKind::Config => "config",
        }
    }
}

/// The peaks a profile in `precision` is measured against: `peaks` (fp32) for f32; for f16 the
/// FLOP/s roof the sweep uses ([`super::sweep_util::tensor_peak`] where the cooperative kernel
/// runs, else the f16 product probe), unless the config set `sweep.peak_gflops`. Bandwidth
/// stays `peaks.gbps`.
pub fn precision_peaks<B: Profilable>(
    b: &B,
    precision: Precision,
    peaks: Peaks,
) -> Result<(Peaks, RoofKind), BackendError> {
    let is_config = matches!(peaks.gflops.source, PeakSource::Config(_));
    match precision {
        Precision::F32 if is_config => Ok((peaks, RoofKind::Config)),
        Precision::F32 => Ok((peaks, RoofKind::Fp32)),
        Precision::F16 if is_config => Ok((peaks, RoofKind::Config)),
        Precision::F16 => {
            let (gflops, kind) = match super::sweep_util::tensor_peak(b, precision) {
                Some((value, what)) => {
                    (Peak { value, source: PeakSource::F16Tensor(what) }, RoofKind::F16Tensor)
                }
                None => {
                    let (value, what) = measure_peak_f16(b)?;
                    (Peak { value, source: PeakSource::Measured(what) }, RoofKind::F16Probe)
                }
            };
            Ok((Peaks { gflops, ..peaks }, kind))
        }
    }
}

//! Sampling a [`Telemetry`] source in a background thread while a batch size's timed steps
//! run, and summarising the window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::{Telemetry, UtilSample};

/// Time between readings (NVML's utilization counter itself averages over 1/6 s to 1 s).
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(20);

/// A window whose mean SM clock is below this fraction of the device's maximum was measured
/// throttled. The H200 dropped from 1980 to 465-1020 MHz for about 2 s at 100-127 W in a sweep
/// on 2026-12-04, and the batch sizes timed then ran 3-4x slow.
pub const THROTTLED_BELOW: f64 = 0.9;

/// What the device did during one window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct UtilSummary {
    pub samples: usize,
    /// Mean GPU utilization, percent.
    pub gpu_util_pct: f64,
    /// Mean SM clock, MHz.
    pub sm_clock_mhz: f64,
    /// Mean board power, W.
    pub power_w: f64,
    /// Most device memory this process used, MiB (NaN when the driver does not say).
    pub mem_used_mib: f64,
    /// The device's unthrottled SM clock, MHz (NaN when the source does not say).
    pub max_sm_clock_mhz: f64,
}

impl UtilSummary {
    /// The mean (maximum for memory) of the readings, `None` without readings.
    pub fn of(samples: &[UtilSample]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let n = samples.len() as f64;
        let mean = |f: fn(&UtilSample) -> f64| samples.iter().map(f).sum::<f64>() / n;
        let mem = samples.iter().filter_map(|s| s.process_mem_bytes).max();
        Some(UtilSummary {
            samples: samples.len(),
            gpu_util_pct: mean(|s| s.gpu_util_pct),
            sm_clock_mhz: mean(|s| s.sm_clock_mhz),
            power_w: mean(|s| s.power_w),
            mem_used_mib: mem.map_or(f64::NAN, |b| b as f64 / 1048576.0),
            max_sm_clock_mhz: f64::NAN,
        })
    }

    /// The window's mean SM clock over the device's maximum, where both are known.
    pub fn clock_fraction(&self) -> Option<f64> {
        let f = self.sm_clock_mhz / self.max_sm_clock_mhz;
        (f.is_finite() && self.max_sm_clock_mhz > 0.0).then_some(f)
    }

    /// Whether the window ran below [`THROTTLED_BELOW`] of the maximum SM clock.
    pub fn throttled(&self) -> bool {
        self.clock_fraction().is_some_and(|f| f < THROTTLED_BELOW)
    }
}

/// A telemetry source, sampled in windows; without one every window says `None`.
pub struct UtilMonitor {
    source: Option<Box<dyn Telemetry>>,
    running: Option<Window>,
    /// The source's unthrottled SM clock, MHz, read once.
    max_sm_clock_mhz: Option<f64>,
}

struct Window {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Box<dyn Telemetry>, Vec<UtilSample>)>,
}

impl UtilMonitor {
    pub fn new(source: Option<Box<dyn Telemetry>>) -> Self {
        let max_sm_clock_mhz = source.as_ref().and_then(|s| s.max_sm_clock_mhz());
        UtilMonitor { source, running: None, max_sm_clock_mhz }
    }

    pub fn is_available(&self) -> bool {
        self.source.is_some() || self.running.is_some()
    }

    /// Start sampling (a no-op without a source or while a window is open).
    pub fn begin(&mut self) {
        let Some(mut source) = self.source.take() else { return };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples.extend(source.sample());
                std::thread::sleep(SAMPLE_PERIOD);
            }
            // One reading at the end, so even a window shorter than the period has one.
            samples.extend(source.sample());
            (source, samples)
        });
        self.running = Some(Window { stop, handle });
    }

    /// Stop sampling and summarise the window (`None` without a source or readings).
    pub fn end(&mut self) -> Option<UtilSummary> {
        let w = self.running.take()?;
        w.stop.store(true, Ordering::Relaxed);
        let (source, samples) = w.handle.join().ok()?;
        self.source = Some(source);
        let mut summary = UtilSummary::of(&samples)?;
        summary.max_sm_clock_mhz = self.max_sm_clock_mhz.unwrap_or(f64::NAN);
        Some(summary)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::telemetry::NvmlPeaks;

    struct Fixed(u32);
    impl Telemetry for Fixed {
        fn name(&self) -> String {
            "fixed".into()
        }
        fn peaks(&self) -> Option<NvmlPeaks> {
            None
        }
        fn sample(&mut self) -> Option<UtilSample> {
            self.0 += 1;
            Some(UtilSample {
                gpu_util_pct: 50.0,
                sm_clock_mhz: 1500.0,
                power_w: 100.0,
                process_mem_bytes: Some(self.0 as u64 * 1048576),
            })
        }
    }

    #[test]
    fn windows_summarise_their_samples() {
        let mut m = UtilMonitor::new(Some(Box::new(Fixed(0))));
        m.begin();
        let s = m.end().unwrap();
        assert!(s.samples >= 1);
        assert_eq!((s.gpu_util_pct, s.sm_clock_mhz, s.power_w), (50.0, 1500.0, 100.0));
        assert_eq!(s.mem_used_mib, s.samples as f64);
        // The source comes back for the next window.
        m.begin();
        assert!(m.end().unwrap().mem_used_mib > s.mem_used_mib);
    }

    /// Readings at a fixed SM clock, MHz, of a device whose maximum is 2000 MHz.
    pub(crate) struct Clocks(pub f64);
    impl Telemetry for Clocks {
        fn name(&self) -> String {
            "clocks".into()
        }
        fn peaks(&self) -> Option<NvmlPeaks> {
            None
        }
        fn sample(&mut self) -> Option<UtilSample> {
            Some(UtilSample { sm_clock_mhz: self.0, ..UtilSample::default() })
        }
        fn max_sm_clock_mhz(&self) -> Option<f64> {
            Some(2000.0)
        }
    }

    #[test]
    fn a_window_below_nine_tenths_of_the_clock_is_throttled() {
        let mut m = UtilMonitor::new(Some(Box::new(Clocks(500.0))));
        m.begin();
        let s = m.end().unwrap();
        assert_eq!((s.max_sm_clock_mhz, s.clock_fraction()), (2000.0, Some(0.25)));
        assert!(s.throttled());
        let mut m = UtilMonitor::new(Some(Box::new(Clocks(1900.0))));
        m.begin();
        assert!(!m.end().unwrap().throttled());
        // A source that does not know its maximum never calls a window throttled.
        let mut m = UtilMonitor::new(Some(Box::new(Fixed(0))));
        m.begin();
        let s = m.end().unwrap();
        assert_eq!(s.clock_fraction(), None);
        assert!(!s.throttled());
    }

    #[test]
    fn without_a_source_every_window_is_none() {
        let mut m = UtilMonitor::new(None);
        assert!(!m.is_available());
        m.begin();
        assert_eq!(m.end(), None);
        assert_eq!(UtilSummary::of(&[]), None);
    }
}

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
        })
    }
}

/// A telemetry source, sampled in windows; without one every window says `None`.
pub struct UtilMonitor {
    source: Option<Box<dyn Telemetry>>,
    running: Option<Window>,
}

struct Window {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Box<dyn Telemetry>, Vec<UtilSample>)>,
}

impl UtilMonitor {
    pub fn new(source: Option<Box<dyn Telemetry>>) -> Self {
        UtilMonitor { source, running: None }
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
        UtilSummary::of(&samples)
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn without_a_source_every_window_is_none() {
        let mut m = UtilMonitor::new(None);
        assert!(!m.is_available());
        m.begin();
        assert_eq!(m.end(), None);
        assert_eq!(UtilSummary::of(&[]), None);
    }
}

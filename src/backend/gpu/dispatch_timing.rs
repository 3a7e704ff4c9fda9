//! Per-dispatch GPU timing for the profiler: while timing is on, every dispatch opens its own
//! compute pass (see `GpuDevice::dispatch`; a plain step shares one pass between dispatches),
//! so the pass's beginning and end timestamps (`Features::TIMESTAMP_QUERY`) time exactly that
//! dispatch. Each dispatch carries the tag the
//! profiler set before the op that recorded it. Off unless [`GpuDevice::begin_dispatch_timing`]
//! was called, so the normal step records no queries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::device::GpuDevice;
use super::timestamps::Timestamps;
use crate::backend::{BackendError, Result};

/// Timestamps one query set holds (wgpu's maximum query set size): 2 per dispatch.
const QUERIES: u32 = 4096;

/// What the device has done since it was opened (the profiler reports per-step differences).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) dispatches: AtomicU64,
    pub(crate) passes: AtomicU64,
    pub(crate) bytes_uploaded: AtomicU64,
    pub(crate) bytes_read_back: AtomicU64,
    pub(crate) waits: AtomicU64,
}

/// A snapshot of the device's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DeviceCounters {
    pub dispatches: u64,
    /// Compute passes begun (a plain step shares one pass between its dispatches).
    pub passes: u64,
    pub submits: u64,
    /// Host → device bytes (buffer writes and the per-submit parameter arena).
    pub bytes_uploaded: u64,
    /// Device → host bytes (readbacks, timestamps included).
    pub bytes_read_back: u64,
    /// Times the host waited for the device to go idle ([`GpuDevice::wait`]: a sync).
    pub waits: u64,
}

/// How long one dispatch ran on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchTime {
    /// The tag set by [`GpuDevice::set_dispatch_tag`] when the dispatch was recorded.
    pub tag: u32,
    /// The kernel (`Kernel::name`).
    pub kernel: &'static str,
    /// GPU time from the beginning to the end of the dispatch's pass, ns.
    pub ns: f64,
}

/// The query set and the dispatches recorded since timing began.
pub(crate) struct DispatchTiming {
    queries: Timestamps,
    tag: u32,
    /// (tag, kernel) of each timed dispatch; dispatch `i` wrote queries `2i` and `2i + 1`.
    recorded: Vec<(u32, &'static str)>,
    /// Dispatches recorded after the query set was full (not timed).
    dropped: u64,
}

impl DispatchTiming {
    fn new(device: &wgpu::Device) -> Self {
        DispatchTiming {
            queries: Timestamps::new(device, "dispatch timestamp", QUERIES),
            tag: 0,
            recorded: Vec::new(),
            dropped: 0,
        }
    }

    /// The query set and first query index for the next dispatch, or `None` when full.
    pub(crate) fn next(&mut self, kernel: &'static str) -> Option<(Arc<wgpu::QuerySet>, u32)> {
        let i = self.recorded.len() as u32;
        if 2 * i + 2 > QUERIES {
            self.dropped += 1;
            return None;
        }
        self.recorded.push((self.tag, kernel));
        Some((self.queries.query_set.clone(), 2 * i))
    }
}

impl GpuDevice {
    /// Dispatches, submits and bytes moved between host and device so far.
    pub fn counters(&self) -> DeviceCounters {
        DeviceCounters {
            dispatches: self.counters.dispatches.load(Ordering::Relaxed),
            passes: self.counters.passes.load(Ordering::Relaxed),
            submits: self.submit_count(),
            bytes_uploaded: self.counters.bytes_uploaded.load(Ordering::Relaxed),
            bytes_read_back: self.counters.bytes_read_back.load(Ordering::Relaxed),
            waits: self.counters.waits.load(Ordering::Relaxed),
        }
    }

    /// Start timing every dispatch (needs `TIMESTAMP_QUERY`); clears earlier records.
    pub fn begin_dispatch_timing(&self) -> Result<()> {
        if !self.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(BackendError::Invalid {
                op: "begin_dispatch_timing",
                message: "the adapter has no TIMESTAMP_QUERY".into(),
            });
        }
        let mut t = self.dispatch_timing.borrow_mut();
        let t = t.get_or_insert_with(|| DispatchTiming::new(&self.ctx.device));
        t.recorded.clear();
        t.dropped = 0;
        t.tag = 0;
        self.dispatch_timing_on.set(true);
        Ok(())
    }

    /// Tag the dispatches recorded from now on (the profiler's op index).
    pub fn set_dispatch_tag(&self, tag: u32) {
        if let Some(t) = self.dispatch_timing.borrow_mut().as_mut() {
            t.tag = tag;
        }
    }

    /// Stop timing; submit, wait, and return the time of every dispatch recorded since
    /// [`GpuDevice::begin_dispatch_timing`] (in recording order) and how many went untimed.
    pub fn end_dispatch_timing(&self) -> Result<(Vec<DispatchTime>, u64)> {
        self.dispatch_timing_on.set(false);
        let (recorded, dropped) = {
            let t = self.dispatch_timing.borrow();
            match t.as_ref() {
                Some(t) => (t.recorded.clone(), t.dropped),
                None => return Ok((Vec::new(), 0)),
            }
        };
        if recorded.is_empty() {
            return Ok((Vec::new(), dropped));
        }
        let count = 2 * recorded.len() as u32;
        let ticks = {
            let t = self.dispatch_timing.borrow();
            match t.as_ref() {
                Some(t) => self.read_ticks(&t.queries, count)?,
                None => return Ok((Vec::new(), dropped)),
            }
        };
        let period = self.ctx.queue.get_timestamp_period() as f64;
        let times = recorded
            .iter()
            .enumerate()
            .map(|(i, &(tag, kernel))| {
                let (t0, t1) = (ticks[2 * i], ticks[2 * i + 1]);
                DispatchTime { tag, kernel, ns: t1.saturating_sub(t0) as f64 * period }
            })
            .collect();
        Ok((times, dropped))
    }
}

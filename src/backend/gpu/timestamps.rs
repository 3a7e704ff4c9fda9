//! GPU timestamps around recorded work (when the adapter supports them): slots written into the
//! command stream, resolved and read back in nanoseconds.

use std::sync::Arc;

use super::device::GpuDevice;
use crate::backend::Result;

/// A timestamp query set of `capacity` slots with its resolve and readback buffers: the
/// device's own slots ([`GpuDevice::timestamp`]) and the profiler's per-dispatch ones.
pub struct Timestamps {
    pub(super) query_set: Arc<wgpu::QuerySet>,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    pub(super) capacity: u32,
}

impl Timestamps {
    /// `capacity` slots; the query set is labelled `"{label}s"`, its buffers
    /// `"{label} resolve"` and `"{label} readback"`.
    pub(super) fn new(device: &wgpu::Device, label: &str, capacity: u32) -> Self {
        Timestamps {
            query_set: Arc::new(device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some(&format!("{label}s")),
                ty: wgpu::QueryType::Timestamp,
                count: capacity,
            })),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{label} resolve")),
                size: capacity as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("{label} readback")),
                size: capacity as u64 * 8,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            capacity,
        }
    }
}

impl GpuDevice {
    /// Whether [`GpuDevice::timestamp`] records real GPU timestamps.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps.is_some()
    }

    /// Record a GPU timestamp into slot `index` (ignored without timestamp support).
    pub fn timestamp(&self, index: u32) {
        if let Some(ts) = &self.timestamps {
            if index < ts.capacity {
                self.with_encoder(|enc| enc.write_timestamp(&ts.query_set, index));
            }
        }
    }

    /// Resolve slots `0..count` and return them in nanoseconds (submits and waits).
    pub fn read_timestamps_ns(&self, count: u32) -> Result<Option<Vec<f64>>> {
        let Some(ts) = &self.timestamps else { return Ok(None) };
        let count = count.min(ts.capacity);
        if count == 0 {
            return Ok(Some(Vec::new()));
        }
        let ticks = self.read_ticks(ts, count)?;
        let period = self.ctx.queue.get_timestamp_period() as f64;
        Ok(Some(ticks.iter().map(|&t| t as f64 * period).collect()))
    }

    /// Resolve queries `0..count` of `ts` and read them back as raw ticks (submits and waits).
    pub(super) fn read_ticks(&self, ts: &Timestamps, count: u32) -> Result<Vec<u64>> {
        self.with_encoder(|enc| {
            enc.resolve_query_set(&ts.query_set, 0..count, &ts.resolve, 0);
            enc.copy_buffer_to_buffer(&ts.resolve, 0, &ts.readback, 0, count as u64 * 8);
        });
        self.flush()?;
        let bytes = self.map_read(&ts.readback, count as u64 * 8)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
}

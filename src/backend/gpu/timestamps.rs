//! GPU timestamps around recorded work (when the adapter supports them): slots written into the
//! command stream, resolved and read back in nanoseconds.

use super::device::GpuDevice;
use crate::backend::Result;

/// GPU timestamps around recorded work (when the adapter supports them).
pub struct Timestamps {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    capacity: u32,
}

impl Timestamps {
    /// A query set of `capacity` timestamp slots with its resolve and readback buffers.
    pub(super) fn new(device: &wgpu::Device, capacity: u32) -> Self {
        Timestamps {
            query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: capacity,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: capacity as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
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
        self.with_encoder(|enc| {
            enc.resolve_query_set(&ts.query_set, 0..count, &ts.resolve, 0);
            enc.copy_buffer_to_buffer(&ts.resolve, 0, &ts.readback, 0, count as u64 * 8);
        });
        self.flush()?;
        let bytes = self.map_read(&ts.readback, count as u64 * 8)?;
        let period = self.ctx.queue.get_timestamp_period() as f64;
        let ns = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut t = [0u8; 8];
                t.copy_from_slice(c);
                u64::from_le_bytes(t) as f64 * period
            })
            .collect();
        Ok(Some(ns))
    }
}

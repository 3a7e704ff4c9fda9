//! The bind-group cache's graveyard: a [`TrackedBuffer`] posts its id and bytes when its last
//! `RawBuf` goes, and the device forgets the cached bind groups that name dropped buffers (they
//! hold the buffers' memory) once enough have piled up.

use std::sync::Arc;

/// Bytes of dropped buffers that cached bind groups may still hold before the cache forgets
/// those bind groups (and the memory goes back): a run that makes and drops datasets or batches
/// (time-to-target's runs, curvature's random batches) held every one until 8192 bind groups
/// had piled up, 1.2 GB on lavapipe.
pub(super) const DEAD_BYTES_MAX: u64 = 64 << 20;

/// Dropped buffers past which the cache is swept whatever their bytes (a sweep is one pass over
/// the cache, so many small drops are batched too).
pub(super) const DEAD_BUFFERS_MAX: usize = 4096;

/// Ids of buffers whose last `RawBuf` is gone, and their bytes, for the bind-group cache to
/// forget.
#[derive(Debug, Default)]
pub(super) struct Yard {
    pub(super) ids: Vec<u64>,
    pub(super) bytes: u64,
}

pub(super) type Graveyard = Arc<std::sync::Mutex<Yard>>;

/// A wgpu buffer that posts its id and size to its device's graveyard when its last
/// `RawBuf` goes: cached bind groups naming it are dropped at the next lookup past
/// [`DEAD_BYTES_MAX`] (or [`DEAD_BUFFERS_MAX`]), and its memory with them.
#[derive(Debug)]
pub(crate) struct TrackedBuffer {
    pub(super) buffer: wgpu::Buffer,
    pub(super) id: u64,
    pub(super) graveyard: Graveyard,
}

impl std::ops::Deref for TrackedBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for TrackedBuffer {
    fn drop(&mut self) {
        if let Ok(mut yard) = self.graveyard.lock() {
            yard.ids.push(self.id);
            yard.bytes = yard.bytes.saturating_add(self.buffer.size());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::Backend;

    /// Bind groups of dropped buffers leave the cache once the dropped bytes pass
    /// [`DEAD_BYTES_MAX`] (and the memory goes with them); those of live buffers stay.
    #[test]
    fn dropped_buffers_leave_the_bind_group_cache() {
        let be = crate::backend::gpu::matmul::tests::backend();
        be.dev.clear_bind_groups();
        let live = be.upload(&[1.0; 16]).expect("live");
        let mut out = be.zeros(1).expect("out");
        be.sum(16, &live, &mut out, 0).expect("sum");
        let with_live = be.dev.cached_bind_groups();
        // 24 MiB buffers, each used once and dropped: past 64 MiB of them the cache is swept.
        let n = 6 << 20;
        for _ in 0..6 {
            let big = be.zeros(n).expect("big");
            be.sum(n, &big, &mut out, 0).expect("sum");
            be.read(&out).expect("read");
        }
        let after = be.dev.cached_bind_groups();
        assert!(
            after <= with_live + 4,
            "{after} bind groups cached after the drops ({with_live} before)"
        );
        be.sum(16, &live, &mut out, 0).expect("sum");
        assert_eq!(be.read(&out).expect("read")[0], 16.0);
    }
}

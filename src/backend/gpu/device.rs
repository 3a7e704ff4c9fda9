//! `GpuDevice`: buffers, bind groups, and the command recorder (pipelines: [`super::pipelines`]).
//!
//! Ops are recorded into one command encoder; each dispatch's parameter block is appended to a
//! host-side arena that is uploaded once per submit and bound with a dynamic offset, so a whole
//! training step is one `queue.submit` with one parameter upload. Consecutive dispatches share
//! one open compute pass (wgpu tracks storage-buffer hazards per dispatch and puts a barrier
//! between two dispatches only where one writes what the other touches); the pass is ended
//! only by encoder-level work (copies, timestamps, query resolves) or the submit. While the
//! profiler times dispatches, each timed dispatch gets its own pass with begin/end timestamps.
//! Bind groups are cached by (kernel, buffer ids).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytemuck::Pod;

use super::context::GpuContext;
use super::dispatch_timing::{Counters, DispatchTiming};
use super::graveyard::{Graveyard, TrackedBuffer, Yard, DEAD_BUFFERS_MAX, DEAD_BYTES_MAX};
use super::kernels::{Kernel, PARAM_SLOT};
use super::pipelines::{shader_checks_from_env, Pipeline, PipelineCache};
use super::timestamps::Timestamps;
use crate::backend::{BackendError, Result};

/// Parameter slots per submit; a longer recording is submitted in pieces.
const ARENA_SLOTS: u64 = 4096;
/// Bind groups kept before the cache is cleared (they keep their buffers alive).
const BIND_GROUP_CACHE_MAX: usize = 8192;

static NEXT_BUFFER_ID: AtomicU64 = AtomicU64::new(1);

/// A cached bind group: kernel name, pipeline specialisation, buffer ids.
type BindGroupKey = (&'static str, u32, Vec<u64>);

/// A storage buffer with its element count. Cloning shares the same GPU memory.
#[derive(Clone, Debug)]
pub struct RawBuf {
    pub(crate) buffer: Arc<TrackedBuffer>,
    pub(crate) id: u64,
    pub(crate) len: usize,
}

impl RawBuf {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn bytes(&self) -> u64 {
        self.buffer.size()
    }
}

#[derive(Default)]
struct Recorder {
    /// The open compute pass on `encoder` (declared first: it must end before the encoder
    /// is finished or used for anything else).
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    /// Parameter blocks of the dispatches recorded since the last submit, `PARAM_SLOT` each.
    params: Vec<u8>,
    dispatches: u64,
}

pub struct GpuDevice {
    pub ctx: GpuContext,
    arena: wgpu::Buffer,
    pub(super) pipelines: PipelineCache,
    bind_groups: RefCell<HashMap<BindGroupKey, wgpu::BindGroup>>,
    graveyard: Graveyard,
    rec: RefCell<Recorder>,
    pub(super) timestamps: Option<Timestamps>,
    submits: AtomicU64,
    /// Per-workgroup partial sums of the two-pass reductions.
    scratch: RefCell<Option<RawBuf>>,
    /// Split-k matmul partial products.
    splitk_scratch: RefCell<Option<RawBuf>>,
    epilogue_placeholder: RefCell<Option<RawBuf>>,
    second_placeholder: RefCell<Option<RawBuf>>,
    /// Per-dispatch pass timestamps for the profiler (see `dispatch_timing`), when on.
    pub(super) dispatch_timing: RefCell<Option<DispatchTiming>>,
    pub(super) dispatch_timing_on: Cell<bool>,
    pub(super) counters: Counters,
}

impl GpuDevice {
    pub fn new(ctx: GpuContext) -> Result<Self> {
        let arena = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("param arena"),
            size: ARENA_SLOTS * PARAM_SLOT,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let timestamps = ctx.has_timestamps().then(|| Timestamps::new(&ctx.device, "timestamp", 64));
        Ok(GpuDevice {
            ctx,
            arena,
            pipelines: PipelineCache::new(shader_checks_from_env()),
            bind_groups: RefCell::default(),
            graveyard: Graveyard::default(),
            rec: RefCell::default(),
            timestamps,
            submits: AtomicU64::new(0),
            scratch: RefCell::new(None),
            splitk_scratch: RefCell::new(None),
            epilogue_placeholder: RefCell::new(None),
            second_placeholder: RefCell::new(None),
            dispatch_timing: RefCell::new(None),
            dispatch_timing_on: Cell::new(false),
            counters: Counters::default(),
        })
    }

    /// Number of `queue.submit` calls so far (tests check one submit per training step).
    pub fn submit_count(&self) -> u64 {
        self.submits.load(Ordering::Relaxed)
    }

    // ---- buffers --------------------------------------------------------------------------

    /// A zeroed storage buffer of `len` 4-byte elements.
    pub fn alloc(&self, what: &str, len: usize) -> Result<RawBuf> {
        // A length whose bytes overflow is larger than any limit (refused just below).
        let bytes = (len.max(1) as u64)
            .checked_mul(4)
            .and_then(|b| b.checked_next_multiple_of(16))
            .unwrap_or(u64::MAX);
        self.ctx.check_buffer_size(what, bytes)?;
        let scope = self.ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            log::warn!("allocation of {what} failed: {e}");
            return Err(BackendError::OutOfMemory { what: what.to_string(), bytes });
        }
        let id = NEXT_BUFFER_ID.fetch_add(1, Ordering::Relaxed);
        let tracked = TrackedBuffer { buffer, id, graveyard: self.graveyard.clone() };
        Ok(RawBuf { buffer: Arc::new(tracked), id, len })
    }

    /// The reduction scratch buffer of at least `len` elements (made once, grown rarely).
    pub fn scratch(&self, len: usize) -> Result<RawBuf> {
        self.cached(&self.scratch, "reduction scratch", len)
    }

    /// The split-k matmul partials buffer of at least `len` elements (grown as needed).
    pub fn splitk_scratch(&self, len: usize) -> Result<RawBuf> {
        self.cached(&self.splitk_scratch, "split-k scratch", len)
    }

    /// A small buffer (4 elements) bound where a kernel does not use a binding: a matmul's
    /// fused epilogue that writes nothing (`super::matmul::Epilogue`), an unguarded pair
    /// update's scaler state (`super::update`).
    pub fn epilogue_placeholder(&self) -> Result<RawBuf> {
        self.cached(&self.epilogue_placeholder, "epilogue placeholder", 4)
    }

    /// Another buffer like [`GpuDevice::epilogue_placeholder`], for a kernel with two unused
    /// writable bindings (WebGPU forbids one buffer in two writable bindings of a dispatch).
    pub fn second_placeholder(&self) -> Result<RawBuf> {
        self.cached(&self.second_placeholder, "second placeholder", 4)
    }

    /// The buffer held in `slot` if it has at least `len` elements, else a new one kept there.
    fn cached(&self, slot: &RefCell<Option<RawBuf>>, what: &str, len: usize) -> Result<RawBuf> {
        if let Some(b) = slot.borrow().as_ref() {
            if b.len >= len {
                return Ok(b.clone());
            }
        }
        let b = self.alloc(what, len)?;
        *slot.borrow_mut() = Some(b.clone());
        Ok(b)
    }

    /// Write host bytes at the start of `dst`, ordered after all recorded work.
    pub fn write_bytes(&self, dst: &RawBuf, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if bytes.len() as u64 > dst.bytes() {
            return Err(BackendError::Invalid {
                op: "write",
                message: format!("{} bytes into a {}-byte buffer", bytes.len(), dst.bytes()),
            });
        }
        // Recorded work that reads or writes `dst` must run before this write lands.
        self.flush()?;
        self.counters.bytes_uploaded.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if bytes.len().is_multiple_of(4) {
            self.ctx.queue.write_buffer(&dst.buffer, 0, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            self.ctx.queue.write_buffer(&dst.buffer, 0, &padded);
        }
        Ok(())
    }

    /// Copy `len` elements of `src` to the host (submits and waits).
    pub fn read_bytes(&self, src: &RawBuf) -> Result<Vec<u8>> {
        let size = (src.len * 4) as u64;
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: size.next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.with_encoder(|enc| enc.copy_buffer_to_buffer(&src.buffer, 0, &staging, 0, size));
        self.flush()?;
        let bytes = self.map_read(&staging, size)?;
        Ok(bytes)
    }

    pub(super) fn map_read(&self, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        self.counters.bytes_read_back.fetch_add(size, Ordering::Relaxed);
        let slice = staging.slice(..size);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(BackendError::Readback(e.to_string())),
            Err(_) => return Err(BackendError::Readback("map callback never ran".into())),
        }
        let bytes = {
            let view = slice.get_mapped_range().map_err(|e| BackendError::Readback(e.to_string()))?;
            view.to_vec()
        };
        staging.unmap();
        Ok(bytes)
    }

    // ---- recording ------------------------------------------------------------------------

    pub(super) fn with_encoder<T>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> T) -> T {
        let mut rec = self.rec.borrow_mut();
        // Encoder-level commands cannot be recorded while a pass is open: end it.
        rec.pass = None;
        let enc = rec.encoder.get_or_insert_with(|| {
            self.ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") })
        });
        f(enc)
    }

    /// Create every pipeline now (so that later timings exclude compilation), but those with
    /// more storage bindings than the adapter allows, which are never dispatched there.
    pub fn warm_up(&self) -> Result<()> {
        let max = self.ctx.limits.max_storage_buffers_per_shader_stage as usize;
        for k in super::kernels::ALL_KERNELS.iter().filter(|k| k.bindings.len() <= max) {
            self.pipelines.get(&self.ctx.device, k)?;
        }
        Ok(())
    }

    /// Record one dispatch of `k` with parameter block `params` over `bufs` (in binding order).
    pub fn dispatch<P: Pod>(
        &self,
        k: &Kernel,
        params: &P,
        bufs: &[&RawBuf],
        groups: [u32; 3],
    ) -> Result<()> {
        debug_assert_eq!(bufs.len(), k.bindings.len(), "{}", k.name);
        if bufs.len() != k.bindings.len() {
            return Err(BackendError::Invalid {
                op: "dispatch",
                message: format!("{} takes {} buffers, got {}", k.name, k.bindings.len(), bufs.len()),
            });
        }
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(BackendError::Invalid {
                op: "dispatch",
                message: format!("{}: grid {groups:?} exceeds {max} workgroups per dimension", k.name),
            });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let bytes = bytemuck::bytes_of(params);
        debug_assert!(bytes.len() as u64 <= PARAM_SLOT);
        let pipeline = self.pipelines.get(&self.ctx.device, k)?;
        if self.rec.borrow().dispatches >= ARENA_SLOTS {
            self.flush()?;
        }
        let bind_group = self.bind_group(k, &pipeline, bufs);
        let mut rec = self.rec.borrow_mut();
        let offset = rec.dispatches * PARAM_SLOT;
        rec.params.extend_from_slice(bytes);
        let slot_end = ((rec.dispatches + 1) * PARAM_SLOT) as usize;
        rec.params.resize(slot_end, 0);
        rec.dispatches += 1;
        self.counters.dispatches.fetch_add(1, Ordering::Relaxed);
        let timed = match self.dispatch_timing_on.get() {
            true => self.dispatch_timing.borrow_mut().as_mut().and_then(|t| t.next(k.name)),
            false => None,
        };
        let rec = &mut *rec;
        if timed.is_some() {
            // A timed dispatch runs alone in its own pass, between its two timestamps.
            rec.pass = None;
        }
        if rec.pass.is_none() {
            let enc = rec.encoder.get_or_insert_with(|| {
                self.ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") })
            });
            let pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(if timed.is_some() { k.name } else { "step" }),
                timestamp_writes: timed.as_ref().map(|(set, first)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(*first),
                    end_of_pass_write_index: Some(*first + 1),
                }),
            });
            rec.pass = Some(pass.forget_lifetime());
            self.counters.passes.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(pass) = rec.pass.as_mut() {
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, &bind_group, &[offset as u32]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        if timed.is_some() {
            rec.pass = None;
        }
        Ok(())
    }

    /// Forget the cached bind groups of dropped buffers once those hold more than
    /// [`DEAD_BYTES_MAX`] or number more than [`DEAD_BUFFERS_MAX`] (one pass over the cache per
    /// such batch of drops).
    fn bury_dead_buffers(&self) {
        let dead: std::collections::HashSet<u64> = {
            let Ok(mut yard) = self.graveyard.lock() else { return };
            if yard.bytes <= DEAD_BYTES_MAX && yard.ids.len() <= DEAD_BUFFERS_MAX {
                return;
            }
            yard.bytes = 0;
            yard.ids.drain(..).collect()
        };
        self.bind_groups.borrow_mut().retain(|(_, _, ids), _| !ids.iter().any(|id| dead.contains(id)));
    }

    /// Cached bind groups (tests watch dropped buffers leave the cache).
    pub fn cached_bind_groups(&self) -> usize {
        self.bind_groups.borrow().len()
    }

    fn bind_group(&self, k: &Kernel, pipeline: &Pipeline, bufs: &[&RawBuf]) -> wgpu::BindGroup {
        self.bury_dead_buffers();
        let key = (k.name, k.spec, bufs.iter().map(|b| b.id).collect::<Vec<_>>());
        if let Some(bg) = self.bind_groups.borrow().get(&key) {
            return bg.clone();
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.arena,
                offset: 0,
                size: std::num::NonZeroU64::new(PARAM_SLOT),
            }),
        }];
        for (i, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.buffer.as_entire_binding(),
            });
        }
        let bg = self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(k.name),
            layout: &pipeline.layout,
            entries: &entries,
        });
        let mut cache = self.bind_groups.borrow_mut();
        if cache.len() >= BIND_GROUP_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, bg.clone());
        bg
    }

    /// Drop cached bind groups (and with them the last references to freed buffers).
    pub fn clear_bind_groups(&self) {
        self.bind_groups.borrow_mut().clear();
        if let Ok(mut yard) = self.graveyard.lock() {
            *yard = Yard::default();
        }
    }

    /// Submit everything recorded; returns without waiting.
    pub fn flush(&self) -> Result<()> {
        let (encoder, params) = {
            let mut rec = self.rec.borrow_mut();
            rec.pass = None;
            let enc = rec.encoder.take();
            let params = std::mem::take(&mut rec.params);
            rec.dispatches = 0;
            (enc, params)
        };
        if !params.is_empty() {
            self.counters.bytes_uploaded.fetch_add(params.len() as u64, Ordering::Relaxed);
            self.ctx.queue.write_buffer(&self.arena, 0, &params);
        }
        if let Some(enc) = encoder {
            self.ctx.queue.submit(Some(enc.finish()));
            self.submits.fetch_add(1, Ordering::Relaxed);
        }
        self.ctx.faults.check()
    }

    /// Wait for all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.counters.waits.fetch_add(1, Ordering::Relaxed);
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BackendError::DeviceLost(e.to_string()))?;
        self.ctx.faults.check()
    }

    // ---- timing ---------------------------------------------------------------------------
}

//! Chunking shared by the pointwise CPU kernels: large buffers are split over rayon's pool.
//!
//! Each element is computed by the same scalar expression whatever the chunking, so splitting
//! large buffers (above [`PAR_MIN`] elements) leaves results bitwise unchanged.

use rayon::prelude::*;

/// Below this many elements a loop on the calling thread beats waking the pool.
pub const PAR_MIN: usize = 1 << 16;
/// Elements per rayon task for pointwise ops.
pub const CHUNK: usize = 1 << 14;

/// Runs `f(offset, chunk)` over `out` in chunks of [`CHUNK`], in parallel when `out` is large.
pub fn for_chunks(out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if out.len() > PAR_MIN {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, ch)| f(i * CHUNK, ch));
    } else {
        f(0, out);
    }
}

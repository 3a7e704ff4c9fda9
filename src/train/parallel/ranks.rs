//! The processes of a multi-process run (MPI ranks, feature `mpi`), seen from one of them:
//! what the training loop needs beyond the gradient all-reduce — rank 0's state on every rank
//! (after `--init` or `--resume`, and its decision to stop), and checks that every rank agrees.
//!
//! Rank 0 is the run's: it alone reads checkpoints and writes the run directory; the other ranks
//! train their share of every global batch and take rank 0's decisions.

use thiserror::Error;

use super::GradientReducer;

/// A disagreement between ranks (every rank sees the same one).
#[derive(Debug, Error)]
pub enum RankError {
    #[error("the ranks disagree on {what}: rank {rank} has {have:#x}, rank 0 has {want:#x}")]
    Mismatch { what: String, rank: usize, have: u64, want: u64 },
}

/// One rank's view of the others.
pub trait Ranks {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// Ranks in the job.
    fn size(&self) -> usize;
    /// A reducer that sums every rank's replica buffers in global replica order (rank 0's
    /// first) and hands the sum to every rank.
    fn reducer(&self) -> Box<dyn GradientReducer>;
    /// Overwrite `data` with rank 0's (the same length on every rank).
    fn broadcast_f32(&mut self, data: &mut [f32]);
    /// Overwrite `data` with rank 0's (the same length on every rank).
    fn broadcast_u64(&mut self, data: &mut [u64]);
    /// Every rank's `values` (the same labels in the same order on every rank) must equal
    /// rank 0's; every rank returns the same verdict.
    fn agree(&mut self, values: &[(&str, u64)]) -> Result<(), RankError>;
}

/// FNV-1a, 64 bits: a stable hash of config text and parameter bits, the same on every host.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The hash of `values`' bit patterns.
pub fn hash_f32(values: &[f32]) -> u64 {
    fnv1a(values.iter().flat_map(|v| v.to_bits().to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_reference_hash() {
        assert_eq!(fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(hash_f32(&[0.0]), hash_f32(&[-0.0]));
    }
}

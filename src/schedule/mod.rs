//! Batch-size scheduling: the memory model that predicts which batch sizes fit a device before
//! anything is dispatched, the sweep results and the knee of the throughput curve, the policies
//! that choose a batch size from a sweep (all pure), and the sweep runner ([`sweep`]) that
//! measures real training steps on a backend.

pub mod admit;
pub mod host_memory;
pub mod knee;
pub mod memory;
pub mod policy;
pub mod rnn_memory;
pub mod run_memory;
pub mod sweep;
pub mod sweep_step;
pub mod timing_stats;

pub use knee::{knee, usable_points, SweepPoint};
pub use memory::{
    check_fit, estimate, largest_fitting_batch, BufferEstimate, BufferKind, DeviceLimits, MemoryError,
    MemoryEstimate, SkipReason,
};
pub use policy::{choose, predicted_time_curve, Choice, Policy, PolicyError, PolicyParseError};

/// The powers of two B with `min_batch ≤ B ≤ max_batch`, ascending: the batch sizes of a sweep.
pub fn powers_of_two(min_batch: usize, max_batch: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut b: usize = 1;
    while b <= max_batch {
        if b >= min_batch {
            out.push(b);
        }
        match b.checked_mul(2) {
            Some(next) => b = next,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_batches() {
        assert_eq!(powers_of_two(1, 16), vec![1, 2, 4, 8, 16]);
        assert_eq!(powers_of_two(3, 40), vec![4, 8, 16, 32]);
        assert_eq!(powers_of_two(0, 1), vec![1]);
        assert!(powers_of_two(9, 15).is_empty());
        assert!(powers_of_two(4, 2).is_empty());
        assert_eq!(powers_of_two(1 << 62, usize::MAX).len(), 2);
    }
}

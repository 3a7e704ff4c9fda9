//! The cross-replica gradient reduction, behind [`GradientReducer`] so that another transport
//! (an MPI all-reduce across hosts) can replace the in-host one without touching the step.
//!
//! Contract: every replica hands in one host buffer of the same length (its gradient, already
//! scaled to its share of the global mean, followed by its loss and correctness sums); the
//! reducer returns their element-wise sum, added in fixed replica order
//! `((p₀ + p₁) + p₂) + …`, so the result is bitwise the same on every run and every replica.
//! No float atomics, no order that depends on timing.

use rayon::prelude::*;
use thiserror::Error;

/// Above this many values the fold is split over rayon's pool.
const PAR_MIN: usize = 1 << 16;
/// Values per rayon task.
const CHUNK: usize = 1 << 14;

/// Why a reduction failed.
#[derive(Debug, Error)]
pub enum ReduceError {
    #[error("gradient reduction: no replica buffers")]
    Empty,
    #[error("gradient reduction: replica {replica} sent {have} values, replica 0 sent {want}")]
    Length { replica: usize, have: usize, want: usize },
}

/// Sums the replicas' host buffers in a fixed order.
pub trait GradientReducer: Send {
    /// `out[i] = ((parts[0][i] + parts[1][i]) + …) + parts[N-1][i]`, in `f32`, replica order.
    fn all_reduce(&mut self, parts: &[&[f32]], out: &mut Vec<f32>) -> Result<(), ReduceError>;
    /// A short name for reports (`"host"`).
    fn name(&self) -> &'static str;
}

/// The in-host reducer: the replicas' buffers are already in this process's memory (staged from
/// each device), so the all-reduce is a left fold over them on the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostReducer;

impl GradientReducer for HostReducer {
    fn all_reduce(&mut self, parts: &[&[f32]], out: &mut Vec<f32>) -> Result<(), ReduceError> {
        let (first, rest) = parts.split_first().ok_or(ReduceError::Empty)?;
        if let Some((r, p)) = rest.iter().enumerate().find(|(_, p)| p.len() != first.len()) {
            return Err(ReduceError::Length { replica: r + 1, have: p.len(), want: first.len() });
        }
        out.resize(first.len(), 0.0);
        // Each element is folded in replica order whatever the chunking, so the chunks may run
        // on rayon's pool (a CPU run's replicas share its cores) and the bits do not change.
        let fold = |at: usize, chunk: &mut [f32]| {
            let span = at..at + chunk.len();
            chunk.copy_from_slice(&first[span.clone()]);
            for p in rest {
                for (o, v) in chunk.iter_mut().zip(&p[span.clone()]) {
                    *o += *v;
                }
            }
        };
        if out.len() > PAR_MIN {
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, ch)| fold(i * CHUNK, ch));
        } else {
            fold(0, out);
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "host"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_in_replica_order() {
        let (a, b, c) = ([1.0f32, 1e8], [2.0f32, 1.0], [3.0f32, -1e8]);
        let mut out = Vec::new();
        HostReducer.all_reduce(&[&a, &b, &c], &mut out).unwrap();
        // ((1e8 + 1) - 1e8) in f32 is 0: the fold is left to right, never reordered.
        assert_eq!(out, vec![6.0, ((1e8f32 + 1.0) + -1e8f32)]);
    }

    #[test]
    fn rejects_mismatched_lengths() {
        let mut out = Vec::new();
        let e = HostReducer.all_reduce(&[&[1.0, 2.0], &[1.0]], &mut out).unwrap_err();
        assert!(matches!(e, ReduceError::Length { replica: 1, have: 1, want: 2 }));
        assert!(matches!(HostReducer.all_reduce(&[], &mut out), Err(ReduceError::Empty)));
    }

    #[test]
    fn long_buffers_split_over_the_pool_give_the_serial_fold_bit_for_bit() {
        // Three replicas of a buffer long enough to be split, values spread over many exponents
        // so that any reordering of a sum would show in the bits.
        let n = PAR_MIN * 3 + 17;
        let part = |r: u32| -> Vec<f32> {
            (0..n as u32)
                .map(|i| {
                    let h = (i.wrapping_mul(2654435761) ^ r.wrapping_mul(40503)).rotate_left(r + 3);
                    f32::from_bits(0x3000_0000 + (h % 0x1800_0000)) * if h & 1 == 0 { 1.0 } else { -1.0 }
                })
                .collect()
        };
        let parts = [part(0), part(1), part(2)];
        let mut out = vec![7.0; 3]; // a reused buffer of another length
        HostReducer.all_reduce(&[&parts[0], &parts[1], &parts[2]], &mut out).unwrap();
        assert_eq!(out.len(), n);
        for i in 0..n {
            let serial = (parts[0][i] + parts[1][i]) + parts[2][i];
            assert_eq!(out[i].to_bits(), serial.to_bits(), "element {i}");
        }
    }
}

//! The cross-replica gradient reduction, behind [`GradientReducer`] so that another transport
//! (an MPI all-reduce across hosts) can replace the in-host one without touching the step.
//!
//! Contract: every replica hands in one host buffer of the same length (its gradient, already
//! scaled to its share of the global mean, followed by its loss and correctness sums); the
//! reducer returns their element-wise sum, added in fixed replica order
//! `((p₀ + p₁) + p₂) + …`, so the result is bitwise the same on every run and every replica.
//! No float atomics, no order that depends on timing.

use thiserror::Error;

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
        out.clear();
        out.extend_from_slice(first);
        for (r, p) in rest.iter().enumerate() {
            if p.len() != out.len() {
                return Err(ReduceError::Length { replica: r + 1, have: p.len(), want: out.len() });
            }
            for (o, v) in out.iter_mut().zip(p.iter()) {
                *o += *v;
            }
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
}

//! The divergence guard: a step whose loss (or, on a logged step, gradient norm) is not finite
//! ends the run with [`TrainError::Diverged`], naming the last checkpoint that is finite; the
//! runner writes a summary.json that says where it stopped, and the plots up to there.
//!
//! Every step sums its minibatch loss into its own slot of a ring on the device (see
//! [`super::step::TrainState::guard_ring`]); the ring is read with the metrics at the next read
//! (a logged step, a checkpoint, or at the latest every `ring` steps), and the first step whose
//! sum is not finite is the one reported.

use std::path::Path;

use super::step::StepMetrics;
use super::TrainError;

/// What is not finite in `m`, if anything.
pub fn non_finite(m: &StepMetrics) -> Option<String> {
    if !m.loss.is_finite() {
        Some(format!("train_loss = {}", m.loss))
    } else if !m.grad_norm.is_finite() {
        Some(format!("grad_norm = {}", m.grad_norm))
    } else {
        None
    }
}

/// The size of the guard ring for reads at least every `log_every` steps: that many slots, at
/// most [`MAX_RING`] (then the loop also reads every `MAX_RING` steps).
pub fn ring_len(log_every: u64) -> usize {
    log_every.clamp(1, MAX_RING as u64) as usize
}

/// The largest guard ring (slots of 4 bytes).
pub const MAX_RING: usize = 1024;

/// The first step in `from..=to` whose loss sum in `ring` (slot `(s - 1) % ring.len()`) is not
/// finite. The steps since the last read must number at most `ring.len()`.
pub fn first_non_finite(ring: &[f32], from: u64, to: u64) -> Option<u64> {
    if ring.is_empty() {
        return None;
    }
    (from..=to).find(|&s| !ring[((s - 1) % ring.len() as u64) as usize].is_finite())
}

/// The error of a run whose step `step` is the first non-finite one (`what` is), with the
/// last finite checkpoint it left.
pub fn diverged(step: u64, what: String, last_good: Option<&Path>) -> TrainError {
    TrainError::Diverged {
        step,
        what,
        last_good: last_good
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (it diverged before the first checkpoint)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_non_finite_step_of_the_window_is_found_across_the_wrap() {
        // Ring of 4: steps 5..=8 occupy slots 0..=3.
        let mut ring = [1.0f32, 2.0, 3.0, 4.0];
        assert_eq!(first_non_finite(&ring, 5, 8), None);
        ring[2] = f32::INFINITY; // step 7
        ring[3] = f32::NAN; // step 8
        assert_eq!(first_non_finite(&ring, 5, 8), Some(7));
        // A window that wraps: steps 7..=10 use slots 2, 3, 0, 1.
        let ring = [f32::NAN, 0.0, 0.0, 0.0];
        assert_eq!(first_non_finite(&ring, 7, 10), Some(9));
        assert_eq!(first_non_finite(&ring, 7, 8), None);
        assert_eq!(first_non_finite(&[], 1, 3), None);
    }

    #[test]
    fn ring_length_follows_log_every_up_to_the_cap() {
        assert_eq!(ring_len(10), 10);
        assert_eq!(ring_len(0), 1);
        assert_eq!(ring_len(1_000_000), MAX_RING);
    }

    #[test]
    fn non_finite_names_the_field() {
        let m = StepMetrics { loss: f64::NAN, ..Default::default() };
        assert!(non_finite(&m).is_some_and(|s| s.starts_with("train_loss")));
        let m = StepMetrics { grad_norm: f64::INFINITY, ..Default::default() };
        assert!(non_finite(&m).is_some_and(|s| s.starts_with("grad_norm")));
        assert_eq!(non_finite(&StepMetrics::default()), None);
    }
}

//! [`StepSums`]: the minibatch sums a training step takes of its per-example losses and 0-1
//! values, and the default of [`Backend::softmax_xent_sums`] (the loss, then
//! [`Backend::sums`]).

use super::{Backend, Result};

/// Where a step's minibatch sums go: `out[s] = Σ_rows loss` for each `s` of `loss_slots` (the
/// step's loss sum, and the divergence guard's copy), `out[correct_slot] = Σ_rows correct`.
pub struct StepSums<'a, Buf> {
    pub out: &'a mut Buf,
    pub loss_slots: &'a [usize],
    pub correct_slot: usize,
}

impl<Buf> StepSums<'_, Buf> {
    /// [`Backend::sums`] of `loss` and `correct`, both `[rows]`, into the slots.
    pub fn record<B: Backend<Buf = Buf> + ?Sized>(
        &mut self,
        b: &B,
        rows: usize,
        loss: &Buf,
        correct: &Buf,
    ) -> Result<()> {
        let mut terms: Vec<(&Buf, usize)> = self.loss_slots.iter().map(|&s| (loss, s)).collect();
        terms.push((correct, self.correct_slot));
        b.sums(rows, &terms, self.out)
    }
}

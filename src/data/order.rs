//! Minibatch order: which training examples make up step `s` of epoch `e`.
//!
//! - `Shuffle::Epoch`: the order of epoch `e` is a uniformly random permutation that is a pure
//!   function of `(train seed, e)`, so a resumed run sees the same batches.
//! - `Shuffle::Once`: one permutation, a function of the train seed only, used by every epoch.
//! - `Shuffle::None`: dataset order, or with `sorted_by_label` a stable sort by label (the
//!   correlated-minibatch case of 8.1.3).
//!
//! Every step has the same batch size B: an epoch is `n / B` full batches and the last
//! `n mod B` examples of the epoch's order are dropped (with `Epoch` they are different examples
//! each epoch). Streams are read in stream order: step `s` of any epoch is examples
//! `s·B .. (s+1)·B` of the stream (see [`stream_first`]), so every epoch revisits the same
//! `n_train` examples, the same ones a resident dataset holds.

use super::rng::{Stream, STREAM_SHUFFLE};
use crate::config::Shuffle;

/// Orders the `n` examples of a resident training set into minibatches.
#[derive(Clone, Debug)]
pub struct BatchOrder {
    mode: Shuffle,
    seed: u64,
    n: usize,
    /// The permutation of `cached_epoch` (or the fixed order of `Once` / `None`).
    order: Vec<u32>,
    cached_epoch: Option<u64>,
}

impl BatchOrder {
    /// `labels` (`[n]`) is used only by `Shuffle::None` with `sorted_by_label`; without labels
    /// (regression) the order stays the dataset order.
    pub fn new(
        mode: Shuffle,
        sorted_by_label: bool,
        seed: u64,
        n: usize,
        labels: Option<&[u32]>,
    ) -> Self {
        let mut order: Vec<u32> = Vec::new();
        let mut cached_epoch = None;
        match mode {
            Shuffle::Epoch => {}
            Shuffle::Once => {
                order = permutation(seed, 0, n);
                cached_epoch = Some(0);
            }
            Shuffle::None => {
                order = (0..n as u32).collect();
                if let (true, Some(l)) = (sorted_by_label, labels) {
                    order.sort_by_key(|&i| l.get(i as usize).copied().unwrap_or(u32::MAX));
                }
            }
        }
        BatchOrder { mode, seed, n, order, cached_epoch }
    }

    /// Examples in the training set.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Full batches of `batch` examples per epoch (`0` when `batch > n` or `batch == 0`).
    pub fn steps_per_epoch(&self, batch: usize) -> usize {
        self.n.checked_div(batch).unwrap_or(0)
    }

    /// The order of all `n` examples in `epoch`.
    pub fn epoch_order(&mut self, epoch: u64) -> &[u32] {
        if self.mode == Shuffle::Epoch && self.cached_epoch != Some(epoch) {
            self.order = permutation(self.seed, epoch, self.n);
            self.cached_epoch = Some(epoch);
        }
        &self.order
    }

    /// Example indices `[batch]` of step `step` (`< steps_per_epoch(batch)`) of `epoch`, or
    /// `None` past the last full batch.
    pub fn batch(&mut self, epoch: u64, step: usize, batch: usize) -> Option<&[u32]> {
        if step >= self.steps_per_epoch(batch) {
            return None;
        }
        let order = self.epoch_order(epoch);
        Some(&order[step * batch..(step + 1) * batch])
    }
}

/// The permutation of `0..n` for `epoch` (Fisher-Yates on the Philox sub-stream `epoch` of
/// [`STREAM_SHUFFLE`] keyed by the train seed).
pub fn permutation(seed: u64, epoch: u64, n: usize) -> Vec<u32> {
    Stream::new(seed, STREAM_SHUFFLE, epoch).permutation(n)
}

/// First stream example of step `step` with batch size `batch`: `step · batch` (stream order; the
/// same in every epoch). With `one_pass` training, steps simply run to `n_train / batch`.
pub fn stream_first(step: u64, batch: usize) -> u64 {
    step * batch as u64
}

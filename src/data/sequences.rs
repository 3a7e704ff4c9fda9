//! Synthetic sequence tasks for recurrent networks, where the difficulty of a long-term
//! dependency grows with the length T (8.2.5).
//!
//! - **Adding problem** (Hochreiter & Schmidhuber 1997): inputs `[T, 2]`, channel 0 a value
//!   `u_t ~ U(0, 1]`, channel 1 a marker that is 1 at exactly two steps, one in the first half
//!   `[0, ⌊T/2⌋)` and one in the second half `[⌊T/2⌋, T)`. Target: the sum of the two marked
//!   values (regression, MSE). Predicting the mean 1 gives loss ½·Var = 1/12.
//! - **Copy / recall**: `symbols` = K classes, inputs `[T, K + 1]`: a one-hot symbol at t = 0,
//!   then blanks (or random distractor symbols), and the recall marker (channel K) at t = T−1.
//!   Target: the symbol shown at t = 0 (classification). Chance loss is ln K.
//!
//! Example `i` is a pure function of `(seed, i)` (a Philox sub-stream), so a dataset of any size
//! is reproducible; validation examples are `VAL_FIRST + k`, disjoint from training. Inputs are
//! stored time-major, one `[n, D]` tensor per step, so a minibatch of step t is one row gather.

use super::rng::{uniform_open, Stream};
use super::synth::VAL_FIRST;
use super::{DataError, Labels};
use crate::model::LossKind;

/// Philox stream of the sequence tasks (`sub` = example index).
pub const STREAM_SEQUENCE: u32 = 48;

pub use crate::config::sequences::{SeqSpec, SeqTask};

/// A resident set of sequences.
#[derive(Clone, Debug, PartialEq)]
pub struct SeqData {
    /// Sequences.
    pub n: usize,
    /// Steps T.
    pub steps: usize,
    /// Input features per step D.
    pub dim: usize,
    /// `xs[t]` is `x_t [n, D]`, t = 0..T.
    pub xs: Vec<Vec<f32>>,
    /// Labels `[n]` (copy) or targets `[n, 1]` (adding).
    pub targets: Labels,
}

impl SeqSpec {
    /// Input features per step D.
    pub fn dim(&self) -> usize {
        match self.task {
            SeqTask::Adding => 2,
            SeqTask::Copy => self.symbols + 1,
        }
    }

    /// Readout width K.
    pub fn outputs(&self) -> usize {
        match self.task {
            SeqTask::Adding => 1,
            SeqTask::Copy => self.symbols,
        }
    }

    pub fn loss(&self) -> LossKind {
        match self.task {
            SeqTask::Adding => LossKind::Mse,
            SeqTask::Copy => LossKind::SoftmaxXent,
        }
    }

    /// Loss of the best input-blind predictor: 1/12 (adding: always 1), ln K (copy: uniform).
    pub fn baseline_loss(&self) -> f64 {
        match self.task {
            SeqTask::Adding => 1.0 / 12.0,
            SeqTask::Copy => (self.symbols as f64).ln(),
        }
    }

    pub fn validate(&self) -> Result<(), DataError> {
        match self.task {
            SeqTask::Adding if self.length < 2 => Err(DataError::Config {
                key: "length",
                message: format!("the adding problem needs T ≥ 2, got {}", self.length),
            }),
            SeqTask::Copy if self.symbols < 2 => Err(DataError::Config {
                key: "symbols",
                message: format!("the copy task needs ≥ 2 symbols, got {}", self.symbols),
            }),
            _ if self.length == 0 => {
                Err(DataError::Config { key: "length", message: "must be ≥ 1".into() })
            }
            _ => Ok(()),
        }
    }

    /// Examples `first .. first + n`.
    pub fn generate(&self, first: u64, n: usize) -> Result<SeqData, DataError> {
        self.validate()?;
        let (t_len, d) = (self.length, self.dim());
        let mut xs: Vec<Vec<f32>> =
            (0..t_len).map(|_| super::alloc("sequence inputs", n, d)).collect::<Result<_, _>>()?;
        let mut labels = Vec::new();
        let mut values = Vec::new();
        for r in 0..n {
            let mut s = Stream::new(self.seed, STREAM_SEQUENCE, first + r as u64);
            match self.task {
                SeqTask::Adding => {
                    let half = t_len / 2;
                    let a = s.below(half as u32) as usize;
                    let b = half + s.below((t_len - half) as u32) as usize;
                    let mut sum = 0.0f32;
                    for (t, x) in xs.iter_mut().enumerate() {
                        let u = uniform_open(s.next_u32());
                        x[r * d] = u;
                        if t == a || t == b {
                            x[r * d + 1] = 1.0;
                            sum += u;
                        }
                    }
                    values.push(sum);
                }
                SeqTask::Copy => {
                    let k = self.symbols;
                    let sym = s.below(k as u32);
                    xs[0][r * d + sym as usize] = 1.0;
                    if self.distractors {
                        for x in xs.iter_mut().take(t_len.saturating_sub(1)).skip(1) {
                            x[r * d + s.below(k as u32) as usize] = 1.0;
                        }
                    }
                    xs[t_len - 1][r * d + k] = 1.0;
                    labels.push(sym);
                }
            }
        }
        let targets = match self.task {
            SeqTask::Adding => Labels::Values { targets: values, outputs: 1 },
            SeqTask::Copy => Labels::Classes { labels, classes: self.symbols },
        };
        Ok(SeqData { n, steps: t_len, dim: d, xs, targets })
    }

    /// `(train, val)`: examples `0 .. n_train` and `VAL_FIRST .. VAL_FIRST + n_val`.
    pub fn train_val(&self, n_train: usize, n_val: usize) -> Result<(SeqData, SeqData), DataError> {
        Ok((self.generate(0, n_train)?, self.generate(VAL_FIRST, n_val)?))
    }
}

impl SeqData {
    /// The sequences `first .. first + rows` as a new set (for evaluation chunks).
    pub fn slice(&self, first: usize, rows: usize) -> SeqData {
        let d = self.dim;
        let xs = self.xs.iter().map(|x| x[first * d..(first + rows) * d].to_vec()).collect();
        let targets = match &self.targets {
            Labels::Classes { labels, classes } => {
                Labels::Classes { labels: labels[first..first + rows].to_vec(), classes: *classes }
            }
            Labels::Values { targets, outputs } => Labels::Values {
                targets: targets[first * outputs..(first + rows) * outputs].to_vec(),
                outputs: *outputs,
            },
        };
        SeqData { n: rows, steps: self.steps, dim: d, xs, targets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(task: SeqTask, length: usize) -> SeqSpec {
        SeqSpec { task, length, symbols: 5, distractors: true, seed: 9 }
    }

    #[test]
    fn adding_marks_two_values_one_per_half_and_sums_them() {
        let s = spec(SeqTask::Adding, 11);
        let d = s.generate(0, 200).unwrap();
        let t = d.targets.clone();
        let Labels::Values { targets, outputs: 1 } = t else { panic!("adding targets are values") };
        for (r, &target) in targets.iter().enumerate() {
            let marked: Vec<usize> = (0..11).filter(|&t| d.xs[t][r * 2 + 1] == 1.0).collect();
            assert_eq!(marked.len(), 2, "row {r}: markers at {marked:?}");
            assert!(marked[0] < 5 && marked[1] >= 5, "row {r}: one marker per half, got {marked:?}");
            let sum: f32 = marked.iter().map(|&t| d.xs[t][r * 2]).sum();
            assert_eq!(sum, target);
            assert!((0..11).all(|t| d.xs[t][r * 2] > 0.0 && d.xs[t][r * 2] <= 1.0));
        }
        let mean = targets.iter().map(|&v| v as f64).sum::<f64>() / d.n as f64;
        assert!((mean - 1.0).abs() < 0.1, "mean target {mean} should be near 1");
    }

    #[test]
    fn copy_shows_the_label_at_t0_and_the_marker_at_the_end() {
        let s = spec(SeqTask::Copy, 6);
        let d = s.generate(0, 50).unwrap();
        let Labels::Classes { labels, classes: 5 } = &d.targets else {
            panic!("copy targets are classes")
        };
        for r in 0..d.n {
            let row0 = &d.xs[0][r * 6..r * 6 + 6];
            assert_eq!(row0[labels[r] as usize], 1.0);
            assert_eq!(row0.iter().sum::<f32>(), 1.0);
            assert_eq!(d.xs[5][r * 6 + 5], 1.0, "recall marker at the last step");
            for t in 1..5 {
                assert_eq!(
                    d.xs[t][r * 6..r * 6 + 5].iter().sum::<f32>(),
                    1.0,
                    "one distractor per middle step"
                );
            }
        }
    }

    #[test]
    fn examples_are_pure_functions_of_seed_and_index() {
        let s = spec(SeqTask::Adding, 8);
        let all = s.generate(0, 20).unwrap();
        let tail = s.generate(10, 10).unwrap();
        assert_eq!(all.slice(10, 10), tail);
        let other = SeqSpec { seed: 10, ..s }.generate(0, 20).unwrap();
        assert_ne!(all, other);
        let (tr, va) = s.train_val(4, 4).unwrap();
        assert_ne!(tr.xs, va.xs);
    }

    #[test]
    fn bad_lengths_name_the_key() {
        assert!(spec(SeqTask::Adding, 1).validate().unwrap_err().to_string().contains("length"));
        let e = SeqSpec { symbols: 1, ..spec(SeqTask::Copy, 4) }.validate().unwrap_err().to_string();
        assert!(e.contains("symbols"), "{e}");
    }
}

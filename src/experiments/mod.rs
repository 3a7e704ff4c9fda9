//! Experiment drivers of chapter 8.2.5: per-layer gradient norms of deep MLPs (`depth`).
//! (The RNN experiment of 8.2.4 is `train::rnn`; the commands live in `app`.)

pub mod depth;

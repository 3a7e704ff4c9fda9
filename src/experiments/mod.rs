//! Experiment drivers of chapter 8.2.4–8.2.5: `batchscope rnn` (exploding and vanishing
//! gradients through time, cliffs and clipping) and `batchscope depth` (per-layer gradient norms
//! of deep MLPs), with their config files.

pub mod config;
pub mod depth;
pub mod rnn;

//! The application layer: one file per command. Each turns its options into a config, calls
//! the domain modules (which never import this layer) and writes the outputs: the run
//! directory, its files and the terminal text. Errors are `anyhow` here and nowhere below.

pub mod backend;
pub mod compare;
pub mod curvature;
pub mod depth;
pub mod devices;
pub mod gemm;
pub mod landscape;
pub mod mpi;
pub mod noise;
pub mod overlay;
pub mod profile;
pub mod rnn;
mod stability_note;
pub mod sweep;
mod sweep_precision;
mod sweep_workers;
pub mod time_to_target;
pub mod train;
mod ttt_rows;
pub mod tune;
pub mod workers;

mod output;

pub use backend::{with_backend, BackendChoice, BackendTask, RunArgs};

//! batchscope: a GPU training engine (wgpu/WGSL) that makes the optimization chapter of deep
//! learning measurable: batch size against throughput, surrogate vs 0-1 loss, curvature and
//! gradient noise, on a GPU backend and its CPU twin.

pub mod app;
pub mod backend;
pub mod bounded_read;
pub mod checkpoint;
pub mod config;
pub mod curvature;
pub mod data;
mod error;
pub mod experiments;
pub mod landscape;
pub mod model;
pub mod noise;
pub mod profile;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod suggest;
pub mod telemetry;
pub mod train;

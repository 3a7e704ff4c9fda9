//! Host bytes of a run described by a [`Config`]: the model's parameter-shaped sets (built on
//! the host by every backend), the resident data, and on the CPU backend the whole step, checked
//! against [`host_limit`] before anything is allocated.

use crate::config::{Config, ConfigError, DataKind, DataMode, OptimizerKind};
use crate::model::LossKind;

use super::host_memory::{bytes_of, check_host, host_limit, step_bytes, sum_bytes, HostMemoryError};

/// Host bytes of the model's parameter-shaped sets (built on the host by every backend) and
/// of the resident data, checked arithmetic throughout: `(description, bytes)`.
pub fn host_bytes(cfg: &Config) -> Result<(String, u64), HostMemoryError> {
    let d = &cfg.data;
    let spec = cfg.mlp_spec();
    let momentum = cfg.train.optimizer == OptimizerKind::Momentum;
    let model = step_bytes(&spec.sizes, momentum, cfg.monitor.curvature_every > 0, 1)?;
    let dim = d.dim as u64;
    let outputs = cfg.data_outputs() as u64;
    let per_row = |what: &str, rows: u64| -> Result<u64, HostMemoryError> {
        let y = if cfg.model.loss == LossKind::Mse { outputs } else { 1 };
        sum_bytes(what, &[bytes_of(what, &[rows, dim])?, bytes_of(what, &[rows, y])?])
    };
    let val = per_row("the validation set", d.n_val as u64)?;
    let train = match (d.kind, d.mode) {
        (DataKind::Npy, _) => 0, // the file's rows, checked when read (its size is on disk)
        (_, DataMode::Stream) => 0,
        (_, DataMode::Resident) => per_row("the training set", d.n_train)?,
    };
    let tables = match d.kind {
        DataKind::GaussianMixture => bytes_of("the class means", &[d.classes as u64, dim])?,
        DataKind::LinearRegression => bytes_of("the regression table", &[dim, outputs.max(dim)])?,
        DataKind::Teacher => sum_bytes(
            "the teacher",
            &[
                bytes_of("the teacher", &[dim, d.teacher_hidden as u64])?,
                bytes_of("the teacher", &[d.teacher_hidden as u64, d.classes as u64])?,
            ],
        )?,
        DataKind::Npy => 0,
    };
    let total = sum_bytes("model and data", &[model, val, train, tables])?;
    let what = format!(
        "model {:?} ({model} bytes of parameters, gradients and optimizer state) with data.dim = {}, \
         {} resident examples ({} bytes of data)",
        spec.sizes,
        d.dim,
        if d.mode == DataMode::Resident && d.kind != DataKind::Npy {
            d.n_train + d.n_val as u64
        } else {
            d.n_val as u64
        },
        total - model
    );
    Ok((what, total))
}

/// Fail when the model and data cannot fit the host's memory.
pub fn check_host_memory(cfg: &Config, origin: &str) -> Result<(), ConfigError> {
    let fail = |e: HostMemoryError| ConfigError::TooLarge {
        origin: origin.to_string(),
        message: e.to_string(),
    };
    let (what, bytes) = host_bytes(cfg).map_err(fail)?;
    check_host(&what, bytes, host_limit()).map_err(fail)
}

/// On the CPU backend the whole training step at `batch` lives in host memory: fail when
/// it cannot fit (checked before the dataset or workspace is allocated).
pub fn check_cpu_step(cfg: &Config, batch: usize) -> Result<(), HostMemoryError> {
    let spec = cfg.mlp_spec();
    let momentum = cfg.train.optimizer == OptimizerKind::Momentum;
    let bytes = step_bytes(&spec.sizes, momentum, cfg.monitor.curvature_every > 0, batch)?;
    let what = format!("a CPU training step of model {:?} at train.batch_size = {batch}", spec.sizes);
    check_host(&what, bytes, host_limit())
}

//! After validation: what `.npy` data implies (`data.dim = 0`: D from the features file;
//! `data.classes` absent or 0: max label + 1), the train/validation split line, and the host
//! memory check of the model and dataset, all before anything is allocated.

use super::{Config, ConfigError, DataKind, DataMode};
use crate::data::npy;
use crate::model::LossKind;
use crate::schedule::host_memory::{
    bytes_of, check_host, host_limit, step_bytes, sum_bytes, HostMemoryError,
};

impl Config {
    /// Fill `data.dim` / `data.classes` from `.npy` files; print the split. `classes_given`: the
    /// table set `data.classes` (a nonzero value is kept).
    pub(super) fn resolve_npy(&mut self, classes_given: bool, origin: &str) -> Result<(), ConfigError> {
        if self.data.kind != DataKind::Npy {
            return Ok(());
        }
        let (Some(features), Some(labels)) = (self.data.features.clone(), self.data.labels.clone())
        else {
            return Ok(());
        };
        let bad = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        let (n, d) = npy::features_shape(&features).map_err(|e| bad("data.features", e.to_string()))?;
        if self.data.dim == 0 {
            self.data.dim = d;
        }
        let infer = !classes_given || self.data.classes == 0;
        if infer && self.model.loss == LossKind::SoftmaxXent {
            match npy::label_classes(&labels).map_err(|e| bad("data.labels", e.to_string()))? {
                Some(c) => self.data.classes = c,
                None => {
                    return Err(bad(
                        "data.classes",
                        "cannot be inferred from these labels (not integers); set data.classes".into(),
                    ))
                }
            }
        }
        if self.data.classes == 0 && self.model.loss == LossKind::SoftmaxXent {
            return Err(bad("data.classes", "must be ≥ 1".into()));
        }
        let frac = self.data.val_fraction.clamp(0.0, 1.0) as f64;
        let n_val = ((n as f64 * frac).round() as usize).min(n.saturating_sub(1));
        let dup = self.data.duplicates.max(1);
        let dups = if dup > 1 { format!(" (each repeated {dup}×)") } else { String::new() };
        eprintln!(
            "data: {n} rows from {} → {} train{dups} / {n_val} validation (data.val_fraction = {})",
            features.display(),
            n - n_val,
            self.data.val_fraction
        );
        Ok(())
    }

    /// Host bytes of the model's parameter-shaped sets (built on the host by every backend) and
    /// of the resident data, checked arithmetic throughout: `(description, bytes)`.
    pub fn host_bytes(&self) -> Result<(String, u64), HostMemoryError> {
        let d = &self.data;
        let spec = self.mlp_spec();
        let momentum = self.train.optimizer == super::OptimizerKind::Momentum;
        let model = step_bytes(&spec.sizes, momentum, self.monitor.curvature_every > 0, 1)?;
        let dim = d.dim as u64;
        let outputs = self.data_outputs() as u64;
        let per_row = |what: &str, rows: u64| -> Result<u64, HostMemoryError> {
            let y = if self.model.loss == LossKind::Mse { outputs } else { 1 };
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
            if d.mode == DataMode::Resident && d.kind != DataKind::Npy { d.n_train + d.n_val as u64 } else { d.n_val as u64 },
            total - model
        );
        Ok((what, total))
    }

    /// Fail when the model and data cannot fit the host's memory.
    pub(super) fn check_host_memory(&self, origin: &str) -> Result<(), ConfigError> {
        let fail = |e: HostMemoryError| ConfigError::TooLarge {
            origin: origin.to_string(),
            message: e.to_string(),
        };
        let (what, bytes) = self.host_bytes().map_err(fail)?;
        check_host(&what, bytes, host_limit()).map_err(fail)
    }

    /// On the CPU backend the whole training step at `batch` lives in host memory: fail when
    /// it cannot fit (checked before the dataset or workspace is allocated).
    pub fn check_cpu_step(&self, batch: usize) -> Result<(), HostMemoryError> {
        let spec = self.mlp_spec();
        let momentum = self.train.optimizer == super::OptimizerKind::Momentum;
        let bytes = step_bytes(&spec.sizes, momentum, self.monitor.curvature_every > 0, batch)?;
        let what =
            format!("a CPU training step of model {:?} at train.batch_size = {batch}", spec.sizes);
        check_host(&what, bytes, host_limit())
    }
}

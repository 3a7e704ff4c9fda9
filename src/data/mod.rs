//! Datasets: synthetic generators (CPU twin of the GPU streams), `.npy` files, the train /
//! validation split and minibatch order.
//!
//! - [`rng`]: Philox4x32-10 counter-based random numbers (`backend::rng`, identical in `shaders/datagen.wgsl`).
//! - [`synth`]: class means, `W*`, the teacher MLP, resident synthetic datasets.
//! - [`npy`]: `.npy` features and labels.
//! - [`order`]: minibatch order for the shuffle modes.
//!
//! Resident synthetic datasets are produced by [`crate::backend::cpu::datagen::generate`], the
//! same function the GPU stream must equal, so training example `i` is the same whether it is
//! gathered from a resident buffer or generated on the fly. Validation examples are stream
//! examples `VAL_FIRST + k` (disjoint from training), with clean labels.

pub mod device;
pub mod fingerprint;
pub mod npy;
mod npy_header;
pub mod order;
pub mod resolve;
pub use crate::backend::rng;
pub mod sequences;
pub mod synth;

use std::path::PathBuf;

use thiserror::Error;

use crate::backend::BackendError;
use crate::config::{DataConfig, DataKind};

pub use order::{permutation, stream_first, BatchOrder};
pub use synth::{class_means, gen_spec, gen_table, hessian_eigenvalues, val_spec, Teacher, VAL_FIRST};

/// A problem with the data: each message names the file (or config key) and the problem.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a valid .npy file: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{}: dtype '{found}' is not supported; {expected}", path.display())]
    Dtype { path: PathBuf, found: String, expected: String },
    #[error("{}: shape {shape:?} has rank {}; {expected}", path.display(), shape.len())]
    Rank { path: PathBuf, shape: Vec<u64>, expected: &'static str },
    #[error("{}: {message}", path.display())]
    Layout { path: PathBuf, message: String },
    #[error("{}: truncated: {what} {}", path.display(), truncation(*expected, *found))]
    Truncated { path: PathBuf, what: String, expected: Option<u64>, found: u64 },
    #[error("{}: has {n_labels} rows but {} has {n_features}", labels.display(), features.display())]
    RowMismatch { features: PathBuf, labels: PathBuf, n_features: usize, n_labels: usize },
    #[error("{}: label {value} at index {index} is out of range for {classes} classes (labels must be in 0..{classes})", path.display())]
    LabelOutOfRange { path: PathBuf, index: usize, value: i128, classes: usize },
    #[error("{}: label {value} at index {index} is past the largest class label batchscope holds ({})", path.display(), u32::MAX - 1)]
    LabelTooLarge { path: PathBuf, index: usize, value: i128 },
    #[error("{}: label {value} at index {index} is negative (class labels are 0, 1, 2, …)", path.display())]
    NegativeLabel { path: PathBuf, index: usize, value: i128 },
    #[error("{}: {message}", path.display())]
    Mismatch { path: PathBuf, message: String },
    #[error("data.{key}: {message}")]
    Config { key: &'static str, message: String },
    #[error("the dataset's {what} needs {bytes} bytes, more than can be allocated; use fewer examples (`train` can also stream synthetic data: data.mode = \"stream\")")]
    TooLarge { what: &'static str, bytes: u128 },
    #[error("generating {what}: {source}")]
    Generate { what: &'static str, source: BackendError },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

fn truncation(expected: Option<u64>, found: u64) -> String {
    match expected {
        Some(e) => format!("needs {e} bytes but the file holds {found}"),
        None => format!("ends early (the file holds {found} bytes)"),
    }
}

/// Targets of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Class indices `labels [n]`, each `< classes`.
    Classes { labels: Vec<u32>, classes: usize },
    /// Regression targets `targets [n, outputs]`.
    Values { targets: Vec<f32>, outputs: usize },
}

/// A host dataset: `x [n, dim]` row-major and its targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Vec<f32>,
    pub targets: Labels,
    pub n: usize,
    pub dim: usize,
}

impl Dataset {
    /// Row `i` of `x` (`[dim]`).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// Class labels `[n]` (classification).
    pub fn labels(&self) -> Option<&[u32]> {
        match &self.targets {
            Labels::Classes { labels, .. } => Some(labels),
            Labels::Values { .. } => None,
        }
    }

    /// Regression targets `[n, outputs]`.
    pub fn values(&self) -> Option<&[f32]> {
        match &self.targets {
            Labels::Values { targets, .. } => Some(targets),
            Labels::Classes { .. } => None,
        }
    }

    /// Model outputs: classes, or regression outputs K.
    pub fn outputs(&self) -> usize {
        match &self.targets {
            Labels::Classes { classes, .. } => *classes,
            Labels::Values { outputs, .. } => *outputs,
        }
    }

    /// The rows `idx` (in that order) as a new dataset.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            x.extend_from_slice(self.row(i));
        }
        let targets = match &self.targets {
            Labels::Classes { labels, classes } => {
                Labels::Classes { labels: idx.iter().map(|&i| labels[i]).collect(), classes: *classes }
            }
            Labels::Values { targets, outputs } => {
                let k = *outputs;
                let mut t = Vec::with_capacity(idx.len() * k);
                for &i in idx {
                    t.extend_from_slice(&targets[i * k..(i + 1) * k]);
                }
                Labels::Values { targets: t, outputs: k }
            }
        };
        Dataset { x, targets, n: idx.len(), dim: self.dim }
    }
}

/// A zeroed `Vec` of `rows * cols` elements, or [`DataError::TooLarge`] instead of an abort.
pub(crate) fn alloc<T: Clone + Default>(
    what: &'static str,
    rows: usize,
    cols: usize,
) -> Result<Vec<T>, DataError> {
    let bytes = rows as u128 * cols as u128 * std::mem::size_of::<T>() as u128;
    let len = rows.checked_mul(cols).ok_or(DataError::TooLarge { what, bytes })?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| DataError::TooLarge { what, bytes })?;
    v.resize(len, T::default());
    Ok(v)
}

fn n_train_of(cfg: &DataConfig) -> Result<usize, DataError> {
    usize::try_from(cfg.n_train).map_err(|_| DataError::Config {
        key: "n_train",
        message: format!("{} exceeds this platform's memory", cfg.n_train),
    })
}

/// The resident training and validation sets of `cfg`: `(train, val)`.
///
/// - gaussian_mixture / linear_regression: training examples `0 .. n_train` of the stream
///   ([`gen_spec`], with label noise and duplicates) and validation examples
///   `VAL_FIRST .. VAL_FIRST + n_val` of [`val_spec`] (clean labels, no duplicates).
/// - teacher: the same layout (x from the stream's normals, labels from the [`Teacher`]).
/// - npy: the files' rows split by `val_fraction` (a seeded random subset of
///   `round(N · val_fraction)` rows, at most N − 1, is validation; both parts keep file order);
///   integer labels give classes = `outputs`, f32 labels must have K = `outputs` columns;
///   `data.dim` must be 0 or D; `n_train` / `n_val` are ignored; with `duplicates = k` every
///   training row is repeated k times in a row (validation is not).
///
/// `outputs` is the model's output width (`Config::data_outputs`); synthetic kinds take classes
/// and outputs from `cfg`.
pub fn build_resident(cfg: &DataConfig, outputs: usize) -> Result<(Dataset, Dataset), DataError> {
    match cfg.kind {
        // One read of the files for both sets (two held the training set and a second copy
        // of the whole file at once).
        DataKind::Npy => load_npy_split(cfg, outputs),
        _ => Ok((build_train(cfg, outputs)?, build_validation(cfg, outputs)?)),
    }
}

/// The validation set only (a streamed run keeps only this resident).
pub fn build_validation(cfg: &DataConfig, outputs: usize) -> Result<Dataset, DataError> {
    match cfg.kind {
        DataKind::GaussianMixture | DataKind::LinearRegression => {
            let spec = spec_of(cfg)?;
            synth::generate_dataset(&val_spec(&spec), &gen_table(cfg), VAL_FIRST, cfg.n_val)
        }
        DataKind::Teacher => {
            let t = Teacher::new(cfg.seed, cfg.dim, cfg.teacher_hidden, cfg.classes);
            synth::teacher_dataset(&t, cfg.seed, VAL_FIRST, cfg.n_val, 0.0, 1)
        }
        DataKind::Npy => Ok(load_npy_split(cfg, outputs)?.1),
    }
}

/// The resident training set.
pub fn build_train(cfg: &DataConfig, outputs: usize) -> Result<Dataset, DataError> {
    match cfg.kind {
        DataKind::GaussianMixture | DataKind::LinearRegression => {
            let spec = spec_of(cfg)?;
            synth::generate_dataset(&spec, &gen_table(cfg), 0, n_train_of(cfg)?)
        }
        DataKind::Teacher => {
            let t = Teacher::new(cfg.seed, cfg.dim, cfg.teacher_hidden, cfg.classes);
            synth::teacher_dataset(
                &t,
                cfg.seed,
                0,
                n_train_of(cfg)?,
                cfg.label_noise,
                cfg.duplicates.max(1) as u64,
            )
        }
        DataKind::Npy => Ok(load_npy_split(cfg, outputs)?.0),
    }
}

fn spec_of(cfg: &DataConfig) -> Result<crate::backend::GenSpec, DataError> {
    gen_spec(cfg)
        .ok_or(DataError::Config { key: "kind", message: "is not a streamable synthetic kind".into() })
}

/// `.npy` features and labels split into `(train, val)` as documented at [`build_resident`].
pub fn load_npy_split(cfg: &DataConfig, outputs: usize) -> Result<(Dataset, Dataset), DataError> {
    let features = cfg.features.as_ref().ok_or(DataError::Config {
        key: "features",
        message: "is required for kind = \"npy\"".into(),
    })?;
    let labels = cfg
        .labels
        .as_ref()
        .ok_or(DataError::Config { key: "labels", message: "is required for kind = \"npy\"".into() })?;
    let all = npy::load(features, labels, outputs)?;
    if cfg.dim != 0 && cfg.dim != all.dim {
        return Err(DataError::Mismatch {
            path: features.clone(),
            message: format!("features have D = {} columns but data.dim = {}; set data.dim = {} (or 0 to take it from the file)", all.dim, cfg.dim, all.dim),
        });
    }
    let n = all.n;
    if u32::try_from(n).is_err() {
        // Rows are numbered in u32 (the split and shuffle permutations).
        return Err(DataError::Mismatch {
            path: features.clone(),
            message: format!("{n} rows are more than the {} a dataset may hold", u32::MAX),
        });
    }
    let n_val = resolve::npy_val_rows(n, cfg.val_fraction);
    let perm = rng::Stream::new(cfg.seed, rng::STREAM_SPLIT, 0).permutation(n);
    let mut is_val = vec![false; n];
    for &i in &perm[n - n_val..] {
        is_val[i as usize] = true;
    }
    let dup = cfg.duplicates.max(1);
    let train_idx: Vec<usize> =
        (0..n).filter(|&i| !is_val[i]).flat_map(|i| std::iter::repeat_n(i, dup)).collect();
    let val_idx: Vec<usize> = (0..n).filter(|&i| is_val[i]).collect();
    Ok((all.select(&train_idx), all.select(&val_idx)))
}

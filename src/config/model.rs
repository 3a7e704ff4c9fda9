//! The model and data sections of a `train` config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backend::Activation;
use crate::model::{LossKind, Precision};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Hidden layer widths; input and output widths come from the data.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// `softmax_xent` for classification, `mse` for regression (must match the data kind).
    pub loss: LossKind,
    /// Seed of the weight initialisation.
    pub init_seed: u64,
    /// Every initial weight is multiplied by this (1 = He/Glorot; tiny values start a tanh net
    /// next to the saddle point at the origin).
    pub init_scale: f32,
    /// `f32`, or `f16`: activations and weight copies in f16, products summed in f32, f32
    /// master weights with dynamic loss scaling. Written to config.toml only when not f32.
    #[serde(skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            hidden: vec![1024, 1024],
            activation: Activation::Relu,
            loss: LossKind::SoftmaxXent,
            init_seed: 1,
            init_scale: 1.0,
            precision: Precision::F32,
        }
    }
}

/// The synthetic or file dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    /// Gaussian class clusters (classification).
    GaussianMixture,
    /// Labels from a random teacher MLP (nonconvex classification).
    Teacher,
    /// y = W x + noise with a chosen Hessian condition number (convex regression baseline).
    LinearRegression,
    /// Features and labels from `.npy` files.
    Npy,
}

/// Where minibatches come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataMode {
    /// The dataset lives on the device; minibatches are gathered by index.
    Resident,
    /// Each minibatch is generated on the device from (seed, example index); memory stays flat.
    Stream,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub kind: DataKind,
    pub mode: DataMode,
    /// Training examples (for `stream`, the length of the stream).
    pub n_train: u64,
    /// Validation examples (always resident).
    pub n_val: usize,
    /// Input dimension (synthetic kinds).
    pub dim: usize,
    /// Classes (classification kinds).
    pub classes: usize,
    /// Outputs (linear_regression).
    pub outputs: usize,
    /// Distance scale between class means (gaussian_mixture).
    pub separation: f32,
    /// Probability that a training label is replaced by a uniformly random class.
    pub label_noise: f32,
    /// Hessian condition number of linear_regression (eigenvalues log-spaced in [1/κ, 1]).
    pub condition_number: f32,
    /// Standard deviation of the additive target noise (linear_regression).
    pub noise_std: f32,
    /// Hidden width of the teacher MLP (teacher).
    pub teacher_hidden: usize,
    /// Each distinct example repeated this many times (redundancy, 8.1.3).
    pub duplicates: usize,
    /// Seed of the dataset (independent of the model's).
    pub seed: u64,
    /// `.npy` features f32 [N, D] (npy).
    pub features: Option<PathBuf>,
    /// `.npy` labels: integers [N] or f32 [N, K] (npy).
    pub labels: Option<PathBuf>,
    /// Fraction of an npy dataset held out for validation.
    pub val_fraction: f32,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            kind: DataKind::GaussianMixture,
            mode: DataMode::Resident,
            n_train: 16384,
            n_val: 2048,
            dim: 784,
            classes: 10,
            outputs: 1,
            separation: 3.0,
            label_noise: 0.0,
            condition_number: 100.0,
            noise_std: 0.1,
            teacher_hidden: 64,
            duplicates: 1,
            seed: 42,
            features: None,
            labels: None,
            val_fraction: 0.1,
        }
    }
}

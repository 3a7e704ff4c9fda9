//! Run configuration: TOML with unknown keys rejected, defaults for every key, validation that
//! names the key, and `--set section.key=value` overrides.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::backend::Activation;
use crate::model::{LossKind, MlpSpec};

/// The embedded default: `batchscope sweep` with no config runs this.
pub const DEFAULT_TOML: &str = include_str!("../configs/default.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config {origin}: `{key}` {message}")]
    Invalid { origin: String, key: String, message: String },
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub sweep: SweepConfig,
    #[serde(default)]
    pub monitor: MonitorConfig,
}

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
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            hidden: vec![1024, 1024],
            activation: Activation::Relu,
            loss: LossKind::SoftmaxXent,
            init_seed: 1,
            init_scale: 1.0,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd,
    Momentum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shuffle {
    /// A new permutation every epoch.
    Epoch,
    /// One permutation drawn at the start, then kept.
    Once,
    /// Dataset order (see `sorted_by_label`).
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    Constant,
    /// Multiply by `lr_decay` every `lr_step_epochs` epochs.
    Step,
}

/// A batch size, or `"auto"` (chosen by a sweep with the configured policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSize {
    Fixed(usize),
    Auto,
}

impl Serialize for BatchSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BatchSize::Fixed(n) => s.serialize_u64(*n as u64),
            BatchSize::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(BatchSize::Fixed(n as usize)),
            Raw::S(s) if s == "auto" => Ok(BatchSize::Auto),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "expected a positive integer or \"auto\", got \"{s}\""
            ))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub batch_size: BatchSize,
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub lr_schedule: LrSchedule,
    pub lr_decay: f32,
    pub lr_step_epochs: usize,
    /// Stop after this many epochs (0 = no epoch limit).
    pub epochs: usize,
    /// Stop after this many steps (0 = no step limit).
    pub steps: u64,
    /// Use every training example exactly once (the online case), then stop.
    pub one_pass: bool,
    pub shuffle: Shuffle,
    /// With `shuffle = "none"`: order the training set by label (correlated minibatches).
    pub sorted_by_label: bool,
    /// Clip the gradient's global norm to this (0 = off).
    pub clip_norm: f32,
    /// Clip each gradient component to [-v, v] (0 = off).
    pub clip_value: f32,
    /// Early stopping on validation 0-1 error: evaluations without improvement (0 = off).
    pub patience: usize,
    /// Stop as soon as the validation 0-1 error is at most this (0 = off): time-to-target runs.
    pub target_val_error: f32,
    /// Evaluate on the validation set every this many steps (0 = once per epoch).
    pub eval_every: u64,
    /// At each evaluation also measure the loss and 0-1 error on the whole training set
    /// (resident data), not only the current minibatch.
    pub eval_train: bool,
    /// Read the step metrics back every this many steps.
    pub log_every: u64,
    /// Write a checkpoint every this many steps (0 = only at the end / best).
    pub checkpoint_every: u64,
    /// Seed of shuffling and other training randomness.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: BatchSize::Fixed(128),
            optimizer: OptimizerKind::Momentum,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            lr_schedule: LrSchedule::Constant,
            lr_decay: 0.1,
            lr_step_epochs: 10,
            epochs: 3,
            steps: 0,
            one_pass: false,
            shuffle: Shuffle::Epoch,
            sorted_by_label: false,
            clip_norm: 0.0,
            clip_value: 0.0,
            patience: 0,
            target_val_error: 0.0,
            eval_every: 0,
            eval_train: false,
            log_every: 10,
            checkpoint_every: 0,
            seed: 7,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    pub min_batch: usize,
    pub max_batch: usize,
    /// Untimed steps before timing each batch size.
    pub warmup_steps: usize,
    /// Timed steps per batch size.
    pub timed_steps: usize,
    /// `max_throughput`, `knee`, `knee:F`, `largest_fit`, `time_to_target:B_NOISE`.
    pub policy: String,
    /// Fraction of the best throughput the `knee` policy must reach.
    pub knee_fraction: f64,
    /// A doubling of B that gains less than this fraction of throughput marks the knee.
    pub knee_min_gain: f64,
    /// Device memory budget in MiB for the memory model (0 = the adapter's limits only).
    pub memory_budget_mib: u64,
    /// Wall-time budget of the whole sweep in seconds (0 = none): a batch size whose predicted
    /// time (twice the previous one's) would overrun it is skipped with the reason.
    pub time_budget_s: f64,
    /// The device's fp32 peak in GFLOP/s for "% of peak" columns (0 = NVML, the adapter
    /// table, or the measured matmul probe).
    #[serde(skip_serializing_if = "is_zero")]
    pub peak_gflops: f64,
    /// The device's memory bandwidth in GB/s (0 = NVML, the adapter table, or a measured copy).
    #[serde(skip_serializing_if = "is_zero")]
    pub peak_gbps: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            min_batch: 1,
            max_batch: 4096,
            warmup_steps: 2,
            timed_steps: 8,
            policy: "knee".into(),
            knee_fraction: 0.9,
            knee_min_gain: 0.1,
            memory_budget_mib: 0,
            time_budget_s: 600.0,
            peak_gflops: 0.0,
            peak_gbps: 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Every this many steps, measure gᵀg and gᵀHg (0 = off).
    pub curvature_every: u64,
    /// Every this many steps, estimate the noise scale B_simple from the minibatch gradient and
    /// the gradient of its first `noise_small_batch` examples (0 = off).
    pub noise_every: u64,
    /// The small batch of the two-batch estimator (0 = a quarter of the batch, at least 1).
    pub noise_small_batch: usize,
    /// EMA factor of the estimator's numerator and denominator.
    pub noise_ema: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig { curvature_every: 0, noise_every: 0, noise_small_batch: 0, noise_ema: 0.9 }
    }
}

impl Config {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.message().to_string() + &span_note(text, e.span()),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The embedded default config.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::from_toml(DEFAULT_TOML, "configs/default.toml (embedded)")
    }

    /// Load a file (or the embedded default when `path` is `None`) and apply `--set` overrides.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?,
                p.display().to_string(),
            ),
            None => (DEFAULT_TOML.to_string(), "configs/default.toml (embedded)".to_string()),
        };
        let mut doc: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            origin: origin.clone(),
            message: e.message().to_string() + &span_note(&text, e.span()),
        })?;
        for arg in overrides {
            apply_override(&mut doc, arg)?;
        }
        let merged = toml::to_string(&doc)
            .map_err(|e| ConfigError::Parse { origin: origin.clone(), message: e.to_string() })?;
        Self::from_toml(&merged, &origin)
    }

    /// The resolved config as TOML (written to every run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not serialise config: {e}\n"))
    }

    /// Layer sizes of the model: data inputs, hidden widths, data outputs.
    pub fn mlp_spec(&self) -> MlpSpec {
        let mut sizes = vec![self.data.dim];
        sizes.extend(&self.model.hidden);
        sizes.push(self.data_outputs());
        MlpSpec { sizes, activation: self.model.activation, loss: self.model.loss }
    }

    /// Model outputs implied by the data: classes, or regression outputs.
    pub fn data_outputs(&self) -> usize {
        match self.data.kind {
            DataKind::LinearRegression => self.data.outputs,
            DataKind::Npy if self.model.loss == LossKind::Mse => self.data.outputs,
            _ => self.data.classes,
        }
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        let d = &self.data;
        let t = &self.train;
        let s = &self.sweep;
        if self.model.hidden.contains(&0) {
            return Err(bad("model.hidden", "must hold positive widths".into()));
        }
        if !(self.model.init_scale.is_finite() && self.model.init_scale >= 0.0) {
            return Err(bad(
                "model.init_scale",
                format!("must be finite and ≥ 0, got {}", self.model.init_scale),
            ));
        }
        if d.dim == 0 && d.kind != DataKind::Npy {
            return Err(bad("data.dim", "must be ≥ 1".into()));
        }
        match d.kind {
            DataKind::LinearRegression => {
                if self.model.loss != LossKind::Mse {
                    return Err(bad(
                        "model.loss",
                        "must be \"mse\" for data.kind = \"linear_regression\"".into(),
                    ));
                }
                if d.outputs == 0 {
                    return Err(bad("data.outputs", "must be ≥ 1".into()));
                }
                if !(d.condition_number >= 1.0 && d.condition_number.is_finite()) {
                    return Err(bad(
                        "data.condition_number",
                        format!("must be a finite number ≥ 1, got {}", d.condition_number),
                    ));
                }
            }
            DataKind::GaussianMixture | DataKind::Teacher => {
                if self.model.loss != LossKind::SoftmaxXent {
                    return Err(bad(
                        "model.loss",
                        format!("must be \"softmax_xent\" for data.kind = \"{}\"", kind_name(d.kind)),
                    ));
                }
                if d.classes < 2 {
                    return Err(bad("data.classes", format!("must be ≥ 2, got {}", d.classes)));
                }
            }
            DataKind::Npy => {
                if d.features.is_none() {
                    return Err(bad("data.features", "is required for data.kind = \"npy\"".into()));
                }
                if d.labels.is_none() {
                    return Err(bad("data.labels", "is required for data.kind = \"npy\"".into()));
                }
                if d.mode == DataMode::Stream {
                    return Err(bad(
                        "data.mode",
                        "\"stream\" needs a synthetic kind; npy data is resident".into(),
                    ));
                }
                if !(0.0..1.0).contains(&d.val_fraction) {
                    return Err(bad(
                        "data.val_fraction",
                        format!("must be in [0, 1), got {}", d.val_fraction),
                    ));
                }
            }
        }
        if d.kind == DataKind::Teacher && d.mode == DataMode::Stream {
            return Err(bad(
                "data.mode",
                "\"stream\" supports gaussian_mixture and linear_regression; teacher data is resident"
                    .into(),
            ));
        }
        if d.n_train == 0 {
            return Err(bad("data.n_train", "must be ≥ 1".into()));
        }
        if d.mode == DataMode::Resident && d.n_train > u32::MAX as u64 {
            return Err(bad(
                "data.n_train",
                "a resident dataset holds at most 2^32-1 examples; use mode = \"stream\"".into(),
            ));
        }
        if !(0.0..=1.0).contains(&d.label_noise) {
            return Err(bad("data.label_noise", format!("must be in [0, 1], got {}", d.label_noise)));
        }
        if !(d.separation.is_finite() && d.separation >= 0.0) {
            return Err(bad("data.separation", format!("must be finite and ≥ 0, got {}", d.separation)));
        }
        if !(d.noise_std.is_finite() && d.noise_std >= 0.0) {
            return Err(bad("data.noise_std", format!("must be finite and ≥ 0, got {}", d.noise_std)));
        }
        if d.duplicates == 0 {
            return Err(bad("data.duplicates", "must be ≥ 1".into()));
        }
        if d.teacher_hidden == 0 {
            return Err(bad("data.teacher_hidden", "must be ≥ 1".into()));
        }
        if let BatchSize::Fixed(b) = t.batch_size {
            if b == 0 {
                return Err(bad("train.batch_size", "must be ≥ 1 or \"auto\"".into()));
            }
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(bad("train.lr", format!("must be a positive number, got {}", t.lr)));
        }
        if !(0.0..1.0).contains(&t.momentum) {
            return Err(bad("train.momentum", format!("must be in [0, 1), got {}", t.momentum)));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(bad("train.weight_decay", format!("must be ≥ 0, got {}", t.weight_decay)));
        }
        if !(t.lr_decay > 0.0 && t.lr_decay <= 1.0) {
            return Err(bad("train.lr_decay", format!("must be in (0, 1], got {}", t.lr_decay)));
        }
        if t.lr_schedule == LrSchedule::Step && t.lr_step_epochs == 0 {
            return Err(bad("train.lr_step_epochs", "must be ≥ 1 with lr_schedule = \"step\"".into()));
        }
        if t.epochs == 0 && t.steps == 0 && !t.one_pass {
            return Err(bad(
                "train.epochs",
                "epochs, steps and one_pass are all off: training would never stop".into(),
            ));
        }
        if !(t.clip_norm.is_finite() && t.clip_norm >= 0.0) {
            return Err(bad("train.clip_norm", format!("must be ≥ 0 (0 = off), got {}", t.clip_norm)));
        }
        if !(t.clip_value.is_finite() && t.clip_value >= 0.0) {
            return Err(bad("train.clip_value", format!("must be ≥ 0 (0 = off), got {}", t.clip_value)));
        }
        if !(0.0..1.0).contains(&t.target_val_error) {
            return Err(bad(
                "train.target_val_error",
                format!("must be in [0, 1) (0 = off), got {}", t.target_val_error),
            ));
        }
        if t.log_every == 0 {
            return Err(bad("train.log_every", "must be ≥ 1".into()));
        }
        if t.eval_train && d.mode == DataMode::Stream {
            return Err(bad(
                "train.eval_train",
                "needs resident data (a stream has no training set to evaluate)".into(),
            ));
        }
        if t.sorted_by_label && t.shuffle != Shuffle::None {
            return Err(bad("train.sorted_by_label", "needs shuffle = \"none\"".into()));
        }
        if !(0.0..1.0).contains(&self.monitor.noise_ema) {
            return Err(bad(
                "monitor.noise_ema",
                format!("must be in [0, 1), got {}", self.monitor.noise_ema),
            ));
        }
        if let BatchSize::Fixed(bsz) = t.batch_size {
            if self.monitor.noise_every > 0 && bsz < 2 {
                return Err(bad(
                    "monitor.noise_every",
                    "needs train.batch_size ≥ 2 (two batch sizes)".into(),
                ));
            }
            if self.monitor.noise_small_batch >= bsz && self.monitor.noise_every > 0 {
                return Err(bad(
                    "monitor.noise_small_batch",
                    format!("must be smaller than train.batch_size ({bsz})"),
                ));
            }
        }
        if s.min_batch == 0 {
            return Err(bad("sweep.min_batch", "must be ≥ 1".into()));
        }
        if s.max_batch < s.min_batch {
            return Err(bad("sweep.max_batch", format!("must be ≥ sweep.min_batch ({})", s.min_batch)));
        }
        if !(s.time_budget_s.is_finite() && s.time_budget_s >= 0.0) {
            return Err(bad(
                "sweep.time_budget_s",
                format!("must be ≥ 0 seconds (0 = none), got {}", s.time_budget_s),
            ));
        }
        if s.timed_steps == 0 {
            return Err(bad("sweep.timed_steps", "must be ≥ 1".into()));
        }
        for (key, v) in [("sweep.peak_gflops", s.peak_gflops), ("sweep.peak_gbps", s.peak_gbps)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(key, format!("must be ≥ 0 (0 = look the peak up), got {v}")));
            }
        }
        if !(s.knee_fraction > 0.0 && s.knee_fraction <= 1.0) {
            return Err(bad(
                "sweep.knee_fraction",
                format!("must be in (0, 1], got {}", s.knee_fraction),
            ));
        }
        if !(s.knee_min_gain > 0.0 && s.knee_min_gain.is_finite()) {
            return Err(bad("sweep.knee_min_gain", format!("must be > 0, got {}", s.knee_min_gain)));
        }
        Ok(())
    }
}

fn kind_name(k: DataKind) -> &'static str {
    match k {
        DataKind::GaussianMixture => "gaussian_mixture",
        DataKind::Teacher => "teacher",
        DataKind::LinearRegression => "linear_regression",
        DataKind::Npy => "npy",
    }
}

fn span_note(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// Apply `section.key=value` to a TOML table; the value is parsed as TOML (falling back to a
/// bare string), so `--set train.lr=0.1`, `--set model.hidden=[64,64]`, `--set data.kind=teacher`.
pub fn apply_override(doc: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err =
        |message: &str| ConfigError::Override { arg: arg.to_string(), message: message.to_string() };
    let (key, raw) = arg.split_once('=').ok_or_else(|| err("expected section.key=value"))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(err("the key must be section.key, e.g. train.lr"));
    }
    let value = parse_value(raw.trim());
    let section =
        doc.entry(parts[0].to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match section {
        toml::Value::Table(t) => {
            t.insert(parts[1].to_string(), value);
            Ok(())
        }
        _ => Err(err("that section is not a table")),
    }
}

fn parse_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default().expect("default config");
        assert_eq!(c.mlp_spec().sizes.first(), Some(&c.data.dim));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let e = Config::from_toml("[train]\nlearning_rate = 0.1\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("learning_rate"), "{e}");
        let e = Config::from_toml("[trian]\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("trian"), "{e}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        for (toml, key) in [
            ("[train]\nlr = -1.0\n", "train.lr"),
            ("[train]\nbatch_size = 0\n", "train.batch_size"),
            ("[data]\nlabel_noise = 2.0\n", "data.label_noise"),
            ("[sweep]\nmin_batch = 8\nmax_batch = 4\n", "sweep.max_batch"),
            ("[data]\nkind = \"linear_regression\"\n", "model.loss"),
        ] {
            let e = Config::from_toml(toml, "t.toml").unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn batch_size_accepts_auto() {
        let c = Config::from_toml("[train]\nbatch_size = \"auto\"\n", "t").unwrap();
        assert_eq!(c.train.batch_size, BatchSize::Auto);
        assert!(Config::from_toml("[train]\nbatch_size = \"big\"\n", "t").is_err());
    }

    #[test]
    fn overrides_apply_and_are_validated() {
        let c = Config::load(
            None,
            &["train.lr=0.5".into(), "model.hidden=[8, 4]".into(), "data.kind=teacher".into()],
        )
        .unwrap();
        assert_eq!(c.train.lr, 0.5);
        assert_eq!(c.model.hidden, vec![8, 4]);
        assert_eq!(c.data.kind, DataKind::Teacher);
        assert!(Config::load(None, &["train.lr".into()]).is_err());
        assert!(Config::load(None, &["lr=0.1".into()]).is_err());
        let e = Config::load(None, &["train.nope=1".into()]).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = Config::embedded_default().unwrap();
        let again = Config::from_toml(&c.to_toml(), "resolved").unwrap();
        assert_eq!(c, again);
    }
}

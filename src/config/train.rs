//! The train and monitor sections of a `train` config.

use serde::{Deserialize, Serialize};

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
        use serde::de::{Error, Visitor};
        struct Expect;
        const WANT: &str = "a positive integer or \"auto\"";
        impl Visitor<'_> for Expect {
            type Value = BatchSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(WANT)
            }
            fn visit_u64<E: Error>(self, n: u64) -> Result<BatchSize, E> {
                usize::try_from(n).map(BatchSize::Fixed).map_err(|_| {
                    E::custom(format!("expected {WANT}, got {n}, past this machine's range"))
                })
            }
            fn visit_i64<E: Error>(self, n: i64) -> Result<BatchSize, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("expected {WANT}, got {n}"))),
                }
            }
            fn visit_f64<E: Error>(self, x: f64) -> Result<BatchSize, E> {
                // `1e3` is a float in TOML: "got 1000" read as a valid value.
                Err(E::custom(format!(
                    "expected {WANT}, got {x} as a float (a batch size is written without a point or exponent)"
                )))
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<BatchSize, E> {
                match s {
                    "auto" => Ok(BatchSize::Auto),
                    _ => Err(E::custom(format!("expected {WANT}, got \"{s}\""))),
                }
            }
        }
        d.deserialize_any(Expect)
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
    /// Stop once the run has trained this many seconds of wall time, its resumed sessions
    /// included (0 = off): PyTorch Lightning's `max_time`, for a budget in time, not steps.
    pub max_seconds: f64,
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
    /// Gradient accumulation: each step runs this many micro-batches of `batch_size /
    /// (accumulate · workers)` rows and makes one update (1 = off). Written to config.toml only
    /// when not 1.
    #[serde(skip_serializing_if = "is_one")]
    pub accumulate: usize,
    /// Data-parallel replicas in this host, each on `batch_size / workers` rows of every global
    /// batch (1 = off; `--workers` sets it). Written to config.toml only when not 1.
    #[serde(skip_serializing_if = "is_one")]
    pub workers: usize,
    /// Initial loss scale of `model.precision = "f16"` (GradScaler's `init_scale`). Written to
    /// config.toml only when not the default.
    #[serde(skip_serializing_if = "is_default_loss_scale")]
    pub loss_scale: f32,
    /// Clean f16 steps after which the loss scale doubles (GradScaler's `growth_interval`).
    #[serde(skip_serializing_if = "is_default_growth_interval")]
    pub loss_scale_growth_interval: u32,
}

/// GradScaler's defaults.
pub const DEFAULT_LOSS_SCALE: f32 = 65536.0;
pub const DEFAULT_GROWTH_INTERVAL: u32 = 2000;

/// Why `s` cannot be a loss scale, or `None` when it can: it must be a normal f32, at least
/// 2^-126 (f32's smallest normal), so that 1/S, which unscales every gradient, is finite too.
pub fn loss_scale_problem(s: f32) -> Option<String> {
    match s.is_finite() && s >= f32::MIN_POSITIVE && (1.0 / s).is_finite() {
        true => None,
        false => Some(format!("must be finite and ≥ 2^-126 ({:e}), got {s}", f32::MIN_POSITIVE)),
    }
}

fn is_default_loss_scale(v: &f32) -> bool {
    *v == DEFAULT_LOSS_SCALE
}

fn is_default_growth_interval(v: &u32) -> bool {
    *v == DEFAULT_GROWTH_INTERVAL
}

fn is_one(v: &usize) -> bool {
    *v == 1
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
            max_seconds: 0.0,
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
            accumulate: 1,
            workers: 1,
            loss_scale: DEFAULT_LOSS_SCALE,
            loss_scale_growth_interval: DEFAULT_GROWTH_INTERVAL,
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

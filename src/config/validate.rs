//! Range checks of a `train` config; every message names its key.

use super::{BatchSize, Config, ConfigError, DataKind, DataMode, LrSchedule, Shuffle};
use crate::model::LossKind;

/// The most hidden layers of an MLP: every layer costs host bookkeeping that the memory
/// check does not weigh, and far past the depths chapter 8 studies (tens) a config this long is
/// a mistake.
pub const MAX_HIDDEN_LAYERS: usize = 100_000;

/// The most warm-up or timed steps a sweep runs per batch size.
pub const MAX_SWEEP_STEPS: usize = 100_000;
/// The most `sweep.rounds` a sweep runs (each times every batch size again).
pub const MAX_SWEEP_ROUNDS: usize = 100;

/// The widest teacher MLP of `data.kind = "teacher"`: its labels are computed on the host,
/// `data.dim × width` multiply-adds each (and 4096 calibration inputs besides); 64 × the
/// default student's width is far past what a teacher-student experiment needs.
pub const MAX_TEACHER_HIDDEN: usize = 65_536;

/// Most repeats of one distinct example (`data.duplicates`): the GPU generator indexes them,
/// plus a minibatch's rows, in 32 bits.
pub const MAX_DUPLICATES: u64 = 1 << 31;

/// Held-out inputs on which a teacher's biases are balanced (`data::synth`).
pub const TEACHER_CALIBRATION_INPUTS: usize = 4096;

/// The most classes a teacher labels: at least 4 calibration inputs a class on average (with
/// more, the balance it fits is noise, and the fit's logits grow as inputs × classes).
pub const MAX_TEACHER_CLASSES: usize = TEACHER_CALIBRATION_INPUTS / 4;

/// The most multiply-adds a teacher's labels may cost on the host (2^36, about 14 s on one
/// 2-core development VM): `(n_train + n_val + calibration inputs) × width × (dim + classes)`.
pub const MAX_TEACHER_WORK: f64 = (1u64 << 36) as f64;

impl Config {
    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let check = Check(origin);
        let bad = |key: &str, message: String| check.bad(key, message);
        let d = &self.data;
        let t = &self.train;
        let s = &self.sweep;
        if self.model.hidden.contains(&0) {
            return Err(bad("model.hidden", "must hold positive widths".into()));
        }
        if self.model.hidden.len() > MAX_HIDDEN_LAYERS {
            return Err(bad(
                "model.hidden",
                format!(
                    "{} hidden layers are more than the {MAX_HIDDEN_LAYERS} a model may have",
                    self.model.hidden.len()
                ),
            ));
        }
        check.non_negative("model.init_scale", self.model.init_scale, "must be finite and ≥ 0")?;
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
                check.at_least_one("data.outputs", d.outputs)?;
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
        check.at_least_one("data.n_train", d.n_train)?;
        if d.mode == DataMode::Resident && d.n_train > u32::MAX as u64 {
            return Err(bad(
                "data.n_train",
                format!("= {} is past the 2^32-1 examples a resident dataset holds; use data.mode = \"stream\"", d.n_train),
            ));
        }
        super::data_limits::check(d, &bad)?;
        if !(0.0..=1.0).contains(&d.label_noise) {
            return Err(bad("data.label_noise", format!("must be in [0, 1], got {}", d.label_noise)));
        }
        check.non_negative("data.separation", d.separation, "must be finite and ≥ 0")?;
        check.non_negative("data.noise_std", d.noise_std, "must be finite and ≥ 0")?;
        check.at_least_one("data.duplicates", d.duplicates)?;
        // The GPU's generator indexes a distinct example's repeats in 32 bits, with a minibatch's
        // rows on top: past 2^31 a stream ran on the CPU and failed at the GPU's first batch.
        if d.duplicates as u64 > MAX_DUPLICATES {
            return Err(bad(
                "data.duplicates",
                format!(
                    "= {} repeats are more than the 2^31 = {MAX_DUPLICATES} the data generators index",
                    d.duplicates
                ),
            ));
        }
        check.at_least_one("data.teacher_hidden", d.teacher_hidden)?;
        if d.teacher_hidden > MAX_TEACHER_HIDDEN {
            return Err(bad(
                "data.teacher_hidden",
                format!(
                    "{} is wider than the {MAX_TEACHER_HIDDEN} a teacher may be (every label costs data.dim × width multiply-adds on the host)",
                    d.teacher_hidden
                ),
            ));
        }
        if d.kind == DataKind::Teacher {
            super::data_limits::teacher_fits(d, &bad)?;
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
        check.non_negative("train.weight_decay", t.weight_decay, "must be ≥ 0")?;
        if !(t.lr_decay > 0.0 && t.lr_decay <= 1.0) {
            return Err(bad("train.lr_decay", format!("must be in (0, 1], got {}", t.lr_decay)));
        }
        if t.lr_schedule == LrSchedule::Step && t.lr_step_epochs == 0 {
            return Err(bad("train.lr_step_epochs", "must be ≥ 1 with lr_schedule = \"step\"".into()));
        }
        check.non_negative(
            "train.max_seconds",
            t.max_seconds,
            "must be a number of seconds ≥ 0 (0 = off)",
        )?;
        if t.epochs == 0 && t.steps == 0 && !t.one_pass && t.max_seconds == 0.0 {
            // Named by the key the command line turned off, where it did (it blamed
            // train.epochs, and the file, for a --set train.steps=0).
            let stops = ["train.steps", "train.epochs", "train.one_pass"];
            let set = stops.into_iter().find(|k| check.overridden(k)).unwrap_or("train.epochs");
            let value = if set == "train.one_pass" { "false" } else { "0" };
            return Err(bad(
                set,
                format!(
                    "= {value}, and train.epochs, train.steps, train.one_pass and train.max_seconds are all off: training would never stop"
                ),
            ));
        }
        check.non_negative("train.clip_norm", t.clip_norm, "must be ≥ 0 (0 = off)")?;
        check.non_negative("train.clip_value", t.clip_value, "must be ≥ 0 (0 = off)")?;
        if let Some(why) = super::train::loss_scale_problem(t.loss_scale) {
            return Err(bad("train.loss_scale", why));
        }
        check.at_least_one("train.loss_scale_growth_interval", t.loss_scale_growth_interval)?;
        // The clean-step count is an f32 on the device, exact to 2^24: past it the scale would
        // grow late or never.
        if t.loss_scale_growth_interval > 1 << 24 {
            return Err(bad(
                "train.loss_scale_growth_interval",
                format!(
                    "= {} is past 2^24 = 16777216, the clean steps the device's f32 counter counts exactly",
                    t.loss_scale_growth_interval
                ),
            ));
        }
        if !(0.0..1.0).contains(&t.target_val_error) {
            return Err(bad(
                "train.target_val_error",
                format!("must be in [0, 1) (0 = off), got {}", t.target_val_error),
            ));
        }
        check.at_least_one("train.log_every", t.log_every)?;
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
        self.validate_parallel(&bad)?;
        check.at_least_one("sweep.min_batch", s.min_batch)?;
        if s.max_batch < s.min_batch {
            // The key the command line set is the one named (a --set sweep.min_batch=128 read
            // "`sweep.max_batch` must be ≥ ...", blaming the file).
            return Err(
                match check.overridden("sweep.min_batch") && !check.overridden("sweep.max_batch") {
                    true => {
                        bad("sweep.min_batch", format!("must be ≤ sweep.max_batch ({})", s.max_batch))
                    }
                    false => {
                        bad("sweep.max_batch", format!("must be ≥ sweep.min_batch ({})", s.min_batch))
                    }
                },
            );
        }
        check.non_negative("sweep.time_budget_s", s.time_budget_s, "must be ≥ 0 seconds (0 = none)")?;
        check.at_least_one("sweep.timed_steps", s.timed_steps)?;
        check.at_least_one("sweep.rounds", s.rounds)?;
        if s.rounds > MAX_SWEEP_ROUNDS {
            return Err(bad(
                "sweep.rounds",
                format!("{} rounds are more than the {MAX_SWEEP_ROUNDS} a sweep runs", s.rounds),
            ));
        }
        // Every timed step is kept (summary.json, the pick's resampling): bound them all.
        if s.rounds.saturating_mul(s.timed_steps) > MAX_SWEEP_STEPS && s.timed_steps <= MAX_SWEEP_STEPS {
            return Err(bad(
                "sweep.rounds",
                format!(
                    "{} rounds of sweep.timed_steps = {} are {} timed steps per batch size, more than the {MAX_SWEEP_STEPS} a sweep times",
                    s.rounds,
                    s.timed_steps,
                    s.rounds.saturating_mul(s.timed_steps)
                ),
            ));
        }
        // With no time budget nothing else ends a batch size's timing: bound the step counts
        // (a median of 10⁵ steps is far past what a timing needs).
        for (key, steps) in
            [("sweep.warmup_steps", s.warmup_steps), ("sweep.timed_steps", s.timed_steps)]
        {
            if steps > MAX_SWEEP_STEPS {
                return Err(bad(
                    key,
                    format!(
                        "{steps} steps per batch size are more than the {MAX_SWEEP_STEPS} a sweep times"
                    ),
                ));
            }
        }
        for (key, v) in [("sweep.peak_gflops", s.peak_gflops), ("sweep.peak_gbps", s.peak_gbps)] {
            check.non_negative(key, v, "must be ≥ 0 (0 = look the peak up)")?;
            // A device's peak, not a denormal or 1e308: every "% of peak" divides by it.
            if v != 0.0 && !(1e-3..=1e9).contains(&v) {
                return Err(bad(key, format!("must be 0 (look it up) or in [1e-3, 1e9], got {v:e}")));
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

/// Why a sweep over `min_batch..=max_batch` would time nothing (it sweeps the powers of two
/// in the range), if it would.
pub fn sweep_range_problem(min_batch: usize, max_batch: usize) -> Option<String> {
    if max_batch < min_batch {
        return Some(format!("must be ≥ sweep.min_batch ({min_batch})"));
    }
    match min_batch.checked_next_power_of_two() {
        Some(b) if b <= max_batch => None,
        _ => Some(format!(
            "{min_batch}..{max_batch} holds no power of two, the batch sizes a sweep times"
        )),
    }
}

impl Config {
    /// The first setting of this config that the run would ignore, as an error naming its key:
    /// a run told to do something it then does not do is a wrong result, not a harmless one.
    /// New runs refuse these ([`Config::from_table`]); a resumed run, whose config.toml an
    /// older batchscope may have accepted, is only warned ([`Config::from_table_resumed`]).
    pub(super) fn ignored_setting(&self, origin: &str) -> Result<(), ConfigError> {
        let check = Check(origin);
        let bad = |key: &str, message: String| check.bad(key, message);
        let (d, t) = (&self.data, &self.train);
        if d.mode == DataMode::Stream && t.sorted_by_label {
            return Err(bad(
                "train.sorted_by_label",
                "orders a resident dataset; data.mode = \"stream\" reads examples in stream order"
                    .into(),
            ));
        }
        // A stream is read in stream order: `none` is that order, and `epoch` (the default)
        // has nothing to reshuffle; one permutation kept for the run would not be drawn.
        if d.mode == DataMode::Stream && t.shuffle == Shuffle::Once {
            return Err(bad(
                "train.shuffle",
                "= \"once\" permutes a resident dataset; data.mode = \"stream\" reads examples in stream order (each an i.i.d. draw)"
                    .into(),
            ));
        }
        self.data_key_of_another_kind(&bad)?;
        // A regression has targets, not labels: nothing for these to corrupt or sort by.
        if self.model.loss == LossKind::Mse {
            if d.label_noise != 0.0 {
                return Err(bad(
                    "data.label_noise",
                    "replaces class labels; a regression (model.loss = \"mse\") has targets, which it leaves as they are".into(),
                ));
            }
            if t.sorted_by_label {
                return Err(bad(
                    "train.sorted_by_label",
                    "orders examples by class label; a regression (model.loss = \"mse\") has none, and kept the data's order".into(),
                ));
            }
        }
        if let (LossKind::Mse, Some(key)) = (self.model.loss, self.val_error_user()) {
            return Err(bad(
                key,
                "reads the validation 0-1 error, which a regression (model.loss = \"mse\") does not have".into(),
            ));
        }
        if d.kind == DataKind::Npy {
            if d.label_noise != 0.0 {
                return Err(bad(
                    "data.label_noise",
                    "corrupts synthetic labels; npy labels are used as the file holds them".into(),
                ));
            }
            // The files' rows are the data, split by data.val_fraction: a count changed nothing.
            let def = super::DataConfig::default();
            for (key, set) in
                [("data.n_train", d.n_train != def.n_train), ("data.n_val", d.n_val != def.n_val)]
            {
                if set {
                    return Err(bad(
                        key,
                        "counts generated examples; data.kind = \"npy\" trains on the files' rows, split by data.val_fraction".into(),
                    ));
                }
            }
            return Ok(());
        }
        // Synthetic example i is distinct example i / duplicates: with more repeats than
        // examples no distinct example is repeated in full.
        if d.duplicates as u64 > d.n_train {
            return Err(bad(
                "data.duplicates",
                format!(
                    "{} repeats of each distinct example are more than the {} training examples (data.n_train)",
                    d.duplicates, d.n_train
                ),
            ));
        }
        if let (0, Some(key)) = (d.n_val, self.validation_user()) {
            return Err(bad(key, "needs a validation set, and data.n_val = 0 holds none".into()));
        }
        for (key, set) in [("data.features", d.features.is_some()), ("data.labels", d.labels.is_some())]
        {
            if set {
                return Err(bad(
                    key,
                    format!("is read for data.kind = \"npy\"; {} data is generated", kind_name(d.kind)),
                ));
            }
        }
        if d.val_fraction != super::DataConfig::default().val_fraction {
            return Err(bad(
                "data.val_fraction",
                format!(
                    "splits data.kind = \"npy\" files; {} data has its own validation set of data.n_val = {} examples",
                    kind_name(d.kind),
                    d.n_val
                ),
            ));
        }
        Ok(())
    }

    /// The key of the first setting that reads the validation set (a target error, early
    /// stopping, evaluations of the validation set alone), if any: it needs validation examples.
    pub fn validation_user(&self) -> Option<&'static str> {
        match self.val_error_user() {
            // Early stopping follows the validation 0-1 error, or a regression's loss.
            None if self.train.patience > 0 => Some("train.patience"),
            // Its evaluations measure the validation set alone (eval_train adds the training set).
            None if self.train.eval_every > 0 && !self.train.eval_train => Some("train.eval_every"),
            user => user,
        }
    }

    /// The key of the setting that reads the validation 0-1 error (a target error), if any: a
    /// regression has none.
    fn val_error_user(&self) -> Option<&'static str> {
        (self.train.target_val_error > 0.0).then_some("train.target_val_error")
    }
}

pub(super) fn kind_name(k: DataKind) -> &'static str {
    match k {
        DataKind::GaussianMixture => "gaussian_mixture",
        DataKind::Teacher => "teacher",
        DataKind::LinearRegression => "linear_regression",
        DataKind::Npy => "npy",
    }
}

/// Checks that name the failing key and the config's origin in their error.
pub(super) struct Check<'a>(pub &'a str);

impl Check<'_> {
    pub fn bad(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid { origin: self.0.to_string(), key: key.to_string(), message }
    }

    /// Whether `--set` (or a flag) gave dotted `key` its value.
    pub fn overridden(&self, key: &str) -> bool {
        let keys: Vec<String> = key.split('.').map(str::to_string).collect();
        super::source_map::is_overridden(self.0, &keys)
    }

    /// A count that must be ≥ 1.
    pub fn at_least_one<T: Default + PartialEq>(&self, key: &str, value: T) -> Result<(), ConfigError> {
        if value == T::default() {
            return Err(self.bad(key, "must be ≥ 1".into()));
        }
        Ok(())
    }

    /// A finite value ≥ 0; `rule` is the message's start ("must be ≥ 0 (0 = off)").
    pub fn non_negative<T>(&self, key: &str, value: T, rule: &str) -> Result<(), ConfigError>
    where
        T: Copy + std::fmt::Display + Into<f64>,
    {
        let v: f64 = value.into();
        if !(v.is_finite() && v >= 0.0) {
            return Err(self.bad(key, format!("{rule}, got {value}")));
        }
        Ok(())
    }
}

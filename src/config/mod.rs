//! Run configuration: TOML with unknown keys rejected, defaults for every key, validation that
//! names the key, and `--set section.key=value` overrides.
//!
//! One loader (`loader::ConfigText`) reads every command's file: the `train` config
//! (`Config`: model, data, train, sweep, monitor), the `rnn` and `depth` configs
//! (`rnn::RnnConfig`, `rnn::DepthConfig`) and the `[landscape]` section
//! (`landscape::LandscapeConfig`), with `[[variant]]` tables for experiments run several times.

mod data_limits;
mod foreign_keys;
mod gpu;
pub mod landscape;
pub mod loader;
mod model;
mod parallel;
pub mod policy;
pub mod rnn;
pub mod sequences;
mod source_map;
mod sweep;
mod train;
mod type_hints;
mod validate;
pub use validate::{sweep_range_problem, MAX_SWEEP_ROUNDS, MAX_SWEEP_STEPS, TEACHER_CALIBRATION_INPUTS};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{LossKind, MlpSpec};

pub use gpu::GpuConfig;
pub use landscape::{DirSpec, LandscapeConfig, Mode, LANDSCAPE_DEFAULT_TOML};
pub use loader::{apply_override, conflicting_sets, deserialize, ConfigText, Variant};
pub use model::{DataConfig, DataKind, DataMode, ModelConfig};
pub use parallel::{check_worker_counts, MAX_WORKERS};
pub use rnn::{
    DepthConfig, DiagnosticsConfig, RnnConfig, RnnModelConfig, RnnTrainConfig, SequenceConfig,
    DEPTH_DEFAULT_TOML, RNN_DEFAULT_TOML,
};
pub use sweep::{SweepConfig, SweepPolicy};
pub use train::{
    loss_scale_problem, BatchSize, LrSchedule, MonitorConfig, OptimizerKind, Shuffle, TrainConfig,
};

/// The embedded default: `batchscope sweep` with no config runs this.
pub const DEFAULT_TOML: &str = include_str!("../../configs/default.toml");
/// The embedded default of `batchscope time-to-target` (the MLP default sets no target).
pub const TIME_TO_TARGET_DEFAULT_TOML: &str = include_str!("../../configs/time_to_target.toml");
/// How errors name the embedded default.
const DEFAULT_ORIGIN: &str = "configs/default.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    /// Named by where the value came from: the file, or the command line (`--set`, or a flag
    /// that sets the key) when that gave the key its value.
    #[error("{}", invalid_text(origin, key, message))]
    Invalid { origin: String, key: String, message: String },
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
    #[error("config {origin}: {message}")]
    TooLarge { origin: String, message: String },
}

/// The text of [`ConfigError::Invalid`]: `config FILE: `key` …` for a value the file holds,
/// `` `key` set on the command line … `` for one `--set` (or a flag) gave, which no line of the
/// file can fix. (Which keys were set is known on the thread that loaded the config, where its
/// errors are reported; elsewhere the file is named.)
fn invalid_text(origin: &str, key: &str, message: &str) -> String {
    let keys: Vec<String> = key.split('.').map(str::to_string).collect();
    // A predicate reads on from the key ("`train.steps` must be ≥ 1"); a sentence of its own
    // ("the adding problem needs length ≥ 2") is set off by a colon.
    const PREDICATES: [&str; 8] = ["must", "=", "is ", "are ", "needs ", "lists ", "cannot ", "has "];
    let sep = match PREDICATES.iter().any(|p| message.starts_with(p)) {
        true => " ",
        false => ": ",
    };
    // A variant's `set` list wins over a --set of the key in its run: then the variant gave it.
    let by_set = !source_map::is_variant_set(origin, &keys) && source_map::is_overridden(origin, &keys);
    if key.contains('.') && by_set {
        format!("`{key}` set on the command line{sep}{message}")
    } else {
        format!("config {origin}: `{key}`{sep}{message}")
    }
}

/// The config of `train`, `sweep`, `compare`, `noise`, `curvature`, `time-to-target` (and the
/// model part of `depth` and `landscape`).
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
    /// GPU kernel choice (`[gpu]`); omitted from config.toml while it is the default.
    #[serde(default, skip_serializing_if = "GpuConfig::is_default")]
    pub gpu: GpuConfig,
}

impl Config {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::from_table(loader::parse_text(text, origin)?, origin)
    }

    /// Deserialize and validate a table (a file with its overrides applied). Pure: what data
    /// files imply and the host memory check come after, in [`crate::schedule::admit`].
    pub fn from_table(table: toml::Table, origin: &str) -> Result<Self, ConfigError> {
        let given = table.clone();
        let mut cfg: Config = deserialize(table, origin)?;
        cfg.make_data_paths_absolute();
        cfg.validate(origin).map_err(|e| type_hints::rounding_note(e, &given))?;
        cfg.ignored_setting(origin)?;
        Ok(cfg)
    }

    /// [`Config::from_table`] for a resumed run's config.toml: a setting the run ignores (which
    /// an older batchscope accepted, and which a resume may not change) is a warning when
    /// `warn`, else passed over (a second read of the same file).
    pub fn from_table_resumed(
        table: toml::Table,
        origin: &str,
        warn: bool,
    ) -> Result<Self, ConfigError> {
        let given = table.clone();
        let mut cfg: Config = deserialize(table, origin)?;
        cfg.make_data_paths_absolute();
        cfg.validate(origin).map_err(|e| type_hints::rounding_note(e, &given))?;
        if let (Err(e), true) = (cfg.ignored_setting(origin), warn) {
            log::warn!("{e}; the resumed run goes on as it began");
        }
        Ok(cfg)
    }

    /// `.npy` paths, relative ones taken from the current directory, made absolute (without
    /// following links): the run's config.toml then names the files it read wherever a later
    /// `--resume` runs from (a relative path was read from the resuming process's directory, and
    /// a run could not be resumed from anywhere else).
    fn make_data_paths_absolute(&mut self) {
        for path in [&mut self.data.features, &mut self.data.labels].into_iter().flatten() {
            if path.is_relative() && !path.as_os_str().is_empty() {
                if let Ok(absolute) = std::path::absolute(&*path) {
                    *path = absolute;
                }
            }
        }
    }

    /// Validate again after a value was resolved at run time (the batch size `"auto"` picks):
    /// the checks that need a fixed batch size run now.
    pub fn validate_resolved(&self, origin: &str) -> Result<(), ConfigError> {
        self.validate(origin)?;
        self.ignored_setting(origin)
    }

    /// The smallest batch size `train.batch_size = "auto"` may pick, and why: the noise
    /// monitor's probe takes `monitor.noise_small_batch` rows (or B/4), fewer than B; every one
    /// of `train.workers` × `train.accumulate` micro-batches holds at least one row. `None` when
    /// nothing bounds it.
    pub fn auto_batch_floor(&self) -> Option<(usize, &'static str)> {
        let m = &self.monitor;
        let noise = (m.noise_every > 0)
            .then(|| (m.noise_small_batch.saturating_add(1).max(2), "monitor.noise_small_batch + 1"));
        let split = self.train.workers.max(1).saturating_mul(self.train.accumulate.max(1));
        let parallel = (split > 1).then_some((split, "train.workers × train.accumulate"));
        [noise, parallel].into_iter().flatten().max_by_key(|&(floor, _)| floor)
    }

    /// Whether the table sets `data.classes` (absent means "infer it from `.npy` labels").
    pub fn sets_classes(table: &toml::Table) -> bool {
        Self::sets_data_key(table, "classes")
    }

    /// Whether `table` (a file with its overrides) writes `data.{key}` (else it is the default,
    /// which `.npy` data replaces by what its files hold).
    pub fn sets_data_key(table: &toml::Table, key: &str) -> bool {
        table.get("data").and_then(|d| d.as_table()).is_some_and(|d| d.contains_key(key))
    }

    /// The embedded default config.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::load(None, &[])
    }

    /// The text of a file (or of the embedded default when `path` is `None`) with `--set`
    /// overrides applied, as a table.
    pub fn load_text(path: Option<&Path>, overrides: &[String]) -> Result<ConfigText, ConfigError> {
        ConfigText::load(path, DEFAULT_TOML, DEFAULT_ORIGIN, overrides)
    }

    /// [`Config::load_text`] with another embedded default (`default_toml`, named `origin`).
    pub fn load_text_or(
        path: Option<&Path>,
        overrides: &[String],
        default_toml: &str,
        origin: &str,
    ) -> Result<ConfigText, ConfigError> {
        ConfigText::load(path, default_toml, origin, overrides)
    }

    /// Load a file (or the embedded default) and apply `--set` overrides; parse and validate.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = Self::load_text(path, overrides)?;
        Self::from_table(text.table, &text.origin)
    }

    /// The resolved config as TOML (written to every run directory), without the data keys
    /// its data kind and loss do not read ([`Config::unread_data_keys`]): an `.npy` run's file
    /// said `n_train = 16384` and `separation = 3.0` of data it never generated.
    pub fn to_toml(&self) -> String {
        let text = match toml::to_string_pretty(self) {
            Ok(text) => text,
            Err(e) => return format!("# could not serialise config: {e}\n"),
        };
        let unread = self.unread_data_keys();
        let mut section = "";
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            if line.starts_with('[') {
                section = line.trim_end();
            }
            let key = line.split(" = ").next().unwrap_or_default();
            if !(section == "[data]" && unread.contains(&key)) {
                out.push_str(line);
            }
        }
        out
    }

    /// The dotted keys (`section.key`) whose values differ between `self` and `other`, with
    /// each one's value in `self` and in `other` as TOML text (a key the TOML leaves out, like
    /// `model.precision = "f32"`, shows its default).
    pub fn differences(&self, other: &Config) -> Vec<(String, String, String)> {
        // Through the text config.toml holds: an f32 shows as written (0.3), not widened to
        // f64 (0.30000001192092896).
        // Every key, those the data kind does not read too (config.toml leaves them out, and a
        // key present on one side only is no difference).
        let table = |c: &Config| {
            toml::to_string_pretty(c)
                .ok()
                .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
                .unwrap_or_default()
        };
        let (a, b) = (table(self), table(other));
        // Every key at its default, written out (sections skip theirs when all are default).
        let defaults = deserialize::<Config>(toml::Table::new(), "defaults")
            .ok()
            .map(|d| toml::Value::Table(table(&d)));
        let show = |section: &str, key: Option<&str>, v: Option<&toml::Value>| match v {
            Some(v) => v.to_string(),
            None => defaults
                .as_ref()
                .and_then(|d| d.get(section))
                .and_then(|s| match key {
                    Some(k) => s.get(k),
                    None => Some(s),
                })
                .map_or_else(|| "the default".to_string(), |v| format!("{v} (the default)")),
        };
        let mut out = Vec::new();
        let sections: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for section in sections {
            let (sa, sb) = (a.get(section), b.get(section));
            match (sa.and_then(|v| v.as_table()), sb.and_then(|v| v.as_table())) {
                (Some(ta), Some(tb)) => {
                    let keys: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
                    for key in keys {
                        let (va, vb) = (ta.get(key), tb.get(key));
                        if va != vb {
                            let shown = |v| show(section, Some(key), v);
                            out.push((format!("{section}.{key}"), shown(va), shown(vb)));
                        }
                    }
                }
                _ if sa != sb => {
                    out.push((section.clone(), show(section, None, sa), show(section, None, sb)))
                }
                _ => {}
            }
        }
        out
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
}

#[cfg(test)]
mod tests;

//! Config files of the `rnn` and `depth` commands.
//!
//! They are TOML like the `train` config, with unknown keys rejected and every value validated
//! with a message naming the key. Two conventions on top (see `loader`):
//! - `[[variant]]` tables (`name`, `set = ["section.key=value", ...]`) run the same experiment
//!   several times with overrides, e.g. W scales 0.9 / 1.0 / 1.1 or clipping off / on;
//! - a `[landscape]` section belongs to the `landscape` command and is split off before the
//!   rest of the file is read as a model config (an RNN file or a `train` config).

use serde::{Deserialize, Serialize};

use super::loader::deserialize;
use super::sequences::{SeqSpec, SeqTask};
use super::validate::Check;
use super::{ConfigError, OptimizerKind};
use crate::backend::Activation;
use crate::model::{RnnInit, RnnSpec, WInit};

/// The embedded default of `batchscope rnn`.
pub const RNN_DEFAULT_TOML: &str = include_str!("../../configs/long_term.toml");
/// The embedded default of `batchscope depth`.
pub const DEPTH_DEFAULT_TOML: &str = include_str!("../../configs/deep_tanh.toml");

// ---- RNN -----------------------------------------------------------------------------------

/// A `batchscope rnn` config: model, sequence task, training and diagnostics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnConfig {
    #[serde(default)]
    pub rnn: RnnModelConfig,
    #[serde(default)]
    pub sequence: SequenceConfig,
    #[serde(default)]
    pub train: RnnTrainConfig,
    #[serde(default)]
    pub diagnostics: DiagnosticsConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RnnModelConfig {
    /// Hidden units H.
    pub hidden: usize,
    /// φ of the recurrence: `tanh` or `identity`.
    pub activation: Activation,
    /// `orthogonal` (W = scale·Q), `diag` (W = scale·I) or `normal` (N(0, scale²/H)).
    pub w_init: WInit,
    /// Scale of W: its spectral radius for orthogonal and diag (≈ for normal).
    pub w_scale: f32,
    pub init_seed: u64,
}

impl Default for RnnModelConfig {
    fn default() -> Self {
        RnnModelConfig {
            hidden: 32,
            activation: Activation::Tanh,
            w_init: WInit::Orthogonal,
            w_scale: 1.0,
            init_seed: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceConfig {
    /// `adding` (regression) or `copy` (classification).
    pub task: SeqTask,
    /// Sequence length T.
    pub length: usize,
    /// Classes of the copy task.
    pub symbols: usize,
    /// Copy task: random symbols between the cue and the recall marker.
    pub distractors: bool,
    pub n_train: usize,
    pub n_val: usize,
    pub seed: u64,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        SequenceConfig {
            task: SeqTask::Adding,
            length: 20,
            symbols: 8,
            distractors: false,
            n_train: 4096,
            n_val: 512,
            seed: 42,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RnnTrainConfig {
    pub batch_size: usize,
    /// `sgd` or `momentum`.
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// Training steps.
    pub steps: u64,
    /// Clip the gradient's global norm to this (0 = off).
    pub clip_norm: f32,
    /// Clip each gradient component to [-v, v] (0 = off).
    pub clip_value: f32,
    /// Read the metrics (loss, norms, per-step ‖∂L/∂h_t‖, spectrum of W) every this many steps.
    pub log_every: u64,
    /// Evaluate on the validation set every this many steps (0 = only at the end).
    pub eval_every: u64,
    /// Seed of the minibatch order.
    pub seed: u64,
}

impl Default for RnnTrainConfig {
    fn default() -> Self {
        RnnTrainConfig {
            batch_size: 64,
            optimizer: OptimizerKind::Sgd,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            steps: 300,
            clip_norm: 0.0,
            clip_value: 0.0,
            log_every: 10,
            eval_every: 100,
            seed: 7,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosticsConfig {
    /// A logged loss above this × the median of the recent logged losses is a spike.
    pub spike_factor: f64,
    /// How many recent logged losses the spike median uses.
    pub spike_window: usize,
    /// Power-iteration steps for ρ(W) and σ₁(W).
    pub power_iters: usize,
    /// A logged step whose ‖g‖ exceeds this is a large-gradient step (a cliff face); spikes are
    /// matched to them, with or without clipping (0 = `train.clip_norm`).
    pub grad_threshold: f64,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        DiagnosticsConfig { spike_factor: 2.0, spike_window: 20, power_iters: 300, grad_threshold: 0.0 }
    }
}

impl RnnConfig {
    /// Parse and validate one (variant's) table.
    pub fn from_table(table: toml::Table, origin: &str) -> Result<Self, ConfigError> {
        let cfg: RnnConfig = deserialize(table, origin)?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    pub fn seq_spec(&self) -> SeqSpec {
        let s = &self.sequence;
        SeqSpec {
            task: s.task,
            length: s.length,
            symbols: s.symbols,
            distractors: s.distractors,
            seed: s.seed,
        }
    }

    pub fn rnn_spec(&self) -> RnnSpec {
        let q = self.seq_spec();
        RnnSpec {
            inputs: q.dim(),
            hidden: self.rnn.hidden,
            outputs: q.outputs(),
            steps: q.length,
            activation: self.rnn.activation,
            loss: q.loss(),
        }
    }

    pub fn rnn_init(&self) -> RnnInit {
        RnnInit { w_init: self.rnn.w_init, w_scale: self.rnn.w_scale, seed: self.rnn.init_seed }
    }

    /// The resolved config as TOML (written to every run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# could not serialise config: {e}\n"))
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let check = Check(origin);
        let bad = |key: &str, message: String| check.bad(key, message);
        let (m, s, t, d) = (&self.rnn, &self.sequence, &self.train, &self.diagnostics);
        check.at_least_one("rnn.hidden", m.hidden)?;
        if m.activation == Activation::Relu {
            return Err(bad("rnn.activation", "must be \"tanh\" or \"identity\"".into()));
        }
        check.non_negative("rnn.w_scale", m.w_scale, "must be finite and ≥ 0")?;
        if s.task == SeqTask::Adding && s.length < 2 {
            return Err(bad(
                "sequence.length",
                format!("the adding problem needs length ≥ 2, got {}", s.length),
            ));
        }
        if s.length == 0 || s.length > 10_000 {
            return Err(bad("sequence.length", format!("must be in 1..=10000, got {}", s.length)));
        }
        if s.task == SeqTask::Copy && s.symbols < 2 {
            return Err(bad("sequence.symbols", format!("must be ≥ 2, got {}", s.symbols)));
        }
        check.at_least_one("sequence.n_train", s.n_train)?;
        if s.n_val == 0 && t.eval_every > 0 {
            return Err(bad(
                "train.eval_every",
                format!(
                    "= {} evaluates the validation set, and sequence.n_val = 0 holds none; set train.eval_every = 0 (no evaluations)",
                    t.eval_every
                ),
            ));
        }
        if t.batch_size == 0 || t.batch_size > s.n_train {
            return Err(bad(
                "train.batch_size",
                format!("must be in 1..={} (sequence.n_train), got {}", s.n_train, t.batch_size),
            ));
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(bad("train.lr", format!("must be a positive number, got {}", t.lr)));
        }
        if !(0.0..1.0).contains(&t.momentum) {
            return Err(bad("train.momentum", format!("must be in [0, 1), got {}", t.momentum)));
        }
        check.non_negative("train.weight_decay", t.weight_decay, "must be ≥ 0")?;
        check.at_least_one("train.steps", t.steps)?;
        check.non_negative("train.clip_norm", t.clip_norm, "must be ≥ 0 (0 = off)")?;
        check.non_negative("train.clip_value", t.clip_value, "must be ≥ 0 (0 = off)")?;
        check.at_least_one("train.log_every", t.log_every)?;
        if !(d.spike_factor.is_finite() && d.spike_factor > 1.0) {
            return Err(bad("diagnostics.spike_factor", format!("must be > 1, got {}", d.spike_factor)));
        }
        check.non_negative(
            "diagnostics.grad_threshold",
            d.grad_threshold,
            "must be ≥ 0 (0 = train.clip_norm)",
        )?;
        if d.spike_window < 3 {
            // The median of fewer than 3 losses flags nothing: the detector waits for 3.
            return Err(bad(
                "diagnostics.spike_window",
                format!("must be at least 3 (a median of 3 recent losses), got {}", d.spike_window),
            ));
        }
        check.at_least_one("diagnostics.power_iters", d.power_iters)?;
        if d.power_iters > MAX_POWER_ITERS {
            return Err(bad(
                "diagnostics.power_iters",
                format!("must be at most {MAX_POWER_ITERS}, got {}", d.power_iters),
            ));
        }
        Ok(())
    }
}

/// The most power-iteration steps for ρ(W) (300 by default; each is a product with W).
pub const MAX_POWER_ITERS: usize = 100_000;

// ---- deep MLP ------------------------------------------------------------------------------

/// The `[depth]` section of a `batchscope depth` config (the rest is a `train` config, whose
/// `train.steps` SGD steps follow the measurement at initialisation, logged every
/// `train.log_every` steps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DepthConfig {
    /// Hidden layers of the MLP (replaces `model.hidden` by `[width; layers]` when > 0).
    pub layers: usize,
    /// Width of every hidden layer.
    pub width: usize,
}

impl Default for DepthConfig {
    fn default() -> Self {
        DepthConfig { layers: 50, width: 64 }
    }
}

impl DepthConfig {
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let check = Check(origin);
        let bad = |key: &str, message: String| check.bad(key, message);
        if self.layers > 0 && self.width == 0 {
            return Err(bad("depth.width", "must be ≥ 1".into()));
        }
        if self.layers > 1000 {
            return Err(bad("depth.layers", format!("must be at most 1000, got {}", self.layers)));
        }
        Ok(())
    }

    /// `model.hidden` for this depth (the table's own when `layers` is 0).
    pub fn hidden(&self) -> Option<Vec<usize>> {
        (self.layers > 0).then(|| vec![self.width; self.layers])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigText, LandscapeConfig, LANDSCAPE_DEFAULT_TOML};

    fn load(text: &str, set: &[&str]) -> Result<ConfigText, ConfigError> {
        let sets: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        // One file per call: the tests run in parallel threads.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("batchscope-expcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("c{k}.toml"));
        std::fs::write(&p, text).unwrap();
        ConfigText::load(Some(&p), "", "none", &sets)
    }

    #[test]
    fn shipped_configs_parse() {
        let cliff = include_str!("../../configs/cliff_rnn.toml");
        for (origin, text) in [("long_term", RNN_DEFAULT_TOML), ("cliff_rnn", cliff)] {
            let mut c = ConfigText::load(None, text, origin, &[]).unwrap();
            if let Some(toml::Value::Table(l)) = c.take("landscape") {
                let lc: LandscapeConfig = deserialize(l, origin).unwrap();
                lc.validate(origin).unwrap();
            }
            let variants = c.variants("run").unwrap();
            assert!(variants.len() >= 2, "{origin}");
            for (name, t) in variants {
                RnnConfig::from_table(t, &name).unwrap();
            }
        }
        let mut c = ConfigText::load(None, DEPTH_DEFAULT_TOML, "deep_tanh", &[]).unwrap();
        let Some(toml::Value::Table(d)) = c.take("depth") else {
            panic!("deep_tanh.toml has a [depth] section")
        };
        let dc: DepthConfig = deserialize(d, "deep_tanh").unwrap();
        for (name, mut t) in c.variants("run").unwrap() {
            if let Some(toml::Value::Table(m)) = t.get_mut("model") {
                m.insert("hidden".into(), toml::Value::try_from(dc.hidden().unwrap()).unwrap());
            }
            Config::from_table(t, &name).unwrap();
        }
        let mut c = ConfigText::load(None, LANDSCAPE_DEFAULT_TOML, "landscape", &[]).unwrap();
        let Some(toml::Value::Table(l)) = c.take("landscape") else {
            panic!("landscape.toml has a [landscape] section")
        };
        let lc: LandscapeConfig = deserialize(l, "landscape").unwrap();
        lc.validate("landscape").unwrap();
        Config::from_table(c.table.clone(), "landscape").unwrap();
    }

    #[test]
    fn variants_apply_their_overrides() {
        let text = "[rnn]\nw_scale = 1.0\n[[variant]]\nname = \"a\"\nset = [\"rnn.w_scale=0.5\"]\n[[variant]]\nname = \"b\"\n";
        let mut c = load(text, &["train.lr=0.5"]).unwrap();
        let v = c.variants("run").unwrap();
        let a = RnnConfig::from_table(v[0].1.clone(), "t").unwrap();
        let b = RnnConfig::from_table(v[1].1.clone(), "t").unwrap();
        assert_eq!((a.rnn.w_scale, b.rnn.w_scale), (0.5, 1.0));
        assert_eq!((a.train.lr, b.train.lr), (0.5, 0.5));
    }

    #[test]
    fn bad_values_and_unknown_keys_name_the_key() {
        for (text, key) in [
            ("[rnn]\nactivation = \"relu\"\n", "rnn.activation"),
            ("[train]\nbatch_size = 0\n", "train.batch_size"),
            ("[sequence]\ntask = \"adding\"\nlength = 1\n", "sequence.length"),
            ("[train]\nclip_norm = -1.0\n", "train.clip_norm"),
            ("[rnn]\nhiden = 3\n", "hiden"),
            ("[diagnostics]\npower_iters = 1000000000000\n", "diagnostics.power_iters"),
            ("[diagnostics]\nspike_window = 2\n", "diagnostics.spike_window"),
        ] {
            let mut c = load(text, &[]).unwrap();
            let (_, t) = c.variants("run").unwrap().remove(0);
            let e = RnnConfig::from_table(t, "t.toml").unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let mut c = load("[[variant]]\nname = \"a b\"\n", &[]).unwrap();
        assert!(c.variants("run").is_err());
        // A variant's directory must not take the place of one of the run's files.
        for name in ["summary.json", "loss.svg", "variants.CSV", "config.toml", "metrics.jsonl"] {
            let mut c = load(&format!("[[variant]]\nname = \"{name}\"\n"), &[]).unwrap();
            let e = c.variants("run").expect_err(name).to_string();
            assert!(e.contains("variant.name") && e.contains("output files"), "{name}: {e}");
        }
        let mut c = load("[[variant]]\nname = \"w1.5\"\n", &[]).unwrap();
        assert_eq!(c.variants("run").expect("a dotted name").len(), 1);
        // A malformed `set` entry is blamed on its variant, not on a --set flag.
        let mut c = load("[[variant]]\nname = \"a\"\nset = [\"rnn.w_scale\"]\n", &[]).unwrap();
        let e = c.variants("run").expect_err("an entry without =").to_string();
        assert!(e.contains("[[variant]] `a`") && e.contains("\"rnn.w_scale\""), "{e}");
        assert!(!e.contains("--set"), "{e}");
    }
}

//! The `[landscape]` section of a `batchscope landscape` config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How a direction is scaled before `θ + α d` is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Per row of every matrix (and per vector) to the parameters' norm there.
    Filter,
    /// To unit global norm: α is the Euclidean distance moved.
    Unit,
    /// As is (for the gradient: α is the learning rate of one step θ − α g).
    None,
}

/// The most contour levels a plane heatmap draws (each is a marching-squares pass and a path).
pub const MAX_CONTOURS: usize = 1000;
/// The largest `landscape.range` and `landscape.margin`: coefficients α of `θ + α d` far past
/// it leave f32 (the parameters) and the plots' f64 axes (2 · range) behind.
pub const MAX_COEFFICIENT: f64 = 1e15;

/// The embedded default of `batchscope landscape`.
pub const LANDSCAPE_DEFAULT_TOML: &str = include_str!("../../configs/landscape.toml");

/// The most directions `landscape.line_directions` may list (each is a line of evaluations,
/// a CSV and a plot).
pub const MAX_LINE_DIRECTIONS: usize = 64;

/// What to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `θ + α d` for each of `line_directions`, α ∈ [−range, range].
    Line,
    /// `θ + α d₁ + β d₂` over a `grid × grid` square, d₁, d₂ = `plane_directions`.
    Plane,
    /// `θ_start + α (θ_end − θ_start)`, α ∈ [−margin, 1 + margin] (8.2.7).
    Path,
    /// `θ + α (twin(θ) − θ)`, the twin with hidden units permuted / rescaled (8.2.2).
    Symmetry,
}

/// A direction in parameter space.
#[derive(Clone, Debug, PartialEq)]
pub enum DirSpec {
    /// Minus the gradient of the mean training loss at θ.
    Gradient,
    /// A seeded Gaussian direction.
    Random,
    /// The Hessian eigenvector of the eigenvalue largest in magnitude at θ (power iteration on
    /// Hessian-vector products; MLP only).
    Hessian,
    /// Tensors of a safetensors file with the model's names and shapes.
    File(PathBuf),
}

impl DirSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "gradient" => Ok(DirSpec::Gradient),
            "random" => Ok(DirSpec::Random),
            "hessian" => Ok(DirSpec::Hessian),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(DirSpec::File(PathBuf::from(p))),
                _ => Err(format!(
                    "unknown direction `{s}`: use \"gradient\", \"random\", \"hessian\" or \"file:PATH.safetensors\""
                )),
            },
        }
    }

    pub fn label(&self) -> String {
        match self {
            DirSpec::Gradient => "gradient".into(),
            DirSpec::Random => "random".into(),
            DirSpec::Hessian => "hessian".into(),
            DirSpec::File(p) => format!("file {}", p.display()),
        }
    }
}

/// The largest twin rescale: a unit scaled by c and its outgoing weights by 1/c compute the same
/// function in exact arithmetic, but in f32 the loss of a twin scaled past 10^4 per layer is no
/// longer the same to rounding (the scales compound across layers), and past ~10^19 it overflows
/// to NaN.
pub const MAX_RESCALE: f64 = 1e4;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LandscapeConfig {
    pub modes: Vec<Mode>,
    /// Directions of the line slices: "gradient", "random", "hessian" (MLP), "file:PATH".
    pub line_directions: Vec<String>,
    /// The two directions of the plane.
    pub plane_directions: Vec<String>,
    /// `filter` (per weight row, Li et al. 2018), `unit` or `none`.
    pub normalize: Normalize,
    /// Line and plane coefficients range over [−range, range].
    pub range: f64,
    /// Points per line, path and symmetry slice.
    pub points: usize,
    /// Points per axis of the plane.
    pub grid: usize,
    /// Path and symmetry slices extend this far beyond their ends: α ∈ [−margin, 1 + margin].
    pub margin: f64,
    /// Training examples evaluated (the first ones; 0 = all).
    pub eval_train: usize,
    /// Examples per forward pass.
    pub chunk: usize,
    /// Seed of random directions and of the twin.
    pub seed: u64,
    /// Start of the path (a checkpoint); default the config's initialisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<PathBuf>,
    /// Contour levels of the plane heatmaps.
    pub contours: usize,
    /// Twin: permute the hidden units.
    pub permute: bool,
    /// Twin: per-unit scales log-uniform in [1/rescale, rescale] (1 = off; ReLU, identity; at
    /// most [`MAX_RESCALE`]).
    pub rescale: f64,
    /// Twin: flip the sign of a random half of the units (tanh, identity).
    pub sign_flips: bool,
    /// Apply this `[[variant]]`'s overrides to the model config ("" = the base config).
    pub variant: String,
}

impl Default for LandscapeConfig {
    fn default() -> Self {
        LandscapeConfig {
            modes: vec![Mode::Line, Mode::Plane, Mode::Path, Mode::Symmetry],
            line_directions: vec!["gradient".into(), "random".into()],
            plane_directions: vec!["random".into(), "random".into()],
            normalize: Normalize::Filter,
            range: 1.0,
            points: 41,
            grid: 21,
            margin: 0.25,
            eval_train: 2048,
            chunk: 1024,
            seed: 11,
            start: None,
            contours: 12,
            permute: true,
            rescale: 1.0,
            sign_flips: false,
            variant: String::new(),
        }
    }
}

impl LandscapeConfig {
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        if self.modes.is_empty() {
            return Err(bad(
                "landscape.modes",
                "needs at least one of \"line\", \"plane\", \"path\", \"symmetry\"".into(),
            ));
        }
        if let Some((i, m)) = self.modes.iter().enumerate().find(|(i, m)| self.modes[..*i].contains(m)) {
            return Err(bad("landscape.modes", format!("lists {m:?} twice (entry {})", i + 1)));
        }
        if self.line_directions.len() > MAX_LINE_DIRECTIONS {
            return Err(bad(
                "landscape.line_directions",
                format!(
                    "lists {} directions, at most {MAX_LINE_DIRECTIONS} (a line and its files each)",
                    self.line_directions.len()
                ),
            ));
        }
        for d in self.line_directions.iter().chain(&self.plane_directions) {
            DirSpec::parse(d).map_err(|m| bad("landscape.line_directions", m))?;
        }
        if self.modes.contains(&Mode::Line) && self.line_directions.is_empty() {
            return Err(bad(
                "landscape.line_directions",
                "needs at least one direction for mode \"line\"".into(),
            ));
        }
        if self.plane_directions.len() != 2 {
            return Err(bad(
                "landscape.plane_directions",
                format!("needs exactly two directions, got {}", self.plane_directions.len()),
            ));
        }
        // The same deterministic direction twice spans a line, not a plane (`random` draws a
        // new direction per entry).
        let (a, b) =
            (DirSpec::parse(&self.plane_directions[0]), DirSpec::parse(&self.plane_directions[1]));
        if self.modes.contains(&Mode::Plane) && a == b && a.as_ref().is_ok_and(|d| *d != DirSpec::Random)
        {
            return Err(bad(
                "landscape.plane_directions",
                format!(
                    "lists {:?} twice: the two directions of a plane must differ",
                    self.plane_directions[0]
                ),
            ));
        }
        if !(self.range > 0.0 && self.range <= MAX_COEFFICIENT) {
            return Err(bad(
                "landscape.range",
                format!("must be in (0, {MAX_COEFFICIENT:e}], got {}", self.range),
            ));
        }
        if !(3..=10_001).contains(&self.points) {
            return Err(bad("landscape.points", format!("must be in 3..=10001, got {}", self.points)));
        }
        if !(3..=201).contains(&self.grid) {
            return Err(bad("landscape.grid", format!("must be in 3..=201, got {}", self.grid)));
        }
        // Lines and the plane are symmetric grids over [−range, range]: only an odd count puts
        // θ itself (α = 0) on them, where `loss_at_theta` and the slope at θ are read.
        for (key, n) in [("landscape.points", self.points), ("landscape.grid", self.grid)] {
            if n % 2 == 0 {
                return Err(bad(
                    key,
                    format!(
                        "must be odd, so that θ itself (α = 0) is a grid point; got {n} (try {})",
                        n + 1
                    ),
                ));
            }
        }
        if !(self.margin >= 0.0 && self.margin <= MAX_COEFFICIENT) {
            return Err(bad(
                "landscape.margin",
                format!("must be in [0, {MAX_COEFFICIENT:e}], got {}", self.margin),
            ));
        }
        if self.contours > MAX_CONTOURS {
            return Err(bad(
                "landscape.contours",
                format!("must be in 0..={MAX_CONTOURS}, got {}", self.contours),
            ));
        }
        if self.chunk == 0 {
            return Err(bad("landscape.chunk", "must be ≥ 1".into()));
        }
        if !(self.rescale >= 1.0 && self.rescale <= MAX_RESCALE) {
            return Err(bad(
                "landscape.rescale",
                format!("must be in [1, {MAX_RESCALE}] (1 = off), got {}", self.rescale),
            ));
        }
        Ok(())
    }

    pub fn line_dirs(&self) -> Vec<DirSpec> {
        self.line_directions.iter().filter_map(|d| DirSpec::parse(d).ok()).collect()
    }

    pub fn plane_dirs(&self) -> Vec<DirSpec> {
        self.plane_directions.iter().filter_map(|d| DirSpec::parse(d).ok()).collect()
    }
}

//! What `.npy` data implies for a loaded config (`data.dim` absent or 0: D from the features
//! file; `data.classes` absent or 0: max label + 1; `data.outputs` absent or 0 with
//! `model.loss = "mse"`: the targets' K), and the train/validation split line. Called by
//! [`crate::schedule::admit`] after the config is parsed, before anything is allocated.

use crate::config::{Config, ConfigError, DataKind};
use crate::model::LossKind;

use super::npy;

/// What [`resolve_npy`] makes of a setting the split leaves useless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Useless {
    /// An error (a new run).
    Refused,
    /// A warning (a resumed run, which an older batchscope may have started so).
    Warned,
    /// Nothing (a second read of a resumed run's config).
    Passed,
}

/// Which of the keys `.npy` files can imply the config wrote (a nonzero written value is kept
/// and checked against the files; an unwritten one, or 0, is taken from them).
#[derive(Clone, Copy, Debug, Default)]
pub struct NpyGiven {
    pub dim: bool,
    pub classes: bool,
    pub outputs: bool,
}

impl NpyGiven {
    /// What `table` (a file with its overrides applied) writes.
    pub fn of(table: &toml::Table) -> Self {
        NpyGiven {
            dim: Config::sets_data_key(table, "dim"),
            classes: Config::sets_data_key(table, "classes"),
            outputs: Config::sets_data_key(table, "outputs"),
        }
    }
}

/// Fill `data.dim`, `data.classes` (classification) or `data.outputs` (regression) from `.npy`
/// files where the config did not write them ([`NpyGiven`]); print the split. `useless`: what a
/// setting the split makes useless (early stopping with no validation rows) is.
pub fn resolve_npy(
    cfg: &mut Config,
    given: NpyGiven,
    origin: &str,
    useless: Useless,
) -> Result<(), ConfigError> {
    if cfg.data.kind != DataKind::Npy {
        return Ok(());
    }
    let (Some(features), Some(labels)) = (cfg.data.features.clone(), cfg.data.labels.clone()) else {
        return Ok(());
    };
    let bad = |key: &str, message: String| ConfigError::Invalid {
        origin: origin.to_string(),
        key: key.to_string(),
        message,
    };
    let (n, d) = npy::features_shape(&features).map_err(|e| bad("data.features", refused(e)))?;
    if d == 0 {
        return Err(bad(
            "data.features",
            format!(
                "{} holds {n} rows of 0 features (shape [{n}, 0]): nothing to learn from",
                features.display()
            ),
        ));
    }
    if n == 0 {
        return Err(bad(
            "data.features",
            format!("{} holds no rows (shape [0, {d}]): nothing to learn from", features.display()),
        ));
    }
    // Rows agree before either file's data is read (the labels are streamed below to find the
    // classes, which for a file of the wrong length was work before a certain error).
    let n_labels = npy::label_rows(&labels).map_err(|e| bad("data.labels", refused(e)))?;
    if n_labels != n {
        return Err(bad(
            "data.labels",
            format!(
                "holds {n_labels} rows ({}) but data.features holds {n} ({}): a row of each per example",
                labels.display(),
                features.display()
            ),
        ));
    }
    if !given.dim || cfg.data.dim == 0 {
        cfg.data.dim = d;
    } else if cfg.data.dim != d {
        return Err(bad(
            "data.dim",
            format!(
                "= {} but {} holds {d} features per row (set data.dim = {d}, or data.dim = 0 to take it from the file)",
                cfg.data.dim,
                features.display()
            ),
        ));
    }
    if cfg.model.loss == LossKind::Mse
        && npy::labels_are_integers(&labels).map_err(|e| bad("data.labels", refused(e)))?
    {
        return Err(bad(
            "data.labels",
            format!(
                "{} holds integer class labels; model.loss = \"mse\" regresses f32 targets [N] or [N, K] (or use model.loss = \"softmax_xent\")",
                labels.display()
            ),
        ));
    }
    if cfg.model.loss == LossKind::SoftmaxXent
        && !npy::labels_are_integers(&labels).map_err(|e| bad("data.labels", refused(e)))?
    {
        return Err(bad(
            "data.labels",
            format!(
                "{} holds f32 targets; model.loss = \"softmax_xent\" needs integer class labels [N] (or use model.loss = \"mse\")",
                labels.display()
            ),
        ));
    }
    if cfg.model.loss == LossKind::Mse {
        let k = npy::target_columns(&labels).map_err(|e| bad("data.labels", refused(e)))?;
        if k == 0 {
            return Err(bad(
                "data.labels",
                format!("{} holds 0 target columns per row: nothing to regress", labels.display()),
            ));
        }
        if !given.outputs || cfg.data.outputs == 0 {
            cfg.data.outputs = k;
        } else if cfg.data.outputs != k {
            return Err(bad(
                "data.outputs",
                format!(
                    "= {} but {} holds {k} target columns per row (set data.outputs = {k}, or data.outputs = 0 to take it from the file)",
                    cfg.data.outputs,
                    labels.display()
                ),
            ));
        }
    }
    let infer = !given.classes || cfg.data.classes == 0;
    if infer && cfg.model.loss == LossKind::SoftmaxXent {
        match npy::label_classes(&labels).map_err(|e| bad("data.labels", refused(e)))? {
            // One class (every label 0) or none (no rows): nothing to classify.
            Some(c) if c < 2 => {
                return Err(bad(
                    "data.labels",
                    format!(
                        "{} holds {}; softmax cross-entropy needs at least 2 classes (labels 0 and 1 at least, or set data.classes)",
                        labels.display(),
                        if c == 0 { "no labels" } else { "only label 0" }
                    ),
                ))
            }
            Some(c) => cfg.data.classes = c,
            None => {
                return Err(bad(
                    "data.classes",
                    "cannot be inferred from these labels (not integers); set data.classes".into(),
                ))
            }
        }
    }
    if cfg.data.classes < 2 && cfg.model.loss == LossKind::SoftmaxXent {
        return Err(bad(
            "data.classes",
            format!(
                "must be ≥ 2 (softmax cross-entropy over one class learns nothing), got {}",
                cfg.data.classes
            ),
        ));
    }
    let n_val = npy_val_rows(n, cfg.data.val_fraction);
    if let (0, Some(key)) = (n_val, cfg.validation_user()) {
        let e = bad(
            key,
            format!(
                "needs a validation set, and data.val_fraction = {} of {n} rows holds none",
                cfg.data.val_fraction
            ),
        );
        match useless {
            Useless::Refused => return Err(e),
            Useless::Warned => log::warn!("{e}; the resumed run goes on as it began"),
            Useless::Passed => {}
        }
    }
    let dup = cfg.data.duplicates.max(1);
    // Rows are numbered in u32 (the split and shuffle permutations), repeats included.
    if (n - n_val).checked_mul(dup).is_none_or(|rows| u32::try_from(rows).is_err()) {
        return Err(bad(
            "data.duplicates",
            format!(
                "{dup} repeats of {} training rows are more than the {} a dataset may hold",
                n - n_val,
                u32::MAX
            ),
        ));
    }
    let dups = if dup > 1 { format!(" (each repeated {dup}×)") } else { String::new() };
    eprintln!(
        "data: {n} rows from {} → {} train{dups} / {n_val} validation (data.val_fraction = {})",
        features.display(),
        n - n_val,
        cfg.data.val_fraction
    );
    Ok(())
}

/// A file's error as the message of the key that names it: "`data.labels` is refused: y.npy: …"
/// (the file's message begins with its path, which read as the key's value).
fn refused(e: super::DataError) -> String {
    format!("is refused: {e}")
}

/// Validation rows of an `.npy` dataset of `n` rows: `round(n · data.val_fraction)`, at most
/// `n - 1` (a non-finite fraction: none). The training set is the other rows, each repeated
/// `data.duplicates` times.
pub fn npy_val_rows(n: usize, val_fraction: f32) -> usize {
    let frac = if val_fraction.is_finite() { val_fraction.clamp(0.0, 1.0) as f64 } else { 0.0 };
    ((n as f64 * frac).round() as usize).min(n.saturating_sub(1))
}

/// Training examples a run of `cfg` draws its batches from: `data.n_train` for generated data,
/// the `.npy` rows outside the validation split (each repeated `data.duplicates` times) for
/// files. The largest batch size a run can train at.
pub fn training_rows(cfg: &Config) -> Result<u64, ConfigError> {
    let Some(features) = cfg.data.features.as_ref().filter(|_| cfg.data.kind == DataKind::Npy) else {
        return Ok(cfg.data.n_train);
    };
    let (n, _) = npy::features_shape(features).map_err(|e| ConfigError::Invalid {
        origin: features.display().to_string(),
        key: "data.features".into(),
        message: e.to_string(),
    })?;
    let rows = (n - npy_val_rows(n, cfg.data.val_fraction)) as u64;
    Ok(rows.saturating_mul(cfg.data.duplicates.max(1) as u64))
}

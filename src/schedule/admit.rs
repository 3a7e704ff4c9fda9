//! Admission of an MLP run: parse the config (pure, in [`crate::config`]), then fill in what the
//! data files imply ([`crate::data::resolve`]) and check that the model and data fit the host
//! ([`super::run_memory`]), all before any model, dataset or workspace is allocated. Every
//! command that runs an MLP loads its config through here.

use std::path::Path;

use crate::config::{BatchSize, Config, ConfigError};
use crate::data::resolve::{resolve_npy, training_rows, NpyGiven, Useless};

use super::run_memory::check_host_memory;

/// Load a file (or the embedded default when `path` is `None`), apply `--set` overrides, and
/// admit it.
pub fn load_config(path: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
    let text = Config::load_text(path, overrides)?;
    config_from_table(text.table, &text.origin)
}

/// [`load_config`] for a command that trains at `train.batch_size` (`train`, `train --mpi`):
/// also [`check_batch_fits`].
pub fn load_train_config(path: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
    let text = Config::load_text(path, overrides)?;
    let cfg = config_from_table(text.table, &text.origin)?;
    check_batch_fits(&cfg, &text.origin)?;
    Ok(cfg)
}

/// [`load_config`] with another embedded default for `path = None` (`default_toml`, named
/// `origin` in errors).
pub fn load_config_or(
    path: Option<&Path>,
    overrides: &[String],
    default_toml: &str,
    origin: &str,
) -> Result<Config, ConfigError> {
    let text = Config::load_text_or(path, overrides, default_toml, origin)?;
    config_from_table(text.table, &text.origin)
}

/// Parse and validate a table (a file with its overrides applied, or one `[[variant]]`), resolve
/// it against its data files and check it against host memory.
pub fn config_from_table(table: toml::Table, origin: &str) -> Result<Config, ConfigError> {
    let given = NpyGiven::of(&table);
    let mut cfg = Config::from_table(table, origin)?;
    resolve_npy(&mut cfg, given, origin, Useless::Refused)?;
    check_host_memory(&cfg, origin)?;
    Ok(cfg)
}

/// [`load_config`] for a resumed run's config.toml (with the resume's `--set`): settings the
/// run ignores are warnings ([`Config::from_table_resumed`]), since an older batchscope may
/// have accepted them and a resume may not change them. `warn`: say so (once per resume: the
/// run's config.toml is read twice, with and without the resume's `--set`).
pub fn load_resumed_config(
    path: &Path,
    overrides: &[String],
    warn: bool,
) -> Result<Config, ConfigError> {
    let text = Config::load_text(Some(path), overrides)?;
    let given = NpyGiven::of(&text.table);
    let mut cfg = Config::from_table_resumed(text.table, &text.origin, warn)?;
    let useless = if warn { Useless::Warned } else { Useless::Passed };
    resolve_npy(&mut cfg, given, &text.origin, useless)?;
    check_host_memory(&cfg, &text.origin)?;
    check_batch_fits(&cfg, &text.origin)?;
    Ok(cfg)
}

/// A fixed `train.batch_size` larger than the training set (`data.n_train`, or the `.npy` rows
/// outside the validation split): one error naming where the batch size was given, before any
/// run directory exists. Commands that train at `train.batch_size` call it; a sweep picks its
/// own sizes.
pub fn check_batch_fits(cfg: &Config, origin: &str) -> Result<(), ConfigError> {
    let BatchSize::Fixed(batch) = cfg.train.batch_size else { return Ok(()) };
    let rows = training_rows(cfg)?;
    if batch as u64 <= rows {
        return Ok(());
    }
    let set = match cfg.data.kind {
        crate::config::DataKind::Npy => "the rows of data.features outside the validation split",
        _ => "data.n_train",
    };
    Err(ConfigError::Invalid {
        origin: origin.into(),
        key: "train.batch_size".into(),
        message: format!("is {batch}, more than the {rows} training examples ({set})"),
    })
}

/// For a command that builds `rows` training examples in memory whatever `data.mode` says
/// (`depth`, `landscape`'s evaluation): check the host memory of `cfg` with that resident set
/// (a streamed run is otherwise admitted with no training data counted).
pub fn check_resident_rows(cfg: &Config, rows: u64, origin: &str) -> Result<(), ConfigError> {
    let mut resident = cfg.clone();
    resident.data.mode = crate::config::DataMode::Resident;
    resident.data.n_train = rows;
    check_host_memory(&resident, origin)
}

//! What a resume may not change: what its checkpoint holds (the model, its precision, the
//! optimizer's state: SGD has no velocities), what its steps were drawn from (the data, the
//! batch size, the shuffle and its seed) and the update rule its steps took (the learning rate
//! and its schedule, momentum, weight decay, clipping). Changing them would train a run that
//! its config.toml does not describe (a resume with another `train.lr` rewrote config.toml as
//! if the whole run had used it, and that file no longer reproduced the run), and the first
//! ones would write a checkpoint the next resume could not load. Checked twice:
//! `--set` against the run's config.toml (before anything opens), and the config the run
//! resumes with against the one recorded inside `last.safetensors` (under its checksum), so a
//! hand-edited config.toml cannot change them either.

use std::path::Path;

use super::TrainError;
use crate::backend::BackendKind;
use crate::config::Config;

/// Dotted keys (a trailing `.`: the whole section) a resume keeps.
pub const FIXED_ON_RESUME: [&str; 15] = [
    "model.",
    "data.",
    "train.batch_size",
    "train.optimizer",
    "train.shuffle",
    "train.sorted_by_label",
    "train.seed",
    "train.lr",
    "train.lr_schedule",
    "train.lr_decay",
    "train.lr_step_epochs",
    "train.momentum",
    "train.weight_decay",
    "train.clip_norm",
    "train.clip_value",
];

/// Keys under a fixed section that may change: where `.npy` files are (data moved, or a
/// relative path given from another directory). What they hold is held to the run by the
/// resolved `data.dim` and `data.classes` and by the checkpoint's tensor shapes.
const MOVABLE_ON_RESUME: [&str; 2] = ["data.features", "data.labels"];

/// The `--set` entries of `overrides` that move `.npy` files ([`MOVABLE_ON_RESUME`]): the run's
/// own config.toml is read with them to be compared (its recorded paths may no longer exist).
pub fn movable_overrides(overrides: &[String]) -> Vec<String> {
    let moves = |arg: &&String| {
        arg.split_once('=').is_some_and(|(key, _)| MOVABLE_ON_RESUME.contains(&key.trim()))
    };
    overrides.iter().filter(moves).cloned().collect()
}

/// The first [`FIXED_ON_RESUME`] key whose value in `now` differs from `saved`, as
/// `(key, saved value, new value)`.
pub fn changed_fixed_key(saved: &Config, now: &Config) -> Option<(String, String, String)> {
    let fixed = |key: &str| {
        !MOVABLE_ON_RESUME.contains(&key)
            && FIXED_ON_RESUME
                .iter()
                .any(|f| if f.ends_with('.') { key.starts_with(f) } else { key == *f })
    };
    saved.differences(now).into_iter().find(|(k, _, _)| fixed(k))
}

/// A resume of the run in `dir` with config `now` (`--set` applied) may go on from a run made
/// with `saved` (what `source` names: its config.toml, or its checkpoint).
pub fn keeps_checkpoint_layout(
    saved: &Config,
    now: &Config,
    dir: &Path,
    source: &str,
) -> Result<(), TrainError> {
    match changed_fixed_key(saved, now) {
        Some((key, was, is)) => Err(TrainError::Setup(format!(
            "--resume {}: {key} would change from {was} (in {source}) to {is}; a resumed run \
             keeps what its checkpoint was made with, its data and its update rule (start a new \
             run, with --init for its weights)",
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// The config a resume goes on with, `now`, against the one recorded in the metadata of its
/// checkpoint at `path` (the checkpoint's copy is under its checksum; config.toml is a text
/// file anyone can edit). A checkpoint from before configs were recorded passes.
pub fn keeps_recorded_layout(
    metadata: &std::collections::BTreeMap<String, String>,
    path: &Path,
    now: &Config,
) -> Result<(), TrainError> {
    if let Some(saved) = recorded_config(metadata, path)? {
        let dir = path.parent().unwrap_or(Path::new("."));
        keeps_checkpoint_layout(&saved, now, dir, "its checkpoint")?;
    }
    Ok(())
}

/// [`keeps_recorded_layout`] for the checkpoint file at `path`, read (and its checksum
/// checked) here: called before a resume loads its data, so that a refused resume has not
/// generated or read a dataset first.
pub fn check_checkpoint_config(path: &Path, now: &Config) -> Result<Option<TrainedOn>, TrainError> {
    let ck = crate::checkpoint::load(path)?;
    keeps_recorded_layout(&ck.metadata, path, now)?;
    keeps_recorded_data(&ck.metadata, path, now)?;
    Ok(trained_on(&ck.metadata))
}

/// What a run's checkpoint says it was trained on: the backend kind and the device's name as
/// `Backend::device_name` wrote it (`llvmpipe (…) (Cpu, Vulkan)`, `CPU (2 threads, …)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainedOn {
    pub kind: BackendKind,
    pub device: String,
}

/// Metadata key of the backend kind a checkpoint was written on (`cpu` or `gpu`).
pub const BACKEND_KIND_KEY: &str = "backend_kind";

/// [`TrainedOn`] from a checkpoint's metadata: `backend_kind` and `backend` (the device), or,
/// written before the kind was recorded, the kind the device's name implies (the CPU
/// backend's begins `CPU (`); `None` without a device.
pub fn trained_on(metadata: &std::collections::BTreeMap<String, String>) -> Option<TrainedOn> {
    let device = metadata.get("backend")?.clone();
    let kind = match metadata.get(BACKEND_KIND_KEY).map(String::as_str) {
        Some("cpu") => BackendKind::Cpu,
        Some("gpu") => BackendKind::Gpu,
        Some(_) => return None,
        None if device.starts_with("CPU (") => BackendKind::Cpu,
        None => BackendKind::Gpu,
    };
    Some(TrainedOn { kind, device })
}

/// The `.npy` files a resume reads hold what the run was trained on: their fingerprint
/// ([`crate::data::fingerprint`]) against the one its checkpoint recorded. A checkpoint from
/// before fingerprints were recorded, or of synthetic data, passes.
pub fn keeps_recorded_data(
    metadata: &std::collections::BTreeMap<String, String>,
    path: &Path,
    now: &Config,
) -> Result<(), TrainError> {
    use crate::data::fingerprint;
    let Some(recorded) = metadata.get(fingerprint::KEY) else { return Ok(()) };
    let current = fingerprint::fingerprint(&now.data)?.unwrap_or_else(|| "no .npy files".into());
    if *recorded == current {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    Err(TrainError::Setup(format!(
        "--resume {}: the .npy data is not what the run was trained on (its checkpoint records {recorded}; the files now hold {current}); a resumed run keeps its data (start a new run, with --init for its weights)",
        dir.display()
    )))
}

/// The config recorded in a checkpoint's metadata (`config`, the TOML of the run that wrote
/// it), or `None` for a checkpoint written before it was recorded. Parsed, not validated: only
/// its values are compared (the resume's own config.toml is loaded leniently too: a rule added
/// since the run began is a warning there).
pub fn recorded_config(
    metadata: &std::collections::BTreeMap<String, String>,
    path: &Path,
) -> Result<Option<Config>, TrainError> {
    let Some(text) = metadata.get("config") else { return Ok(None) };
    let origin = format!("{} (its recorded config)", path.display());
    crate::config::loader::parse_text(text, &origin)
        .and_then(|table| crate::config::deserialize::<Config>(table, &origin))
        .map(Some)
        .map_err(|e| {
            TrainError::Setup(format!(
                "checkpoint {}: its metadata `config` does not load: {e}",
                path.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_on_reads_the_kind_or_infers_it_from_an_older_checkpoints_device() {
        let meta = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let lavapipe = "llvmpipe (LLVM 15.0.6, 256 bits) (Cpu, Vulkan)";
        let gpu = trained_on(&meta(&[("backend", lavapipe), (BACKEND_KIND_KEY, "gpu")]));
        assert_eq!(gpu, Some(TrainedOn { kind: BackendKind::Gpu, device: lavapipe.into() }));
        // Before `backend_kind`: the CPU backend's name says it, any other is an adapter's.
        let cpu = trained_on(&meta(&[("backend", "CPU (2 threads, AMD EPYC)")]));
        assert_eq!(cpu.map(|t| t.kind), Some(BackendKind::Cpu));
        assert_eq!(trained_on(&meta(&[("backend", lavapipe)])).map(|t| t.kind), Some(BackendKind::Gpu));
        assert_eq!(trained_on(&meta(&[("backend", "x"), (BACKEND_KIND_KEY, "tpu")])), None);
        assert_eq!(trained_on(&meta(&[])), None);
    }
}

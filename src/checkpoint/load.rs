//! Loading a checkpoint's tensors into a backend's parameter set.

use std::path::Path;

use super::foreign::layer_index;
use super::{Checkpoint, CheckpointError};
use crate::backend::{Backend, BackendError};
use crate::model::ParamSet;

/// Overwrite `params` from a checkpoint's `prefix + name` tensors (shapes checked). `path` names
/// the file the checkpoint came from; the error type is the caller's (`train::load_into` gives
/// `TrainError`). Layer tensors under `prefix` that the model has no parameter for (a deeper
/// model's `layers.7.weight`) are refused by name, like any other unexpected tensor: loading
/// part of a checkpoint is never silent.
pub fn load_into<B: Backend, E: From<CheckpointError> + From<BackendError>>(
    b: &B,
    ck: &Checkpoint,
    path: &Path,
    prefix: &str,
    params: &mut ParamSet<B>,
) -> Result<(), E> {
    let extra: Vec<String> = ck
        .tensors
        .iter()
        .filter_map(|t| t.name.strip_prefix(prefix).map(|rest| (t, rest)))
        .filter(|(_, rest)| layer_index(rest).is_some() && !params.names.iter().any(|n| n == rest))
        .map(|(t, _)| t.name.clone())
        .collect();
    if !extra.is_empty() {
        return Err(CheckpointError::Unexpected { path: path.to_path_buf(), names: extra }.into());
    }
    for i in 0..params.tensors.len() {
        let name = format!("{prefix}{}", params.names[i]);
        let t = ck.expect_shape(&name, &params.shapes[i])?;
        b.write(&mut params.tensors[i], &t.data)?;
    }
    let _ = path;
    Ok(())
}

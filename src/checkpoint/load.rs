//! Loading a checkpoint's tensors into a backend's parameter set.

use std::path::Path;

use super::{Checkpoint, CheckpointError};
use crate::backend::{Backend, BackendError};
use crate::model::ParamSet;

/// Overwrite `params` from a checkpoint's `prefix + name` tensors (shapes checked). `path` names
/// the file the checkpoint came from; the error type is the caller's (`train::load_into` gives
/// `TrainError`).
pub fn load_into<B: Backend, E: From<CheckpointError> + From<BackendError>>(
    b: &B,
    ck: &Checkpoint,
    path: &Path,
    prefix: &str,
    params: &mut ParamSet<B>,
) -> Result<(), E> {
    for i in 0..params.tensors.len() {
        let name = format!("{prefix}{}", params.names[i]);
        let t = ck.expect_shape(&name, &params.shapes[i])?;
        b.write(&mut params.tensors[i], &t.data)?;
    }
    let _ = path;
    Ok(())
}

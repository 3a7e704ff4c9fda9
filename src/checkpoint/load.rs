//! Loading a checkpoint's tensors into a backend's parameter set.

use std::path::Path;

use super::{Checkpoint, CheckpointError};
use crate::backend::{Backend, BackendError};
use crate::model::ParamSet;

/// Overwrite `params` from a checkpoint's `prefix + name` tensors (shapes checked). `path` names
/// the file the checkpoint came from; the error type is the caller's (`train::load_into` gives
/// `TrainError`). Tensors under `prefix` that the model has no parameter for (a deeper model's
/// `layers.7.weight`, a `layers.0.extra`, a `zzz`) are refused by name, like any other
/// unexpected tensor: loading part of a checkpoint is never silent. With no prefix, optimizer
/// state (`optimizer.<state>.<parameter name>`, loaded under its own prefix or not at all) is
/// the one other kind of tensor a checkpoint may hold.
pub fn load_into<B: Backend, E: From<CheckpointError> + From<BackendError>>(
    b: &B,
    ck: &Checkpoint,
    path: &Path,
    prefix: &str,
    params: &mut ParamSet<B>,
) -> Result<(), E> {
    refuse_unexpected(ck, path, prefix, &params.names)?;
    for i in 0..params.tensors.len() {
        let name = format!("{prefix}{}", params.names[i]);
        let t = ck.expect_shape(&name, &params.shapes[i])?;
        b.write(&mut params.tensors[i], &t.data)?;
    }
    Ok(())
}

/// Fails, naming them, when `ck` holds tensors under `prefix` that are none of `names` (the
/// model's parameters), or with no prefix, optimizer state (`optimizer.<state>.<name>`) of
/// none of them. Tensors under another prefix are left to the load of that prefix.
pub fn refuse_unexpected(
    ck: &Checkpoint,
    path: &Path,
    prefix: &str,
    names: &[String],
) -> Result<(), CheckpointError> {
    let known = |name: &str| names.iter().any(|n| n == name);
    let expected = |name: &str| match name.strip_prefix(prefix) {
        Some(rest) if prefix.is_empty() && rest.starts_with("optimizer.") => {
            optimizer_state(rest).is_some_and(known)
        }
        Some(rest) => known(rest),
        None => true,
    };
    let extra: Vec<String> =
        ck.tensors.iter().filter(|t| !expected(&t.name)).map(|t| t.name.clone()).collect();
    match extra.is_empty() {
        true => Ok(()),
        false => Err(CheckpointError::Unexpected {
            path: path.to_path_buf(),
            names: extra,
            model: names.iter().map(|n| format!("{prefix}{n}")).collect(),
        }),
    }
}

/// The optimizer state a checkpoint may hold: momentum's velocity. Another (an
/// `optimizer.adam_m.*` of another tool) was taken and dropped without a word.
pub const OPTIMIZER_STATES: [&str; 1] = ["velocity"];

/// The parameter name of optimizer state `optimizer.<state>.<parameter name>` of a state in
/// [`OPTIMIZER_STATES`].
fn optimizer_state(name: &str) -> Option<&str> {
    let (state, param) = name.strip_prefix("optimizer.")?.split_once('.')?;
    OPTIMIZER_STATES.contains(&state).then_some(param)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An MLP's checkpoint given to an RNN was told what an MLP checkpoint holds (which it
    /// is); the RNN's own tensors are named now, and an MLP keeps its layout hint.
    #[test]
    fn unexpected_tensors_are_answered_with_the_loading_models_names() {
        let mut ck = Checkpoint::new();
        ck.push("layers.0.weight", vec![1, 1], vec![0.5]);
        let rnn: Vec<String> = ["rnn.W", "rnn.U"].map(String::from).to_vec();
        let e = refuse_unexpected(&ck, Path::new("m.safetensors"), "", &rnn).unwrap_err().to_string();
        assert!(
            e.contains("`layers.0.weight`") && e.contains("this model's tensors are `rnn.W`, `rnn.U`"),
            "{e}"
        );
        let mut ck = Checkpoint::new();
        ck.push("zzz", vec![1], vec![0.5]);
        let mlp: Vec<String> = ["layers.0.weight", "layers.0.bias"].map(String::from).to_vec();
        let e = refuse_unexpected(&ck, Path::new("m.safetensors"), "", &mlp).unwrap_err().to_string();
        assert!(e.contains("an MLP checkpoint holds `layers.{i}.weight`"), "{e}");
    }
}

//! One direction of a slice, built from its spec: minus the gradient of the mean training loss,
//! a seeded Gaussian, the top Hessian eigenvector (MLP only) or a checkpoint's tensors, then
//! normalised against the base parameters.

use std::path::Path;

use thiserror::Error;

use super::directions::{global_norm, normalize, random_direction, Normalize};
use super::Objective;
use crate::backend::{Backend, BackendError};
use crate::checkpoint::{self, CheckpointError};
use crate::config::DirSpec;
use crate::curvature::{top_eigenpair, CurvatureError, HvpOperator, HvpOptions, PowerOptions};
use crate::data::Dataset;
use crate::model::{Mlp, ParamSet};

/// Why a direction (or the tensors of a checkpoint) could not be made.
#[derive(Debug, Error)]
pub enum LandscapeError {
    /// Not a `source`: the message carries the checkpoint error, once.
    #[error("{}{}", .0, model_hint(.0))]
    Checkpoint(CheckpointError),
    /// A file a `[landscape]` key names (`what`: a `file:` direction, or the start point) that
    /// did not load.
    #[error("`{key}`: {what}: {error}{}", model_hint(.error))]
    KeyFile { key: &'static str, what: &'static str, error: Box<CheckpointError> },
    #[error("landscape: the \"hessian\" direction needs Hessian-vector products, which exist for the MLP only")]
    NoHessian,
    /// A direction that is zero (or not finite) once normalised: its slice would be flat (or
    /// NaN) by construction, and read as a measurement.
    #[error("landscape: the {what} direction {problem}; a slice along it measures nothing")]
    Degenerate { what: String, problem: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Curvature(#[from] CurvatureError),
}

/// The hint for a checkpoint that loaded but whose tensors are not the model's: a missing
/// tensor or one of another shape (a file that is missing or unreadable gets none).
fn model_hint(e: &CheckpointError) -> &'static str {
    match e {
        CheckpointError::MissingTensor { .. } | CheckpointError::Shape { .. } => {
            " (is it a checkpoint of this config's model?)"
        }
        _ => "",
    }
}

impl LandscapeError {
    /// This error, where it is a file's, as the error of the file `key` names (`what`).
    pub fn of_key(self, key: &'static str, what: &'static str) -> Self {
        match self {
            LandscapeError::Checkpoint(e) => LandscapeError::KeyFile { key, what, error: Box::new(e) },
            other => other,
        }
    }
}

impl From<CheckpointError> for LandscapeError {
    fn from(e: CheckpointError) -> Self {
        LandscapeError::Checkpoint(e)
    }
}

/// What a direction came with: `‖g‖` of the gradient; `λ` of the Hessian eigenvector, with the
/// power iteration's HVP count and whether it converged.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirInfo {
    pub gradient_norm: Option<f64>,
    pub eigenvalue: Option<f64>,
    pub hvp_iterations: usize,
    pub converged: bool,
}

/// The model a direction is taken in: its objective, the MLP and its evaluated training
/// examples for Hessian-vector products (None for an RNN), and its tensor layout.
pub struct DirectionModel<'m, 'a, B: Backend> {
    pub obj: &'m mut (dyn Objective<B> + 'a),
    pub hessian: Option<(&'m Mlp, &'m Dataset)>,
    pub names: &'m [String],
    pub shapes: &'m [Vec<usize>],
}

/// The tensors `names` with `shapes` of a checkpoint.
pub fn load_tensors(
    path: &Path,
    names: &[String],
    shapes: &[Vec<usize>],
) -> Result<Vec<Vec<f32>>, LandscapeError> {
    let ck = checkpoint::load(path)?;
    checkpoint::refuse_unexpected(&ck, path, "", names)?;
    Ok(names
        .iter()
        .zip(shapes)
        .map(|(n, s)| Ok(ck.expect_shape(n, s)?.data.clone()))
        .collect::<Result<Vec<_>, CheckpointError>>()?)
}

/// A direction per `spec` at `base` (`base_host` on the host), normalised per `how`.
pub fn direction<B: Backend>(
    b: &B,
    m: DirectionModel<'_, '_, B>,
    (base, base_host): (&ParamSet<B>, &[Vec<f32>]),
    spec: &DirSpec,
    seed: u64,
    how: Normalize,
) -> Result<(Vec<Vec<f32>>, DirInfo), LandscapeError> {
    let mut info = DirInfo::default();
    let mut d = match spec {
        DirSpec::Gradient => {
            let mut g = base.zeros_like(b)?;
            m.obj.mean_grad(b, base, &mut g)?;
            let host: Vec<Vec<f32>> =
                g.to_host(b)?.into_iter().map(|t| t.into_iter().map(|v| -v).collect()).collect();
            info.gradient_norm = Some(global_norm(&host));
            host
        }
        DirSpec::Random => random_direction(m.shapes, seed),
        DirSpec::File(path) => load_tensors(path, m.names, m.shapes)?,
        DirSpec::Hessian => {
            let (mlp, data) = m.hessian.ok_or(LandscapeError::NoHessian)?;
            let params = ParamSet::from_host(b, m.names, m.shapes, base_host)?;
            let mut op =
                HvpOperator::new(b, mlp.clone(), params, data, HvpOptions::for_budget(mlp, 256 << 20))?;
            // λmax's eigenvector, not the largest |λ|'s: at a saddle the two differ.
            let r = top_eigenpair(&mut op, &PowerOptions { max_iters: 300, tol: 1e-6, seed })?;
            info.eigenvalue = Some(r.eigenvalue);
            info.hvp_iterations = r.iterations;
            info.converged = r.converged;
            let mut off = 0;
            m.shapes
                .iter()
                .map(|s| {
                    let n: usize = s.iter().product();
                    off += n;
                    r.vector[off - n..off].to_vec()
                })
                .collect()
        }
    };
    let raw_norm = global_norm(&d);
    normalize(&mut d, base_host, m.shapes, how);
    let norm = global_norm(&d);
    if !(norm.is_finite() && norm > 0.0) {
        let what = match spec {
            DirSpec::Gradient => "gradient".to_string(),
            DirSpec::Random => "random".to_string(),
            DirSpec::Hessian => "hessian".to_string(),
            DirSpec::File(p) => format!("file:{}", p.display()),
        };
        let problem = if !raw_norm.is_finite() || !norm.is_finite() {
            "holds values that are not finite".to_string()
        } else if raw_norm == 0.0 {
            "is zero".to_string()
        } else {
            // Filter normalisation scales each filter to the norm of the parameters' own.
            "is zero once normalised (landscape.normalize = \"filter\" scales each filter to the parameters', which are 0 here)".to_string()
        };
        return Err(LandscapeError::Degenerate { what, problem });
    }
    Ok((d, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_checkpoint_of_other_tensors_is_asked_about_its_model() {
        let missing = LandscapeError::from(CheckpointError::NotFound { path: "/no.safetensors".into() });
        assert_eq!(missing.to_string(), "checkpoint /no.safetensors does not exist");
        let keyed = missing.of_key("landscape.start", "the start point").to_string();
        assert_eq!(
            keyed,
            "`landscape.start`: the start point: checkpoint /no.safetensors does not exist"
        );
        let shape = CheckpointError::Shape {
            path: Some("a.safetensors".into()),
            name: "layers.0.weight".into(),
            expected: vec![4, 2],
            found: vec![3, 2],
        };
        let shape = LandscapeError::from(shape).to_string();
        assert!(shape.ends_with("(is it a checkpoint of this config's model?)"), "{shape}");
    }
}

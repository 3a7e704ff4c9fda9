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
    #[error("{0} (is it a checkpoint of this config's model?)")]
    Checkpoint(CheckpointError),
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

//! Loss-landscape slices (8.2.2, 8.2.4, 8.2.7): the training and validation loss along a line or
//! over a plane through the current parameters, along the straight path from the initial to the
//! final parameters, and between a network and its permuted / rescaled twin.
//!
//! A point `θ = θ₀ + Σ_j c_j d_j` is formed on the device (copy + axpy per tensor), then the
//! evaluation sets are run forward and their loss sums land in device slots: a whole line or
//! grid is recorded and read back once.

pub mod direction;
pub mod directions;
pub mod objective;
pub mod symmetry;

use serde::Serialize;

use crate::backend::{Backend, Result};
pub use crate::config::landscape::{DirSpec, LandscapeConfig, Mode};
use crate::model::ParamSet;
pub use direction::{DirInfo, LandscapeError};
pub use objective::{MlpObjective, Objective, RnnObjective, Split};

/// Losses at one point of a slice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointLoss {
    /// Coefficients `c_j` of the directions.
    pub coords: Vec<f64>,
    pub train_loss: f64,
    pub train_error: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_error: Option<f64>,
}

/// Upload host tensors shaped like `like` as a ParamSet.
pub fn upload_like<B: Backend>(b: &B, like: &ParamSet<B>, host: &[Vec<f32>]) -> Result<ParamSet<B>> {
    ParamSet::from_host(b, &like.names, &like.shapes, host)
}

/// Evaluate the objective at `θ = base + Σ_j c_j dirs[j]` for every `c` in `points` (train set,
/// and validation when it has examples). All points are recorded, then read back once.
pub fn evaluate_points<B: Backend, O: Objective<B> + ?Sized>(
    b: &B,
    obj: &mut O,
    base: &ParamSet<B>,
    dirs: &[&ParamSet<B>],
    points: &[Vec<f64>],
) -> Result<Vec<PointLoss>> {
    let with_val = obj.examples(Split::Val) > 0;
    let st = obj.slots(Split::Train);
    let sv = if with_val { obj.slots(Split::Val) } else { 0 };
    let per = st + sv;
    let mut stats = b.zeros((per * points.len()).max(1))?;
    let mut work = base.zeros_like(b)?;
    for (k, c) in points.iter().enumerate() {
        if c.len() != dirs.len() {
            return Err(crate::backend::BackendError::Invalid {
                op: "landscape::evaluate_points",
                message: format!("point {k} has {} coefficients for {} directions", c.len(), dirs.len()),
            });
        }
        work.copy_from(b, base)?;
        for (d, &a) in dirs.iter().zip(c) {
            if a != 0.0 {
                work.axpy(b, a as f32, d)?;
            }
        }
        obj.record(b, &work, Split::Train, &mut stats, k * per)?;
        if with_val {
            obj.record(b, &work, Split::Val, &mut stats, k * per + st)?;
        }
        b.flush()?;
    }
    let s = b.read(&stats)?;
    let class = obj.classification();
    Ok(points
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let (tl, te) = obj.finish(Split::Train, &s, k * per);
            let (vl, ve) = if with_val {
                let (l, e) = obj.finish(Split::Val, &s, k * per + st);
                (Some(l), Some(e))
            } else {
                (None, None)
            };
            PointLoss {
                coords: c.clone(),
                train_loss: tl,
                train_error: class.then_some(te),
                val_loss: vl,
                val_error: if class { ve } else { None },
            }
        })
        .collect())
}

/// Slope and curvature of a line through its centre point by central differences on the grid:
/// `(L(h) − L(−h)) / 2h ≈ ∇L·d` and `(L(h) − 2L(0) + L(−h)) / h² ≈ dᵀHd` (8.10 along d).
pub fn centre_derivatives(alphas: &[f64], losses: &[f64]) -> Option<(f64, f64)> {
    let c = alphas.iter().position(|&a| a == 0.0)?;
    if c == 0 || c + 1 >= alphas.len() {
        return None;
    }
    let (hm, hp) = (alphas[c] - alphas[c - 1], alphas[c + 1] - alphas[c]);
    if (hm - hp).abs() > 1e-9 * hp.abs().max(1e-300) {
        return None;
    }
    let h = hp;
    Some((
        (losses[c + 1] - losses[c - 1]) / (2.0 * h),
        (losses[c + 1] - 2.0 * losses[c] + losses[c - 1]) / (h * h),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_derivatives_of_a_parabola_are_exact() {
        let a = directions::coords(-1.0, 1.0, 11);
        let l: Vec<f64> = a.iter().map(|&x| 2.0 - 0.5 * x + 1.5 * x * x).collect();
        let (g, c) = centre_derivatives(&a, &l).unwrap();
        assert!((g + 0.5).abs() < 1e-9 && (c - 3.0).abs() < 1e-9, "{g} {c}");
        assert!(centre_derivatives(&[0.0, 1.0], &[1.0, 2.0]).is_none());
    }
}

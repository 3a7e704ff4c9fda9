//! Directions in parameter space (host side, one `Vec<f32>` per tensor in ParamSet order) and
//! their normalisation.
//!
//! Filter normalisation (Li et al., "Visualizing the Loss Landscape of Neural Nets", 2018):
//! each row of a weight matrix (a unit's incoming weights, "filter") of the direction is rescaled
//! to the norm of the same row of the parameters, so a step of α moves every unit by the same
//! fraction of its own weights; this removes the scale invariance that makes raw random slices of
//! different networks incomparable. Vectors (biases) are rescaled as a whole the same way.

use crate::model::init::{normal_vec, rng};
pub use crate::stats::global_norm;
use crate::stats::norm;

pub use crate::config::landscape::Normalize;

/// Standard-normal direction shaped like `shapes`, seeded.
pub fn random_direction(shapes: &[Vec<usize>], seed: u64) -> Vec<Vec<f32>> {
    let mut r = rng(seed);
    shapes.iter().map(|s| normal_vec(&mut r, s.iter().product(), 1.0)).collect()
}

/// `b - a`, tensor by tensor.
pub fn difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<Vec<f32>> {
    a.iter().zip(b).map(|(x, y)| x.iter().zip(y).map(|(p, q)| q - p).collect()).collect()
}

/// Scale `dir` in place per `how`, against the parameters `base` (same shapes).
pub fn normalize(dir: &mut [Vec<f32>], base: &[Vec<f32>], shapes: &[Vec<usize>], how: Normalize) {
    match how {
        Normalize::None => {}
        Normalize::Unit => {
            let n = global_norm(dir);
            if n > 0.0 {
                dir.iter_mut().flatten().for_each(|v| *v = (*v as f64 / n) as f32);
            }
        }
        Normalize::Filter => {
            for ((d, p), s) in dir.iter_mut().zip(base).zip(shapes) {
                // A matrix [rows, cols] is `rows` filters; a vector is one.
                let cols =
                    if s.len() >= 2 { s[1..].iter().product::<usize>().max(1) } else { d.len().max(1) };
                for (dr, pr) in d.chunks_mut(cols).zip(p.chunks(cols)) {
                    let (nd, np) = (norm(dr), norm(pr));
                    let f = if nd > 0.0 { np / nd } else { 0.0 };
                    dr.iter_mut().for_each(|v| *v = (*v as f64 * f) as f32);
                }
            }
        }
    }
}

/// `points` coefficients evenly spaced over `[lo, hi]`; when 0 lies on the grid it is exactly 0.
pub fn coords(lo: f64, hi: f64, points: usize) -> Vec<f64> {
    if points <= 1 {
        return vec![0.0f64.clamp(lo, hi)];
    }
    let m = (points - 1) as f64;
    // lo + (hi - lo) i / m written so that the i with lo·m + (hi − lo)·i = 0 gives exactly 0,
    // then rounded to 15 significant digits: −0.15 of a ±0.3 grid, not −0.14999999999999997
    // (a CSV's α then joins what a reader types; the change is below 1e-15 relative).
    (0..points).map(|i| snap((lo * (m - i as f64) + hi * i as f64) / m)).collect()
}

/// `v` rounded to 15 significant digits (its shortest decimal when it is one of those).
fn snap(v: f64) -> f64 {
    format!("{v:.14e}").parse().unwrap_or(v)
}

/// Coefficients of a path slice: `points` evenly spaced over `[−margin, 1 + margin]`, with the
/// ends 0 and 1 added when the grid misses them (sorted, no duplicates).
pub fn path_coords(margin: f64, points: usize) -> Vec<f64> {
    let mut c = coords(-margin, 1.0 + margin, points);
    for end in [0.0, 1.0] {
        if !c.contains(&end) {
            c.push(end);
        }
    }
    c.sort_by(f64::total_cmp);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_normalisation_matches_row_norms() {
        let shapes = vec![vec![2, 3], vec![2]];
        let base = vec![vec![3.0, 4.0, 0.0, 0.0, 0.0, 2.0], vec![0.0, 0.0]];
        let mut d = vec![vec![1.0, 1.0, 1.0, 0.0, 5.0, 0.0], vec![1.0, 1.0]];
        normalize(&mut d, &base, &shapes, Normalize::Filter);
        assert!((norm(&d[0][..3]) - 5.0).abs() < 1e-6);
        assert!((norm(&d[0][3..]) - 2.0).abs() < 1e-6);
        assert_eq!(d[1], vec![0.0, 0.0], "zero biases give a zero bias direction");
        let mut u = vec![vec![3.0, 4.0]];
        normalize(&mut u, &[vec![0.0, 0.0]], &[vec![2]], Normalize::Unit);
        assert!((global_norm(&u) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn symmetric_grids_hit_zero_exactly() {
        for n in [3, 21, 41, 101] {
            let c = coords(-0.7, 0.7, n);
            assert_eq!(c[n / 2], 0.0);
            assert_eq!((c[0], c[n - 1]), (-0.7, 0.7));
        }
        let p = coords(-0.25, 1.25, 31);
        assert!(p.contains(&0.0) && p.contains(&1.0), "{p:?}");
        let q = path_coords(0.25, 9);
        assert_eq!(q.len(), 11);
        assert!(q.contains(&0.0) && q.contains(&1.0) && q.windows(2).all(|w| w[0] < w[1]), "{q:?}");
        assert_eq!(coords(-0.3, 0.3, 5), [-0.3, -0.15, 0.0, 0.15, 0.3], "the decimals a reader types");
        let tiny = coords(-3e-9, 3e-9, 5);
        assert_eq!(tiny[1], -1.5e-9, "relative rounding keeps small ranges");
    }
}

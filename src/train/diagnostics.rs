//! Gradient diagnostics of 8.2.4–8.2.5: the spectral radius and top singular value of a
//! recurrent matrix (its eigenvalues; power iteration), per-layer gradient norms of an MLP, loss-spike detection,
//! and least-squares slopes of log norms.

use crate::backend::{Backend, Result};
use crate::model::{Mlp, ParamSet, Targets, Workspace};
pub use crate::stats::fit_line;
use crate::stats::norm_f64 as norm;

/// Largest H whose ρ(W) comes from its eigenvalues (the real Schur form, O(H³) in f64: about
/// 0.1 s at 256, 1.3 s at 512, at every logged step); past it, from [`power_radius`].
pub const EXACT_RADIUS_MAX_H: usize = 256;

/// Spectral radius ρ(W) of `w [h, h]` (row-major): the largest eigenvalue modulus, from the
/// real Schur form in f64 up to [`EXACT_RADIUS_MAX_H`], else (or where the QR iteration does not
/// converge) by power iteration ([`power_radius`], `iters` steps). NaN for a W with a NaN entry
/// (a diverged run's), ∞ for one with an infinite entry and no NaN, 0 for a zero W.
pub fn spectral_radius(w: &[f32], h: usize, iters: usize) -> f64 {
    if h == 0 || w.len() < h * h {
        return 0.0;
    }
    let w = &w[..h * h];
    if w.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    if w.iter().any(|x| x.is_infinite()) {
        return f64::INFINITY;
    }
    if h <= EXACT_RADIUS_MAX_H {
        let m = nalgebra::DMatrix::from_row_iterator(h, h, w.iter().map(|&x| x as f64));
        if let Some(schur) = nalgebra::linalg::Schur::try_new(m, f64::EPSILON, 100 * h + 1000) {
            return schur.complex_eigenvalues().iter().map(|z| z.norm()).fold(0.0, f64::max);
        }
    }
    power_radius(w, h, iters)
}

/// ρ(W) by power iteration in f64, from Gelfand's formula ρ = lim ‖Wᵏv‖^(1/k): the mean log
/// growth `ln(‖W v‖ / ‖v‖)` over the second half of `iters` normalised iterations. Unlike the
/// Rayleigh quotient it also converges when the dominant eigenvalues are a complex pair
/// (nonsymmetric W). The error is `O(ln(condition of the eigenvectors) / iters)` when the top
/// moduli are close (0.3 % after 300 steps in an audit: 1.0305 for 1.0335).
pub fn power_radius(w: &[f32], h: usize, iters: usize) -> f64 {
    if h == 0 || w.len() < h * h {
        return 0.0;
    }
    let iters = iters.max(2);
    let mut v = start_vector(h);
    let mut log_growth = 0.0;
    let mut counted = 0usize;
    for k in 0..iters {
        let wv = matvec(w, h, &v);
        let n = norm(&wv);
        // A zero W has ρ = 0; an infinite entry makes ρ infinite and a NaN one undefined
        // (NaN, not ∞: a diverged matrix is not measured as exploding).
        if n == 0.0 || !n.is_finite() {
            return if n == 0.0 { 0.0 } else { n };
        }
        if k >= iters / 2 {
            log_growth += n.ln();
            counted += 1;
        }
        v = wv.iter().map(|x| x / n).collect();
    }
    (log_growth / counted.max(1) as f64).exp()
}

/// Largest singular value σ₁(W) of `w [h, h]` by power iteration on WᵀW (f64).
pub fn top_singular_value(w: &[f32], h: usize, iters: usize) -> f64 {
    if h == 0 || w.len() < h * h {
        return 0.0;
    }
    let mut v = start_vector(h);
    let mut sigma = 0.0;
    for _ in 0..iters.max(1) {
        let wv = matvec(w, h, &v);
        sigma = norm(&wv);
        // u = Wᵀ W v
        let mut u = vec![0.0; h];
        for (r, &x) in wv.iter().enumerate() {
            for (c, uc) in u.iter_mut().enumerate() {
                *uc += w[r * h + c] as f64 * x;
            }
        }
        let n = norm(&u);
        if n == 0.0 || !n.is_finite() {
            break;
        }
        v = u.iter().map(|x| x / n).collect();
    }
    sigma
}

/// A fixed, generic start vector (all components nonzero, not aligned with any axis).
fn start_vector(h: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..h).map(|i| 1.0 + 0.37 * ((i as f64 + 1.0) * 1.618).sin()).collect();
    let n = norm(&v);
    v.iter().map(|x| x / n).collect()
}

fn matvec(w: &[f32], h: usize, v: &[f64]) -> Vec<f64> {
    (0..h).map(|r| (0..h).map(|c| w[r * h + c] as f64 * v[c]).sum()).collect()
}

/// Growth per step *backwards in time* of per-step gradient norms `norms[t-1] = ‖∂L/∂h_t‖`,
/// t = 1..T: minus the least-squares slope of `ln ‖∂L/∂h_t‖` against t. Theory for an identity
/// RNN with W = λQ: `ln λ` (‖∂L/∂h_t‖ ∝ λ^(T−t)).
pub fn backward_growth_per_step(norms: &[f64]) -> Option<f64> {
    let ts: Vec<f64> = (1..=norms.len()).map(|t| t as f64).collect();
    let logs: Vec<f64> = norms.iter().map(|&n| if n > 0.0 { n.ln() } else { f64::NAN }).collect();
    fit_line(&ts, &logs).map(|(slope, _)| -slope)
}

/// Flags a logged loss as a spike when it exceeds `factor` × the median of the last `window`
/// finite losses (at least three of them must have been seen).
#[derive(Clone, Debug)]
pub struct SpikeDetector {
    factor: f64,
    window: usize,
    recent: std::collections::VecDeque<f64>,
}

impl SpikeDetector {
    pub fn new(factor: f64, window: usize) -> Self {
        SpikeDetector { factor, window: window.max(3), recent: Default::default() }
    }

    /// Whether `loss` is a spike against the losses pushed before it; then remember it.
    pub fn push(&mut self, loss: f64) -> bool {
        let spike = if self.recent.len() >= 3 {
            let mut v: Vec<f64> = self.recent.iter().copied().collect();
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            !loss.is_finite() || loss > self.factor * median
        } else {
            !loss.is_finite()
        };
        if loss.is_finite() {
            self.recent.push_back(loss);
            if self.recent.len() > self.window {
                self.recent.pop_front();
            }
        }
        spike
    }
}

/// Per-layer norms of one minibatch's backward pass.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerNorms {
    /// `‖∂L/∂W_l‖` (Frobenius), l = 1..L (input layer first).
    pub weight: Vec<f64>,
    /// `‖∂L/∂z_l‖` (Frobenius over the batch), the back-propagated signal at layer l's
    /// pre-activations: for an identity MLP with gain g it scales as g^(L−l).
    pub delta: Vec<f64>,
}

/// Record the squared norms of `grads`' weight tensors and of `ws.dz` into `out[slot0 ..
/// slot0 + 2L]` (weights first, then deltas), after a backward pass (nothing read back).
pub fn record_layer_norms<B: Backend>(
    b: &B,
    mlp: &Mlp,
    ws: &Workspace<B>,
    grads: &ParamSet<B>,
    out: &mut B::Buf,
    slot0: usize,
) -> Result<()> {
    let layers = mlp.layers();
    for l in 0..layers {
        b.sum_sq(grads.numel_of(2 * l), &grads.tensors[2 * l], out, slot0 + l)?;
        b.sum_sq(ws.rows * mlp.spec.sizes[l + 1], &ws.dz[l], out, slot0 + layers + l)?;
    }
    Ok(())
}

/// [`LayerNorms`] from the slots [`record_layer_norms`] wrote.
pub fn finish_layer_norms(layers: usize, stats: &[f32], slot0: usize) -> LayerNorms {
    // A NaN sum (a diverged step) stays NaN: `f64::max` would have made it a norm of 0.
    let sq = |i: usize| match stats[slot0 + i] as f64 {
        v if v.is_nan() => f64::NAN,
        v => v.max(0.0).sqrt(),
    };
    LayerNorms {
        weight: (0..layers).map(sq).collect(),
        delta: (0..layers).map(|l| sq(layers + l)).collect(),
    }
}

/// Per-layer norms of the mean loss of one minibatch `x [rows, inputs]`: forward, backward,
/// sums of squares on the device, one read. `ws` must be a workspace of `rows` examples and
/// `grads` shaped like `p`.
pub fn layer_norms<B: Backend>(
    b: &B,
    mlp: &Mlp,
    p: &ParamSet<B>,
    x: &B::Buf,
    targets: &Targets<'_, B>,
    ws: &mut Workspace<B>,
    grads: &mut ParamSet<B>,
) -> Result<LayerNorms> {
    mlp.loss_and_grad(b, p, x, targets, ws, grads)?;
    let mut out = b.zeros(2 * mlp.layers())?;
    record_layer_norms(b, mlp, ws, grads, &mut out, 0)?;
    let sq = b.read(&out)?;
    Ok(finish_layer_norms(mlp.layers(), &sq, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `s · R(θ)` blocks: a scaled rotation has complex eigenvalues of modulus s, and singular
    /// values s.
    fn scaled_rotations(h: usize, s: f32) -> Vec<f32> {
        let mut w = vec![0.0; h * h];
        for k in 0..h / 2 {
            let th = 0.3 + k as f32;
            let (i, j) = (2 * k, 2 * k + 1);
            w[i * h + i] = s * th.cos();
            w[i * h + j] = -s * th.sin();
            w[j * h + i] = s * th.sin();
            w[j * h + j] = s * th.cos();
        }
        w
    }

    /// A diverged step's NaN sums of squares were written as norms of 0 (`f64::max`).
    #[test]
    fn a_nan_sum_of_squares_is_a_nan_norm_not_zero() {
        let n = finish_layer_norms(2, &[4.0, f32::NAN, f32::NAN, 9.0], 0);
        assert_eq!(n.weight[0], 2.0);
        assert!(n.weight[1].is_nan() && n.delta[0].is_nan(), "{n:?}");
        assert_eq!(n.delta[1], 3.0);
    }

    /// A diverged recurrent matrix (NaN entries) has no spectral radius: it was reported as ∞,
    /// an exploding matrix, in variants.csv beside a `null` in summary.json.
    #[test]
    fn a_nan_matrix_has_a_nan_radius_and_an_infinite_one_an_infinite_radius() {
        let mut w = scaled_rotations(4, 1.0);
        w[5] = f32::NAN;
        assert!(spectral_radius(&w, 4, 20).is_nan());
        assert!(top_singular_value(&w, 4, 20).is_nan());
        w[5] = f32::INFINITY;
        assert_eq!(spectral_radius(&w, 4, 20), f64::INFINITY);
        assert_eq!(spectral_radius(&[0.0; 4], 2, 20), 0.0);
    }

    /// Eigenvalues ±1.033 of close modulus behind a non-normal W: the eigenvalues give ρ to
    /// f32's rounding of W; power iteration's error decays only as 1/iters.
    #[test]
    fn the_radius_of_close_moduli_is_exact() {
        let w = [1.0335f32, -10.3325, 0.0, -1.033];
        let exact = spectral_radius(&w, 2, 300);
        assert!((exact - 1.0335).abs() < 1e-6, "{exact}");
        let power = power_radius(&w, 2, 300);
        assert!((power - 1.0335).abs() > 1e-5, "power iteration is not this close: {power}");
    }

    #[test]
    fn power_iteration_finds_the_radius_of_complex_eigenvalues() {
        let w = scaled_rotations(6, 1.3);
        assert!((spectral_radius(&w, 6, 200) - 1.3).abs() < 1e-6);
        assert!((power_radius(&w, 6, 200) - 1.3).abs() < 1e-6);
        assert!((top_singular_value(&w, 6, 50) - 1.3).abs() < 1e-6);
    }

    #[test]
    fn radius_and_top_singular_value_differ_for_a_non_normal_matrix() {
        // [[0.5, 10], [0, 0.9]]: eigenvalues 0.5 and 0.9, but σ₁ ≈ 10.05.
        let w = [0.5, 10.0, 0.0, 0.9];
        assert!((spectral_radius(&w, 2, 2000) - 0.9).abs() < 5e-3, "{}", spectral_radius(&w, 2, 2000));
        let s = top_singular_value(&w, 2, 100);
        assert!((s - 10.052761).abs() < 1e-5, "{s}");
    }

    #[test]
    fn backward_growth_recovers_a_geometric_rate() {
        let t_len: i32 = 12;
        let norms: Vec<f64> = (1..=t_len).map(|t| 0.7 * 1.2f64.powi(t_len - t)).collect();
        assert!((backward_growth_per_step(&norms).unwrap() - 1.2f64.ln()).abs() < 1e-12);
        assert!(backward_growth_per_step(&[1.0]).is_none());
    }

    #[test]
    fn spikes_are_relative_to_the_recent_median() {
        let mut d = SpikeDetector::new(2.0, 5);
        for l in [1.0, 0.9, 0.8, 0.85] {
            assert!(!d.push(l));
        }
        assert!(d.push(3.0));
        assert!(!d.push(0.8));
        assert!(d.push(f64::NAN));
    }
}

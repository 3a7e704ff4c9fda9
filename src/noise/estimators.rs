//! Gradient-noise estimators (pure): the unbiased two-batch estimators of |G|² and tr Σ, their
//! EMA-smoothed ratio B_simple (McCandlish et al. 2018, as gpt-neox smooths them), and the
//! log-log slope of the minibatch error against batch size.

pub use crate::stats::loglog_fit;

/// Unbiased `(|G|², tr Σ)` from squared norms of mean gradients at two batch sizes
/// `b_small < b_big`: `E|g_B|² = |G|² + tr Σ / B`, so
/// `|G|² ≈ (B_b|g_b|² − B_s|g_s|²)/(B_b − B_s)` and `tr Σ ≈ (|g_s|² − |g_b|²)/(1/B_s − 1/B_b)`.
pub fn two_batch_estimates(b_small: f64, g2_small: f64, b_big: f64, g2_big: f64) -> Option<(f64, f64)> {
    if !(b_small > 0.0 && b_big > b_small) {
        return None;
    }
    let g2 = (b_big * g2_big - b_small * g2_small) / (b_big - b_small);
    let tr = (g2_small - g2_big) / (1.0 / b_small - 1.0 / b_big);
    Some((g2, tr))
}

/// Where |G|²'s two-batch estimate D has a standard error above this fraction of D, the delta
/// method's standard error of B_simple is not given.
const UNRELIABLE_BELOW_SE_RATIO: f64 = 0.3;

/// The standard error of the two-batch `B_simple = tr Σ / |G|²` by the delta method, from the
/// mean squared norms `g2_small`, `g2_big` and the variances of those means (each the variance of
/// `|g_B|²` over its draws divided by their number; the two sizes drawn independently). With
/// `D = B_b|g_b|² − B_s|g_s|²`, `B_simple = B_s B_b (|g_s|² − |g_b|²) / D`, whose partial
/// derivatives are `B_s B_b (B_b − B_s)·|g_b|² / D²` and `−B_s B_b (B_b − B_s)·|g_s|² / D²`.
/// `None` where |G|²'s estimate is not positive (`D ≤ 0`), is within about three of its own
/// standard errors of 0 (the ratio's error is then heavy-tailed and the linearisation understates
/// it), or a variance is not finite.
pub fn two_batch_b_simple_se(
    (b_small, g2_small, var_small): (f64, f64, f64),
    (b_big, g2_big, var_big): (f64, f64, f64),
) -> Option<f64> {
    let d = b_big * g2_big - b_small * g2_small;
    if !(b_small > 0.0 && b_big > b_small && d > 0.0 && var_small >= 0.0 && var_big >= 0.0) {
        return None;
    }
    let d_se = (b_big * b_big * var_big + b_small * b_small * var_small).sqrt();
    if d_se > UNRELIABLE_BELOW_SE_RATIO * d {
        return None;
    }
    let k = b_small * b_big * (b_big - b_small) / (d * d);
    let var = (k * g2_big).powi(2) * var_small + (k * g2_small).powi(2) * var_big;
    var.is_finite().then(|| var.sqrt())
}

/// [`two_batch_estimates`] corrected for batches drawn without replacement from a training set
/// of `n` rows (an epoch's minibatches, the small batch the first rows of the big one). Then
/// `E|g_B|² = |G|² + tr Σ·(n − B)/(B(n − 1))`, Σ the covariance over the n rows, so the i.i.d.
/// estimates `(g2, tr)` are unbiased for `|G|² − tr Σ/(n − 1)` and `tr Σ·n/(n − 1)`: this returns
/// `(g2 + tr/n, tr·(n − 1)/n)`, unbiased for `(|G|², tr Σ)`. Uncorrected, B_simple read
/// 1/(1 − B_simple/n) too high, and its |G|² fell below 0 on average once B_simple ≳ n.
pub fn without_replacement(g2: f64, tr: f64, n: f64) -> (f64, f64) {
    (g2 + tr / n, tr * (n - 1.0) / n)
}

/// `B_simple = tr Σ / |G|²`, smoothed by separate EMAs of numerator and denominator (a ratio of
/// noisy estimates is biased; the EMAs average first).
#[derive(Clone, Debug)]
pub struct NoiseScaleEma {
    pub beta: f64,
    g2: Option<f64>,
    tr: Option<f64>,
}

impl NoiseScaleEma {
    pub fn new(beta: f64) -> Self {
        NoiseScaleEma { beta, g2: None, tr: None }
    }

    /// Fold in one pair of estimates; returns the current B_simple.
    pub fn update(&mut self, g2: f64, tr_sigma: f64) -> Option<f64> {
        let mix = |old: Option<f64>, new: f64, beta: f64| {
            Some(old.map_or(new, |o| beta * o + (1.0 - beta) * new))
        };
        self.g2 = mix(self.g2, g2, self.beta);
        self.tr = mix(self.tr, tr_sigma, self.beta);
        self.b_simple()
    }

    pub fn b_simple(&self) -> Option<f64> {
        match (self.g2, self.tr) {
            (Some(g), Some(t)) if g > 0.0 => Some(t / g),
            _ => None,
        }
    }
}

/// `ε_opt(B) = ε_max / (1 + B_noise / B)`: the best step size at batch B (McCandlish et al.).
pub fn eps_opt(eps_max: f64, b_noise: f64, batch: f64) -> f64 {
    eps_max / (1.0 + b_noise / batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Synthetic per-example gradients g_i = G + ξ_i with known Σ = diag(s²).
    fn sample_mean(r: &mut ChaCha8Rng, g: &[f64], s: &[f64], batch: usize) -> Vec<f64> {
        let mut m = vec![0.0; g.len()];
        for _ in 0..batch {
            for j in 0..g.len() {
                // Uniform in [-√3 s, √3 s] has variance s².
                let u: f64 = r.random_range(-1.0..1.0);
                m[j] += g[j] + u * 3f64.sqrt() * s[j];
            }
        }
        m.iter().map(|v| v / batch as f64).collect()
    }

    #[test]
    fn two_batch_estimators_recover_known_moments() {
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let g: Vec<f64> = (0..50).map(|j| 0.1 * (j as f64).sin()).collect();
        let s: Vec<f64> = (0..50).map(|j| 0.5 + 0.01 * j as f64).collect();
        let g2_true: f64 = g.iter().map(|v| v * v).sum();
        let tr_true: f64 = s.iter().map(|v| v * v).sum();
        let mut ema = NoiseScaleEma::new(0.0);
        let (mut g2_sum, mut tr_sum) = (0.0, 0.0);
        let reps = 400;
        for _ in 0..reps {
            let gs = sample_mean(&mut r, &g, &s, 8);
            let gb = sample_mean(&mut r, &g, &s, 128);
            let n2 = |v: &Vec<f64>| v.iter().map(|x| x * x).sum::<f64>();
            let (g2, tr) = two_batch_estimates(8.0, n2(&gs), 128.0, n2(&gb)).unwrap();
            g2_sum += g2;
            tr_sum += tr;
            ema.update(g2, tr);
        }
        let (g2, tr) = (g2_sum / reps as f64, tr_sum / reps as f64);
        assert!((g2 - g2_true).abs() < 0.1 * g2_true, "|G|² {g2} vs {g2_true}");
        assert!((tr - tr_true).abs() < 0.05 * tr_true, "tr Σ {tr} vs {tr_true}");
        assert!(ema.b_simple().is_some());
    }

    /// Exact expectations over every batch a training set of 7 rows can give: the mean of
    /// |g_B|² over all B-subsets (each epoch's minibatch is a uniform one), B = 4 and b = 2.
    #[test]
    fn corrected_estimates_are_unbiased_without_replacement() {
        let rows: [[f64; 2]; 7] =
            [[1.0, -0.5], [0.3, 2.0], [-1.2, 0.7], [2.5, 0.1], [0.0, -1.9], [0.9, 0.4], [-0.6, 1.1]];
        let n = rows.len();
        let mean_of = |idx: &[usize]| {
            let mut m = [0.0; 2];
            for &i in idx {
                m[0] += rows[i][0] / idx.len() as f64;
                m[1] += rows[i][1] / idx.len() as f64;
            }
            m[0] * m[0] + m[1] * m[1]
        };
        let expected_sq_norm = |size: usize| {
            let subsets: Vec<Vec<usize>> = (0u32..1 << n)
                .filter(|m| m.count_ones() as usize == size)
                .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
                .collect();
            subsets.iter().map(|s| mean_of(s)).sum::<f64>() / subsets.len() as f64
        };
        let all: Vec<usize> = (0..n).collect();
        let g2_true = mean_of(&all);
        let tr_true: f64 = rows
            .iter()
            .map(|r| {
                let d0 = r[0] - all.iter().map(|&i| rows[i][0]).sum::<f64>() / n as f64;
                let d1 = r[1] - all.iter().map(|&i| rows[i][1]).sum::<f64>() / n as f64;
                d0 * d0 + d1 * d1
            })
            .sum::<f64>()
            / n as f64;
        let (g2, tr) = two_batch_estimates(2.0, expected_sq_norm(2), 4.0, expected_sq_norm(4)).unwrap();
        // The i.i.d. formulas are off by −tr Σ/(n − 1) and a factor n/(n − 1).
        assert!((g2 - (g2_true - tr_true / (n as f64 - 1.0))).abs() < 1e-12, "{g2}");
        let (g2, tr) = without_replacement(g2, tr, n as f64);
        assert!((g2 - g2_true).abs() < 1e-12, "|G|² {g2} vs {g2_true}");
        assert!((tr - tr_true).abs() < 1e-12, "tr Σ {tr} vs {tr_true}");
    }

    #[test]
    fn ema_smooths_numerator_and_denominator_separately() {
        let mut e = NoiseScaleEma::new(0.5);
        assert_eq!(e.update(1.0, 10.0), Some(10.0));
        // g2: 0.5·1 + 0.5·3 = 2; tr: 0.5·10 + 0.5·30 = 20 → 10 (a mean of ratios would differ).
        assert_eq!(e.update(3.0, 30.0), Some(10.0));
        assert!(e.update(-100.0, 1.0).is_none());
    }

    #[test]
    fn loglog_slope_of_power_law() {
        let pts: Vec<(f64, f64)> = (0..10).map(|k| (2f64.powi(k), 3.0 * 2f64.powi(-k))).collect();
        let (slope, icpt) = loglog_fit(&pts).unwrap();
        assert!((slope + 1.0).abs() < 1e-12);
        assert!((icpt - 3f64.ln()).abs() < 1e-12);
        assert!(loglog_fit(&[(1.0, 1.0)]).is_none());
    }

    #[test]
    fn eps_opt_limits() {
        assert!((eps_opt(2.0, 100.0, 1e12) - 2.0).abs() < 1e-6);
        assert!((eps_opt(2.0, 100.0, 100.0) - 1.0).abs() < 1e-12);
    }

    /// The delta-method standard error matches the spread of the two-batch B_simple over many
    /// independent repetitions (draws of 64 batches at 8 and 128 per repetition), to 15 %.
    #[test]
    fn the_two_batch_standard_error_matches_the_spread_over_repetitions() {
        let mut r = ChaCha8Rng::seed_from_u64(7);
        let g: Vec<f64> = (0..20).map(|j| 0.3 * (j as f64).cos()).collect();
        let s: Vec<f64> = (0..20).map(|j| 0.8 + 0.02 * j as f64).collect();
        let n2 = |v: &Vec<f64>| v.iter().map(|x| x * x).sum::<f64>();
        let (draws, reps) = (64, 300);
        let (mut estimates, mut ses) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let moments = |r: &mut ChaCha8Rng, batch: usize| {
                let norms: Vec<f64> = (0..draws).map(|_| n2(&sample_mean(r, &g, &s, batch))).collect();
                let mean = norms.iter().sum::<f64>() / draws as f64;
                let var = norms.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (draws - 1) as f64;
                (mean, var / draws as f64)
            };
            let ((gs, vs), (gb, vb)) = (moments(&mut r, 8), moments(&mut r, 128));
            let (g2, tr) = two_batch_estimates(8.0, gs, 128.0, gb).unwrap();
            estimates.push(tr / g2);
            ses.push(two_batch_b_simple_se((8.0, gs, vs), (128.0, gb, vb)).expect("se"));
        }
        let mean = estimates.iter().sum::<f64>() / reps as f64;
        let spread =
            (estimates.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
        let se = ses.iter().sum::<f64>() / reps as f64;
        assert!((se / spread - 1.0).abs() < 0.15, "delta-method SE {se}, spread {spread}");
        // |G|² not positive, or within 3 SE of 0: no standard error.
        assert_eq!(two_batch_b_simple_se((8.0, 1.0, 0.1), (128.0, 0.01, 0.1)), None);
        assert_eq!(two_batch_b_simple_se((8.0, 1.0, 1e-4), (128.0, 0.1, 1e-3)), None);
        assert!(two_batch_b_simple_se((8.0, 1.0, 1e-6), (128.0, 0.1, 1e-8)).is_some());
    }
}

//! Small statistics on host vectors: median, dot products and L2 norms (accumulated in `f64`),
//! mean and sample standard deviation, and least-squares line fits (linear and log-log).
//!
//! Every sum runs front to back in one pass, in the order the callers used before these helpers
//! were shared, so results that reach output files are bitwise unchanged.

/// Median of `v` (sorted in place by `total_cmp`); the mean of the two middle values when the
/// length is even; `NaN` when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// `Σ a_i b_i` over `f32` vectors, accumulated in `f64` (pairs past the shorter end ignored).
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `‖a‖₂` of an `f32` vector, accumulated in `f64`.
pub fn norm(a: &[f32]) -> f64 {
    dot(a, a).sqrt()
}

/// `‖v‖₂` of an `f64` vector.
pub fn norm_f64(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `‖v‖₂` over every tensor of `v` as one vector (one running sum, tensor after tensor).
pub fn global_norm(v: &[Vec<f32>]) -> f64 {
    v.iter().flatten().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

/// The f64 nearest the decimal an f32 setting is written as (`0.05f32` → `0.05`, where
/// `as f64` gives 0.05000000074505806): output files then hold the value config.toml shows.
pub fn f32_as_written(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Arithmetic mean; `0` when empty.
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Sample standard deviation (`n − 1` in the denominator); `0` with fewer than two values.
pub fn std_dev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// Mean and sample standard deviation of a stream, in constant memory: the mean is the sum
/// over the count (the same bits as [`mean`] of the values in push order), the deviation by
/// Welford's update (equal to [`std_dev`] to rounding).
#[derive(Clone, Copy, Debug, Default)]
pub struct Running {
    count: u64,
    sum: f64,
    welford_mean: f64,
    m2: f64,
}

impl Running {
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        let delta = x - self.welford_mean;
        self.welford_mean += delta / self.count as f64;
        self.m2 += delta * (x - self.welford_mean);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// `0` when empty.
    pub fn mean(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }

    /// `n − 1` in the denominator; `0` with fewer than two values.
    pub fn sample_sd(&self) -> f64 {
        match self.count {
            0 | 1 => 0.0,
            n => (self.m2.max(0.0) / (n - 1) as f64).sqrt(),
        }
    }
}

/// Least-squares slope and intercept of `ys` against `xs` (pairs with a non-finite coordinate
/// skipped); `None` with fewer than two usable points or when all usable `xs` are equal.
pub fn fit_line(xs: &[f64], ys: &[f64]) -> Option<(f64, f64)> {
    let pts: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(&x, &y)| (x, y))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// Least-squares slope and intercept of `ln y` against `ln x` (positive finite points only).
pub fn loglog_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let (xs, ys): (Vec<f64>, Vec<f64>) = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
        .map(|(x, y)| (x.ln(), y.ln()))
        .unzip();
    fit_line(&xs, &ys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_f32_setting_widens_to_the_decimal_it_is_written_as() {
        assert_eq!(f32_as_written(0.05), 0.05);
        assert_eq!(f32_as_written(0.9), 0.9);
        assert_eq!(100.0 * f32_as_written(0.001), 0.1);
        assert_eq!(f32_as_written(1e-7), 1e-7);
        assert!(f32_as_written(f32::NAN).is_nan());
        assert_eq!(f32_as_written(f32::INFINITY), f64::INFINITY);
        assert_eq!(f32_as_written(f32::MAX) as f32, f32::MAX);
    }

    #[test]
    fn running_statistics_equal_the_slice_ones() {
        let v: Vec<f64> = (0..1000).map(|i| 1e6 + ((i * 7919) % 113) as f64 * 0.25).collect();
        let mut r = Running::default();
        v.iter().for_each(|&x| r.push(x));
        assert_eq!(r.count(), 1000);
        assert_eq!(r.mean().to_bits(), mean(&v).to_bits(), "the same sum, the same bits");
        assert!(
            (r.sample_sd() - std_dev(&v)).abs() <= 1e-9 * std_dev(&v),
            "{} {}",
            r.sample_sd(),
            std_dev(&v)
        );
        let mut one = Running::default();
        assert_eq!((one.mean(), one.sample_sd()), (0.0, 0.0));
        one.push(3.0);
        assert_eq!((one.mean(), one.sample_sd()), (3.0, 0.0));
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
        let mut v = [5.0, -1.0, 2.0];
        median(&mut v);
        assert_eq!(v, [-1.0, 2.0, 5.0], "sorted in place");
    }

    #[test]
    fn dots_and_norms_accumulate_in_f64() {
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0]), 1.0);
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        assert_eq!(norm_f64(&[3.0, 4.0]), 5.0);
        assert_eq!(global_norm(&[vec![3.0], vec![], vec![4.0]]), 5.0);
        assert_eq!(global_norm(&[]), 0.0);
        // 16_777_217 is not an f32, but its square's parts sum exactly in f64.
        let big = [16_777_216.0f32, 1.0];
        assert_eq!(dot(&big, &big), 16_777_216.0f64 * 16_777_216.0 + 1.0);
    }

    #[test]
    fn global_norm_is_the_norm_of_the_concatenation() {
        let parts = vec![vec![0.1f32, -2.5, 3.25], vec![7.0, 1e-3]];
        let flat: Vec<f32> = parts.concat();
        assert_eq!(global_norm(&parts).to_bits(), norm(&flat).to_bits());
    }

    #[test]
    fn mean_and_sample_std_dev() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(std_dev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), (32.0f64 / 7.0).sqrt());
        assert_eq!(std_dev(&[42.0]), 0.0);
        assert_eq!(std_dev(&[]), 0.0);
    }

    #[test]
    fn line_fit_recovers_slope_and_intercept() {
        let xs = [0.0, 1.0, 2.0, 3.0, f64::NAN];
        let ys = [1.0, 3.0, 5.0, 7.0, 100.0];
        let (s, c) = fit_line(&xs, &ys).unwrap();
        assert!((s - 2.0).abs() < 1e-12 && (c - 1.0).abs() < 1e-12, "{s} {c}");
        assert!(fit_line(&[1.0], &[2.0]).is_none());
        assert!(fit_line(&[1.0, 1.0], &[2.0, 3.0]).is_none(), "vertical line");
        assert!(fit_line(&[1.0, 2.0], &[f64::INFINITY, 3.0]).is_none());
    }

    #[test]
    fn loglog_fit_recovers_a_power_law() {
        let pts: Vec<(f64, f64)> = (1..=6).map(|i| (i as f64, 3.0 * (i as f64).powf(-1.5))).collect();
        let (s, c) = loglog_fit(&pts).unwrap();
        assert!((s + 1.5).abs() < 1e-12 && (c - 3f64.ln()).abs() < 1e-12, "{s} {c}");
        assert!(loglog_fit(&[(1.0, 1.0), (0.0, 2.0), (2.0, -1.0)]).is_none(), "one usable point");
    }
}

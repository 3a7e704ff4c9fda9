//! Axes shared by every figure: linear / log10 / log2 scales, data ranges, tick placement and
//! tick labels. Log axes work in transformed coordinates (log10 or log2 of the value).

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

use super::PlotSpec;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scale {
    Linear,
    Log10,
    Log2,
}

impl Scale {
    pub(crate) fn x(spec: &PlotSpec) -> Self {
        if spec.log2_x {
            Scale::Log2
        } else if spec.log_x {
            Scale::Log10
        } else {
            Scale::Linear
        }
    }

    pub(crate) fn y(spec: &PlotSpec) -> Self {
        Scale::log10_if(spec.log_y)
    }

    /// `Log10` when `log`, else `Linear`.
    pub(crate) fn log10_if(log: bool) -> Self {
        if log {
            Scale::Log10
        } else {
            Scale::Linear
        }
    }

    /// The plotted coordinate of `v`, or `None` when `v` cannot be shown on this axis
    /// (non-finite, or ≤ 0 on a log axis).
    pub(crate) fn fwd(self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        match self {
            Scale::Linear => Some(v),
            Scale::Log10 if v > 0.0 => Some(v.log10()),
            Scale::Log2 if v > 0.0 => Some(v.log2()),
            _ => None,
        }
    }

    /// The data value at plotted coordinate `t`.
    pub(crate) fn inv(self, t: f64) -> f64 {
        match self {
            Scale::Linear => t,
            Scale::Log10 => 10f64.powf(t),
            Scale::Log2 => t.exp2(),
        }
    }
}

/// `(min, max)` of `ts` (NaNs ignored); `None` when there is nothing to span.
pub(crate) fn extent(ts: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) =
        ts.into_iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), t| (a.min(t), b.max(t)));
    (lo <= hi).then_some((lo, hi))
}

/// The extent of finite `ts`, `(0, 1)` when empty, widened to `[lo, lo + 1]` when flat.
pub(crate) fn value_range(ts: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = extent(ts).unwrap_or((0.0, 1.0));
    if hi - lo < 1e-12 {
        (lo, lo + 1.0)
    } else {
        (lo, hi)
    }
}

/// The largest magnitude an axis end takes (an eighth of f64::MAX: span, padding and tick
/// steps stay finite).
const AXIS_LIMIT: f64 = f64::MAX / 8.0;

/// A plotted range with its tick positions (in plotted coordinates).
#[derive(Clone, Debug)]
pub(crate) struct Axis {
    pub(crate) scale: Scale,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
    /// Tick labels with the digits that tell this axis's ticks apart.
    format: TickFormat,
}

impl Axis {
    /// The axis over the plotted coordinates `ts` (already transformed, all finite).
    pub(crate) fn fit(scale: Scale, ts: impl Iterator<Item = f64>, include_zero: bool) -> Self {
        let (mut lo, mut hi) = extent(ts).unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
        if include_zero && scale == Scale::Linear {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        // Keep the span, its padding and the ticks' arithmetic finite: data near ±f64::MAX
        // (±1e308) sit at the axis ends instead of making the axis ±inf.
        (lo, hi) = (lo.clamp(-AXIS_LIMIT, AXIS_LIMIT), hi.clamp(-AXIS_LIMIT, AXIS_LIMIT));
        if hi - lo <= f64::EPSILON * (lo.abs() + hi.abs()).max(1e-300) {
            // One value: 5 % either side of it (0 to 1 for a zero), not ±0.5, which drew a
            // single 0-1 error of 0.1 on an axis from −0.4 to 0.6.
            match scale {
                Scale::Linear if lo == 0.0 => hi = 1.0,
                Scale::Linear => {
                    let half = lo.abs() * 0.05;
                    lo -= half;
                    hi += half;
                }
                _ => {
                    lo -= 0.5;
                    hi += 0.5;
                }
            }
        }
        let pad = match scale {
            Scale::Linear => 0.04 * (hi - lo),
            Scale::Log2 => (0.04 * (hi - lo)).clamp(0.1, 0.35),
            Scale::Log10 => (0.04 * (hi - lo)).clamp(0.02, 0.2),
        };
        let (lo, hi) = if include_zero && scale == Scale::Linear && lo == 0.0 {
            (0.0, hi + pad)
        } else {
            (lo - pad, hi + pad)
        };
        let (ticks, minor) = ticks(scale, lo, hi);
        let format = match scale {
            Scale::Linear => TickFormat::FINE.to_tell_apart(&ticks),
            Scale::Log10 => {
                let values: Vec<f64> = ticks.iter().map(|t| 10f64.powf(*t)).collect();
                TickFormat::FINE.to_tell_apart(&values)
            }
            Scale::Log2 => TickFormat::FINE,
        };
        Axis { scale, lo, hi, ticks, minor, format }
    }

    pub(crate) fn label(&self, t: f64) -> String {
        match self.scale {
            Scale::Linear => self.format.format(t),
            Scale::Log10 => self.format.format(10f64.powf(t)),
            Scale::Log2 => fmt_pow2(t),
        }
    }
}

/// Plotters' view of an axis: a linear map of the plotted coordinate, our own ticks (bold lines
/// and labels at `ticks`, light grid lines at `minor`).
impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.lo) / (self.hi - self.lo);
        let len = f64::from(limit.1 - limit.0);
        // Clamped far outside the canvas so i32 pixel arithmetic cannot overflow.
        let px = (len * f).clamp(-1e6, 1e6);
        if px.is_nan() {
            return limit.0;
        }
        limit.0 + (px + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Major and minor ticks in plotted coordinates over `[lo, hi]`.
fn ticks(scale: Scale, lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    match scale {
        Scale::Linear => (nice_ticks(lo, hi, 7), Vec::new()),
        Scale::Log2 | Scale::Log10 => {
            let (first, last) = (lo.ceil() as i64, hi.floor() as i64);
            let count = (last - first + 1).max(0) as usize;
            if count < 2 {
                // Less than two whole powers in view: ticks at nice values of the data.
                let (a, b) = (scale.inv(lo), scale.inv(hi));
                let ts = nice_ticks(a, b, 5).into_iter().filter_map(|v| scale.fwd(v)).collect();
                return (ts, Vec::new());
            }
            let max_major = if scale == Scale::Log2 { 14 } else { 10 };
            let step = count.div_ceil(max_major).max(1) as i64;
            let major: Vec<f64> =
                (first..=last).filter(|k| (k - first) % step == 0).map(|k| k as f64).collect();
            let minor = if scale == Scale::Log10 && count <= 8 {
                (first - 1..=last)
                    .flat_map(|k| (2..10).map(move |m| k as f64 + (m as f64).log10()))
                    .filter(|t| *t > lo && *t < hi)
                    .collect()
            } else {
                // Every power of two between labelled ones (or none).
                (first..=last).filter(|k| (k - first) % step != 0).map(|k| k as f64).collect()
            };
            (major, minor)
        }
    }
}

/// About `target` ticks at multiples of 1, 2, 2.5 or 5 × 10^k inside `[lo, hi]`.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return vec![lo];
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// How tick labels are written without float noise: fixed notation with `fixed_digits`
/// significant digits for magnitudes in `[1e-3, fixed_below)`, otherwise scientific with
/// `exp_decimals` mantissa decimals; trailing zeros dropped (`0.3`, `1500`, `2.5e-5`, `1e8`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TickFormat {
    fixed_digits: i32,
    fixed_below: f64,
    exp_decimals: usize,
    /// Magnitudes below this are written `0`.
    zero_below: f64,
}

impl TickFormat {
    /// Line plots and histograms: six significant digits (hides `0.30000000000000004`).
    pub(crate) const FINE: TickFormat =
        TickFormat { fixed_digits: 6, fixed_below: 1e6, exp_decimals: 3, zero_below: 0.0 };
    /// Heatmaps, colour bars and event plots: about three significant digits.
    pub(crate) const SHORT: TickFormat =
        TickFormat { fixed_digits: 3, fixed_below: 1e5, exp_decimals: 1, zero_below: 1e-12 };

    /// This format with more digits where it writes two of `values` alike (ticks 6.7001e8 and
    /// 6.7002e8 were both `6.7e8`), up to 15 significant digits.
    pub(crate) fn to_tell_apart(self, values: &[f64]) -> TickFormat {
        let mut f = self;
        while f.fixed_digits < 15 {
            let labels: Vec<String> = values.iter().map(|&v| f.format(v)).collect();
            if labels.windows(2).all(|w| w[0] != w[1]) {
                break;
            }
            f.fixed_digits += 1;
            f.exp_decimals += 1;
        }
        f
    }

    /// [`TickFormat::to_tell_apart`] for ticks about a tenth of `[lo, hi]` apart (the axes
    /// plotters ticks itself).
    pub(crate) fn for_range(self, lo: f64, hi: f64) -> TickFormat {
        let step = (hi - lo) / 10.0;
        if !(step.is_finite() && step > 0.0) {
            return self;
        }
        let values: Vec<f64> = (0..=10).map(|i| lo + step * i as f64).collect();
        self.to_tell_apart(&values)
    }

    pub(crate) fn format(self, v: f64) -> String {
        if !v.is_finite() {
            return format!("{v}");
        }
        let a = v.abs();
        if v == 0.0 || a < self.zero_below {
            return "0".into();
        }
        if (1e-3..self.fixed_below).contains(&a) {
            let decimals = (self.fixed_digits - 1 - a.log10().floor() as i32).max(0) as usize;
            trim_zeros(format!("{v:.decimals$}"))
        } else {
            let s = format!("{v:.prec$e}", prec = self.exp_decimals);
            match s.split_once('e') {
                Some((m, e)) => format!("{}e{e}", trim_zeros(m.to_string())),
                None => s,
            }
        }
    }
}

/// `s` without trailing fractional zeros (and a bare trailing point).
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A power-of-two tick label: `1, 2, 4, ..., 4096, 65536`; fractions `0.5, 0.25`; `2^k` beyond.
fn fmt_pow2(t: f64) -> String {
    let k = t.round();
    if (t - k).abs() > 1e-9 {
        return TickFormat::FINE.format(t.exp2());
    }
    let k = k as i64;
    match k {
        0..=62 => (1u64 << k).to_string(),
        -6..=-1 => TickFormat::FINE.format((k as f64).exp2()),
        _ => format!("2^{k}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt_tick(v: f64) -> String {
        TickFormat::FINE.format(v)
    }

    #[test]
    fn tick_helpers() {
        let nt = nice_ticks(0.0, 1.0, 5);
        assert_eq!(nt.len(), 6);
        assert!(
            nt.iter().zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]).all(|(a, b)| (a - b).abs() < 1e-12),
            "{nt:?}"
        );
        assert_eq!(nice_ticks(3.0, 97.0, 5), vec![20.0, 40.0, 60.0, 80.0]);
        assert_eq!(fmt_tick(0.6000000000000001), "0.6");
        assert_eq!(fmt_tick(1500.0), "1500");
        assert_eq!(fmt_tick(2.5e-5), "2.5e-5");
        assert_eq!(fmt_tick(1e8), "1e8");
        assert_eq!(fmt_tick(-0.3), "-0.3");
        assert_eq!(fmt_pow2(0.0), "1");
        assert_eq!(fmt_pow2(12.0), "4096");
        assert_eq!(fmt_pow2(-1.0), "0.5");
        let (major, minor) = ticks(Scale::Log2, -0.3, 12.3);
        assert_eq!(major, (0..=12).map(f64::from).collect::<Vec<_>>());
        assert!(minor.is_empty());
        let (major, minor) = ticks(Scale::Log2, -0.3, 20.3);
        assert_eq!(major, (0..=20).step_by(2).map(f64::from).collect::<Vec<_>>());
        assert_eq!(minor.len(), 10);
        let (major, _) = ticks(Scale::Log10, 0.1, 0.4); // 1.26 .. 2.5: no whole decade
        assert!(!major.is_empty());
    }

    #[test]
    fn short_tick_labels() {
        let f = |v: f64| TickFormat::SHORT.format(v);
        assert_eq!(f(0.7912), "0.791");
        assert_eq!(f(1500.0), "1500");
        assert_eq!(f(2.5e-5), "2.5e-5");
        assert_eq!(f(1e8), "1e8");
        assert_eq!(f(-3e-13), "0");
        assert_eq!(f(f64::NAN), "NaN");
    }

    /// Ticks of a narrow range far from zero get the digits that tell them apart (a gradient
    /// norm axis of 6.7e8 ± 0.01 % had ten ticks all `6.7e8`), and a single value sits in
    /// the middle of an axis 5 % either side of it (a 0-1 error of 0.1 spanned −0.4 to 0.6).
    #[test]
    fn narrow_axes_tell_their_ticks_apart_and_one_value_is_not_padded_past_its_sign() {
        let a = Axis::fit(Scale::Linear, [6.7e8, 6.7001e8].into_iter(), false);
        let labels: Vec<String> = a.ticks.iter().map(|&t| a.label(t)).collect();
        assert!(labels.len() > 2 && labels.windows(2).all(|w| w[0] != w[1]), "{labels:?}");
        let events = TickFormat::SHORT.for_range(2.99, 3.01);
        assert_ne!(events.format(2.996), events.format(3.0));
        let one = Axis::fit(Scale::Linear, [0.1].into_iter(), false);
        assert!(one.lo > 0.09 && one.hi < 0.11, "{one:?}");
        let zero = Axis::fit(Scale::Linear, [0.0].into_iter(), true);
        assert_eq!((zero.lo, zero.hi > 1.0), (0.0, true), "{zero:?}");
    }

    #[test]
    fn ranges_of_data() {
        assert_eq!(extent([3.0, f64::NAN, -1.0, 2.0]), Some((-1.0, 3.0)));
        assert_eq!(extent([]), None);
        assert_eq!(value_range([]), (0.0, 1.0));
        assert_eq!(value_range([2.0, 2.0]), (2.0, 3.0));
        assert_eq!(value_range([2.0, 5.0]), (2.0, 5.0));
    }

    #[test]
    fn an_axis_over_values_near_the_largest_float_stays_finite() {
        let a = Axis::fit(Scale::Linear, [-1e308, 1e308, 0.0].into_iter(), false);
        assert!(a.lo.is_finite() && a.hi.is_finite() && a.lo < a.hi, "{a:?}");
        // All of them past the limit: a flat range at the limit, not an inverted one.
        let high = Axis::fit(Scale::Linear, [1e308, 1.5e308].into_iter(), false);
        assert!(high.lo < high.hi && high.hi.is_finite(), "{high:?}");
        assert!(!a.ticks.is_empty(), "{a:?}");
        for &t in &a.ticks {
            assert!(t.is_finite() && !a.label(t).contains("inf"), "{t} {}", a.label(t));
        }
    }
}

//! Results of a batch-size sweep and the knee of the throughput curve.

use std::fmt::Display;

use serde::{Deserialize, Serialize};

/// One batch size of a sweep: step-time statistics over the timed steps, or why it was skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Batch size B (examples per step).
    pub batch: usize,
    /// Median wall time of one training step, milliseconds (0 when skipped).
    pub ms_per_step_median: f64,
    /// Fastest timed step, milliseconds (0 when skipped).
    pub ms_min: f64,
    /// Slowest timed step, milliseconds (0 when skipped).
    pub ms_max: f64,
    /// Throughput at the median step time: `batch · 1000 / ms_per_step_median`, examples/s.
    pub examples_per_s: f64,
    /// Why the batch size was not run (memory model or device limit); `None` when measured.
    #[serde(default)]
    pub skipped: Option<String>,
}

impl SweepPoint {
    /// A measured batch size; throughput from the median step time.
    pub fn measured(batch: usize, ms_median: f64, ms_min: f64, ms_max: f64) -> Self {
        SweepPoint {
            batch,
            ms_per_step_median: ms_median,
            ms_min,
            ms_max,
            examples_per_s: batch as f64 * 1000.0 / ms_median,
            skipped: None,
        }
    }

    /// A batch size predicted not to fit, with the reason.
    pub fn skipped(batch: usize, reason: impl Display) -> Self {
        SweepPoint {
            batch,
            ms_per_step_median: 0.0,
            ms_min: 0.0,
            ms_max: 0.0,
            examples_per_s: 0.0,
            skipped: Some(reason.to_string()),
        }
    }

    /// Measured, with a positive batch and finite positive step time and throughput.
    pub fn is_usable(&self) -> bool {
        self.skipped.is_none()
            && self.batch > 0
            && self.ms_per_step_median.is_finite()
            && self.ms_per_step_median > 0.0
            && self.examples_per_s.is_finite()
            && self.examples_per_s > 0.0
    }
}

/// The usable points sorted by batch size; of several points with the same batch size, the one
/// with the highest throughput.
pub fn usable_points(points: &[SweepPoint]) -> Vec<&SweepPoint> {
    let mut v: Vec<&SweepPoint> = points.iter().filter(|p| p.is_usable()).collect();
    // Batch ascending, then throughput descending, so dedup keeps the fastest.
    v.sort_by(|a, b| a.batch.cmp(&b.batch).then(b.examples_per_s.total_cmp(&a.examples_per_s)));
    v.dedup_by_key(|p| p.batch);
    v
}

/// The knee of the throughput curve: the smallest measured B past which throughput grows by less
/// than `min_gain` (a fraction: 0.1 = 10 %) per doubling of B. Below it the device is underused.
///
/// B_i is the knee when every larger measured B_j satisfies
/// `X(B_j) < X(B_i) · (1 + min_gain)^log2(B_j / B_i)` (X = examples/s), so a sweep with gaps
/// between batch sizes is judged per doubling, and a dip followed by a rise does not end the
/// growth. Skipped and unusable points are ignored. `None` when throughput is still growing at
/// the largest measured B, or fewer than two points are usable.
pub fn knee(points: &[SweepPoint], min_gain: f64) -> Option<usize> {
    let pts = usable_points(points);
    let n = pts.len();
    (0..n.saturating_sub(1))
        .find(|&i| {
            let (bi, xi) = (pts[i].batch as f64, pts[i].examples_per_s);
            pts[i + 1..].iter().all(|pj| {
                let doublings = (pj.batch as f64 / bi).log2();
                pj.examples_per_s < xi * (1.0 + min_gain).powf(doublings)
            })
        })
        .map(|i| pts[i].batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points with given batch sizes and throughputs (step time derived from them).
    fn curve(xs: &[(usize, f64)]) -> Vec<SweepPoint> {
        xs.iter().map(|&(b, x)| SweepPoint::measured(b, b as f64 * 1000.0 / x, 0.0, 0.0)).collect()
    }

    #[test]
    fn measured_throughput() {
        // 256 examples in 12.8 ms → 20,000 examples/s.
        let p = SweepPoint::measured(256, 12.8, 12.0, 14.0);
        assert!((p.examples_per_s - 20_000.0).abs() < 1e-9);
        assert!(p.is_usable());
        let s = SweepPoint::skipped(1 << 20, "too big");
        assert!(!s.is_usable());
        assert_eq!(s.skipped.as_deref(), Some("too big"));
        assert!(!SweepPoint::measured(4, 0.0, 0.0, 0.0).is_usable());
    }

    #[test]
    fn serde_round_trip() {
        let pts = vec![SweepPoint::measured(8, 2.0, 1.5, 3.0), SweepPoint::skipped(16, "too big")];
        let json = serde_json::to_string(&pts).unwrap();
        let back: Vec<SweepPoint> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pts);
        // `skipped` may be absent.
        let p: SweepPoint = serde_json::from_str(
            r#"{"batch":2,"ms_per_step_median":1.0,"ms_min":1.0,"ms_max":1.0,"examples_per_s":2000.0}"#,
        )
        .unwrap();
        assert!(p.is_usable());
    }

    #[test]
    fn knee_of_saturating_curve() {
        // Gains per doubling: 1→2 100 %, 2→4 100 %, 4→8 75 %, 8→16 28.6 %, 16→32 5.6 %, 32→64 1.1 %.
        let pts = curve(&[
            (1, 100.0),
            (2, 200.0),
            (4, 400.0),
            (8, 700.0),
            (16, 900.0),
            (32, 950.0),
            (64, 960.0),
        ]);
        // 10 %: 16 (16→32: 950 < 990; 16→64: 960 < 900·1.21 = 1089). 8 fails: 900 ≥ 770.
        assert_eq!(knee(&pts, 0.10), Some(16));
        // 30 %: 8→16 gains 28.6 % < 30 %, and 8→32: 950 < 700·1.69; 4→8 gains 75 %.
        assert_eq!(knee(&pts, 0.30), Some(8));
        // 1 %: 32→64 gains 1.05 %, still growing at the end.
        assert_eq!(knee(&pts, 0.01), None);
        // 2 %: 32 (32→64: 960 < 969).
        assert_eq!(knee(&pts, 0.02), Some(32));
    }

    #[test]
    fn knee_ignores_skipped_and_handles_gaps() {
        let mut pts = curve(&[(1, 100.0), (4, 400.0), (16, 900.0), (64, 960.0)]);
        pts.push(SweepPoint::skipped(128, "too big"));
        // Per doubling: 4→16 is 900/400 = 2.25 over 2 doublings = 50 % each; 16→64: 960/900 < 1.21.
        assert_eq!(knee(&pts, 0.10), Some(16));
        // Order of the input does not matter.
        pts.reverse();
        assert_eq!(knee(&pts, 0.10), Some(16));
    }

    #[test]
    fn knee_needs_all_later_points_flat() {
        // A dip at 16 then a doubling at 32: 8 is not the knee (8→32: 1600 ≥ 800·1.21) and
        // neither is 16; 32 is the last point, so there is no knee.
        let pts = curve(&[(4, 400.0), (8, 800.0), (16, 790.0), (32, 1600.0)]);
        assert_eq!(knee(&pts, 0.10), None);
        // Fewer than two usable points.
        assert_eq!(knee(&curve(&[(8, 800.0)]), 0.10), None);
        assert_eq!(knee(&[], 0.10), None);
    }

    #[test]
    fn duplicates_keep_fastest() {
        let pts = curve(&[(8, 700.0), (8, 800.0), (16, 810.0)]);
        let u = usable_points(&pts);
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].examples_per_s.round(), 800.0);
        assert_eq!(knee(&pts, 0.10), Some(8));
    }
}

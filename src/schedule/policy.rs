//! Batch-size selection policies over the points of a sweep.
//!
//! A policy is written the same way on the command line (`--policy knee:0.8`) and in a config
//! (`policy = "knee"`): `max_throughput`, `knee`, `knee:<fraction>`, `largest_fit`,
//! `time_to_target:<b_noise>`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::knee::{usable_points, SweepPoint};

pub use crate::config::policy::{Policy, PolicyParseError};

/// Why no batch size could be chosen.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum PolicyError {
    #[error("no usable sweep points to choose a batch size from ({total} points, {skipped} skipped)")]
    NoUsablePoints { total: usize, skipped: usize },
    #[error("invalid batch-size policy: {0}")]
    Invalid(#[from] PolicyParseError),
}

/// The chosen batch size and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Chosen batch size B.
    pub batch: usize,
    /// Measured throughput at B, examples/s.
    pub examples_per_s: f64,
    /// One line naming the policy and the numbers behind the choice.
    pub reason: String,
}

/// Predicted wall time to a target loss at each usable B, relative to the best (min = 1):
/// `T(B) ∝ (1 + b_noise/B) · ms_per_step_median(B)` (S_min cancels). Sorted by B; empty when no
/// point is usable. `b_noise` is in examples and should be finite and ≥ 0.
pub fn predicted_time_curve(points: &[SweepPoint], b_noise: f64) -> Vec<(usize, f64)> {
    let pts = usable_points(points);
    let times = relative_times(&pts, b_noise);
    pts.iter().map(|p| p.batch).zip(times).collect()
}

/// `(1 + b_noise/B)·t_step(B)` for each point, divided by the smallest.
fn relative_times(pts: &[&SweepPoint], b_noise: f64) -> Vec<f64> {
    let raw: Vec<f64> =
        pts.iter().map(|p| (1.0 + b_noise / p.batch as f64) * p.ms_per_step_median).collect();
    let min = raw.iter().copied().fold(f64::INFINITY, f64::min);
    raw.into_iter().map(|t| t / min).collect()
}

/// Choose a batch size from `points` with `policy`. Skipped and unusable points are ignored;
/// ties go to the smaller B.
pub fn choose(policy: &Policy, points: &[SweepPoint]) -> Result<Choice, PolicyError> {
    policy.validate()?;
    let pts = usable_points(points);
    // The fastest point; usable points are sorted by B, so a strict `>` keeps the smaller B on ties.
    let Some(best) =
        pts.iter().copied().reduce(|a, b| if b.examples_per_s > a.examples_per_s { b } else { a })
    else {
        return Err(PolicyError::NoUsablePoints {
            total: points.len(),
            skipped: points.iter().filter(|p| p.skipped.is_some()).count(),
        });
    };
    let choice = |p: &SweepPoint, reason: String| Choice {
        batch: p.batch,
        examples_per_s: p.examples_per_s,
        reason,
    };
    Ok(match *policy {
        Policy::MaxThroughput => choice(
            best,
            format!(
                "max_throughput: B={} has the highest throughput, {:.0} examples/s",
                best.batch, best.examples_per_s
            ),
        ),
        Policy::Knee { fraction } => {
            let need = fraction * best.examples_per_s;
            // `best` itself qualifies, so the search finds a point.
            let p = pts.iter().copied().find(|p| p.examples_per_s >= need).unwrap_or(best);
            choice(
                p,
                format!(
                    "knee: B={} is the smallest batch reaching {} % of the best throughput \
                     ({:.0} of {:.0} examples/s at B={}: {:.2} %)",
                    p.batch,
                    percent_as_given(fraction),
                    p.examples_per_s,
                    best.examples_per_s,
                    best.batch,
                    100.0 * p.examples_per_s / best.examples_per_s
                ),
            )
        }
        Policy::LargestFit => {
            let p = pts.last().copied().unwrap_or(best);
            // A larger size skipped for another reason than memory (the time budget) is said:
            // "the largest that fits" would be a claim the sweep did not test.
            let larger = points.iter().find(|q| q.batch > p.batch && q.skipped.is_some());
            let why = match larger.and_then(|q| q.skipped.as_deref().map(|s| (q.batch, s))) {
                Some((b, s)) if s.starts_with("sweep.time_budget_s") => {
                    format!(" the sweep ran (B={b} was skipped: {s})")
                }
                _ => " that fits".to_string(),
            };
            choice(
                p,
                format!(
                    "largest_fit: B={} is the largest batch{why} ({:.0} examples/s, {:.0} % of the best)",
                    p.batch,
                    p.examples_per_s,
                    100.0 * p.examples_per_s / best.examples_per_s
                ),
            )
        }
        Policy::TimeToTarget { b_noise } => {
            let times = relative_times(&pts, b_noise);
            // First of the smallest predicted times (smaller B on ties).
            let mut min: Option<(&SweepPoint, f64)> = None;
            let mut best_time = f64::NAN;
            for (&p, &t) in pts.iter().zip(&times) {
                if min.is_none_or(|(_, m)| t < m) {
                    min = Some((p, t));
                }
                if p.batch == best.batch {
                    best_time = t;
                }
            }
            let p = min.map_or(best, |(p, _)| p);
            choice(
                p,
                format!(
                    "time_to_target: B={} minimizes the predicted time to target with B_noise = {b_noise} \
                     (steps ∝ 1 + B_noise/B, {:.3} ms/step); the max-throughput B={} would take {:.2}× as long",
                    p.batch, p.ms_per_step_median, best.batch, best_time
                ),
            )
        }
    })
}

/// `fraction` as a percent with the digits it was given (0.996 is 99.6, not a rounded 100).
fn percent_as_given(fraction: f64) -> String {
    let text = format!("{:.6}", fraction * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points with given batch sizes and throughputs (step time derived from them).
    fn curve(xs: &[(usize, f64)]) -> Vec<SweepPoint> {
        xs.iter().map(|&(b, x)| SweepPoint::measured(b, b as f64 * 1000.0 / x, 0.0, 0.0)).collect()
    }

    /// Throughputs 100, 200, 400, 700, 900, 950, 940 at B = 1..64, and B = 128 skipped.
    fn sweep() -> Vec<SweepPoint> {
        let (bs, xs) = ([1, 2, 4, 8, 16, 32, 64], [100.0, 200.0, 400.0, 700.0, 900.0, 950.0, 940.0]);
        let mut pts = curve(&bs.into_iter().zip(xs).collect::<Vec<_>>());
        pts.push(SweepPoint::skipped(128, "exceeds the memory budget"));
        pts
    }

    #[test]
    fn max_throughput() {
        let c = choose(&Policy::MaxThroughput, &sweep()).unwrap();
        assert_eq!(c.batch, 32);
        assert!((c.examples_per_s - 950.0).abs() < 1e-9);
        assert!(c.reason.contains("B=32"), "{}", c.reason);
        // Ties go to the smaller batch.
        let tie = curve(&[(8, 500.0), (16, 500.0)]);
        assert_eq!(choose(&Policy::MaxThroughput, &tie).unwrap().batch, 8);
    }

    #[test]
    fn knee_policy() {
        // Best 950 (B=32). 90 % = 855: 16 (900) is the first at or above. 70 % = 665: 8 (700).
        // 100 %: 32 itself. 95 % = 902.5: 32 (16 has 900).
        let pts = sweep();
        let c = choose(&Policy::default(), &pts).unwrap();
        assert_eq!(c.batch, 16);
        assert!(c.reason.contains("90 %"), "{}", c.reason);
        assert_eq!(choose(&Policy::Knee { fraction: 0.7 }, &pts).unwrap().batch, 8);
        assert_eq!(choose(&Policy::Knee { fraction: 1.0 }, &pts).unwrap().batch, 32);
        assert_eq!(choose(&Policy::Knee { fraction: 0.95 }, &pts).unwrap().batch, 32);
        // The rule as given, and what the pick reached: 0.945 said "reaching 94 %" (rounded),
        // and 0.9999 "reaching 100 %" of a pick at 99.8 %.
        let c = choose(&Policy::Knee { fraction: 0.945 }, &pts).unwrap();
        assert_eq!(c.batch, 16);
        assert!(c.reason.contains("reaching 94.5 %") && c.reason.contains("94.74 %"), "{}", c.reason);
    }

    #[test]
    fn largest_fit() {
        // 128 was skipped: 64 is the largest that ran, though slower than 32.
        let c = choose(&Policy::LargestFit, &sweep()).unwrap();
        assert_eq!(c.batch, 64);
        assert!(c.reason.contains("largest_fit") && c.reason.contains("that fits"), "{}", c.reason);
        // Past the time budget, what fits was not tried: the reason says so.
        let mut pts = curve(&[(1, 100.0), (2, 200.0)]);
        pts.push(SweepPoint::skipped(4, "sweep.time_budget_s = 1 s: predicted 2.0 s, 0.5 s left"));
        let c = choose(&Policy::LargestFit, &pts).unwrap();
        assert!(
            c.reason.contains("largest batch the sweep ran (B=4 was skipped: sweep.time_budget_s"),
            "{}",
            c.reason
        );
    }

    /// Step time t(B) = a + c·B ms with a = 1, c = 1/64, and B_noise = 64:
    /// T(B) ∝ (1 + 64/B)(1 + B/64) = 2 + x + 1/x with x = B/64, minimal at B* = √(a·B_noise/c) = 64
    /// (T = 4); B = 32 and 128 give 4.5 (1.125 relative), B = 1 gives 66.015625 (16.50390625).
    /// Throughput B/(1 + B/64) grows with B, so max_throughput picks the largest, 1024.
    fn linear_step_time() -> Vec<SweepPoint> {
        (0..=10)
            .map(|k| {
                let b = 1usize << k;
                let t = 1.0 + b as f64 / 64.0;
                SweepPoint::measured(b, t, t, t)
            })
            .collect()
    }

    #[test]
    fn time_to_target_finds_analytic_minimizer() {
        let pts = linear_step_time();
        let c = choose(&Policy::TimeToTarget { b_noise: 64.0 }, &pts).unwrap();
        assert_eq!(c.batch, 64);
        assert_eq!(choose(&Policy::MaxThroughput, &pts).unwrap().batch, 1024);
        // 1024: x = 16, 2 + 16 + 1/16 = 18.0625 → 4.515625× as long.
        assert!(c.reason.contains("4.52×"), "{}", c.reason);

        let curve = predicted_time_curve(&pts, 64.0);
        assert_eq!(curve.len(), 11);
        let at = |b: usize| curve.iter().find(|&&(x, _)| x == b).map(|&(_, t)| t).unwrap();
        assert!((at(64) - 1.0).abs() < 1e-12);
        assert!((at(32) - 1.125).abs() < 1e-12);
        assert!((at(128) - 1.125).abs() < 1e-12);
        assert!((at(1) - 16.50390625).abs() < 1e-12);
        assert!(curve.iter().all(|&(_, t)| t >= 1.0));

        // a·B_noise/c = 4096·4 → B* = 128 with B_noise = 256.
        assert_eq!(choose(&Policy::TimeToTarget { b_noise: 256.0 }, &pts).unwrap().batch, 128);
        // No noise: S is constant, so the fastest step wins: B = 1.
        assert_eq!(choose(&Policy::TimeToTarget { b_noise: 0.0 }, &pts).unwrap().batch, 1);
        // Huge noise: S ∝ 1/B, T ∝ t(B)/B, the max-throughput batch.
        assert_eq!(choose(&Policy::TimeToTarget { b_noise: 1e12 }, &pts).unwrap().batch, 1024);
    }

    #[test]
    fn time_curve_ignores_skipped() {
        let mut pts = linear_step_time();
        pts.push(SweepPoint::skipped(2048, "too big"));
        assert_eq!(predicted_time_curve(&pts, 64.0).len(), 11);
        assert!(predicted_time_curve(&[], 64.0).is_empty());
    }

    #[test]
    fn no_usable_points() {
        let pts = vec![SweepPoint::skipped(8, "a"), SweepPoint::skipped(16, "b")];
        for p in [
            Policy::MaxThroughput,
            Policy::default(),
            Policy::LargestFit,
            Policy::TimeToTarget { b_noise: 1.0 },
        ] {
            let e = choose(&p, &pts).unwrap_err();
            assert_eq!(e, PolicyError::NoUsablePoints { total: 2, skipped: 2 });
            assert!(e.to_string().contains("no usable sweep points"));
        }
        assert!(matches!(
            choose(&Policy::MaxThroughput, &[]),
            Err(PolicyError::NoUsablePoints { total: 0, .. })
        ));
    }

    #[test]
    fn invalid_parameters_rejected_by_choose() {
        let e = choose(&Policy::Knee { fraction: 1.5 }, &sweep()).unwrap_err();
        assert!(matches!(e, PolicyError::Invalid(PolicyParseError::OutOfRange { policy: "knee", .. })));
        let e = choose(&Policy::TimeToTarget { b_noise: -1.0 }, &sweep()).unwrap_err();
        assert!(e.to_string().contains("time_to_target"), "{e}");
    }

    #[test]
    fn from_str_round_trips() {
        for p in [
            Policy::MaxThroughput,
            Policy::Knee { fraction: 0.9 },
            Policy::Knee { fraction: 0.75 },
            Policy::LargestFit,
            Policy::TimeToTarget { b_noise: 1234.5 },
            Policy::TimeToTarget { b_noise: 0.0 },
        ] {
            assert_eq!(p.to_string().parse::<Policy>(), Ok(p), "{p}");
        }
        assert_eq!("knee".parse::<Policy>(), Ok(Policy::Knee { fraction: 0.9 }));
        assert_eq!("knee:0.8".parse::<Policy>(), Ok(Policy::Knee { fraction: 0.8 }));
        assert_eq!(" Max-Throughput ".parse::<Policy>(), Ok(Policy::MaxThroughput));
        assert_eq!("time_to_target:1e3".parse::<Policy>(), Ok(Policy::TimeToTarget { b_noise: 1000.0 }));
    }

    #[test]
    fn from_str_errors() {
        let e = "fastest".parse::<Policy>().unwrap_err();
        assert!(matches!(e, PolicyParseError::Unknown { .. }));
        assert!(e.to_string().contains("max_throughput, knee"), "{e}");
        assert_eq!("time_to_target".parse::<Policy>(), Err(PolicyParseError::MissingNoiseScale));
        assert!(matches!(
            "knee:abc".parse::<Policy>(),
            Err(PolicyParseError::BadNumber { policy: "knee", .. })
        ));
        assert!(matches!("knee:".parse::<Policy>(), Err(PolicyParseError::BadNumber { .. })));
        assert!(matches!("knee:0".parse::<Policy>(), Err(PolicyParseError::OutOfRange { .. })));
        assert!(matches!("knee:1.1".parse::<Policy>(), Err(PolicyParseError::OutOfRange { .. })));
        assert!(matches!("knee:NaN".parse::<Policy>(), Err(PolicyParseError::OutOfRange { .. })));
        assert!(matches!(
            "time_to_target:-5".parse::<Policy>(),
            Err(PolicyParseError::OutOfRange { .. })
        ));
        assert!(matches!(
            "time_to_target:inf".parse::<Policy>(),
            Err(PolicyParseError::OutOfRange { .. })
        ));
        // A noise scale past any dataset (it printed as a 309-digit number).
        assert!(matches!(
            "time_to_target:1e308".parse::<Policy>(),
            Err(PolicyParseError::OutOfRange { .. })
        ));
        let e = "largest_fit:3".parse::<Policy>().unwrap_err();
        assert!(matches!(e, PolicyParseError::UnexpectedArgument { policy: "largest_fit", .. }));
    }

    #[test]
    fn serde_as_strings() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Cfg {
            policy: Policy,
        }
        let c: Cfg = toml::from_str(r#"policy = "knee""#).unwrap();
        assert_eq!(c.policy, Policy::Knee { fraction: 0.9 });
        let c: Cfg = toml::from_str(r#"policy = "time_to_target:500""#).unwrap();
        assert_eq!(c.policy, Policy::TimeToTarget { b_noise: 500.0 });
        let s = toml::to_string(&Cfg { policy: Policy::LargestFit }).unwrap();
        assert_eq!(s.trim(), r#"policy = "largest_fit""#);
        let e = toml::from_str::<Cfg>(r#"policy = "knee:2""#).unwrap_err();
        assert!(e.to_string().contains("knee"), "{e}");
        let json = serde_json::to_string(&Policy::Knee { fraction: 0.8 }).unwrap();
        assert_eq!(json, r#""knee:0.8""#);
    }
}

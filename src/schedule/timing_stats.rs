//! How firmly a sweep's timed steps support what it reports: a distribution-free interval for
//! each batch size's median step time, and how often the batch-size policy picks the same B when
//! the timed steps are resampled (a hierarchical bootstrap: rounds, then steps within a round).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::knee::SweepPoint;
use super::policy::{choose, Policy};
use crate::stats::median;

/// The coverage the median's interval aims at.
pub const CI_LEVEL: f64 = 0.95;

/// Resamples of [`choice_stability`] in `sweep` and its followers.
pub const STABILITY_RESAMPLES: usize = 1000;

/// An interval of order statistics that holds a population median with probability `coverage`
/// whatever the distribution of step times (the steps taken as independent draws).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MedianInterval {
    pub low: f64,
    pub high: f64,
    /// P(low ≤ median ≤ high): at least [`CI_LEVEL`] from 6 steps on; below it with fewer,
    /// where the interval is the whole range of the steps.
    pub coverage: f64,
}

/// P(X ≤ k) for X ~ Binomial(n, 1/2), summed in logs so that large n does not overflow.
fn binomial_half_cdf(n: usize, k: usize) -> f64 {
    let ln_half_n = n as f64 * 0.5f64.ln();
    let (mut ln_choose, mut sum) = (0.0f64, 0.0f64);
    for j in 0..=k.min(n) {
        if j > 0 {
            ln_choose += ((n - j + 1) as f64).ln() - (j as f64).ln();
        }
        sum += (ln_choose + ln_half_n).exp();
    }
    sum.min(1.0)
}

/// The narrowest symmetric interval [x₍ₖ₎, x₍ₙ₊₁₋ₖ₎] of the sorted `steps` whose coverage of the
/// median is at least [`CI_LEVEL`] (the whole range, with its lower coverage, under 6 steps).
/// `None` without a finite step.
pub fn median_interval(steps: &[f64]) -> Option<MedianInterval> {
    let mut s: Vec<f64> = steps.iter().copied().filter(|v| v.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let coverage = |k: usize| 1.0 - 2.0 * binomial_half_cdf(n, k - 1);
    // k = 1 is the whole range; a larger k narrows the interval while its coverage holds.
    let mut k = 1;
    while k < n.div_ceil(2) && coverage(k + 1) >= CI_LEVEL {
        k += 1;
    }
    let cover = if n == 1 { 0.0 } else { coverage(k).max(0.0) };
    Some(MedianInterval { low: s[k - 1], high: s[n - k], coverage: cover })
}

/// One batch size another resample picked, and how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub batch: usize,
    /// Fraction of the resamples that picked it.
    pub fraction: f64,
}

/// How the pick is resampled: how many copies, from which seed, and B_noise's standard error
/// where a `time_to_target` policy took a measured B_noise (each copy then draws B_noise from
/// N(B_noise, se²), cut at 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resampling {
    pub resamples: usize,
    pub seed: u64,
    pub b_noise_se: Option<f64>,
}

impl Resampling {
    /// [`STABILITY_RESAMPLES`] copies from `seed`, B_noise taken as exact.
    pub fn seeded(seed: u64) -> Self {
        Resampling { resamples: STABILITY_RESAMPLES, seed, b_noise_se: None }
    }

    /// The same, drawing a `time_to_target` policy's B_noise with standard error `se`.
    pub fn with_b_noise_se(self, se: Option<f64>) -> Self {
        Resampling { b_noise_se: se.filter(|s| s.is_finite() && *s > 0.0), ..self }
    }
}

/// How often the policy's pick survives resampling the timed steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    pub policy: String,
    /// The batch size the measured medians gave.
    pub batch: usize,
    pub resamples: usize,
    /// B_noise's standard error where each copy drew B_noise too (`time_to_target:auto`).
    pub b_noise_se: Option<f64>,
    /// Fraction of the resamples whose medians made the policy pick `batch` again.
    pub agreement: f64,
    /// Where B_noise was drawn too: the agreement of the same copies with B_noise held at its
    /// estimate (the steps' share of the uncertainty); `None` otherwise.
    pub agreement_steps_only: Option<f64>,
    /// The other picks, most frequent first.
    pub alternatives: Vec<Alternative>,
}

/// A measured batch size's timed steps in ms, one list per round; or a point not measured.
pub struct TimedPoint<'a> {
    pub point: SweepPoint,
    pub rounds: &'a [Vec<f64>],
}

/// The pooled median of `rounds` resampled: the rounds at `picks` (drawn with replacement),
/// then steps with replacement within each drawn round.
fn resampled_median(rounds: &[&[f64]], picks: &[usize], r: &mut ChaCha8Rng, pool: &mut Vec<f64>) -> f64 {
    pool.clear();
    for &k in picks {
        let round = rounds[k];
        for _ in 0..round.len() {
            pool.push(round[r.random_range(0..round.len())]);
        }
    }
    median(pool)
}

/// A standard normal draw (Box–Muller).
fn standard_normal(r: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - r.random::<f64>(); // (0, 1]
    let u2 = r.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The policy a copy runs: `time_to_target` with B_noise drawn around its estimate where its
/// standard error is known, else the policy itself.
fn drawn_policy(policy: &Policy, b_noise_se: Option<f64>, r: &mut ChaCha8Rng) -> Policy {
    match (policy, b_noise_se) {
        (Policy::TimeToTarget { b_noise }, Some(se)) => {
            Policy::TimeToTarget { b_noise: (b_noise + se * standard_normal(r)).max(0.0) }
        }
        _ => *policy,
    }
}

/// Run `policy` on `how.resamples` bootstrap copies of `points` (each measured point's median
/// from its resampled steps; unmeasured points as they are) and count how often it picks what it
/// picks on the measured medians. `None` where the policy picks nothing on the measured medians.
///
/// A copy draws round indices once, with replacement, for every point timed in as many rounds
/// (a drift the rounds shared then moves every size alike, as it did in the sweep), then steps
/// with replacement within each drawn round. With one round this is the ordinary bootstrap of
/// the steps; with more, the second stage counts the within-round spread again, so `agreement`
/// errs low (a conservative figure).
pub fn choice_stability(
    policy: &Policy,
    points: &[TimedPoint<'_>],
    how: &Resampling,
) -> Option<Stability> {
    let measured: Vec<SweepPoint> = points.iter().map(|p| p.point.clone()).collect();
    let batch = choose(policy, &measured).ok()?.batch;
    let (resamples, b_noise_se) = (how.resamples, how.b_noise_se);
    let b_noise_se = b_noise_se.filter(|_| matches!(policy, Policy::TimeToTarget { .. }));
    // Each measured point's rounds with steps, gathered once.
    let timed: Vec<Option<Vec<&[f64]>>> = points
        .iter()
        .map(|p| {
            let rounds: Vec<&[f64]> =
                p.rounds.iter().filter(|s| !s.is_empty()).map(Vec::as_slice).collect();
            (p.point.is_usable() && !rounds.is_empty()).then_some(rounds)
        })
        .collect();
    let most = timed.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let mut r = ChaCha8Rng::seed_from_u64(how.seed);
    let mut pool = Vec::new();
    let mut counts: Vec<(usize, usize)> = Vec::new();
    let mut exact_agrees = 0usize;
    for _ in 0..resamples {
        let shared: Vec<usize> = (0..most).map(|_| r.random_range(0..most)).collect();
        let copy: Vec<SweepPoint> = points
            .iter()
            .zip(&timed)
            .map(|(p, t)| match t {
                Some(rounds) => {
                    let picks: Vec<usize> = match rounds.len() == most {
                        true => shared.clone(),
                        false => (0..rounds.len()).map(|_| r.random_range(0..rounds.len())).collect(),
                    };
                    let med = resampled_median(rounds, &picks, &mut r, &mut pool);
                    SweepPoint::measured(p.point.batch, med, p.point.ms_min, p.point.ms_max)
                }
                None => p.point.clone(),
            })
            .collect();
        if b_noise_se.is_some() && choose(policy, &copy).is_ok_and(|c| c.batch == batch) {
            exact_agrees += 1;
        }
        if let Ok(c) = choose(&drawn_policy(policy, b_noise_se, &mut r), &copy) {
            match counts.iter_mut().find(|(b, _)| *b == c.batch) {
                Some((_, n)) => *n += 1,
                None => counts.push((c.batch, 1)),
            }
        }
    }
    let share = |n: usize| n as f64 / resamples.max(1) as f64;
    let agreement = counts.iter().find(|(b, _)| *b == batch).map_or(0.0, |&(_, n)| share(n));
    counts.retain(|(b, _)| *b != batch);
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Some(Stability {
        policy: policy.to_string(),
        batch,
        resamples,
        b_noise_se,
        agreement,
        agreement_steps_only: b_noise_se.map(|_| share(exact_agrees)),
        alternatives: counts
            .into_iter()
            .map(|(b, n)| Alternative { batch: b, fraction: share(n) })
            .collect(),
    })
}

/// The rounds that hold steps.
fn non_empty(rounds: &[Vec<f64>]) -> Vec<&[f64]> {
    rounds.iter().filter(|s| !s.is_empty()).map(Vec::as_slice).collect()
}

/// A percentile bootstrap interval (level [`CI_LEVEL`]) of `median(a) / median(b)`, each side's
/// timed steps resampled by round, then within rounds, as one size of [`choice_stability`] is;
/// the two sides drawn independently (two sweeps). `None` where a side has no steps.
pub fn median_ratio_interval(
    a: &[Vec<f64>],
    b: &[Vec<f64>],
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    let (a, b) = (non_empty(a), non_empty(b));
    if a.is_empty() || b.is_empty() || resamples < 2 {
        return None;
    }
    let (mut r, mut pool) = (ChaCha8Rng::seed_from_u64(seed), Vec::new());
    let mut draw = |rounds: &[&[f64]]| {
        let picks: Vec<usize> = (0..rounds.len()).map(|_| r.random_range(0..rounds.len())).collect();
        resampled_median(rounds, &picks, &mut r, &mut pool)
    };
    let mut ratios: Vec<f64> =
        (0..resamples).map(|_| draw(&a) / draw(&b)).filter(|q| q.is_finite()).collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = |p: f64| ratios[(p * (ratios.len() - 1) as f64).round() as usize];
    Some((at((1.0 - CI_LEVEL) / 2.0), at((1.0 + CI_LEVEL) / 2.0)))
}

/// One line for the console: "94 % of 1000 resamples of the timed steps pick B = 512 again
/// (5 % B = 1024, 1 % B = 256)".
pub fn stability_line(s: &Stability) -> String {
    let others: Vec<String> = s
        .alternatives
        .iter()
        .take(3)
        .map(|a| format!("{} B = {}", percent(a.fraction), a.batch))
        .collect();
    let tail = match others.is_empty() {
        true => String::new(),
        false => format!(" ({})", others.join(", ")),
    };
    let what = match s.b_noise_se {
        Some(se) => format!("the timed steps and of B_noise (SE {se:.2})"),
        None => "the timed steps".to_string(),
    };
    format!(
        "{} of {} resamples of {what} pick B = {} again{tail}",
        percent(s.agreement),
        s.resamples,
        s.batch
    )
}

/// A fraction as a whole percent, never rounded to 0 % or 100 % when it is neither.
fn percent(f: f64) -> String {
    match f {
        f if f > 0.0 && f < 0.005 => "<1 %".to_string(),
        f if f < 1.0 && f > 0.995 => ">99 %".to_string(),
        f => format!("{:.0} %", 100.0 * f),
    }
}

/// Below this agreement the console says how to firm the pick up.
pub const UNSETTLED_BELOW: f64 = 0.8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_cdf_is_exact_for_small_n() {
        // n = 8: P(X ≤ 1) = 9/256, P(X ≤ 8) = 1.
        assert!((binomial_half_cdf(8, 1) - 9.0 / 256.0).abs() < 1e-15);
        assert!((binomial_half_cdf(8, 8) - 1.0).abs() < 1e-12);
        // Large n does not overflow: P(X ≤ n/2) ≈ 1/2 + P(X = n/2)/2.
        let p = binomial_half_cdf(100_000, 50_000);
        assert!((p - 0.5).abs() < 0.002, "{p}");
    }

    #[test]
    fn the_median_interval_is_the_narrowest_that_covers_95_percent() {
        // n = 8: [x₂, x₇] covers 1 − 2·9/256 = 93 % < 95 %, so [x₁, x₈] (99.2 %).
        let eight: Vec<f64> = (1..=8).map(f64::from).collect();
        let i = median_interval(&eight).expect("interval");
        assert_eq!((i.low, i.high), (1.0, 8.0));
        assert!((i.coverage - (1.0 - 2.0 / 256.0)).abs() < 1e-12);
        // n = 20: k = 6 (1 − 2·P(X ≤ 5) = 95.9 %; k = 7 gives 88.5 %). Input order is free.
        let twenty: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let i = median_interval(&twenty).expect("interval");
        assert_eq!((i.low, i.high), (6.0, 15.0));
        assert!(i.coverage >= CI_LEVEL && i.coverage < 0.97, "{}", i.coverage);
        // Under 6 steps: the whole range, with the coverage it has (1 − 2/32 for 5).
        let i = median_interval(&[3.0, 1.0, 2.0, 5.0, 4.0]).expect("interval");
        assert_eq!((i.low, i.high), (1.0, 5.0));
        assert!((i.coverage - 0.9375).abs() < 1e-12);
        assert_eq!(median_interval(&[2.0]).map(|i| (i.low, i.high, i.coverage)), Some((2.0, 2.0, 0.0)));
        assert!(median_interval(&[f64::NAN]).is_none());
    }

    /// The empirical coverage of the interval over many samples of a skewed distribution is at
    /// least its stated coverage (to sampling error).
    #[test]
    fn the_median_interval_covers_as_stated() {
        let mut r = ChaCha8Rng::seed_from_u64(3);
        // Exponential(1) step times: median ln 2.
        let (trials, n) = (4000, 12);
        let mut held = 0;
        let mut stated = 0.0;
        for _ in 0..trials {
            let s: Vec<f64> = (0..n).map(|_| -(1.0 - r.random::<f64>()).ln()).collect();
            let i = median_interval(&s).expect("interval");
            stated = i.coverage;
            held += usize::from(i.low <= std::f64::consts::LN_2 && std::f64::consts::LN_2 <= i.high);
        }
        let rate = held as f64 / trials as f64;
        // Binomial SE at 4000 trials ≈ 0.3 %.
        assert!(rate > stated - 0.012, "held {rate}, stated {stated}");
    }

    fn how(resamples: usize, seed: u64) -> Resampling {
        Resampling { resamples, seed, b_noise_se: None }
    }

    fn timed(batch: usize, rounds: &[Vec<f64>]) -> SweepPoint {
        let mut all: Vec<f64> = rounds.concat();
        SweepPoint::measured(batch, median(&mut all), 0.0, 0.0)
    }

    /// Two batch sizes far apart in throughput: every resample agrees. Two a hair apart with
    /// noisy steps: the max_throughput pick is a coin toss, and the alternative is named.
    #[test]
    fn a_clear_pick_is_stable_and_a_close_one_is_not() {
        let clear = [vec![vec![1.0, 1.1, 0.9, 1.0]], vec![vec![4.0, 4.2, 3.9, 4.1]]];
        let pts: Vec<TimedPoint> = [(64, &clear[0]), (128, &clear[1])]
            .into_iter()
            .map(|(b, r)| TimedPoint { point: timed(b, r), rounds: r })
            .collect();
        let s = choice_stability(&Policy::MaxThroughput, &pts, &how(500, 1)).expect("pick");
        assert_eq!((s.batch, s.agreement), (64, 1.0));
        assert!(s.alternatives.is_empty());

        // The same 16 noisy steps at 2 ms (B = 64) and at 4 ms (128): the same throughput.
        let mut r = ChaCha8Rng::seed_from_u64(5);
        let noise: Vec<f64> = (0..16).map(|_| 1.0 + 0.2 * r.random::<f64>()).collect();
        let noisy = |c: f64| vec![noise.iter().map(|u| c * u).collect::<Vec<f64>>()];
        let close = [noisy(2.0), noisy(4.0)];
        let pts: Vec<TimedPoint> = [(64, &close[0]), (128, &close[1])]
            .into_iter()
            .map(|(b, r)| TimedPoint { point: timed(b, r), rounds: r })
            .collect();
        let s = choice_stability(&Policy::MaxThroughput, &pts, &how(500, 1)).expect("pick");
        assert!(s.agreement > 0.1 && s.agreement < 0.9, "{s:?}");
        assert_eq!(s.alternatives.len(), 1);
        assert!((s.agreement + s.alternatives[0].fraction - 1.0).abs() < 1e-12);
        // The same seed gives the same figures.
        assert_eq!(choice_stability(&Policy::MaxThroughput, &pts, &how(500, 1)), Some(s.clone()));
        assert!(
            stability_line(&s).contains("resamples of the timed steps pick B ="),
            "{}",
            stability_line(&s)
        );
    }

    /// Rounds are resampled whole: where one round of three ran slow (drift between rounds), the
    /// pick is less certain than the same steps read as one round say.
    #[test]
    fn rounds_that_disagree_unsettle_the_pick() {
        let one = vec![vec![1.0; 4]];
        // B = 128 beats B = 64's 64 000 examples/s below 2 ms a step; two rounds at 1.8, one at 2.4.
        let by_round = vec![vec![1.8; 8], vec![1.8; 8], vec![2.4; 8]];
        let pooled = vec![by_round.concat()];
        let agreement = |rounds: &[Vec<f64>]| {
            let pts = [
                TimedPoint { point: timed(64, &one), rounds: &one },
                TimedPoint { point: timed(128, rounds), rounds },
            ];
            let s = choice_stability(&Policy::MaxThroughput, &pts, &how(2000, 2)).expect("pick");
            assert_eq!(s.batch, 128);
            s.agreement
        };
        let (split, as_one) = (agreement(&by_round), agreement(&pooled));
        // Two or three slow rounds drawn: 7/27 = 26 % of resamples; one slow round of 24 steps
        // draws 12 or more slow steps 7 % of the time.
        assert!(split < 0.8 && as_one > 0.88, "by round {split}, pooled {as_one}");
    }

    /// time_to_target's pick moves with B_noise: with 1 ms steps at B = 64 and 1.5 ms at 128,
    /// (1 + B_noise/64)·1 and (1 + B_noise/128)·1.5 meet at B_noise = 128. A B_noise of 100 taken
    /// as exact picks 64 every time (2.56 < 2.67); with an SE of 60 the copies that draw B_noise
    /// past 128 pick 128.
    #[test]
    fn a_measured_b_noise_carries_its_error_into_the_pick() {
        let (a, b) = (vec![vec![1.0; 8]], vec![vec![1.5; 8]]);
        let pts = [
            TimedPoint { point: timed(64, &a), rounds: &a },
            TimedPoint { point: timed(128, &b), rounds: &b },
        ];
        let policy = Policy::TimeToTarget { b_noise: 100.0 };
        let exact = choice_stability(&policy, &pts, &how(1000, 4)).expect("pick");
        assert_eq!((exact.batch, exact.agreement, exact.b_noise_se), (64, 1.0, None));
        let drawn =
            choice_stability(&policy, &pts, &how(1000, 4).with_b_noise_se(Some(60.0))).expect("pick");
        // P(B_noise > 128) = P(z > 28/60) = 32 %.
        assert!((drawn.agreement - 0.68).abs() < 0.05, "{drawn:?}");
        assert_eq!(drawn.alternatives[0].batch, 128);
        assert_eq!(drawn.b_noise_se, Some(60.0));
        // The steps alone (B_noise held) never move this pick: the uncertainty is B_noise's.
        assert_eq!(drawn.agreement_steps_only, Some(1.0));
        assert!(stability_line(&drawn).contains("of B_noise (SE 60.00)"), "{}", stability_line(&drawn));
        // Another policy ignores the SE.
        let knee =
            choice_stability(&Policy::MaxThroughput, &pts, &how(100, 4).with_b_noise_se(Some(60.0)));
        assert_eq!(knee.map(|s| s.b_noise_se), Some(None));
    }

    /// A drift the rounds shared (the second round 20 % slower for every size) moves every size
    /// alike in a copy, since the copies draw the same rounds for all of them: B = 128, 10 %
    /// faster per example than B = 64 in each round, is picked every time (drawn apart, a fast
    /// round of 64 against a slow one of 128 would have picked 64).
    #[test]
    fn a_drift_every_size_shared_does_not_unsettle_the_pick() {
        let small = vec![vec![1.0; 8], vec![1.2; 8]];
        let big = vec![vec![1.8; 8], vec![2.16; 8]];
        let pts = [
            TimedPoint { point: timed(64, &small), rounds: &small },
            TimedPoint { point: timed(128, &big), rounds: &big },
        ];
        let s = choice_stability(&Policy::MaxThroughput, &pts, &how(1000, 9)).expect("pick");
        assert_eq!((s.batch, s.agreement), (128, 1.0), "{s:?}");
    }

    #[test]
    fn percentages_are_never_rounded_to_all_or_nothing() {
        assert_eq!(percent(0.004), "<1 %");
        assert_eq!(percent(0.996), ">99 %");
        assert_eq!(
            (percent(0.0), percent(1.0), percent(0.5)),
            ("0 %".into(), "100 %".into(), "50 %".into())
        );
    }

    /// The ratio's interval holds the ratio of the medians, and it is narrow where both sides'
    /// steps are steady; resampling the same seed gives the same interval.
    #[test]
    fn the_ratio_interval_brackets_the_ratio_of_medians() {
        let mut r = ChaCha8Rng::seed_from_u64(11);
        let mut steps = |c: f64, spread: f64| {
            vec![(0..16).map(|_| c * (1.0 + spread * r.random::<f64>())).collect::<Vec<f64>>()]
        };
        let (cpu, gpu) = (steps(4.0, 0.05), steps(1.0, 0.05));
        let (lo, hi) = median_ratio_interval(&cpu, &gpu, 1000, 1).expect("interval");
        let ratio = median(&mut cpu[0].clone()) / median(&mut gpu[0].clone());
        assert!(lo <= ratio && ratio <= hi && hi - lo < 0.25, "{lo}..{hi} around {ratio}");
        assert_eq!(median_ratio_interval(&cpu, &gpu, 1000, 1), Some((lo, hi)));
        // Noisy steps widen it.
        let (noisy_cpu, noisy_gpu) = (steps(4.0, 1.0), steps(1.0, 1.0));
        let (nlo, nhi) = median_ratio_interval(&noisy_cpu, &noisy_gpu, 1000, 1).expect("interval");
        assert!(nhi - nlo > 2.0 * (hi - lo), "{nlo}..{nhi} against {lo}..{hi}");
        assert_eq!(median_ratio_interval(&cpu, &[], 1000, 1), None);
    }
}

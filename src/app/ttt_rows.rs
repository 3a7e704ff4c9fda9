//! The rows of `batchscope time-to-target`: per batch size, the prediction beside the measured
//! steps and time to the target, each relative to the best run.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct TttRow {
    pub batch: usize,
    /// `None` for a batch size the sweep skipped (its reason in `note`).
    pub ms_per_step: Option<f64>,
    pub lr: f64,
    /// Predicted wall time relative to the predicted best (`None` where skipped).
    pub predicted_rel: Option<f64>,
    /// Predicted steps to the target relative to the largest B's, `(1 + B_noise/B) / (1 +
    /// B_noise/B_max)`: the step model alone, without t(B).
    pub predicted_steps_rel: Option<f64>,
    /// Steps the run took to reach the target (known to its evaluation cadence,
    /// `step_resolution` in summary.json).
    pub steps: Option<u64>,
    /// Measured steps relative to those of the largest B that reached the target.
    pub measured_steps_rel: Option<f64>,
    /// The run's training wall time (`train_s`: the steps, without evaluations).
    pub seconds: Option<f64>,
    pub reached: bool,
    /// Measured time to the target, `steps × ms_per_step` (the run's deterministic step count
    /// at the sweep's median time per step: the clock of the prediction), relative to the best
    /// run that reached the target.
    pub measured_rel: Option<f64>,
    /// `seconds` relative to the best run's: the runs' own wall clocks, which at milliseconds
    /// a run are start-up and timer jitter more than steps.
    pub wall_rel: Option<f64>,
    pub note: String,
}

/// The step model `S(B) ∝ 1 + B_noise/B` relative to its value at the largest B swept.
pub(super) fn steps_model(b_noise: f64, batch: usize) -> f64 {
    1.0 + b_noise / batch as f64
}

/// Fill the measured columns of `rows` (sorted by batch): the time to the target as
/// `steps × ms_per_step` and the wall time, each over the best run that reached the target,
/// and the steps over the largest B's that did; the predicted steps over the same largest B.
pub(super) fn relate_to_best(rows: &mut [TttRow]) {
    let reached = |r: &&TttRow| r.reached;
    let time = |r: &TttRow| Some(r.steps? as f64 * r.ms_per_step?).filter(|t| t.is_finite() && *t > 0.0);
    let best_time = rows.iter().filter(reached).filter_map(time).fold(f64::INFINITY, f64::min);
    let best_wall = rows.iter().filter(reached).filter_map(|r| r.seconds).fold(f64::INFINITY, f64::min);
    let largest = rows.iter().filter(reached).filter(|r| r.steps.is_some()).max_by_key(|r| r.batch);
    let (big_steps, big_model) = match largest {
        Some(r) => (r.steps.map(|s| s as f64), r.predicted_steps_rel),
        None => (None, None),
    };
    for r in rows.iter_mut() {
        if let (Some(p), Some(m)) = (r.predicted_steps_rel.as_mut(), big_model) {
            *p /= m;
        }
        if r.reached {
            r.measured_rel = time(r).map(|t| t / best_time);
            r.wall_rel = r.seconds.map(|s| s / best_wall);
            r.measured_steps_rel = match (r.steps, big_steps) {
                (Some(s), Some(big)) => Some(s as f64 / big),
                _ => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(batch: usize, ms: f64, steps: Option<u64>, seconds: f64, reached: bool) -> TttRow {
        TttRow {
            batch,
            ms_per_step: Some(ms),
            lr: 0.1,
            predicted_rel: Some(1.0),
            predicted_steps_rel: Some(steps_model(8.0, batch)),
            steps,
            measured_steps_rel: None,
            seconds: Some(seconds),
            reached,
            measured_rel: None,
            wall_rel: None,
            note: String::new(),
        }
    }

    /// The measured time is steps × the sweep's ms/step, whatever the runs' wall clocks say
    /// (B = 4's 0.5 s of start-up would have made B = 8 the best); steps and the step model
    /// are over the largest B that reached the target; a run short of it gets no measured
    /// figure.
    #[test]
    fn measured_columns_are_steps_times_t_over_the_best() {
        let mut rows = vec![
            row(2, 1.0, Some(400), 0.4, true),
            row(4, 1.5, Some(200), 0.5, true),
            row(8, 3.0, Some(120), 0.36, true),
            row(16, 6.0, Some(100), 0.6, true),
            row(32, 12.0, Some(500), 6.0, false),
        ];
        relate_to_best(&mut rows);
        let measured: Vec<Option<f64>> = rows.iter().map(|r| r.measured_rel).collect();
        assert_eq!(measured, [Some(400.0 / 300.0), Some(1.0), Some(360.0 / 300.0), Some(2.0), None]);
        assert_eq!(rows[2].wall_rel, Some(1.0));
        assert_eq!(rows[0].measured_steps_rel, Some(4.0));
        assert_eq!(rows[4].measured_steps_rel, None);
        let model = |b: f64| (1.0 + 8.0 / b) / (1.0 + 8.0 / 16.0);
        for r in &rows {
            let got = r.predicted_steps_rel.unwrap();
            assert!((got - model(r.batch as f64)).abs() < 1e-12, "{} {got}", r.batch);
        }
    }
}

//! The line a sweep prints about how firm its pick is, with the settings that would firm it up.

use crate::config::{Config, MAX_SWEEP_ROUNDS, MAX_SWEEP_STEPS};
use crate::schedule::timing_stats::{stability_line, Stability, UNSETTLED_BELOW};

/// How firmly the timed steps support the pick, with what would firm it up where they do not:
/// a more precise B_noise where the steps alone settle it, else more steps or rounds (within
/// the bounds a config may set).
pub(super) fn stability_note(s: &Stability, cfg: &Config) -> String {
    let line = stability_line(s);
    if s.agreement >= UNSETTLED_BELOW {
        return line;
    }
    if let Some(steps_only) = s.agreement_steps_only.filter(|&a| a >= UNSETTLED_BELOW) {
        return format!(
            "{line}: B_noise's standard error unsettles it (with B_noise held, {:.0} % agree); give \
             time_to_target:B_NOISE from `batchscope noise` with more --draws",
            100.0 * steps_only
        );
    }
    let (steps, rounds) = (cfg.sweep.timed_steps, cfg.sweep.rounds.max(1));
    let mut options = Vec::new();
    let more_steps = (steps * 4).min(MAX_SWEEP_STEPS / rounds);
    if more_steps > steps {
        options.push(format!("--set sweep.timed_steps={more_steps}"));
    }
    let more_rounds = (rounds * 2 + 1).min(MAX_SWEEP_ROUNDS).min(MAX_SWEEP_STEPS / steps.max(1));
    if more_rounds > rounds {
        options.push(format!("--set sweep.rounds={more_rounds}"));
    }
    match options.is_empty() {
        true => format!("{line}: the timings do not settle the pick"),
        false => format!(
            "{line}: the timings do not settle the pick; time more steps or rounds ({})",
            options.join(" or ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsettled(steps_only: Option<f64>) -> Stability {
        Stability {
            policy: "knee:0.9".into(),
            batch: 256,
            resamples: 1000,
            b_noise_se: steps_only.map(|_| 3.0),
            agreement: 0.6,
            agreement_steps_only: steps_only,
            alternatives: Vec::new(),
        }
    }

    fn config(sets: &[&str]) -> Config {
        Config::load(None, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("config")
    }

    /// The settings offered are ones a config may set, and more than the run's own: none where
    /// the bounds are reached; B_noise named where the steps alone settle the pick.
    #[test]
    fn the_hint_offers_only_settings_that_change_something() {
        let note = stability_note(&unsettled(None), &config(&["sweep.rounds=60"]));
        assert!(note.ends_with("(--set sweep.timed_steps=32 or --set sweep.rounds=100)"), "{note}");
        let note = stability_note(&unsettled(None), &config(&["sweep.timed_steps=100000"]));
        assert!(note.ends_with("the timings do not settle the pick"), "{note}");
        let note = stability_note(&unsettled(Some(0.95)), &config(&[]));
        assert!(
            note.contains("B_noise's standard error unsettles it (with B_noise held, 95 % agree)"),
            "{note}"
        );
        let settled = Stability { agreement: 0.9, ..unsettled(None) };
        assert_eq!(stability_note(&settled, &config(&[])), stability_line(&settled));
    }
}

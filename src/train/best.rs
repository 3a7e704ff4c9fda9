//! The validation figure that a run's best parameters (`best.safetensors`) and early stopping
//! (`train.patience`) follow: the 0-1 error of a classification, the loss of a regression,
//! which has no 0-1 error (Lightning's `ModelCheckpoint(monitor="val_loss")`).

use crate::config::Config;
use crate::model::LossKind;

/// Which validation figure is "best" when lowest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// The validation 0-1 error (classification).
    ValError,
    /// The validation loss, ½ Σ (pred − target)² per example averaged (regression).
    ValLoss,
}

impl Monitor {
    pub fn of(cfg: &Config) -> Self {
        match cfg.model.loss {
            LossKind::Mse => Monitor::ValLoss,
            LossKind::SoftmaxXent => Monitor::ValError,
        }
    }

    /// The checkpoint metadata key and summary.json key of the best figure.
    pub fn key(self) -> &'static str {
        match self {
            Monitor::ValError => "best_val_error",
            Monitor::ValLoss => "best_val_loss",
        }
    }

    /// The figure, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Monitor::ValError => "validation 0-1 error",
            Monitor::ValLoss => "validation loss",
        }
    }

    /// This monitor's figure of one evaluation, if it measured it.
    pub fn pick(self, val_loss: Option<f64>, val_error: Option<f64>) -> Option<f64> {
        match self {
            Monitor::ValError => val_error,
            Monitor::ValLoss => val_loss,
        }
    }

    /// What is wrong with a recorded best figure, if anything: a 0-1 error lies in [0, 1], a
    /// squared-error loss is finite and not negative.
    pub fn problem(self, v: f64) -> Option<String> {
        match self {
            Monitor::ValError if !(0.0..=1.0).contains(&v) => {
                Some(format!("`best_val_error` = {v} is no 0-1 error (0 to 1)"))
            }
            Monitor::ValLoss if !(v.is_finite() && v >= 0.0) => {
                Some(format!("`best_val_loss` = {v} is no squared-error loss (finite, at least 0)"))
            }
            _ => None,
        }
    }

    /// A new figure `v` beats the best so far (a non-finite loss never does).
    pub fn improves(v: f64, best: Option<f64>) -> bool {
        v.is_finite() && best.is_none_or(|b| v < b)
    }

    /// (best_val_error, best_val_loss) of summary.json: this monitor's best in its key, `null`
    /// in the other.
    pub fn split(self, best: Option<f64>) -> (Option<f64>, Option<f64>) {
        match self {
            Monitor::ValError => (best, None),
            Monitor::ValLoss => (None, best),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regression_follows_its_validation_loss_and_a_classification_its_error() {
        let mut cfg = Config::embedded_default().expect("the embedded default config");
        assert_eq!(Monitor::of(&cfg), Monitor::ValError);
        cfg.model.loss = LossKind::Mse;
        assert_eq!(Monitor::of(&cfg), Monitor::ValLoss);
        assert_eq!(Monitor::ValLoss.pick(Some(0.5), None), Some(0.5));
        assert_eq!(Monitor::ValError.pick(Some(0.5), Some(0.25)), Some(0.25));
        assert!(Monitor::ValLoss.problem(3.5).is_none());
        assert!(Monitor::ValLoss.problem(-1.0).is_some());
        assert!(Monitor::ValLoss.problem(f64::NAN).is_some());
        assert!(Monitor::ValError.problem(1.5).is_some());
        assert!(Monitor::improves(0.1, None) && Monitor::improves(0.1, Some(0.2)));
        assert!(!Monitor::improves(0.2, Some(0.2)) && !Monitor::improves(f64::NAN, None));
        assert_eq!(Monitor::ValLoss.split(Some(2.0)), (None, Some(2.0)));
    }
}

//! The divergence guard: a logged step whose loss or gradient norm is not finite ends the run
//! with [`TrainError::Diverged`], naming the last good checkpoint, and a summary.json that says
//! where it stopped.

use std::path::Path;

use crate::backend::Backend;
use crate::model::Mlp;

use super::checkpointer::Progress;
use super::step::StepMetrics;
use super::TrainError;

/// What is not finite in `m`, if anything.
pub fn non_finite(m: &StepMetrics) -> Option<String> {
    if !m.loss.is_finite() {
        Some(format!("train_loss = {}", m.loss))
    } else if !m.grad_norm.is_finite() {
        Some(format!("grad_norm = {}", m.grad_norm))
    } else {
        None
    }
}

/// Write the summary.json of a run that diverged at `prog.step` (`what` is not finite) and
/// return the error that ends it.
pub fn diverged<B: Backend>(
    run_dir: &Path,
    b: &B,
    model: &Mlp,
    batch: usize,
    prog: &Progress,
    what: String,
    last_good: Option<&Path>,
) -> TrainError {
    let s = serde_json::json!({
        "command": "train",
        "device": b.device_name(),
        "params": model.num_params(),
        "batch_size": batch,
        "steps": prog.step,
        "examples_seen": prog.examples_seen,
        "stopped_reason": format!("diverged: {what}"),
    });
    let path = run_dir.join("summary.json");
    if let Err(e) = crate::report::rundir::write_atomic(&path, s.to_string().as_bytes()) {
        return e.into();
    }
    TrainError::Diverged {
        step: prog.step,
        what,
        last_good: last_good
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (it diverged before the first checkpoint)".into()),
    }
}

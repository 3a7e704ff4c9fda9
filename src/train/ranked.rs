//! The training loop's side of a multi-process (MPI) run: rank 0's starting state on every
//! rank, rank 0's decision to stop, and the end-of-run check that every rank holds the same
//! parameters. Rank 0 alone reads `--init` / `--resume` files and writes the run directory
//! (`runner.rs` gates those on [`is_root`]).

use super::checkpointer::Progress;
use super::parallel::ranks::hash_f32;
use super::parallel::Ranks;
use super::step::TrainState;
use super::TrainError;
use crate::backend::Backend;

/// `None` (one process) or rank 0.
pub fn is_root(ranks: Option<&(dyn Ranks + '_)>) -> bool {
    ranks.is_none_or(|r| r.rank() == 0)
}

/// `u64::MAX` stands for "none" in the broadcast counters.
const NONE: u64 = u64::MAX;

/// After rank 0 loaded `--init` weights or a `--resume` checkpoint: its parameters, optimizer
/// state, counters, clip-event base and (f16) loss-scaler state on every rank.
pub fn sync_start<B: Backend>(
    r: &mut dyn Ranks,
    b: &B,
    st: &mut TrainState<B>,
    prog: &mut Progress,
    clip_base: &mut u64,
) -> Result<(), TrainError> {
    let mut c = [
        prog.step,
        prog.epoch,
        prog.step_in_epoch,
        prog.examples_seen,
        prog.evals_since_best,
        *clip_base,
        prog.best_step.unwrap_or(NONE),
        prog.best_val.map_or(NONE, f64::to_bits),
        prog.elapsed_s.to_bits(),
    ];
    r.broadcast_u64(&mut c);
    let [step, epoch, step_in_epoch, examples_seen, evals_since_best, clip, best_step, best_err, elapsed] =
        c;
    *prog = Progress {
        step,
        epoch,
        step_in_epoch,
        examples_seen,
        best_val: (best_err != NONE).then(|| f64::from_bits(best_err)),
        best_step: (best_step != NONE).then_some(best_step),
        evals_since_best,
        elapsed_s: f64::from_bits(elapsed),
    };
    *clip_base = clip;
    let mut params = st.params.to_flat(b)?;
    r.broadcast_f32(&mut params);
    st.params.write_flat(b, &params)?;
    if let Some(v) = st.velocity.as_mut() {
        let mut host = v.to_flat(b)?;
        r.broadcast_f32(&mut host);
        v.write_flat(b, &host)?;
    }
    // f16: rank 0's loss-scaler state (a resumed scale, clean and skipped steps) on every rank,
    // so every rank starts from the same S (the flag is clear between steps).
    if let Some(m) = st.mixed.as_mut() {
        let mut host = b.read(&m.scaler)?;
        r.broadcast_f32(&mut host);
        b.write(&mut m.scaler, &host)?;
    }
    b.flush()?;
    Ok(())
}

/// Rank 0's decision after a logged step: whether the run stops here, and whether rank 0
/// restored its best parameters (then the ranks' parameters differ on purpose). Other ranks
/// take it; rank 0 keeps its own `stop` reason.
pub fn stop_decision(r: &mut dyn Ranks, stop: Option<String>, restored: bool) -> (Option<String>, bool) {
    let mut flags = [u64::from(stop.is_some()), u64::from(restored)];
    r.broadcast_u64(&mut flags);
    if r.rank() == 0 {
        return (stop, restored);
    }
    let stop = (flags[0] != 0).then(|| "stopped by rank 0".to_string());
    (stop, flags[1] != 0)
}

/// At the end of a run: every rank's parameters (and f16 loss-scaler state) equal rank 0's
/// bitwise (a hash of each).
pub fn check_params_agree<B: Backend>(
    r: &mut dyn Ranks,
    b: &B,
    st: &TrainState<B>,
) -> Result<(), TrainError> {
    let mut values = vec![("the parameters at the end of the run", hash_f32(&st.params.to_flat(b)?))];
    if let Some(m) = st.mixed.as_ref() {
        values.push(("the loss-scaler state at the end of the run", hash_f32(&b.read(&m.scaler)?)));
    }
    r.agree(&values).map_err(|e| {
        TrainError::Setup(format!(
            "data-parallel ranks diverged (rank {} of {}): {e}",
            r.rank(),
            r.size()
        ))
    })
}

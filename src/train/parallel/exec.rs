//! How the replicas' per-step work runs: one after another on the calling thread
//! ([`Sequential`]: GPU replicas, whose work is recorded here and runs on their devices
//! concurrently once submitted), or one OS thread per replica ([`Threads`]: CPU replicas, which
//! compute eagerly).

use super::replica::ReplicaMut;
use crate::backend::cpu::share::as_one_of;
use crate::backend::Backend;
use crate::train::TrainError;

/// The work of one phase of a step, run on every replica.
pub type ReplicaFn<'f, 'r, B> = dyn Fn(&mut ReplicaMut<'r, B>) -> Result<(), TrainError> + Sync + 'f;

/// Runs a phase on every replica and returns the first error (in replica order).
pub trait ReplicaExec<B: Backend> {
    fn each<'r>(
        &self,
        reps: &mut [ReplicaMut<'r, B>],
        f: &ReplicaFn<'_, 'r, B>,
    ) -> Result<(), TrainError>;
    /// `"sequential"` or `"threads"`, for logs.
    fn name(&self) -> &'static str;
}

/// Every replica in turn on the calling thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sequential;

impl<B: Backend> ReplicaExec<B> for Sequential {
    fn each<'r>(
        &self,
        reps: &mut [ReplicaMut<'r, B>],
        f: &ReplicaFn<'_, 'r, B>,
    ) -> Result<(), TrainError> {
        reps.iter_mut().try_for_each(f)
    }

    fn name(&self) -> &'static str {
        "sequential"
    }
}

/// Replica 0 on the calling thread, every other replica on its own scoped thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Threads;

impl<B> ReplicaExec<B> for Threads
where
    B: Backend + Sync,
    B::Buf: Send,
    B::IdxBuf: Send,
{
    fn each<'r>(
        &self,
        reps: &mut [ReplicaMut<'r, B>],
        f: &ReplicaFn<'_, 'r, B>,
    ) -> Result<(), TrainError> {
        let parts = reps.len();
        let Some((first, rest)) = reps.split_first_mut() else { return Ok(()) };
        // Each replica's products take their share of the cores, not all of them (a library
        // with threads of its own, MKL, would otherwise start one full team per replica).
        let run = |r: &mut ReplicaMut<'r, B>| as_one_of(parts, || f(r));
        std::thread::scope(|s| {
            let handles: Vec<_> = rest.iter_mut().map(|r| s.spawn(move || run(r))).collect();
            let mut out = run(first);
            for (i, h) in handles.into_iter().enumerate() {
                let res = h.join().unwrap_or_else(|_| {
                    Err(TrainError::Setup(format!("data-parallel worker {} panicked", i + 1)))
                });
                if out.is_ok() {
                    out = res;
                }
            }
            out
        })
    }

    fn name(&self) -> &'static str {
        "threads"
    }
}

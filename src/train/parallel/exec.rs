//! How the replicas' per-step work runs: one after another on the calling thread
//! ([`Sequential`]: GPU replicas, whose work is recorded here and runs on their devices
//! concurrently once submitted), or one task per replica on rayon's pool ([`Threads`]: CPU
//! replicas, which compute eagerly).

use std::panic::AssertUnwindSafe;

use rayon::prelude::*;

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

/// Every replica as a task on rayon's pool, the pool the CPU backend's own kernels split over:
/// no thread is started per phase, and replicas and their kernels share the cores without
/// oversubscribing them (a replica's product splits into tasks that idle threads steal).
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
        // Each replica's products take their share of the cores, not all of them (a library
        // with threads of its own, MKL, would otherwise start one full team per replica).
        let results: Vec<Result<(), TrainError>> = reps
            .par_iter_mut()
            .enumerate()
            .map(|(i, r)| {
                let run = AssertUnwindSafe(|| as_one_of(parts, || f(r)));
                std::panic::catch_unwind(run).unwrap_or_else(|_| {
                    Err(TrainError::Setup(format!("data-parallel replica {i} panicked")))
                })
            })
            .collect();
        results.into_iter().collect()
    }

    fn name(&self) -> &'static str {
        "threads"
    }
}

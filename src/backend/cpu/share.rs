//! How many of rayon's threads the current thread's products may take for themselves.
//!
//! Data-parallel replicas on threads ([`crate::train::parallel::Threads`]) run their steps at
//! once on one machine. Products that split over rayon's pool (the `gemm` crate, OpenBLAS in
//! blocks) share that pool among the replicas without asking. A library with threads of its own
//! does not: MKL gives every caller an OpenMP team, so two replicas each asking for the whole
//! pool put twice as many spinning threads as cores on the machine. Each replica's thread is
//! therefore marked as one of `parts` callers ([`as_one_of`]), and such a library takes
//! [`threads_for_caller`] threads: the pool divided among them, at least one.
//!
//! The share is fixed by the replica count, not by how many callers happen to be inside a
//! product at the moment, so a run's thread counts (and with MKL its bits) repeat run after run.

use std::cell::Cell;

thread_local! {
    /// Callers this thread shares rayon's pool with, itself included (1: the whole pool).
    static PARTS: Cell<usize> = const { Cell::new(1) };
}

/// Runs `f` with the calling thread counted as one of `parts` threads that run products at
/// once; restores the previous count afterwards (also when `f` panics).
pub fn as_one_of<R>(parts: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            PARTS.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PARTS.with(|p| p.replace(parts.max(1))));
    f()
}

/// Threads a product called on this thread may run on: rayon's pool divided among the callers
/// that share it ([`as_one_of`]), at least one.
pub fn threads_for_caller() -> usize {
    (rayon::current_num_threads() / PARTS.with(Cell::get)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_thread_takes_its_share_and_gives_it_back() {
        let pool = rayon::current_num_threads();
        assert_eq!(threads_for_caller(), pool);
        let inside = as_one_of(2, || (threads_for_caller(), as_one_of(pool * 4, threads_for_caller)));
        assert_eq!(inside, ((pool / 2).max(1), 1));
        assert_eq!(threads_for_caller(), pool);
        let caught = std::panic::catch_unwind(|| as_one_of(3, || panic!("replica failed")));
        assert!(caught.is_err());
        assert_eq!(threads_for_caller(), pool, "the share is restored after a panic");
        assert_eq!(as_one_of(0, threads_for_caller), pool, "zero parts count as one");
    }
}

//! Ctrl-C (SIGINT) or SIGTERM (a scheduler's preemption: SLURM, `timeout`, `docker stop`)
//! during training: the first one asks the run to stop before its next step, as if its plan
//! ended there (the last checkpoint, summary.json and the plots are written, so `--resume` goes
//! on from that step, bit for bit); a second one ends the process at once (what a resume then
//! finds, a killed writer's temporaries, it handles; the lock ends with the process). Like
//! PyTorch Lightning's graceful shutdown, with the checkpoint kept.
//!
//! The handler only stores to atomics and writes one line (async-signal-safe); the training
//! loop polls [`requested`] between steps and, when it stops for it, says so with
//! [`mark_stopped`], which the command's exit status reads ([`stopped_by`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Mutex;

/// The first signal received after [`install`] (0: none).
static REQUESTED: AtomicI32 = AtomicI32::new(0);
/// Signals received since [`install`].
static COUNT: AtomicU32 = AtomicU32::new(0);
/// The signal a run stopped for (0: none did).
static STOPPED: AtomicI32 = AtomicI32::new(0);
/// The directory of the run that stopped for it.
static STOPPED_RUN: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Route SIGINT and SIGTERM to [`requested`] for the rest of the process (Unix; elsewhere they
/// end the process as before). Called when a run with `TrainOptions::stop_on_signal` starts
/// its steps (before, during the data's load, a signal ends the process as usual): for a
/// process that runs one training run (the `train` command), not for MPI ranks, which must
/// stop together (theirs is `train::parallel::mpi`).
pub fn install() {
    #[cfg(unix)]
    {
        let handler = on_signal as extern "C" fn(libc::c_int);
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only touches atomics and calls async-signal-safe functions.
            unsafe { libc::signal(signal, handler as libc::sighandler_t) };
        }
    }
}

/// The signal that asked the run to stop, if one did.
pub fn requested() -> Option<i32> {
    Some(REQUESTED.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// Record that the run in `run_dir` stopped for `signal` (the loop broke on it, and finishes
/// as planned).
pub fn mark_stopped(signal: i32, run_dir: &Path) {
    STOPPED.store(signal, Ordering::SeqCst);
    if let Ok(mut run) = STOPPED_RUN.lock() {
        *run = Some(run_dir.to_path_buf());
    }
}

/// The directory of the run that stopped for a signal ([`mark_stopped`]), for the command to
/// name in its `--resume` line.
pub fn stopped_run() -> Option<PathBuf> {
    STOPPED_RUN.lock().ok().and_then(|run| run.clone())
}

/// The signal a run stopped for: its command exits with [`exit_status`] (a signal that came
/// after the run had ended changes nothing).
pub fn stopped_by() -> Option<i32> {
    Some(STOPPED.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// summary.json's `stopped_reason` for a run stopped by `signal`.
pub fn stopped_reason(signal: i32) -> String {
    format!("interrupted ({})", signal_name(signal))
}

/// 128 + the signal, as shells report a process that a signal ended.
pub fn exit_status(signal: i32) -> u8 {
    u8::try_from(128 + signal.clamp(0, 127)).unwrap_or(u8::MAX)
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int) {
    // The interrupted code may read errno right after a failing call: keep it.
    #[cfg(target_os = "linux")]
    // SAFETY: the thread's errno location is valid for the thread's life.
    let saved = unsafe { *libc::__errno_location() };
    if COUNT.fetch_add(1, Ordering::SeqCst) == 0 {
        REQUESTED.store(signal, Ordering::SeqCst);
        let line =
            b"\ninterrupt: stopping before the next step and saving the run (again to quit at once)\n";
        // SAFETY: write(2) is async-signal-safe; the buffer is a static byte string.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    } else {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(i32::from(exit_status(signal))) }
    }
    #[cfg(target_os = "linux")]
    // SAFETY: as above.
    unsafe {
        *libc::__errno_location() = saved
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_exit_statuses_name_the_signal() {
        assert_eq!(stopped_reason(2), "interrupted (SIGINT)");
        assert_eq!(stopped_reason(15), "interrupted (SIGTERM)");
        assert_eq!((exit_status(2), exit_status(15)), (130, 143));
        assert_eq!(exit_status(1000), 255);
    }
}

//! Ctrl-C during training: the first SIGINT asks the run to stop after the step in flight, as
//! if its plan ended there (the last checkpoint, summary.json and the plots are written, so
//! `--resume` goes on from that step, bit for bit); a second one ends the process at once
//! (what a resume then finds, a killed writer's temporaries and a lock, it handles). Like
//! PyTorch Lightning's graceful shutdown on KeyboardInterrupt, with the checkpoint kept.
//!
//! The handler only stores to an atomic (async-signal-safe); the loop polls [`requested`].

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Set by the first SIGINT after [`install`].
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// SIGINTs received since [`install`].
static COUNT: AtomicU32 = AtomicU32::new(0);

/// What a run stopped by Ctrl-C says in summary.json (`stopped_reason`) and on exit.
pub const STOPPED_REASON: &str = "interrupted (SIGINT)";

/// The exit status of a command whose run was interrupted: 128 + SIGINT, as shells report.
pub const EXIT_STATUS: i32 = 130;

/// Route SIGINT to [`requested`] for the rest of the process (Unix; elsewhere Ctrl-C ends the
/// process as before).
pub fn install() {
    #[cfg(unix)]
    {
        let handler = on_sigint as extern "C" fn(libc::c_int);
        // SAFETY: the handler only touches atomics and calls async-signal-safe functions.
        unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
    }
}

/// Whether a SIGINT asked the run to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    if COUNT.fetch_add(1, Ordering::SeqCst) == 0 {
        REQUESTED.store(true, Ordering::SeqCst);
        let line =
            b"\ninterrupt: stopping after this step and saving the run (Ctrl-C again to quit at once)\n";
        // SAFETY: write(2) is async-signal-safe; the buffer is a static byte string.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    } else {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(EXIT_STATUS) }
    }
}

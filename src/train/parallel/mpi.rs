//! Many hosts through MPI (feature `mpi`, the `mpi` crate over Open MPI): [`Mpi`], one rank's
//! view of `MPI_COMM_WORLD`, and [`MpiReducer`], the gradient all-reduce across ranks.
//!
//! Order: the reduction does not trust `MPI_Allreduce`'s summation order (the library may
//! split, pipeline or tree-reduce). Every rank's replica buffers are gathered to rank 0
//! (`MPI_Igather`), rank 0 adds them in global replica order exactly as [`HostReducer`] does in
//! one process, and broadcasts the sum (`MPI_Ibcast`). So 2 ranks of one replica each compute
//! bitwise what `--workers 2` computes in one process. f16 runs send their loss-scaled
//! gradients the same way: every rank unscales the same sum, so a non-finite element from any
//! rank skips the step on all of them (`train::amp::unscale`), with no exchange of its own.
//!
//! No hangs: every collective is started non-blocking and polled against a deadline
//! (`BATCHSCOPE_MPI_TIMEOUT`, see the app), and while polling a rank also looks for a failure
//! notice from another rank. A collective that cannot complete cannot be abandoned safely (MPI
//! owns its buffers until it does), so a timeout or a notice ends the job from here:
//! [`Mpi::fatal`] prints this rank's one error line, tells the other ranks (they print theirs),
//! waits briefly for their acknowledgements and calls `MPI_Abort`. Errors raised outside a
//! collective (a device that fails, a bad `--resume`) travel as typed errors to the app layer,
//! which ends the job through [`Mpi::fatal`] too. A rank that mpirun terminates (SIGTERM, after
//! another rank was killed) prints its line from a signal handler unless it printed one already.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ::mpi::datatype::Equivalence;
use ::mpi::point_to_point::{Destination, Message, Source, Status};
use ::mpi::request::{scope, Request, Scope, StaticScope};
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::traits::{CommunicatorCollectives, Root};

use super::ranks::{RankError, Ranks};
use super::reducer::{GradientReducer, HostReducer, ReduceError};

/// Message tags of the failure protocol (collectives do not use tags).
const NOTICE: i32 = 0x0b5c;
const ACK: i32 = 0x0b5d;

/// One rank of `MPI_COMM_WORLD` (MPI must be initialised, and stay so while this is used).
#[derive(Clone, Copy, Debug)]
pub struct Mpi {
    rank: usize,
    size: usize,
    /// How long a collective may wait for the other ranks.
    timeout: Duration,
}

/// This rank printed its error line (the SIGTERM handler then prints none).
static REPORTED: AtomicBool = AtomicBool::new(false);
/// The SIGTERM handler's line, built before the handler is installed.
static TERM_LINE: OnceLock<Vec<u8>> = OnceLock::new();

extern "C" fn on_sigterm(_: libc::c_int) {
    if !REPORTED.swap(true, Ordering::SeqCst) {
        if let Some(line) = TERM_LINE.get() {
            // SAFETY: write(2) is async-signal-safe; `line` is initialised and never freed.
            unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
        }
    }
    // SAFETY: _exit is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(1) }
}

impl Mpi {
    /// This process's rank in the world communicator of an initialised MPI; installs the
    /// SIGTERM handler that reports a rank terminated by mpirun.
    pub fn world(timeout: Duration) -> Self {
        let w = SimpleCommunicator::world();
        let m = Mpi { rank: w.rank().max(0) as usize, size: w.size().max(1) as usize, timeout };
        let line = format!(
            "error: rank {}: terminated by mpirun (SIGTERM): another rank of the job ended or was killed\n",
            m.rank
        );
        if TERM_LINE.set(line.into_bytes()).is_ok() {
            // SAFETY: installs a handler that only calls async-signal-safe functions.
            unsafe { libc::signal(libc::SIGTERM, on_sigterm as *const () as libc::sighandler_t) };
        }
        m
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Poll `req` until it completes, this rank's deadline passes, or another rank reports a
    /// failure (both end the job: [`Mpi::fatal`], [`Mpi::stop`]). `what` names the operation.
    fn wait<'a, D: ?Sized, S: Scope<'a>>(&self, req: Request<'a, D, S>, what: &str) {
        let start = Instant::now();
        let mut req = req;
        let mut polls = 0u32;
        loop {
            req = match req.test() {
                Ok(_) => return,
                Err(r) => r,
            };
            self.check_notices();
            if start.elapsed() >= self.timeout {
                self.fatal(&format!(
                    "no answer from the other ranks within {:.0} s while {what} (a rank died, hung or fell behind; BATCHSCOPE_MPI_TIMEOUT sets the limit in seconds)",
                    self.timeout.as_secs_f64()
                ));
            }
            polls = polls.saturating_add(1);
            if polls < 2000 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// A failure notice from another rank, if any: then this rank stops (never returns).
    fn check_notices(&self) {
        let w = SimpleCommunicator::world();
        if let Some((msg, status)) = w.any_process().immediate_matched_probe_with_tag(NOTICE) {
            let text = receive_bytes(msg, &status);
            self.stop(status.source_rank().max(0) as usize, &String::from_utf8_lossy(&text));
        }
    }

    /// Rank `from` failed with `text`: print this rank's line, acknowledge, and wait briefly for
    /// the failed rank's `MPI_Abort` to end the job (then abort from here).
    fn stop(&self, from: usize, text: &str) -> ! {
        let w = SimpleCommunicator::world();
        self.line(&format!("stopping because rank {from} failed: {text}"));
        w.process_at_rank(from as i32).send_with_tag(&[1u8][..], ACK);
        let start = Instant::now();
        while start.elapsed() < self.grace().min(Duration::from_secs(2)) {
            self.ack_notices();
            std::thread::sleep(Duration::from_millis(5));
        }
        w.abort(1)
    }

    /// How long a failed rank waits for the others to acknowledge its notice.
    fn grace(&self) -> Duration {
        self.timeout.min(Duration::from_secs(10))
    }

    /// Print `error: rank R: msg` (one line) on stderr.
    fn line(&self, msg: &str) {
        if REPORTED.swap(true, Ordering::SeqCst) {
            return;
        }
        // One write: lines of ranks that share mpirun's stderr must not interleave.
        let line = format!("error: rank {}: {}\n", self.rank, msg.replace('\n', "; "));
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    /// Acknowledge (silently) the notices of other failed ranks; returns how many.
    fn ack_notices(&self) -> usize {
        let w = SimpleCommunicator::world();
        let mut n = 0;
        while let Some((msg, status)) = w.any_process().immediate_matched_probe_with_tag(NOTICE) {
            let _ = receive_bytes(msg, &status);
            w.process_at_rank(status.source_rank()).send_with_tag(&[1u8][..], ACK);
            n += 1;
        }
        n
    }

    /// End the job because of `msg` on this rank: print `error: rank R: msg`, tell every other
    /// rank (each prints its own line and acknowledges), wait up to the grace period for the
    /// acknowledgements, then `MPI_Abort`.
    pub fn fatal(&self, msg: &str) -> ! {
        self.line(msg);
        let w = SimpleCommunicator::world();
        // The process ends with MPI_Abort: the notice's buffer may live as long as it does.
        let text: &'static [u8] = Box::leak(msg.as_bytes().to_vec().into_boxed_slice());
        let mut sends = Vec::new();
        for r in (0..self.size).filter(|&r| r != self.rank) {
            sends.push(w.process_at_rank(r as i32).immediate_send_with_tag(StaticScope, text, NOTICE));
        }
        let (start, mut acks) = (Instant::now(), 0);
        while acks + 1 < self.size && start.elapsed() < self.grace() {
            sends = sends.into_iter().filter_map(|s| s.test().err()).collect();
            while w.any_process().immediate_probe_with_tag(ACK).is_some() {
                let _ = w.any_process().receive_vec_with_tag::<u8>(ACK);
                acks += 1;
            }
            self.ack_notices();
            std::thread::sleep(Duration::from_millis(2));
        }
        // Pending requests must not be dropped (that panics); the abort ends them.
        std::mem::forget(sends);
        w.abort(1)
    }
}

/// The bytes of a probed message.
fn receive_bytes(msg: Message, status: &Status) -> Vec<u8> {
    let n = status.count(u8::equivalent_datatype()).max(0) as usize;
    let mut buf = vec![0u8; n];
    msg.matched_receive_into(&mut buf[..]);
    buf
}

impl Ranks for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn reducer(&self) -> Box<dyn GradientReducer> {
        Box::new(MpiReducer { mpi: *self, send: Vec::new(), recv: Vec::new() })
    }

    fn broadcast_f32(&mut self, data: &mut [f32]) {
        let w = SimpleCommunicator::world();
        scope(|s| {
            self.wait(w.process_at_rank(0).immediate_broadcast_into(s, data), "receiving rank 0's state")
        });
    }

    fn broadcast_u64(&mut self, data: &mut [u64]) {
        let w = SimpleCommunicator::world();
        scope(|s| {
            self.wait(w.process_at_rank(0).immediate_broadcast_into(s, data), "receiving rank 0's state")
        });
    }

    fn agree(&mut self, values: &[(&str, u64)]) -> Result<(), RankError> {
        let w = SimpleCommunicator::world();
        let mine: Vec<u64> = values.iter().map(|v| v.1).collect();
        let mut all = vec![0u64; mine.len() * self.size];
        scope(|s| {
            self.wait(
                w.immediate_all_gather_into(s, &mine[..], &mut all[..]),
                "comparing the ranks' setups",
            )
        });
        let rank0 = &all[..mine.len()];
        for (rank, theirs) in all.chunks(mine.len().max(1)).enumerate().skip(1) {
            for ((label, _), (&have, &want)) in values.iter().zip(theirs.iter().zip(rank0)) {
                if have != want {
                    return Err(RankError::Mismatch { what: label.to_string(), rank, have, want });
                }
            }
        }
        Ok(())
    }
}

/// The all-reduce across ranks: gather to rank 0, add in global replica order, broadcast.
pub struct MpiReducer {
    mpi: Mpi,
    /// This rank's replica buffers, concatenated.
    send: Vec<f32>,
    /// Rank 0: every rank's `send`, in rank order.
    recv: Vec<f32>,
}

impl GradientReducer for MpiReducer {
    fn all_reduce(&mut self, parts: &[&[f32]], out: &mut Vec<f32>) -> Result<(), ReduceError> {
        let len = parts.first().ok_or(ReduceError::Empty)?.len();
        if let Some((r, p)) = parts.iter().enumerate().find(|(_, p)| p.len() != len) {
            return Err(ReduceError::Length { replica: r, have: p.len(), want: len });
        }
        self.send.clear();
        parts.iter().for_each(|p| self.send.extend_from_slice(p));
        let (mpi, send, recv) = (self.mpi, &self.send, &mut self.recv);
        let w = SimpleCommunicator::world();
        let root = w.process_at_rank(0);
        if mpi.rank == 0 {
            recv.resize(send.len() * mpi.size, 0.0);
            scope(|s| {
                mpi.wait(
                    root.immediate_gather_into_root(s, &send[..], &mut recv[..]),
                    "gathering the gradients",
                )
            });
            // Rank-major, then replica: global replica order.
            let all: Vec<&[f32]> = recv.chunks(len.max(1)).collect();
            HostReducer.all_reduce(&all, out)?;
        } else {
            scope(|s| {
                mpi.wait(root.immediate_gather_into(s, &send[..]), "sending the gradients to rank 0")
            });
            out.clear();
            out.resize(len, 0.0);
        }
        scope(|s| {
            mpi.wait(root.immediate_broadcast_into(s, &mut out[..]), "receiving the summed gradients")
        });
        Ok(())
    }

    fn name(&self) -> &'static str {
        "mpi"
    }
}

//! The lock a resumed run holds in its directory, so that two processes never resume one run
//! at once (each would rewrite its checkpoints and metrics, and one's results would be lost
//! without a word).
//!
//! The lock is the operating system's (`flock` on Unix, `LockFileEx` on Windows, through
//! [`std::fs::File::try_lock`]) on [`LOCK_FILE`], held by an open handle for as long as this
//! process runs. The kernel releases it when the process ends, however it ends (killed
//! included), so no lock is ever stale and no process has to guess whether another is alive: a
//! process id that was reused, or a lock file being written, cannot mislead it. The file holds
//! its holder's process id for the message of the process it refuses. Like cargo's build
//! directory lock (`cargo/util/flock.rs`).
//!
//! The protocol (every step is safe against any interleaving with other processes):
//! - A holder has the lock on the file that is at [`LOCK_FILE`], checked after taking it
//!   (same device and inode); only a holder removes that file, and it does so before it lets
//!   the lock go. So a process that took the lock of a file which has since been removed or
//!   replaced sees that and starts over.
//! - The file is created with `create_new` (never through a link), and only a file this process
//!   created is written. A lock file found in place with no holder (its process was killed) is
//!   removed by name and created anew: a link or a hard-linked file there is never written.
//! - Where the file system has no locks (some network mounts), a process id in the file is
//!   checked against the living processes instead, with a warning.

use std::fs::{self, File, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ReportError;

/// The lock file in a resumed run's directory.
pub const LOCK_FILE: &str = ".batchscope.lock";

/// How often a process that keeps finding the lock file replaced under it tries again.
const ATTEMPTS: usize = 8;

/// The locks this process holds: the lock file's path and the handle that holds its lock.
static HELD: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

/// Take `dir`'s lock for this process; a lock this process holds already is kept. Released by
/// [`release_locks`] when the command ends (or by the kernel, if it never gets there).
pub fn lock_run(dir: &Path) -> Result<(), ReportError> {
    let path = dir.join(LOCK_FILE);
    if held().iter().any(|(p, _)| *p == path) {
        return Ok(());
    }
    for _ in 0..ATTEMPTS {
        match attempt(dir, &path)? {
            Attempt::Taken(file) => {
                held().push((path, file));
                return Ok(());
            }
            Attempt::Held(pid) => return Err(held_by(dir, pid)),
            Attempt::Again => {}
        }
    }
    Err(invalid(dir, format!("cannot take {LOCK_FILE}: other processes keep replacing it")))
}

/// The locks held, whatever a panicking thread left: a handle dropped here would let its lock go.
fn held() -> std::sync::MutexGuard<'static, Vec<(PathBuf, File)>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one try at the lock found.
enum Attempt {
    /// This process holds the lock; the handle keeps it.
    Taken(File),
    /// Another process holds it (its process id, where the file already says).
    Held(Option<u32>),
    /// The file changed meanwhile (created, removed or replaced by another process): try again.
    Again,
}

fn attempt(dir: &Path, path: &Path) -> Result<Attempt, ReportError> {
    match fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => take_created(dir, path, file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => take_existing(dir, path),
        Err(e) => Err(ReportError::io("create the lock in", dir, e)),
    }
}

/// The lock of the file this process just created at `path`; it then writes its id there.
fn take_created(dir: &Path, path: &Path, mut file: File) -> Result<Attempt, ReportError> {
    match file.try_lock() {
        Ok(()) => {}
        // Another process found it before this one locked it, took it for stale and is
        // removing it: the next try finds its own file there.
        Err(TryLockError::WouldBlock) => return Ok(Attempt::Again),
        Err(TryLockError::Error(e)) => warn_no_locks(dir, &e),
    }
    if !is_at(&file, path) {
        return Ok(Attempt::Again);
    }
    writeln!(file, "{}", std::process::id())
        .and_then(|()| file.sync_all())
        .map_err(|e| ReportError::io("write the lock in", dir, e))?;
    Ok(Attempt::Taken(file))
}

/// A lock file already at `path`: held by its process, or left by one that is gone (then
/// removed by name, for the next try to create).
fn take_existing(dir: &Path, path: &Path) -> Result<Attempt, ReportError> {
    let not_regular = || {
        invalid(
            dir,
            format!("{LOCK_FILE} is not a regular file (batchscope never makes one so); remove it"),
        )
    };
    let file = match open_existing(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Attempt::Again),
        // A symbolic link (refused by O_NOFOLLOW).
        Err(_) if fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file()) => {
            return Err(not_regular())
        }
        Err(e) => return Err(ReportError::io("open the lock in", dir, e)),
    };
    // What was opened, not what the name says now: a directory, a FIFO, a device.
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(not_regular());
    }
    let pid = written_pid(&file);
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Attempt::Held(pid)),
        Err(TryLockError::Error(e)) => {
            warn_no_locks(dir, &e);
            if let Some(pid) = pid.filter(|&p| p != std::process::id() && alive(p)) {
                return Ok(Attempt::Held(Some(pid)));
            }
            // No id yet: its creator may still be writing it.
            if pid.is_none() && !written_long_ago(&file) {
                return Ok(Attempt::Held(None));
            }
        }
    }
    // Nobody holds it: its process is gone. Remove it if it is still the file this process
    // locked (only a holder removes the file at the path, so it cannot change in between).
    if is_at(&file, path) {
        fs::remove_file(path)
            .or_else(not_found_is_fine)
            .map_err(|e| ReportError::io("remove the stale lock in", dir, e))?;
    }
    Ok(Attempt::Again)
}

/// The lock file at `path` opened for reading, never through a link, and without waiting on
/// whatever is there (a FIFO put in its place would block an open).
fn open_existing(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    options.open(path)
}

/// Whether `file` was last written long enough ago (10 s) that nobody is still writing it.
fn written_long_ago(file: &File) -> bool {
    file.metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > std::time::Duration::from_secs(10)))
}

fn not_found_is_fine(e: io::Error) -> io::Result<()> {
    match e.kind() {
        io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    }
}

/// Whether `file` is the file at `path` now (not one removed, or replaced by another).
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether `file` is the file at `path` now. Where file identities are not compared (not Unix),
/// whether a file is there: a lock file removed and created again in between goes unseen, so two
/// resumes started at the same instant may both run there.
#[cfg(not(unix))]
fn is_at(_file: &File, path: &Path) -> bool {
    path.is_file()
}

/// The process id the lock `file` holds, if it holds one.
fn written_pid(file: &File) -> Option<u32> {
    let mut text = String::new();
    io::Read::read_to_string(&mut io::Read::take(file, 64), &mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether process `pid` is alive (where `/proc` says; elsewhere assumed alive).
fn alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    !proc_dir.is_dir() || proc_dir.join(pid.to_string()).exists()
}

fn warn_no_locks(dir: &Path, e: &io::Error) {
    eprintln!(
        "warning: {}: file locks are not available there ({e}); a second batchscope resuming \
         this run now is refused only while its {LOCK_FILE} names a living process",
        dir.display()
    );
}

fn held_by(dir: &Path, pid: Option<u32>) -> ReportError {
    let who = match pid {
        Some(pid) => format!("another batchscope (process {pid})"),
        None => "another batchscope".to_string(),
    };
    invalid(dir, format!("{who} is running this run; wait for it to end"))
}

fn invalid(dir: &Path, message: String) -> ReportError {
    ReportError::Invalid { path: dir.to_path_buf(), message }
}

/// Let go of the locks this process took, removing their files first (see the module's
/// protocol). Called when a command ends, however it ends.
pub fn release_locks() {
    let taken = std::mem::take(&mut *held());
    for (path, file) in taken {
        if is_at(&file, &path) {
            let _ = fs::remove_file(&path);
        }
        drop(file);
    }
}

#[cfg(test)]
#[path = "run_lock_tests.rs"]
mod tests;

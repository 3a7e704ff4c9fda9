//! The run directories this process claimed, so that a command that fails before its run
//! wrote anything of its own leaves no stray directory behind: [`discard_unused`] removes a
//! claimed directory's `config.toml` (written first, from the already-parsed config) when that
//! is all it holds, and the directory itself when this process created it. Anything else in
//! it (metrics, checkpoints, plots: the run got going) keeps the directory as it is.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::ReportError;

/// Files a run writes before its first real output; a directory holding only these is unused.
const PRELUDE: &[&str] = &["config.toml"];

/// `(directory, created by this process)` for every run directory claimed.
static CLAIMED: Mutex<Vec<(PathBuf, bool)>> = Mutex::new(Vec::new());

/// The lock files this process holds (see [`lock_run`]).
static LOCKS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The lock a resumed run holds in its directory: the resuming process's id.
pub const LOCK_FILE: &str = ".batchscope.lock";

/// How long a lock file without a process id in it is taken to be another process's lock still
/// being written (an older batchscope created the file first and wrote its id after) before it
/// is taken as stale: a reader that took it over at once would run beside its holder.
const UNREADABLE_LOCK_GRACE: Duration = Duration::from_secs(10);

/// Take `dir`'s lock for this process (a resume): two processes resuming one run would each
/// rewrite its checkpoints and metrics, and one's results would be lost without a word. A lock
/// whose process is gone (killed) is taken over; this process's own is taken again. Released by
/// [`release_locks`] when the command ends.
pub fn lock_run(dir: &Path) -> Result<(), ReportError> {
    let path = dir.join(LOCK_FILE);
    let me = std::process::id();
    for _ in 0..3 {
        if publish_lock(dir, &path, me)? {
            remember(path);
            return Ok(());
        }
        match holder(&path) {
            Holder::Gone => {}
            Holder::Process(pid) if pid == me => {
                remember(path);
                return Ok(());
            }
            Holder::Process(pid) if alive(pid) => {
                return Err(held(
                    dir,
                    format!(
                        "another batchscope (process {pid}) is running this run; wait for it, or \
                         remove {LOCK_FILE} if that process is not batchscope"
                    ),
                ))
            }
            Holder::Unknown { old: false } => {
                return Err(held(
                    dir,
                    format!(
                        "{LOCK_FILE} names no process yet: another batchscope may be taking this \
                         run; try again, or remove {LOCK_FILE} if no batchscope is running it"
                    ),
                ))
            }
            // Stale: its process is gone, or it names none and was written long ago.
            Holder::Process(_) | Holder::Unknown { old: true } => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    Err(held(dir, format!("cannot take {LOCK_FILE}: another process keeps taking it")))
}

/// The error for a lock in `dir` that this process cannot take.
fn held(dir: &Path, message: String) -> ReportError {
    ReportError::Invalid { path: dir.to_path_buf(), message }
}

/// Publish `path` holding `me` in one step, so that no reader ever finds the lock without its
/// process id (and takes it for stale): the id is written to a temporary file, which is then
/// hard-linked to `path`, failing if a lock is there. `Ok(false)`: a lock is there. The
/// temporary file is removed however this ends.
fn publish_lock(dir: &Path, path: &Path, me: u32) -> Result<bool, ReportError> {
    let tmp = dir.join(temporary_name());
    let published = write_pid(&tmp, me).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links (vfat, some network mounts): create the lock and
        // write the id after, as before (a reader in between sees it held, for 10 s).
        Err(_) => create_then_write(dir, path, me),
    });
    let _ = fs::remove_file(&tmp);
    published
}

/// The lock created empty, then given its id: `Ok(false)` when a lock is there.
fn create_then_write(dir: &Path, path: &Path, me: u32) -> Result<bool, ReportError> {
    match fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut f) => {
            writeln!(f, "{me}").map_err(|e| ReportError::io("write the lock in", dir, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(ReportError::io("create the lock in", dir, e)),
    }
}

/// A lock's temporary file name, unique across processes and named as [`super::atomic`] names
/// its temporaries, so that a resume ([`super::rundir::open_resume_dir`]) removes one that a
/// process killed between writing and removing it left behind.
fn temporary_name() -> String {
    format!(".{LOCK_FILE}.tmp-{}", super::atomic::unique_suffix())
}

/// Create `tmp` holding `me`, written through to disk before it is published.
fn write_pid(tmp: &Path, me: u32) -> Result<(), ReportError> {
    let mut file = super::atomic::create_new(tmp)?;
    writeln!(file, "{me}")
        .and_then(|()| file.sync_all())
        .map_err(|e| ReportError::io("write the lock", tmp, e))
}

/// Add `path` to the locks [`release_locks`] removes (once).
fn remember(path: PathBuf) {
    if let Ok(mut v) = LOCKS.lock() {
        if !v.contains(&path) {
            v.push(path);
        }
    }
}

/// What a lock file in place says about its holder.
enum Holder {
    /// It is gone (released or taken over meanwhile): try again.
    Gone,
    /// The process id it holds.
    Process(u32),
    /// It holds no process id (empty, cut short, unreadable); `old`: last written more than
    /// [`UNREADABLE_LOCK_GRACE`] ago, so nobody is still writing it.
    Unknown { old: bool },
}

fn holder(path: &Path) -> Holder {
    let text = match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Holder::Gone,
        read => read.ok(),
    };
    if let Some(pid) = text.and_then(|t| t.trim().parse::<u32>().ok()) {
        return Holder::Process(pid);
    }
    match fs::metadata(path).and_then(|m| m.modified()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Holder::Gone,
        // A time that cannot be read, or one in the future, is not known to be old.
        Err(_) => Holder::Unknown { old: false },
        Ok(t) => Holder::Unknown { old: t.elapsed().is_ok_and(|age| age > UNREADABLE_LOCK_GRACE) },
    }
}

/// Whether process `pid` is alive (where `/proc` says; elsewhere assumed alive).
fn alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    !proc_dir.is_dir() || proc_dir.join(pid.to_string()).exists()
}

/// Remove the lock files this process took. Called when a command ends, however it ends.
pub fn release_locks() {
    let locks = match LOCKS.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(_) => return,
    };
    for p in locks {
        let _ = fs::remove_file(p);
    }
}

/// Remember `dir` as this process's run directory (`created`: it did not exist before).
pub(super) fn record(dir: &Path, created: bool) {
    if let Ok(mut v) = CLAIMED.lock() {
        v.push((dir.to_path_buf(), created));
    }
}

/// After a failed command: every claimed directory that holds nothing but [`PRELUDE`] files
/// loses them, and is removed if this process created it. Best effort, silent: the command's
/// error is the message. Returns the directories removed or emptied.
pub fn discard_unused() -> Vec<PathBuf> {
    let claimed = match CLAIMED.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(_) => return Vec::new(),
    };
    claimed.into_iter().filter(|(dir, created)| discard(dir, *created)).map(|(d, _)| d).collect()
}

fn discard(dir: &Path, created: bool) -> bool {
    let Ok(entries) = fs::read_dir(dir) else { return false };
    let mut names = Vec::new();
    for e in entries {
        let Ok(e) = e else { return false };
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if !is_file || !PRELUDE.contains(&name.as_str()) {
            return false;
        }
        names.push(name);
    }
    for name in &names {
        if fs::remove_file(dir.join(name)).is_err() {
            return false;
        }
    }
    if created {
        let _ = fs::remove_dir(dir);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestDir;
    use std::time::SystemTime;

    /// The lock tests share [`LOCKS`] (each ends with [`release_locks`]): one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The names in `dir`, sorted: a lock's temporary file would show here.
    fn names(dir: &Path) -> Vec<String> {
        let entries = fs::read_dir(dir).expect("read dir");
        let mut v: Vec<String> =
            entries.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    fn only_the_lock(dir: &Path) {
        assert_eq!(names(dir), vec![LOCK_FILE.to_string()], "no temporary file is left");
    }

    fn holds_me(lock: &Path) {
        assert_eq!(fs::read_to_string(lock).expect("read").trim(), std::process::id().to_string());
    }

    #[test]
    fn a_freshly_created_lock_without_a_pid_is_held() {
        let _serial = serial();
        let dir = TestDir::new("lock-fresh-empty");
        let lock = dir.0.join(LOCK_FILE);
        fs::write(&lock, "").expect("write");
        let e = lock_run(&dir.0).expect_err("held while its writer may still be writing it");
        assert!(e.to_string().contains("names no process"), "{e}");
        assert_eq!(fs::read_to_string(&lock).expect("read"), "", "left as it was");
        only_the_lock(&dir.0);
        release_locks();
        assert!(lock.exists(), "not this process's lock: not released");
    }

    #[test]
    fn an_old_lock_without_a_pid_is_taken_over() {
        let _serial = serial();
        let dir = TestDir::new("lock-old-empty");
        let lock = dir.0.join(LOCK_FILE);
        fs::write(&lock, "").expect("write");
        let past = SystemTime::now() - Duration::from_secs(60);
        fs::File::options().write(true).open(&lock).expect("open").set_modified(past).expect("mtime");
        lock_run(&dir.0).expect("an old lock naming no process is stale");
        holds_me(&lock);
        only_the_lock(&dir.0);
        release_locks();
        assert!(names(&dir.0).is_empty(), "released, nothing left");
    }

    #[test]
    fn a_dead_process_lock_is_taken_over_and_the_own_one_taken_again() {
        let _serial = serial();
        let dir = TestDir::new("lock-dead-own");
        let lock = dir.0.join(LOCK_FILE);
        // A process id that cannot exist: stale, taken over.
        fs::write(&lock, "4294967295\n").expect("write");
        lock_run(&dir.0).expect("a dead process's lock is taken over");
        holds_me(&lock);
        only_the_lock(&dir.0);
        lock_run(&dir.0).expect("our own lock");
        holds_me(&lock);
        only_the_lock(&dir.0);
        release_locks();
        assert!(names(&dir.0).is_empty(), "released, nothing left");
        // A lock naming this process that it did not take here (an earlier process of the same
        // id, killed) is taken again, and released with the others.
        fs::write(&lock, format!("{}\n", std::process::id())).expect("write");
        lock_run(&dir.0).expect("our own id");
        only_the_lock(&dir.0);
        release_locks();
        assert!(names(&dir.0).is_empty(), "released, nothing left");
    }

    #[test]
    fn a_free_lock_is_taken_and_its_temporaries_are_the_kind_a_resume_cleans() {
        let _serial = serial();
        let dir = TestDir::new("lock-free");
        lock_run(&dir.0).expect("free");
        holds_me(&dir.0.join(LOCK_FILE));
        only_the_lock(&dir.0);
        release_locks();
        let name = temporary_name();
        assert_eq!(super::super::atomic::temporary_writer(&name), Some(std::process::id()), "{name}");
    }

    #[test]
    fn a_live_lock_refuses_a_second_holder_and_a_stale_one_is_taken_over() {
        let _serial = serial();
        let dir = std::env::temp_dir().join(format!("batchscope-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let lock = dir.join(LOCK_FILE);
        // Process 1 (init) is alive wherever /proc exists.
        fs::write(&lock, "1\n").expect("write");
        if Path::new("/proc/1").exists() {
            let e = lock_run(&dir).expect_err("held").to_string();
            assert!(e.contains("process 1") && !e.contains('\n'), "{e}");
        }
        // A process id that cannot exist: stale, taken over.
        fs::write(&lock, "4294967295\n").expect("write");
        lock_run(&dir).expect("stale lock taken over");
        assert_eq!(fs::read_to_string(&lock).expect("read").trim(), std::process::id().to_string());
        lock_run(&dir).expect("our own lock");
        release_locks();
        assert!(!lock.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_a_directory_with_nothing_but_its_config_is_discarded() {
        let root = std::env::temp_dir().join(format!("batchscope-claimed-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (fresh, given, used) = (root.join("fresh"), root.join("given"), root.join("used"));
        for d in [&fresh, &given, &used] {
            fs::create_dir_all(d).expect("mkdir");
            fs::write(d.join("config.toml"), "x = 1\n").expect("write");
        }
        fs::write(used.join("metrics.jsonl"), "{}\n").expect("write");
        record(&fresh, true);
        record(&given, false);
        record(&used, true);
        let gone = discard_unused();
        assert_eq!(gone, vec![fresh.clone(), given.clone()]);
        assert!(!fresh.exists(), "created and unused: removed");
        assert!(given.is_dir() && fs::read_dir(&given).expect("dir").next().is_none(), "kept, emptied");
        assert!(used.join("config.toml").is_file() && used.join("metrics.jsonl").is_file());
        assert!(discard_unused().is_empty(), "each claim is discarded once");
        let _ = fs::remove_dir_all(&root);
    }
}

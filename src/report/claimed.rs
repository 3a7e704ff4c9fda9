//! The run directories this process claimed, so that a command that fails before its run
//! wrote anything of its own leaves no stray directory behind: [`discard_unused`] removes a
//! claimed directory's `config.toml` (written first, from the already-parsed config) when that
//! is all it holds, and the directory itself when this process created it. Anything else in
//! it (metrics, checkpoints, plots: the run got going) keeps the directory as it is.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files a run writes before its first real output; a directory holding only these is unused.
const PRELUDE: &[&str] = &["config.toml"];

/// `(directory, created by this process)` for every run directory claimed.
static CLAIMED: Mutex<Vec<(PathBuf, bool)>> = Mutex::new(Vec::new());

/// The lock files this process holds (see [`lock_run`]).
static LOCKS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The lock a resumed run holds in its directory: the resuming process's id.
pub const LOCK_FILE: &str = ".batchscope.lock";

/// Take `dir`'s lock for this process (a resume): two processes resuming one run would each
/// rewrite its checkpoints and metrics, and one's results would be lost without a word. A lock
/// whose process is gone (killed) is taken over; this process's own is taken again. Released by
/// [`release_locks`] when the command ends.
pub fn lock_run(dir: &Path) -> Result<(), super::ReportError> {
    use std::io::Write;
    let path = dir.join(LOCK_FILE);
    let me = std::process::id();
    for _ in 0..3 {
        match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let _ = writeln!(f, "{me}");
                if let Ok(mut v) = LOCKS.lock() {
                    v.push(path);
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = fs::read_to_string(&path).ok().and_then(|t| t.trim().parse::<u32>().ok());
                match holder {
                    Some(pid) if pid == me => return Ok(()),
                    Some(pid) if alive(pid) => {
                        return Err(super::ReportError::Invalid {
                            path: dir.to_path_buf(),
                            message: format!(
                                "another batchscope (process {pid}) is running this run; wait for \
                                 it, or remove {LOCK_FILE} if that process is not batchscope"
                            ),
                        })
                    }
                    // Stale (its process is gone) or unreadable: take it over.
                    _ => {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
            Err(e) => return Err(super::ReportError::io("create the lock in", dir, e)),
        }
    }
    Err(super::ReportError::Invalid {
        path: dir.to_path_buf(),
        message: format!("cannot take {LOCK_FILE}: another process keeps taking it"),
    })
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

    #[test]
    fn a_live_lock_refuses_a_second_holder_and_a_stale_one_is_taken_over() {
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

//! The run directory (`runs/<command>-<YYYYmmdd-HHMMSS>` in UTC, or `--out DIR`) and atomic
//! file writes (temp file in the same directory, fsync, rename).
//!
//! Nothing here deletes or overwrites a file it did not create: a run directory that already
//! holds files is never reused for a new run (a default directory gets a suffixed sibling, `-1`,
//! `-2`, ...; an `--out DIR` that holds files is an error).
//! The deletions: resuming a run removes the temporary files (`.<name>.tmp-<pid>-<nanos>-<n>`)
//! that [`write_atomic`] left there when its process was killed mid-write; a command that fails
//! before its run wrote more than `config.toml` takes back the directory it claimed
//! ([`super::claimed::discard_unused`]).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub(crate) use super::atomic::create_new;
pub use super::atomic::write_atomic;
use super::atomic::{temporary_writer, unique_suffix};
pub use super::utc_stamp::utc_stamp;
use super::{claimed, ReportError};

/// Where the default run directories go, relative to the working directory.
pub const RUNS_ROOT: &str = "runs";

/// How many suffixed names (`-1` ... `-999`) are tried before giving up.
const MAX_SUFFIX: usize = 999;

/// Creates the output directory of a new run and returns it.
///
/// - `base = None`: `runs/<command>-<YYYYmmdd-HHMMSS>` (UTC), a `-1`, `-2`, ... suffix if that
///   name is taken (two runs in the same second).
/// - `base = Some(DIR)` (`--out DIR`): DIR itself when it does not exist or is an empty
///   directory. A DIR that already holds files is refused ([`ReportError::OutDirInUse`]): the
///   caller asked for its results *there*, and a script that reads `DIR/summary.json` next must
///   not find an earlier run's file while this run went elsewhere. Nothing in it is touched.
///
/// Errors name the directory: in use, not writable, or a path that is not a directory.
pub fn create_run_dir(base: Option<&Path>, command: &str) -> Result<PathBuf, ReportError> {
    match base {
        None => create_run_dir_in(Path::new(RUNS_ROOT), command, SystemTime::now()),
        Some(out) => claim_out_dir(out),
    }
}

/// [`create_run_dir`] with `base = None` under a chosen root and clock (testable).
pub fn create_run_dir_in(root: &Path, command: &str, now: SystemTime) -> Result<PathBuf, ReportError> {
    ensure_dir_all(root)?;
    let stem = format!("{}-{}", sanitize(command), utc_stamp(now));
    for k in 0..=MAX_SUFFIX {
        let dir = root.join(suffixed(&stem, k));
        match fs::create_dir(&dir) {
            Ok(()) => {
                probe_writable(&dir)?;
                claimed::record(&dir, true);
                super::run_lock::lock_run(&dir)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(dir_error(root, e, "create directory in")),
        }
    }
    Err(ReportError::AlreadyExists { path: root.join(format!("{stem}-{MAX_SUFFIX}")) })
}

/// Checks that `dir` is an existing, writable directory to continue (`--resume`). Changes
/// nothing: once the caller has found its run's files there and taken its lock,
/// [`remove_stale_temporaries`] tidies it.
pub fn open_resume_dir(dir: &Path) -> Result<PathBuf, ReportError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(ReportError::NotADirectory { path: dir.to_path_buf() }),
        Err(e) => return Err(ReportError::io("open run directory", dir, e)),
    }
    probe_writable(dir)?;
    super::run_files::check_run_files(dir)?;
    Ok(dir.to_path_buf())
}

/// Removes `dir`'s temporary files of [`write_atomic`] whose writer is gone (a process killed
/// during a write leaves one behind). Best effort: a file that cannot be removed is logged.
/// Where `/proc` exists, files of a live process other than this one are kept. Called on a
/// resumed run's directory once it is known to be one (a refused `--resume` of another
/// directory leaves it as it was).
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = temporary_writer(&name.to_string_lossy()) else { continue };
        let proc_dir = Path::new("/proc");
        if pid != std::process::id() && proc_dir.is_dir() && proc_dir.join(pid.to_string()).exists() {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_file()) {
            match fs::remove_file(e.path()) {
                Ok(()) => log::info!("removed the stale temporary file {}", e.path().display()),
                Err(err) => {
                    log::warn!("cannot remove the stale temporary file {}: {err}", e.path().display())
                }
            }
        }
    }
}

/// `path` with its `..` components resolved the way the directory tree will resolve them once
/// the missing components exist: the existing prefix is canonicalised (symlinks followed), the
/// rest is applied lexically. So `RUN/sub/..` is `RUN` even while `sub` does not exist (the
/// kernel would fail to resolve it now, and `create_dir_all` would then write into `RUN`).
pub fn resolve_path(path: &Path) -> Result<PathBuf, ReportError> {
    use std::path::Component;
    let mut cur = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().map_err(|e| ReportError::io("resolve the path", path, e))?
    };
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => cur.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(n) => {
                cur.push(n);
                if fs::symlink_metadata(&cur).is_ok() {
                    if let Ok(c) = fs::canonicalize(&cur) {
                        cur = c;
                    }
                }
            }
        }
    }
    Ok(cur)
}

/// The refusals [`create_run_dir`] would make of `--out DIR` now, making nothing: DIR (or the
/// nearest of its parents that exists) is not a directory, or DIR holds files. A command that
/// opens a backend (and may sweep batch sizes) before it makes its directory checks this first,
/// so that a mistyped or reused `--out` is one error at once, not after that work. Whether DIR
/// is writable is still found when it is made.
pub fn check_out_dir(out: &Path) -> Result<(), ReportError> {
    let out = match out.components().any(|c| c == std::path::Component::ParentDir) {
        true => resolve_path(out)?,
        false => out.to_path_buf(),
    };
    match fs::metadata(&out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            super::run_files::refuse_dangling_link(&out)?;
            let existing = out.ancestors().skip(1).find(|a| fs::metadata(a).is_ok());
            match existing.map(|a| fs::metadata(a).map(|m| m.is_dir())) {
                Some(Ok(false)) => Err(ReportError::NotADirectory { path: out.clone() }),
                _ => Ok(()),
            }
        }
        Err(e) => Err(ReportError::io("inspect output directory", &out, e)),
        Ok(m) if !m.is_dir() => Err(ReportError::NotADirectory { path: out.clone() }),
        Ok(_) => {
            let mut entries =
                fs::read_dir(&out).map_err(|e| ReportError::io("read output directory", &out, e))?;
            match entries.next().is_none() {
                true => Ok(()),
                false => Err(ReportError::OutDirInUse { example: first_entry(&out), path: out }),
            }
        }
    }
}

fn claim_out_dir(out: &Path) -> Result<PathBuf, ReportError> {
    // `..` through a missing component must not let a new run land in an existing one.
    let resolved;
    let out = if out.components().any(|c| c == std::path::Component::ParentDir) {
        resolved = resolve_path(out)?;
        resolved.as_path()
    } else {
        out
    };
    let created = match fs::metadata(out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            super::run_files::refuse_dangling_link(out)?;
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                ensure_dir_all(parent)?;
            }
            // One process creates it; another that raced it here finds it made (and empty, or
            // held by the first: the lock below settles which one runs there).
            match fs::create_dir(out) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(dir_error(out, e, "create directory")),
            }
        }
        Err(e) => return Err(ReportError::io("inspect output directory", out, e)),
        Ok(m) if !m.is_dir() => return Err(ReportError::NotADirectory { path: out.to_path_buf() }),
        Ok(_) => false,
    };
    if !created {
        holds_nothing(out)?;
    }
    probe_writable(out)?;
    // The directory is this process's while it runs: a second command into the same `--out`,
    // or a `--resume` of the run, is refused by the lock (two `train`s into one new `--out`
    // used to both pass the check above, then one's clean-up deleted the other's files). The
    // check is made again under the lock: a process that took the directory first and has
    // written into it since is refused here.
    super::run_lock::lock_run(out)?;
    holds_nothing(out)?;
    claimed::record(out, created);
    Ok(out.to_path_buf())
}

/// Refuses `dir` when it holds anything but this process's lock file.
fn holds_nothing(dir: &Path) -> Result<(), ReportError> {
    let mut entries = fs::read_dir(dir).map_err(|e| ReportError::io("read output directory", dir, e))?;
    let in_use = entries.any(|e| e.map_or(true, |e| e.file_name() != super::run_lock::LOCK_FILE));
    match in_use {
        false => Ok(()),
        true => Err(ReportError::OutDirInUse { path: dir.to_path_buf(), example: first_entry(dir) }),
    }
}

/// The name of one entry of `dir` (a regular file first), for the error that refuses it.
fn first_entry(dir: &Path) -> String {
    let Ok(entries) = fs::read_dir(dir) else { return String::new() };
    let mut names: Vec<(bool, String)> = entries
        .flatten()
        .filter(|e| e.file_name() != super::run_lock::LOCK_FILE)
        .map(|e| {
            (!e.file_type().is_ok_and(|t| t.is_file()), e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names.into_iter().next().map(|(_, n)| n).unwrap_or_default()
}

fn suffixed(stem: &str, k: usize) -> String {
    if k == 0 {
        stem.to_string()
    } else {
        format!("{stem}-{k}")
    }
}

/// `create_dir_all` with errors that name the directory. The directories it creates are
/// recorded ([`claimed::record_parents`]), so that a command that fails before its run wrote
/// anything leaves no empty `runs/` (or `--out` parents) behind.
fn ensure_dir_all(dir: &Path) -> Result<(), ReportError> {
    if let Ok(m) = fs::metadata(dir) {
        return if m.is_dir() {
            Ok(())
        } else {
            Err(ReportError::NotADirectory { path: dir.to_path_buf() })
        };
    }
    // The missing ancestors, deepest first: `dir`, its parent, ... up to the first that exists.
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && fs::symlink_metadata(a).is_err())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir).map_err(|e| dir_error(dir, e, "create directory"))?;
    claimed::record_parents(missing);
    Ok(())
}

fn dir_error(dir: &Path, e: io::Error, action: &'static str) -> ReportError {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            ReportError::NotWritable { dir: dir.to_path_buf(), source: e }
        }
        io::ErrorKind::NotADirectory => ReportError::NotADirectory { path: dir.to_path_buf() },
        _ => ReportError::io(action, dir, e),
    }
}

/// Creates and removes a probe file, so an unwritable directory fails now and not after the run.
fn probe_writable(dir: &Path) -> Result<(), ReportError> {
    let probe = dir.join(format!(".batchscope-write-probe-{}", unique_suffix()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(f) => {
            drop(f);
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(ReportError::NotWritable { dir: dir.to_path_buf(), source: e }),
    }
}

/// Keeps `[A-Za-z0-9_-]`, replaces anything else by `_`.
fn sanitize(command: &str) -> String {
    let s: String = command
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if s.is_empty() {
        "run".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestDir;
    use std::fs::File;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn run_dirs_are_named_by_command_and_time_and_never_reused() {
        let t = TestDir::new("rundir-names");
        let root = t.0.join("runs");
        let now = at(1_700_000_000);
        let a = create_run_dir_in(&root, "sweep", now).unwrap();
        assert_eq!(a, root.join("sweep-20231114-221320"));
        assert!(a.is_dir());
        // Same second: even an empty directory from another run is not shared.
        let b = create_run_dir_in(&root, "sweep", now).unwrap();
        assert_eq!(b, root.join("sweep-20231114-221320-1"));
        let c = create_run_dir_in(&root, "sweep", now).unwrap();
        assert_eq!(c, root.join("sweep-20231114-221320-2"));
        let d = create_run_dir_in(&root, "a b/c", now).unwrap();
        assert_eq!(d.file_name().unwrap(), "a_b_c-20231114-221320");
        // No probe files are left behind: only this process's lock, until it ends.
        let names: Vec<_> = fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [crate::report::run_lock::LOCK_FILE]);
    }

    #[test]
    fn out_dir_is_used_when_new_or_empty_and_refused_when_it_holds_files() {
        let t = TestDir::new("rundir-out");
        let out = t.0.join("deep/er/out");
        assert_eq!(create_run_dir(Some(&out), "train").unwrap(), out);
        assert!(out.is_dir());
        // Empty: reused.
        assert_eq!(create_run_dir(Some(&out), "train").unwrap(), out);
        // Holding a file: refused by name, never clobbered, no sibling made.
        fs::write(out.join("metrics.jsonl"), b"{}\n").unwrap();
        let err = create_run_dir(Some(&out), "train").unwrap_err();
        assert!(
            matches!(&err, ReportError::OutDirInUse { path, example } if path == &out && example == "metrics.jsonl")
        );
        let msg = err.to_string();
        assert!(msg.contains("already holds") && msg.contains("metrics.jsonl"), "{msg}");
        // `--resume` is suggested only for a directory that holds a train run.
        assert!(!msg.contains("--resume"), "{msg}");
        fs::write(out.join("config.toml"), b"").unwrap();
        fs::write(out.join("last.safetensors"), b"").unwrap();
        let msg = create_run_dir(Some(&out), "train").unwrap_err().to_string();
        assert!(msg.contains("it holds a train run") && msg.contains("--resume"), "{msg}");
        assert!(!t.0.join("deep/er/out-1").exists());
        assert_eq!(fs::read(out.join("metrics.jsonl")).unwrap(), b"{}\n");
    }

    #[test]
    fn out_dir_through_a_missing_component_and_dotdot_is_the_existing_run() {
        let t = TestDir::new("rundir-dotdot");
        let run = t.0.join("run");
        fs::create_dir(&run).unwrap();
        fs::write(run.join("config.toml"), b"keep").unwrap();
        let err = create_run_dir(Some(&run.join("sub/..")), "train").unwrap_err();
        assert!(matches!(&err, ReportError::OutDirInUse { .. }), "{err}");
        assert!(!run.join("sub").exists(), "no stray directory inside the existing run");
        assert_eq!(fs::read(run.join("config.toml")).unwrap(), b"keep");
        assert_eq!(
            resolve_path(&t.0.join("a/b/../c/./..")).unwrap(),
            resolve_path(&t.0.join("a")).unwrap()
        );
    }

    #[test]
    fn out_path_that_is_a_file_is_an_error_naming_it() {
        let t = TestDir::new("rundir-file");
        let f = t.0.join("occupied");
        fs::write(&f, b"keep").unwrap();
        let e = create_run_dir(Some(&f), "train").unwrap_err();
        assert!(matches!(e, ReportError::NotADirectory { .. }), "{e}");
        assert!(e.to_string().contains("occupied"), "{e}");
        // Under a file: cannot be created, and the message names the directory.
        let e = create_run_dir(Some(&f.join("sub")), "train").unwrap_err();
        assert!(e.to_string().contains("occupied"), "{e}");
        assert_eq!(fs::read(&f).unwrap(), b"keep");
        assert!(open_resume_dir(&f).is_err());
        assert!(open_resume_dir(&t.0.join("missing")).unwrap_err().to_string().contains("missing"));
        assert_eq!(open_resume_dir(&t.0).unwrap(), t.0);
    }

    #[test]
    fn checking_out_makes_nothing_and_refuses_what_claiming_it_refuses() {
        let t = TestDir::new("rundir-check");
        let file = t.0.join("occupied");
        fs::write(&file, b"keep").unwrap();
        let used = t.0.join("used");
        fs::create_dir(&used).unwrap();
        fs::write(used.join("metrics.jsonl"), b"{}\n").unwrap();
        let empty = t.0.join("empty");
        fs::create_dir(&empty).unwrap();
        let cases = [
            (t.0.join("new/deeper"), true),
            (empty.clone(), true),
            (file.clone(), false),
            (file.join("sub"), false),
            (used.clone(), false),
            (used.join("sub/.."), false),
        ];
        for (out, ok) in cases {
            let existed = (out.exists(), t.0.join("new").exists());
            let checked = check_out_dir(&out);
            assert_eq!(checked.is_ok(), ok, "{}: {checked:?}", out.display());
            assert_eq!((out.exists(), t.0.join("new").exists()), existed, "checking made a directory");
            let claimed = create_run_dir(Some(&out), "train");
            assert_eq!(claimed.is_ok(), ok, "{}: {claimed:?}", out.display());
            if let (Err(a), Err(b)) = (checked, claimed) {
                assert_eq!(a.to_string(), b.to_string(), "the same refusal");
            }
        }
        assert_eq!(fs::read(&file).unwrap(), b"keep");
        assert_eq!(fs::read(used.join("metrics.jsonl")).unwrap(), b"{}\n");
    }

    #[cfg(unix)]
    #[test]
    fn unwritable_out_dir_is_reported_when_permissions_apply() {
        use std::os::unix::fs::PermissionsExt;
        let t = TestDir::new("rundir-ro");
        let ro = t.0.join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        // Root (CI) writes anywhere: then permissions cannot make this fail; say so.
        let privileged = File::create(ro.join("probe")).is_ok();
        if privileged {
            let _ = fs::remove_file(ro.join("probe"));
            eprintln!(
                "note: running with privileges that bypass directory permissions; checked only the message"
            );
            let e = ReportError::NotWritable {
                dir: ro.clone(),
                source: io::ErrorKind::PermissionDenied.into(),
            };
            assert!(e.to_string().contains("ro is not writable"));
        } else {
            let e = create_run_dir(Some(&ro), "train").unwrap_err();
            assert!(matches!(e, ReportError::NotWritable { .. }), "{e}");
            assert!(e.to_string().contains(&*ro.to_string_lossy()), "{e}");
            let e = create_run_dir_in(&ro.join("runs"), "train", SystemTime::now()).unwrap_err();
            assert!(e.to_string().contains("not writable"), "{e}");
        }
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn resume_removes_stale_temporaries_only() {
        let t = TestDir::new("rundir-stale");
        let stale = t.0.join(format!(".last.safetensors.tmp-{}-123-0", u32::MAX - 7));
        let other = [".last.safetensors.tmp-x", "a.tmp-1-2-3", ".notes.tmp-1-2", "last.safetensors"];
        fs::write(&stale, b"partial").unwrap();
        for o in other {
            fs::write(t.0.join(o), b"keep").unwrap();
        }
        assert_eq!(temporary_writer(".metrics.jsonl.tmp-42-17-3"), Some(42));
        open_resume_dir(&t.0).unwrap();
        assert!(stale.exists(), "opening changes nothing");
        remove_stale_temporaries(&t.0);
        assert!(!stale.exists(), "the stale temporary file is removed");
        for o in other {
            assert!(t.0.join(o).exists(), "{o} is kept");
        }
    }

    #[test]
    fn write_atomic_replaces_whole_files_and_leaves_no_temporaries() {
        let t = TestDir::new("rundir-atomic");
        let p = t.0.join("summary.json");
        write_atomic(&p, b"{\"a\":1}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":1}");
        write_atomic(&p, b"{\"a\":2}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":2}");
        assert_eq!(fs::read_dir(&t.0).unwrap().count(), 1);
        // A directory at the target: the rename fails, the directory stays, no temp file is left.
        let d = t.0.join("dir.json");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("inner"), b"x").unwrap();
        let e = write_atomic(&d, b"y").unwrap_err();
        assert!(e.to_string().contains("dir.json"), "{e}");
        assert_eq!(fs::read(d.join("inner")).unwrap(), b"x");
        assert_eq!(fs::read_dir(&t.0).unwrap().count(), 2);
        // A parent that is a file: the temporary file cannot be created.
        let e = write_atomic(&p.join("x.toml"), b"y").unwrap_err();
        assert!(e.to_string().contains("summary.json"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":2}");
    }
}

//! Atomic file writes: a temporary file beside the target (`.<name>.tmp-<pid>-<nanos>-<n>`),
//! written, fsynced and renamed over it, then the directory fsynced. A reader never sees a
//! half-written file, and a process killed mid-write leaves only a temporary that
//! [`super::rundir`] removes when the run is resumed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::ReportError;

/// A failed atomic write: what was being done, to which path, and the OS error.
#[derive(Debug)]
pub(crate) struct AtomicWriteError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl From<AtomicWriteError> for ReportError {
    fn from(e: AtomicWriteError) -> Self {
        ReportError::Io { action: e.action, path: e.path, source: e.source }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside `path` is written, fsynced and
/// renamed over `path`, then the directory is fsynced. On any failure the temporary file is
/// removed and an existing `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    write_atomic_io(path, bytes).map_err(ReportError::from)
}

/// Creates `path` for writing; an existing file is [`ReportError::AlreadyExists`], never truncated.
pub(crate) fn create_new(path: &Path) -> Result<File, ReportError> {
    OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            ReportError::AlreadyExists { path: path.to_path_buf() }
        } else {
            ReportError::io("create", path, e)
        }
    })
}

pub(crate) fn write_atomic_io(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    let fail = |action: &'static str, p: &Path, source: io::Error| AtomicWriteError {
        action,
        path: p.to_path_buf(),
        source,
    };
    let Some(name) = path.file_name() else {
        return Err(fail(
            "write",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        ));
    };
    let parent = parent_dir(path);
    let tmp = parent.join(format!(".{}.tmp-{}", name.to_string_lossy(), unique_suffix()));

    let mut file =
        OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| match e.kind() {
            // The error a person can act on names the file they asked for, not our temporary.
            io::ErrorKind::NotFound => {
                fail("write", path, io::Error::new(e.kind(), "its directory does not exist"))
            }
            // The file asked for, not the temporary (removed, or never made): "cannot write
            // RUN/summary.json: No space left on device".
            _ => fail("write", path, e),
        })?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail("write", path, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(fail("replace", path, e));
    }
    sync_dir(&parent);
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes the rename durable. Best effort: not every platform can open a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// `<pid>-<nanos>-<counter>`: unique among concurrent writers in and across processes.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}-{nanos}-{n}", std::process::id())
}

/// The writer's pid of a temporary file name `.<name>.tmp-<pid>-<nanos>-<n>` (see
/// [`write_atomic_io`]), or `None` for any other name.
pub(crate) fn temporary_writer(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?;
    let (_, suffix) = rest.rsplit_once(".tmp-")?;
    let parts: Vec<&str> = suffix.split('-').collect();
    let digits = |p: &&str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(digits) {
        return None;
    }
    parts[0].parse().ok()
}

#[cfg(test)]
mod missing_dir_tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_named_by_the_file_asked_for() {
        let dir = std::env::temp_dir().join(format!("batchscope-atomic-nodir-{}", std::process::id()));
        let path = dir.join("a.svg");
        let e = write_atomic(&path, b"x").expect_err("no directory").to_string();
        assert_eq!(e, format!("cannot write {}: its directory does not exist", path.display()));
        assert!(!dir.exists());
    }
}

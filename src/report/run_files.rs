//! A resumed run's directory checked before any step: every name the run writes to must be free
//! for a file. A `summary.json` (or `loss.svg`, ...) that is a directory failed the write only
//! at the end, after the checkpoints and metrics had moved on, and the run, then complete, could
//! never write its summary again.

use std::fs;
use std::path::Path;

use super::ReportError;

/// Extensions of the files a run writes into its directory (config, metrics, checkpoints,
/// summary, plots, tables, arrays).
const RUN_FILE_EXTENSIONS: [&str; 7] =
    [".json", ".jsonl", ".csv", ".svg", ".toml", ".safetensors", ".npy"];

/// Refuse `dir` where an entry named like a run's file is something else than a file (a
/// directory, a FIFO, a socket, a device); a symbolic link is replaced by the write, never
/// followed, so it passes.
pub fn check_run_files(dir: &Path) -> Result<(), ReportError> {
    let entries = fs::read_dir(dir).map_err(|e| ReportError::io("read run directory", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
        if !RUN_FILE_EXTENSIONS.iter().any(|ext| name.ends_with(ext)) {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_file() || kind.is_symlink() {
            continue;
        }
        let what = if kind.is_dir() { "a directory" } else { "not a regular file" };
        return Err(ReportError::Invalid {
            path: entry.path(),
            message: format!(
                "is {what}, where the run writes a file of that name; move it aside, then resume"
            ),
        });
    }
    Ok(())
}

/// Refuse an output path that is a symbolic link to nothing (it read "cannot create directory
/// OUT: File exists"): the run would make its directory where the link points, elsewhere.
pub fn refuse_dangling_link(out: &Path) -> Result<(), ReportError> {
    match fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() => Err(ReportError::Invalid {
            path: out.to_path_buf(),
            message: "is a symbolic link to nothing; give --out a new directory (or remove the link)"
                .into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestDir;

    #[test]
    fn a_directory_in_a_run_files_place_is_refused_by_name() {
        let t = TestDir::new("run-files");
        fs::write(t.0.join("metrics.jsonl"), b"{}\n").expect("write");
        fs::create_dir(t.0.join("worker0")).expect("dir");
        assert!(check_run_files(&t.0).is_ok(), "files and plain directories pass");
        fs::create_dir(t.0.join("Summary.JSON")).expect("dir");
        let e = check_run_files(&t.0).expect_err("a directory named like a file").to_string();
        assert!(
            e.contains("Summary.JSON") && e.contains("is a directory") && e.contains("move it aside"),
            "{e}"
        );
        #[cfg(unix)]
        {
            fs::remove_dir(t.0.join("Summary.JSON")).expect("rmdir");
            std::os::unix::fs::symlink(&t.0, t.0.join("loss.svg")).expect("link");
            assert!(check_run_files(&t.0).is_ok(), "a link is replaced, not followed");
        }
    }
}

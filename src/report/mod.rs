//! Run outputs: the run directory, atomic file writes, JSONL metrics, CSV tables, terminal tables
//! and SVG plots. Every error names the file or directory it is about.

pub mod atomic;
pub mod claimed;
pub mod csv;
pub mod events;
pub mod heatmap;
pub mod jsonl;
pub mod plot;
pub mod progress;
pub mod run_files;
pub mod run_lock;
pub mod rundir;
pub mod table;
mod utc_stamp;

use std::path::PathBuf;

use thiserror::Error;

pub use self::csv::{csv_string, write_csv, Cell, CsvWriter};
pub use self::jsonl::JsonlWriter;
pub use self::plot::{
    histogram_plot, line_plot, panels_plot, two_panel, HistSeries, Panel, PlotSpec, Series,
};
pub use self::rundir::{create_run_dir, create_run_dir_in, open_resume_dir, write_atomic};
pub use self::table::{Align, Table};

/// Errors of the report writers.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("output directory {} is not writable: {source}", dir.display())]
    NotWritable { dir: PathBuf, source: std::io::Error },
    #[error("output path {} exists and is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} already exists; refusing to overwrite it", path.display())]
    AlreadyExists { path: PathBuf },
    /// `--out DIR` names a directory that holds files (`example` is one of them).
    #[error("output directory {} already holds files ({example}, ...); give --out a new or empty directory{}", path.display(), resume_hint(path))]
    OutDirInUse { path: PathBuf, example: String },
    #[error("cannot serialize a record for {}: {source}", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("cannot draw plot {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl ReportError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReportError::Io { action, path: path.into(), source }
    }
}

/// A scratch directory for unit tests, unique per process and name, removed on drop.
#[cfg(test)]
pub(crate) struct TestDir(pub PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("batchscope-report-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create test dir");
        TestDir(p)
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// For an `--out` that holds a train run (its config.toml and last.safetensors): how to
/// continue it instead; for one stopped before its first checkpoint, how to start it again.
fn resume_hint(dir: &std::path::Path) -> String {
    if dir.join("config.toml").is_file() && dir.join("last.safetensors").is_file() {
        format!(
            " (it holds a train run: continue it with `batchscope train --resume {}`)",
            dir.display()
        )
    } else if stopped_before_first_checkpoint(dir) {
        format!(" ({})", restart_hint(dir))
    } else {
        String::new()
    }
}

/// Whether `dir` holds a train run that stopped (killed) before it wrote its first checkpoint:
/// its config.toml and metrics.jsonl, no last.safetensors and no summary.json. Nothing in it
/// can be resumed.
pub fn stopped_before_first_checkpoint(dir: &std::path::Path) -> bool {
    dir.join("config.toml").is_file()
        && dir.join("metrics.jsonl").is_file()
        && !dir.join("last.safetensors").exists()
        && !dir.join("summary.json").exists()
}

/// What to do with a run directory that [`stopped_before_first_checkpoint`].
pub fn restart_hint(dir: &std::path::Path) -> String {
    format!(
        "it holds a train run stopped before its first checkpoint, which cannot be resumed: start it again with `batchscope train --config {} --out NEW_DIR`, or remove {} and rerun",
        dir.join("config.toml").display(),
        dir.display()
    )
}

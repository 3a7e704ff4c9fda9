//! JSON Lines: one JSON object per line, each line written whole and flushed to the OS before
//! `write` returns, so the metrics logged so far survive a crash of the process.
//! Non-finite floats are written as `null` (JSON has no NaN). Also [`write_pretty`], the
//! indented JSON of a `summary.json`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::rundir::create_new;
use super::ReportError;

/// `value` as indented JSON ending in a line feed (like every other text file a run writes),
/// written atomically to `path`.
pub fn write_pretty<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), ReportError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|source| ReportError::Json { path: path.to_path_buf(), source })?;
    text.push('\n');
    super::rundir::write_atomic(path, text.as_bytes())
}

pub struct JsonlWriter {
    file: File,
    path: PathBuf,
    lines: u64,
    line: Vec<u8>,
}

/// The largest metrics file read back (resume, plots, `overlay`): a long run's is megabytes.
pub const MAX_JSONL_BYTES: u64 = 4 << 30;

/// The last byte of a regular file (`None` when empty); a file that is no regular file is an
/// error (appending to a device is no run's metrics).
fn last_byte(path: &Path) -> io::Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = crate::bounded_read::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() == 0 {
        return Ok(None);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(Some(b[0]))
}

impl JsonlWriter {
    /// Creates `path`; an existing file is an error, never truncated.
    pub fn create(path: &Path) -> Result<Self, ReportError> {
        Ok(Self::from_file(create_new(path)?, path))
    }

    /// Opens `path` for appending (`--resume`), creating it if missing. A last line cut short by
    /// a crash is ended with a newline first, so the next record starts on its own line.
    pub fn append(path: &Path) -> Result<Self, ReportError> {
        let needs_newline = match last_byte(path) {
            Ok(last) => last.is_some_and(|b| b != b'\n'),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(ReportError::io("read", path, e)),
        };
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| ReportError::io("open for appending", path, e))?;
        if needs_newline {
            file.write_all(b"\n").map_err(|e| ReportError::io("write", path, e))?;
        }
        Ok(Self::from_file(file, path))
    }

    fn from_file(file: File, path: &Path) -> Self {
        JsonlWriter { file, path: path.to_path_buf(), lines: 0, line: Vec::with_capacity(512) }
    }

    /// Appends `record` as one line (compact JSON never contains a raw newline) with a single
    /// `write` call of the whole line.
    pub fn write<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<(), ReportError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)
            .map_err(|source| ReportError::Json { path: self.path.clone(), source })?;
        self.line.push(b'\n');
        self.file
            .write_all(&self.line)
            .and_then(|()| self.file.flush())
            .map_err(|e| ReportError::io("write", &self.path, e))?;
        self.lines += 1;
        Ok(())
    }

    /// Forces the lines written so far to disk (survives a power loss, not only a crash).
    pub fn sync(&mut self) -> Result<(), ReportError> {
        self.file.sync_data().map_err(|e| ReportError::io("sync", &self.path, e))
    }

    /// Lines written by this writer.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestDir;

    #[derive(Serialize)]
    struct Rec {
        step: u64,
        train_loss: f64,
        note: &'static str,
    }

    #[test]
    fn lines_parse_back_and_are_on_disk_after_each_write() {
        let t = TestDir::new("jsonl");
        let p = t.0.join("metrics.jsonl");
        let mut w = JsonlWriter::create(&p).unwrap();
        w.write(&Rec { step: 1, train_loss: 2.5, note: "a\nb \"q\"" }).unwrap();
        // Flushed per line: visible to another reader before the writer is dropped.
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 1);
        w.write(&Rec { step: 2, train_loss: f64::NAN, note: "" }).unwrap();
        w.write(&serde_json::json!({"step": 3, "val_error": 0.125})).unwrap();
        assert_eq!(w.lines(), 3);
        let text = std::fs::read_to_string(&p).unwrap();
        let v: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["step"], 1);
        assert_eq!(v[0]["train_loss"], 2.5);
        assert_eq!(v[0]["note"], "a\nb \"q\"");
        assert!(v[1]["train_loss"].is_null());
        assert_eq!(v[2]["val_error"], 0.125);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn create_never_truncates_and_append_continues() {
        let t = TestDir::new("jsonl-append");
        let p = t.0.join("metrics.jsonl");
        std::fs::write(&p, "{\"step\":1}\n{\"step\":2").unwrap(); // last line cut by a crash
        let e = JsonlWriter::create(&p).err().expect("must refuse");
        assert!(e.to_string().contains("metrics.jsonl"), "{e}");
        let mut w = JsonlWriter::append(&p).unwrap();
        w.write(&serde_json::json!({"step": 3})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "{\"step\":1}\n{\"step\":2\n{\"step\":3}\n");
        let e = JsonlWriter::create(&t.0.join("no/such/dir/m.jsonl")).err().unwrap();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }
}

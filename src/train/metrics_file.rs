//! metrics.jsonl read back: cut at a resumed checkpoint's step, and streamed record by record
//! for the plots. A long run's file is hundreds of megabytes: a resume read it whole, parsed
//! every line into a JSON tree and wrote it whole again (11 s at 133 MB), and the plots held
//! the text and every parsed record at once.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use super::TrainError;
use crate::report::ReportError;

/// A record's step (its other fields are parsed, so the line must be one JSON object, and
/// skipped).
#[derive(Deserialize)]
struct StepOf {
    step: u64,
}

/// The longest line read back (a record is a few hundred bytes): a file of no newline is no
/// metrics file, and is not read whole into memory.
const MAX_LINE_BYTES: u64 = 64 << 20;

/// Each line of `path` (its bytes, the newline included) with its 1-based number, through `f`;
/// `Err` from `f` stops the read, and so does a line longer than [`MAX_LINE_BYTES`].
fn each_line<E>(
    path: &Path,
    mut f: impl FnMut(usize, &[u8]) -> Result<(), E>,
    io: impl Fn(std::io::Error) -> E,
) -> Result<(), E> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(&io)?);
    let mut buf = Vec::with_capacity(1024);
    let mut number = 0;
    loop {
        buf.clear();
        use std::io::Read;
        if (&mut reader).take(MAX_LINE_BYTES).read_until(b'\n', &mut buf).map_err(&io)? == 0 {
            return Ok(());
        }
        number += 1;
        if buf.len() as u64 == MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            let message =
                format!("line {number} is larger than {MAX_LINE_BYTES} bytes (no metrics record)");
            return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidData, message)));
        }
        f(number, &buf)?;
    }
}

/// Every metrics record of `path` that parses as `T`, in file order (lines that do not are
/// skipped; a file that cannot be read gives none).
pub(super) fn for_each_record<T: for<'de> Deserialize<'de>>(path: &Path, mut f: impl FnMut(T)) {
    let _ = each_line(
        path,
        |_, line| {
            if let Ok(record) = serde_json::from_slice::<T>(line.trim_ascii()) {
                f(record);
            }
            Ok::<(), std::io::Error>(())
        },
        |e| e,
    );
}

/// The last line of `path` that is not blank, read from the end (a window that doubles until
/// it holds the line whole), not the whole file: `None` when there is none or it cannot be read.
pub(super) fn last_line(path: &Path) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok().filter(|m| m.is_file())?.len();
    let mut window = len.min(64 << 10);
    let most = len.min(MAX_LINE_BYTES);
    loop {
        file.seek(SeekFrom::Start(len - window)).ok()?;
        let mut tail = Vec::with_capacity(window as usize);
        (&mut file).take(window).read_to_end(&mut tail).ok()?;
        let body = tail.trim_ascii_end();
        let start = body.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
        match start {
            Some(i) => return Some(body[i..].to_vec()).filter(|l| !l.trim_ascii().is_empty()),
            None if window == len => return Some(body.to_vec()).filter(|l| !l.trim_ascii().is_empty()),
            // No line of a metrics record is that long.
            None if window >= most => return None,
            None => window = most.min(window * 2),
        }
    }
}

/// Drop metrics lines after `step` (a resumed run rewrites what came after its checkpoint), and
/// a last line that is no metrics record (cut short when the run was killed mid-write), with a
/// warning; any other line that is no record is an error (the resume would drop a record of
/// the run). The file is read once, line by line; when the kept lines are its beginning (steps
/// in order, as a run writes them) it is cut to them in place, or left as it is when every line
/// is kept, and otherwise rewritten whole with the kept lines.
pub(super) fn truncate_metrics(path: &Path, step: u64) -> Result<(), TrainError> {
    let cannot =
        |e: std::io::Error| TrainError::Setup(format!("cannot read {} to resume: {e}", path.display()));
    if !cut_in_place(&std::fs::symlink_metadata(path).map_err(cannot)?) {
        return rewrite_kept(path, step);
    }
    let (mut kept_end, mut dropped, mut in_order) = (0u64, false, true);
    let (mut offset, mut cut_short) = (0u64, None);
    each_line(
        path,
        |number, line| {
            offset += line.len() as u64;
            let body = line.trim_ascii();
            if body.is_empty() {
                return Ok(());
            }
            if let Some(earlier) = cut_short {
                return Err(not_a_record(path, earlier));
            }
            match serde_json::from_slice::<StepOf>(body)
                .ok()
                .filter(|_| body.starts_with(b"{"))
                .ok_or(())
            {
                Ok(r) if r.step <= step => {
                    in_order &= !dropped;
                    kept_end = offset;
                }
                Ok(_) => dropped = true,
                Err(_) => cut_short = Some(number),
            }
            Ok(())
        },
        cannot,
    )?;
    if let Some(number) = cut_short {
        log::warn!(
            "{}: its last line (line {number}) is no metrics record (cut short by a kill?); dropped on resume",
            path.display()
        );
        dropped = true;
    }
    match (dropped, in_order) {
        (false, _) => Ok(()),
        (true, true) => {
            let io = |e| ReportError::io("cut", path, e);
            let file = OpenOptions::new().write(true).open(path).map_err(io)?;
            file.set_len(kept_end).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(())
        }
        (true, false) => rewrite_kept(path, step),
    }
}

/// Whether a metrics file (its own metadata, a link not followed) may be cut and appended to in
/// place: a regular file that this run alone names and may write. Any other is rewritten whole
/// as a new file ([`rewrite_kept`]): a device or a pipe, a read-only file, a symbolic link and
/// a hard link (a run copied with `cp -rs` or `cp -al`, whose original would otherwise lose its
/// lines and gain the copy's).
fn cut_in_place(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    let alone = std::os::unix::fs::MetadataExt::nlink(meta) == 1;
    #[cfg(not(unix))]
    let alone = true;
    meta.is_file() && alone && !meta.permissions().readonly()
}

/// The error of a line `number` of `path` that is no metrics record and not the last.
fn not_a_record(path: &Path, number: usize) -> TrainError {
    TrainError::Setup(format!(
        "{}: line {number} is no metrics record (only a last line cut short by a kill is dropped on resume); repair that line or delete it, then resume",
        path.display()
    ))
}

/// [`truncate_metrics`] by reading the whole file (within the metrics bound) and writing the
/// kept lines in its place: for lines out of step order, and files that are no regular file.
fn rewrite_kept(path: &Path, step: u64) -> Result<(), TrainError> {
    let text = crate::bounded_read::read_to_string(path, crate::report::jsonl::MAX_JSONL_BYTES)
        .map_err(|e| TrainError::Setup(format!("cannot read {} to resume: {e}", path.display())))?;
    let step_of = |l: &str| {
        let l = l.trim();
        serde_json::from_str::<StepOf>(l).ok().filter(|_| l.starts_with('{')).map(|r| r.step)
    };
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let mut kept = Vec::new();
    for (k, &(i, l)) in lines.iter().enumerate() {
        match step_of(l) {
            Some(s) if s <= step => kept.push(l),
            Some(_) => {}
            None if k + 1 == lines.len() => log::warn!(
                "{}: its last line (line {}) is no metrics record (cut short by a kill?); dropped on resume",
                path.display(),
                i + 1
            ),
            None => return Err(not_a_record(path, i + 1)),
        }
    }
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    crate::report::rundir::write_atomic(path, out.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str, step: u64) -> Result<String, String> {
        static CUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = crate::report::TestDir::new(&format!("metrics-cut-{n}"));
        let p = d.0.join("metrics.jsonl");
        std::fs::write(&p, text).expect("write");
        truncate_metrics(&p, step).map_err(|e| e.to_string())?;
        Ok(std::fs::read_to_string(&p).expect("read"))
    }

    #[test]
    fn a_resume_keeps_the_records_up_to_its_step() {
        let lines = "{\"step\":1,\"x\":[1,2]}\n\n{\"step\":2}\n{\"step\":3}\n{\"step\":4}\n";
        // Nothing to drop: the file as it was (its blank line too).
        assert_eq!(cut(lines, 4).as_deref(), Ok(lines));
        assert_eq!(cut(lines, 9).as_deref(), Ok(lines));
        // In order: cut in place to the kept lines.
        assert_eq!(cut(lines, 2).as_deref(), Ok("{\"step\":1,\"x\":[1,2]}\n\n{\"step\":2}\n"));
        assert_eq!(cut(lines, 0).as_deref(), Ok(""));
        // A last line cut short by a kill is dropped, with or without its newline.
        assert_eq!(
            cut("{\"step\":1}\n{\"step\":2}\n{\"ste", 2).as_deref(),
            Ok("{\"step\":1}\n{\"step\":2}\n")
        );
        assert_eq!(cut("{\"step\":1}\n{\"st\n\n", 5).as_deref(), Ok("{\"step\":1}\n"));
        // A last kept line without its newline stays as it is (the writer ends it).
        assert_eq!(cut("{\"step\":1}\n{\"step\":2}", 2).as_deref(), Ok("{\"step\":1}\n{\"step\":2}"));
        // Out of order: the kept lines, rewritten.
        assert_eq!(
            cut("{\"step\":1}\n{\"step\":5}\n{\"step\":2}\n", 2).as_deref(),
            Ok("{\"step\":1}\n{\"step\":2}\n")
        );
    }

    /// A hard-linked metrics file (a run copied with `cp -al`) is rewritten as a new file,
    /// whether or not lines are dropped: the other name keeps its lines, and the appends that
    /// follow go to the new file only.
    #[cfg(unix)]
    #[test]
    fn a_hard_linked_metrics_file_is_rewritten_not_cut() {
        use std::os::unix::fs::MetadataExt;
        let d = crate::report::TestDir::new("metrics-linked");
        let (p, original) = (d.0.join("metrics.jsonl"), d.0.join("original.jsonl"));
        let text = "{\"step\":1}\n{\"step\":2}\n";
        for step in [1, 2] {
            let _ = std::fs::remove_file(&original);
            std::fs::write(&p, text).expect("write");
            std::fs::hard_link(&p, &original).expect("link");
            truncate_metrics(&p, step).expect("cut");
            assert_eq!(std::fs::read_to_string(&original).expect("read"), text, "step {step}");
            let (a, b) = (std::fs::metadata(&p).expect("p"), std::fs::metadata(&original).expect("o"));
            assert_ne!(a.ino(), b.ino(), "step {step}: a new file");
            let want = if step == 1 { "{\"step\":1}\n" } else { text };
            assert_eq!(std::fs::read_to_string(&p).expect("read"), want);
        }
        // A symbolic link (a run copied with `cp -rs`): replaced by a file, its target kept.
        std::fs::remove_file(&p).expect("remove");
        std::os::unix::fs::symlink(&original, &p).expect("symlink");
        truncate_metrics(&p, 1).expect("cut");
        assert_eq!(std::fs::read_to_string(&original).expect("read"), text);
        assert!(std::fs::symlink_metadata(&p).expect("p").is_file());
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "{\"step\":1}\n");
    }

    /// A line that is no JSON object (`[5]`) is no record, and a file of no newline is not
    /// read whole: the last line is looked for within the line bound.
    #[test]
    fn odd_lines_are_no_records() {
        assert_eq!(cut("{\"step\":1}\n[5]", 9).as_deref(), Ok("{\"step\":1}\n"));
        assert!(cut("[5]\n{\"step\":1}\n", 9).is_err());
        let d = crate::report::TestDir::new("metrics-no-newline");
        let p = d.0.join("metrics.jsonl");
        let f = std::fs::File::create(&p).expect("create");
        f.set_len(MAX_LINE_BYTES + 10).expect("sparse");
        assert_eq!(last_line(&p), None);
        let e = truncate_metrics(&p, 1).expect_err("no record").to_string();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn the_last_line_is_read_from_the_end() {
        let d = crate::report::TestDir::new("metrics-last");
        let p = d.0.join("metrics.jsonl");
        let long = format!("{{\"step\":2,\"x\":\"{}\"}}", "y".repeat(200_000));
        for (text, want) in [
            ("{\"step\":1}\n{\"step\":2}\n".to_string(), Some("{\"step\":2}")),
            ("{\"step\":1}\n{\"step\":2}\n\n  \n".to_string(), Some("{\"step\":2}")),
            ("{\"step\":1}\n{\"step\":2}".to_string(), Some("{\"step\":2}")),
            ("{\"step\":1}".to_string(), Some("{\"step\":1}")),
            ("\n\n".to_string(), None),
            (String::new(), None),
            (format!("{{\"step\":1}}\n{long}\n"), Some(long.as_str())),
            (long.clone(), Some(long.as_str())),
        ] {
            std::fs::write(&p, &text).expect("write");
            let got = last_line(&p).map(|l| String::from_utf8(l).expect("utf-8"));
            assert_eq!(got.as_deref(), want, "{}", &text[..text.len().min(40)]);
        }
    }

    #[test]
    fn a_broken_line_before_the_last_is_an_error_that_changes_nothing() {
        let d = crate::report::TestDir::new("metrics-broken");
        let p = d.0.join("metrics.jsonl");
        for text in [
            "{\"step\":1}\nnot json\n{\"step\":2}\n",
            "{\"step\":1}\n{\"step\":2,\n{\"step\":9}\n",
            "{\"x\":1}\n{\"step\":2}\n",
        ] {
            std::fs::write(&p, text).expect("write");
            let e = truncate_metrics(&p, 1).expect_err(text).to_string();
            assert!(e.contains("line ") && e.contains("no metrics record"), "{e}");
            assert_eq!(std::fs::read_to_string(&p).expect("read"), text);
        }
    }
}

//! `batchscope overlay`: one metrics.jsonl field of several train runs on one SVG.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::report::plot::{line_plot, PlotSpec, Series};

/// `batchscope overlay`: one metrics.jsonl field of several train runs on one SVG, against
/// examples seen (e.g. validation 0-1 error of three shuffle modes).
pub fn overlay(
    runs: &[PathBuf],
    field: &str,
    labels: &[String],
    out: &Path,
    log_y: bool,
) -> anyhow::Result<()> {
    if runs.is_empty() {
        bail!("overlay needs at least one run directory");
    }
    if !labels.is_empty() && labels.len() != runs.len() {
        bail!("--label given {} for {}", times(labels.len(), "time"), times(runs.len(), "run"));
    }
    // Never write over a file: `--out RUN/metrics.jsonl` would replace a run's metrics.
    match std::fs::symlink_metadata(out) {
        Ok(m) if m.is_dir() => bail!(
            "--out {}: is a directory; overlay writes one SVG file (e.g. --out {})",
            out.display(),
            out.join("overlay.svg").display()
        ),
        Ok(m) if m.file_type().is_symlink() && std::fs::metadata(out).is_err() => bail!(
            "--out {}: is a symbolic link to nothing; refusing to write through it (choose a new name)",
            out.display()
        ),
        Ok(_) => {
            bail!(
                "--out {}: the file exists; refusing to overwrite it (choose a new name)",
                out.display()
            )
        }
        Err(_) => {}
    }
    let mut series = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let path = run.join("metrics.jsonl");
        let Fields { points, has_x, numeric } = field_points(&path, field)?;
        if points.is_empty() {
            match has_x {
                true => {
                    bail!("{}: no values of `{field}`{}", path.display(), fields_hint(field, &numeric))
                }
                false => bail!("{}: no `examples_seen` (the x axis) in its records", path.display()),
            }
        }
        let name = labels.get(i).cloned().unwrap_or_else(|| run.display().to_string());
        series.push(Series { name, points });
    }
    let mut spec = PlotSpec::new(field.replace('_', " "), "examples seen", field);
    if log_y {
        // A log axis cannot show values ≤ 0 (a validation error that reaches 0): said, not
        // left out unsaid; a plot of none is refused.
        let dropped: usize = series.iter().map(|s| s.points.iter().filter(|p| p.1 <= 0.0).count()).sum();
        if dropped == series.iter().map(|s| s.points.len()).sum::<usize>() {
            bail!(
                "--log-y: every value of `{field}` is ≤ 0, which a log axis cannot show; drop --log-y"
            );
        }
        if dropped > 0 {
            eprintln!("notice: --log-y leaves out {dropped} value(s) of `{field}` ≤ 0, which a log axis cannot show");
        }
        spec = spec.log_y();
    }
    line_plot(out, &spec, &series)?;
    println!("wrote: {}", out.display());
    Ok(())
}

/// `n` and `what`, plural past one: "1 time", "2 runs".
fn times(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        _ => format!("{n} {what}s"),
    }
}

/// The most field names an error lists.
const MAX_LISTED: usize = 20;

/// What a user who asked for `field` may have meant: the closest numeric field (at least 70 %
/// alike) and the numeric fields the records hold (the first [`MAX_LISTED`]), or why there are
/// none.
fn fields_hint(field: &str, numeric: &std::collections::BTreeSet<String>) -> String {
    if numeric.is_empty() {
        return "; its records hold no numeric field".to_string();
    }
    let meant = crate::suggest::closest(field, numeric.iter().map(String::as_str))
        .map(|n| format!(" (did you mean `{n}`?)"))
        .unwrap_or_default();
    let mut listed = numeric.iter().take(MAX_LISTED).cloned().collect::<Vec<_>>().join(", ");
    if numeric.len() > MAX_LISTED {
        listed.push_str(&format!(" and {} more", numeric.len() - MAX_LISTED));
    }
    format!("{meant}; its records have numeric values of: {listed}")
}

/// What [`field_points`] found in a metrics file.
struct Fields {
    /// `(examples_seen, field)` of each record that has both.
    points: Vec<(f64, f64)>,
    /// Whether any record has `examples_seen`.
    has_x: bool,
    /// The fields with a number in some record, by name.
    numeric: std::collections::BTreeSet<String>,
}

/// `(examples_seen, field)` of each record of the metrics file at `path` that has both, read
/// line by line (a long run's file is hundreds of megabytes: it was read whole, 137 MB of
/// memory and 4.9 s for 133 MB), and whether any record has `examples_seen`. A line that is no
/// JSON is an error, but for a last line cut short (no newline: killed while writing), which
/// is left out with a warning. A file that is no regular file is read within the metrics bound.
fn field_points(path: &Path, field: &str) -> anyhow::Result<Fields> {
    use std::io::{BufRead, BufReader, Read};
    let cannot = || format!("cannot read {}", path.display());
    let file = crate::bounded_read::open(path).with_context(cannot)?;
    let regular = file.metadata().with_context(cannot)?.is_file();
    let limit = crate::report::jsonl::MAX_JSONL_BYTES;
    let mut reader =
        BufReader::with_capacity(1 << 20, file.take(if regular { u64::MAX } else { limit + 1 }));
    let (mut points, mut has_x, mut numeric) = (Vec::new(), false, std::collections::BTreeSet::new());
    let (mut line, mut next) = (Vec::new(), Vec::new());
    let (mut number, mut bytes) = (0usize, 0u64);
    // A record is a few hundred bytes: a file of no newline is not read whole into memory.
    const MAX_LINE: u64 = 64 << 20;
    let mut read_line = |buf: &mut Vec<u8>| (&mut reader).take(MAX_LINE).read_until(b'\n', buf);
    let mut more = read_line(&mut line).with_context(cannot)? > 0;
    while more {
        number += 1;
        bytes += line.len() as u64;
        if bytes > limit && !regular {
            bail!("{}: larger than {limit} bytes, the most a metrics file is read", path.display());
        }
        if line.len() as u64 == MAX_LINE && line.last() != Some(&b'\n') {
            bail!(
                "{}:{number}: a line larger than {MAX_LINE} bytes is no metrics record",
                path.display()
            );
        }
        next.clear();
        more = read_line(&mut next).with_context(cannot)? > 0;
        let body = line.trim_ascii();
        if !body.is_empty() {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(v) => {
                    let x = v.get("examples_seen").and_then(|x| x.as_f64());
                    has_x |= x.is_some();
                    if let (Some(x), Some(y)) = (x, v.get(field).and_then(|y| y.as_f64())) {
                        points.push((x, y));
                    }
                    let numbers = v.as_object().into_iter().flatten().filter(|(_, v)| v.is_number());
                    numeric.extend(numbers.map(|(k, _)| k.clone()));
                }
                // A run killed while it wrote a record leaves its last line cut short (no
                // newline): the records before it are the run's, so they are plotted.
                Err(_) if !more && !line.ends_with(b"\n") => log::warn!(
                    "{}:{number}: a last line cut short (killed while writing?) is left out",
                    path.display()
                ),
                Err(e) => bail!("{}:{number}: not JSON: {e}", path.display()),
            }
        }
        std::mem::swap(&mut line, &mut next);
    }
    Ok(Fields { points, has_x, numeric })
}

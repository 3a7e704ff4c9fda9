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
        bail!("--label given {} times for {} runs", labels.len(), runs.len());
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
        let text = crate::bounded_read::read_to_string(&path, crate::report::jsonl::MAX_JSONL_BYTES)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut points = Vec::new();
        let last = text.lines().count();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                // A run killed while it wrote a record leaves its last line cut short (no
                // newline): the records before it are the run's, so they are plotted.
                Err(_) if n + 1 == last && !text.ends_with('\n') => {
                    log::warn!(
                        "{}:{}: a last line cut short (killed while writing?) is left out",
                        path.display(),
                        n + 1
                    );
                    continue;
                }
                Err(e) => bail!("{}:{}: not JSON: {e}", path.display(), n + 1),
            };
            let x = v.get("examples_seen").and_then(|x| x.as_f64());
            let y = v.get(field).and_then(|y| y.as_f64());
            if let (Some(x), Some(y)) = (x, y) {
                points.push((x, y));
            }
        }
        if points.is_empty() {
            let has_x = text.lines().any(|l| l.contains("\"examples_seen\""));
            match has_x {
                true => bail!("{}: no values of `{field}`", path.display()),
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

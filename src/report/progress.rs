//! Progress bars of the long-running phases: one style with elapsed time and an estimate of
//! what remains. Bars draw on stderr and are hidden when it is not a terminal (indicatif's
//! default) or when the command was asked to be quiet.

use indicatif::{ProgressBar, ProgressStyle};

/// The template every bar uses: `{prefix}` names the phase, `{what}` the unit counted.
pub fn template(what: &str) -> String {
    format!("{{prefix}} {{bar:30}} {{pos}}/{{len}} {what} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}")
}

/// A bar of `len` units called `what` (e.g. "steps", "Hessian-vector products"), prefixed by
/// `phase`; hidden unless `show`.
pub fn bar(show: bool, len: u64, phase: &str, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&template(what)) {
        bar.set_style(style);
    }
    bar.set_prefix(phase.to_string());
    bar
}

/// A bar whose length is a work estimate (e.g. examples processed, which sets the pace of the
/// estimate) while the message says where it is; same style, no `{pos}/{len}`.
pub fn work_bar(show: bool, len: u64, phase: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} {bar:30} {percent:>3}% [{elapsed_precise}<{eta_precise}] {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(phase.to_string());
    bar
}

/// Work of one batch size of a sweep, for the estimate: its examples per step plus a fixed
/// per-size cost (workspace, warm-up dispatches) worth 64 examples.
pub fn batch_work(batch: usize) -> u64 {
    (batch as u64).saturating_add(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_carry_an_estimate() {
        let t = template("steps");
        assert!(t.contains("{eta_precise}") && t.contains("steps"), "{t}");
        assert!(ProgressStyle::with_template(&t).is_ok());
        let b = bar(false, 10, "x", "steps");
        assert!(b.is_hidden());
        let w = work_bar(false, 10, "x");
        assert!(w.is_hidden());
    }
}

//! The README's Contents list is its table of contents: every `##` and `###` heading (outside
//! code blocks), in order, each linked by the anchor GitHub gives it, and no two headings with
//! the same anchor. A renamed or added section fails here, not as a dead link.

use std::path::Path;

fn readme() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&p).expect("read README.md")
}

/// GitHub's anchor of a heading: lower case; letters, digits, spaces, `-` and `_` kept, every
/// other character dropped; spaces made `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `(level, anchor)` of the `##` and `###` headings outside code blocks, in order.
fn headings(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            if let Some(h) = line.strip_prefix("## ") {
                out.push((2, anchor(h)));
            } else if let Some(h) = line.strip_prefix("### ") {
                out.push((3, anchor(h)));
            }
        }
    }
    out
}

/// `(level, anchor)` of the Contents list's entries: `- [text](#anchor)`, indented two spaces
/// for a `###`.
fn contents(text: &str) -> Vec<(usize, String)> {
    let start = text.find("**Contents**").expect("a **Contents** list in README.md");
    text[start..]
        .lines()
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let level = if l.starts_with("  - ") { 3 } else { 2 };
            let link = l.rsplit_once("](#").map(|(_, a)| a.trim_end_matches(')').to_string());
            (level, link.unwrap_or_else(|| panic!("not a `- [text](#anchor)` entry: {l}")))
        })
        .collect()
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(
        anchor("Mixed precision: `model.precision = \"f16\"` (`--precision f16`)"),
        "mixed-precision-modelprecision--f16---precision-f16"
    );
    assert_eq!(
        anchor("σ/√n: the minibatch gradient's standard error"),
        "σn-the-minibatch-gradients-standard-error"
    );
}

#[test]
fn the_contents_list_every_heading_in_order() {
    let text = readme();
    let heads = headings(&text);
    let mut seen = std::collections::BTreeSet::new();
    for (_, a) in &heads {
        assert!(seen.insert(a), "two headings with the anchor #{a}: GitHub links the second as #{a}-1");
    }
    assert_eq!(contents(&text), heads, "the README's Contents list against its headings");
}

//! The README's config reference is the parser's: every key of every section of an MLP config
//! is in the table, every key of the table is a real one, and each default the table gives is
//! the value a config that leaves the key out gets.

use std::collections::BTreeSet;
use std::path::Path;

use batchscope::config::{Config, DepthConfig, LandscapeConfig, RnnConfig};

const SECTIONS: [&str; 6] = ["model", "data", "train", "monitor", "sweep", "gpu"];

/// (key, default) of each row of the README's config reference of the MLP commands.
fn table() -> Vec<(String, String)> {
    table_under("## Config reference (MLP commands)")
}

/// (key, default) of each row of the table in the README section titled `heading`.
fn table_under(heading: &str) -> Vec<(String, String)> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&p).expect("read README.md");
    let start = text.find(heading).unwrap_or_else(|| panic!("a `{heading}` section in README.md"));
    let section = &text[start..];
    let end = section[3..].find("\n## ").map(|i| i + 3).unwrap_or(section.len());
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let key = cells[0].trim_start_matches("| ").trim_matches('`').to_string();
            (key, cells[1].trim_matches('`').to_string())
        })
        .collect()
}

/// The names an "unknown field" error lists as expected.
fn expected_names(toml: &str) -> BTreeSet<String> {
    names_in(&Config::from_toml(toml, "t").expect_err("an unknown key is an error").to_string())
}

/// The backticked names after "expected" in an error text.
fn names_in(e: &str) -> BTreeSet<String> {
    let after = e.split("expected").nth(1).unwrap_or_else(|| panic!("no expected names in `{e}`"));
    after.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn every_key_of_every_section_is_in_the_table_and_no_other() {
    let rows = table();
    assert!(rows.len() >= 60, "only {} rows in the config reference", rows.len());
    let in_table: BTreeSet<String> = rows.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(in_table.len(), rows.len(), "a key is listed twice");
    let sections = expected_names("zzz_unknown = 1\n");
    assert_eq!(sections, SECTIONS.iter().map(|s| s.to_string()).collect(), "the config's sections");
    let mut keys = BTreeSet::new();
    for s in SECTIONS {
        for k in expected_names(&format!("[{s}]\nzzz_unknown = 1\n")) {
            keys.insert(format!("{s}.{k}"));
        }
    }
    assert_same_keys(&in_table, &keys, "config reference (MLP commands)");
}

/// The keys of a README table against the keys the parser knows, both ways.
fn assert_same_keys(in_table: &BTreeSet<String>, parsed: &BTreeSet<String>, table: &str) {
    let missing: Vec<&String> = parsed.difference(in_table).collect();
    let unknown: Vec<&String> = in_table.difference(parsed).collect();
    assert!(missing.is_empty(), "keys the README's {table} lacks: {missing:?}");
    assert!(unknown.is_empty(), "keys of the README's {table} the parser does not know: {unknown:?}");
}

#[test]
fn every_default_in_the_table_is_what_an_empty_config_gets() {
    let empty = Config::from_toml("", "t").expect("an empty config");
    let mut wrong = Vec::new();
    for (key, default) in table() {
        if default == "none" {
            continue;
        }
        let (section, name) = key.split_once('.').expect("section.key");
        match Config::from_toml(&format!("[{section}]\n{name} = {default}\n"), "t") {
            Ok(c) if c == empty => {}
            Ok(_) => wrong.push(format!("{key} = {default} is not the default")),
            Err(e) => wrong.push(format!("{key} = {default}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const RNN_SECTIONS: [&str; 4] = ["rnn", "sequence", "train", "diagnostics"];

/// An rnn config from TOML text (its `[[variant]]` tables are the loader's, not the struct's).
fn rnn(text: &str) -> Result<RnnConfig, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    RnnConfig::from_table(table, "t").map_err(|e| e.to_string())
}

/// `[depth]` or `[landscape]` alone, from the text of its keys.
fn section<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn every_rnn_depth_and_landscape_key_is_in_their_table_and_no_other() {
    let rows = table_under("## Config reference (rnn, depth, landscape)");
    let in_table: BTreeSet<String> = rows.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(in_table.len(), rows.len(), "a key is listed twice");
    let sections = names_in(&rnn("zzz_unknown = 1").expect_err("unknown"));
    assert_eq!(
        sections,
        RNN_SECTIONS.iter().map(|s| s.to_string()).collect(),
        "the rnn config's sections"
    );
    let mut keys = BTreeSet::new();
    for s in RNN_SECTIONS {
        for k in names_in(&rnn(&format!("[{s}]\nzzz_unknown = 1\n")).expect_err("unknown")) {
            keys.insert(format!("{s}.{k}"));
        }
    }
    let depth = section::<DepthConfig>("zzz_unknown = 1").expect_err("unknown");
    keys.extend(names_in(&depth).into_iter().map(|k| format!("depth.{k}")));
    let landscape = section::<LandscapeConfig>("zzz_unknown = 1").expect_err("unknown");
    keys.extend(names_in(&landscape).into_iter().map(|k| format!("landscape.{k}")));
    assert_same_keys(&in_table, &keys, "config reference (rnn, depth, landscape)");
}

#[test]
fn every_rnn_depth_and_landscape_default_is_what_an_empty_section_gets() {
    let empty_rnn = rnn("").expect("an empty rnn config");
    let mut wrong = Vec::new();
    for (key, default) in table_under("## Config reference (rnn, depth, landscape)") {
        if default == "none" {
            continue;
        }
        let (sec, name) = key.split_once('.').expect("section.key");
        let line = format!("{name} = {default}\n");
        let same = match sec {
            "depth" => section::<DepthConfig>(&line).map(|c| c == DepthConfig::default()),
            "landscape" => section::<LandscapeConfig>(&line).map(|c| c == LandscapeConfig::default()),
            _ => rnn(&format!("[{sec}]\n{line}")).map(|c| c == empty_rnn),
        };
        match same {
            Ok(true) => {}
            Ok(false) => wrong.push(format!("{key} = {default} is not the default")),
            Err(e) => wrong.push(format!("{key} = {default}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

//! The README's config reference is the parser's: every key of every section of an MLP config
//! is in the table, every key of the table is a real one, and each default the table gives is
//! the value a config that leaves the key out gets.

use std::collections::BTreeSet;
use std::path::Path;

use batchscope::config::Config;

const SECTIONS: [&str; 6] = ["model", "data", "train", "monitor", "sweep", "gpu"];

/// (key, default) of each row of the README's config reference.
fn table() -> Vec<(String, String)> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&p).expect("read README.md");
    let start = text.find("## Config reference").expect("a `## Config reference` section in README.md");
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
    let e = Config::from_toml(toml, "t").expect_err("an unknown key is an error").to_string();
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
    let missing: Vec<&String> = keys.difference(&in_table).collect();
    let unknown: Vec<&String> = in_table.difference(&keys).collect();
    assert!(missing.is_empty(), "keys the README's config reference lacks: {missing:?}");
    assert!(unknown.is_empty(), "README config keys the parser does not know: {unknown:?}");
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

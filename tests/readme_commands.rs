//! Every command line the README and the prepared device scripts show parses with the binary's
//! own parser (src/cli.rs), and every flag of the Commands table's synopses is a flag of that
//! command: a renamed or removed flag fails here, not in a user's shell or a device run.

use std::path::Path;

use clap::{CommandFactory, Parser};

#[allow(dead_code)] // the binary's parser; the test uses its types, not the binary's glue
#[path = "../src/cli.rs"]
mod cli;

fn readme() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&p).expect("read README.md")
}

/// Shell words of `line`: whitespace-separated, with '…' and "…" quoting (no escapes).
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                started = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if started || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// The `batchscope …` invocations of the README: lines of ```sh blocks (after `mpirun …`, up
/// to a `#` comment) and inline code spans (which may wrap across lines), except synopses
/// (`[--flag]`, `…`, `a|b`, `<x>`) and the module descriptions of the layout listing.
fn invocations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut fence, mut prose) = (None::<bool>, String::new());
    for line in text.lines() {
        if line.starts_with("```") {
            fence = match fence {
                None => Some(line.trim() == "```sh"),
                Some(_) => None,
            };
            continue;
        }
        match fence {
            Some(true) => {
                let code = line.split(" #").next().unwrap_or_default().trim();
                if let Some(i) = code.find("batchscope ") {
                    if i == 0 || code.starts_with("mpirun ") {
                        out.push(code[i..].to_string());
                    }
                }
            }
            Some(false) => {}
            // The layout listing names modules by what they run (`batchscope overlay`: ...).
            None if line.starts_with("src/") || line.starts_with("tests/") => {}
            None => {
                prose.push_str(line);
                prose.push(' ');
            }
        }
    }
    for span in prose.split('`').skip(1).step_by(2) {
        if span.starts_with("batchscope ") {
            out.push(span.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    let synopsis = |s: &str| {
        s.contains(" [") || s.contains('…') || s.contains("...") || s.contains('|') || s.contains('<')
    };
    out.into_iter().filter(|s| !synopsis(s)).collect()
}

#[test]
fn the_readers_split_words_and_find_invocations() {
    assert_eq!(
        shell_words("batchscope sweep --set 'model.hidden=[256]' --set x=\"a b\""),
        ["batchscope", "sweep", "--set", "model.hidden=[256]", "--set", "x=a b"]
    );
    let text = "run `batchscope sweep --max-batch 8` or `batchscope train [--out DIR]`, or\n`batchscope noise\n--max-n 64`\n```sh\nmpirun -np 2 batchscope train --mpi   # two ranks\n```\n";
    assert_eq!(
        invocations(text),
        ["batchscope train --mpi", "batchscope sweep --max-batch 8", "batchscope noise --max-n 64"]
    );
}

#[test]
fn every_readme_command_line_parses() {
    let text = readme();
    let lines = invocations(&text);
    assert!(lines.len() >= 40, "only {} command lines found in README.md", lines.len());
    let mut failures = Vec::new();
    for line in &lines {
        if let Err(e) = cli::Cli::try_parse_from(shell_words(line)) {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            failures.push(format!("{line}\n    {first}"));
        }
    }
    assert!(failures.is_empty(), "README command lines the parser refuses:\n{}", failures.join("\n"));
}

#[test]
fn every_flag_of_the_commands_table_exists() {
    let text = readme();
    let cmd = cli::Cli::command();
    let mut failures = Vec::new();
    let mut rows = 0;
    for line in text.lines().filter(|l| l.starts_with("| `batchscope ")) {
        let synopsis = line.split('`').nth(1).unwrap_or_default();
        let mut words = synopsis.split_whitespace().skip(1);
        let name = words.next().unwrap_or_default();
        let Some(sub) = cmd.find_subcommand(name) else {
            failures.push(format!("no command `{name}`: {synopsis}"));
            continue;
        };
        rows += 1;
        let longs: Vec<&str> = sub.get_arguments().filter_map(|a| a.get_long()).collect();
        for w in words {
            let flag = w.trim_start_matches('[').trim_end_matches(']').trim_end_matches("...");
            let Some(long) = flag.strip_prefix("--") else { continue };
            if !longs.contains(&long) {
                failures.push(format!("`{name}` has no --{long}: {synopsis}"));
            }
        }
    }
    assert!(rows >= 13, "only {rows} Commands rows found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The `$B …` invocations of a device script (`$B` the binary), each cut before its redirection,
/// pipe or `;`, shell variables replaced by a word (`$R/x` is then a path).
fn script_invocations(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in script.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for part in line.split("$B ").skip(1) {
            let end = [" 2>", " >", "|", ";", ")"].iter().filter_map(|s| part.find(s)).min();
            let words = part[..end.unwrap_or(part.len())].trim();
            let words = words.replace("$R", "results").replace("$w", "v").replace("$name", "v");
            out.push(format!("batchscope {words}"));
        }
    }
    out
}

/// The next device session has minutes, not hours: every command line of the prepared device
/// scripts (benches/device_plan.sh, benches/device_followup.sh) parses, and its `--set`
/// overrides make a valid config, here and now rather than on the lent GPU.
#[test]
fn every_device_script_command_line_parses() {
    let mut failures = Vec::new();
    let mut count = 0;
    for name in ["device_plan.sh", "device_followup.sh"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join(name);
        let text = std::fs::read_to_string(&p).expect("read the device script");
        for line in script_invocations(&text) {
            count += 1;
            let words = shell_words(&line);
            if let Err(e) = cli::Cli::try_parse_from(&words) {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                failures.push(format!("{name}: {line}\n    {first}"));
                continue;
            }
            let sets: Vec<String> =
                words.windows(2).filter(|w| w[0] == "--set").map(|w| w[1].clone()).collect();
            if let Err(e) = batchscope::config::Config::load(None, &sets) {
                failures.push(format!("{name}: {line}\n    {e}"));
            }
        }
    }
    assert!(count >= 25, "only {count} command lines found in the device scripts");
    assert!(failures.is_empty(), "device script lines refused:\n{}", failures.join("\n"));
}

#[test]
fn script_invocations_cut_redirections_and_replace_variables() {
    let text = "t x; timeout 9 $B sweep --set 'model.hidden=[8, 8]' --out $R/s_$w 2>&1 | tail -3\n\
                # $B not a command\n(cd $W && $B tune --batch-sizes 1)";
    assert_eq!(
        script_invocations(text),
        [
            "batchscope sweep --set 'model.hidden=[8, 8]' --out results/s_v",
            "batchscope tune --batch-sizes 1"
        ]
    );
}

//! Plain words for errors the TOML parser and serde word in their own terms: a parse error
//! named by the key on its line ("duplicate key" said which), and two type errors: a section written as an array
//! of tables (`[[train]]` read as a tuple of `[train]`'s fields, so the error named the first
//! field's type) and a setting of fixed words given a number, bool or list ("invalid type: unit
//! variant, expected string only").

use serde::de::DeserializeOwned;

use super::ConfigError;

/// A sentinel no enum has as a variant: the "unknown variant" error it draws lists the variants.
const PROBE: &str = "\u{1}batchscope-probe";

/// The first array in `given` (at any depth) that stands where `T` wants a table, and what to
/// say of it. serde reads an array as a table's fields in order: `[[train]]` drew an error about
/// the batch size, and `train = []` or `gpu = ["on"]` were taken without a word. A key wants a
/// table where an integer in the array's place draws serde's "expected struct".
pub fn array_for_table<T: DeserializeOwned>(given: &toml::Table) -> Option<(Vec<String>, String)> {
    let mut arrays = Vec::new();
    arrays_in(given, &mut Vec::new(), &mut arrays);
    arrays.into_iter().find_map(|keys| {
        let mut probe = given.clone();
        *lookup_mut(&mut probe, &keys)? = toml::Value::Integer(0);
        let err = T::deserialize(toml::Value::Table(probe)).err()?;
        if !(err.message().contains(", expected struct ") && error_at(&err, &keys)) {
            return None;
        }
        let name = keys.join(".");
        let tables =
            lookup(given, &keys)?.as_array().is_some_and(|a| a.iter().any(toml::Value::is_table));
        let message = if tables {
            format!("is one table, [{name}]; the file writes [[{name}]], an array of tables")
        } else {
            format!("must be a table ([{name}]), got array")
        };
        Some((keys, message))
    })
}

fn arrays_in(table: &toml::Table, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for (key, value) in table {
        path.push(key.clone());
        match value {
            toml::Value::Table(t) => arrays_in(t, path, out),
            toml::Value::Array(_) => out.push(path.clone()),
            _ => {}
        }
        path.pop();
    }
}

/// For an error at `keys` where a table was due and a plain value was given: "must be a table
/// ([gpu]), got integer" (serde said "invalid type: integer `3`, expected struct GpuConfig").
pub fn value_for_table(given: &toml::Table, keys: &[String], message: &str) -> Option<String> {
    let value = lookup(given, keys)?;
    (message.contains(", expected struct ") && !value.is_table())
        .then(|| format!("must be a table ([{}]), got {}", keys.join("."), value.type_str()))
}

/// The commands whose config is an MLP's ([`super::Config`]).
const MLP_COMMANDS: &str = "the MLP commands (`train`, `sweep`, `compare`, `profile`, `noise`, `curvature`, `time-to-target`, `tune`, `depth`, `landscape`)";

/// The commands that read a section (a `[landscape]` in a `train` config was "unknown field
/// `landscape`", as if it were a misspelt key).
const SECTION_OWNERS: [(&str, &str); 11] = [
    ("model", MLP_COMMANDS),
    ("data", MLP_COMMANDS),
    ("sweep", MLP_COMMANDS),
    ("monitor", MLP_COMMANDS),
    ("gpu", MLP_COMMANDS),
    ("landscape", "`batchscope landscape`"),
    ("rnn", "`batchscope rnn` (and `landscape` of an RNN)"),
    ("sequence", "`batchscope rnn` (and `landscape` of an RNN)"),
    ("diagnostics", "`batchscope rnn`"),
    ("depth", "`batchscope depth`"),
    ("variant", "`batchscope rnn` and `batchscope depth`"),
];

/// For "unknown field `x`" at the top of a config, where `x` is a section another command
/// reads: which command that is, and the sections this one takes.
pub fn foreign_section(given: &toml::Table, keys: &[String], message: &str) -> Option<String> {
    let [key] = keys else { return None };
    let expected = message.strip_prefix(&format!("unknown field `{key}`, expected "))?;
    let value = given.get(key)?;
    let is_section =
        value.is_table() || value.as_array().is_some_and(|a| a.iter().all(|v| v.is_table()));
    let (_, owner) = SECTION_OWNERS.iter().find(|(name, _)| name == key).filter(|_| is_section)?;
    let brackets = if value.is_array() { format!("[[{key}]]") } else { format!("[{key}]") };
    Some(format!(
        "a {brackets} section is read by {owner}, not by this command (its sections: {})",
        expected.replace("one of ", "")
    ))
}

/// For serde's "unknown field `trian`, expected one of `model`, `data`, `train`, …" (a section
/// or a key): the expected name closest to the unknown one, where one is close ("unknown field
/// `trian` (did you mean `train`?), expected one of …").
pub fn unknown_field_meant(message: &str) -> Option<String> {
    let (field, expected) = message.strip_prefix("unknown field `")?.split_once("`, expected ")?;
    // serde writes "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, `c`".
    let names = expected.strip_prefix("one of ").unwrap_or(expected);
    let names = names.split(", ").flat_map(|n| n.split(" or ")).map(|n| n.trim_matches('`'));
    let meant = crate::suggest::closest(field, names)?;
    Some(format!("unknown field `{field}` (did you mean `{meant}`?), expected {expected}"))
}

/// Whether serde's error is at the dotted key `keys` (its display ends "in `a.b`").
fn error_at(err: &toml::de::Error, keys: &[String]) -> bool {
    err.to_string().lines().any(|l| l == format!("in `{}`", keys.join(".")))
}

/// For an error at `keys` (below `given`) about a setting of fixed words given something that
/// is not a string: "expected one of `a`, `b`, got 3", the words found by deserializing again
/// with a probe string in the value's place.
pub fn enum_words<T: DeserializeOwned>(
    given: &toml::Table,
    keys: &[String],
    message: &str,
) -> Option<String> {
    let value = lookup(given, keys)?;
    let unit_variant = message.contains("unit variant, expected string only");
    let not_a_word = message.starts_with("unknown variant") && !value.is_str();
    if !(unit_variant || not_a_word) {
        return None;
    }
    let mut probe = given.clone();
    *lookup_mut(&mut probe, keys)? = toml::Value::String(PROBE.into());
    let err = T::deserialize(toml::Value::Table(probe)).err()?;
    let words = err.message().strip_prefix(&format!("unknown variant `{PROBE}`, "))?;
    Some(format!("{words}, got {value}"))
}

fn lookup<'a>(table: &'a toml::Table, keys: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = keys.split_last()?;
    let mut t = table;
    for k in parents {
        t = t.get(k)?.as_table()?;
    }
    t.get(last)
}

fn lookup_mut<'a>(table: &'a mut toml::Table, keys: &[String]) -> Option<&'a mut toml::Value> {
    let (last, parents) = keys.split_last()?;
    let mut t = table;
    for k in parents {
        t = t.get_mut(k)?.as_table_mut()?;
    }
    t.get_mut(last)
}

/// A TOML parse error's message with the dotted key of the line it points at, where it has one:
/// "`train.batch_size` is given twice" (it read "duplicate key"), "`train.seed`: ... is past the
/// largest integer TOML holds" (it read "invalid type: integer `...` as i128, expected any valid
/// TOML value").
pub fn parse_message(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(key) = span.and_then(|r| key_at(text, r.start)) else { return message.to_string() };
    if message == "duplicate key" {
        return format!("`{key}` is given twice");
    }
    if message.starts_with("invalid type: integer") && message.contains("as i128") {
        return format!("`{key}`: the integer is past the largest TOML holds (2^63 - 1 = {})", i64::MAX);
    }
    if message == "floating-point number overflowed" {
        return format!("`{key}`: the number is past the largest TOML holds (f64, {:e})", f64::MAX);
    }
    format!("`{key}`: {message}")
}

/// The dotted key written on the line of byte `at`: a `[section]` header's name, or the
/// `key = ...` of the line under the nearest header above it.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?.trim();
    let header = |l: &str| {
        let name = l.strip_prefix('[')?.split(']').next()?.trim_start_matches('[').trim();
        (!name.is_empty()).then(|| name.to_string())
    };
    if line.starts_with('[') {
        return header(line);
    }
    let key = line.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    let section =
        text[..start].lines().rev().map(str::trim).find(|l| l.starts_with('[')).and_then(header);
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

/// For a string where a number was due that reads as one in other spellings (`NaN`, `.1`, `1.`,
/// `Infinity`; a `--set` value that is no TOML falls back to a string): how TOML writes it.
pub fn number_spelling(message: &str) -> Option<String> {
    let rest = message.strip_prefix("invalid type: string \"")?;
    let (given, want) = rest.split_once("\", expected ")?;
    let numeric = ["f32", "f64", "u32", "u64", "usize", "i64", "a positive integer"];
    if !numeric.iter().any(|n| want.starts_with(n)) || given.trim().parse::<f64>().is_err() {
        return None;
    }
    Some(format!(
        "expected {want}, got \"{given}\", which is no TOML number (TOML writes 0.1, 1.0, 1e-3, nan, inf)"
    ))
}

/// A validation error about a float key whose value as written is not the f32 it became: the
/// value as written and what it rounds to ("must be in [0, 1), got 1" for 0.99999999, "must be
/// a positive number, got 0" for 1e-50).
pub fn rounding_note(e: ConfigError, given: &toml::Table) -> ConfigError {
    let ConfigError::Invalid { origin, key, mut message } = e else { return e };
    let keys: Vec<String> = key.split('.').map(str::to_string).collect();
    if let Some(toml::Value::Float(x)) = lookup(given, &keys) {
        let narrowed = *x as f32;
        if x.is_finite() && f64::from(narrowed) != *x && !message.contains("as written") {
            let written = match x.abs() {
                a if a != 0.0 && !(1e-4..1e16).contains(&a) => format!("{x:e}"),
                _ => format!("{x}"),
            };
            message
                .push_str(&format!(" ({written} as written, which an f32 setting holds as {narrowed})"));
        }
    }
    ConfigError::Invalid { origin, key, message }
}

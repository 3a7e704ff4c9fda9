//! The one config loader: read a file (or an embedded default) into a `toml::Table` (parse
//! errors carry the line), apply `--set section.key=value` overrides, split off sections and
//! `[[variant]]` tables, and deserialize typed sections straight from the table (unknown keys
//! are rejected by the target types).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{source_map, type_hints, ConfigError};

/// A TOML file (or embedded default) with `--set` overrides applied, and its name for errors.
#[derive(Clone, Debug)]
pub struct ConfigText {
    pub table: toml::Table,
    pub origin: String,
    /// Whether the file wrote `[[variant]]` tables (known once [`ConfigText::variants`] took them).
    has_variants: bool,
}

/// The largest config file read (a TOML config is kilobytes; a device or a huge file is refused).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

impl ConfigText {
    /// Read `path` (or `default_toml`, named `"{default_origin} (embedded)"`) and apply
    /// `overrides`.
    pub fn load(
        path: Option<&Path>,
        default_toml: &str,
        default_origin: &str,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                crate::bounded_read::read_to_string(p, MAX_CONFIG_BYTES)
                    .map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?,
                p.display().to_string(),
            ),
            None => (default_toml.to_string(), format!("{default_origin} (embedded)")),
        };
        let mut table = parse_text(&text, &origin)?;
        for arg in overrides {
            apply_override(&mut table, arg)?;
            if let Some((key, _)) = arg.split_once('=') {
                source_map::overridden(&origin, key);
            }
        }
        Ok(ConfigText { table, origin, has_variants: false })
    }

    /// Remove and return section `name`.
    pub fn take(&mut self, name: &str) -> Option<toml::Value> {
        self.table.remove(name)
    }

    /// Remove section `[name]` and deserialize it; its defaults when the file has none.
    pub fn take_section<T: DeserializeOwned + Serialize + Default>(
        &mut self,
        name: &str,
    ) -> Result<T, ConfigError> {
        match self.take(name) {
            Some(toml::Value::Table(t)) => deserialize_at(t, &self.origin, name),
            Some(_) => Err(self.invalid(name, format!("must be a table ([{name}])"))),
            None => Ok(T::default()),
        }
    }

    /// The `[[variant]]` tables, removed from the file: each variant's name and the file with its
    /// overrides applied. No variants: one run named `default_name`.
    pub fn variants(&mut self, default_name: &str) -> Result<Vec<(String, toml::Table)>, ConfigError> {
        let list = match self.take("variant") {
            None => return Ok(vec![(default_name.to_string(), self.table.clone())]),
            Some(v) => v,
        };
        self.has_variants = true;
        let variants: Vec<Variant> =
            list.try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
                origin: self.origin.clone(),
                message: match e.message() {
                    // `set = "rnn.w_scale=0.9"`: said which key, and what it takes.
                    m if m.contains("expected a sequence") && m.contains("string") => format!(
                        "[[variant]]: `set` is a list of \"section.key=value\" strings, e.g. set = [\"rnn.w_scale=0.9\"] ({m})"
                    ),
                    m => format!("[[variant]]: {m}"),
                },
            })?;
        if variants.is_empty() {
            return Err(
                self.invalid("variant", "needs at least one [[variant]] table, or none at all".into())
            );
        }
        let mut out = Vec::new();
        // How many variants replace each `--set` key (one that all replace has no effect).
        let mut replaced: Vec<(String, Vec<String>)> = Vec::new();
        let mut warnings = Vec::new();
        let runs = variants.len();
        for v in variants {
            let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
            if !v.name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !v.name.chars().all(ok_char) {
                return Err(self.invalid(
                    "variant.name",
                    format!("`{}` must start with a letter or digit and hold only letters, digits, `_`, `-`, `.` (it names a directory)", v.name),
                ));
            }
            // A variant's directory sits beside the run's own files (summary.json, loss.svg,
            // variants.csv, ...): a name with one of their extensions could take one's place.
            if let Some(ext) =
                OUTPUT_EXTENSIONS.iter().find(|e| v.name.to_ascii_lowercase().ends_with(*e))
            {
                return Err(self.invalid(
                    "variant.name",
                    format!("`{}` ends in `{ext}`, the name of the run's own output files", v.name),
                ));
            }
            if out.iter().any(|(n, _): &(String, toml::Table)| *n == v.name) {
                return Err(self.invalid("variant.name", format!("`{}` is used twice", v.name)));
            }
            let mut t = self.table.clone();
            for arg in &v.set {
                apply_override(&mut t, arg).map_err(|e| match e {
                    ConfigError::Override { arg, message } => self.invalid(
                        "variant.set",
                        format!("of [[variant]] `{}`: entry \"{arg}\": {message}", v.name),
                    ),
                    other => other,
                })?;
                // The variant's value wins in its run: say so where it replaces a --set.
                if let Some((key, _)) = arg.split_once('=') {
                    let keys: Vec<String> = key.trim().split('.').map(str::to_string).collect();
                    source_map::variant_set(&format!("{} [[variant]] {}", self.origin, v.name), key);
                    if source_map::is_overridden(&self.origin, &keys) {
                        match replaced.iter_mut().find(|(k, _)| k == key.trim()) {
                            Some((_, names)) if names.contains(&v.name) => {}
                            Some((_, names)) => names.push(v.name.clone()),
                            None => replaced.push((key.trim().to_string(), vec![v.name.clone()])),
                        }
                        warnings.push(format!(
                            "[[variant]] `{}` sets {}, which replaces --set {} in its run",
                            v.name,
                            key.trim(),
                            key.trim()
                        ));
                    }
                }
            }
            out.push((v.name, t));
        }
        // Every run replaces it: the --set changes nothing but the run's top config.toml, where
        // it was never checked (a `--set rnn.w_scale=nan` was written there as given).
        if let Some((key, _)) = replaced.iter().find(|(_, names)| names.len() == runs) {
            return Err(ConfigError::Override {
                arg: key.clone(),
                message: format!(
                    "every [[variant]] of {} sets {key} in its `set` list, so this --set changes no run; give it in the variants, or leave it out",
                    self.origin
                ),
            });
        }
        for w in warnings {
            log::warn!("{w}");
        }
        Ok(out)
    }

    /// What the errors of variant `name` (of [`ConfigText::variants`]) call its config: the file
    /// and the variant, or the file alone where it has no `[[variant]]` (its one run's name is
    /// made up, and named a table the file does not have).
    pub fn variant_origin(&self, name: &str) -> String {
        match self.has_variants {
            true => format!("{} [[variant]] {name}", self.origin),
            false => self.origin.clone(),
        }
    }

    pub fn invalid(&self, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid { origin: self.origin.clone(), key: key.to_string(), message }
    }
}

/// Extensions of the files a run writes beside its variants' directories.
const OUTPUT_EXTENSIONS: [&str; 8] =
    [".json", ".jsonl", ".csv", ".svg", ".toml", ".safetensors", ".npy", ".lock"];

/// One run of an experiment with overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub set: Vec<String>,
}

/// Parse TOML text into a table; a syntax error names the line.
pub fn parse_text(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    source_map::remember(origin, text);
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: type_hints::parse_message(text, e.message(), e.span()) + &span_note(text, e.span()),
    })
}

/// Deserialize a table into a typed config (unknown keys are rejected by the target type).
/// A wrong type or an unknown key names its dotted key and, where the key is written in the
/// file (not set by `--set`), its line.
pub fn deserialize<T: DeserializeOwned + Serialize>(
    table: toml::Table,
    origin: &str,
) -> Result<T, ConfigError> {
    deserialize_at(table, origin, "")
}

/// [`deserialize`] of section `section` of the file (`""`: the whole file), so that errors
/// name `section.key` and find its line or its `--set`.
fn deserialize_at<T: DeserializeOwned + Serialize>(
    table: toml::Table,
    origin: &str,
    section: &str,
) -> Result<T, ConfigError> {
    let typed = deserialize_unchecked::<T>(table.clone(), origin, section)?;
    // serde narrows a TOML float to an f32 field with `as`: 3.5e38 became inf, which the range
    // checks then reported as "got inf". Said here by key, with the number as given.
    if let Ok(toml::Value::Table(narrowed)) = toml::Value::try_from(&typed) {
        let mut path: Vec<String> = section_path(section);
        if let Some((keys, value)) = overflowed_f32(&table, &narrowed, &mut path) {
            // Named by its line, or by the --set that gave it (it was blamed on the file).
            let message =
                format!("{value:e} is past the largest value an f32 setting holds ({:e})", f32::MAX);
            return Err(located(origin, "", keys, message));
        }
    }
    Ok(typed)
}

/// The first float of `given` (by key path) that is finite there and infinite in `narrowed`
/// (the same table after a round trip through the typed config): a value an f32 cannot hold.
fn overflowed_f32(
    given: &toml::Table,
    narrowed: &toml::Table,
    path: &mut Vec<String>,
) -> Option<(Vec<String>, f64)> {
    for (key, value) in given {
        let Some(after) = narrowed.get(key) else { continue };
        path.push(key.clone());
        let found = match (value, after) {
            (toml::Value::Float(x), toml::Value::Float(y)) if x.is_finite() && y.is_infinite() => {
                Some((path.clone(), *x))
            }
            (toml::Value::Table(a), toml::Value::Table(b)) => overflowed_f32(a, b, path),
            _ => None,
        };
        path.pop();
        if found.is_some() {
            return found;
        }
    }
    None
}

/// `"landscape"` → `["landscape"]`, `""` → `[]`.
fn section_path(section: &str) -> Vec<String> {
    section.split('.').filter(|k| !k.is_empty()).map(str::to_string).collect()
}

fn deserialize_unchecked<T: DeserializeOwned>(
    table: toml::Table,
    origin: &str,
    section: &str,
) -> Result<T, ConfigError> {
    if let Some((keys, message)) = type_hints::array_for_table::<T>(&table) {
        return Err(located(origin, section, keys, message));
    }
    T::deserialize(toml::Value::Table(table.clone())).map_err(|e: toml::de::Error| {
        let keys = error_keys(&e);
        let message = type_hints::value_for_table(&table, &keys, e.message())
            .or_else(|| type_hints::foreign_section(&table, &keys, e.message()))
            .or_else(|| type_hints::unknown_field_meant(e.message()))
            .or_else(|| type_hints::enum_words::<T>(&table, &keys, e.message()))
            .or_else(|| type_hints::number_spelling(e.message()))
            .unwrap_or_else(|| e.message().to_string());
        located(origin, section, keys, message)
    })
}

/// A config error at `section.keys`, named by its dotted key and by its line in the file or
/// the `--set` that gave it.
fn located(origin: &str, section: &str, local: Vec<String>, mut message: String) -> ConfigError {
    let mut keys = section_path(section);
    keys.extend(local);
    if !keys.is_empty() {
        message = format!("`{}`: {message}", keys.join("."));
    }
    let mut origin = origin;
    if source_map::is_variant_set(origin, &keys) {
        message.push_str(" (given by its `set` list)");
    } else if let Some(line) = source_map::locate(origin, &keys) {
        message.push_str(&format!(" (line {line})"));
    } else if let Some(set) = source_map::given_by_set(origin, &keys) {
        message.push_str(&format!(" (given by --set {set})"));
        // The command line gave it, not a `[[variant]]` of the file: name the file only.
        origin = origin.split(" [[variant]] ").next().unwrap_or(origin);
    }
    ConfigError::Parse { origin: origin.to_string(), message }
}

/// The dotted key an error is about: the path the deserializer was in (its display ends with
/// "in `a.b`"), plus the field an "unknown field `x`" error names.
fn error_keys(e: &toml::de::Error) -> Vec<String> {
    let shown = e.to_string();
    let mut keys: Vec<String> = shown
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')))
        .map(|k| k.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(field) = e.message().strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        keys.push(field.to_string());
    }
    keys
}

fn span_note(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// Apply `section.key=value` to a TOML table; the value is parsed as TOML (falling back to a
/// bare string), so `--set train.lr=0.1`, `--set model.hidden=[64,64]`, `--set data.kind=teacher`.
pub fn apply_override(doc: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err =
        |message: &str| ConfigError::Override { arg: arg.to_string(), message: message.to_string() };
    let (key, raw) = arg.split_once('=').ok_or_else(|| err("expected section.key=value"))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(err("the key must be section.key, e.g. train.lr"));
    }
    let raw = raw.trim();
    if is_integer_past_toml(raw) {
        return Err(err(&format!(
            "{raw} is past the largest integer TOML holds (2^63 - 1 = {})",
            i64::MAX
        )));
    }
    if is_float_past_toml(raw) {
        return Err(err(&format!("{raw} is past the largest number TOML holds (f64, {:e})", f64::MAX)));
    }
    let value = parse_value(raw).map_err(|m| err(&m))?;
    let section =
        doc.entry(parts[0].to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match section {
        toml::Value::Table(t) => {
            t.insert(parts[1].to_string(), value);
            Ok(())
        }
        _ => Err(err("that section is not a table")),
    }
}

/// Two `--set`s of one key with different values (the last won without a word), said as the
/// error; `None` where every key is set once, or again to the same value as the loader reads it
/// (`kind=teacher` and `kind="teacher"` agree). A `--set` that does not parse is left to the loader.
pub fn conflicting_sets(sets: &[String]) -> Option<String> {
    let parsed: Vec<(String, String, toml::Table)> = sets
        .iter()
        .filter_map(|arg| {
            let (key, value) = arg.split_once('=')?;
            let mut table = toml::Table::new();
            apply_override(&mut table, arg).ok()?;
            Some((key.trim().to_string(), value.trim().to_string(), table))
        })
        .collect();
    parsed.iter().enumerate().find_map(|(i, (key, value, table))| {
        let (_, other, _) = parsed[i + 1..].iter().find(|(k, _, t)| k == key && t != table)?;
        Some(format!("--set {key}={value} and --set {key}={other} both set {key}: give one"))
    })
}

/// Whether `raw` is a decimal integer that TOML's 64-bit signed integers cannot hold (it would
/// fall back to a string, and the key's error would say "invalid type: string").
fn is_integer_past_toml(raw: &str) -> bool {
    let digits = raw.strip_prefix(['-', '+']).unwrap_or(raw).replace('_', "");
    !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && raw.replace('_', "").parse::<i64>().is_err()
}

/// Whether `raw` is a number past f64's range (`1e400`): TOML refuses it, and it would fall
/// back to a string as an integer past i64 would ([`is_integer_past_toml`]). `inf` is TOML.
fn is_float_past_toml(raw: &str) -> bool {
    // Rust's parser reads `inf`, `Infinity` and `infinity` as infinite: no digits, no number.
    raw.bytes().any(|c| c.is_ascii_digit())
        && raw.replace('_', "").parse::<f64>().is_ok_and(f64::is_infinite)
}

/// `raw` as a TOML value, or as a bare string where it is none. `Err` where it is a value and
/// more: a line break then another `key = value` (which would be dropped without a word).
fn parse_value(raw: &str) -> Result<toml::Value, String> {
    let probe = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(t) if t.len() > 1 => Err(
            "the value holds more than one key = value (a line break in it?); give each with its own --set".into(),
        ),
        Ok(mut t) => Ok(t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string()))),
        // A list, table or quoted string that does not parse is no bare word: said as such
        // (`[18446744073709551616]` read as the string "[1844...]", "expected a sequence").
        Err(e) if raw.starts_with(['[', '{', '"', '\'']) => Err(match e.message() {
            m if m.contains("as i128") => {
                format!("an integer in the value is past the largest TOML holds (2^63 - 1 = {})", i64::MAX)
            }
            m => format!("the value does not parse as TOML: {m}"),
        }),
        Err(_) => Ok(toml::Value::String(raw.to_string())),
    }
}

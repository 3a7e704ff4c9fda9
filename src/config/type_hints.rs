//! Plain words for two type errors serde words in its own terms: a section written as an array
//! of tables (`[[train]]` read as a tuple of `[train]`'s fields, so the error named the first
//! field's type) and a setting of fixed words given a number, bool or list ("invalid type: unit
//! variant, expected string only").

use serde::de::DeserializeOwned;

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

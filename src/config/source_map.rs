//! Where a key stands in the config text it came from, so that errors found after parsing
//! (a wrong type, an unknown key) name a line as syntax errors do. [`super::loader::parse_text`]
//! remembers each text it parses, by origin, on the parsing thread (a load parses and then
//! deserializes on one thread); [`locate`] finds the line of a dotted key in it.

use std::cell::RefCell;
use std::rc::Rc;

/// How many recent texts a thread keeps (a command loads one or two).
const KEEP: usize = 8;

thread_local! {
    static SOURCES: RefCell<Vec<(String, Rc<str>)>> = const { RefCell::new(Vec::new()) };
    /// `(origin, "section.key")` set by `--set`: their values are not in the text.
    static OVERRIDDEN: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    /// `("{file} [[variant]] {name}", "section.key")` set by a variant's `set` list: their
    /// values are not on the file's `key = ...` line either.
    static VARIANT_SET: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Remember that variant origin `origin`'s `set` list gave `key` (`section.key`) its value.
pub(super) fn variant_set(origin: &str, key: &str) {
    VARIANT_SET.with(|o| o.borrow_mut().push((origin.to_string(), key.trim().to_string())));
}

/// Whether a `[[variant]]`'s `set` list gave `keys` of variant origin `origin` its value.
pub fn is_variant_set(origin: &str, keys: &[String]) -> bool {
    let dotted = keys.iter().take(2).cloned().collect::<Vec<_>>().join(".");
    VARIANT_SET.with(|o| o.borrow().iter().any(|(o, k)| o == origin && *k == dotted))
}

/// Remember `text` as the source of `origin` on this thread.
pub(super) fn remember(origin: &str, text: &str) {
    SOURCES.with(|s| {
        let mut s = s.borrow_mut();
        s.retain(|(o, _)| o != origin);
        if s.len() == KEEP {
            s.remove(0);
        }
        s.push((origin.to_string(), Rc::from(text)));
    });
    OVERRIDDEN.with(|o| o.borrow_mut().retain(|(o, _)| o != origin));
}

/// Remember that `--set` gave `key` (`section.key`) of `origin` its value.
pub(super) fn overridden(origin: &str, key: &str) {
    OVERRIDDEN.with(|o| o.borrow_mut().push((origin.to_string(), key.trim().to_string())));
}

/// The text remembered for `origin`, or for the file a `"{file} [[variant]] {name}"` origin
/// names.
fn source_of(origin: &str) -> Option<Rc<str>> {
    let file = origin.split(" [[variant]] ").next().unwrap_or(origin);
    SOURCES.with(|s| s.borrow().iter().rev().find(|(o, _)| o == file).map(|(_, t)| t.clone()))
}

/// Whether `--set` gave `keys` (`["train", "lr"]`) of `origin` its value.
pub fn is_overridden(origin: &str, keys: &[String]) -> bool {
    let file = origin.split(" [[variant]] ").next().unwrap_or(origin);
    let dotted = keys.iter().take(2).cloned().collect::<Vec<_>>().join(".");
    OVERRIDDEN.with(|o| o.borrow().iter().any(|(o, k)| o == file && *k == dotted))
}

/// The `section.key` of the `--set` that gave `keys` of `origin`: `keys` itself (`["train",
/// "lr"]`), or for a section alone (`["trian"]`, an unknown section) the first `--set` into it.
pub fn given_by_set(origin: &str, keys: &[String]) -> Option<String> {
    if is_overridden(origin, keys) {
        return Some(keys.iter().take(2).cloned().collect::<Vec<_>>().join("."));
    }
    let [section] = keys else { return None };
    let file = origin.split(" [[variant]] ").next().unwrap_or(origin);
    let in_section = |k: &String| k.split_once('.').is_some_and(|(s, _)| s == section);
    OVERRIDDEN
        .with(|o| o.borrow().iter().find(|(o, k)| o == file && in_section(k)).map(|(_, k)| k.clone()))
}

/// 1-based line of `keys` (`["train", "lr"]`, or `["train"]` for a section) in the text of
/// `origin`; `None` when the text is not known or the key is not written in it (a `--set`
/// override or a default).
pub fn locate(origin: &str, keys: &[String]) -> Option<usize> {
    if is_overridden(origin, keys) || is_variant_set(origin, keys) {
        return None;
    }
    let text = source_of(origin)?;
    line_of(&text, keys)
}

/// 1-based line of `keys` in TOML `text`: `[section]` then `key = …` inside it, a dotted
/// `section.key = …` at the top, or the `[section]` header itself for a one-key path.
pub fn line_of(text: &str, keys: &[String]) -> Option<usize> {
    let (section, key) = match keys {
        [] => return None,
        [s] => (s.as_str(), None),
        [s, k, ..] => (s.as_str(), Some(k.as_str())),
    };
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim_start_matches('[').trim().to_string();
            if key.is_none() && current == section {
                return Some(i + 1);
            }
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else { continue };
        let lhs: String = lhs.chars().filter(|c| !c.is_whitespace() && *c != '"').collect();
        let full = if current.is_empty() { lhs } else { format!("{current}.{lhs}") };
        let wanted = match key {
            Some(k) => format!("{section}.{k}"),
            None => section.to_string(),
        };
        if full == wanted || (key.is_none() && full.starts_with(&format!("{section}."))) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_keys_in_sections_dotted_keys_and_headers() {
        let text = "# c\n[model]\nhidden = [4]\n\n[train]\nlr = 0.1\n steps = 5\nsweep.min_batch = 2\n";
        assert_eq!(line_of(text, &keys(&["train", "lr"])), Some(6));
        assert_eq!(line_of(text, &keys(&["train", "steps"])), Some(7));
        assert_eq!(line_of(text, &keys(&["model"])), Some(2));
        assert_eq!(line_of(text, &keys(&["train", "sweep"])), None);
        assert_eq!(line_of(text, &keys(&["data", "dim"])), None);
        let dotted = "train.lr = \"x\"\n";
        assert_eq!(line_of(dotted, &keys(&["train", "lr"])), Some(1));
    }

    #[test]
    fn remembers_by_origin_and_variant_origins_use_their_file() {
        remember("a.toml", "[train]\nlr = 1\n");
        assert_eq!(locate("a.toml", &keys(&["train", "lr"])), Some(2));
        assert_eq!(locate("a.toml [[variant]] fast", &keys(&["train", "lr"])), Some(2));
        assert_eq!(locate("b.toml", &keys(&["train", "lr"])), None);
        overridden("a.toml", "train.lr");
        assert_eq!(locate("a.toml", &keys(&["train", "lr"])), None);
    }
}

//! The `.npy` preamble read and checked before `npyz` sees it.
//!
//! Layout: magic `\x93NUMPY`, version `[major, minor]`, header length (u16 for 1.0, u32 for 2.0
//! and 3.0, little-endian), then the header text, a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }`.
//!
//! Two things are checked against the file itself, so that nothing a header merely declares is
//! trusted: the header length must fit in the file before the header is read (no allocation of
//! a declared size), and the declared shape's element count must fit in 64 bits (`npyz`
//! multiplies the dimensions unchecked: it wraps in release builds and panics with overflow
//! checks on).

use std::io::{self, Read};
use std::path::Path;

use super::DataError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The preamble and header text of a `.npy` file (everything before the data), read from `r`
/// (positioned at the start of a file of `file_len` bytes). Its length is where the data starts.
pub(super) fn read_preamble(
    r: &mut impl Read,
    path: &Path,
    file_len: u64,
) -> Result<Vec<u8>, DataError> {
    let format = |message: String| DataError::Format { path: path.to_path_buf(), message };
    let truncated = |expected: Option<u64>| DataError::Truncated {
        path: path.to_path_buf(),
        what: "the header".into(),
        expected,
        found: file_len,
    };
    let mut lead = [0u8; 8];
    if file_len < lead.len() as u64 {
        return Err(format("magic not found for NPY file".into()));
    }
    read_exact(r, &mut lead, path, file_len)?;
    if &lead[..6] != MAGIC {
        return Err(format("magic not found for NPY file".into()));
    }
    let width: usize = match (lead[6], lead[7]) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        (major, minor) => {
            return Err(format(format!("unsupported .npy format version {major}.{minor}")))
        }
    };
    let mut len_bytes = [0u8; 4];
    if file_len < (lead.len() + width) as u64 {
        return Err(truncated(None));
    }
    read_exact(r, &mut len_bytes[..width], path, file_len)?;
    let header_len = u32::from_le_bytes(len_bytes) as u64;
    let total = (lead.len() + width) as u64 + header_len;
    if total > file_len {
        return Err(truncated(Some(total)));
    }
    // `total ≤ file_len`: the allocation is bounded by what the file holds.
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&lead);
    out.extend_from_slice(&len_bytes[..width]);
    out.resize(total as usize, 0);
    read_exact(r, &mut out[lead.len() + width..], path, file_len)?;
    let text = &out[lead.len() + width..];
    let depth = nesting_depth(text);
    if depth > MAX_NESTING {
        // npyz's parser of the Python literal takes time exponential in the nesting (20 levels
        // of `[` in a 150-byte header: 13 s; 24: over a minute).
        return Err(format(format!(
            "the header nests brackets {depth} deep (at most {MAX_NESTING}; an array's header \
             nests 2, a structured dtype's 4)"
        )));
    }
    if let Some(key) = repeated_key(text) {
        // The checks here read the first, the full parser keeps the last: one of each.
        return Err(format(format!("the header names '{key}' more than once")));
    }
    if let Some(shape) = scan_shape(text).map_err(format)? {
        element_count(path, &shape)?;
    }
    Ok(out)
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], path: &Path, file_len: u64) -> Result<(), DataError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => DataError::Truncated {
            path: path.to_path_buf(),
            what: "the header".into(),
            expected: None,
            found: file_len,
        },
        _ => DataError::Io { path: path.to_path_buf(), source: e },
    })
}

/// Elements of `shape` (the product of its dimensions), or an error when the product of its
/// non-zero dimensions exceeds `u64` — then some partial product (strides, the byte count)
/// would overflow even when a zero dimension makes the total 0.
pub(super) fn element_count(path: &Path, shape: &[u64]) -> Result<u64, DataError> {
    let nonzero = shape.iter().filter(|&&d| d != 0).try_fold(1u64, |a, &d| a.checked_mul(d));
    match nonzero {
        Some(_) if shape.contains(&0) => Ok(0),
        Some(n) => Ok(n),
        None => Err(DataError::Format {
            path: path.to_path_buf(),
            message: format!("shape {shape:?} declares more elements than a 64-bit count can hold"),
        }),
    }
}

/// The `shape` entry of a header text: `Ok(None)` when there is no `'shape'` key (the full
/// parser reports that), otherwise the dimensions of its tuple or list of decimal integers.
pub(super) fn scan_shape(text: &[u8]) -> Result<Option<Vec<u64>>, String> {
    let Some(at) = find_key(text, b"shape") else {
        return Ok(None);
    };
    let bad = || "'shape' must be a tuple of non-negative decimal integers".to_string();
    let mut i = skip_ws(text, at);
    if text.get(i) != Some(&b':') {
        return Err(bad());
    }
    i = skip_ws(text, i + 1);
    let close = match text.get(i) {
        Some(b'(') => b')',
        Some(b'[') => b']',
        _ => return Err(bad()),
    };
    i += 1;
    let mut dims = Vec::new();
    loop {
        i = skip_ws(text, i);
        match text.get(i) {
            Some(&c) if c == close => return Ok(Some(dims)),
            Some(c) if c.is_ascii_digit() => {
                let mut v: u64 = 0;
                while let Some(d) = text.get(i).filter(|c| c.is_ascii_digit()) {
                    v = v
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(d - b'0')))
                        .ok_or_else(|| "a dimension in 'shape' does not fit in 64 bits".to_string())?;
                    i += 1;
                }
                dims.push(v);
                i = skip_ws(text, i);
                match text.get(i) {
                    Some(b',') => i += 1,
                    Some(&c) if c == close => return Ok(Some(dims)),
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        }
    }
}

/// The deepest nesting of brackets a header may have: the dict and the shape tuple nest 2, a
/// structured dtype's list of fields with a subarray shape 4, one nested structured field 6.
const MAX_NESTING: usize = 6;

/// How deep `(`, `[` and `{` nest in `text`, outside quoted strings (either quote; a backslash
/// escapes the next character in a string). Unbalanced closers are left to the full parser.
fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut quote, mut escaped) = (0usize, 0usize, None, false);
    for &c in text {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                b'\'' | b'"' => quote = Some(c),
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

/// The first of the header's keys that `text` names more than once (either quote).
fn repeated_key(text: &[u8]) -> Option<&'static str> {
    ["descr", "fortran_order", "shape"].into_iter().find(|key| {
        let count = |quote: u8| {
            let pat: Vec<u8> = [&[quote], key.as_bytes(), &[quote]].concat();
            text.windows(pat.len()).filter(|w| *w == pat.as_slice()).count()
        };
        count(b'\'') + count(b'"') > 1
    })
}

/// Index just past `'key'` or `"key"` in `text`.
fn find_key(text: &[u8], key: &[u8]) -> Option<usize> {
    for quote in [b'\'', b'"'] {
        let mut pat = vec![quote];
        pat.extend_from_slice(key);
        pat.push(quote);
        if let Some(p) = text.windows(pat.len()).position(|w| w == pat.as_slice()) {
            return Some(p + pat.len());
        }
    }
    None
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_named_twice_is_found() {
        assert_eq!(repeated_key(b"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }"), None);
        assert_eq!(repeated_key(b"{'shape': (1,), 'descr': '<f4', 'shape': (9, 9)}"), Some("shape"));
        assert_eq!(repeated_key(b"{'descr': '<f4', \"descr\": '<f8'}"), Some("descr"));
    }

    #[test]
    fn nesting_is_counted_outside_strings() {
        let d = |t: &str| nesting_depth(t.as_bytes());
        assert_eq!(d("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }"), 2);
        assert_eq!(d("{'descr': [('a', '<f4', (2,))], 'shape': (3,)}"), 4);
        assert_eq!(d("{'descr': '((((([[[[', 'shape': (3,)}"), 2, "inside a string");
        assert_eq!(d("{'descr': 'it\\'s ((((', 'shape': (3,)}"), 2, "an escaped quote");
        assert_eq!(d(&format!("{{'x': {}{}}}", "[".repeat(24), "]".repeat(24))), 25);
        assert_eq!(d("}}}{"), 1);
    }

    #[test]
    fn shapes_are_scanned_with_checked_arithmetic() {
        let s = |t: &str| scan_shape(t.as_bytes());
        assert_eq!(
            s("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }"),
            Ok(Some(vec![4, 3]))
        );
        assert_eq!(s("{'shape': (7,), 'descr': '<f4'}"), Ok(Some(vec![7])));
        assert_eq!(s("{\"shape\" : [ 2 , 5 ] }"), Ok(Some(vec![2, 5])));
        assert_eq!(s("{'shape': ()}"), Ok(Some(vec![])));
        assert_eq!(s("{'descr': '<f4'}"), Ok(None));
        assert!(s("{'shape': (18446744073709551616, 1)}").is_err(), "2^64 does not fit");
        assert!(s("{'shape': (-1, 2)}").is_err());
        assert!(s("{'shape': 12}").is_err());
        assert!(s("{'shape': (1, 2").is_err());
        let p = Path::new("x.npy");
        assert_eq!(element_count(p, &[4, 3]).unwrap(), 12);
        assert_eq!(element_count(p, &[0, 1 << 40]).unwrap(), 0);
        assert!(element_count(p, &[4, 1 << 62]).is_err(), "4 · 2^62 = 2^64");
        assert!(element_count(p, &[(1 << 63) + 1, 2]).is_err());
        assert!(element_count(p, &[0, 1 << 62, 4]).is_err(), "a stride would overflow");
    }
}

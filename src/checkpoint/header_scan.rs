//! A checkpoint's safetensors header read before its data: the file must be the size the header
//! describes, and name each tensor once. A file padded past its data (2.5 GB behind a 2 KB
//! header) was read whole before the parser refused it, and of a name given twice the parser
//! kept the last without a word.
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON (`{name: {dtype, shape,
//! data_offsets: [begin, end]}, "__metadata__": {...}}`), then the data, which the largest `end`
//! closes.

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::CheckpointError;

/// The largest header the safetensors crate reads (its `MAX_HEADER_SIZE`).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Refuse a regular file whose header length runs past its end, whose header names a tensor
/// twice, or whose size differs from the one its header describes; `Ok` leaves every other
/// check (and any header that does not parse) to the full read, which names what is wrong.
pub fn check(path: &Path) -> Result<(), CheckpointError> {
    let format = |detail: String| CheckpointError::Format { path: path.to_path_buf(), detail };
    let Ok(mut file) = crate::bounded_read::open(path) else { return Ok(()) };
    let Ok(meta) = file.metadata() else { return Ok(()) };
    if !meta.is_file() || meta.len() < 8 {
        return Ok(());
    }
    let mut len = [0u8; 8];
    if file.read_exact(&mut len).is_err() {
        return Ok(());
    }
    let n = u64::from_le_bytes(len);
    if n > meta.len() - 8 {
        return Err(format(format!(
            "its header length {n} runs past the end of the file ({} bytes)",
            meta.len()
        )));
    }
    if n > MAX_HEADER_BYTES {
        return Err(format(format!(
            "its header of {n} bytes is larger than safetensors reads ({MAX_HEADER_BYTES})"
        )));
    }
    let mut header = vec![0u8; n as usize];
    if file.read_exact(&mut header).is_err() {
        return Ok(());
    }
    let Ok(scan) = serde_json::from_slice::<Scan>(&header) else { return Ok(()) };
    if let Some(name) = scan.twice {
        return Err(format(format!("the header names tensor `{name}` twice")));
    }
    let described = 8 + n + scan.data_end;
    if described != meta.len() {
        return Err(format(format!(
            "the header describes {described} bytes (tensor data up to byte {} after it) but the file holds {}",
            scan.data_end,
            meta.len()
        )));
    }
    Ok(())
}

/// What the header says of the file: where its data ends, and a tensor name given twice.
#[derive(Default)]
struct Scan {
    data_end: u64,
    twice: Option<String>,
}

/// A tensor's entry, read for its data offsets only.
#[derive(Deserialize)]
struct Offsets {
    data_offsets: [u64; 2],
}

impl<'de> Deserialize<'de> for Scan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Scan;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a safetensors header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scan, A::Error> {
                let mut scan = Scan::default();
                let mut seen = std::collections::HashSet::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name == "__metadata__" {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let entry = map.next_value::<Offsets>()?;
                    scan.data_end = scan.data_end.max(entry.data_offsets[1]);
                    if !seen.insert(name.clone()) && scan.twice.is_none() {
                        scan.twice = Some(name);
                    }
                }
                Ok(scan)
            }
        }
        d.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(name: &str, header: &str, data: usize) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("batchscope-scan-{}-{name}", std::process::id()));
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data, 0);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    #[test]
    fn sizes_and_names_are_checked_from_the_header() {
        let one = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let ok = file_of("ok", one, 8);
        assert!(check(&ok).is_ok());
        let padded = file_of("padded", one, 4096);
        let e = check(&padded).expect_err("padded").to_string();
        assert!(e.contains("describes") && e.contains("holds"), "{e}");
        let short = file_of("short", one, 4);
        assert!(check(&short).is_err());
        let twice = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        let e = check(&file_of("twice", twice, 8)).expect_err("twice").to_string();
        assert!(e.contains("names tensor `a` twice"), "{e}");
        // A length past the end is said before anything else is read.
        let p = std::env::temp_dir().join(format!("batchscope-scan-{}-len", std::process::id()));
        std::fs::write(&p, [0xff; 16]).expect("write");
        assert!(check(&p).expect_err("length").to_string().contains("runs past the end"));
        // What does not parse is left to the full read, which says what is wrong.
        assert!(check(&file_of("garbage", "{not json", 0)).is_ok());
        for p in [ok, padded, short, p] {
            let _ = std::fs::remove_file(p);
        }
    }
}

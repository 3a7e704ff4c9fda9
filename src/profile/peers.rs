//! Peer reference figures: the CSV that `../shared/device/peer_ref.py` and
//! `benches/peer_gemm.py` print (`what,size_or_batch,value,unit`), read so that a batchscope
//! figure can be put beside the peer's from the same run (`batchscope gemm --peers`).
//!
//! GEMM rows are named `sgemm` / `hgemm` (fp32 with TF32 off / fp16, cuBLAS through PyTorch)
//! with an optional layout suffix: `sgemm` and `sgemm_nn` are the plain product, `sgemm_tn`
//! one whose A is stored transposed (`x.t() @ y`), `sgemm_nt` one whose B is.

use std::collections::BTreeMap;
use std::path::Path;

use crate::bounded_read;

/// A peers file is a few hundred short lines; past this it is no peers file.
const MAX_PEERS_BYTES: u64 = 4 << 20;

/// Why a peers file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    #[error("cannot read peer figures {}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Invalid { path: std::path::PathBuf, message: String },
}

/// One GEMM figure's key: fp16 or fp32, the transposes of A and B, and the square size n
/// (an n x n x n product).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GemmKey {
    pub f16: bool,
    pub trans_a: bool,
    pub trans_b: bool,
    pub n: usize,
}

/// The GEMM figures of a peers file, TFLOP/s by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerGemms {
    tflops: BTreeMap<GemmKey, f64>,
}

/// The range of a plausible GEMM figure, TFLOP/s: a kFLOP/s to an exaFLOP/s. Outside it a value
/// is a corrupt file (a ratio to 5e-324 is infinite; one to 1e308 is zero).
const MIN_TFLOPS: f64 = 1e-9;
const MAX_TFLOPS: f64 = 1e6;

impl PeerGemms {
    /// Read the GEMM rows of the peers CSV at `path`. Other rows (the MLP steps, the device
    /// name) and rows whose value is `nan` (a failed run) or `0.00` (rounded away) are skipped;
    /// a negative or infinite figure, a misspelled GEMM name, a second figure for one product,
    /// a file with no GEMM figure at all, and one that is not CSV are errors.
    pub fn load(path: &Path) -> Result<Self, PeersError> {
        let text = bounded_read::read_to_string(path, MAX_PEERS_BYTES)
            .map_err(|source| PeersError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|message| PeersError::Invalid { path: path.to_path_buf(), message })
    }

    /// [`PeerGemms::load`] of the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, h)) if h.trim() == "what,size_or_batch,value,unit" => {}
            Some((_, h)) => {
                return Err(format!(
                    "line 1 is {:?}, not the header what,size_or_batch,value,unit",
                    clip(h)
                ))
            }
            None => return Err("empty file: no header what,size_or_batch,value,unit".into()),
        }
        // Each figure's key and the line it came from.
        let mut tflops = BTreeMap::new();
        let mut lines_of = BTreeMap::new();
        for (i, line) in lines {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let what = fields[0];
            let Some((f16, trans_a, trans_b)) = gemm_kind(what) else {
                // A GEMM name with a layout misspelled would otherwise vanish without a word.
                let lower = what.to_ascii_lowercase();
                if lower.starts_with("sgemm") || lower.starts_with("hgemm") {
                    return Err(format!(
                        "line {}: {:?} is no GEMM name batchscope reads (sgemm or hgemm, then _nn, _nt, _tn or _tt)",
                        i + 1,
                        clip(what)
                    ));
                }
                continue;
            };
            // Other rows are skipped whatever they hold (a device name with a comma in it).
            let [_, size, value, unit] = fields[..] else {
                return Err(format!("line {}: {} fields, not 4: {:?}", i + 1, fields.len(), clip(line)));
            };
            let n = size
                .parse::<usize>()
                .map_err(|_| format!("line {}: size {size:?} of {what} is not a whole number", i + 1))?;
            // A failed measurement (`nan,error OutOfMemoryError`) is no figure, nor is one too
            // small for the peer script's two decimals (`0.00`).
            let v = value.parse::<f64>().map_err(|_| {
                format!("line {}: value {:?} of {what} at size {n} is not a number", i + 1, clip(value))
            })?;
            if v.is_nan() || v == 0.0 {
                continue;
            }
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("line {}: {what} at {v} TFLOP/s is no measured figure", i + 1));
            }
            if unit != "TFLOP/s" {
                return Err(format!("line {}: a {what} figure in {unit:?}, not TFLOP/s", i + 1));
            }
            if !(MIN_TFLOPS..=MAX_TFLOPS).contains(&v) {
                return Err(format!(
                    "line {}: {what} at {v:e} TFLOP/s is no measured figure (between {MIN_TFLOPS:e} and {MAX_TFLOPS:e})",
                    i + 1
                ));
            }
            let key = GemmKey { f16, trans_a, trans_b, n };
            if let Some(first) = lines_of.insert(key, i + 1) {
                return Err(format!(
                    "line {}: a second {what} figure for size {n} (line {first} has one): which is the peer's?",
                    i + 1
                ));
            }
            tflops.insert(key, v);
        }
        if tflops.is_empty() {
            return Err("no sgemm or hgemm figure in it".into());
        }
        Ok(PeerGemms { tflops })
    }

    /// The peer's TFLOP/s for `key`, if the file has it.
    pub fn get(&self, key: GemmKey) -> Option<f64> {
        self.tflops.get(&key).copied()
    }

    pub fn len(&self) -> usize {
        self.tflops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tflops.is_empty()
    }
}

/// `(f16, trans_a, trans_b)` of a GEMM row name, `None` for any other row.
fn gemm_kind(what: &str) -> Option<(bool, bool, bool)> {
    let (f16, layout) = match what.split_once('_') {
        Some((p, l)) => (p, l),
        None => (what, "nn"),
    };
    let f16 = match f16 {
        "sgemm" => false,
        "hgemm" => true,
        _ => return None,
    };
    let (ta, tb) = match layout {
        "nn" => (false, false),
        "nt" => (false, true),
        "tn" => (true, false),
        "tt" => (true, true),
        _ => return None,
    };
    Some((f16, ta, tb))
}

/// At most 60 characters of a line, for an error message.
fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER_REF: &str = "what,size_or_batch,value,unit
device,0,NVIDIA H200,name
sgemm,4096,50.95,TFLOP/s
sgemm_tn,4096,52.10,TFLOP/s
hgemm,4096,610.3,TFLOP/s
sgemm,8192,nan,TFLOP/s
hgemm_nt,8192,nan,error OutOfMemoryError
mlp_torch_eager,1,835.0,examples/s
";

    fn key(f16: bool, trans_a: bool, trans_b: bool, n: usize) -> GemmKey {
        GemmKey { f16, trans_a, trans_b, n }
    }

    #[test]
    fn reads_the_gemm_rows_of_peer_ref_and_skips_the_rest() {
        let p = PeerGemms::parse(PEER_REF).expect("parses");
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(key(false, false, false, 4096)), Some(50.95));
        assert_eq!(p.get(key(false, true, false, 4096)), Some(52.10));
        assert_eq!(p.get(key(true, false, false, 4096)), Some(610.3));
        // nan (a failed measurement) is no figure; NT was not measured.
        assert_eq!(p.get(key(false, false, false, 8192)), None);
        assert_eq!(p.get(key(false, false, true, 4096)), None);
    }

    #[test]
    fn other_rows_are_skipped_whatever_they_hold() {
        // peer_gemm.py wrote the device's name unquoted: a comma in it made 5 fields.
        let text =
            "what,size_or_batch,value,unit\ndevice,0,NVIDIA H200, 141 GB,name\nsgemm_nn,64,1,TFLOP/s\n";
        let p = PeerGemms::parse(text).expect("parses");
        assert_eq!(p.get(key(false, false, false, 64)), Some(1.0));
    }

    #[test]
    fn layout_suffixes_name_the_transposes() {
        let text = "what,size_or_batch,value,unit\nsgemm_nn,64,1,TFLOP/s\nsgemm_nt,64,2,TFLOP/s\n\
                    hgemm_tn,64,3,TFLOP/s\nhgemm_tt,64,4,TFLOP/s\n";
        let p = PeerGemms::parse(text).expect("parses");
        assert_eq!(p.get(key(false, false, false, 64)), Some(1.0));
        assert_eq!(p.get(key(false, false, true, 64)), Some(2.0));
        assert_eq!(p.get(key(true, true, false, 64)), Some(3.0));
        assert_eq!(p.get(key(true, true, true, 64)), Some(4.0));
    }

    #[test]
    fn malformed_files_are_one_message_each() {
        let cases = [
            ("", "empty file"),
            ("a,b\n", "not the header"),
            ("what,size_or_batch,value,unit\nsgemm,64,1\n", "3 fields"),
            ("what,size_or_batch,value,unit\nsgemm,sixty,1,TFLOP/s\n", "not a whole number"),
            ("what,size_or_batch,value,unit\nsgemm,64,1,GFLOP/s\n", "not TFLOP/s"),
            ("what,size_or_batch,value,unit\nsgemm,16,5e-324,TFLOP/s\n", "no measured figure"),
            ("what,size_or_batch,value,unit\nhgemm,16,1.79e308,TFLOP/s\n", "no measured figure"),
            ("what,size_or_batch,value,unit\nmlp_torch_eager,1,835,examples/s\n", "no sgemm"),
            ("what,size_or_batch,value,unit\nsgemm_NT,16,50,TFLOP/s\n", "no GEMM name"),
            ("what,size_or_batch,value,unit\nhgemm-nn,16,50,TFLOP/s\n", "no GEMM name"),
            ("what,size_or_batch,value,unit\nsgemm,16,-3,TFLOP/s\n", "-3 TFLOP/s is no measured"),
            ("what,size_or_batch,value,unit\nsgemm,16,0.00,TFLOP/s\n", "no sgemm"),
            ("what,size_or_batch,value,unit\nsgemm,16,inf,TFLOP/s\n", "no measured figure"),
            // A value that is no number was skipped like a failed run's `nan`.
            (
                "what,size_or_batch,value,unit\nsgemm,16,abc,TFLOP/s\n",
                "value \"abc\" of sgemm at size 16 is not a number",
            ),
            ("what,size_or_batch,value,unit\nsgemm,16,0x10,TFLOP/s\n", "not a number"),
            (
                "what,size_or_batch,value,unit\nsgemm,16,1,TFLOP/s\nsgemm_nn,16,2,TFLOP/s\n",
                "line 3: a second",
            ),
        ];
        for (text, want) in cases {
            let e = PeerGemms::parse(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("bs-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let bad = dir.join("peers.csv");
        std::fs::write(&bad, "nonsense\n").expect("write");
        let e = PeerGemms::load(&bad).expect_err("not a peers file").to_string();
        assert!(e.contains("peers.csv") && e.contains("header"), "{e}");
        let e = PeerGemms::load(&dir.join("missing.csv")).expect_err("missing").to_string();
        assert!(e.contains("cannot read peer figures"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

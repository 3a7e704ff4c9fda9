//! What a run's `.npy` data was: each file's size and CRC-32, recorded in its checkpoints
//! (`data_fingerprint`) and compared at `--resume`. A resume keeps its data, and `.npy` files
//! may move (their paths are free to change), so the check is on what they hold: a resume of
//! files rewritten with other rows (or other values) went on training without a word, on a new
//! training and validation set. Synthetic data is a pure function of the config, which a resume
//! already keeps.

use std::io::Read;
use std::path::Path;

use super::DataError;
use crate::config::{DataConfig, DataKind};

/// The metadata key of a checkpoint's data fingerprint.
pub const KEY: &str = "data_fingerprint";

/// `features N bytes crc32:xxxxxxxx; labels M bytes crc32:xxxxxxxx` of `.npy` data (read
/// whole, in 1 MiB pieces); `None` for synthetic data.
pub fn fingerprint(cfg: &DataConfig) -> Result<Option<String>, DataError> {
    let (DataKind::Npy, Some(features), Some(labels)) = (cfg.kind, &cfg.features, &cfg.labels) else {
        return Ok(None);
    };
    Ok(Some(format!("features {}; labels {}", of_file(features)?, of_file(labels)?)))
}

/// `N bytes crc32:xxxxxxxx` of the file at `path` (also what a run records of its `--init`
/// weights).
pub fn of_file(path: &Path) -> Result<String, DataError> {
    let io = |source| DataError::Io { path: path.to_path_buf(), source };
    let mut file = crate::bounded_read::open(path).map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut piece = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut piece).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&piece[..n]);
        bytes += n as u64;
    }
    Ok(format!("{bytes} bytes crc32:{:08x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_of_the_bytes_not_the_path() {
        let d = std::env::temp_dir().join(format!("batchscope-fingerprint-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        let (x, y, moved) = (d.join("x.npy"), d.join("y.npy"), d.join("moved.npy"));
        std::fs::write(&x, b"features").expect("x");
        std::fs::write(&y, b"labels").expect("y");
        let cfg = |features: &Path| DataConfig {
            kind: DataKind::Npy,
            features: Some(features.to_path_buf()),
            labels: Some(y.clone()),
            ..DataConfig::default()
        };
        let first = fingerprint(&cfg(&x)).expect("read").expect("npy");
        assert!(
            first.starts_with("features 8 bytes crc32:") && first.contains("; labels 6 bytes"),
            "{first}"
        );
        std::fs::copy(&x, &moved).expect("copy");
        assert_eq!(fingerprint(&cfg(&moved)).expect("read"), Some(first.clone()));
        std::fs::write(&x, b"Features").expect("x");
        assert_ne!(fingerprint(&cfg(&x)).expect("read"), Some(first));
        assert_eq!(fingerprint(&DataConfig::default()).expect("synthetic"), None);
        let _ = std::fs::remove_dir_all(&d);
    }
}

//! Helpers for tests that run the binary on bad input: its stderr, the one-error-line check,
//! a byte snapshot of a run directory, and hand-written `.npy` files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The binary, with `RUST_LOG=error` and an XDG runtime directory of its own under the temp
/// dir named by `tag` (the Vulkan loader prints its own `error:` line without one).
pub fn batchscope(tag: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_batchscope"));
    c.env("RUST_LOG", "error");
    let xdg = std::env::temp_dir().join(format!("batchscope-{tag}-xdg"));
    let _ = std::fs::create_dir_all(&xdg);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700));
    }
    c.env("XDG_RUNTIME_DIR", &xdg);
    c
}

/// The child's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2, exactly one `error:` line naming every needle, no panic.
pub fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr = {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{}` does not name {n}", lines[0]);
    }
}

/// Every file under `dir` with its bytes (to assert a run directory is left byte-identical),
/// but the run lock's `.batchscope.lock`: process state, not the run's (a process killed while
/// it held the directory leaves the file, and the next command that takes the lock removes it
/// when it ends).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read run dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name() != ".batchscope.lock" {
                out.insert(p.clone(), std::fs::read(&p).expect("read file"));
            }
        }
    }
    out
}

/// A `.npy` v1.0 file with header text `dict` followed by `data`.
pub fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut h = dict.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// A float64 `.npy` of 10×3 zeros: a valid file of a dtype the loaders refuse.
pub fn write_f64_npy(path: &Path) {
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (10, 3), }";
    std::fs::write(path, npy_bytes(dict, &[0u8; 240])).expect("write f64 .npy");
}

//! The run directories this process claimed, so that a command that fails before its run
//! wrote anything of its own leaves no stray directory behind: [`discard_unused`] removes a
//! claimed directory's `config.toml` (written first, from the already-parsed config), a
//! still-empty `metrics.jsonl` and empty subdirectories when that is all it holds, and the
//! directory itself when this process created it. Anything else in it (metrics, checkpoints,
//! plots: the run got going) keeps the directory as it is.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files a run writes before its first real output; a directory holding only these is unused.
const PRELUDE: &[&str] = &["config.toml"];
/// Files a run opens before its first real output, unused while they are still empty.
const PRELUDE_IF_EMPTY: &[&str] = &["metrics.jsonl"];

/// Whether a directory entry is one a failed run may leave before its first output.
fn is_prelude(e: &fs::DirEntry) -> bool {
    let name = e.file_name();
    let Some(name) = name.to_str() else { return false };
    let Ok(meta) = e.metadata() else { return false };
    if meta.is_dir() {
        // A subdirectory a command made for its first output (`landscape`'s `train/`) and
        // failed before filling.
        return fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_none());
    }
    meta.is_file() && (PRELUDE.contains(&name) || (PRELUDE_IF_EMPTY.contains(&name) && meta.len() == 0))
}

/// `(directory, created by this process)` for every run directory claimed.
static CLAIMED: Mutex<Vec<(PathBuf, bool)>> = Mutex::new(Vec::new());

/// Directories this process created to hold its run directories (`runs/`, `--out`'s missing
/// parents), deepest first: removed after a failed command when they are empty again.
static CREATED_PARENTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Remember `dirs` (deepest first) as parents this process created for its run directories.
pub(super) fn record_parents(dirs: Vec<PathBuf>) {
    if let Ok(mut v) = CREATED_PARENTS.lock() {
        v.extend(dirs);
    }
}

/// Remember `dir` as this process's run directory (`created`: it did not exist before).
pub(super) fn record(dir: &Path, created: bool) {
    if let Ok(mut v) = CLAIMED.lock() {
        v.push((dir.to_path_buf(), created));
    }
}

/// After a failed command: every claimed directory that holds nothing but [`PRELUDE`] files
/// loses them, and is removed if this process created it. Best effort, silent: the command's
/// error is the message. Returns the directories removed or emptied.
pub fn discard_unused() -> Vec<PathBuf> {
    let claimed = match CLAIMED.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(_) => return Vec::new(),
    };
    let gone =
        claimed.into_iter().filter(|(dir, created)| discard(dir, *created)).map(|(d, _)| d).collect();
    let parents = CREATED_PARENTS.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
    for parent in parents {
        // Only an empty directory goes: another run may have been made in it meanwhile.
        let _ = fs::remove_dir(parent);
    }
    gone
}

fn discard(dir: &Path, created: bool) -> bool {
    let Ok(entries) = fs::read_dir(dir) else { return false };
    let mut names = Vec::new();
    for e in entries {
        let Ok(e) = e else { return false };
        if !is_prelude(&e) {
            return false;
        }
        names.push(e.file_name());
    }
    for name in &names {
        let path = dir.join(name);
        let removed = if path.is_dir() { fs::remove_dir(&path) } else { fs::remove_file(&path) };
        if removed.is_err() {
            return false;
        }
    }
    if created {
        let _ = fs::remove_dir(dir);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_directory_with_nothing_but_its_config_and_empty_metrics_is_discarded() {
        let root = std::env::temp_dir().join(format!("batchscope-claimed-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (fresh, given, used) = (root.join("fresh"), root.join("given"), root.join("used"));
        let opened = root.join("opened");
        for d in [&fresh, &given, &used, &opened] {
            fs::create_dir_all(d).expect("mkdir");
            fs::write(d.join("config.toml"), "x = 1\n").expect("write");
        }
        fs::write(used.join("metrics.jsonl"), "{}\n").expect("write");
        // Failed after opening its metrics file and before its first line.
        fs::write(opened.join("metrics.jsonl"), "").expect("write");
        // ... and after making an empty subdirectory for its first output.
        fs::create_dir(opened.join("train")).expect("mkdir");
        record(&fresh, true);
        record(&given, false);
        record(&used, true);
        record(&opened, true);
        let gone = discard_unused();
        assert_eq!(gone, vec![fresh.clone(), given.clone(), opened.clone()]);
        assert!(!fresh.exists(), "created and unused: removed");
        assert!(!opened.exists(), "an empty metrics.jsonl is no output: removed");
        assert!(given.is_dir() && fs::read_dir(&given).expect("dir").next().is_none(), "kept, emptied");
        assert!(used.join("config.toml").is_file() && used.join("metrics.jsonl").is_file());
        assert!(discard_unused().is_empty(), "each claim is discarded once");
        let _ = fs::remove_dir_all(&root);
    }
}

//! The autotune cache file: the chosen matmul candidate per (adapter, driver, backend, shape),
//! with the timings that chose it. JSON, version-stamped, written atomically (a temporary file
//! renamed over the old one). A cache file with corrupt or older entries is reported once and
//! rebuilt, never an error: tuning only ever changes which kernel runs. A file at the path that
//! does not parse whole as a cache (or is a newer build's cache) is never overwritten.
//!
//! Location: `$BATCHSCOPE_AUTOTUNE_CACHE`, else `$XDG_CACHE_HOME/batchscope/autotune.json`, else
//! `~/.cache/batchscope/autotune.json` (`%LOCALAPPDATA%` on Windows).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::Candidate;
use crate::backend::gpu::context::AdapterSummary;
use crate::backend::Gemm;

/// Bumped when the meaning of an entry changes (older files are rebuilt). 2: every choice's
/// product was checked against the exact reference (`super::verify`) before it was chosen.
pub const CACHE_VERSION: u32 = 2;

/// Environment variable naming the cache file (tests point it at a temporary directory).
pub const CACHE_ENV: &str = "BATCHSCOPE_AUTOTUNE_CACHE";

#[derive(Debug, Error)]
pub enum AutotuneError {
    #[error("cannot write the autotune cache {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("no autotune cache location: set {CACHE_ENV}, XDG_CACHE_HOME or HOME")]
    NoLocation,
    #[error(
        "refusing to overwrite {path}: {why} (point {CACHE_ENV} at a new file or an autotune cache)"
    )]
    Foreign { path: PathBuf, why: String },
}

/// The adapter a choice was measured on: a new driver or another device re-tunes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceKey {
    pub name: String,
    pub vendor: u32,
    pub device: u32,
    pub driver: String,
    pub driver_info: String,
    pub backend: String,
}

impl DeviceKey {
    pub fn of(s: &AdapterSummary) -> Self {
        DeviceKey {
            name: s.name.clone(),
            vendor: s.vendor,
            device: s.device,
            driver: s.driver.clone(),
            driver_info: s.driver_info.clone(),
            backend: s.backend.clone(),
        }
    }
}

/// A product's shape: C [m,n] = op(A) [m,k] · op(B) [k,n] with its transposes (alpha and beta
/// do not change which kernel is fastest enough to key on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShapeKey {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    /// An f16 product (half operands, f32 sums): its own entry, with the f16 candidates.
    /// Written only when set, so f32 entries read and write as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub f16: bool,
}

impl ShapeKey {
    pub fn of(g: &Gemm) -> Self {
        ShapeKey { m: g.m, n: g.n, k: g.k, trans_a: g.trans_a, trans_b: g.trans_b, f16: false }
    }

    /// The key of `g` as an f16 product.
    pub fn of_half(g: &Gemm) -> Self {
        ShapeKey { f16: true, ..ShapeKey::of(g) }
    }

    /// The product `C = op(A) op(B)` of this shape (alpha 1, beta 0).
    pub fn gemm(self) -> Gemm {
        Gemm::nn(self.m, self.n, self.k).trans(self.trans_a, self.trans_b)
    }

    /// `m x n x k NT` (N: stored as used, T: transposed; A then B).
    pub fn label(self) -> String {
        let t = |x: bool| if x { 'T' } else { 'N' };
        let half = if self.f16 { " f16" } else { "" };
        format!("{}x{}x{} {}{}{half}", self.m, self.n, self.k, t(self.trans_a), t(self.trans_b))
    }
}

/// One candidate's measured time, ms per product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateTime {
    pub candidate: String,
    pub ms: f64,
}

/// The largest cache file read (entries are a few hundred bytes each).
pub(super) const MAX_CACHE_BYTES: u64 = 64 << 20;

/// The choice for one (device, shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub device: DeviceKey,
    pub shape: ShapeKey,
    pub choice: String,
    /// `gpu_timestamps` or `wall_clock`.
    pub method: String,
    pub timings: Vec<CandidateTime>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: Vec<Entry>,
}

/// The entries of a cache file, by (device, shape).
#[derive(Clone, Debug, Default)]
pub struct TuneCache {
    entries: BTreeMap<(DeviceKey, ShapeKey), Entry>,
    /// The keys this process set ([`TuneCache::insert`]), which a save writes over the file's
    /// entries; the others it only read, and a save keeps the file's (another process may have
    /// re-timed them since this one loaded the file).
    touched: std::collections::BTreeSet<(DeviceKey, ShapeKey)>,
}

/// Caches are equal when their entries are, whoever set them.
impl PartialEq for TuneCache {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

/// A loaded cache and, when the file was unreadable, corrupt or stale, why it was dropped.
pub struct Loaded {
    pub cache: TuneCache,
    pub warning: Option<String>,
    /// Why the file at the path is not a cache this build may replace ([`foreign`]), if so.
    pub foreign: Option<String>,
}

/// What is at a cache path.
enum AtPath {
    /// Nothing: the first save creates it.
    Missing,
    /// A file that is no cache this build may replace, and why.
    Foreign(String),
    /// A cache file (this version's or an older one's), with its text.
    Cache(String),
}

/// Why the file at `path` must not be replaced by a cache, or `None` when it may be: it is
/// missing, or it parses whole as a cache file — a JSON object with exactly the keys `version`
/// (this build's or older) and `entries` (a list) — or is one cut short ([`cut_cache`]). Anything else is somebody else's file (a
/// checkpoint, an editor's `launch.json`, a directory) or a newer batchscope's cache, and a
/// cache path that names it is a mistake: it is refused, never rebuilt.
pub fn foreign(path: &Path) -> Option<String> {
    match inspect(path) {
        AtPath::Foreign(why) => Some(why),
        AtPath::Missing | AtPath::Cache(_) => None,
    }
}

fn inspect(path: &Path) -> AtPath {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return AtPath::Missing,
        Err(e) => return AtPath::Foreign(format!("unreadable ({e})")),
        Ok(m) if !m.is_file() => return AtPath::Foreign("not a regular file".to_string()),
        Ok(_) => {}
    }
    let text = match crate::bounded_read::read_to_string(path, MAX_CACHE_BYTES) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return AtPath::Missing,
        Err(e) => return AtPath::Foreign(format!("not an autotune cache file ({e})")),
    };
    // An empty file holds nothing to lose (`touch`ed, or emptied): the first save fills it.
    if text.trim().is_empty() {
        return AtPath::Missing;
    }
    match cache_shape(&text) {
        Ok(()) => AtPath::Cache(text),
        Err(why) => AtPath::Foreign(why),
    }
}

/// `Ok` when `text` is shaped as a cache file of this version or an older one (its entries are
/// checked by [`TuneCache::from_json`]); `Err` says what it is instead.
fn cache_shape(text: &str) -> Result<(), String> {
    let not_cache = |what: &str| Err(format!("not an autotune cache file ({what})"));
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        // A cache cut short (copied in part, a full disk): rebuilt, as a corrupt cache is.
        // A whole JSON value with more after it (notes, a second copy) is somebody's edit,
        // not a cut: it was rebuilt, and the notes and entries were lost.
        Err(_) if followed_by_more(text) => return not_cache("a JSON value followed by more text"),
        Err(_) if cut_cache(text) => return Ok(()),
        Err(_) => return not_cache("not JSON"),
    };
    let Some(object) = value.as_object() else {
        return not_cache("not a JSON object");
    };
    if let Some(key) = object.keys().find(|k| !matches!(k.as_str(), "version" | "entries")) {
        return not_cache(&format!("a key `{key}`"));
    }
    let version = match object.get("version").map(|v| v.as_u64()) {
        Some(Some(v)) => v,
        _ => return not_cache("no whole-number `version`"),
    };
    if !object.get("entries").is_some_and(|e| e.is_array()) {
        return not_cache("no `entries` list");
    }
    if version > u64::from(CACHE_VERSION) {
        return Err(format!(
            "an autotune cache of version {version}, newer than this build's {CACHE_VERSION}"
        ));
    }
    Ok(())
}

/// Whether `text` begins with one whole JSON value (then something that is not whitespace).
fn followed_by_more(text: &str) -> bool {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    matches!(values.next(), Some(Ok(_)))
}

/// Whether `text` begins as a cache file of this version or an older one does, to its entries
/// list: `{"version": N, "entries": [` (whitespace aside), the order [`TuneCache::to_json`]
/// writes. An editor's `launch.json` (`"version": "0.2.0"`) or a record with other keys is not.
fn cut_cache(text: &str) -> bool {
    let rest = text.trim_start().strip_prefix('{').map(str::trim_start);
    let rest = rest.and_then(|r| r.strip_prefix("\"version\"")).map(str::trim_start);
    let rest = rest.and_then(|r| r.strip_prefix(':')).map(str::trim_start);
    let Some(rest) = rest else { return false };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let version_ok = rest[..digits].parse::<u32>().is_ok_and(|v| v <= CACHE_VERSION);
    let rest = rest[digits..].trim_start().strip_prefix(',').map(str::trim_start);
    let rest = rest.and_then(|r| r.strip_prefix("\"entries\"")).map(str::trim_start);
    let rest = rest.and_then(|r| r.strip_prefix(':')).map(str::trim_start);
    version_ok && rest.is_some_and(|r| r.starts_with('['))
}

impl TuneCache {
    /// Parse a cache file's text; `Err` says why it cannot be used (rebuild it).
    pub fn from_json(text: &str) -> Result<(Self, usize), String> {
        /// The file with its entries unparsed: one malformed entry (a field missing, a number
        /// past its type) is dropped alone, and the others are kept.
        #[derive(Deserialize)]
        struct RawFile {
            version: u32,
            entries: Vec<serde_json::Value>,
        }
        let file: RawFile = serde_json::from_str(text).map_err(|e| format!("not a cache file: {e}"))?;
        if file.version != CACHE_VERSION {
            return Err(format!("version {} (this build writes {CACHE_VERSION})", file.version));
        }
        let mut cache = TuneCache::default();
        let mut dropped = 0;
        for value in file.entries {
            match serde_json::from_value::<Entry>(value) {
                Ok(e) => {
                    cache.entries.insert((e.device.clone(), e.shape), e);
                }
                Err(_) => dropped += 1,
            }
        }
        Ok((cache, dropped))
    }

    /// The file text: entries sorted by device and shape (the same cache, the same bytes).
    pub fn to_json(&self) -> String {
        let file =
            CacheFile { version: CACHE_VERSION, entries: self.entries.values().cloned().collect() };
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_else(|_| String::from("{}"));
        text.push('\n');
        text
    }

    /// Read `path`: a missing file is an empty cache; a cache file whose entries are corrupt or
    /// of an older version is an empty cache with a warning (the next save rebuilds the file); a
    /// file that is no cache of this build's ([`foreign`]) is an empty cache with a warning, and
    /// left as it is.
    pub fn load(path: &Path) -> Loaded {
        let empty =
            |warning: Option<String>, foreign| Loaded { cache: TuneCache::default(), warning, foreign };
        match inspect(path) {
            AtPath::Missing => empty(None, None),
            AtPath::Foreign(why) => {
                let w = format!(
                    "{} is {why}: left as it is, the choices hold for this run only",
                    path.display()
                );
                empty(Some(w), Some(why))
            }
            AtPath::Cache(text) => match TuneCache::from_json(&text) {
                Ok((cache, 0)) => Loaded { cache, warning: None, foreign: None },
                Ok((cache, dropped)) => {
                    let w = format!(
                        "ignoring {dropped} malformed entr{} of {} (the next save drops {}); the other {} kept",
                        if dropped == 1 { "y" } else { "ies" },
                        path.display(),
                        if dropped == 1 { "it" } else { "them" },
                        cache.len()
                    );
                    Loaded { cache, warning: Some(w), foreign: None }
                }
                Err(why) => {
                    empty(Some(format!("ignoring {} ({why}); rebuilding it", path.display())), None)
                }
            },
        }
    }

    /// Write the cache to `path` atomically (creating its directory), unless a file that is no
    /// cache is there ([`foreign`]): that is an error, and the file is left as it is. A `path`
    /// that is a symlink stays one: the file it names is the one replaced ([`save_target`]).
    ///
    /// The save merges: under an exclusive lock on the file's directory, the entries the file
    /// holds now are read again and this cache's written over them, so that processes tuning
    /// other shapes at the same time (two `tune`s, a `tune` beside a run with `gpu.autotune =
    /// "on"`) keep each other's entries; the last one saved lost the others'.
    pub fn save(&self, path: &Path) -> Result<(), AutotuneError> {
        if let Some(why) = foreign(path) {
            return Err(AutotuneError::Foreign { path: path.to_path_buf(), why });
        }
        let path = &save_target(path);
        let err = |source| AutotuneError::Write { path: path.to_path_buf(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let _lock = lock_dir(dir.unwrap_or(Path::new("."))).map_err(err)?;
        let on_file = match inspect(path) {
            AtPath::Foreign(why) => {
                return Err(AutotuneError::Foreign { path: path.to_path_buf(), why })
            }
            AtPath::Cache(text) => TuneCache::from_json(&text).map(|(c, _)| c).ok(),
            AtPath::Missing => None,
        };
        // This process's choices over the file's entries; where there is no file (or one to
        // rebuild), every entry this cache holds.
        let mut merged = on_file.unwrap_or_else(|| self.clone());
        for key in &self.touched {
            if let Some(e) = self.entries.get(key) {
                merged.entries.insert(key.clone(), e.clone());
            }
        }
        // A new temporary (created, never opened through a link planted at its name), synced,
        // renamed over the cache: the report's atomic write.
        crate::report::atomic::write_atomic_io(path, merged.to_json().as_bytes())
            .map_err(|e| err(e.source))
    }

    /// Set the entry of `e`'s (device, shape): a choice of this process, which its saves
    /// write over the file's.
    pub fn insert(&mut self, e: Entry) {
        let key = (e.device.clone(), e.shape);
        self.touched.insert(key.clone());
        self.entries.insert(key, e);
    }

    pub fn get(&self, device: &DeviceKey, shape: ShapeKey) -> Option<&Entry> {
        self.entries.get(&(device.clone(), shape))
    }

    /// The cached choice for (device, shape) if it names a candidate this build has and that
    /// is in `allowed` (what this adapter can run for the shape); anything else is ignored.
    pub fn choice(
        &self,
        device: &DeviceKey,
        shape: ShapeKey,
        allowed: &[Candidate],
    ) -> Option<Candidate> {
        let c = Candidate::parse(&self.get(device, shape)?.choice)?;
        allowed.contains(&c).then_some(c)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An exclusive lock on directory `dir` (`flock` on its handle; released when the handle is
/// dropped, or by the kernel if the process dies): saves of caches in one directory take turns.
/// It adds no file beside the cache. Where directories cannot be opened or locked (Windows, a
/// file system without locks) saves go unlocked, as they did before.
fn lock_dir(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    #[cfg(unix)]
    {
        let Ok(handle) = std::fs::File::open(dir) else { return Ok(None) };
        match handle.lock() {
            Ok(()) => Ok(Some(handle)),
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(None),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(None)
    }
}

/// Symlinks followed at most when resolving a cache path (the kernel's own limit is 40).
const MAX_LINKS: usize = 40;

/// The file a save to `path` replaces: `path`, or the file its symlink names (through any
/// chain of links, even to a file not there yet). A rename onto the link itself would replace
/// the link with a regular file and leave its target, the cache the user pointed at, as it was.
fn save_target(path: &Path) -> PathBuf {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return path.to_path_buf();
    }
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    // A dangling link: follow the links by hand, each relative to its own directory.
    let mut target = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let Ok(next) = std::fs::read_link(&target) else { break };
        target = match target.parent() {
            Some(dir) => dir.join(next),
            None => next,
        };
    }
    target
}

/// Where the cache lives (see the module doc), or `None` when no location is known.
pub fn default_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var(CACHE_ENV) {
        return Some(p);
    }
    let base = var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .or_else(|| var("LOCALAPPDATA"))?;
    Some(base.join("batchscope").join("autotune.json"))
}

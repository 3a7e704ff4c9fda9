//! Checkpoints as safetensors files.
//!
//! Layout (DESIGN.md, "File contracts"):
//! - `layers.{i}.weight` f32 `[out, in]` and `layers.{i}.bias` f32 `[out]` — PyTorch `nn.Linear`
//!   convention, loadable by `safetensors.torch.load_file`;
//! - optimizer state as `optimizer.<kind>.<param name>` (e.g. `optimizer.velocity.layers.0.weight`);
//! - step, epoch, RNG state and the resolved config as string metadata (the header's
//!   `__metadata__`), plus two reserved keys written by [`save`]:
//!   `format = "batchscope-checkpoint-v1"` and `checksum = "crc32:xxxxxxxx"`.
//!
//! The checksum is CRC-32 (IEEE) over, in name order, every tensor's name, shape and
//! little-endian bytes, then every metadata entry except `checksum` in key order. [`load`]
//! verifies it, so a flipped byte in the data or in a metadata value is reported as corruption.
//!
//! [`save`] writes a temporary file in the target's directory, fsyncs it and renames it over the
//! target: an existing checkpoint is either replaced whole or left untouched.
//!
//! [`load`] also reads files written by other tools (no `format` and no `checksum` metadata,
//! e.g. `safetensors.torch.save_file`): it says once that such a file is unverified, converts
//! F16 / BF16 / F64 tensors and maps PyTorch `nn.Sequential` names (see [`foreign`]). Every
//! tensor loaded must be finite: NaN or infinite values are refused, naming the tensor.

mod foreign;
mod header_scan;
mod load;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use thiserror::Error;

use crate::report::atomic::write_atomic_io;
pub use load::{load_into, refuse_unexpected};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "batchscope-checkpoint-v1";
/// Metadata key of the format tag.
pub const FORMAT_KEY: &str = "format";

/// The prefix of every batchscope format tag ([`FORMAT`] and its future versions).
const FORMAT_FAMILY: &str = "batchscope-checkpoint-";
/// Metadata key of the checksum.
pub const CHECKSUM_KEY: &str = "checksum";

/// Checkpoint errors; every message names the file and the problem.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{}", match path.as_os_str().is_empty() {
        true => "the checkpoint path is empty".to_string(),
        false => format!("checkpoint {} does not exist", path.display()),
    })]
    NotFound { path: PathBuf },
    #[error("cannot read checkpoint {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write checkpoint {}: cannot {action} {}: {source}", path.display(), at.display())]
    Write { path: PathBuf, action: &'static str, at: PathBuf, source: io::Error },
    #[error("{} is not a valid safetensors checkpoint (truncated or corrupted?): {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    #[error("checkpoint {}: tensor `{name}` has dtype {dtype}, expected F32 (F16, BF16 and F64 are converted in files without batchscope metadata)", path.display())]
    Dtype { path: PathBuf, name: String, dtype: String },
    #[error("checkpoint {}: unsupported format `{found}` (expected `{FORMAT}`)", path.display())]
    UnsupportedFormat { path: PathBuf, found: String },
    #[error("checkpoint {} has no `checksum` in its metadata, so it cannot be verified (not written by batchscope?)", path.display())]
    MissingChecksum { path: PathBuf },
    #[error("checkpoint {} is corrupted: checksum mismatch (stored {stored}, computed {computed})", path.display())]
    ChecksumMismatch { path: PathBuf, stored: String, computed: String },
    #[error("checkpoint {}: no tensor `{name}` ({}; the file holds: {holds})", path_or_memory(.path), expected_names(name))]
    MissingTensor { path: Option<PathBuf>, name: String, holds: String },
    #[error("checkpoint {}: tensor `{name}` has shape {found:?}, expected {expected:?}", path_or_memory(.path))]
    Shape { path: Option<PathBuf>, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("cannot write checkpoint {}: tensor `{name}`: {problem}", path.display())]
    InvalidTensor { path: PathBuf, name: String, problem: String },
    #[error("checkpoint {}: tensor `{name}` holds {count} non-finite value(s) (NaN or ±inf) among {total}; refusing to load it", path.display())]
    NonFinite { path: PathBuf, name: String, count: usize, total: usize },
    #[error("checkpoint {}: tensor `{name}` ({dtype}) cannot be converted to f32: {problem}", path.display())]
    Conversion { path: PathBuf, name: String, dtype: String, problem: String },
    #[error("checkpoint {}: unexpected tensor(s) {}: {}", path.display(), quoted(names), unexpected_hint(model))]
    Unexpected { path: PathBuf, names: Vec<String>, model: Vec<String> },
}

/// What a checkpoint holds where tensor `name` is missing: the layers' parameters, or a momentum
/// run's optimizer state (which the nn.Sequential names say nothing of).
fn expected_names(name: &str) -> &'static str {
    match name.starts_with("optimizer.") {
        true => "a run with train.optimizer = \"momentum\" saves `optimizer.velocity.{parameter}` for each parameter; resume it with the optimizer it was trained with",
        false => "expected `layers.{i}.weight` [out, in] and `layers.{i}.bias` [out] per layer, or PyTorch nn.Sequential `{k}.weight` / `{k}.bias`",
    }
}

/// What the model loading a checkpoint holds, for one with tensors it has none of: an MLP's
/// layout (and how PyTorch's maps onto it), or another model's own names (an MLP's checkpoint
/// given to an RNN was told what an MLP checkpoint holds, which it already was).
fn unexpected_hint(model: &[String]) -> String {
    match model.iter().all(|n| n.starts_with("layers.")) {
        true => "an MLP checkpoint holds `layers.{i}.weight` [out, in] and `layers.{i}.bias` [out] (or PyTorch nn.Sequential `{k}.weight` / `{k}.bias` of Linear layers), and optionally `optimizer.velocity.*` (momentum's) state; save only the Linear layers' parameters".into(),
        false => format!("this model's tensors are {}: a checkpoint of another model does not load into it", quoted(model)),
    }
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn path_or_memory(p: &Option<PathBuf>) -> String {
    p.as_ref().map_or_else(|| "(in memory)".to_string(), |p| p.display().to_string())
}

/// A named f32 tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        NamedTensor { name: name.into(), shape, data }
    }

    /// Elements implied by the shape (1 for a scalar `[]`; `usize::MAX` when the product
    /// overflows, which no data can match).
    pub fn numel(&self) -> usize {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX)
    }
}

/// Tensors and string metadata of one checkpoint.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// After [`load`]: sorted by name.
    pub tensors: Vec<NamedTensor>,
    /// User metadata. The reserved keys `format` and `checksum` are written by [`save`]
    /// (overriding any given here) and removed again by [`load`] after verification.
    pub metadata: BTreeMap<String, String>,
    /// The file this was loaded from (`None` when built in memory); names it in errors.
    /// Not saved.
    pub source: Option<PathBuf>,
}

/// Tensors and metadata compared; `source` and tensor order are ignored.
impl PartialEq for Checkpoint {
    fn eq(&self, other: &Self) -> bool {
        fn by_name(c: &Checkpoint) -> BTreeMap<&str, &NamedTensor> {
            c.tensors.iter().map(|t| (t.name.as_str(), t)).collect()
        }
        self.tensors.len() == other.tensors.len()
            && by_name(self) == by_name(other)
            && self.metadata == other.metadata
    }
}

impl Checkpoint {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a tensor (builder style).
    pub fn with_tensor(mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        self.push(name, shape, data);
        self
    }

    pub fn push(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        self.tensors.push(NamedTensor::new(name, shape, data));
    }

    /// Sets a metadata entry (builder style).
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The tensor `name`, which must exist and have exactly `shape`.
    pub fn expect_shape(&self, name: &str, shape: &[usize]) -> Result<&NamedTensor, CheckpointError> {
        let t = self.get(name).ok_or_else(|| CheckpointError::MissingTensor {
            path: self.source.clone(),
            name: name.to_string(),
            holds: self.holds(),
        })?;
        if t.shape != shape {
            return Err(CheckpointError::Shape {
                path: self.source.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    /// `name [shape], ...` of every tensor (for messages).
    fn holds(&self) -> String {
        if self.tensors.is_empty() {
            return "no tensors".into();
        }
        self.tensors.iter().map(|t| format!("{} {:?}", t.name, t.shape)).collect::<Vec<_>>().join(", ")
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

/// Little-endian bytes of `data`, borrowed where the host is little-endian.
fn le_bytes(data: &[f32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(data))
    } else {
        Cow::Owned(data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

/// `crc32:xxxxxxxx` over `(name, shape, little-endian bytes)` of each tensor in name order, then
/// the metadata entries (except `checksum`) in key order.
fn checksum<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], Cow<'a, [u8]>)>,
    metadata: &BTreeMap<String, String>,
) -> String {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = crc32fast::Hasher::new();
    for (name, shape, bytes) in &sorted {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(&(shape.len() as u64).to_le_bytes());
        for d in *shape {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(bytes);
    }
    for (k, v) in metadata.iter().filter(|(k, _)| k.as_str() != CHECKSUM_KEY) {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(v.as_bytes());
        h.update(&[0]);
    }
    format!("crc32:{:08x}", h.finalize())
}

/// Writes `ck` to `path` atomically (temporary file, fsync, rename). On failure an existing
/// file at `path` is left as it was and no temporary file remains.
pub fn save(path: &Path, ck: &Checkpoint) -> Result<(), CheckpointError> {
    let invalid = |name: &str, problem: String| CheckpointError::InvalidTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
        problem,
    };
    let mut seen = std::collections::BTreeSet::new();
    for t in &ck.tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(invalid(&t.name, "appears twice".into()));
        }
        if t.name.is_empty() || t.name == "__metadata__" {
            return Err(invalid(&t.name, "is not a valid tensor name".into()));
        }
        if t.data.len() != t.numel() {
            return Err(invalid(
                &t.name,
                format!("shape {:?} needs {} values, the data has {}", t.shape, t.numel(), t.data.len()),
            ));
        }
    }

    let bytes: Vec<Cow<'_, [u8]>> = ck.tensors.iter().map(|t| le_bytes(&t.data)).collect();
    let mut metadata = ck.metadata.clone();
    metadata.insert(FORMAT_KEY.into(), FORMAT.into());
    metadata.remove(CHECKSUM_KEY);
    let sum = checksum(
        ck.tensors
            .iter()
            .zip(&bytes)
            .map(|(t, b)| (t.name.as_str(), t.shape.as_slice(), Cow::Borrowed(b.as_ref()))),
        &metadata,
    );
    metadata.insert(CHECKSUM_KEY.into(), sum);

    let mut views = Vec::with_capacity(ck.tensors.len());
    for (t, b) in ck.tensors.iter().zip(&bytes) {
        let v = TensorView::new(Dtype::F32, t.shape.clone(), b.as_ref())
            .map_err(|e| invalid(&t.name, e.to_string()))?;
        views.push((t.name.as_str(), v));
    }
    let header: HashMap<String, String> = metadata.into_iter().collect();
    let file = safetensors::serialize(views, Some(header)).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        detail: format!("serialization failed: {e}"),
    })?;
    write_atomic_io(path, &file).map_err(|e| CheckpointError::Write {
        path: path.to_path_buf(),
        action: e.action,
        at: e.path,
        source: e.source,
    })
}

/// The largest checkpoint read: a regular file is read whole when memory can hold it; a device
/// or a pipe stops at [`crate::bounded_read::NON_REGULAR_MAX`].
pub const MAX_CHECKPOINT_BYTES: u64 = u64::MAX;

/// Reads a checkpoint and verifies it: safetensors structure, the format tag and the checksum
/// when the file has them, finite values everywhere. Tensors come back sorted by name; the
/// reserved metadata keys are removed.
///
/// A file without a `checksum` (written by another tool) is loaded unverified, with a notice
/// the first time it is read in this process; when it has no batchscope `format` tag either
/// (none, or another tool's such as PyTorch's `"pt"`), F16 / BF16 /
/// F64 tensors are converted to f32, PyTorch `nn.Sequential` names are mapped to
/// `layers.{i}.*` and tensors that are no MLP parameters are refused by name ([`foreign`]).
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    header_scan::check(path)?;
    let buf = crate::bounded_read::read(path, MAX_CHECKPOINT_BYTES).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CheckpointError::NotFound { path: path.to_path_buf() },
        _ => CheckpointError::Read { path: path.to_path_buf(), source: e },
    })?;
    let format_err = |detail: String| CheckpointError::Format { path: path.to_path_buf(), detail };
    let (_, header) = SafeTensors::read_metadata(&buf).map_err(|e| format_err(e.to_string()))?;
    let st = SafeTensors::deserialize(&buf).map_err(|e| format_err(e.to_string()))?;
    let mut metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    // Written by another tool: no checksum, and no format tag or another tool's
    // (`safetensors.torch.save_file(..., metadata={"format": "pt"})`, Hugging Face's "pt", "np",
    // "flax", "tf", "mlx"). A batchscope tag of another version is refused below.
    let ours = |f: &String| f.starts_with(FORMAT_FAMILY);
    let foreign = !metadata.get(FORMAT_KEY).is_some_and(ours) && !metadata.contains_key(CHECKSUM_KEY);

    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    let mut views = Vec::with_capacity(names.len());
    for name in names {
        let v = st.tensor(name).map_err(|e| format_err(e.to_string()))?;
        let convertible = matches!(v.dtype(), Dtype::F16 | Dtype::BF16 | Dtype::F64);
        if v.dtype() != Dtype::F32 && !(foreign && convertible) {
            return Err(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{:?}", v.dtype()),
            });
        }
        views.push((name, v));
    }

    if let Some(found) = metadata.get(FORMAT_KEY).filter(|_| !foreign) {
        if found != FORMAT {
            return Err(CheckpointError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: found.clone(),
            });
        }
    }
    match metadata.get(CHECKSUM_KEY) {
        Some(stored) => {
            let computed =
                checksum(views.iter().map(|(n, v)| (*n, v.shape(), Cow::Borrowed(v.data()))), &metadata);
            if *stored != computed {
                return Err(CheckpointError::ChecksumMismatch {
                    path: path.to_path_buf(),
                    stored: stored.clone(),
                    computed,
                });
            }
        }
        None => notice_once(path, "has no checksum (not written by batchscope?): loaded unverified"),
    }
    metadata.remove(CHECKSUM_KEY);
    metadata.remove(FORMAT_KEY);

    let mut tensors = Vec::with_capacity(views.len());
    for (name, v) in views {
        let data = foreign::to_f32(path, name, v.dtype(), v.data())?;
        let count = data.iter().filter(|x| !x.is_finite()).count();
        if count > 0 {
            return Err(CheckpointError::NonFinite {
                path: path.to_path_buf(),
                name: name.to_string(),
                count,
                total: data.len(),
            });
        }
        tensors.push(NamedTensor { name: name.to_string(), shape: v.shape().to_vec(), data });
    }
    if foreign {
        let renames = foreign::normalise(path, &mut tensors)?;
        if !renames.is_empty() {
            let list: Vec<String> = renames.iter().map(|(a, b)| format!("{a} → {b}")).collect();
            notice_once(path, &format!("PyTorch nn.Sequential names mapped: {}", list.join(", ")));
            tensors.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
    Ok(Checkpoint { tensors, metadata, source: Some(path.to_path_buf()) })
}

/// The same as [`load`] (which now accepts files without a checksum, with a notice); kept for
/// callers that load weights exported from other tools.
pub fn load_unverified(path: &Path) -> Result<Checkpoint, CheckpointError> {
    load(path)
}

/// Logs `what` about `path` once per process (a file is often loaded twice: checked before the
/// run directory is made, then read for its weights).
fn notice_once(path: &Path, what: &str) {
    static SEEN: OnceLock<Mutex<std::collections::BTreeSet<(PathBuf, String)>>> = OnceLock::new();
    let first = SEEN
        .get_or_init(Default::default)
        .lock()
        .map(|mut seen| seen.insert((path.to_path_buf(), what.to_string())))
        .unwrap_or(true);
    if first {
        log::warn!("checkpoint {}: {what}", path.display());
    }
}

/// `layers.{i}.weight`
pub fn weight_name(layer: usize) -> String {
    format!("layers.{layer}.weight")
}

/// `layers.{i}.bias`
pub fn bias_name(layer: usize) -> String {
    format!("layers.{layer}.bias")
}

/// `optimizer.{state}.{param}`, e.g. `optimizer.velocity.layers.0.weight`.
pub fn optimizer_name(state: &str, param: &str) -> String {
    format!("optimizer.{state}.{param}")
}

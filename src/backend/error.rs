//! Typed errors of the backends.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error(
        "no GPU adapter found{detail}; install a Vulkan driver (Debian/Ubuntu: `apt-get install -y mesa-vulkan-drivers` gives the lavapipe software device) or use `--backend cpu`"
    )]
    NoAdapter { detail: String },
    #[error("no adapter matches `{wanted}`; available: {available}")]
    AdapterNotFound { wanted: String, available: String },
    #[error(
        "`--adapter {wanted}` matches {count} adapters: {matches}; give the index of the one you mean (as `batchscope devices` lists them) or a name only it has"
    )]
    AdapterAmbiguous { wanted: String, count: usize, matches: String },
    #[error("could not create a device on `{adapter}`: {reason}")]
    DeviceRequest { adapter: String, reason: String },
    #[error("out of device memory while allocating {what} ({} bytes)", byte_count(*bytes))]
    OutOfMemory { what: String, bytes: u64 },
    #[error("{what} needs {} bytes but the adapter allows at most {limit} bytes ({limit_name})", byte_count(*bytes))]
    ExceedsLimit { what: String, bytes: u64, limit: u64, limit_name: &'static str },
    #[error("GPU validation error in {what}: {message}")]
    Validation { what: String, message: String },
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("reading a GPU buffer back failed: {0}")]
    Readback(String),
    #[error("{op}: operand `{operand}` has {have} elements, needs at least {need}")]
    Shape { op: &'static str, operand: &'static str, have: usize, need: usize },
    #[error("{op}: {message}")]
    Invalid { op: &'static str, message: String },
}

/// A byte count as said in an error: sizes are computed with saturating arithmetic, so
/// `u64::MAX` stands for a count that overflowed.
fn byte_count(bytes: u64) -> String {
    match bytes {
        u64::MAX => "more than 2^64 - 1".to_string(),
        b => b.to_string(),
    }
}

impl BackendError {
    /// A buffer's size error said of `what` (the data it holds and the keys that size it), not
    /// of "f32 buffer": the one line then says what to change. Other errors are kept.
    pub fn of_buffer(self, what: &str) -> Self {
        match self {
            BackendError::ExceedsLimit { bytes, limit, limit_name, .. } => {
                BackendError::ExceedsLimit { what: what.to_string(), bytes, limit, limit_name }
            }
            BackendError::OutOfMemory { bytes, .. } => {
                BackendError::OutOfMemory { what: what.to_string(), bytes }
            }
            other => other,
        }
    }
}

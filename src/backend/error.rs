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
    #[error("could not create a device on `{adapter}`: {reason}")]
    DeviceRequest { adapter: String, reason: String },
    #[error("out of device memory while allocating {what} ({bytes} bytes)")]
    OutOfMemory { what: String, bytes: u64 },
    #[error("{what} needs {bytes} bytes but the adapter allows at most {limit} bytes ({limit_name})")]
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

//! Placeholder: being written (matmul host wrapper).
use super::device::{GpuDevice, RawBuf};
use crate::backend::{Gemm, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulVariant {
    Naive,
    Tiled,
}

pub fn record(
    _dev: &GpuDevice,
    _v: MatmulVariant,
    _g: &Gemm,
    _a: &RawBuf,
    _b: &RawBuf,
    _c: &RawBuf,
) -> Result<()> {
    Err(crate::backend::BackendError::Invalid { op: "matmul", message: "not yet written".into() })
}

//! A set of parameter-shaped tensors (parameters, gradients, velocities, directions) with the
//! vector-space ops the optimizers and curvature code need, each recorded on the backend.

use crate::backend::{Backend, Result};

/// Tensors in a fixed order with their shapes: for an MLP `[W0, b0, W1, b1, ...]`,
/// `W_l: [out, in]` (PyTorch `nn.Linear` layout), `b_l: [out]`.
pub struct ParamSet<B: Backend> {
    pub tensors: Vec<B::Buf>,
    pub shapes: Vec<Vec<usize>>,
    pub names: Vec<String>,
}

impl<B: Backend> ParamSet<B> {
    /// Zeros shaped like `shapes`.
    pub fn zeros(b: &B, names: &[String], shapes: &[Vec<usize>]) -> Result<Self> {
        let tensors = shapes.iter().map(|s| b.zeros(s.iter().product())).collect::<Result<Vec<_>>>()?;
        Ok(ParamSet { tensors, shapes: shapes.to_vec(), names: names.to_vec() })
    }

    /// Upload host vectors (one per tensor, lengths must match the shapes).
    pub fn from_host(b: &B, names: &[String], shapes: &[Vec<usize>], host: &[Vec<f32>]) -> Result<Self> {
        let mut tensors = Vec::with_capacity(host.len());
        for (i, (h, s)) in host.iter().zip(shapes).enumerate() {
            let need: usize = s.iter().product();
            crate::backend::check_len("ParamSet::from_host", "tensor", h.len(), need)?;
            if h.len() != need {
                return Err(crate::backend::BackendError::Invalid {
                    op: "ParamSet::from_host",
                    message: format!("tensor {i} has {} values, shape {s:?} needs {need}", h.len()),
                });
            }
            tensors.push(b.upload(h)?);
        }
        Ok(ParamSet { tensors, shapes: shapes.to_vec(), names: names.to_vec() })
    }

    /// Zeros with the same shapes as `self`.
    pub fn zeros_like(&self, b: &B) -> Result<Self> {
        Self::zeros(b, &self.names, &self.shapes)
    }

    /// Elements of tensor `i`.
    pub fn numel_of(&self, i: usize) -> usize {
        self.shapes[i].iter().product()
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        (0..self.tensors.len()).map(|i| self.numel_of(i)).sum()
    }

    /// Copy every tensor to the host (a sync on the GPU).
    pub fn to_host(&self, b: &B) -> Result<Vec<Vec<f32>>> {
        self.tensors
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = b.read(t)?;
                v.truncate(self.numel_of(i));
                Ok(v)
            })
            .collect()
    }

    /// All tensors concatenated on the host.
    pub fn to_flat(&self, b: &B) -> Result<Vec<f32>> {
        let mut flat = Vec::new();
        self.to_flat_into(b, &mut flat)?;
        Ok(flat)
    }

    /// All tensors concatenated into `flat` (resized to [`Self::numel`]; its allocation is
    /// reused, so a buffer kept from step to step costs one copy and no page faults).
    pub fn to_flat_into(&self, b: &B, flat: &mut Vec<f32>) -> Result<()> {
        flat.resize(self.numel(), 0.0);
        let mut off = 0;
        for (i, t) in self.tensors.iter().enumerate() {
            let n = self.numel_of(i);
            b.read_into(t, &mut flat[off..off + n])?;
            off += n;
        }
        Ok(())
    }

    /// Overwrite from one flat host vector (the concatenation order of `to_flat`).
    pub fn write_flat(&mut self, b: &B, flat: &[f32]) -> Result<()> {
        crate::backend::check_len("ParamSet::write_flat", "flat", flat.len(), self.numel())?;
        let mut off = 0;
        for i in 0..self.tensors.len() {
            let n = self.numel_of(i);
            b.write(&mut self.tensors[i], &flat[off..off + n])?;
            off += n;
        }
        Ok(())
    }

    /// `self = other` (recorded).
    pub fn copy_from(&mut self, b: &B, other: &Self) -> Result<()> {
        for (dst, src) in self.tensors.iter_mut().zip(&other.tensors) {
            b.copy(src, dst)?;
        }
        Ok(())
    }

    /// `self += alpha * x` (recorded).
    pub fn axpy(&mut self, b: &B, alpha: f32, x: &Self) -> Result<()> {
        for i in 0..self.tensors.len() {
            let n = self.numel_of(i);
            b.axpy(n, alpha, &x.tensors[i], &mut self.tensors[i])?;
        }
        Ok(())
    }

    /// `self *= alpha` (recorded).
    pub fn scale(&mut self, b: &B, alpha: f32) -> Result<()> {
        for i in 0..self.tensors.len() {
            let n = self.numel_of(i);
            b.scale(n, alpha, &mut self.tensors[i])?;
        }
        Ok(())
    }

    /// Per-tensor `Σ self_i · other_i` into `out[slot0 + i]` (recorded, stays on the device).
    pub fn dot_into(&self, b: &B, other: &Self, out: &mut B::Buf, slot0: usize) -> Result<()> {
        for i in 0..self.tensors.len() {
            b.dot(self.numel_of(i), &self.tensors[i], &other.tensors[i], out, slot0 + i)?;
        }
        Ok(())
    }

    /// Per-tensor `Σ self_i²` into `out[slot0 + i]` (recorded, stays on the device).
    pub fn sum_sq_into(&self, b: &B, out: &mut B::Buf, slot0: usize) -> Result<()> {
        for i in 0..self.tensors.len() {
            b.sum_sq(self.numel_of(i), &self.tensors[i], out, slot0 + i)?;
        }
        Ok(())
    }

    /// `Σ self · other` over every tensor, read to the host (a sync), accumulated in f64.
    pub fn dot(&self, b: &B, other: &Self) -> Result<f64> {
        let mut out = b.zeros(self.tensors.len())?;
        self.dot_into(b, other, &mut out, 0)?;
        Ok(b.read(&out)?.iter().map(|&v| v as f64).sum())
    }
}

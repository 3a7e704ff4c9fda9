//! Mean gradients over chosen example sets of a resident dataset, on any backend.

use std::collections::HashMap;

use crate::backend::{Backend, Result};
use crate::data::device::{BatchBuffers, DeviceDataset};
use crate::model::{Mlp, ParamSet, Targets, Workspace};

struct Slot<B: Backend> {
    ws: Workspace<B>,
    bt: BatchBuffers<B>,
    grads: ParamSet<B>,
}

/// Computes `∇ mean_{i ∈ idx} L_i(θ)` for index sets `idx` at fixed parameters θ.
pub struct GradProbe<'a, B: Backend> {
    b: &'a B,
    pub model: Mlp,
    pub params: ParamSet<B>,
    pub data: DeviceDataset<B>,
    slots: HashMap<usize, Slot<B>>,
}

impl<'a, B: Backend> GradProbe<'a, B> {
    pub fn new(b: &'a B, model: Mlp, params: ParamSet<B>, data: DeviceDataset<B>) -> Self {
        GradProbe { b, model, params, data, slots: HashMap::new() }
    }

    /// Make sure buffers for batches of `rows` exist. Those of other sizes are dropped first:
    /// the experiment draws every batch of one size before the next (n = 1, 2, 4, ..), so the
    /// probe holds one size's buffers at a time, not the sum over all sizes.
    fn slot(&mut self, rows: usize) -> Result<()> {
        if !self.slots.contains_key(&rows) {
            self.slots.clear();
            let s = Slot {
                ws: self.model.workspace(self.b, rows)?,
                bt: BatchBuffers::new(self.b, rows, self.model.inputs(), self.model.outputs())?,
                grads: self.params.zeros_like(self.b)?,
            };
            self.slots.insert(rows, s);
        }
        Ok(())
    }

    /// Mean gradient over the examples `idx` (repeats allowed), flat in f64.
    pub fn grad(&mut self, idx: &[u32]) -> Result<Vec<f64>> {
        let b = self.b;
        let rows = idx.len();
        let classes = self.data.is_classification();
        self.slot(rows)?;
        let GradProbe { model, params, data, slots, .. } = self;
        let s = slots.get_mut(&rows).ok_or(crate::backend::BackendError::Invalid {
            op: "GradProbe",
            message: "missing slot".into(),
        })?;
        data.load_batch(b, idx, &mut s.bt)?;
        let t = if classes { Targets::Classes(&s.bt.labels) } else { Targets::Values(&s.bt.targets) };
        model.loss_and_grad(b, params, &s.bt.x, &t, &mut s.ws, &mut s.grads)?;
        Ok(s.grads.to_flat(b)?.into_iter().map(|v| v as f64).collect())
    }

    /// The full-data gradient `G`, accumulated over chunks of at most `chunk` examples.
    pub fn full_grad(&mut self, chunk: usize) -> Result<Vec<f64>> {
        let n = self.data.n;
        let chunk = chunk.clamp(1, n.max(1));
        let mut g = vec![0.0; self.params.numel()];
        let mut first = 0;
        while first < n {
            let rows = chunk.min(n - first);
            let idx: Vec<u32> = (first as u32..(first + rows) as u32).collect();
            let gc = self.grad(&idx)?;
            let w = rows as f64 / n as f64;
            g.iter_mut().zip(&gc).for_each(|(a, c)| *a += w * c);
            first += rows;
        }
        Ok(g)
    }
}

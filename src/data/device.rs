//! A resident dataset on the device: features split into row windows that each fit one
//! storage binding, labels or targets beside them, and the minibatch gather.

use crate::backend::{Backend, Result};

use super::{Dataset, Labels};

/// Labels `[N]` or regression targets `[N, K]` on the device.
pub enum DeviceTargets<B: Backend> {
    Classes(B::IdxBuf),
    Values(B::Buf, usize),
}

/// A [`Dataset`] uploaded once; minibatches are gathered by index on the device.
pub struct DeviceDataset<B: Backend> {
    /// `(first_row, rows, x [rows, dim])`, each within `max_binding_bytes`.
    pub windows: Vec<(usize, usize, B::Buf)>,
    pub targets: DeviceTargets<B>,
    pub n: usize,
    pub dim: usize,
}

/// Buffers of one minibatch of `rows` examples.
pub struct BatchBuffers<B: Backend> {
    pub rows: usize,
    /// Example indices `[rows]`.
    pub idx: B::IdxBuf,
    /// Features `[rows, dim]`.
    pub x: B::Buf,
    /// Labels `[rows]` (classification).
    pub labels: B::IdxBuf,
    /// Targets `[rows, K]` (regression; one element otherwise).
    pub targets: B::Buf,
}

impl<B: Backend> BatchBuffers<B> {
    pub fn new(b: &B, rows: usize, dim: usize, outputs: usize) -> Result<Self> {
        Ok(BatchBuffers {
            rows,
            idx: b.upload_idx(&vec![0u32; rows])?,
            x: b.zeros(rows * dim)?,
            labels: b.upload_idx(&vec![0u32; rows])?,
            targets: b.zeros(rows * outputs.max(1))?,
        })
    }
}

impl<B: Backend> DeviceDataset<B> {
    /// Upload `d`, splitting the features into windows of at most `b.max_binding_bytes()`.
    pub fn upload(b: &B, d: &Dataset) -> Result<Self> {
        let row_bytes = (d.dim * 4).max(4) as u64;
        let rows_per_window = (b.max_binding_bytes() / row_bytes).clamp(1, usize::MAX as u64) as usize;
        let mut windows = Vec::new();
        let mut first = 0;
        while first < d.n {
            let rows = rows_per_window.min(d.n - first);
            windows.push((first, rows, b.upload(&d.x[first * d.dim..(first + rows) * d.dim])?));
            first += rows;
        }
        let targets = match &d.targets {
            Labels::Classes { labels, .. } => DeviceTargets::Classes(
                b.upload_idx(labels).map_err(|e| e.of_buffer(&format!("the labels of {} examples (data.n_train or data.n_val)", d.n)))?,
            ),
            Labels::Values { targets, outputs } => DeviceTargets::Values(
                b.upload(targets).map_err(|e| {
                    e.of_buffer(&format!("the targets of {} examples × {outputs} outputs (data.n_train or data.n_val, data.outputs)", d.n))
                })?,
                *outputs,
            ),
        };
        Ok(DeviceDataset { windows, targets, n: d.n, dim: d.dim })
    }

    pub fn is_classification(&self) -> bool {
        matches!(self.targets, DeviceTargets::Classes(_))
    }

    /// Record the gather of the examples `bt.idx` (already written) into `bt`.
    pub fn gather(&self, b: &B, bt: &mut BatchBuffers<B>) -> Result<()> {
        let rows = bt.rows;
        for (first, wrows, x) in &self.windows {
            b.gather_rows_window(rows, self.dim, x, *first, *wrows, &bt.idx, &mut bt.x)?;
        }
        match &self.targets {
            DeviceTargets::Classes(l) => b.gather_idx(rows, l, &bt.idx, &mut bt.labels),
            DeviceTargets::Values(t, k) => {
                b.gather_rows_window(rows, *k, t, 0, self.n, &bt.idx, &mut bt.targets)
            }
        }
    }

    /// Write `idx` into `bt.idx` and record the gather.
    pub fn load_batch(&self, b: &B, idx: &[u32], bt: &mut BatchBuffers<B>) -> Result<()> {
        b.write_idx(&mut bt.idx, idx)?;
        self.gather(b, bt)
    }
}

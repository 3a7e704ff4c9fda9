//! Sequence sets on the device: the resident training set the minibatches are gathered from,
//! and an evaluation set in chunks.

use crate::backend::{Backend, Result};
use crate::data::sequences::SeqData;
use crate::data::Labels;
use crate::model::{ParamSet, Rnn, RnnWorkspace, Targets};

/// A resident sequence set on the device: `xs[t]` is `x_t [n, D]`, targets `[n]` or `[n, K]`.
pub struct DeviceSeqs<B: Backend> {
    pub n: usize,
    pub dim: usize,
    pub xs: Vec<B::Buf>,
    pub labels: B::IdxBuf,
    pub values: B::Buf,
    pub outputs: usize,
    pub classification: bool,
}

impl<B: Backend> DeviceSeqs<B> {
    pub fn upload(b: &B, d: &SeqData) -> Result<Self> {
        let xs = d.xs.iter().map(|x| b.upload(x)).collect::<Result<Vec<_>>>()?;
        let (labels, values, outputs, classification) = match &d.targets {
            Labels::Classes { labels, classes } => (b.upload_idx(labels)?, b.zeros(1)?, *classes, true),
            Labels::Values { targets, outputs } => {
                (b.upload_idx(&[0])?, b.upload(targets)?, *outputs, false)
            }
        };
        Ok(DeviceSeqs { n: d.n, dim: d.dim, xs, labels, values, outputs, classification })
    }

    pub fn targets(&self) -> Targets<'_, B> {
        if self.classification {
            Targets::Classes(&self.labels)
        } else {
            Targets::Values(&self.values)
        }
    }
}

/// A sequence set in chunks with their own workspaces, for evaluating the mean loss.
pub struct RnnEvalSet<B: Backend> {
    pub chunks: Vec<(DeviceSeqs<B>, RnnWorkspace<B>)>,
    pub n: usize,
}

impl<B: Backend> RnnEvalSet<B> {
    /// `d` split into chunks of at most `chunk` sequences.
    pub fn new(b: &B, model: &Rnn, d: &SeqData, chunk: usize) -> Result<Self> {
        let mut chunks = Vec::new();
        let mut first = 0;
        while first < d.n {
            let rows = chunk.max(1).min(d.n - first);
            chunks.push((DeviceSeqs::upload(b, &d.slice(first, rows))?, model.workspace(b, rows)?));
            first += rows;
        }
        Ok(RnnEvalSet { chunks, n: d.n })
    }

    /// Slots [`Self::record`] writes.
    pub fn slots(&self) -> usize {
        2 * self.chunks.len()
    }

    /// Record the loss and correctness sums of every chunk at parameters `p` into
    /// `out[slot0 + 2i]` and `out[slot0 + 2i + 1]` (nothing read back).
    pub fn record(
        &mut self,
        b: &B,
        model: &Rnn,
        p: &ParamSet<B>,
        out: &mut B::Buf,
        slot0: usize,
    ) -> Result<()> {
        for (i, (d, ws)) in self.chunks.iter_mut().enumerate() {
            model.forward(b, p, &d.xs, ws)?;
            model.loss(b, &d.targets(), ws)?;
            b.sum(ws.rows, &ws.loss, out, slot0 + 2 * i)?;
            b.sum(ws.rows, &ws.correct, out, slot0 + 2 * i + 1)?;
        }
        Ok(())
    }

    /// `(mean loss, mean 0-1 error)` from the slots written by [`Self::record`].
    pub fn finish(&self, stats: &[f32], slot0: usize) -> (f64, f64) {
        let k = self.chunks.len();
        let loss: f64 = (0..k).map(|i| stats[slot0 + 2 * i] as f64).sum();
        let correct: f64 = (0..k).map(|i| stats[slot0 + 2 * i + 1] as f64).sum();
        let n = self.n.max(1) as f64;
        (loss / n, (n - correct) / n)
    }

    /// Mean loss and 0-1 error at `p` (one read back).
    pub fn evaluate(&mut self, b: &B, model: &Rnn, p: &ParamSet<B>) -> Result<(f64, f64)> {
        let mut stats = b.zeros(self.slots())?;
        self.record(b, model, p, &mut stats, 0)?;
        let s = b.read(&stats)?;
        Ok(self.finish(&s, 0))
    }
}

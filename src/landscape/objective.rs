//! The loss a landscape slice evaluates: a model (MLP or RNN) with a fixed training subset and
//! validation set resident on the device, evaluated at any parameters without a read back
//! (results go into device slots, so a whole grid of points is one read).

use crate::backend::{Backend, Result};
use crate::data::sequences::SeqData;
use crate::data::{Dataset, Labels};
use crate::model::{LossKind, Mlp, ParamSet, Rnn, Targets, Workspace};
use crate::train::rnn::RnnEvalSet;

/// Which examples a loss is taken over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

/// A model and its evaluation sets.
pub trait Objective<B: Backend> {
    /// `mlp` or `rnn`.
    fn kind(&self) -> &'static str;
    /// Tensor names and shapes in ParamSet order.
    fn layout(&self) -> (Vec<String>, Vec<Vec<usize>>);
    fn classification(&self) -> bool;
    /// Examples in `split` (0 when there are none).
    fn examples(&self, split: Split) -> usize;
    /// Device slots [`Objective::record`] writes for `split`.
    fn slots(&self, split: Split) -> usize;
    /// Record the loss and correctness sums over `split` at `p` into `out[slot0 ..]`.
    fn record(
        &mut self,
        b: &B,
        p: &ParamSet<B>,
        split: Split,
        out: &mut B::Buf,
        slot0: usize,
    ) -> Result<()>;
    /// `(mean loss, mean 0-1 error)` of `split` from the slots [`Objective::record`] wrote.
    fn finish(&self, split: Split, stats: &[f32], slot0: usize) -> (f64, f64);
    /// The gradient of the mean training loss (over the whole training subset) at `p`.
    fn mean_grad(&mut self, b: &B, p: &ParamSet<B>, grads: &mut ParamSet<B>) -> Result<()>;

    /// Mean loss and 0-1 error of `split` at `p` (one read back).
    fn evaluate(&mut self, b: &B, p: &ParamSet<B>, split: Split) -> Result<(f64, f64)> {
        let mut stats = b.zeros(self.slots(split).max(1))?;
        self.record(b, p, split, &mut stats, 0)?;
        let s = b.read(&stats)?;
        Ok(self.finish(split, &s, 0))
    }
}

/// Sum per-chunk `(loss, correct)` slot pairs into means over `n` examples.
fn finish_pairs(chunks: usize, n: usize, stats: &[f32], slot0: usize) -> (f64, f64) {
    let loss: f64 = (0..chunks).map(|i| stats[slot0 + 2 * i] as f64).sum();
    let correct: f64 = (0..chunks).map(|i| stats[slot0 + 2 * i + 1] as f64).sum();
    let n = n.max(1) as f64;
    (loss / n, (n - correct) / n)
}

/// `p = 0` (not `0 · p`, which keeps NaN).
pub fn zero<B: Backend>(b: &B, p: &mut ParamSet<B>) -> Result<()> {
    for t in p.tensors.iter_mut() {
        b.fill(t, 0.0)?;
    }
    Ok(())
}

// ---- MLP -------------------------------------------------------------------------------------

struct MlpChunk<B: Backend> {
    /// `x [rows, inputs]`.
    x: B::Buf,
    /// Labels `[rows]` (classification) or a placeholder.
    labels: B::IdxBuf,
    /// Targets `[rows, outputs]` (regression) or a placeholder.
    values: B::Buf,
    rows: usize,
}

/// An MLP over resident chunks of a training subset and a validation set.
pub struct MlpObjective<B: Backend> {
    pub mlp: Mlp,
    train: Vec<MlpChunk<B>>,
    val: Vec<MlpChunk<B>>,
    n_train: usize,
    n_val: usize,
    /// Gradient of one chunk's mean loss.
    chunk_grad: Option<ParamSet<B>>,
    /// One workspace per chunk length (the full chunk, each split's shorter last one), shared
    /// by the chunks of that length as the training's evaluation shares its two: one per chunk
    /// held n_eval × Σ widths of activations (8.6 GB for 131 072 rows of 2 × 2048 units).
    workspaces: Vec<(usize, Workspace<B>)>,
}

/// The workspace of `rows`-row chunks in `list`.
fn workspace_of<B: Backend>(
    list: &mut [(usize, Workspace<B>)],
    rows: usize,
) -> Result<&mut Workspace<B>> {
    list.iter_mut().find(|(r, _)| *r == rows).map(|(_, ws)| ws).ok_or(
        crate::backend::BackendError::Invalid {
            op: "landscape objective",
            message: format!("no workspace of {rows} rows"),
        },
    )
}

fn mlp_chunks<B: Backend>(b: &B, d: &Dataset, chunk: usize) -> Result<Vec<MlpChunk<B>>> {
    let mut out = Vec::new();
    let mut first = 0;
    while first < d.n {
        let rows = chunk.max(1).min(d.n - first);
        let x = b.upload(&d.x[first * d.dim..(first + rows) * d.dim])?;
        let (labels, values) = match &d.targets {
            Labels::Classes { labels, .. } => (b.upload_idx(&labels[first..first + rows])?, b.zeros(1)?),
            Labels::Values { targets, outputs } => {
                (b.upload_idx(&[0])?, b.upload(&targets[first * outputs..(first + rows) * outputs])?)
            }
        };
        out.push(MlpChunk { x, labels, values, rows });
        first += rows;
    }
    Ok(out)
}

impl<B: Backend> MlpObjective<B> {
    /// `train` and `val` resident in chunks of at most `chunk` rows.
    pub fn new(b: &B, mlp: Mlp, train: &Dataset, val: &Dataset, chunk: usize) -> Result<Self> {
        let tr = mlp_chunks(b, train, chunk)?;
        let va = mlp_chunks(b, val, chunk)?;
        let mut workspaces: Vec<(usize, Workspace<B>)> = Vec::new();
        for rows in tr.iter().chain(&va).map(|c| c.rows) {
            if !workspaces.iter().any(|(r, _)| *r == rows) {
                workspaces.push((rows, mlp.workspace(b, rows)?));
            }
        }
        Ok(MlpObjective {
            mlp,
            train: tr,
            val: va,
            n_train: train.n,
            n_val: val.n,
            chunk_grad: None,
            workspaces,
        })
    }
}

impl<B: Backend> Objective<B> for MlpObjective<B> {
    fn kind(&self) -> &'static str {
        "mlp"
    }
    fn layout(&self) -> (Vec<String>, Vec<Vec<usize>>) {
        self.mlp.param_layout()
    }
    fn classification(&self) -> bool {
        self.mlp.spec.loss == LossKind::SoftmaxXent
    }
    fn examples(&self, split: Split) -> usize {
        match split {
            Split::Train => self.n_train,
            Split::Val => self.n_val,
        }
    }
    fn slots(&self, split: Split) -> usize {
        2 * match split {
            Split::Train => self.train.len(),
            Split::Val => self.val.len(),
        }
    }
    fn record(
        &mut self,
        b: &B,
        p: &ParamSet<B>,
        split: Split,
        out: &mut B::Buf,
        slot0: usize,
    ) -> Result<()> {
        let class = self.classification();
        let MlpObjective { mlp, train, val, workspaces, .. } = self;
        let chunks = match split {
            Split::Train => train,
            Split::Val => val,
        };
        for (i, c) in chunks.iter().enumerate() {
            let ws = workspace_of(workspaces, c.rows)?;
            mlp.forward(b, p, &c.x, ws)?;
            let t = if class { Targets::Classes(&c.labels) } else { Targets::Values(&c.values) };
            mlp.loss(b, &t, ws)?;
            b.sum(c.rows, &ws.loss, out, slot0 + 2 * i)?;
            b.sum(c.rows, &ws.correct, out, slot0 + 2 * i + 1)?;
        }
        Ok(())
    }
    fn finish(&self, split: Split, stats: &[f32], slot0: usize) -> (f64, f64) {
        finish_pairs(self.slots(split) / 2, self.examples(split), stats, slot0)
    }
    fn mean_grad(&mut self, b: &B, p: &ParamSet<B>, grads: &mut ParamSet<B>) -> Result<()> {
        let mut cg = match self.chunk_grad.take() {
            Some(g) => g,
            None => p.zeros_like(b)?,
        };
        zero(b, grads)?;
        let class = self.classification();
        let n = self.n_train.max(1) as f32;
        for c in self.train.iter() {
            let t = if class { Targets::Classes(&c.labels) } else { Targets::Values(&c.values) };
            // ∇ mean over all = Σ_chunks (rows / n) ∇ mean over the chunk
            let ws = workspace_of(&mut self.workspaces, c.rows)?;
            self.mlp.loss_and_grad(b, p, &c.x, &t, ws, &mut cg)?;
            grads.axpy(b, c.rows as f32 / n, &cg)?;
        }
        self.chunk_grad = Some(cg);
        Ok(())
    }
}

// ---- RNN -------------------------------------------------------------------------------------

/// An RNN over resident chunks of a training subset and a validation set.
pub struct RnnObjective<B: Backend> {
    pub rnn: Rnn,
    train: RnnEvalSet<B>,
    val: RnnEvalSet<B>,
    chunk_grad: Option<ParamSet<B>>,
}

impl<B: Backend> RnnObjective<B> {
    pub fn new(b: &B, rnn: Rnn, train: &SeqData, val: &SeqData, chunk: usize) -> Result<Self> {
        let tr = RnnEvalSet::new(b, &rnn, train, chunk)?;
        let va = RnnEvalSet::new(b, &rnn, val, chunk)?;
        Ok(RnnObjective { rnn, train: tr, val: va, chunk_grad: None })
    }

    fn set(&self, split: Split) -> &RnnEvalSet<B> {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }
}

impl<B: Backend> Objective<B> for RnnObjective<B> {
    fn kind(&self) -> &'static str {
        "rnn"
    }
    fn layout(&self) -> (Vec<String>, Vec<Vec<usize>>) {
        self.rnn.param_layout()
    }
    fn classification(&self) -> bool {
        self.rnn.spec.loss == LossKind::SoftmaxXent
    }
    fn examples(&self, split: Split) -> usize {
        self.set(split).n
    }
    fn slots(&self, split: Split) -> usize {
        self.set(split).slots()
    }
    fn record(
        &mut self,
        b: &B,
        p: &ParamSet<B>,
        split: Split,
        out: &mut B::Buf,
        slot0: usize,
    ) -> Result<()> {
        let rnn = &self.rnn;
        match split {
            Split::Train => self.train.record(b, rnn, p, out, slot0),
            Split::Val => self.val.record(b, rnn, p, out, slot0),
        }
    }
    fn finish(&self, split: Split, stats: &[f32], slot0: usize) -> (f64, f64) {
        self.set(split).finish(stats, slot0)
    }
    fn mean_grad(&mut self, b: &B, p: &ParamSet<B>, grads: &mut ParamSet<B>) -> Result<()> {
        let mut cg = match self.chunk_grad.take() {
            Some(g) => g,
            None => p.zeros_like(b)?,
        };
        zero(b, grads)?;
        let n = self.train.n.max(1) as f32;
        for (d, ws) in self.train.chunks.iter_mut() {
            self.rnn.loss_and_grad(b, p, &d.xs, &d.targets(), ws, &mut cg, None)?;
            grads.axpy(b, ws.rows as f32 / n, &cg)?;
        }
        self.chunk_grad = Some(cg);
        Ok(())
    }
}

//! The evaluator: mean loss and 0-1 error over a whole dataset (the validation set, and with
//! `train.eval_train` the training set), in chunks of [`EVAL_CHUNK`] rows that share one
//! workspace (and one more for a shorter last chunk), one read back per evaluation: the
//! evaluation's working memory is that of two chunks, however large the set.

use crate::backend::Backend;
use crate::data::{Dataset, Labels};
use crate::model::{LossKind, Mlp, ParamSet, Targets, Workspace};

use super::TrainError;

/// Rows per evaluation chunk.
pub const EVAL_CHUNK: usize = 1024;

/// A dataset on the device, in chunks that share their workspaces.
pub struct EvalSet<B: Backend> {
    chunks: Vec<EvalChunk<B>>,
    n: usize,
    /// `[2 * chunks]`: loss sum and correct sum per chunk.
    stats: B::Buf,
    /// The workspace of every chunk of [`EVAL_CHUNK`] rows (`None` when the set is shorter).
    full: Option<Workspace<B>>,
    /// The workspace of a last chunk of fewer rows (`None` when the set divides evenly).
    tail: Option<Workspace<B>>,
}

struct EvalChunk<B: Backend> {
    /// `[rows, inputs]`.
    x: B::Buf,
    /// `[rows]` class labels (classification), else `[1]` unused.
    labels: B::IdxBuf,
    /// `[rows, outputs]` regression targets, else `[1]` unused.
    targets: B::Buf,
    rows: usize,
}

impl<B: Backend> EvalSet<B> {
    /// `d` uploaded in chunks; `None` for an empty set.
    pub fn new(b: &B, model: &Mlp, d: &Dataset) -> Result<Option<Self>, TrainError> {
        if d.n == 0 {
            return Ok(None);
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < d.n {
            let rows = EVAL_CHUNK.min(d.n - start);
            let x = b.upload(&d.x[start * d.dim..(start + rows) * d.dim])?;
            let (labels, targets) = match &d.targets {
                Labels::Classes { labels, .. } => {
                    (b.upload_idx(&labels[start..start + rows])?, b.zeros(1)?)
                }
                Labels::Values { targets, outputs } => {
                    (b.upload_idx(&[0])?, b.upload(&targets[start * outputs..(start + rows) * outputs])?)
                }
            };
            chunks.push(EvalChunk { x, labels, targets, rows });
            start += rows;
        }
        let stats = b.zeros(2 * chunks.len())?;
        let full = if d.n >= EVAL_CHUNK { Some(model.workspace(b, EVAL_CHUNK)?) } else { None };
        let rest = d.n % EVAL_CHUNK;
        let tail = if rest > 0 { Some(model.workspace(b, rest)?) } else { None };
        Ok(Some(EvalSet { chunks, n: d.n, stats, full, tail }))
    }

    /// Mean loss and 0-1 error at `p` (one read back).
    pub fn evaluate(&mut self, b: &B, model: &Mlp, p: &ParamSet<B>) -> Result<(f64, f64), TrainError> {
        for (i, c) in self.chunks.iter().enumerate() {
            let ws = if c.rows == EVAL_CHUNK { self.full.as_mut() } else { self.tail.as_mut() };
            let Some(ws) = ws else {
                return Err(crate::backend::BackendError::Invalid {
                    op: "evaluate",
                    message: format!("no workspace for a chunk of {} rows", c.rows),
                }
                .into());
            };
            model.forward(b, p, &c.x, ws)?;
            let t = if model.spec.loss == LossKind::SoftmaxXent {
                Targets::Classes(&c.labels)
            } else {
                Targets::Values(&c.targets)
            };
            model.loss(b, &t, ws)?;
            b.sum(c.rows, &ws.loss, &mut self.stats, 2 * i)?;
            b.sum(c.rows, &ws.correct, &mut self.stats, 2 * i + 1)?;
        }
        let s = b.read(&self.stats)?;
        let loss: f64 = s.iter().step_by(2).map(|&x| x as f64).sum();
        let correct: f64 = s.iter().skip(1).step_by(2).map(|&x| x as f64).sum();
        Ok((loss / self.n as f64, (self.n as f64 - correct) / self.n as f64))
    }
}

/// One evaluation's figures (`None` where there is no such set, or no 0-1 error for regression).
#[derive(Clone, Copy, Debug, Default)]
pub struct Evaluation {
    pub val_loss: Option<f64>,
    pub val_error: Option<f64>,
    pub train_full_loss: Option<f64>,
    pub train_full_error: Option<f64>,
}

/// The sets a run is evaluated on.
pub struct Evaluator<B: Backend> {
    pub val: Option<EvalSet<B>>,
    /// The whole training set (`train.eval_train`, resident data).
    pub train: Option<EvalSet<B>>,
    /// Whether the 0-1 error is reported (classification).
    pub is_class: bool,
}

impl<B: Backend> Evaluator<B> {
    /// The training set (if any), then the validation set, at `p`.
    pub fn evaluate(&mut self, b: &B, model: &Mlp, p: &ParamSet<B>) -> Result<Evaluation, TrainError> {
        let mut ev = Evaluation::default();
        if let Some(t) = self.train.as_mut() {
            let (l, e) = t.evaluate(b, model, p)?;
            ev.train_full_loss = Some(l);
            ev.train_full_error = self.is_class.then_some(e);
        }
        if let Some(v) = self.val.as_mut() {
            let (l, e) = v.evaluate(b, model, p)?;
            ev.val_loss = Some(l);
            ev.val_error = self.is_class.then_some(e);
        }
        Ok(ev)
    }

    /// The validation set alone at `p` (the run's final figures).
    pub fn evaluate_val(
        &mut self,
        b: &B,
        model: &Mlp,
        p: &ParamSet<B>,
    ) -> Result<(Option<f64>, Option<f64>), TrainError> {
        match self.val.as_mut() {
            Some(v) => {
                let (l, e) = v.evaluate(b, model, p)?;
                Ok((Some(l), self.is_class.then_some(e)))
            }
            None => Ok((None, None)),
        }
    }
}

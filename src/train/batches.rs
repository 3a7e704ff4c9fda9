//! The batch source: the training set on the device and how each step's minibatch is made
//! from it: a gather of the rows of a resident set in the order of [`BatchOrder`], or a
//! generated window of a synthetic stream.

use crate::backend::{Backend, GenSpec};
use crate::config::{Config, DataMode};
use crate::data::device::{BatchBuffers, DeviceDataset};
use crate::data::{self, BatchOrder, Labels};
use crate::model::{LossKind, Mlp};

use super::eval::{EvalSet, Evaluator};
use super::TrainError;

/// The training set on the device.
pub enum BatchSource<B: Backend> {
    Resident { data: DeviceDataset<B>, order: BatchOrder },
    Stream { spec: GenSpec, table: B::Buf, n: u64 },
}

/// A run's data: the batch source and the evaluator of its validation (and training) set.
pub struct TrainData<B: Backend> {
    pub source: BatchSource<B>,
    pub eval: Evaluator<B>,
    /// Training examples (an epoch is `n_train / batch` steps).
    pub n_train: u64,
}

impl<B: Backend> TrainData<B> {
    /// Build (or generate) the data of `cfg` and upload it for minibatches of `batch` rows.
    pub fn load(b: &B, cfg: &Config, model: &Mlp, batch: usize) -> Result<Self, TrainError> {
        let outputs = cfg.data_outputs();
        let mut train_eval = None;
        let (source, val_data, n_train, is_class) = match cfg.data.mode {
            DataMode::Resident => {
                let (train, val) = data::build_resident(&cfg.data, outputs)?;
                if cfg.train.eval_train {
                    train_eval = EvalSet::new(b, model, &train)?;
                }
                if train.dim != model.inputs() {
                    return Err(TrainError::Setup(format!(
                        "data has {} features but the model expects {} (data.dim)",
                        train.dim,
                        model.inputs()
                    )));
                }
                let is_class = matches!(train.targets, Labels::Classes { .. });
                let host_labels = match &train.targets {
                    Labels::Classes { labels, .. } => Some(labels.as_slice()),
                    Labels::Values { .. } => None,
                };
                let order = BatchOrder::new(
                    cfg.train.shuffle,
                    cfg.train.sorted_by_label,
                    cfg.train.seed,
                    train.n,
                    host_labels,
                );
                let n = train.n as u64;
                let data = DeviceDataset::upload(b, &train)?;
                (BatchSource::Resident { data, order }, val, n, is_class)
            }
            DataMode::Stream => {
                let spec = data::gen_spec(&cfg.data).ok_or_else(|| {
                    TrainError::Setup("data.mode = \"stream\" needs a synthetic data.kind".into())
                })?;
                let table = b.upload(&data::gen_table(&cfg.data)).map_err(|e| {
                    e.of_buffer("the stream's table (data.classes × data.dim class means, or data.outputs × data.dim of W*)")
                })?;
                let val = data::build_validation(&cfg.data, outputs)?;
                let is_class = cfg.model.loss == LossKind::SoftmaxXent;
                let n = cfg.data.n_train;
                (BatchSource::Stream { spec, table, n }, val, n, is_class)
            }
        };
        if batch as u64 > n_train {
            return Err(TrainError::Setup(format!(
                "train.batch_size = {batch} exceeds the {n_train} training examples"
            )));
        }
        let val = EvalSet::new(b, model, &val_data)?;
        Ok(TrainData { source, eval: Evaluator { val, train: train_eval, is_class }, n_train })
    }
}

impl<B: Backend> BatchSource<B> {
    /// The rows minibatches are drawn from without replacement (a resident set), or `None`
    /// where every example is a fresh i.i.d. draw (a stream).
    pub fn finite_population(&self) -> Option<u64> {
        match self {
            BatchSource::Resident { data, .. } => Some(data.n as u64),
            BatchSource::Stream { .. } => None,
        }
    }

    /// Load minibatch `step_in_epoch` of `epoch` (`bt.rows` examples) into `bt`.
    pub fn fill(
        &mut self,
        b: &B,
        bt: &mut BatchBuffers<B>,
        epoch: u64,
        step_in_epoch: u64,
    ) -> Result<(), TrainError> {
        let rows = bt.rows;
        self.fill_slice(b, bt, epoch, step_in_epoch, rows, 0)
    }

    /// Rows `offset .. offset + bt.rows` of the `batch`-row minibatch [`Self::fill`] would load
    /// for this step (a data-parallel replica's or a micro-batch's share of it).
    pub fn fill_slice(
        &mut self,
        b: &B,
        bt: &mut BatchBuffers<B>,
        epoch: u64,
        step_in_epoch: u64,
        batch: usize,
        offset: usize,
    ) -> Result<(), TrainError> {
        let rows = bt.rows;
        match self {
            BatchSource::Resident { data, order } => {
                let idx = order.batch(epoch, step_in_epoch as usize, batch).ok_or_else(|| {
                    TrainError::Setup(format!("no minibatch {step_in_epoch} in epoch {epoch}"))
                })?;
                let from = offset.min(idx.len());
                let to = (offset + rows).min(idx.len());
                data.load_batch(b, &idx[from..to], bt)?;
            }
            BatchSource::Stream { spec, table, n } => {
                // Stream order: epoch e revisits the same examples (multi-pass over a finite stream).
                let first = (step_in_epoch * batch as u64) % (*n).max(1) + offset as u64;
                b.generate(spec, first, rows, table, &mut bt.x, &mut bt.labels, &mut bt.targets)?;
            }
        }
        Ok(())
    }
}

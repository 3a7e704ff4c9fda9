//! A multilayer perceptron: forward and backward written once over `Backend`.
//!
//! Layer l maps `a_{l-1} [rows, in_l]` to `z_l = a_{l-1} W_lᵀ + b_l [rows, out_l]`, then
//! `a_l = φ(z_l)` for hidden layers; the last layer's `z` are the logits (or predictions).
//! `W_l: [out_l, in_l]`, `b_l: [out_l]` as in PyTorch's `nn.Linear`.

use serde::{Deserialize, Serialize};

use super::init::{init_std, normal_vec, rng};
use super::params::ParamSet;
use crate::backend::{
    Activation, Backend, BackendError, Dgrad, Epilogue, Gemm, LayerStep, ParamState, Result, Scope,
    StepSums, UpdateRule, XentOutputs,
};

/// The surrogate loss minimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Softmax cross-entropy over integer labels (classification; 0-1 error is reported too).
    SoftmaxXent,
    /// `½ Σ (pred - target)²` per example (regression).
    Mse,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpSpec {
    /// Layer widths, input first, output last: `[784, 1024, 1024, 10]`.
    pub sizes: Vec<usize>,
    /// φ of the hidden layers; the output layer is linear.
    pub activation: Activation,
    pub loss: LossKind,
}

/// What the loss compares the outputs with.
pub enum Targets<'a, B: Backend> {
    /// Labels `[rows]`, each `< classes`.
    Classes(&'a B::IdxBuf),
    /// Targets `[rows, outputs]`.
    Values(&'a B::Buf),
}

/// Activations and their gradients for a batch of `rows` examples.
pub struct Workspace<B: Backend> {
    pub rows: usize,
    /// Pre-activations `z_l [rows, out_l]`; the last one holds the logits.
    pub z: Vec<B::Buf>,
    /// Hidden activations `a_l = φ(z_l) [rows, out_l]`, one per hidden layer.
    pub a: Vec<B::Buf>,
    /// `∂L/∂z_l [rows, out_l]`; the last one is d logits.
    pub dz: Vec<B::Buf>,
    /// `∂L/∂a_l [rows, out_l]`, one per hidden layer; written by [`Mlp::backward`] only when
    /// `keep_da` (the R-passes of [`Mlp::hvp_prepared`] read it).
    pub da: Vec<B::Buf>,
    /// Whether [`Mlp::backward`] writes `da` (true, the default), or fuses `⊙ φ'(z)` into the
    /// product that computes it (`dz_{l-1}` without `da`: one dispatch fewer per hidden layer
    /// on the GPU, the same bits).
    pub keep_da: bool,
    /// Per-example surrogate loss `[rows]`.
    pub loss: B::Buf,
    /// Per-example correctness `[rows]` (1 = right, 0 = wrong; classification only).
    pub correct: B::Buf,
}

#[derive(Clone, Debug)]
pub struct Mlp {
    pub spec: MlpSpec,
}

impl Mlp {
    pub fn new(spec: MlpSpec) -> Result<Self> {
        if spec.sizes.len() < 2 {
            return Err(BackendError::Invalid {
                op: "Mlp::new",
                message: format!("needs at least input and output sizes, got {:?}", spec.sizes),
            });
        }
        if spec.sizes.contains(&0) {
            return Err(BackendError::Invalid {
                op: "Mlp::new",
                message: format!("layer sizes must be positive, got {:?}", spec.sizes),
            });
        }
        Ok(Mlp { spec })
    }

    /// Number of linear layers.
    pub fn layers(&self) -> usize {
        self.spec.sizes.len() - 1
    }

    pub fn inputs(&self) -> usize {
        self.spec.sizes[0]
    }

    pub fn outputs(&self) -> usize {
        self.spec.sizes[self.layers()]
    }

    /// Tensor names and shapes in [`ParamSet`] order: `layers.{i}.weight [out, in]`, `layers.{i}.bias [out]`.
    pub fn param_layout(&self) -> (Vec<String>, Vec<Vec<usize>>) {
        let mut names = Vec::new();
        let mut shapes = Vec::new();
        for l in 0..self.layers() {
            let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
            names.push(format!("layers.{l}.weight"));
            shapes.push(vec![fan_out, fan_in]);
            names.push(format!("layers.{l}.bias"));
            shapes.push(vec![fan_out]);
        }
        (names, shapes)
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.param_layout().1.iter().map(|s| s.iter().product::<usize>()).sum()
    }

    /// FLOPs of the products of one training step per example, as they run: forward 2·Σ in·out,
    /// the weight gradients as much again, and the input gradients of every layer but the first
    /// (no one needs ∂L/∂X): 6·Σ in·out − 2·in₀·out₀. The rule of thumb 6·Σ in·out counted a
    /// product that never runs, and the sweep's GFLOP/s read 17 % high on 784-1024-1024-10.
    pub fn train_flops_per_example(&self) -> f64 {
        let macs = |l: usize| self.spec.sizes[l] as f64 * self.spec.sizes[l + 1] as f64;
        let all: f64 = (0..self.layers()).map(macs).sum();
        6.0 * all - 2.0 * macs(0)
    }

    /// Seeded host initialisation: He for ReLU, Glorot otherwise; biases zero.
    pub fn init_host(&self, seed: u64) -> Vec<Vec<f32>> {
        self.init_host_scaled(seed, 1.0)
    }

    /// [`Mlp::init_host`] with every weight multiplied by `scale` (`model.init_scale`): a tiny
    /// scale starts a tanh net next to the saddle point at the origin.
    pub fn init_host_scaled(&self, seed: u64, scale: f32) -> Vec<Vec<f32>> {
        let mut r = rng(seed);
        let mut out = Vec::new();
        for l in 0..self.layers() {
            let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
            // The output layer is linear: Glorot.
            let act = if l + 1 == self.layers() { Activation::Identity } else { self.spec.activation };
            let mut w = normal_vec(&mut r, fan_in * fan_out, init_std(act, fan_in, fan_out));
            if scale != 1.0 {
                w.iter_mut().for_each(|v| *v *= scale);
            }
            out.push(w);
            out.push(vec![0.0; fan_out]);
        }
        out
    }

    /// Parameters initialised from `seed`, on the backend.
    pub fn init<B: Backend>(&self, b: &B, seed: u64) -> Result<ParamSet<B>> {
        self.init_scaled(b, seed, 1.0)
    }

    /// Parameters initialised from `seed` with weights scaled by `scale`, on the backend.
    pub fn init_scaled<B: Backend>(&self, b: &B, seed: u64, scale: f32) -> Result<ParamSet<B>> {
        let (names, shapes) = self.param_layout();
        ParamSet::from_host(b, &names, &shapes, &self.init_host_scaled(seed, scale))
    }

    /// Buffers for batches of `rows` examples.
    pub fn workspace<B: Backend>(&self, b: &B, rows: usize) -> Result<Workspace<B>> {
        let l = self.layers();
        let widths = &self.spec.sizes[1..];
        Ok(Workspace {
            rows,
            z: widths.iter().map(|&w| b.zeros(rows * w)).collect::<Result<_>>()?,
            a: widths[..l - 1].iter().map(|&w| b.zeros(rows * w)).collect::<Result<_>>()?,
            dz: widths.iter().map(|&w| b.zeros(rows * w)).collect::<Result<_>>()?,
            da: widths[..l - 1].iter().map(|&w| b.zeros(rows * w)).collect::<Result<_>>()?,
            keep_da: true,
            loss: b.zeros(rows)?,
            correct: b.zeros(rows)?,
        })
    }

    /// Bytes of a workspace of `rows` examples (activation memory, for the memory model).
    pub fn workspace_bytes(&self, rows: usize) -> u64 {
        let l = self.layers();
        let widths = &self.spec.sizes[1..];
        let out: usize = widths.iter().sum();
        let hidden: usize = widths[..l - 1].iter().sum();
        (4 * rows * (2 * out + 2 * hidden + 2)) as u64
    }

    /// Forward pass: `x [rows, inputs]` → `ws.z[last]` (logits or predictions).
    pub fn forward<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        ws: &mut Workspace<B>,
    ) -> Result<()> {
        self.forward_layers(b, p, x, ws, self.layers())
    }

    /// The first `upto` layers of [`Mlp::forward`].
    fn forward_layers<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        ws: &mut Workspace<B>,
        upto: usize,
    ) -> Result<()> {
        let rows = ws.rows;
        for l in 0..upto {
            let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
            let (before, after) = ws.a.split_at_mut(l);
            let input = if l == 0 { x } else { &before[l - 1] };
            b.scope(Scope::Forward(l));
            // z [rows, out] = input [rows, in] · Wᵀ ([out, in] stored) + b; a = φ(z) for
            // hidden layers (fused into the product's store on the GPU)
            let g = Gemm::nn(rows, fan_out, fan_in).trans(false, true);
            let bias = &p.tensors[2 * l + 1];
            let epi = match after.first_mut() {
                Some(a) => Epilogue::BiasAct(self.spec.activation, bias, a),
                None => Epilogue::Bias(bias),
            };
            b.matmul_epilogue(&g, input, &p.tensors[2 * l], &mut ws.z[l], epi)?;
        }
        b.scope(Scope::None);
        Ok(())
    }

    /// [`Mlp::forward`], then [`Mlp::loss_into`]; for a classifier with the step's sums the
    /// output layer and the loss are one op ([`Backend::linear_xent_sums`]: one dispatch at
    /// small batches on the GPU, the same bits).
    fn forward_loss<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        ws: &mut Workspace<B>,
        sums: Option<&mut StepSums<'_, B::Buf>>,
    ) -> Result<()> {
        let (labels, sums) = match (self.spec.loss, targets, sums) {
            (LossKind::SoftmaxXent, Targets::Classes(labels), Some(sums)) => (*labels, sums),
            (.., sums) => {
                self.forward(b, p, x, ws)?;
                return self.loss_into(b, targets, ws, sums);
            }
        };
        let last = self.layers() - 1;
        self.forward_layers(b, p, x, ws, last)?;
        let rows = ws.rows;
        let input = if last == 0 { x } else { &ws.a[last - 1] };
        // logits [rows, classes] = input [rows, in] · Wᵀ ([classes, in] stored) + b, then the loss
        let g = Gemm::nn(rows, self.outputs(), self.spec.sizes[last]).trans(false, true);
        let xent = XentOutputs {
            labels,
            grad_scale: 1.0 / rows.max(1) as f32,
            loss: &mut ws.loss,
            correct: &mut ws.correct,
            dlogits: &mut ws.dz[last],
        };
        let weights = [input, &p.tensors[2 * last], &p.tensors[2 * last + 1]];
        b.scope(Scope::Forward(last));
        b.linear_xent_sums(&g, weights, &mut ws.z[last], xent, sums)?;
        b.scope(Scope::None);
        Ok(())
    }

    /// Per-example loss (and correctness) of the forward's outputs, and `d logits` of the
    /// minibatch *mean* loss into `ws.dz[last]`.
    pub fn loss<B: Backend>(
        &self,
        b: &B,
        targets: &Targets<'_, B>,
        ws: &mut Workspace<B>,
    ) -> Result<()> {
        self.loss_into(b, targets, ws, None)
    }

    /// [`Mlp::loss`], and with `sums` the training step's minibatch sums of the losses and 0-1
    /// values (with softmax cross-entropy one op, [`Backend::softmax_xent_sums`]).
    pub fn loss_into<B: Backend>(
        &self,
        b: &B,
        targets: &Targets<'_, B>,
        ws: &mut Workspace<B>,
        sums: Option<&mut StepSums<'_, B::Buf>>,
    ) -> Result<()> {
        let rows = ws.rows;
        let last = self.layers() - 1;
        let k = self.outputs();
        let scale = 1.0 / rows.max(1) as f32;
        let (loss, correct, dz) = (&mut ws.loss, &mut ws.correct, &mut ws.dz[last]);
        match (self.spec.loss, targets, sums) {
            (LossKind::SoftmaxXent, Targets::Classes(labels), None) => {
                b.softmax_xent(rows, k, &ws.z[last], labels, scale, loss, correct, dz)
            }
            (LossKind::SoftmaxXent, Targets::Classes(labels), Some(s)) => {
                b.softmax_xent_sums(rows, k, &ws.z[last], labels, scale, loss, correct, dz, s)
            }
            (LossKind::Mse, Targets::Values(t), sums) => {
                b.mse(rows, k, &ws.z[last], t, scale, loss, dz)?;
                sums.map_or(Ok(()), |s| s.record(b, rows, loss, correct))
            }
            (LossKind::SoftmaxXent, Targets::Values(_), _) => Err(BackendError::Invalid {
                op: "Mlp::loss",
                message: "softmax cross-entropy needs integer class labels".into(),
            }),
            (LossKind::Mse, Targets::Classes(_), _) => Err(BackendError::Invalid {
                op: "Mlp::loss",
                message: "squared error needs real-valued targets".into(),
            }),
        }
    }

    /// Backward pass from `ws.dz[last]`: gradients of the mean loss into `grads`.
    pub fn backward<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        ws: &mut Workspace<B>,
        grads: &mut ParamSet<B>,
    ) -> Result<()> {
        for l in (0..self.layers()).rev() {
            b.scope(Scope::Backward(l));
            // gW [out, in] = dzᵀ ([rows, out] stored) · input [rows, in], and gb [out] = Σ_rows dz
            // in the product's store where the backend fuses it
            let g = self.wgrad_gemm(l, ws.rows);
            let input = if l == 0 { x } else { &ws.a[l - 1] };
            let (gw, gb) = weight_and_bias(&mut grads.tensors, l);
            let epi = Epilogue::BiasGrad { s: &ws.dz[l], bias_grad: gb };
            b.matmul_epilogue(&g, &ws.dz[l], input, gw, epi)?;
            if l > 0 {
                self.dgrad(b, p, l, ws)?;
            }
        }
        b.scope(Scope::None);
        Ok(())
    }

    /// [`Mlp::backward`] with the optimizer step of each layer recorded right after its gradient
    /// ([`Backend::wgrad_update`]: one dispatch per layer on the GPU at small batches). A layer's
    /// dgrad reads its weights, so it runs before their update. `grads` are written as by
    /// [`Mlp::backward`], and `p` and `velocity` end as after it and [`Backend::update_params`]
    /// with `rule`, bit for bit.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_update<B: Backend>(
        &self,
        b: &B,
        p: &mut ParamSet<B>,
        x: &B::Buf,
        ws: &mut Workspace<B>,
        grads: &mut ParamSet<B>,
        rule: UpdateRule,
        mut velocity: Option<&mut ParamSet<B>>,
    ) -> Result<()> {
        let want = 2 * self.layers();
        let counts =
            [p.tensors.len(), grads.tensors.len(), velocity.as_ref().map_or(want, |v| v.tensors.len())];
        if counts.iter().any(|&c| c != want) {
            return Err(BackendError::Invalid {
                op: "Mlp::backward_update",
                message: format!(
                    "{want} tensors expected; parameters, gradients, velocities: {counts:?}"
                ),
            });
        }
        for l in (0..self.layers()).rev() {
            b.scope(Scope::Backward(l));
            // The dgrad and the step as one op, unless the dgrad must write `da` too (`keep_da`):
            // then its own op first, and the weight's after.
            let fused_dgrad = l > 0 && !ws.keep_da;
            if l > 0 && ws.keep_da {
                self.dgrad(b, p, l, ws)?;
            }
            let g = self.wgrad_gemm(l, ws.rows);
            let (below, here) = ws.dz.split_at_mut(l);
            let input = if l == 0 { x } else { &ws.a[l - 1] };
            let (gw, gb) = weight_and_bias(&mut grads.tensors, l);
            let (w, bias) = weight_and_bias(&mut p.tensors, l);
            let (vw, vb) = match velocity.as_deref_mut() {
                Some(v) => {
                    let (vw, vb) = weight_and_bias(&mut v.tensors, l);
                    (Some(vw), Some(vb))
                }
                None => (None, None),
            };
            let step = LayerStep {
                rule,
                weight: ParamState { param: w, velocity: vw },
                bias: ParamState { param: bias, velocity: vb },
            };
            if fused_dgrad {
                // dz_{l-1} = (dz_l · W_l) ⊙ φ'(z_{l-1}) with the old W_l, then W_l's step
                let dgrad = Dgrad {
                    act: self.spec.activation,
                    z: &ws.z[l - 1],
                    scratch: &mut ws.da[l - 1],
                    dz_prev: &mut below[l - 1],
                };
                b.dgrad_wgrad_update(&g, &here[0], input, dgrad, gw, gb, step)?;
            } else {
                b.wgrad_update(&g, &here[0], input, gw, gb, step)?;
            }
        }
        b.scope(Scope::None);
        Ok(())
    }

    /// Layer `l`'s weight-gradient product for `rows` examples: `gW [out, in] = dzᵀ · input`.
    fn wgrad_gemm(&self, l: usize, rows: usize) -> Gemm {
        let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
        Gemm::nn(fan_out, fan_in, rows).trans(true, false)
    }

    /// `dz_{l-1} = (dz_l · W_l) ⊙ φ'(z_{l-1})` for `l ≥ 1`: one fused product, or with
    /// `ws.keep_da` the product into `da_{l-1}` and then `⊙ φ'`.
    fn dgrad<B: Backend>(&self, b: &B, p: &ParamSet<B>, l: usize, ws: &mut Workspace<B>) -> Result<()> {
        let rows = ws.rows;
        let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
        // da [rows, in] = dz [rows, out] · W [out, in]
        let g = Gemm::nn(rows, fan_in, fan_out);
        let act = self.spec.activation;
        let (dz, dz_prev) = split_pair(&mut ws.dz, l);
        if ws.keep_da {
            b.matmul(&g, dz, &p.tensors[2 * l], &mut ws.da[l - 1])?;
            // dz_{l-1} = da ⊙ φ'(z_{l-1})
            b.scope(Scope::Backward(l - 1));
            b.act_backward(act, rows * fan_in, &ws.z[l - 1], &ws.da[l - 1], dz_prev)?;
            b.scope(Scope::Backward(l));
            Ok(())
        } else {
            // dz_{l-1} = (dz · W) ⊙ φ'(z_{l-1}) in one fused product
            let epi = Epilogue::ActGrad { act, z: &ws.z[l - 1], scratch: &mut ws.da[l - 1] };
            b.matmul_epilogue(&g, dz, &p.tensors[2 * l], dz_prev, epi)
        }
    }

    /// Forward, loss and backward of one minibatch (all recorded; nothing is read back).
    pub fn loss_and_grad<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        ws: &mut Workspace<B>,
        grads: &mut ParamSet<B>,
    ) -> Result<()> {
        self.loss_and_grad_into(b, p, x, targets, ws, grads, None)
    }

    /// [`Mlp::loss_and_grad`] with the step's minibatch sums (see [`Mlp::loss_into`]).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad_into<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        ws: &mut Workspace<B>,
        grads: &mut ParamSet<B>,
        sums: Option<&mut StepSums<'_, B::Buf>>,
    ) -> Result<()> {
        self.forward_loss(b, p, x, targets, ws, sums)?;
        self.backward(b, p, x, ws, grads)
    }

    /// [`Mlp::loss_and_grad_into`] with the update fused into the backward pass
    /// ([`Mlp::backward_update`]): the training step's forward, loss, backward and update.
    #[allow(clippy::too_many_arguments)]
    pub fn train_step_into<B: Backend>(
        &self,
        b: &B,
        p: &mut ParamSet<B>,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        ws: &mut Workspace<B>,
        grads: &mut ParamSet<B>,
        sums: Option<&mut StepSums<'_, B::Buf>>,
        rule: UpdateRule,
        velocity: Option<&mut ParamSet<B>>,
    ) -> Result<()> {
        self.forward_loss(b, p, x, targets, ws, sums)?;
        self.backward_update(b, p, x, ws, grads, rule, velocity)
    }
}

/// Layer `l`'s weight and bias of a `[W0, b0, W1, b1, ...]` tensor list, both mutable.
pub(super) fn weight_and_bias<T>(tensors: &mut [T], l: usize) -> (&mut T, &mut T) {
    let (w, b) = tensors[2 * l..].split_at_mut(1);
    (&mut w[0], &mut b[0])
}

/// `(&v[l], &mut v[l - 1])` for `l ≥ 1`.
fn split_pair<T>(v: &mut [T], l: usize) -> (&T, &mut T) {
    let (lo, hi) = v.split_at_mut(l);
    (&hi[0], &mut lo[l - 1])
}

//! An Elman recurrent network trained by backpropagation through time, written once over
//! `Backend` (the same matmul, bias, activation and reduction kernels as the MLP).
//!
//! Forward, for `t = 1..T` with `h_0 = 0` (rows = examples of the batch):
//!   z_t = h_{t-1} Wᵀ + x_t Uᵀ + b      z_t, h_t: [rows, H], x_t: [rows, D]
//!   h_t = φ(z_t)                        φ ∈ {tanh, identity}
//!   y   = h_T Vᵀ + c                    y: [rows, K], read out at the last step only
//! Parameters (ParamSet order): `rnn.W [H, H]`, `rnn.U [H, D]`, `rnn.b [H]`,
//! `readout.weight (V) [K, H]`, `readout.bias (c) [K]`.
//!
//! Backward (BPTT), with `dy = ∂L/∂y` of the minibatch mean loss:
//!   gV = dyᵀ h_T,  gc = Σ_rows dy,  ∂L/∂h_T = dy V
//!   for t = T..1:  dz_t = ∂L/∂h_t ⊙ φ'(z_t)
//!                  gU += dz_tᵀ x_t,  gb += Σ_rows dz_t,  gW += dz_tᵀ h_{t-1}
//!                  ∂L/∂h_{t-1} = dz_t W
//! so `∂L/∂h_t = ∂L/∂h_T · Π_{s=t+1..T} diag(φ'(z_s)) W`: with φ = identity and `W = λ·Q`
//! (Q orthogonal), `‖∂L/∂h_t‖ = λ^(T-t) ‖∂L/∂h_T‖` exactly (8.2.5, eq. 8.11).
//! The squared norms `‖∂L/∂h_t‖²` (Frobenius over the batch) can be written into device slots
//! during the backward pass, so the per-time-step diagnostics cost one read per log step.

use serde::{Deserialize, Serialize};

use super::init::{init_std, normal_vec, rng};
use super::mlp::{LossKind, Targets};
use super::params::ParamSet;
use crate::backend::{Activation, Backend, BackendError, Gemm, Result};

/// How the recurrent matrix `W [H, H]` is initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WInit {
    /// `scale · Q`, Q a random orthogonal matrix (Gram-Schmidt of a Gaussian matrix): every
    /// eigenvalue and singular value has modulus `scale`.
    Orthogonal,
    /// `scale · I`: the diagonal case of eq. 8.11, eigenvalues all `scale`.
    Diag,
    /// `N(0, scale² / H)` entries: spectral radius ≈ `scale` for large H (circular law).
    Normal,
}

impl WInit {
    pub fn name(self) -> &'static str {
        match self {
            WInit::Orthogonal => "orthogonal",
            WInit::Diag => "diag",
            WInit::Normal => "normal",
        }
    }
}

/// Shape and loss of a recurrent network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RnnSpec {
    /// Input features per step D.
    pub inputs: usize,
    /// Hidden units H.
    pub hidden: usize,
    /// Readout outputs K (classes, or regression outputs).
    pub outputs: usize,
    /// Sequence length T.
    pub steps: usize,
    /// φ of the recurrence (tanh or identity).
    pub activation: Activation,
    pub loss: LossKind,
}

/// Initialisation of the parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnInit {
    pub w_init: WInit,
    /// Scale of W (see [`WInit`]).
    pub w_scale: f32,
    pub seed: u64,
}

/// Activations and their gradients for a batch of `rows` sequences of length T.
pub struct RnnWorkspace<B: Backend> {
    pub rows: usize,
    /// Pre-activations `z_t [rows, H]`, t = 1..T (index t-1).
    pub z: Vec<B::Buf>,
    /// Hidden states `h_t [rows, H]`, t = 1..T (index t-1).
    pub h: Vec<B::Buf>,
    /// Readout `y [rows, K]` (logits or predictions).
    pub y: B::Buf,
    /// `∂L/∂y [rows, K]`.
    pub dy: B::Buf,
    /// `∂L/∂h_t [rows, H]` of the step being processed, and the next one (ping-pong).
    pub dh: B::Buf,
    pub dh_next: B::Buf,
    /// `∂L/∂z_t [rows, H]`.
    pub dz: B::Buf,
    /// Per-example surrogate loss `[rows]`.
    pub loss: B::Buf,
    /// Per-example correctness `[rows]` (classification only).
    pub correct: B::Buf,
}

/// Index of each tensor in the ParamSet.
pub mod tensor {
    pub const W: usize = 0;
    pub const U: usize = 1;
    pub const B: usize = 2;
    pub const V: usize = 3;
    pub const C: usize = 4;
}

#[derive(Clone, Debug)]
pub struct Rnn {
    pub spec: RnnSpec,
}

impl Rnn {
    pub fn new(spec: RnnSpec) -> Result<Self> {
        let bad = |message: String| Err(BackendError::Invalid { op: "Rnn::new", message });
        if spec.inputs == 0 || spec.hidden == 0 || spec.outputs == 0 || spec.steps == 0 {
            return bad(format!(
                "inputs, hidden, outputs and steps must be positive, got D={} H={} K={} T={}",
                spec.inputs, spec.hidden, spec.outputs, spec.steps
            ));
        }
        if spec.activation == Activation::Relu {
            return bad("the recurrent φ must be tanh or identity".into());
        }
        Ok(Rnn { spec })
    }

    /// Tensor names and shapes in [`ParamSet`] order.
    pub fn param_layout(&self) -> (Vec<String>, Vec<Vec<usize>>) {
        let RnnSpec { inputs: d, hidden: h, outputs: k, .. } = self.spec;
        let names = ["rnn.W", "rnn.U", "rnn.b", "readout.weight", "readout.bias"];
        let shapes = vec![vec![h, h], vec![h, d], vec![h], vec![k, h], vec![k]];
        (names.iter().map(|s| s.to_string()).collect(), shapes)
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.param_layout().1.iter().map(|s| s.iter().product::<usize>()).sum()
    }

    /// Seeded host initialisation: W per `init`, U and V Glorot-normal, biases zero.
    pub fn init_host(&self, init: &RnnInit) -> Vec<Vec<f32>> {
        let RnnSpec { inputs: d, hidden: h, outputs: k, .. } = self.spec;
        let mut r = rng(init.seed);
        let w = recurrent_matrix(init.w_init, h, init.w_scale, &mut r);
        let u = normal_vec(&mut r, h * d, init_std(Activation::Identity, d, h));
        let v = normal_vec(&mut r, k * h, init_std(Activation::Identity, h, k));
        vec![w, u, vec![0.0; h], v, vec![0.0; k]]
    }

    /// Parameters initialised per `init`, on the backend.
    pub fn init<B: Backend>(&self, b: &B, init: &RnnInit) -> Result<ParamSet<B>> {
        let (names, shapes) = self.param_layout();
        ParamSet::from_host(b, &names, &shapes, &self.init_host(init))
    }

    /// Buffers for batches of `rows` sequences.
    pub fn workspace<B: Backend>(&self, b: &B, rows: usize) -> Result<RnnWorkspace<B>> {
        let RnnSpec { hidden: h, outputs: k, steps, .. } = self.spec;
        Ok(RnnWorkspace {
            rows,
            z: (0..steps).map(|_| b.zeros(rows * h)).collect::<Result<_>>()?,
            h: (0..steps).map(|_| b.zeros(rows * h)).collect::<Result<_>>()?,
            y: b.zeros(rows * k)?,
            dy: b.zeros(rows * k)?,
            dh: b.zeros(rows * h)?,
            dh_next: b.zeros(rows * h)?,
            dz: b.zeros(rows * h)?,
            loss: b.zeros(rows)?,
            correct: b.zeros(rows)?,
        })
    }

    fn check_inputs<B: Backend>(&self, xs: &[B::Buf]) -> Result<()> {
        if xs.len() != self.spec.steps {
            return Err(BackendError::Invalid {
                op: "Rnn::forward",
                message: format!("expected {} input steps x_t, got {}", self.spec.steps, xs.len()),
            });
        }
        Ok(())
    }

    /// Forward pass over `xs` (T buffers `x_t [rows, D]`): fills `ws.z`, `ws.h` and `ws.y`.
    pub fn forward<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        xs: &[B::Buf],
        ws: &mut RnnWorkspace<B>,
    ) -> Result<()> {
        self.check_inputs::<B>(xs)?;
        let RnnSpec { inputs: d, hidden: h, outputs: k, steps, activation, .. } = self.spec;
        let rows = ws.rows;
        for (t, x) in xs.iter().enumerate() {
            // z_t [rows, H] = x_t [rows, D] · Uᵀ ([H, D] stored)
            b.matmul(&Gemm::nn(rows, h, d).trans(false, true), x, &p.tensors[tensor::U], &mut ws.z[t])?;
            if t > 0 {
                // z_t += h_{t-1} [rows, H] · Wᵀ ([H, H] stored)
                let g = Gemm::nn(rows, h, h).trans(false, true).scaled(1.0, 1.0);
                b.matmul(&g, &ws.h[t - 1], &p.tensors[tensor::W], &mut ws.z[t])?;
            }
            b.add_bias(rows, h, &mut ws.z[t], &p.tensors[tensor::B])?;
            b.act_forward(activation, rows * h, &ws.z[t], &mut ws.h[t])?;
        }
        // y [rows, K] = h_T [rows, H] · Vᵀ ([K, H] stored) + c
        b.matmul(
            &Gemm::nn(rows, k, h).trans(false, true),
            &ws.h[steps - 1],
            &p.tensors[tensor::V],
            &mut ws.y,
        )?;
        b.add_bias(rows, k, &mut ws.y, &p.tensors[tensor::C])
    }

    /// Per-example loss (and correctness) of `ws.y`, and `∂L/∂y` of the minibatch *mean* loss.
    pub fn loss<B: Backend>(
        &self,
        b: &B,
        targets: &Targets<'_, B>,
        ws: &mut RnnWorkspace<B>,
    ) -> Result<()> {
        let rows = ws.rows;
        let k = self.spec.outputs;
        let scale = 1.0 / rows.max(1) as f32;
        match (self.spec.loss, targets) {
            (LossKind::SoftmaxXent, Targets::Classes(labels)) => {
                b.softmax_xent(rows, k, &ws.y, labels, scale, &mut ws.loss, &mut ws.correct, &mut ws.dy)
            }
            (LossKind::Mse, Targets::Values(t)) => {
                b.mse(rows, k, &ws.y, t, scale, &mut ws.loss, &mut ws.dy)
            }
            (LossKind::SoftmaxXent, Targets::Values(_)) => Err(BackendError::Invalid {
                op: "Rnn::loss",
                message: "softmax cross-entropy needs integer class labels".into(),
            }),
            (LossKind::Mse, Targets::Classes(_)) => Err(BackendError::Invalid {
                op: "Rnn::loss",
                message: "squared error needs real-valued targets".into(),
            }),
        }
    }

    /// BPTT from `ws.dy`: gradients of the mean loss into `grads`. With `norms = Some((out, s))`,
    /// `out[s + t - 1] = ‖∂L/∂h_t‖²` for t = 1..T (recorded; nothing is read back).
    pub fn backward<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        xs: &[B::Buf],
        ws: &mut RnnWorkspace<B>,
        grads: &mut ParamSet<B>,
        mut norms: Option<(&mut B::Buf, usize)>,
    ) -> Result<()> {
        self.check_inputs::<B>(xs)?;
        let RnnSpec { inputs: d, hidden: h, outputs: k, steps, activation, .. } = self.spec;
        let rows = ws.rows;
        let last = steps - 1;
        // gV [K, H] = dyᵀ ([rows, K] stored) · h_T [rows, H];  gc [K] = Σ_rows dy
        b.matmul(
            &Gemm::nn(k, h, rows).trans(true, false),
            &ws.dy,
            &ws.h[last],
            &mut grads.tensors[tensor::V],
        )?;
        b.col_sum(rows, k, 1.0, &ws.dy, 0.0, &mut grads.tensors[tensor::C])?;
        // ∂L/∂h_T [rows, H] = dy [rows, K] · V [K, H]
        b.matmul(&Gemm::nn(rows, h, k), &ws.dy, &p.tensors[tensor::V], &mut ws.dh)?;
        if steps == 1 {
            b.fill(&mut grads.tensors[tensor::W], 0.0)?;
        }
        for t in (0..steps).rev() {
            if let Some((out, slot0)) = norms.as_mut() {
                b.sum_sq(rows * h, &ws.dh, out, *slot0 + t)?;
            }
            // dz_t = ∂L/∂h_t ⊙ φ'(z_t)
            b.act_backward(activation, rows * h, &ws.z[t], &ws.dh, &mut ws.dz)?;
            // The first contribution (t = T) overwrites, later ones accumulate.
            let beta = if t == last { 0.0 } else { 1.0 };
            // gU [H, D] += dz_tᵀ ([rows, H] stored) · x_t [rows, D];  gb [H] += Σ_rows dz_t
            let g = Gemm::nn(h, d, rows).trans(true, false).scaled(1.0, beta);
            b.matmul(&g, &ws.dz, &xs[t], &mut grads.tensors[tensor::U])?;
            b.col_sum(rows, h, 1.0, &ws.dz, beta, &mut grads.tensors[tensor::B])?;
            if t > 0 {
                // gW [H, H] += dz_tᵀ · h_{t-1} [rows, H]
                let g = Gemm::nn(h, h, rows).trans(true, false).scaled(1.0, beta);
                b.matmul(&g, &ws.dz, &ws.h[t - 1], &mut grads.tensors[tensor::W])?;
                // ∂L/∂h_{t-1} [rows, H] = dz_t [rows, H] · W [H, H]
                b.matmul(&Gemm::nn(rows, h, h), &ws.dz, &p.tensors[tensor::W], &mut ws.dh_next)?;
                std::mem::swap(&mut ws.dh, &mut ws.dh_next);
            }
        }
        Ok(())
    }

    /// Forward, loss and BPTT of one minibatch (all recorded; nothing is read back).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        xs: &[B::Buf],
        targets: &Targets<'_, B>,
        ws: &mut RnnWorkspace<B>,
        grads: &mut ParamSet<B>,
        norms: Option<(&mut B::Buf, usize)>,
    ) -> Result<()> {
        self.forward(b, p, xs, ws)?;
        self.loss(b, targets, ws)?;
        self.backward(b, p, xs, ws, grads, norms)
    }
}

/// `W [h, h]` row-major per `kind` and `scale`, drawn from `r`.
pub fn recurrent_matrix(kind: WInit, h: usize, scale: f32, r: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
    match kind {
        WInit::Diag => {
            let mut w = vec![0.0; h * h];
            for i in 0..h {
                w[i * h + i] = scale;
            }
            w
        }
        WInit::Normal => normal_vec(r, h * h, scale as f64 / (h as f64).sqrt()),
        WInit::Orthogonal => {
            let g = normal_vec(r, h * h, 1.0);
            let q = orthonormal_rows(h, &g);
            q.iter().map(|&v| (v * scale as f64) as f32).collect()
        }
    }
}

/// Modified Gram-Schmidt in f64 on the rows of `g [h, h]` (full rank with probability 1 for a
/// Gaussian draw; a degenerate row is replaced by the first unit vector orthogonal to the rest).
fn orthonormal_rows(h: usize, g: &[f32]) -> Vec<f64> {
    let mut q: Vec<f64> = g.iter().map(|&v| v as f64).collect();
    for i in 0..h {
        for pass in 0..2 {
            for j in 0..i {
                let dot: f64 = (0..h).map(|c| q[i * h + c] * q[j * h + c]).sum();
                for c in 0..h {
                    q[i * h + c] -= dot * q[j * h + c];
                }
            }
            let norm = (0..h).map(|c| q[i * h + c] * q[i * h + c]).sum::<f64>().sqrt();
            if norm > 1e-8 {
                for c in 0..h {
                    q[i * h + c] /= norm;
                }
                break;
            }
            // Degenerate: restart from a unit vector and orthogonalise again.
            let e = (i + pass) % h;
            for c in 0..h {
                q[i * h + c] = if c == e { 1.0 } else { 0.0 };
            }
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_init_has_orthonormal_rows_times_scale() {
        let mut r = rng(3);
        let h = 7;
        let w = recurrent_matrix(WInit::Orthogonal, h, 1.5, &mut r);
        for i in 0..h {
            for j in 0..h {
                let dot: f64 = (0..h).map(|c| w[i * h + c] as f64 * w[j * h + c] as f64).sum();
                let want = if i == j { 2.25 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "row {i}·row {j} = {dot}, want {want}");
            }
        }
    }

    #[test]
    fn relu_recurrence_and_empty_shapes_are_rejected() {
        let s = RnnSpec {
            inputs: 2,
            hidden: 3,
            outputs: 1,
            steps: 4,
            activation: Activation::Relu,
            loss: LossKind::Mse,
        };
        assert!(Rnn::new(s.clone()).is_err());
        assert!(Rnn::new(RnnSpec { steps: 0, activation: Activation::Tanh, ..s }).is_err());
    }
}

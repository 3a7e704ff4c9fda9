//! Hessian-vector products of the MLP by Pearlmutter's R-operator, written once over `Backend`.
//!
//! For a direction `v = (V_l, Vb_l)` shaped like the parameters θ, `R{f} = d/dr f(θ + r v)|_{r=0}`.
//! Applying `R{·}` to every line of the forward and backward pass gives `R{∇L} = H v`: the exact
//! Hessian of the minibatch *mean* loss (not the Gauss-Newton matrix), at about twice the cost of
//! a gradient, with no Hessian ever formed.
//!
//! Forward (`a_0 = x`, hidden φ, linear output):
//! ```text
//! z_l = a_{l-1} W_lᵀ + b_l            R{z_l} = R{a_{l-1}} W_lᵀ + a_{l-1} V_lᵀ + Vb_l   (R{a_0} = 0)
//! a_l = φ(z_l)                         R{a_l} = φ'(z_l) ⊙ R{z_l}
//! ```
//! Loss, `dz_L = ∂L/∂z_L` of the mean over `rows` examples:
//! ```text
//! softmax xent:  dz_L = (p − y)/rows   R{dz_L} = (diag p − p pᵀ) R{z_L} / rows
//! squared error: dz_L = (z_L − t)/rows R{dz_L} = R{z_L} / rows
//! ```
//! Backward:
//! ```text
//! gW_l = dz_lᵀ a_{l-1}                 R{gW_l} = R{dz_l}ᵀ a_{l-1} + dz_lᵀ R{a_{l-1}}
//! gb_l = Σ_rows dz_l                   R{gb_l} = Σ_rows R{dz_l}
//! da_{l-1} = dz_l W_l                  R{da_{l-1}} = R{dz_l} W_l + dz_l V_l
//! dz_{l-1} = φ'(z_{l-1}) ⊙ da_{l-1}    R{dz_{l-1}} = φ'(z) ⊙ R{da} + φ''(z) ⊙ da ⊙ R{z}
//! ```
//! Every op is recorded on the backend; nothing is read back.

use super::mlp::{LossKind, Mlp, Targets, Workspace};
use super::params::ParamSet;
use crate::backend::{Backend, BackendError, Gemm, Result};

/// The R-pass buffers for batches of `rows` examples (next to a forward [`Workspace`]).
pub struct RopWorkspace<B: Backend> {
    pub rows: usize,
    /// `R{z_l} [rows, out_l]`, one per layer.
    pub rz: Vec<B::Buf>,
    /// `R{a_l} [rows, out_l]`, one per hidden layer.
    pub ra: Vec<B::Buf>,
    /// `R{dz_l} [rows, out_l]`, one per layer.
    pub rdz: Vec<B::Buf>,
    /// `R{da_l} [rows, out_l]`, one per hidden layer.
    pub rda: Vec<B::Buf>,
}

impl Mlp {
    /// R-pass buffers for batches of `rows` examples.
    pub fn rop_workspace<B: Backend>(&self, b: &B, rows: usize) -> Result<RopWorkspace<B>> {
        let l = self.layers();
        let widths = &self.spec.sizes[1..];
        let bufs = |ws: &[usize]| ws.iter().map(|&w| b.zeros(rows * w)).collect::<Result<Vec<_>>>();
        Ok(RopWorkspace {
            rows,
            rz: bufs(widths)?,
            ra: bufs(&widths[..l - 1])?,
            rdz: bufs(widths)?,
            rda: bufs(&widths[..l - 1])?,
        })
    }

    /// Bytes of an R-pass workspace of `rows` examples (for memory planning).
    pub fn rop_workspace_bytes(&self, rows: usize) -> u64 {
        let l = self.layers();
        let widths = &self.spec.sizes[1..];
        let out: usize = widths.iter().sum();
        let hidden: usize = widths[..l - 1].iter().sum();
        (4 * rows * (2 * out + 2 * hidden)) as u64
    }

    /// The primal pass the R-pass needs, without weight gradients: forward, loss (per-example
    /// loss and `dz_L`), then `da_l`, `dz_l` of every hidden layer into `ws`.
    ///
    /// `x [rows, inputs]`. After [`Mlp::loss_and_grad`] on the same batch and parameters `ws`
    /// already holds all of this.
    pub fn prepare_rop<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        x: &B::Buf,
        targets: &Targets<'_, B>,
        ws: &mut Workspace<B>,
    ) -> Result<()> {
        self.forward(b, p, x, ws)?;
        self.loss(b, targets, ws)?;
        let rows = ws.rows;
        for l in (1..self.layers()).rev() {
            let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
            // da_{l-1} [rows, in] = dz_l [rows, out] · W_l [out, in]
            b.matmul(&Gemm::nn(rows, fan_in, fan_out), &ws.dz[l], &p.tensors[2 * l], &mut ws.da[l - 1])?;
            // dz_{l-1} = φ'(z_{l-1}) ⊙ da_{l-1}
            b.act_backward(
                self.spec.activation,
                rows * fan_in,
                &ws.z[l - 1],
                &ws.da[l - 1],
                &mut ws.dz[l - 1],
            )?;
        }
        Ok(())
    }

    /// `out = H v` for the mean loss of the batch whose primal pass `ws` holds (from
    /// [`Mlp::prepare_rop`] or [`Mlp::loss_and_grad`] at the same `p`, `x`, `targets`):
    /// the R-forward and R-backward passes only (recorded, no readback).
    ///
    /// `x [rows, inputs]`; `v`, `out` shaped like `p` (`out` must not be `v`).
    #[allow(clippy::too_many_arguments)]
    pub fn hvp_prepared<B: Backend>(
        &self,
        b: &B,
        p: &ParamSet<B>,
        v: &ParamSet<B>,
        x: &B::Buf,
        ws: &Workspace<B>,
        rws: &mut RopWorkspace<B>,
        out: &mut ParamSet<B>,
    ) -> Result<()> {
        let rows = ws.rows;
        if rws.rows != rows {
            return Err(BackendError::Invalid {
                op: "Mlp::hvp",
                message: format!("R workspace holds {} rows but the forward workspace {rows}", rws.rows),
            });
        }
        let layers = self.layers();
        for (what, set) in [("direction", v), ("output", &*out)] {
            if set.tensors.len() != 2 * layers {
                return Err(BackendError::Invalid {
                    op: "Mlp::hvp",
                    message: format!(
                        "{what} has {} tensors, the model {}",
                        set.tensors.len(),
                        2 * layers
                    ),
                });
            }
        }
        let act = self.spec.activation;

        // ---- R-forward ----------------------------------------------------------------------
        for l in 0..layers {
            let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
            let input = if l == 0 { x } else { &ws.a[l - 1] };
            let xv = Gemm::nn(rows, fan_out, fan_in).trans(false, true);
            if l == 0 {
                // R{z_0} [rows, out] = x [rows, in] · V_0ᵀ ([out, in] stored)
                b.matmul(&xv, input, &v.tensors[0], &mut rws.rz[0])?;
            } else {
                // R{z_l} = R{a_{l-1}} · W_lᵀ + a_{l-1} · V_lᵀ
                b.matmul(&xv, &rws.ra[l - 1], &p.tensors[2 * l], &mut rws.rz[l])?;
                b.matmul(&xv.scaled(1.0, 1.0), input, &v.tensors[2 * l], &mut rws.rz[l])?;
            }
            // + Vb_l [out]
            b.add_bias(rows, fan_out, &mut rws.rz[l], &v.tensors[2 * l + 1])?;
            if l + 1 < layers {
                // R{a_l} = φ'(z_l) ⊙ R{z_l}
                b.act_backward(act, rows * fan_out, &ws.z[l], &rws.rz[l], &mut rws.ra[l])?;
            }
        }

        // ---- R of the loss gradient ---------------------------------------------------------
        let last = layers - 1;
        let k = self.outputs();
        let scale = 1.0 / rows.max(1) as f32;
        match self.spec.loss {
            LossKind::SoftmaxXent => {
                b.softmax_xent_rop(rows, k, &ws.z[last], &rws.rz[last], scale, &mut rws.rdz[last])?
            }
            LossKind::Mse => {
                b.copy(&rws.rz[last], &mut rws.rdz[last])?;
                b.scale(rows * k, scale, &mut rws.rdz[last])?;
            }
        }

        // ---- R-backward -----------------------------------------------------------------------
        for l in (0..layers).rev() {
            let (fan_in, fan_out) = (self.spec.sizes[l], self.spec.sizes[l + 1]);
            let input = if l == 0 { x } else { &ws.a[l - 1] };
            // R{gW_l} [out, in] = R{dz_l}ᵀ · a_{l-1}  (+ dz_lᵀ · R{a_{l-1}} below)
            let gw = Gemm::nn(fan_out, fan_in, rows).trans(true, false);
            b.matmul(&gw, &rws.rdz[l], input, &mut out.tensors[2 * l])?;
            // R{gb_l} [out] = Σ_rows R{dz_l}
            b.col_sum(rows, fan_out, 1.0, &rws.rdz[l], 0.0, &mut out.tensors[2 * l + 1])?;
            if l == 0 {
                continue;
            }
            b.matmul(&gw.scaled(1.0, 1.0), &ws.dz[l], &rws.ra[l - 1], &mut out.tensors[2 * l])?;
            // R{da_{l-1}} [rows, in] = R{dz_l} · W_l + dz_l · V_l   (W_l, V_l: [out, in])
            let da = Gemm::nn(rows, fan_in, fan_out);
            b.matmul(&da, &rws.rdz[l], &p.tensors[2 * l], &mut rws.rda[l - 1])?;
            b.matmul(&da.scaled(1.0, 1.0), &ws.dz[l], &v.tensors[2 * l], &mut rws.rda[l - 1])?;
            // R{dz_{l-1}} = φ'(z) ⊙ R{da} + φ''(z) ⊙ da ⊙ R{z}
            let n = rows * fan_in;
            b.act_backward(act, n, &ws.z[l - 1], &rws.rda[l - 1], &mut rws.rdz[l - 1])?;
            b.act_second(act, n, &ws.z[l - 1], &ws.da[l - 1], &rws.rz[l - 1], &mut rws.rdz[l - 1])?;
        }
        Ok(())
    }
}

/// `out = H v`: the exact Hessian of the mean loss of the minibatch `x [rows, inputs]`,
/// `targets`, at parameters `p`, times `v` (shaped like `p`). Runs the primal pass (forward,
/// loss, activation gradients) into `ws`, then the R-passes; all recorded, nothing read back.
///
/// When `ws` already holds this batch's pass at `p` (right after [`Mlp::loss_and_grad`], as in a
/// training step before its update), [`Mlp::hvp_prepared`] skips the primal pass; with
/// `v = grads`, `out.dot(grads)` is then gᵀHg.
#[allow(clippy::too_many_arguments)]
pub fn hvp<B: Backend>(
    b: &B,
    mlp: &Mlp,
    p: &ParamSet<B>,
    v: &ParamSet<B>,
    x: &B::Buf,
    targets: &Targets<'_, B>,
    ws: &mut Workspace<B>,
    rws: &mut RopWorkspace<B>,
    out: &mut ParamSet<B>,
) -> Result<()> {
    mlp.prepare_rop(b, p, x, targets, ws)?;
    mlp.hvp_prepared(b, p, v, x, ws, rws, out)
}

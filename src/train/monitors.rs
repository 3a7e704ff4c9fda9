//! Monitors of a training run, read on the steps they are due: the curvature monitor
//! (gᵀg, gᵀHg and the predicted vs actual loss change of the step, eq. 8.10, measured inside
//! [`TrainState::record_step_monitored`]) and the noise probe (the gradient of the first rows
//! of the minibatch before the update, for the two-batch estimate of B_simple).

use crate::backend::Backend;
use crate::config::Config;
use crate::data::device::BatchBuffers;
use crate::model::{Mlp, ParamSet, Targets, Workspace};
use crate::noise::NoiseScaleEma;

use super::batches::BatchSource;
use super::metrics::MetricsLine;
use super::step::{StepMetrics, TrainState};
use super::TrainError;

/// Buffers of the in-training noise-scale estimate: the gradient of the first `rows` examples
/// of the minibatch, at the parameters before the update.
pub struct NoiseProbe<B: Backend> {
    bt: BatchBuffers<B>,
    ws: Workspace<B>,
    grads: ParamSet<B>,
    /// `[tensors]` squared norms of the small-batch gradient.
    stats: B::Buf,
    ema: NoiseScaleEma,
}

/// Which monitors are due on a step.
#[derive(Clone, Copy, Debug, Default)]
pub struct Due {
    pub curvature: bool,
    pub noise: bool,
}

/// The curvature monitor's cadence and the noise probe.
pub struct Monitors<B: Backend> {
    curvature_every: u64,
    noise_every: u64,
    noise: Option<NoiseProbe<B>>,
    /// Rows of the full minibatch.
    batch: usize,
    /// Rows of a resident training set, which minibatches are drawn from without replacement
    /// (the noise estimates are corrected for it); `None` for a stream.
    population: Option<u64>,
}

impl<B: Backend> Monitors<B> {
    pub fn new(
        b: &B,
        cfg: &Config,
        model: &Mlp,
        params: &ParamSet<B>,
        batch: usize,
        population: Option<u64>,
    ) -> Result<Self, TrainError> {
        let m = &cfg.monitor;
        let noise = if m.noise_every > 0 {
            let rows = if m.noise_small_batch > 0 { m.noise_small_batch } else { (batch / 4).max(1) };
            Some(NoiseProbe {
                bt: BatchBuffers::new(b, rows, model.inputs(), cfg.data_outputs())?,
                ws: model.workspace(b, rows)?,
                grads: params.zeros_like(b)?,
                stats: b.zeros(params.tensors.len())?,
                ema: NoiseScaleEma::new(m.noise_ema),
            })
        } else {
            None
        };
        let (curvature_every, noise_every) = (m.curvature_every, m.noise_every);
        Ok(Monitors { curvature_every, noise_every, noise, batch, population })
    }

    /// The monitors due on the step that makes `next` steps.
    pub fn due(&self, next: u64) -> Due {
        let every = |k: u64| k > 0 && next.is_multiple_of(k);
        Due { curvature: every(self.curvature_every), noise: every(self.noise_every) }
    }

    /// Before the step (when the noise probe is due): the gradient of the first rows of this
    /// step's minibatch at the current parameters, and its squared norms.
    #[allow(clippy::too_many_arguments)]
    pub fn probe(
        &mut self,
        b: &B,
        due: Due,
        model: &Mlp,
        params: &ParamSet<B>,
        source: &mut BatchSource<B>,
        epoch: u64,
        step_in_epoch: u64,
        is_class: bool,
    ) -> Result<(), TrainError> {
        let Some(np) = self.noise.as_mut().filter(|_| due.noise) else { return Ok(()) };
        source.fill_slice(b, &mut np.bt, epoch, step_in_epoch, self.batch, 0)?;
        let t = if is_class { Targets::Classes(&np.bt.labels) } else { Targets::Values(&np.bt.targets) };
        model.loss_and_grad(b, params, &np.bt.x, &t, &mut np.ws, &mut np.grads)?;
        np.grads.sum_sq_into(b, &mut np.stats, 0)?;
        Ok(())
    }

    /// After the step: the readings of the monitors that were `due` into `line` (minibatch
    /// figures `m`).
    pub fn read(
        &mut self,
        b: &B,
        due: Due,
        st: &TrainState<B>,
        m: &StepMetrics,
        line: &mut MetricsLine,
    ) -> Result<(), TrainError> {
        // A step the f16 loss scaler skipped measured nothing (its gradient overflowed): its
        // monitor fields are null, and the noise scale's average leaves it out (its norm,
        // reported as 0, gave |G|² estimates below 0).
        if due.curvature {
            line.gtg = Some(None);
            line.gthg = Some(None);
            line.eps_star = Some(None);
            line.predicted_delta_loss = Some(None);
            line.actual_delta_loss = Some(None);
            line.step_too_large = Some(None);
        }
        if due.noise && self.noise.is_some() {
            line.b_simple = Some(None);
            line.noise_g2 = Some(None);
            line.noise_trace = Some(None);
        }
        if m.skipped {
            return Ok(());
        }
        if due.curvature {
            let c = st.read_curvature(b)?;
            line.gtg = Some(Some(c.gtg));
            line.gthg = Some(Some(c.gthg));
            // ε* minimises the quadratic model along −g only where it curves up (gᵀHg > 0);
            // elsewhere the model has no minimum that way (it logged ε* < 0 near saddles).
            line.eps_star = Some((c.gthg > 0.0).then(|| c.gtg / c.gthg));
            // Eq. 8.10 for the step taken d (−ε g for plain SGD): ΔL̂ = gᵀd + ½ dᵀHd, too large
            // when the quadratic term outweighs the first-order decrease.
            line.predicted_delta_loss = Some(Some(c.gtd + 0.5 * c.dthd));
            line.actual_delta_loss = Some(Some(c.loss_after - c.loss_before.unwrap_or(m.loss)));
            line.step_too_large = Some(Some(0.5 * c.dthd > -c.gtd));
        }
        if let (true, Some(np)) = (due.noise, self.noise.as_mut()) {
            let g2s: f64 = b.read(&np.stats)?.iter().map(|&v| v as f64).sum();
            let g2b = m.grad_norm * m.grad_norm;
            let iid = crate::noise::two_batch_estimates(np.bt.rows as f64, g2s, self.batch as f64, g2b);
            let estimates = match self.population {
                Some(n) => iid.map(|(g2, tr)| crate::noise::without_replacement(g2, tr, n as f64)),
                None => iid,
            };
            if let Some((g2, tr)) = estimates {
                line.noise_g2 = Some(Some(g2));
                line.noise_trace = Some(Some(tr));
                line.b_simple = Some(np.ema.update(g2, tr));
            }
        }
        Ok(())
    }
}

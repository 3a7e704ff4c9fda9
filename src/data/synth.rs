//! Synthetic datasets: the fixed tensors of each stream (class means, `W*`, the teacher MLP), all
//! deterministic functions of the data seed, and the resident datasets built by the very same
//! generator the GPU streams from ([`crate::backend::cpu::datagen::generate`]).

use rayon::prelude::*;

use super::rng::{
    self, normal_at, STREAM_LABEL, STREAM_MEANS, STREAM_TEACHER_1, STREAM_TEACHER_2, STREAM_WSTAR,
};
use super::{alloc, DataError, Dataset, Labels};
use crate::backend::cpu::datagen::{self, noise_threshold};
use crate::backend::{GenKind, GenSpec};
use crate::config::{DataConfig, DataKind};

/// Validation example `k` is stream example `VAL_FIRST + k`: a part of the stream that training
/// (indices below 2^48) never reaches, with the same input distribution.
pub const VAL_FIRST: u64 = 1 << 48;

/// Examples `CALIBRATION_FIRST ..` calibrate the teacher's class balance (never used as data).
const CALIBRATION_FIRST: u64 = 3 << 48;
pub const CALIBRATION_EXAMPLES: usize = crate::config::TEACHER_CALIBRATION_INPUTS;
const CALIBRATION_ROUNDS: usize = 40;

/// Gain of the teacher's first layer: pre-activations ≈ N(0, gain²), so tanh is well nonlinear.
const TEACHER_GAIN: f32 = 1.5;

/// The counter-based stream of a synthetic config (gaussian_mixture, linear_regression), or
/// `None` for kinds that only exist resident (teacher, npy).
pub fn gen_spec(cfg: &DataConfig) -> Option<GenSpec> {
    let kind = match cfg.kind {
        DataKind::GaussianMixture => GenKind::GaussianMixture,
        DataKind::LinearRegression => GenKind::LinearRegression,
        DataKind::Teacher | DataKind::Npy => return None,
    };
    Some(GenSpec {
        kind,
        seed: cfg.seed,
        dim: cfg.dim,
        classes: cfg.classes,
        outputs: cfg.outputs,
        label_noise: cfg.label_noise,
        noise_std: cfg.noise_std,
        duplicates: cfg.duplicates.max(1) as u64,
    })
}

/// The validation stream of `spec`: the same distribution with clean labels (label noise is a
/// property of the training set) and no duplicates; its examples start at [`VAL_FIRST`].
pub fn val_spec(spec: &GenSpec) -> GenSpec {
    GenSpec { label_noise: 0.0, duplicates: 1, ..*spec }
}

/// The stream's fixed tensors (see `Backend::generate`): class means `[classes, dim]`
/// (gaussian_mixture) or `W* [outputs, dim]` then `std [dim]` (linear_regression); empty for
/// teacher and npy.
pub fn gen_table(cfg: &DataConfig) -> Vec<f32> {
    match cfg.kind {
        DataKind::GaussianMixture => class_means(cfg.seed, cfg.classes, cfg.dim, cfg.separation),
        DataKind::LinearRegression => {
            let mut t = w_star(cfg.seed, cfg.outputs, cfg.dim);
            t.extend(hessian_eigenvalues(cfg).iter().map(|&e| e.sqrt() as f32));
            t
        }
        DataKind::Teacher | DataKind::Npy => Vec::new(),
    }
}

/// Class means `[classes, dim]`: `μ_c = separation · z_c / √dim` with `z_c ~ N(0, I)`, so
/// `‖μ_c‖ ≈ separation` and two means are ≈ `separation · √2` apart.
pub fn class_means(seed: u64, classes: usize, dim: usize, separation: f32) -> Vec<f32> {
    let key = rng::key_of(seed);
    let scale = separation / (dim.max(1) as f32).sqrt();
    (0..classes)
        .into_par_iter()
        .flat_map_iter(|c| (0..dim).map(move |j| scale * normal_at(key, STREAM_MEANS, c as u64, j)))
        .collect()
}

/// `W* [outputs, dim]` with entries `N(0, 1/dim)`.
pub fn w_star(seed: u64, outputs: usize, dim: usize) -> Vec<f32> {
    let key = rng::key_of(seed);
    let scale = 1.0 / (dim.max(1) as f32).sqrt();
    (0..outputs)
        .into_par_iter()
        .flat_map_iter(|k| (0..dim).map(move |j| scale * normal_at(key, STREAM_WSTAR, k as u64, j)))
        .collect()
}

/// Eigenvalues `λ_j = κ^(-j/(D-1))`, `j < D`, log-spaced from 1 down to `1/κ`
/// (`κ = condition_number`; `[1]` when D = 1).
///
/// linear_regression draws `x ~ N(0, diag(λ))`, so for a linear model `y = W x + b` and the mean
/// loss `½‖y − t‖²` the Hessian with respect to each output row of `W` is `E[x xᵀ] = diag(λ)`
/// (exactly, in closed form): the Hessian over `W` is `I_K ⊗ diag(λ)` (each `λ_j` with
/// multiplicity K = outputs) and the bias adds eigenvalue 1 per output (`E[x] = 0`).
/// The generator stores `std_j = sqrt(λ_j)` in f32, so the realised variances are `std_j²`.
pub fn hessian_eigenvalues(cfg: &DataConfig) -> Vec<f64> {
    let d = cfg.dim;
    let kappa = (cfg.condition_number as f64).max(1.0);
    if d <= 1 {
        return vec![1.0; d];
    }
    (0..d).map(|j| kappa.powf(-(j as f64) / (d - 1) as f64)).collect()
}

/// Examples `first .. first + rows` of a stream, as a host dataset (the CPU generator).
pub fn generate_dataset(
    spec: &GenSpec,
    table: &[f32],
    first: u64,
    rows: usize,
) -> Result<Dataset, DataError> {
    let mut x = alloc::<f32>("x", rows, spec.dim)?;
    let (mut labels, mut targets) = match spec.kind {
        GenKind::GaussianMixture => (alloc::<u32>("labels", rows, 1)?, Vec::new()),
        GenKind::LinearRegression => (Vec::new(), alloc::<f32>("targets", rows, spec.outputs)?),
    };
    datagen::generate(spec, first, rows, table, &mut x, &mut labels, &mut targets)
        .map_err(|source| DataError::Generate { what: "synthetic examples", source })?;
    let targets = match spec.kind {
        GenKind::GaussianMixture => Labels::Classes { labels, classes: spec.classes },
        GenKind::LinearRegression => Labels::Values { targets, outputs: spec.outputs },
    };
    Ok(Dataset { x, targets, n: rows, dim: spec.dim })
}

/// A random teacher MLP `dim → hidden (tanh) → classes` whose argmax labels the data.
/// `w1 [hidden, dim]` ~ `N(0, gain²/dim)`; `w2 [classes, hidden]` has unit-norm rows (no class is
/// favoured by scale); `b2 [classes]` is calibrated on held-out inputs so that the classes are
/// about equally frequent.
#[derive(Clone, Debug)]
pub struct Teacher {
    pub dim: usize,
    pub hidden: usize,
    pub classes: usize,
    pub w1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
}

impl Teacher {
    pub fn new(seed: u64, dim: usize, hidden: usize, classes: usize) -> Self {
        let key = rng::key_of(seed);
        let s1 = TEACHER_GAIN / (dim.max(1) as f32).sqrt();
        let w1 = (0..hidden)
            .flat_map(|h| (0..dim).map(move |j| s1 * normal_at(key, STREAM_TEACHER_1, h as u64, j)))
            .collect();
        let mut w2: Vec<f32> = (0..classes)
            .flat_map(|c| (0..hidden).map(move |h| normal_at(key, STREAM_TEACHER_2, c as u64, h)))
            .collect();
        for row in w2.chunks_mut(hidden.max(1)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        let mut t = Teacher { dim, hidden, classes, w1, w2, b2: vec![0.0; classes] };
        t.calibrate(seed);
        t
    }

    /// `h [hidden] = tanh(w1 x)` for `x [dim]`.
    pub fn hidden_of(&self, x: &[f32]) -> Vec<f32> {
        self.w1.chunks(self.dim.max(1)).take(self.hidden).map(|w| dot(w, x).tanh()).collect()
    }

    /// The first argmax of `w2 h + b2`.
    pub fn label_of_hidden(&self, h: &[f32]) -> u32 {
        let mut best = (0u32, f32::NEG_INFINITY);
        for (c, (w, b)) in self.w2.chunks(self.hidden.max(1)).zip(&self.b2).enumerate() {
            let z = dot(w, h) + b;
            if z > best.1 {
                best = (c as u32, z);
            }
        }
        best.0
    }

    /// The teacher's label of `x [dim]`.
    pub fn label(&self, x: &[f32]) -> u32 {
        self.label_of_hidden(&self.hidden_of(x))
    }

    /// Balance the classes: on held-out inputs, repeatedly lower the bias of classes that win
    /// too often (`b_c -= ½ ln(freq_c · C)`), a deterministic fixed-point iteration.
    fn calibrate(&mut self, seed: u64) {
        if self.classes < 2 {
            return;
        }
        let hs: Vec<Vec<f32>> = (0..CALIBRATION_EXAMPLES)
            .into_par_iter()
            .map(|i| {
                let mut x = vec![0.0; self.dim];
                datagen::standard_normal_row(seed, CALIBRATION_FIRST + i as u64, &mut x);
                self.hidden_of(&x)
            })
            .collect();
        // w2 h of every calibration input [CALIBRATION_EXAMPLES, classes], once: each round
        // then adds its biases as `label_of_hidden` does (`dot(w, h) + b`, the same bits).
        let w2 = &self.w2;
        let zs: Vec<Vec<f32>> =
            hs.par_iter().map(|h| w2.chunks(self.hidden.max(1)).map(|w| dot(w, h)).collect()).collect();
        let target = CALIBRATION_EXAMPLES as f32 / self.classes as f32;
        for _ in 0..CALIBRATION_ROUNDS {
            let mut counts = vec![0usize; self.classes];
            for z in &zs {
                counts[first_argmax(z, &self.b2)] += 1;
            }
            for (b, &c) in self.b2.iter_mut().zip(&counts) {
                *b -= 0.5 * ((c as f32 + 1.0) / (target + 1.0)).ln();
            }
        }
    }
}

/// The first argmax of `z + b` (as [`Teacher::label_of_hidden`] breaks ties).
fn first_argmax(z: &[f32], b: &[f32]) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (c, (z, b)) in z.iter().zip(b).enumerate() {
        if z + b > best.1 {
            best = (c, z + b);
        }
    }
    best.0
}

/// `Σ a[i] b[i]` in eight lanes (vectorizes; host-only, so no GPU twin to match).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0f32; 8];
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// Examples `first .. first + rows` of the teacher task: `x ~ N(0, I)` (the same inputs as the
/// stream's `STREAM_X`), label = teacher argmax, replaced with probability `label_noise` by a
/// uniformly random class (the rule of gaussian_mixture). Example `i` is distinct `i / duplicates`.
pub fn teacher_dataset(
    teacher: &Teacher,
    seed: u64,
    first: u64,
    rows: usize,
    label_noise: f32,
    duplicates: u64,
) -> Result<Dataset, DataError> {
    let dim = teacher.dim;
    let mut x = alloc::<f32>("x", rows, dim)?;
    let mut labels = alloc::<u32>("labels", rows, 1)?;
    let key = rng::key_of(seed);
    let thr = noise_threshold(label_noise);
    let classes = teacher.classes as u32;
    let dup = duplicates.max(1);
    let row = |r: usize, xr: &mut [f32], l: &mut u32| {
        let d = (first + r as u64) / dup;
        datagen::standard_normal_row(seed, d, xr);
        let w = rng::block(key, STREAM_LABEL, d, 0);
        *l = if (w[1] >> 8) < thr { rng::below(w[2], classes) } else { teacher.label(xr) };
    };
    if dim == 0 {
        labels.iter_mut().enumerate().for_each(|(r, l)| row(r, &mut [], l));
    } else {
        x.par_chunks_mut(dim)
            .zip(labels.par_iter_mut())
            .enumerate()
            .for_each(|(r, (xr, l))| row(r, xr, l));
    }
    Ok(Dataset { x, targets: Labels::Classes { labels, classes: teacher.classes }, n: rows, dim })
}

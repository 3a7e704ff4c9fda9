//! The plain values the [`super::Backend`] ops take: activations, matrix products, synthetic
//! stream specs, the momentum step's hyperparameters, and the length checks every op runs.

use serde::{Deserialize, Serialize};

use super::{BackendError, Result};

/// Pointwise nonlinearity φ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Relu,
    Tanh,
}

impl Activation {
    /// Index used in shader parameter blocks.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Tanh => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }
}

/// A general matrix product `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]`.
///
/// `A` is stored `[m,k]` row-major, or `[k,m]` when `trans_a`; `B` is stored `[k,n]`, or `[n,k]`
/// when `trans_b`. With `beta == 0` the old contents of `C` are ignored (NaN included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
}

impl Gemm {
    /// `C = A·B` with no transposes.
    pub fn nn(m: usize, n: usize, k: usize) -> Self {
        Gemm { m, n, k, trans_a: false, trans_b: false, alpha: 1.0, beta: 0.0 }
    }
    pub fn trans(mut self, trans_a: bool, trans_b: bool) -> Self {
        self.trans_a = trans_a;
        self.trans_b = trans_b;
        self
    }
    pub fn scaled(mut self, alpha: f32, beta: f32) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }
    /// Multiply-adds counted as 2 FLOPs.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// Which synthetic stream [`GenSpec`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenKind {
    /// `x = μ_y + N(0, I)`, `y` uniform over classes (with label noise).
    GaussianMixture,
    /// `x ~ N(0, diag(s))`, `t = W* x + noise_std · N(0, I)`.
    LinearRegression,
}

/// A counter-based synthetic data stream: example `i` is a pure function of `(seed, i)`, so the
/// CPU and GPU generate the same examples, and a stream of any length needs no memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenSpec {
    pub kind: GenKind,
    pub seed: u64,
    /// Input dimension D.
    pub dim: usize,
    /// Classes (gaussian_mixture).
    pub classes: usize,
    /// Regression outputs K (linear_regression).
    pub outputs: usize,
    /// Probability that a label is replaced by a uniformly random class.
    pub label_noise: f32,
    /// Standard deviation of the target noise (linear_regression).
    pub noise_std: f32,
    /// Example `i` is distinct example `i / duplicates` (redundancy).
    pub duplicates: u64,
}

/// Which implementation a backend is, for reports and device choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Cpu,
    Gpu,
}

/// Check that a buffer holds at least `need` elements; the error names the op and operand.
pub fn check_len(op: &'static str, operand: &'static str, have: usize, need: usize) -> Result<()> {
    if have < need {
        return Err(BackendError::Shape { op, operand, have, need });
    }
    Ok(())
}

/// Elements of the stored operands of a [`Gemm`]: `(len A, len B, len C)`, `usize::MAX` for
/// one that overflows (no buffer holds it: [`check_len`] and allocation refuse it).
pub fn gemm_lens(g: &Gemm) -> (usize, usize, usize) {
    let len = |a: usize, b: usize| a.saturating_mul(b);
    (len(g.m, g.k), len(g.k, g.n), len(g.m, g.n))
}

/// The hyperparameters of one [`super::Backend::momentum_update`]:
/// `v = mu * v + (g + weight_decay * p)`, then `p -= lr * v`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MomentumStep {
    pub lr: f32,
    pub mu: f32,
    pub weight_decay: f32,
}

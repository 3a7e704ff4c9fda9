//! Curvature of the loss surface (Deep Learning, 8.2): Hessian-vector products on the backend,
//! and host-side eigen-solvers that only ever touch the Hessian through them.
//!
//! - [`hvp`]: [`HvpOperator`], `v ↦ H v` of the mean loss over a minibatch or a whole dataset
//!   (accumulated in chunks), on flat host vectors or on device [`crate::model::ParamSet`]s;
//!   and the HVP-vs-gradient timing.
//! - [`power`]: power iteration for the dominant eigenvalue, top-k by deflation, λmax / λmin.
//! - [`lanczos`]: Lanczos with full reorthogonalization; Ritz values, weights and residuals.
//! - [`hutchinson`]: the trace by Rademacher probes, stopping when the running mean settles.
//! - [`slq`]: the spectral density by stochastic Lanczos quadrature.
//! - [`cg`]: conjugate gradients, for the Newton direction `H⁻¹ g` (Hessian-free).
//! - [`analysis`]: everything `batchscope curvature` measures ([`run_curvature`]), with
//!   [`linear_reference`] (the closed form of a linear model) and the random-batch spread.
//!
//! The solvers are written against [`SymOp`] (any symmetric linear operator on `f32` vectors,
//! accumulating in `f64`), so they are unit-tested on explicit matrices ([`DenseSym`]).

pub mod analysis;
mod batches;
pub mod budget;
pub mod cg;
pub mod hutchinson;
pub mod hvp;
pub mod lanczos;
pub mod linear_reference;
pub mod power;
pub mod slq;
mod summary;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::domain_error;

pub use crate::stats::{dot, norm};
pub use analysis::{run_curvature, CurvatureOptions, CurvatureReport};
pub use batches::{BatchSample, BatchSpread};

pub use cg::{conjugate_gradient, CgResult};
pub use hutchinson::{hutchinson_trace, HutchinsonOptions, TraceEstimate};
pub use hvp::{time_hvp_vs_grad, HvpOperator, HvpOptions, HvpTiming};
pub use lanczos::{lanczos, LanczosRun, Ritz};
pub use linear_reference::{empirical_second_moment, linear_reference, LinearReference};
pub use power::{
    extreme_eigenvalues, max_by_power, power_iteration, top_eigenpair, top_k_deflation, PowerOptions,
    PowerResult,
};
pub use slq::{density_on_grid, slq, Density, SlqOptions, SlqResult};
pub use summary::{CurvatureSummary, LanczosSummary, PowerSummary, SlqSummary};

domain_error! {
    /// Errors of the curvature code; each names what failed (and the shared `Backend`, `Data`,
    /// `Checkpoint` and `Report` sources).
    pub enum CurvatureError {
        #[error("{0}")]
        Setup(String),
        #[error("{what}: vector has {have} elements, the operator acts on {need}")]
        Dim { what: &'static str, have: usize, need: usize },
        #[error("{0}: the tridiagonal eigen-decomposition did not converge")]
        Eigen(&'static str),
    }
}

pub type Result<T> = std::result::Result<T, CurvatureError>;

/// A symmetric linear operator `v ↦ A v` on vectors of [`SymOp::dim`] `f32`s.
pub trait SymOp {
    fn dim(&self) -> usize;
    /// `out = A v` for `v, out: [dim]`.
    fn apply(&mut self, v: &[f32], out: &mut [f32]) -> Result<()>;
}

/// An explicit symmetric matrix `a [n, n]` (row-major, `f64`): the reference the solvers are
/// checked against, and the Hessian built column by column from HVPs.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSym {
    pub n: usize,
    pub a: Vec<f64>,
}

impl DenseSym {
    /// `a [n, n]`; symmetrised as `(A + Aᵀ)/2` (column-by-column HVPs are symmetric only to
    /// rounding).
    pub fn new(n: usize, a: Vec<f64>) -> Result<Self> {
        check_dim("DenseSym::new", a.len(), n * n)?;
        let mut s = a.clone();
        for i in 0..n {
            for j in 0..n {
                s[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
            }
        }
        Ok(DenseSym { n, a: s })
    }

    /// Diagonal matrix.
    pub fn diag(d: &[f64]) -> Self {
        let n = d.len();
        let mut a = vec![0.0; n * n];
        for (i, &v) in d.iter().enumerate() {
            a[i * n + i] = v;
        }
        DenseSym { n, a }
    }

    /// The explicit matrix of `op`: column `j` is `op(e_j)` (`dim` operator applications).
    pub fn from_op<O: SymOp + ?Sized>(op: &mut O) -> Result<Self> {
        let n = op.dim();
        let mut e = vec![0f32; n];
        let mut col = vec![0f32; n];
        let mut a = vec![0f64; n * n];
        for j in 0..n {
            e[j] = 1.0;
            op.apply(&e, &mut col)?;
            e[j] = 0.0;
            for i in 0..n {
                a[i * n + j] = col[i] as f64;
            }
        }
        DenseSym::new(n, a)
    }

    /// All eigenvalues, ascending (dense symmetric eigen-decomposition).
    pub fn eigenvalues(&self) -> Result<Vec<f64>> {
        let m = nalgebra::DMatrix::from_row_slice(self.n, self.n, &self.a);
        let eig = nalgebra::SymmetricEigen::try_new(m, 1e-15, 100_000)
            .ok_or(CurvatureError::Eigen("DenseSym::eigenvalues"))?;
        let mut v: Vec<f64> = eig.eigenvalues.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        Ok(v)
    }

    pub fn trace(&self) -> f64 {
        (0..self.n).map(|i| self.a[i * self.n + i]).sum()
    }
}

impl SymOp for DenseSym {
    fn dim(&self) -> usize {
        self.n
    }
    fn apply(&mut self, v: &[f32], out: &mut [f32]) -> Result<()> {
        check_dim("DenseSym::apply v", v.len(), self.n)?;
        check_dim("DenseSym::apply out", out.len(), self.n)?;
        for (i, o) in out.iter_mut().enumerate().take(self.n) {
            let row = &self.a[i * self.n..(i + 1) * self.n];
            *o = row.iter().zip(v).map(|(&a, &x)| a * x as f64).sum::<f64>() as f32;
        }
        Ok(())
    }
}

/// `A − shift·I`: turns the most negative eigenvalue into the dominant one.
pub struct Shifted<'a, O: SymOp + ?Sized> {
    pub op: &'a mut O,
    pub shift: f64,
}

impl<O: SymOp + ?Sized> SymOp for Shifted<'_, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }
    fn apply(&mut self, v: &[f32], out: &mut [f32]) -> Result<()> {
        self.op.apply(v, out)?;
        for (o, &x) in out.iter_mut().zip(v) {
            *o = (*o as f64 - self.shift * x as f64) as f32;
        }
        Ok(())
    }
}

/// `A` itself, calling `tick` after every product (a progress bar counts them).
pub struct Counted<'a, O: SymOp + ?Sized> {
    pub op: &'a mut O,
    pub tick: &'a dyn Fn(),
}

impl<O: SymOp + ?Sized> SymOp for Counted<'_, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }
    fn apply(&mut self, v: &[f32], out: &mut [f32]) -> Result<()> {
        self.op.apply(v, out)?;
        (self.tick)();
        Ok(())
    }
}

/// `A − Σ λ_i u_i u_iᵀ` for found unit eigenvectors `u_i` (Hotelling deflation).
pub struct Deflated<'a, O: SymOp + ?Sized> {
    pub op: &'a mut O,
    pub pairs: &'a [(f64, Vec<f32>)],
}

impl<O: SymOp + ?Sized> SymOp for Deflated<'_, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }
    fn apply(&mut self, v: &[f32], out: &mut [f32]) -> Result<()> {
        self.op.apply(v, out)?;
        for (lambda, u) in self.pairs {
            let c = lambda * dot(u, v);
            for (o, &ui) in out.iter_mut().zip(u) {
                *o = (*o as f64 - c * ui as f64) as f32;
            }
        }
        Ok(())
    }
}

pub(crate) fn check_dim(what: &'static str, have: usize, need: usize) -> Result<()> {
    if have != need {
        return Err(CurvatureError::Dim { what, have, need });
    }
    Ok(())
}

/// `n` independent ±1 values, seeded.
pub fn rademacher(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect()
}

/// What a seeded random draw of an analysis is for. With the user's seed and an index it names
/// one random stream ([`stream_seed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The k-th eigenvector's start in top-k by deflation.
    Deflation = 1,
    /// The second power iteration of [`extreme_eigenvalues`] (on the shifted operator).
    OtherEnd,
    /// The start of the Lanczos run whose Ritz values give λmin, the top-k and SLQ's first run.
    LanczosStart,
    /// The start of SLQ's run k (after the Lanczos run it reuses).
    SlqStart,
    /// Hutchinson's Rademacher probes (one stream, drawn in order).
    TraceProbes,
    /// The examples of random batch (size, repeat), and that batch's Lanczos and power starts.
    BatchDraw,
    BatchLanczos,
    BatchPower,
}

/// SplitMix64's finaliser: a bijection of `u64` that sends neighbouring inputs far apart.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of draw `index` of `stream` under the user's `seed`. Different seeds, streams or
/// indices give unrelated seeds. Offsets added to the seed did not: SLQ's run k + 1 under seed s
/// was its run k under seed s + 1, so "independent" repeats with seeds 0, 1, 2, ... shared all but
/// one of their probes.
pub fn stream_seed(seed: u64, stream: Stream, index: u64) -> u64 {
    mix64(mix64(mix64(seed) ^ stream as u64) ^ index)
}

/// A seeded random unit vector (a Rademacher vector over `√n`).
pub fn random_unit(seed: u64, n: usize) -> Vec<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let s = 1.0 / (n.max(1) as f32).sqrt();
    rademacher(&mut r, n).into_iter().map(|v| v * s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_eigenvalues_of_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let m = DenseSym::new(2, vec![2.0, 1.0, 1.0, 2.0]).unwrap();
        let e = m.eigenvalues().unwrap();
        assert!((e[0] - 1.0).abs() < 1e-12 && (e[1] - 3.0).abs() < 1e-12, "{e:?}");
        assert_eq!(m.trace(), 4.0);
    }

    #[test]
    fn from_op_recovers_the_matrix_and_wrappers_shift_and_deflate() {
        let mut m = DenseSym::new(3, vec![4.0, 1.0, 0.0, 1.0, 3.0, 0.5, 0.0, 0.5, -2.0]).unwrap();
        let again = DenseSym::from_op(&mut m).unwrap();
        for (a, b) in m.a.iter().zip(&again.a) {
            assert!((a - b).abs() < 1e-6);
        }
        let e = m.eigenvalues().unwrap();
        let shifted =
            DenseSym::from_op(&mut Shifted { op: &mut m, shift: 1.5 }).unwrap().eigenvalues().unwrap();
        for (a, b) in e.iter().zip(&shifted) {
            assert!((a - 1.5 - b).abs() < 1e-5, "{e:?} vs {shifted:?}");
        }
        // Deflating e_0 with λ = 4 removes the (0,0) entry only.
        let pairs = vec![(4.0, vec![1.0f32, 0.0, 0.0])];
        let d = DenseSym::from_op(&mut Deflated { op: &mut m, pairs: &pairs }).unwrap();
        assert!(d.a[0].abs() < 1e-6 && (d.a[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn dimension_mismatch_is_an_error() {
        let mut m = DenseSym::diag(&[1.0, 2.0]);
        let mut out = vec![0f32; 2];
        assert!(matches!(m.apply(&[1.0], &mut out), Err(CurvatureError::Dim { .. })));
        assert!(DenseSym::new(3, vec![0.0; 4]).is_err());
    }

    #[test]
    fn random_unit_is_unit_and_seeded() {
        let a = random_unit(3, 101);
        assert!((norm(&a) - 1.0).abs() < 1e-6);
        assert_eq!(a, random_unit(3, 101));
        assert_ne!(a, random_unit(4, 101));
    }

    #[test]
    fn stream_seeds_of_nearby_seeds_streams_and_indices_are_all_distinct() {
        use std::collections::HashSet;
        let streams = [
            Stream::Deflation,
            Stream::OtherEnd,
            Stream::LanczosStart,
            Stream::SlqStart,
            Stream::TraceProbes,
            Stream::BatchDraw,
            Stream::BatchLanczos,
            Stream::BatchPower,
        ];
        let mut seen = HashSet::new();
        for seed in 0..64u64 {
            for &stream in &streams {
                for index in 0..64u64 {
                    let s = stream_seed(seed, stream, index);
                    assert!(seen.insert(s), "{seed} {stream:?} {index} repeats a seed");
                    // Not an offset of the user's seed (seed + k was the old scheme).
                    assert!(s.wrapping_sub(seed) > 1 << 40, "{seed} {stream:?} {index}: {s}");
                }
            }
        }
        assert_eq!(stream_seed(5, Stream::SlqStart, 3), stream_seed(5, Stream::SlqStart, 3));
    }
}

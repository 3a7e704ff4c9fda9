//! Helpers of the mixed-precision tests (tests/f16_parity.rs, tests/f16_epilogue.rs,
//! tests/f16_skinny.rs): a backend's half ops, f16 copies of host vectors, and one f16 product
//! with an epilogue, fused or by the unfused default.

use batchscope::backend::half::{HalfBuf, HalfOps};
use batchscope::backend::{half_epilogue, Activation, Backend, Epilogue, Gemm};

use super::uniform;

/// The mixed-precision ops of `b` (every backend has them).
pub fn ops<B: Backend>(b: &B) -> &dyn HalfOps<Buf = B::Buf> {
    b.half_ops().expect("mixed-precision ops")
}

/// `x` stored as halves on `b`.
pub fn half_of<B: Backend>(b: &B, x: &[f32]) -> HalfBuf<B::Buf> {
    let mut out = ops(b).zeros_half(x.len()).expect("zeros_half");
    ops(b).to_half(x.len(), &b.upload(x).expect("upload"), &mut out).expect("to_half");
    out
}

/// The epilogue of an f16 product.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bias,
    BiasAct(Activation),
    ActGrad(Activation),
    BiasGrad,
}

/// Host operands of a case: A, B, C, bias [n], z [m, n] (in [-2, 2), with exact zeros), s [k, m]
/// (the bias gradient's input).
pub struct Data {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
    pub bias: Vec<f32>,
    pub z: Vec<f32>,
    pub s: Vec<f32>,
}

/// Seeded operands for `g`.
pub fn data(g: &Gemm, seed: u64) -> Data {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut z = uniform(seed + 4, m * n, 2.0);
    z.iter_mut().step_by(7).for_each(|v| *v = 0.0);
    Data {
        a: uniform(seed, m * k, 1.0),
        b: uniform(seed + 1, k * n, 1.0),
        c: uniform(seed + 2, m * n, 1.0),
        bias: uniform(seed + 3, n, 1.0),
        z,
        s: uniform(seed + 5, k * m, 1.0),
    }
}

/// `[C, y (the bias gradient in its first m elements for `Kind::BiasGrad`), f16 copy (widened;
/// empty without one)]` of one case on `b`, fused through the trait (`fused`) or by the unfused
/// default.
pub fn run<B: Backend>(
    b: &B,
    g: &Gemm,
    kind: Kind,
    with_half: bool,
    d: &Data,
    fused: bool,
) -> [Vec<f32>; 3] {
    let up = |v: &[f32]| b.upload(v).expect("upload");
    let (ha, hb) = (half_of(b, &d.a), half_of(b, &d.b));
    let (bias, z, s) = (up(&d.bias), up(&d.z), up(&d.s));
    let (mut c, mut y, mut scratch) = (up(&d.c), up(&vec![0.0; g.m * g.n]), up(&vec![0.0; g.m * g.n]));
    let mut half = ops(b).zeros_half(g.m * g.n).expect("zeros_half");
    let epi = match kind {
        Kind::Bias => Epilogue::Bias(&bias),
        Kind::BiasAct(f) => Epilogue::BiasAct(f, &bias, &mut y),
        Kind::ActGrad(f) => Epilogue::ActGrad { act: f, z: &z, scratch: &mut scratch },
        Kind::BiasGrad => Epilogue::BiasGrad { s: &s, bias_grad: &mut y },
    };
    let h = with_half.then_some(&mut half);
    let r = match fused {
        true => b.matmul_half_epilogue(g, [&ha, &hb], &mut c, epi, h),
        false => half_epilogue::unfused(b, g, [&ha, &hb], &mut c, epi, h),
    };
    r.unwrap_or_else(|e| panic!("{g:?} {kind:?}: {e}"));
    let copy = if with_half { ops(b).read_half(&half).expect("read_half") } else { Vec::new() };
    [b.read(&c).expect("read"), b.read(&y).expect("read"), copy]
}

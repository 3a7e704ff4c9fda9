//! Analytic cost and profile group of the mixed-precision ops ([`crate::backend::half::HalfOps`]),
//! counted as [`super::cost`] counts the f32 ones: f32 elements 4 bytes, f16 elements 2.

use super::cost::Op;
use crate::backend::half::scaler;
use crate::backend::Scope;

const F16: f64 = 2.0;
const F32: f64 = 4.0;

/// One mixed-precision op with the sizes that fix its cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfOp {
    /// f32 → f16 copies of `n` elements in all.
    ToHalf { n: usize },
    /// `x *= S` of `n` elements (d logits), and (`to_half`) their f16 copy.
    LossScale { n: usize, to_half: bool },
    /// `x *= 1/S` of `n` gradient elements with the found-inf check.
    Unscale { n: usize },
    /// The optimizer step of `n` parameters, skipped on overflow.
    GuardedUpdate { n: usize, momentum: bool },
    /// The loss scale's growth or backoff at the end of a step.
    ScaleUpdate,
}

impl HalfOp {
    pub fn flops(&self) -> f64 {
        match *self {
            HalfOp::ToHalf { n } => n as f64,
            HalfOp::LossScale { n, to_half } => (n * (1 + to_half as usize)) as f64,
            // The product and the finiteness test.
            HalfOp::Unscale { n } => 2.0 * n as f64,
            HalfOp::GuardedUpdate { n, momentum: true } => Op::Momentum { n }.flops(),
            HalfOp::GuardedUpdate { n, momentum: false } => Op::Sgd { n }.flops(),
            HalfOp::ScaleUpdate => 2.0,
        }
    }

    pub fn bytes(&self) -> f64 {
        let state = F32 * scaler::LEN as f64;
        match *self {
            HalfOp::ToHalf { n } => (F32 + F16) * n as f64,
            HalfOp::LossScale { n, to_half } => {
                (2.0 * F32 + if to_half { F16 } else { 0.0 }) * n as f64 + state
            }
            HalfOp::Unscale { n } => 2.0 * F32 * n as f64 + state,
            HalfOp::GuardedUpdate { n, momentum: true } => Op::Momentum { n }.bytes() + state,
            HalfOp::GuardedUpdate { n, momentum: false } => Op::Sgd { n }.bytes() + state,
            HalfOp::ScaleUpdate => 2.0 * state,
        }
    }

    /// The group: the f32 step's name where the op is the same step (`momentum update`).
    pub fn group(&self, _scope: Scope) -> String {
        match *self {
            // One call copies every layer's weights and the minibatch: no layer of its own.
            HalfOp::ToHalf { .. } => "to f16".into(),
            HalfOp::LossScale { .. } => "loss scale".into(),
            HalfOp::Unscale { .. } => "unscale".into(),
            HalfOp::GuardedUpdate { momentum: true, .. } => "momentum update".into(),
            HalfOp::GuardedUpdate { momentum: false, .. } => "sgd update".into(),
            HalfOp::ScaleUpdate => "loss scale update".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_ops_count_f16_elements_at_two_bytes_and_name_the_f32_update() {
        let state = 4.0 * scaler::LEN as f64;
        assert_eq!(HalfOp::ToHalf { n: 10 }.bytes(), 60.0);
        assert_eq!(HalfOp::LossScale { n: 10, to_half: true }.bytes(), 100.0 + state);
        assert_eq!(HalfOp::Unscale { n: 10 }.flops(), 20.0);
        let update = HalfOp::GuardedUpdate { n: 10, momentum: true };
        assert_eq!(update.bytes(), Op::Momentum { n: 10 }.bytes() + state);
        assert_eq!(Op::Half(update).group(Scope::Backward(1)), "momentum update");
        assert_eq!(Op::Half(HalfOp::ToHalf { n: 3 }).group(Scope::Forward(0)), "to f16");
    }
}

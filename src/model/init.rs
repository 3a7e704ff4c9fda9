//! Seeded weight initialisation: He (ReLU) or Glorot (tanh, identity), biases zero.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::backend::Activation;

/// Standard deviation of the normal init of a `[fan_out, fan_in]` weight before `φ`.
pub fn init_std(act: Activation, fan_in: usize, fan_out: usize) -> f64 {
    match act {
        Activation::Relu => (2.0 / fan_in.max(1) as f64).sqrt(),
        Activation::Tanh | Activation::Identity => (2.0 / (fan_in + fan_out).max(1) as f64).sqrt(),
    }
}

/// `n` samples of N(0, std²) from `rng` (Box-Muller; deterministic across platforms).
pub fn normal_vec(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((std * r * t.cos()) as f32);
        if out.len() < n {
            out.push((std * r * t.sin()) as f32);
        }
    }
    out
}

/// A seeded generator for initialisation streams.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

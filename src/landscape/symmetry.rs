//! Weight-space symmetry (8.2.2, model identifiability): twins of a network that compute the
//! same function, so have the same loss, at a different point of parameter space.
//!
//! For hidden units reordered by a permutation π and rescaled by `s_i ≠ 0`:
//! - MLP hidden layer l: `W'_l[i, :] = s_i W_l[π_i, :]`, `b'_l[i] = s_i b_l[π_i]`,
//!   `W'_{l+1}[:, i] = W_{l+1}[:, π_i] / s_i`;
//! - RNN: `W'[i, j] = s_i W[π_i, π_j] / s_j`, `U'[i, :] = s_i U[π_i, :]`, `b'[i] = s_i b[π_i]`,
//!   `V'[:, i] = V[:, π_i] / s_i`.
//!
//! This is exact when `φ(s z) = s φ(z)`: any `s > 0` for ReLU (positive homogeneity), `s = ±1`
//! for tanh (odd), any `s ≠ 0` for the identity. There are `n!` permutations per layer, so a
//! network has at least `(n!)^m` equivalent minima; the straight path between two of them
//! generally crosses a barrier, although both ends have exactly the same loss.

use crate::backend::Activation;
use crate::data::rng::Stream;
use crate::model::RnnSpec;

/// Philox stream of the twin's permutations and scales (key = landscape seed, sub = layer).
const STREAM_TWIN: u32 = 49;

/// How a twin is made from the original.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TwinSpec {
    pub seed: u64,
    /// Reorder the hidden units by a random permutation.
    pub permute: bool,
    /// Per-unit scales drawn log-uniformly in `[1/rescale, rescale]` (1 = none). ReLU, identity.
    pub rescale: f64,
    /// Flip the sign of a random half of the units (tanh, identity).
    pub sign_flips: bool,
}

/// Why a twin cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error("{act} units are not positively homogeneous: rescaling changes the function (set landscape.rescale = 1; a {act} twin may flip signs, landscape.sign_flips)")]
    Rescale { act: &'static str },
    #[error("ReLU is not odd: flipping signs changes the function (set landscape.sign_flips = false; a ReLU twin may rescale, landscape.rescale)")]
    SignFlip,
    #[error("parameters do not match the model: {0}")]
    Shape(String),
}

/// Whether hidden units of activation `act` have the symmetries `spec` asks for (checked
/// before a run trains, and again by every twin).
pub fn check_twin(spec: &TwinSpec, act: Activation) -> Result<(), TwinError> {
    if spec.rescale > 1.0 && act == Activation::Tanh {
        return Err(TwinError::Rescale { act: "tanh" });
    }
    if spec.sign_flips && act == Activation::Relu {
        return Err(TwinError::SignFlip);
    }
    Ok(())
}

/// Permutation and scales of `n` units for layer `layer`.
fn unit_map(
    spec: &TwinSpec,
    act: Activation,
    layer: u64,
    n: usize,
) -> Result<(Vec<usize>, Vec<f32>), TwinError> {
    check_twin(spec, act)?;
    let mut s = Stream::new(spec.seed, STREAM_TWIN, layer);
    let perm: Vec<usize> = if spec.permute {
        s.permutation(n).into_iter().map(|i| i as usize).collect()
    } else {
        (0..n).collect()
    };
    let mut scales = vec![1.0f32; n];
    if spec.rescale > 1.0 {
        let ln_r = spec.rescale.ln();
        for v in scales.iter_mut() {
            let u = s.next_u32() as f64 / u32::MAX as f64; // [0, 1]
            *v = ((2.0 * u - 1.0) * ln_r).exp() as f32;
        }
    }
    if spec.sign_flips {
        for v in scales.iter_mut() {
            if s.next_u32() & 1 == 1 {
                *v = -*v;
            }
        }
    }
    Ok((perm, scales))
}

fn check(params: &[Vec<f32>], shapes: &[Vec<usize>]) -> Result<(), TwinError> {
    if params.len() != shapes.len() {
        return Err(TwinError::Shape(format!(
            "{} tensors, the model has {}",
            params.len(),
            shapes.len()
        )));
    }
    for (i, (p, s)) in params.iter().zip(shapes).enumerate() {
        let n: usize = s.iter().product();
        if p.len() != n {
            return Err(TwinError::Shape(format!(
                "tensor {i} has {} values, shape {s:?} needs {n}",
                p.len()
            )));
        }
    }
    Ok(())
}

/// The twin of an MLP with layer sizes `sizes` (ParamSet order `W_0, b_0, W_1, b_1, ...`,
/// `W_l [out, in]`): every hidden layer's units reordered and rescaled.
pub fn mlp_twin(
    sizes: &[usize],
    act: Activation,
    params: &[Vec<f32>],
    spec: &TwinSpec,
) -> Result<Vec<Vec<f32>>, TwinError> {
    let layers = sizes.len().saturating_sub(1);
    let shapes: Vec<Vec<usize>> =
        (0..layers).flat_map(|l| [vec![sizes[l + 1], sizes[l]], vec![sizes[l + 1]]]).collect();
    check(params, &shapes)?;
    let mut out = params.to_vec();
    for l in 0..layers.saturating_sub(1) {
        let (fan_in, n, next_out) = (sizes[l], sizes[l + 1], sizes[l + 2]);
        let (perm, s) = unit_map(spec, act, l as u64, n)?;
        let (w, b, w_next) = (&out[2 * l], &out[2 * l + 1], &out[2 * l + 2]);
        let mut w2 = vec![0.0; n * fan_in];
        let mut b2 = vec![0.0; n];
        let mut wn2 = vec![0.0; next_out * n];
        for i in 0..n {
            let p = perm[i];
            for c in 0..fan_in {
                w2[i * fan_in + c] = s[i] * w[p * fan_in + c];
            }
            b2[i] = s[i] * b[p];
            for r in 0..next_out {
                wn2[r * n + i] = w_next[r * n + p] / s[i];
            }
        }
        out[2 * l] = w2;
        out[2 * l + 1] = b2;
        out[2 * l + 2] = wn2;
    }
    Ok(out)
}

/// The twin of an RNN (ParamSet order `W, U, b, V, c`): hidden units reordered and rescaled.
pub fn rnn_twin(
    spec: &RnnSpec,
    params: &[Vec<f32>],
    twin: &TwinSpec,
) -> Result<Vec<Vec<f32>>, TwinError> {
    let (d, h, k) = (spec.inputs, spec.hidden, spec.outputs);
    check(params, &[vec![h, h], vec![h, d], vec![h], vec![k, h], vec![k]])?;
    let (perm, s) = unit_map(twin, spec.activation, 0, h)?;
    let (w, u, b, v) = (&params[0], &params[1], &params[2], &params[3]);
    let mut w2 = vec![0.0; h * h];
    let mut u2 = vec![0.0; h * d];
    let mut b2 = vec![0.0; h];
    let mut v2 = vec![0.0; k * h];
    for i in 0..h {
        let p = perm[i];
        for j in 0..h {
            w2[i * h + j] = s[i] * w[p * h + perm[j]] / s[j];
        }
        for c in 0..d {
            u2[i * d + c] = s[i] * u[p * d + c];
        }
        b2[i] = s[i] * b[p];
        for r in 0..k {
            v2[r * h + i] = v[r * h + p] / s[i];
        }
    }
    Ok(vec![w2, u2, b2, v2, params[4].clone()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LossKind;

    /// Host forward of a ReLU MLP on one input.
    fn mlp_out(sizes: &[usize], p: &[Vec<f32>], x: &[f32]) -> Vec<f32> {
        let mut a = x.to_vec();
        let layers = sizes.len() - 1;
        for l in 0..layers {
            let (fi, fo) = (sizes[l], sizes[l + 1]);
            a = (0..fo)
                .map(|o| {
                    let z = p[2 * l + 1][o] + (0..fi).map(|i| p[2 * l][o * fi + i] * a[i]).sum::<f32>();
                    if l + 1 < layers {
                        z.max(0.0)
                    } else {
                        z
                    }
                })
                .collect();
        }
        a
    }

    #[test]
    fn relu_twin_computes_the_same_function_at_another_point() {
        let sizes = [3, 5, 4, 2];
        let mut r = crate::model::init::rng(1);
        let p: Vec<Vec<f32>> = (0..3)
            .flat_map(|l| {
                [
                    crate::model::init::normal_vec(&mut r, sizes[l] * sizes[l + 1], 1.0),
                    crate::model::init::normal_vec(&mut r, sizes[l + 1], 1.0),
                ]
            })
            .collect();
        let spec = TwinSpec { seed: 4, permute: true, rescale: 3.0, sign_flips: false };
        let t = mlp_twin(&sizes, Activation::Relu, &p, &spec).unwrap();
        assert_ne!(t, p);
        for x in [[0.3, -1.0, 2.0], [1.0, 1.0, -0.5]] {
            let (a, b) = (mlp_out(&sizes, &p, &x), mlp_out(&sizes, &t, &x));
            for (u, v) in a.iter().zip(&b) {
                assert!((u - v).abs() < 1e-5 * u.abs().max(1.0), "{a:?} vs {b:?}");
            }
        }
        assert!(mlp_twin(&sizes, Activation::Relu, &p, &TwinSpec { sign_flips: true, ..spec }).is_err());
        assert!(mlp_twin(&sizes, Activation::Tanh, &p, &spec).is_err());
    }

    #[test]
    fn rnn_twin_is_a_similarity_transform_of_w() {
        let spec = RnnSpec {
            inputs: 2,
            hidden: 4,
            outputs: 1,
            steps: 3,
            activation: Activation::Tanh,
            loss: LossKind::Mse,
        };
        let p: Vec<Vec<f32>> = vec![
            (0..16).map(|i| i as f32).collect(),
            (0..8).map(|i| i as f32).collect(),
            vec![1.0, 2.0, 3.0, 4.0],
            vec![1.0, -1.0, 2.0, -2.0],
            vec![0.5],
        ];
        let t =
            rnn_twin(&spec, &p, &TwinSpec { seed: 2, permute: true, rescale: 1.0, sign_flips: true })
                .unwrap();
        // The trace of W is invariant under W' = S P W Pᵀ S⁻¹.
        let tr = |w: &[f32]| (0..4).map(|i| w[i * 4 + i]).sum::<f32>();
        assert_eq!(tr(&p[0]), tr(&t[0]));
        let mut sorted_b: Vec<f32> = t[2].iter().map(|v| v.abs()).collect();
        sorted_b.sort_by(f32::total_cmp);
        assert_eq!(sorted_b, vec![1.0, 2.0, 3.0, 4.0]);
    }
}

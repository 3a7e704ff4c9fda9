//! Checkpoints written by other tools (`safetensors.torch.save_file`, `safetensors.numpy`):
//! no checksum, possibly F16 / BF16 / F64 weights, possibly PyTorch `nn.Sequential` names.
//!
//! - dtypes: F16 and BF16 convert to f32 exactly; F64 rounds to the nearest f32 (relative error
//!   ≤ 2⁻²⁴, below what f32 training resolves) and a finite value beyond f32's range is an
//!   error; any other dtype is an error naming it.
//! - names: `{k}.weight [out, in]` / `{k}.bias [out]` (an `nn.Sequential` of Linear layers and
//!   activations) become `layers.{j}.weight` / `layers.{j}.bias`, Linear layers numbered in
//!   order of their index `k` (`0, 2, 4` → `0, 1, 2`).
//! - anything else that is not `layers.{i}.weight|bias` is refused by name (a BatchNorm's
//!   `running_mean`, an embedding, ...): loading a model from a file that holds other
//!   parameters would silently drop them. Tensors named `optimizer.*` (batchscope's own
//!   optimizer-state convention) are left in place: `--init` ignores optimizer state by design.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::Dtype;

use super::{CheckpointError, NamedTensor};

/// Little-endian `bytes` of dtype `dtype` as f32 values.
pub(super) fn to_f32(
    path: &Path,
    name: &str,
    dtype: Dtype,
    bytes: &[u8],
) -> Result<Vec<f32>, CheckpointError> {
    match dtype {
        Dtype::F32 => {
            Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        Dtype::F16 => {
            Ok(bytes.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect())
        }
        Dtype::BF16 => Ok(bytes
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect()),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let v = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                let f = v as f32;
                if v.is_finite() && !f.is_finite() {
                    Err(CheckpointError::Conversion {
                        path: path.to_path_buf(),
                        name: name.to_string(),
                        dtype: "F64".into(),
                        problem: format!("value {v:e} is beyond f32's range"),
                    })
                } else {
                    Ok(f)
                }
            })
            .collect(),
        other => Err(CheckpointError::Dtype {
            path: path.to_path_buf(),
            name: name.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}

/// IEEE binary16 → f32 (exact: every f16 is an f32).
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match (exp, man) {
        (0, 0) => f32::from_bits(sign),
        // Subnormal: man · 2⁻²⁴, exact in f32.
        (0, m) => {
            let v = m as f32 / 16_777_216.0;
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        (0x1f, 0) => f32::from_bits(sign | 0x7f80_0000),
        (0x1f, m) => f32::from_bits(sign | 0x7fc0_0000 | (m << 13)),
        (e, m) => f32::from_bits(sign | ((e + 112) << 23) | (m << 13)),
    }
}

/// `(k, suffix)` of a `{k}.weight` / `{k}.bias` name.
fn sequential(name: &str) -> Option<(u64, &str)> {
    let (k, suffix) = name.split_once('.')?;
    let k = if k.bytes().all(|c| c.is_ascii_digit()) { k.parse().ok()? } else { return None };
    matches!(suffix, "weight" | "bias").then_some((k, suffix))
}

/// `i` of `layers.{i}.weight|bias`.
pub(super) fn layer_index(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("layers.")?;
    let (i, suffix) = rest.split_once('.')?;
    (matches!(suffix, "weight" | "bias") && i.bytes().all(|c| c.is_ascii_digit()))
        .then(|| i.parse().ok())?
}

/// Renames `nn.Sequential` Linear parameters to batchscope's names (when the file uses no
/// `layers.*` names) and refuses tensors that are no MLP parameters. Returns the renames made
/// (`original → new`), for one notice.
pub(super) fn normalise(
    path: &Path,
    tensors: &mut [NamedTensor],
) -> Result<Vec<(String, String)>, CheckpointError> {
    let mut renames = Vec::new();
    if !tensors.iter().any(|t| layer_index(&t.name).is_some()) {
        // Linear layers: rank-2 `{k}.weight`, in order of k.
        let linear: Vec<u64> = {
            let mut ks: Vec<u64> = tensors
                .iter()
                .filter(|t| t.shape.len() == 2)
                .filter_map(|t| sequential(&t.name).filter(|(_, s)| *s == "weight").map(|(k, _)| k))
                .collect();
            ks.sort_unstable();
            ks
        };
        let new_index: BTreeMap<u64, usize> = linear.iter().enumerate().map(|(j, &k)| (k, j)).collect();
        for t in tensors.iter_mut() {
            let Some((k, suffix)) = sequential(&t.name) else { continue };
            let Some(j) = new_index.get(&k) else { continue };
            // A bias must be a vector; a weight of rank 2 was selected above.
            if suffix == "bias" && t.shape.len() != 1 {
                continue;
            }
            let new = format!("layers.{j}.{suffix}");
            renames.push((std::mem::replace(&mut t.name, new.clone()), new));
        }
    }
    let unexpected: Vec<String> = tensors
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| layer_index(n).is_none() && !n.starts_with("optimizer."))
        .map(|n| {
            renames
                .iter()
                .find(|(_, new)| new == n)
                .map_or_else(|| n.to_string(), |(old, _)| old.clone())
        })
        .collect();
    if !unexpected.is_empty() {
        let model = Vec::new(); // an MLP's: the layout foreign names are mapped onto
        return Err(CheckpointError::Unexpected { path: path.to_path_buf(), names: unexpected, model });
    }
    Ok(renames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn sequential_names_map_in_index_order_and_extras_are_named() {
        let t = |n: &str, s: Vec<usize>| NamedTensor::new(n, s.clone(), vec![0.0; s.iter().product()]);
        let p = Path::new("m.safetensors");
        let mut v = vec![
            t("0.weight", vec![4, 3]),
            t("0.bias", vec![4]),
            t("10.weight", vec![2, 4]),
            t("10.bias", vec![2]),
        ];
        let r = normalise(p, &mut v).unwrap();
        let names: Vec<&str> = v.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]);
        assert_eq!(r.len(), 4);
        let mut v =
            vec![t("0.weight", vec![4, 3]), t("1.running_mean", vec![4]), t("1.weight", vec![4])];
        let e = normalise(p, &mut v).unwrap_err().to_string();
        assert!(
            e.contains("1.running_mean") && e.contains("1.weight") && !e.contains("0.weight"),
            "{e}"
        );
        let mut v =
            vec![t("layers.0.weight", vec![4, 3]), t("optimizer.velocity.layers.0.weight", vec![4, 3])];
        assert!(normalise(p, &mut v).unwrap().is_empty());
    }
}

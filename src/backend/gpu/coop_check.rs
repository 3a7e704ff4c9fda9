//! A first-use check of the cooperative-matrix kernels. The tensor-core path rests on an
//! experimental wgpu feature and on drivers no CI machine has, so before a device's first f16
//! product may run on it, each cooperative kernel (the 32x32 and staged ones the shape rule
//! [`super::matmul_f16::choose`] runs, the 64x64 one, and each of them with 8- and 16-byte tile
//! loads, which the autotuner may pick or `BATCHSCOPE_COOP_LOADS=vec4|vec8` asks for) computes
//! small products with clamped last blocks in every transpose pair, on the autotuner's exact
//! operands ([`super::autotune::verify`]), and whole rows of C are compared with the exact f64
//! reference; then the fused stores the f16 step runs (bias + ReLU with the f16 copy, ReLU'
//! with the f16 copy, the loss scaler's unscaling) are compared bit for bit with the packed
//! kernel's: on exact products both run the same epilogue code on the same values. A kernel
//! that disagrees or cannot be built is never run by the rule or offered to the autotuner on
//! this device (the rule falls back to the 32x32 kernel, else the packed or skinny one), and one
//! error line says which kernel, where and why. Once per device and kernel, a few milliseconds,
//! when the kernel is first considered (the 64x64 one only by the autotuner, `gemm` or
//! `BATCHSCOPE_COOP64=force`). A kernel named
//! explicitly (`BATCHSCOPE_F16_KERNEL`) and the hardware-gated parity tests do not go through
//! it.

use super::autotune::verify::{read_rows, upload_pattern, Mismatch, Reference, SALTS};
use super::device::{GpuDevice, RawBuf};
use super::elementwise::fill;
use super::matmul::Epilogue as Store;
use super::matmul_f16::{matmul_half, matmul_half_store, HalfKernel, HalfStore};
use crate::backend::half::{half_words, scaler};
use crate::backend::{gemm_lens, Activation, Gemm, Result};

/// The checked product: 80 rows (a 64-row block and a clamped one), 144 columns (two 64-column
/// blocks and a clamped 16), k = 48 (three 16-deep tiles: not a multiple of 32).
pub const SHAPE: (usize, usize, usize) = (80, 144, 48);

/// The cooperative kernels, in the order checked.
pub const KERNELS: [HalfKernel; 9] = [
    HalfKernel::Coop,
    HalfKernel::Coop64,
    HalfKernel::CoopStaged,
    HalfKernel::CoopV4,
    HalfKernel::Coop64V4,
    HalfKernel::CoopStagedV4,
    HalfKernel::CoopV8,
    HalfKernel::Coop64V8,
    HalfKernel::CoopStagedV8,
];

/// What the first-use check found for one kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Its products and fused stores were exact.
    Exact,
    /// It computed a wrong value, stored unlike the packed kernel, or failed: why.
    Failed(String),
    /// It cannot run here (no cooperative matrices, its workgroup does not fit): why.
    CannotRun(String),
}

/// The verdict on `kernel` (one of [`KERNELS`]) for `dev`, found when first asked: the 64x64
/// kernel, which the rule runs only when forced, when the autotuner or `gemm` asks for it.
pub fn verdict(dev: &GpuDevice, kernel: HalfKernel) -> Verdict {
    let Some(slot) = KERNELS.iter().position(|&k| k == kernel) else {
        return Verdict::CannotRun("not a cooperative kernel".into());
    };
    dev.ctx.coop_verdicts[slot].get_or_init(|| find_verdict(dev, kernel)).clone()
}

fn find_verdict(dev: &GpuDevice, kernel: HalfKernel) -> Verdict {
    if let Some(why) = super::matmul_coop::unavailable_reason(&dev.ctx) {
        return Verdict::CannotRun(why);
    }
    let Some(block) = kernel.coop_block() else {
        return Verdict::CannotRun("not a cooperative kernel".into());
    };
    let width = block.width();
    let missing: Vec<&str> =
        (width.features() - dev.ctx.features).iter_names().map(|(n, _)| n).collect();
    if !missing.is_empty() {
        let (name, missing) = (width.name(), missing.join(" | "));
        return Verdict::CannotRun(format!("its {name} loads need the device feature {missing}"));
    }
    if width.retyped() && dev.ctx.summary.backend != "Vulkan" {
        return Verdict::CannotRun(format!("its {} loads are SPIR-V: Vulkan only", width.name()));
    }
    if !block.fits_on(&dev.ctx) {
        return Verdict::CannotRun("its workgroup exceeds the adapter's limits".into());
    }
    match check_alone(dev, &[kernel]) {
        None => Verdict::Exact,
        Some(why) => {
            log::error!(
                "{why}; it is not used on this device (please report it with `batchscope devices`)"
            );
            Verdict::Failed(why)
        }
    }
}

/// The verdicts on all of [`KERNELS`] (runs the checks not yet run).
pub fn verdicts(dev: &GpuDevice) -> Vec<Verdict> {
    KERNELS.iter().map(|&k| verdict(dev, k)).collect()
}

/// Whether `kernel` (one of [`KERNELS`]) computed exact products on `dev`.
pub fn trusted_kernel(dev: &GpuDevice, kernel: HalfKernel) -> bool {
    verdict(dev, kernel) == Verdict::Exact
}

/// Whether the rule runs cooperative kernels on `dev`: the 32x32 one, which the rule takes or
/// falls back to for every eligible product, was exact.
pub fn trusted(dev: &GpuDevice) -> bool {
    trusted_kernel(dev, HalfKernel::Coop)
}

/// The first failure among [`KERNELS`] on `dev` (kernels that cannot run are no failure);
/// checks all of them.
pub fn distrust_reason(dev: &GpuDevice) -> Option<String> {
    verdicts(dev).into_iter().find_map(|v| match v {
        Verdict::Failed(why) => Some(why),
        _ => None,
    })
}

/// [`check`] with recorded work submitted first and per-dispatch timing paused.
pub fn check_alone(dev: &GpuDevice, kernels: &[HalfKernel]) -> Option<String> {
    if let Err(e) = dev.flush() {
        return Some(format!("the cooperative-matrix check could not start: {e}"));
    }
    let timing_was = dev.dispatch_timing_on.replace(false);
    let why = check(dev, kernels);
    dev.dispatch_timing_on.set(timing_was);
    dev.clear_bind_groups();
    why
}

/// The first failure of `kernels` on [`SHAPE`] in the four transpose pairs, or `None`.
fn check(dev: &GpuDevice, kernels: &[HalfKernel]) -> Option<String> {
    let (m, n, k) = SHAPE;
    for &kernel in kernels {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let g = Gemm::nn(m, n, k).trans(ta, tb);
            let what = format!("{kernel:?} on {m}x{n}x{k} (A{} B{})", tr(ta), tr(tb));
            match check_one(dev, kernel, &g) {
                Ok(None) => {}
                Ok(Some(bad)) => return Some(format!("the f16 kernel {what} computed {bad}")),
                Err(e) => return Some(format!("the f16 kernel {what} failed: {e}")),
            }
            match check_stores(dev, kernel, &g) {
                Ok(None) => {}
                Ok(Some(store)) => {
                    return Some(format!(
                        "the f16 kernel {what} stored {store} unlike the packed kernel"
                    ))
                }
                Err(e) => return Some(format!("the f16 kernel {what} failed with a fused store: {e}")),
            }
        }
    }
    None
}

fn tr(t: bool) -> &'static str {
    if t {
        "ᵀ"
    } else {
        ""
    }
}

/// `kernel`'s product `g` on the exact operands: `None` when the checked rows agree.
pub fn check_one(dev: &GpuDevice, kernel: HalfKernel, g: &Gemm) -> Result<Option<Mismatch>> {
    let (la, lb, lc) = gemm_lens(g);
    let a = upload_pattern(dev, "coop check a", la, SALTS.0, true)?;
    let b = upload_pattern(dev, "coop check b", lb, SALTS.1, true)?;
    let c = dev.alloc("coop check c", lc)?;
    fill(dev, lc, f32::NAN, &c)?;
    matmul_half(dev, kernel, g, &a, la, &b, lb, &c)?;
    let reference = Reference::of_pattern(g, SALTS);
    let got = read_rows(dev, &c, &reference.rows, g.n)?;
    Ok(reference.check(&got))
}

/// The fused stores of the f16 step on `g`'s exact product, by `kernel` and by the packed
/// kernel: the name of the first whose outputs (C, and y, the f16 copy or the scaler state)
/// differ in any bit, or `None`.
pub fn check_stores(dev: &GpuDevice, kernel: HalfKernel, g: &Gemm) -> Result<Option<&'static str>> {
    let (la, lb, lc) = gemm_lens(g);
    let a = upload_pattern(dev, "coop check a", la, SALTS.0, true)?;
    let b = upload_pattern(dev, "coop check b", lb, SALTS.1, true)?;
    let bias = upload_pattern(dev, "coop check bias", g.n, 3, false)?;
    let z = upload_pattern(dev, "coop check z", lc, 4, false)?;
    for case in ["bias + ReLU with its f16 copy", "ReLU' with its f16 copy", "the unscaled product"] {
        let mut outputs = Vec::new();
        for k in [HalfKernel::Packed, kernel] {
            let c = dev.alloc("coop check c", lc)?;
            let y = dev.alloc("coop check y", lc)?;
            let h = dev.alloc("coop check half", half_words(lc))?;
            let state = dev.alloc("coop check scaler", scaler::LEN)?;
            for buf in [&c, &y, &h] {
                fill(dev, buf.len(), f32::NAN, buf)?;
            }
            // Scale 4 (a power of two: unscaling is exact), no overflow yet.
            let mut s = [0.0f32; scaler::LEN];
            s[scaler::SCALE] = 4.0;
            dev.write_bytes(&state, bytemuck::cast_slice(&s))?;
            let store = match case {
                "bias + ReLU with its f16 copy" => HalfStore {
                    epi: Store::BiasAct(Activation::Relu, &bias, &y),
                    half: Some(&h),
                    unscale: None,
                },
                "ReLU' with its f16 copy" => HalfStore {
                    epi: Store::ActGrad(Activation::Relu, &z),
                    half: Some(&h),
                    unscale: None,
                },
                _ => HalfStore { epi: Store::None, half: None, unscale: Some(&state) },
            };
            matmul_half_store(dev, k, g, [(&a, la), (&b, lb)], &c, store)?;
            outputs.push(read_all(dev, [&c, &y, &h, &state])?);
        }
        if outputs[0] != outputs[1] {
            return Ok(Some(case));
        }
    }
    Ok(None)
}

/// The bytes of `bufs`, in order.
fn read_all(dev: &GpuDevice, bufs: [&RawBuf; 4]) -> Result<Vec<Vec<u8>>> {
    bufs.iter().map(|b| dev.read_bytes(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check's machinery on any adapter, through the packed kernel (which every adapter
    /// with f16 runs): exact in every transpose pair, and the product of another shape caught.
    #[test]
    fn the_check_passes_an_exact_kernel_and_catches_a_wrong_one() {
        let be = crate::backend::gpu::matmul::tests::backend();
        let dev = &be.dev;
        assert_eq!(check_alone(dev, &[HalfKernel::Packed]), None);
        // C starts as NaN: a product that never ran fails; so does one with another k.
        let g = Gemm::nn(SHAPE.0, SHAPE.1, SHAPE.2);
        let (la, lb, lc) = gemm_lens(&g);
        let reference = Reference::of_pattern(&g, SALTS);
        let a = upload_pattern(dev, "a", la, SALTS.0, true).unwrap();
        let b = upload_pattern(dev, "b", lb, SALTS.1, true).unwrap();
        let c = dev.alloc("c", lc).unwrap();
        fill(dev, lc, f32::NAN, &c).unwrap();
        let got = read_rows(dev, &c, &reference.rows, g.n).unwrap();
        assert!(reference.check(&got).is_some_and(|m| m.got.is_nan()));
        let short = Gemm::nn(SHAPE.0, SHAPE.1, SHAPE.2 - 16);
        matmul_half(dev, HalfKernel::Packed, &short, &a, la, &b, lb, &c).unwrap();
        let got = read_rows(dev, &c, &reference.rows, g.n).unwrap();
        assert!(reference.check(&got).is_some(), "a product missing its last 16 of k");
        // Nothing to distrust where the cooperative kernels cannot run; where they can, every
        // kernel must have computed the exact products (or not fit the adapter).
        assert_eq!(distrust_reason(dev), None);
        let v = verdicts(dev);
        assert_eq!(v.len(), KERNELS.len());
        match super::super::matmul_coop::unavailable_reason(&dev.ctx) {
            Some(why) => {
                assert!(v.iter().all(|x| *x == Verdict::CannotRun(why.clone())), "{v:?}");
                assert!(!trusted(dev) && !KERNELS.iter().any(|&k| trusted_kernel(dev, k)));
            }
            None => assert!(trusted(dev), "{v:?}"),
        }
    }
}

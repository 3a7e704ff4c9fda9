//! The f16 family (CPU twin of `shaders/matmul_f16.wgsl`): rounding f32 → binary16 with the
//! `half` crate, packing two halves per word, and products of half operands in f32.
//!
//! [`f16_bits`] is `half::f16::from_f32` (round to nearest even, overflow to ±inf) with every
//! NaN mapped to the quiet NaN `0x7e00` with its sign, which is what the shader's integer
//! conversion gives: the GPU and this twin store the same bits. [`matmul_half`] widens the
//! operands exactly and multiplies them with the f32 [`super::matmul::matmul`], so the only
//! difference from the GPU is the f32 summation order.

use std::sync::Mutex;

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use rayon::prelude::*;

use super::amp;
use super::par::PAR_MIN;
use super::CpuBackend;
use crate::backend::half::{half_words, HalfBuf, HalfOps, ScaleGrowth};
use crate::backend::{check_len, gemm_lens, Backend, Gemm, MomentumStep, Result};

/// The binary16 bits the GPU stores for `x` (see the module doc).
pub fn f16_bits(x: f32) -> u16 {
    let h = f16::from_f32(x);
    if h.is_nan() {
        (h.to_bits() & 0x8000) | 0x7e00
    } else {
        h.to_bits()
    }
}

/// `x` rounded to f16 and widened back: the value the GPU reads after storing `x` as half.
pub fn round_f16(x: f32) -> f32 {
    f16::from_bits(f16_bits(x)).to_f32()
}

/// Halves converted per task of [`pack`] and [`unpack`] (a rayon task each past
/// [`PAR_MIN`] elements).
const CHUNK: usize = 1 << 14;

/// Pack `x: [n]` into `ceil(n / 2)` words (as f32 bit patterns), the upper half of a last odd
/// word 0. The words hold the halves in order on a little-endian machine, so they are converted
/// as one `[f16]` slice (the `half` crate's vectorised conversion, F16C where the CPU has it:
/// the same round-to-nearest-even bits as [`f16_bits`]), then every NaN is given the quiet
/// payload [`f16_bits`] gives it.
pub fn pack(x: &[f32], words: &mut [f32]) -> Result<()> {
    check_len("to_half", "out", words.len(), half_words(x.len()))?;
    let words = &mut words[..half_words(x.len())];
    if cfg!(target_endian = "big") {
        for (w, pair) in words.iter_mut().zip(x.chunks(2)) {
            let lo = f16_bits(pair[0]) as u32;
            let hi = pair.get(1).map_or(0, |&v| f16_bits(v) as u32);
            *w = f32::from_bits(lo | (hi << 16));
        }
        return Ok(());
    }
    let halves: &mut [u16] = bytemuck::cast_slice_mut(words);
    let (halves, pad) = halves.split_at_mut(x.len());
    pad.fill(0);
    let convert = |(h, x): (&mut [u16], &[f32])| {
        h.reinterpret_cast_mut::<f16>().convert_from_f32_slice(x);
        for (b, &v) in h.iter_mut().zip(x) {
            if v.is_nan() {
                *b = (*b & 0x8000) | 0x7e00;
            }
        }
    };
    if x.len() > PAR_MIN {
        halves.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(convert);
    } else {
        convert((halves, x));
    }
    Ok(())
}

/// The first `len` halves of `words`, widened (exactly: every f16 is an f32).
pub fn unpack(words: &[f32], len: usize) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; len];
    unpack_into(words, &mut out)?;
    Ok(out)
}

/// The first `out.len()` halves of `words`, widened into `out`.
fn unpack_into(words: &[f32], out: &mut [f32]) -> Result<()> {
    let len = out.len();
    check_len("read_half", "words", words.len(), half_words(len))?;
    if cfg!(target_endian = "big") {
        for (i, o) in out.iter_mut().enumerate() {
            let bits = words[i / 2].to_bits() >> (16 * (i % 2));
            *o = f16::from_bits(bits as u16).to_f32();
        }
        return Ok(());
    }
    let halves: &[u16] = bytemuck::cast_slice(&words[..half_words(len)]);
    let convert = |(o, h): (&mut [f32], &[u16])| h.reinterpret_cast::<f16>().convert_to_f32_slice(o);
    if len > PAR_MIN {
        out.par_chunks_mut(CHUNK).zip(halves[..len].par_chunks(CHUNK)).for_each(convert);
    } else {
        convert((out, &halves[..len]));
    }
    Ok(())
}

/// Buffers the products widen their operands into, kept from one product to the next: a fresh
/// multi-megabyte `Vec` per operand and call cost its page faults and zeroing every time (the
/// first layer's forward product at B = 1 took 0.64 ms against 0.17 ms in f32). A call takes
/// two (or allocates them) and gives them back, so there are as many as products ever ran at
/// once (one per replica), each as long as the longest operand it held (counted by the host
/// memory check: `schedule::run_memory`).
static WIDENED: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of at least `len` elements (its first `len` to be overwritten by the caller).
fn take_widened(len: usize) -> Vec<f32> {
    let kept = WIDENED.lock().ok().and_then(|mut pool| pool.pop());
    let mut v = kept.unwrap_or_default();
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v
}

fn give_back_widened(v: Vec<f32>) {
    if let Ok(mut pool) = WIDENED.lock() {
        pool.push(v);
    }
}

/// `C[m,n] = alpha * op(A) op(B) + beta * C` with `a`, `b` packed halves (`[m,k]` / `[k,m]`
/// and `[k,n]` / `[n,k]`) and `c: [m,n]` f32.
pub fn matmul_half(g: &Gemm, a: &HalfBuf<Vec<f32>>, b: &HalfBuf<Vec<f32>>, c: &mut [f32]) -> Result<()> {
    let (la, lb, _) = gemm_lens(g);
    check_len("matmul_half", "a", a.len, la)?;
    check_len("matmul_half", "b", b.len, lb)?;
    let (mut a32, mut b32) = (take_widened(la), take_widened(lb));
    let product = unpack_into(&a.words, &mut a32[..la])
        .and_then(|()| unpack_into(&b.words, &mut b32[..lb]))
        .and_then(|()| super::matmul::matmul(g, &a32[..la], &b32[..lb], c));
    give_back_widened(a32);
    give_back_widened(b32);
    product
}

impl HalfOps for CpuBackend {
    type Buf = Vec<f32>;

    fn zeros_half(&self, len: usize) -> Result<HalfBuf<Vec<f32>>> {
        Ok(HalfBuf { words: vec![0.0; half_words(len)], len })
    }

    fn to_half(&self, n: usize, x: &Vec<f32>, out: &mut HalfBuf<Vec<f32>>) -> Result<()> {
        check_len("to_half", "x", x.len(), n)?;
        check_len("to_half", "out", out.len, n)?;
        pack(&x[..n], &mut out.words)
    }

    fn read_half(&self, src: &HalfBuf<Vec<f32>>) -> Result<Vec<f32>> {
        unpack(&src.words, src.len)
    }

    fn matmul_half(
        &self,
        g: &Gemm,
        a: &HalfBuf<Vec<f32>>,
        b: &HalfBuf<Vec<f32>>,
        c: &mut Vec<f32>,
    ) -> Result<()> {
        matmul_half(g, a, b, c)
    }

    fn amp_scale(&self, n: usize, state: &Vec<f32>, x: &mut Vec<f32>) -> Result<()> {
        amp::amp_scale(n, state, x)
    }

    fn amp_unscale(&self, n: usize, state: &mut Vec<f32>, x: &mut Vec<f32>) -> Result<()> {
        amp::amp_unscale(n, state, x)
    }

    fn amp_sgd(
        &self,
        n: usize,
        lr: f32,
        weight_decay: f32,
        state: &Vec<f32>,
        grad: &Vec<f32>,
        param: &mut Vec<f32>,
    ) -> Result<()> {
        match amp::found_inf(state)? {
            true => Ok(()),
            false => self.sgd_update(n, lr, weight_decay, grad, param),
        }
    }

    fn amp_momentum(
        &self,
        n: usize,
        step: &MomentumStep,
        state: &Vec<f32>,
        grad: &Vec<f32>,
        velocity: &mut Vec<f32>,
        param: &mut Vec<f32>,
    ) -> Result<()> {
        match amp::found_inf(state)? {
            true => Ok(()),
            false => self.momentum_update(n, step, grad, velocity, param),
        }
    }

    fn amp_update_scale(&self, growth: &ScaleGrowth, state: &mut Vec<f32>) -> Result<()> {
        amp::amp_update_scale(growth, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_nearest_even_with_overflow_to_inf() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to the even 1.
        assert_eq!(f16_bits(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(f16_bits(65519.0), 0x7bff);
        assert_eq!(f16_bits(65520.0), 0x7c00);
        assert_eq!(f16_bits(-1e9), 0xfc00);
        assert_eq!(f16_bits(2f32.powi(-24)), 0x0001);
        assert_eq!(f16_bits(2f32.powi(-25)), 0x0000);
        assert_eq!(f16_bits(-f32::NAN), 0xfe00);
    }

    #[test]
    fn pack_and_unpack_round_trip_odd_lengths() {
        let x = [1.0, -2.5, 3.0e-3, 7.0, 0.1];
        let mut w = vec![0.0; 3];
        pack(&x, &mut w).unwrap();
        assert_eq!(w[2].to_bits() >> 16, 0, "the upper half of an odd last word is 0");
        let back = unpack(&w, 5).unwrap();
        let want: Vec<f32> = x.iter().map(|&v| round_f16(v)).collect();
        assert_eq!(back, want);
    }

    /// The vectorised, parallel [`pack`] and [`unpack`] give [`f16_bits`]'s bits, element by
    /// element: ties, the largest and smallest halves, subnormals, overflow, signed zeros and
    /// NaNs with payloads, then random bit patterns of every exponent, at lengths below and
    /// past the parallel threshold, odd and even.
    #[test]
    fn vectorised_pack_equals_the_scalar_rounding_bitwise() {
        let special = [
            0.0,
            -0.0,
            1.0 + 2f32.powi(-11),
            1.0 + 3.0 * 2f32.powi(-11),
            65504.0,
            65519.0,
            65520.0,
            -1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            2f32.powi(-24),
            2f32.powi(-25),
            3.0 * 2f32.powi(-26),
            -2f32.powi(-15),
            f32::MIN_POSITIVE,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffc1_2345),
            -f32::NAN,
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            f32::from_bits((state >> 32) as u32)
        };
        for n in [special.len(), 1001, PAR_MIN + 3, 3 * CHUNK + PAR_MIN] {
            let x: Vec<f32> =
                special.iter().copied().chain(std::iter::repeat_with(&mut next)).take(n).collect();
            let mut words = vec![1.0f32; half_words(n) + 1];
            pack(&x, &mut words).unwrap();
            for (i, &v) in x.iter().enumerate() {
                let bits = (words[i / 2].to_bits() >> (16 * (i % 2))) as u16;
                assert_eq!(bits, f16_bits(v), "n = {n}, element {i} = {v:e} ({:#010x})", v.to_bits());
            }
            if n % 2 == 1 {
                assert_eq!(words[n / 2].to_bits() >> 16, 0, "the upper half of an odd last word");
            }
            assert_eq!(words[half_words(n)], 1.0, "a word past the halves is left alone");
            let back = unpack(&words, n).unwrap();
            for (i, (&b, &v)) in back.iter().zip(&x).enumerate() {
                let want = round_f16(v);
                assert!(b.to_bits() == want.to_bits() || (b.is_nan() && want.is_nan()), "element {i}");
            }
        }
    }

    /// Products on kept buffers: a small product after a large one reads only its own operands'
    /// prefix of the longer buffers, whatever they held, and every product equals the f32
    /// product of its widened halves; several threads at once each take their own pair.
    #[test]
    fn products_on_kept_buffers_equal_fresh_ones() {
        let half = |v: &[f32]| {
            let mut words = vec![0.0; half_words(v.len())];
            pack(v, &mut words).expect("pack");
            HalfBuf { words, len: v.len() }
        };
        let product = |m: usize, n: usize, k: usize, seed: f32| {
            let a: Vec<f32> = (0..m * k).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i as f32 - seed) * 0.53).cos()).collect();
            let g = Gemm::nn(m, n, k);
            let (ha, hb) = (half(&a), half(&b));
            let mut got = vec![0.0; m * n];
            matmul_half(&g, &ha, &hb, &mut got).expect("matmul_half");
            let (wa, wb) =
                (unpack(&ha.words, ha.len).expect("a"), unpack(&hb.words, hb.len).expect("b"));
            let mut want = vec![0.0; m * n];
            super::super::matmul::matmul(&g, &wa, &wb, &mut want).expect("matmul");
            assert_eq!(got, want, "{m}x{n}x{k}");
        };
        product(37, 29, 41, 1.0);
        product(3, 2, 5, 2.0);
        product(1, 1, 1, 3.0);
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || product(5 + t, 7, 9 + 3 * t, t as f32));
            }
        });
    }
}

//! Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11, "Random123").
//!
//! A value is a pure function of `(key, counter)`, so example `i` of a stream can be generated
//! anywhere, in any order, on the CPU or the GPU, with no state. Only 32-bit integer operations
//! are used (the GPU twin in `shaders/datagen.wgsl` has no `u64`), so integers agree exactly.
//!
//! Counter layout used everywhere in batchscope: `[block, sub_lo, sub_hi, stream]`, key
//! `[seed_lo, seed_hi]`. `stream` names what is drawn ([`STREAM_X`], [`STREAM_LABEL`], ...),
//! `sub` is the distinct example index (or a table row, or an epoch) and `block` counts groups of
//! four words within it.
//!
//! Normals use Box-Muller with `ln`, `sin` and `cos` evaluated by the fixed polynomials below
//! (plain f32 `+ - * /` and `sqrt`), not the platform's transcendental functions, whose accuracy
//! differs between GPUs: the CPU and GPU results then differ only by rounding (≈ 1e-7 relative).

/// Input features `x` (normals `N(0, 1)`, four per block).
pub const STREAM_X: u32 = 0;
/// Class draw, label-noise flag and noisy class (one block per example).
pub const STREAM_LABEL: u32 = 1;
/// Target noise of linear_regression (normals, four per block).
pub const STREAM_TARGET_NOISE: u32 = 2;
/// Class means of gaussian_mixture (`sub` = class).
pub const STREAM_MEANS: u32 = 16;
/// `W*` of linear_regression (`sub` = output row).
pub const STREAM_WSTAR: u32 = 17;
/// First teacher layer (`sub` = hidden unit).
pub const STREAM_TEACHER_1: u32 = 18;
/// Second teacher layer (`sub` = class).
pub const STREAM_TEACHER_2: u32 = 19;
/// Minibatch permutations (key = train seed, `sub` = epoch).
pub const STREAM_SHUFFLE: u32 = 32;
/// Train/validation split of `.npy` data (key = data seed).
pub const STREAM_SPLIT: u32 = 33;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// `(hi, lo)` of the 64-bit product `a * b`, from 16-bit halves exactly as the WGSL twin does it.
#[inline(always)]
pub fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let (al, ah, bl, bh) = (a & 0xffff, a >> 16, b & 0xffff, b >> 16);
    let ll = al * bl;
    let lh = al * bh;
    let hl = ah * bl;
    let hh = ah * bh;
    let mid = (ll >> 16) + (lh & 0xffff) + (hl & 0xffff);
    let hi = hh.wrapping_add(lh >> 16).wrapping_add(hl >> 16).wrapping_add(mid >> 16);
    (hi, a.wrapping_mul(b))
}

/// Philox4x32 with 10 rounds: four pseudo-random words of `(counter, key)`.
#[inline]
pub fn philox(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The key of a 64-bit seed.
#[inline]
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// Block `block` of sub-stream `sub` of stream `stream`: four words.
#[inline]
pub fn block(key: [u32; 2], stream: u32, sub: u64, block: u32) -> [u32; 4] {
    philox([block, sub as u32, (sub >> 32) as u32, stream], key)
}

/// `floor(w * n / 2^32)`: an integer in `[0, n)` (bias ≤ n / 2^32, Lemire's multiply-shift).
#[inline]
pub fn below(w: u32, n: u32) -> u32 {
    mulhilo(w, n).0
}

/// The top 24 bits of `w` as a uniform in `(0, 1]`: `((w >> 8) + 1) · 2^-24` (never 0, so
/// `ln` is finite).
#[inline]
pub fn uniform_open(w: u32) -> f32 {
    ((w >> 8) + 1) as f32 * TWO_M24
}

// Constants as bit patterns, shared verbatim with shaders/datagen.wgsl.
const TWO_M24: f32 = f32::from_bits(0x3380_0000); // 2^-24
const TWO_PI_2_24: f32 = f32::from_bits(0x34c9_0fdb); // 2π / 2^24
const LN2: f32 = f32::from_bits(0x3f31_7218);
const SQRT2: f32 = f32::from_bits(0x3fb5_04f3);
const L3: f32 = f32::from_bits(0x3eaa_aaab); // 1/3
const L5: f32 = f32::from_bits(0x3e4c_cccd); // 1/5
const L7: f32 = f32::from_bits(0x3e12_4925); // 1/7
const L9: f32 = f32::from_bits(0x3de3_8e39); // 1/9
const L11: f32 = f32::from_bits(0x3dba_2e8c); // 1/11
const S3: f32 = f32::from_bits(0xbe2a_aaab); // -1/3!
const S5: f32 = f32::from_bits(0x3c08_8889); // 1/5!
const S7: f32 = f32::from_bits(0xb950_0d01); // -1/7!
const S9: f32 = f32::from_bits(0x3638_ef1d); // 1/9!
const C2: f32 = f32::from_bits(0xbf00_0000); // -1/2!
const C4: f32 = f32::from_bits(0x3d2a_aaab); // 1/4!
const C6: f32 = f32::from_bits(0xbab6_0b61); // -1/6!
const C8: f32 = f32::from_bits(0x37d0_0d01); // 1/8!
const C10: f32 = f32::from_bits(0xb493_f27e); // -1/10!

/// `ln(v · 2^-24)` for `v` in `[1, 2^24]`: `v · 2^-24 = m · 2^(e-24)` with `m` in
/// `[√½, √2]`, and `ln m = 2 atanh(s)`, `s = (m-1)/(m+1)`, `|s| ≤ 0.172`, by its series to s¹¹.
#[inline]
pub fn ln_scaled(v: u32) -> f32 {
    let mut e = 31 - v.leading_zeros(); // floor(log2 v), v ≥ 1
    let mut m = v as f32 * f32::from_bits((127 - e) << 23); // exact: [1, 2)
    if m > SQRT2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let ln_m = 2.0 * s * (1.0 + z * (L3 + z * (L5 + z * (L7 + z * (L9 + z * L11)))));
    ln_m + (e as i32 - 24) as f32 * LN2
}

/// `(cos θ, sin θ)` for `θ = 2π k / 2^24`, `k < 2^24`: reduce exactly to the nearest quadrant
/// `q` and `φ` in `[-π/4, π/4)`, then Taylor polynomials (errors < 2e-9).
#[inline]
pub fn cos_sin_turn(k: u32) -> (f32, f32) {
    let t = k + (1 << 21);
    let q = (t >> 22) & 3;
    let r = (t & ((1 << 22) - 1)) as i32 - (1 << 21);
    let phi = r as f32 * TWO_PI_2_24;
    let z = phi * phi;
    let s = phi + phi * z * (S3 + z * (S5 + z * (S7 + z * S9)));
    let c = 1.0 + z * (C2 + z * (C4 + z * (C6 + z * (C8 + z * C10))));
    match q {
        0 => (c, s),
        1 => (-s, c),
        2 => (-c, -s),
        _ => (s, -c),
    }
}

/// Two independent `N(0, 1)` from two words (Box-Muller): `r = sqrt(-2 ln u)` with
/// `u = uniform_open(wa)`, `θ = 2π (wb >> 8) / 2^24`; returns `(r cos θ, r sin θ)`.
#[inline]
pub fn box_muller(wa: u32, wb: u32) -> (f32, f32) {
    let r = (-2.0 * ln_scaled((wa >> 8) + 1)).sqrt();
    let (c, s) = cos_sin_turn(wb >> 8);
    (r * c, r * s)
}

/// Four normals of one block: `[bm(w0,w1).0, bm(w0,w1).1, bm(w2,w3).0, bm(w2,w3).1]`.
#[inline]
pub fn normals4(w: [u32; 4]) -> [f32; 4] {
    let (a, b) = box_muller(w[0], w[1]);
    let (c, d) = box_muller(w[2], w[3]);
    [a, b, c, d]
}

/// Normal `j` of sub-stream `sub` of `stream` (block `j / 4`, position `j % 4`).
#[inline]
pub fn normal_at(key: [u32; 2], stream: u32, sub: u64, j: usize) -> f32 {
    normals4(block(key, stream, sub, (j / 4) as u32))[j % 4]
}

/// A sequential host-side reader of one sub-stream: words of blocks `0, 1, 2, ...` in order.
/// Used for tables, permutations and splits (never on the GPU).
#[derive(Clone, Debug)]
pub struct Stream {
    key: [u32; 2],
    stream: u32,
    sub: u64,
    block: u32,
    buf: [u32; 4],
    pos: usize,
}

impl Stream {
    pub fn new(seed: u64, stream: u32, sub: u64) -> Self {
        Stream { key: key_of(seed), stream, sub, block: 0, buf: [0; 4], pos: 4 }
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.pos == 4 {
            self.buf = block(self.key, self.stream, self.sub, self.block);
            self.block = self.block.wrapping_add(1);
            self.pos = 0;
        }
        let w = self.buf[self.pos];
        self.pos += 1;
        w
    }

    /// Exactly uniform in `[0, n)` for `n ≥ 1` (Lemire's method with rejection).
    pub fn below(&mut self, n: u32) -> u32 {
        debug_assert!(n > 0);
        let n = n.max(1);
        let threshold = n.wrapping_neg() % n; // 2^32 mod n
        loop {
            let (hi, lo) = mulhilo(self.next_u32(), n);
            if lo >= threshold {
                return hi;
            }
        }
    }

    /// `N(0, 1)` (Box-Muller on two consecutive words).
    pub fn normal(&mut self) -> f32 {
        let a = self.next_u32();
        let b = self.next_u32();
        box_muller(a, b).0
    }

    /// A uniformly random permutation of `0..n` (Fisher-Yates); `n` must be at most `u32::MAX`
    /// (a larger `n` gives a permutation of `0..u32::MAX` rather than an out-of-bounds swap).
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let mut p: Vec<u32> = (0..n).collect();
        for i in (1..p.len()).rev() {
            let j = self.below(i as u32 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123's `kat_vectors` (counter, key → output).
    #[test]
    fn philox_known_answers() {
        let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            ([0; 4], [0; 2], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
            ([u32::MAX; 4], [u32::MAX; 2], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
            (
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0],
                [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
            ),
        ];
        for (ctr, key, want) in cases {
            assert_eq!(philox(ctr, key), want, "ctr {ctr:08x?} key {key:08x?}");
        }
    }

    #[test]
    fn mulhilo_matches_u64() {
        let mut s = Stream::new(3, 99, 0);
        for _ in 0..10_000 {
            let (a, b) = (s.next_u32(), s.next_u32());
            let p = a as u64 * b as u64;
            assert_eq!(mulhilo(a, b), ((p >> 32) as u32, p as u32));
        }
        assert_eq!(mulhilo(u32::MAX, u32::MAX), (0xffff_fffe, 1));
    }

    #[test]
    fn ln_and_trig_match_f64() {
        for v in (1u32..=1 << 24).step_by(997).chain([1, 2, 3, (1 << 24) - 1, 1 << 24]) {
            let want = (v as f64 / (1u64 << 24) as f64).ln();
            let got = ln_scaled(v) as f64;
            assert!((got - want).abs() <= 2e-7 * want.abs().max(1e-7) + 1e-12, "v={v}: {got} vs {want}");
        }
        for k in (0u32..1 << 24).step_by(4099).chain([0, 1, (1 << 21) - 1, 1 << 21, (1 << 24) - 1]) {
            let th = 2.0 * std::f64::consts::PI * k as f64 / (1u64 << 24) as f64;
            let (c, s) = cos_sin_turn(k);
            assert!((c as f64 - th.cos()).abs() < 3e-7, "cos k={k}");
            assert!((s as f64 - th.sin()).abs() < 3e-7, "sin k={k}");
        }
    }

    #[test]
    fn uniform_is_in_open_unit_interval() {
        assert_eq!(uniform_open(0), TWO_M24);
        assert_eq!(uniform_open(u32::MAX), 1.0);
    }

    #[test]
    fn normals_have_unit_moments() {
        let key = key_of(11);
        let n = 200_000;
        let (mut s1, mut s2, mut s4) = (0f64, 0f64, 0f64);
        for j in 0..n {
            let z = normal_at(key, STREAM_X, 5, j) as f64;
            s1 += z;
            s2 += z * z;
            s4 += z * z * z * z;
        }
        let (m, v, k) = (s1 / n as f64, s2 / n as f64, s4 / n as f64);
        assert!(m.abs() < 0.01, "mean {m}");
        assert!((v - 1.0).abs() < 0.015, "var {v}");
        assert!((k - 3.0).abs() < 0.08, "4th moment {k}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let p = Stream::new(1, STREAM_SHUFFLE, 0).permutation(1000);
        let mut q = p.clone();
        q.sort();
        assert_eq!(q, (0..1000).collect::<Vec<u32>>());
        assert_ne!(p, (0..1000).collect::<Vec<u32>>());
    }
}

// Included by src/backend/gpu/kernels.rs into matmul_f16.wgsl, matmul_coop.wgsl and amp.wgsl:
// the one f32 -> f16 rounding of every f16 store (to_half, the fused f16 epilogues,
// amp_scale_half). The CPU twin is `f16_bits` in src/backend/cpu/f16.rs.

// The binary16 bits of x, rounded to nearest even (matmul_f16.wgsl's header says why
// integer operations).
fn f16_bits(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let e = (b >> 23u) & 0xffu;
    let man = b & 0x7fffffu;
    if (e == 255u) {
        if (man != 0u) {
            return sign | 0x7e00u;
        }
        return sign | 0x7c00u;
    }
    if (e >= 143u) {
        // |x| >= 2^16: beyond the largest half (65504) even before rounding.
        return sign | 0x7c00u;
    }
    if (e >= 113u) {
        // A normal half: biased exponent e - 112 in [1, 30]; a carry out of the mantissa
        // moves to the next exponent (up to 0x7c00 = inf), as round-to-nearest requires.
        var h = ((e - 112u) << 10u) | (man >> 13u);
        let rest = man & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u)) {
            h = h + 1u;
        }
        return sign | h;
    }
    if (e < 102u) {
        // |x| < 2^-25: rounds to a signed zero.
        return sign;
    }
    // A subnormal half: the value in units of 2^-24 is m >> (126 - e), m with its hidden bit.
    let m = man | 0x800000u;
    let shift = 126u - e;
    var h = m >> shift;
    let rest = m & ((1u << shift) - 1u);
    let halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (h & 1u) == 1u)) {
        h = h + 1u;
    }
    return sign | h;
}

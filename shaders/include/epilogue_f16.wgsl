// Included by src/backend/gpu/kernels.rs into matmul_f16.wgsl and matmul_coop.wgsl; φ and φ'
// come from include/activation.wgsl.

// ---- fused epilogue of the f16 products (matmul_f16.wgsl, matmul_coop.wgsl) -----------
//
// P.epi selects what the store of C does with v = alpha * acc (+ beta * C), the same float
// operations as the unfused kernels that would follow the product (act.wgsl, elementwise.wgsl,
// to_half; matmul.wgsl's epilogue section is the f32 twin):
//   0: C = v
//   1: C = v + bias[col]                         (elementwise.wgsl add_bias)
//   2: C = v + bias[col]; Y = φ(C)               (act.wgsl bias_act, φ = P.act)
//   3: C = v * φ'(Z[o])                          (act.wgsl act_backward, φ = P.act)
// and with P.half_out = 1, H = f16(Y) (epilogue 2) or f16(C) (others), as to_half rounds.
// Bindings 4 (bias [n] or Z [m, n], read), 5 (Y [m, n]) and 6 (H, packed halves); the host binds
// placeholders where the epilogue does not read or write them. Two neighbouring halves share a
// word of H and may belong to different invocations (or workgroups, when n is odd), so each
// store clears and sets only its own 16 bits, atomically.
@group(0) @binding(4) var<storage, read> e_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> e_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> h_out: array<atomic<u32>>;

// alpha * x, with alpha == 1 exactly x: a later `+ bias` is never contracted with the product.
fn alpha_times(x: f32) -> f32 {
    return select(P.alpha * x, x, P.alpha == 1.0);
}

// ---- f32 -> f16 ----

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

// H[o] = f16(x): only this element's 16 bits of its word change.
fn store_half(o: u32, x: f32) {
    let shift = (o & 1u) * 16u;
    atomicAnd(&h_out[o >> 1u], ~(0xffffu << shift));
    atomicOr(&h_out[o >> 1u], f16_bits(x) << shift);
}

// The value stored at C[o] (column col) for v; writes Y[o] and H[o] as P says.
fn epilogue(o: u32, col: u32, v: f32) -> f32 {
    var out = v;
    var rounded = v;
    switch P.epi {
        case 1u: { out = v + e_in[col]; rounded = out; }
        case 2u: {
            out = v + e_in[col];
            rounded = epi_phi(out, P.act);
            e_out[o] = rounded;
        }
        case 3u: { out = v * epi_dphi(e_in[o], P.act); rounded = out; }
        default: {}
    }
    if (P.half_out != 0u) {
        store_half(o, rounded);
    }
    return out;
}

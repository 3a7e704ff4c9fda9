// Included by src/backend/gpu/kernels.rs into matmul_f16.wgsl and matmul_coop.wgsl; φ and φ'
// come from include/activation.wgsl, f16_bits from include/f16_bits.wgsl.

// ---- fused epilogue of the f16 products (matmul_f16.wgsl, matmul_coop.wgsl) -----------
//
// P.epi selects what the store of C does with v = alpha * acc (+ beta * C), the same float
// operations as the unfused kernels that would follow the product (act.wgsl, elementwise.wgsl,
// to_half; matmul.wgsl's epilogue section is the f32 twin):
//   0: C = v
//   1: C = v + bias[col]                         (elementwise.wgsl add_bias)
//   2: C = v + bias[col]; Y = φ(C)               (act.wgsl bias_act, φ = P.act)
//   3: C = v * φ'(Z[o])                          (act.wgsl act_backward, φ = P.act)
//   4: C = v; G[r] = Σ_{i<k} S[i, r] for row r    (reduce.wgsl col_sum; S [k, m] f32, read;
//      bias_grad_block below, once per workgroup of the first column block)
//   5: C = v; G as epilogue 4, summed by ceil(m / 32) col_sum workgroups of the same dispatch
//      after the product's (matmul_f16 only; bias_grad_cols below)
// and with P.half_out = 1, H = f16(Y) (epilogue 2) or f16(C) (others), as to_half rounds.
// With P.unscale = 1 (epilogues 0, 4 and 5, no f16 copy: a weight gradient of the f16 step),
// C and G are then multiplied by 1 / S with the loss scaler's found-inf flag raised on an inf or
// NaN element: amp.wgsl's amp_unscale on each stored value, the same float operations.
// Bindings 4 (bias [n] or Z [m, n], read), 5 (Y [m, n]) and 6 (H, packed halves); the host binds
// placeholders where the epilogue does not read or write them. Two neighbouring halves share a
// word of H: where one invocation owns both (a column pair from an even element, n even),
// epilogue2 writes the word whole; where they may belong to different invocations (or
// workgroups: odd n, where words straddle invocations and rows), store_half clears and sets
// only its own 16 bits, atomically. Binding 7 is the loss scaler's state
// [scale, found-inf flag, ...] (amp.wgsl), read and flagged atomically.
@group(0) @binding(4) var<storage, read> e_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> e_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> h_out: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read_write> amp_state: array<atomic<u32>>;

// v, or with P.unscale v * (1 / S) raising the found-inf flag when v is inf or NaN (tested on
// the bits): amp.wgsl's unscale_one.
fn unscaled(v: f32) -> f32 {
    return unscaled_by(v, scale_inv());
}

// 1 / S of the loss scaler's state (1 without P.unscale): read once per invocation by the
// paired epilogue instead of once per element.
fn scale_inv() -> f32 {
    if (P.unscale == 0u) {
        return 1.0;
    }
    return 1.0 / bitcast<f32>(atomicLoad(&amp_state[0]));
}

// unscaled() with inv = scale_inv() given.
fn unscaled_by(v: f32, inv: f32) -> f32 {
    if (P.unscale == 0u) {
        return v;
    }
    if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
        atomicOr(&amp_state[1], 0x3f800000u); // 1.0f
    }
    return v * inv;
}

// alpha * x, with alpha == 1 exactly x: a later `+ bias` is never contracted with the product.
fn alpha_times(x: f32) -> f32 {
    return select(P.alpha * x, x, P.alpha == 1.0);
}

// H[o] = f16(x): only this element's 16 bits of its word change.
fn store_half(o: u32, x: f32) {
    let shift = (o & 1u) * 16u;
    atomicAnd(&h_out[o >> 1u], ~(0xffffu << shift));
    atomicOr(&h_out[o >> 1u], f16_bits(x) << shift);
}

// Epilogue 4 for a workgroup whose block of C starts at (row0, col0) and has `rows` rows:
// nothing unless col0 == 0; then invocation t of `threads` writes G[r] for r = row0 + t,
// row0 + t + threads, ... below row0 + rows and m (include/epilogue.wgsl's twin).
fn bias_grad_block(row0: u32, rows: u32, col0: u32, t: u32, threads: u32) {
    if (P.epi != 4u || col0 != 0u) {
        return;
    }
    let end = min(row0 + rows, P.m);
    for (var r = row0 + t; r < end; r += threads) {
        e_out[r] = unscaled(col_sum_of(r));
    }
}

// Epilogue 5: G[c] for the 32 rows c of col_sum workgroup cb of the dispatch (invocation t of
// 256: column c = 32 cb + t % 32, lane t / 32), in col_sum's order (include/col_tree.wgsl).
fn bias_grad_cols(cb: u32, t: u32) {
    let c = cb * 32u + t % 32u;
    let lane = t / 32u;
    var acc = 0.0;
    if (c < P.m) {
        for (var i = lane; i < P.k; i = i + 8u) {
            acc = acc + e_in[i * P.m + c];
        }
    }
    let total = col_tree_sum(t, acc);
    if (lane == 0u && c < P.m) {
        e_out[c] = unscaled(total);
    }
}

// The value stored at C[o] (column col) for v; writes Y[o] and H[o] as P says.
fn epilogue(o: u32, col: u32, v: f32) -> f32 {
    let e = epilogue_values(o, col, v);
    if (P.half_out != 0u) {
        store_half(o, e.y);
    }
    return unscaled(e.x);
}

// epilogue()'s value of C before unscaling (x) and the value its f16 copy rounds (y); writes
// Y[o] for epilogue 2.
fn epilogue_values(o: u32, col: u32, v: f32) -> vec2<f32> {
    var out = v;
    var rounded = v;
    switch P.epi {
        case 1u: { out = v + e_in[col]; rounded = out; }
        case 2u: {
            out = v + e_in[col];
            rounded = epi_phi(out, P.act);
            e_out[o] = rounded;
        }
        case 3u: { out = epi_dgrad(v, e_in[o], P.act); rounded = out; }
        default: {}
    }
    return vec2<f32>(out, rounded);
}

// epilogue() of the neighbouring elements o and o + 1 (o even; columns col, col + 1), inv =
// scale_inv(): the same values, but their f16 copies are one word of H that no other
// invocation writes, stored whole by one plain (atomic) store instead of two read-modify-write
// atomics per element.
fn epilogue2(o: u32, col: u32, v: vec2<f32>, inv: f32) -> vec2<f32> {
    let e0 = epilogue_values(o, col, v.x);
    let e1 = epilogue_values(o + 1u, col + 1u, v.y);
    if (P.half_out != 0u) {
        atomicStore(&h_out[o >> 1u], f16_bits(e0.y) | (f16_bits(e1.y) << 16u));
    }
    return vec2<f32>(unscaled_by(e0.x, inv), unscaled_by(e1.x, inv));
}

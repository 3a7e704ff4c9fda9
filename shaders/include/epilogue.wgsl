// Included by src/backend/gpu/kernels.rs into matmul.wgsl and matmul_tile.wgsl (every tile
// configuration); φ and φ' come from include/activation.wgsl.

// ---- fused epilogue (tiled and skinny kernels, split-k reduce) ----------------------------
//
// The pipeline constant EPI (P.epi mirrors it) selects what the store of C does with
// v = alpha * acc (+ beta * C), the same float operations as the unfused kernels that would
// follow the product (act.wgsl); each epilogue is its own pipeline, so the others compile out:
//   0: C = v
//   1: C = v + bias[col]                         (elementwise.wgsl add_bias)
//   2: C = v + bias[col]; Y = φ(C)               (act.wgsl bias_act, φ = ACT)
//   3: C = v * φ'(Z[o])                          (act.wgsl act_backward, φ = ACT)
//   4: C = v; G[r] = Σ_{i<k} S[i, r] for row r    (reduce.wgsl col_sum, S [k, m] read;
//      bias_grad_block below, not epilogue(); in the split-k reduce, splitk_col_sum)
//   5: C = v; G[r] = Σ_{i<k} A[i, r] for row r    (the same, S = A itself, transposed:
//      bias_lanes_* below, summed from A's slices as the tiled kernels stage them)
// Bindings 4 (bias [n], Z [m, n] or S [k, m], read) and 5 (Y [m, n] or G [m]) of the tiled and
// skinny kernels; the host binds placeholders where the epilogue does not read or write them.
// Epilogue 4 is the bias gradient of a weight-gradient product gW = dzᵀ·x (S = dz [k = rows,
// m = out]): the workgroups of the first column block sum S's columns for their rows, one per
// invocation, in col_sum's order (a branch uniform over the workgroup, taken once, not per
// stored element: llvmpipe runs a per-element branch under masks for every element). That
// serial sum of k values per invocation is for small k (the host fuses it up to k = 32); where
// S is A itself (gW = dzᵀ·x with A = dz, trans_a) the tiled kernels use epilogue 5 at any k.
override EPI: u32 = 0u;
override ACT: u32 = 0u;
@group(0) @binding(4) var<storage, read> e_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> e_out: array<f32>;

// alpha * x, with alpha == 1 exactly x: a later `+ bias` is never contracted with the product.
fn alpha_times(x: f32) -> f32 {
    return select(P.alpha * x, x, P.alpha == 1.0);
}

fn alpha_times4(x: vec4<f32>) -> vec4<f32> {
    return select(P.alpha * x, x, P.alpha == 1.0);
}

// The value stored at C[o] (column col) for v; writes Y[o] when EPI == 2.
fn epilogue(o: u32, col: u32, v: f32) -> f32 {
    switch EPI {
        case 1u: { return v + e_in[col]; }
        case 2u: {
            let z = v + e_in[col];
            e_out[o] = epi_phi(z, ACT);
            return z;
        }
        case 3u: { return epi_dgrad(v, e_in[o], ACT); }
        default: { return v; }
    }
}

// Epilogue 4 for a workgroup whose block of C starts at (row0, col0) and has `rows` rows:
// nothing unless col0 == 0; then invocation t of `threads` writes G[r] for r = row0 + t,
// row0 + t + threads, ... below row0 + rows and m. Called after the block's stores by every
// invocation of a workgroup that owns a block (no invocation returns before it).
fn bias_grad_block(row0: u32, rows: u32, col0: u32, t: u32, threads: u32) {
    if (EPI != 4u || col0 != 0u) {
        return;
    }
    let end = min(row0 + rows, P.m);
    for (var r = row0 + t; r < end; r += threads) {
        e_out[r] = col_sum_of(r);
    }
}

// The same for C[o .. o+4] (columns col .. col+4, all inside C).
fn epilogue4(o: u32, col: u32, v: vec4<f32>) -> vec4<f32> {
    if (EPI == 0u) {
        return v;
    }
    return vec4(
        epilogue(o, col, v.x),
        epilogue(o + 1u, col + 1u, v.y),
        epilogue(o + 2u, col + 2u, v.z),
        epilogue(o + 3u, col + 3u, v.w),
    );
}

// ---- epilogue 5: the bias gradient from A's staged slices (the tiled kernels) ---------------
//
// For gW = dzᵀ·x the tiled kernels stage every slice of A = dz in workgroup memory, k-major:
// depth p of slice buffer `buf`, tile row i at As[buf * SA + p * BM4 + i / 4][i % 4] (SA, BM4,
// BK, BM: the including kernel's constants). Invocation t < BM of a workgroup of the first
// column block keeps the 8 lanes of col_sum's order for tile row t in registers (lane l: the
// depths ≡ l (mod 8), in order, from 0) and adds each slice's BK depths as the slice passes;
// slices start at depth 0 and at multiples of BK (8 or 16), so depth p of a slice is lane p % 8.
// After the k loop it adds the lanes by col_sum's tree (4, 2, 1): G[r] has the bits of col_sum
// at any k. Depths past k are staged as zeros, and x + 0.0 == x for every sum that starts at
// +0.0 (it is never -0.0). The cost is BK adds from workgroup memory per slice for half the
// invocations of the workgroups of one column block, and none for the other epilogues (EPI is
// a pipeline constant: the branch compiles out).

// `lanes` plus the depths of slice buffer `buf` for invocation t of a tile at column col0.
fn bias_lanes_add(lanes: array<f32, 8>, buf: u32, t: u32, col0: u32) -> array<f32, 8> {
    var l = lanes;
    if (EPI == 5u && col0 == 0u && t < BM) {
        let o = buf * SA + (t >> 2u);
        let c = t & 3u;
        for (var p = 0u; p < BK; p++) {
            l[p & 7u] = l[p & 7u] + As[o + p * BM4][c];
        }
    }
    return l;
}

// G[row0 + t] = the lanes added by col_sum's tree, for invocation t < BM of the first column
// block's workgroups (rows below m).
fn bias_lanes_store(row0: u32, col0: u32, t: u32, lanes: array<f32, 8>) {
    if (EPI == 5u && col0 == 0u && t < BM && row0 + t < P.m) {
        var l = lanes;
        for (var s = 4u; s > 0u; s = s >> 1u) {
            for (var i = 0u; i < s; i++) {
                l[i] = l[i] + l[i + s];
            }
        }
        e_out[row0 + t] = l[0];
    }
}

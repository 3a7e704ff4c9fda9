// matmul_f16.wgsl: f16 storage, f32 products and accumulation.
//
// Half tensors are stored packed, two binary16 values per u32 word (element 2w in the low 16
// bits of word w, element 2w + 1 in the high bits: the byte layout of `array<f16>`), so this
// file needs no `enable f16;` and runs on every adapter. Loads widen with unpack2x16float,
// which is exact; the only rounding is f32 -> f16 in `to_half`, done with integer operations
// (round to nearest even, overflow to ±inf, NaN to the quiet NaN 0x7e00 with its sign) because
// WGSL leaves pack2x16float's rounding and overflow implementation-defined. The CPU twin
// (src/backend/cpu/f16.rs) rounds the same way, bit for bit.
//
// Entry points (host: src/backend/gpu/matmul_f16.rs):
// - to_half: words[w] = f16(x[2w]) | f16(x[2w + 1]) << 16 for 2w < n (the upper half of the last
//   word is 0 when n is odd). One invocation per word: no two invocations share a word.
// - to_half4: the same for up to four tensors in one dispatch (the minibatch and the weights of
//   an f16 forward pass).
// - matmul_f16: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n] with A, B half and C
//   f32; A stored [m,k] (or [k,m] when trans_a), B stored [k,n] (or [n,k] when trans_b). 64x64
//   tile of C per 256-invocation workgroup, 4x4 outputs per invocation, BK = 16 slices of A and B
//   widened to f32 in workgroup memory (8 KiB). Any shape; beta == 0 never reads C. The store
//   runs the fused epilogue below (P.epi, P.half_out).
// - matmul_f16_skinny: the same product and store for a side of C too short for a tile (few
//   rows or few columns): 8 rows x 256 / P.k_lanes columns per workgroup, k walked by lanes
//   (host: src/backend/gpu/matmul_f16/skinny.rs; see its section at the end).
//
// Grid of matmul_f16: x walks column blocks, y (+ z * num_workgroups.y) row blocks; with the
// bias-gradient epilogue 5, the row blocks past ceil(m / 64) are ceil(m / 32) col_sum workgroups
// (x fastest), the rest of their row idle.

// struct Params: shaders/include/half_params.wgsl.

@group(0) @binding(0) var<uniform> P: Params;

// ---- f32 -> f16 (f16_bits: shaders/include/epilogue_f16.wgsl) ------------------------

@group(0) @binding(1) var<storage, read> th_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> th_words: array<u32>;

@compute @workgroup_size(WG_1D)
fn to_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = lin(gid, nwg);
    let i = 2u * w;
    if (i >= P.len) {
        return;
    }
    var hi = 0u;
    if (i + 1u < P.len) {
        hi = f16_bits(th_x[i + 1u]);
    }
    th_words[w] = f16_bits(th_x[i]) | (hi << 16u);
}

// ---- f32 -> f16 of up to four tensors in one dispatch (to_half4) -------------------------
// Tensor i (n[i] elements, 0 for an unused slot) owns the workgroups [ends[i - 1], ends[i]) of
// a 1-D grid (folded into y like lin()), one invocation per word as in to_half: the same bits.

struct Half4 {
    n: vec4<u32>,
    ends: vec4<u32>,
}

@group(0) @binding(0) var<uniform> h4: Half4;
@group(0) @binding(1) var<storage, read> h4_x0: array<f32>;
@group(0) @binding(2) var<storage, read_write> h4_w0: array<u32>;
@group(0) @binding(3) var<storage, read> h4_x1: array<f32>;
@group(0) @binding(4) var<storage, read_write> h4_w1: array<u32>;
@group(0) @binding(5) var<storage, read> h4_x2: array<f32>;
@group(0) @binding(6) var<storage, read_write> h4_w2: array<u32>;
@group(0) @binding(7) var<storage, read> h4_x3: array<f32>;
@group(0) @binding(8) var<storage, read_write> h4_w3: array<u32>;

// f16(lo) | f16(hi) << 16, the upper half 0 without hi (to_half's word).
fn half_word(lo: f32, hi: f32, has_hi: bool) -> u32 {
    return f16_bits(lo) | (select(0u, f16_bits(hi), has_hi) << 16u);
}

@compute @workgroup_size(WG_1D)
fn to_half4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let g = wid.x + wid.y * nwg.x;
    // The tensor of this workgroup (uniform over it) and its first word.
    var k = 0u;
    var start = 0u;
    for (var s = 0u; s < 3u && g >= h4.ends[s]; s++) {
        k = s + 1u;
        start = h4.ends[s];
    }
    let w = (g - start) * WG_1D + t;
    let i = 2u * w;
    let n = h4.n[k];
    if (g >= h4.ends[3] || i >= n) {
        return;
    }
    let j = min(i + 1u, n - 1u); // x[i + 1], clamped inside the tensor
    let has_hi = i + 1u < n;
    switch k {
        case 0u: { h4_w0[w] = half_word(h4_x0[i], h4_x0[j], has_hi); }
        case 1u: { h4_w1[w] = half_word(h4_x1[i], h4_x1[j], has_hi); }
        case 2u: { h4_w2[w] = half_word(h4_x2[i], h4_x2[j], has_hi); }
        default: { h4_w3[w] = half_word(h4_x3[i], h4_x3[j], has_hi); }
    }
}

// ---- matmul -----------------------------------------------------------------------------

@group(0) @binding(1) var<storage, read> a_w: array<u32>;
@group(0) @binding(2) var<storage, read> b_w: array<u32>;
@group(0) @binding(3) var<storage, read_write> c_s: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// Slices of op(A) [TK, TM] and op(B) [TK, TN], widened to f32.
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;

// Half element `idx` of a packed buffer, widened.
fn half_a(idx: u32) -> f32 {
    let pair = unpack2x16float(a_w[idx >> 1u]);
    return select(pair.x, pair.y, (idx & 1u) == 1u);
}

fn half_b(idx: u32) -> f32 {
    let pair = unpack2x16float(b_w[idx >> 1u]);
    return select(pair.x, pair.y, (idx & 1u) == 1u);
}

// op(A)[i, p], 0 outside the matrix.
fn load_a(i: u32, p: u32) -> f32 {
    if (i >= P.m || p >= P.k) {
        return 0.0;
    }
    if (P.trans_a != 0u) {
        return half_a(p * P.m + i);
    }
    return half_a(i * P.k + p);
}

// op(B)[p, j], 0 outside the matrix.
fn load_b(p: u32, j: u32) -> f32 {
    if (p >= P.k || j >= P.n) {
        return 0.0;
    }
    if (P.trans_b != 0u) {
        return half_b(j * P.k + p);
    }
    return half_b(p * P.n + j);
}

// ---- f32 -> f16 rounding (f16_bits) and the fused epilogue (bindings 4, 5, 6, 7, alpha_times,
// store_half, epilogue, epilogue2, scale_inv, unscaled_by): shaders/include/epilogue_f16.wgsl,
// added by src/backend/gpu/kernels.rs ----

// Epilogue 5's tail: a workgroup past the product's blocks of `rows` rows of C sums the bias
// gradient, 32 columns of S each (the host sizes the grid for ceil(m / 32) of them). True for
// such a workgroup, which has done its part and returns; the arguments are uniform over it.
fn bias_grad_tail(block: u32, rows: u32, wid_x: u32, nwg_x: u32, lidx: u32) -> bool {
    if (block * rows < P.m) {
        return false;
    }
    let blocks = (P.m + rows - 1u) / rows;
    let cb = (block - blocks) * nwg_x + wid_x;
    if (P.epi == 5u && cb < (P.m + 31u) / 32u) {
        bias_grad_cols(cb, lidx);
    }
    return true;
}

@compute @workgroup_size(16, 16, 1)
fn matmul_f16(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let block = wid.y + wid.z * nwg.y;
    let row0 = block * TM;
    let col0 = wid.x * TN;
    if (bias_grad_tail(block, TM, wid.x, nwg.x, lidx)) {
        return; // the whole workgroup: uniform
    }
    // Invocation (tx, ty) owns rows ty + 16 r (r < 4) and the column pairs 2 tx, 2 tx + 1 and
    // 2 tx + 32, 2 tx + 33 of the tile (acc[r][c]: column 2 tx + (c & 1) + 32 (c >> 1)), so
    // that with n even the two halves of a word of the f16 copy are its own (epilogue2).
    let tx = lid.x;
    let ty = lid.y;
    var acc: array<vec4<f32>, 4>;
    for (var p0 = 0u; p0 < P.k; p0 = p0 + TK) {
        for (var t = 0u; t < 4u; t = t + 1u) {
            let e = lidx + 256u * t; // 0 .. 1023
            // Neighbouring invocations read neighbouring stored elements.
            var ia = e % TM;
            var pa = e / TM;
            if (P.trans_a == 0u) {
                ia = e / TK;
                pa = e % TK;
            }
            As[pa * TM + ia] = load_a(row0 + ia, p0 + pa);
            var jb = e % TN;
            var pb = e / TN;
            if (P.trans_b != 0u) {
                jb = e / TK;
                pb = e % TK;
            }
            Bs[pb * TN + jb] = load_b(p0 + pb, col0 + jb);
        }
        workgroupBarrier();
        for (var p = 0u; p < TK; p = p + 1u) {
            let bo = p * TN + 2u * tx;
            let bv = vec4<f32>(Bs[bo], Bs[bo + 1u], Bs[bo + 32u], Bs[bo + 33u]);
            let ao = p * TM + ty;
            acc[0] = fma(vec4<f32>(As[ao]), bv, acc[0]);
            acc[1] = fma(vec4<f32>(As[ao + 16u]), bv, acc[1]);
            acc[2] = fma(vec4<f32>(As[ao + 32u]), bv, acc[2]);
            acc[3] = fma(vec4<f32>(As[ao + 48u]), bv, acc[3]);
        }
        workgroupBarrier();
    }
    let inv = scale_inv();
    for (var r = 0u; r < 4u; r = r + 1u) {
        let i = row0 + ty + 16u * r;
        if (i >= P.m) {
            continue;
        }
        for (var h = 0u; h < 2u; h = h + 1u) {
            let j = col0 + 2u * tx + 32u * h;
            if (j >= P.n) {
                continue;
            }
            let idx = i * P.n + j;
            var v0 = alpha_times(acc[r][2u * h]);
            if (P.beta != 0.0) {
                v0 = v0 + P.beta * c_s[idx];
            }
            if (P.n % 2u == 0u) {
                // j is even and so is n: j + 1 < n, and idx is the first half of a word of H.
                var v1 = alpha_times(acc[r][2u * h + 1u]);
                if (P.beta != 0.0) {
                    v1 = v1 + P.beta * c_s[idx + 1u];
                }
                let out = epilogue2(idx, j, vec2<f32>(v0, v1), inv);
                c_s[idx] = out.x;
                c_s[idx + 1u] = out.y;
            } else {
                // n odd: the words of H straddle invocations (in odd rows every pair starts at
                // an odd element), rows and column blocks: each half by store_half.
                c_s[idx] = epilogue(idx, j, v0);
                if (j + 1u < P.n) {
                    var v1 = alpha_times(acc[r][2u * h + 1u]);
                    if (P.beta != 0.0) {
                        v1 = v1 + P.beta * c_s[idx + 1u];
                    }
                    c_s[idx + 1u] = epilogue(idx + 1u, j + 1u, v1);
                }
            }
        }
    }
    bias_grad_block(row0, TM, col0, lidx, 256u);
}

// ---- matmul_f16_skinny: a side of C too short for a tile --------------------------------
//
// The product and store of matmul_f16 (any shape, alpha, beta, every epilogue P.epi and
// P.half_out, P.unscale) for products with few rows or few columns of C, where a 64x64 tile (or
// a 16x16 cooperative one) would be mostly empty and the grid a handful of workgroups: the
// output layer's z [B, classes] = a · Wᵀ and its weight gradient [classes, in] = dzᵀ · a, and
// the products of a batch of a few examples (host: src/backend/gpu/matmul_f16/skinny.rs).
//
// A workgroup of WG_1D invocations owns SK_RM = 8 rows x cw = WG_1D / P.k_lanes columns of C.
// Column j's k is walked by P.k_lanes lanes (lane l sums p ≡ l mod k_lanes in order, f32 FMA
// of the widened halves); the lanes' sums are then added by a tree in workgroup memory (s =
// k_lanes / 2, ..., 1: a fixed order). Lanes are the fastest invocation index where B is
// stored [n, k] (trans_b: k contiguous), columns where it is stored [k, n], so neighbouring
// invocations read neighbouring halves. Rows past m repeat row m - 1 (a constant trip count
// keeps acc in registers) and are never stored. The store runs the epilogue element by element
// (epilogue(); store_half for the f16 copy, whose words may straddle workgroups); epilogue 4 by
// bias_grad_block in the first column block's workgroups; epilogue 5 by ceil(m / 32) col_sum
// workgroups in the row blocks past ceil(m / 8), x fastest, as in matmul_f16's grid.

const SK_RM: u32 = 8u;

// The invocations' partial sums per row of the block: [SK_RM, WG_1D].
var<workgroup> sk_part: array<f32, 2048>;

@compute @workgroup_size(WG_1D)
fn matmul_f16_skinny(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let block = wid.y + wid.z * nwg.y;
    let row0 = block * SK_RM;
    if (bias_grad_tail(block, SK_RM, wid.x, nwg.x, t)) {
        return; // the whole workgroup: uniform
    }
    let kl = P.k_lanes;
    let cw = WG_1D / kl;
    let tb = P.trans_b != 0u;
    // Invocation t: lane `lane` of column `cl`; the next lane is `lane_step` invocations on.
    var lane = t / cw;
    var cl = t % cw;
    var lane_step = cw;
    if (tb) {
        lane = t % kl;
        cl = t / kl;
        lane_step = 1u;
    }
    let col0 = wid.x * cw;
    let col = col0 + cl;
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    if (col < P.n) {
        // op(A)[r, p] at a_at[i] + p * a_step for the block's rows r (clamped to m - 1).
        var a_at = array<u32, 8>(0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
        var a_step = 1u;
        if (P.trans_a != 0u) {
            a_step = P.m;
        }
        for (var i = 0u; i < SK_RM; i++) {
            let r = min(row0 + i, P.m - 1u);
            a_at[i] = select(r * P.k, r, P.trans_a != 0u);
        }
        // op(B)[p, col] at b_at + p * b_step.
        var b_at = col;
        var b_step = P.n;
        if (tb) {
            b_at = col * P.k;
            b_step = 1u;
        }
        for (var p = lane; p < P.k; p += kl) {
            let bv = half_b(b_at + p * b_step);
            for (var i = 0u; i < SK_RM; i++) {
                acc[i] = fma(half_a(a_at[i] + p * a_step), bv, acc[i]);
            }
        }
    }
    for (var i = 0u; i < SK_RM; i++) {
        sk_part[i * WG_1D + t] = acc[i];
    }
    workgroupBarrier();
    // Lane l += lane l + s, s = kl / 2, ..., 1: lane 0 of each column ends with its sum.
    for (var s = kl / 2u; s > 0u; s = s >> 1u) {
        if (lane < s) {
            let other = t + s * lane_step;
            for (var i = 0u; i < SK_RM; i++) {
                sk_part[i * WG_1D + t] = sk_part[i * WG_1D + t] + sk_part[i * WG_1D + other];
            }
        }
        workgroupBarrier();
    }
    bias_grad_block(row0, SK_RM, col0, t, WG_1D);
    // Output (row i, column c) of the block: invocation t < SK_RM * cw (cw ≤ 32).
    if (t >= SK_RM * cw) {
        return;
    }
    let i = t / cw;
    let c = t % cw;
    let row = row0 + i;
    let oc = col0 + c;
    if (row >= P.m || oc >= P.n) {
        return;
    }
    let o = row * P.n + oc;
    var v = alpha_times(sk_part[i * WG_1D + select(c, c * kl, tb)]);
    if (P.beta != 0.0) {
        v = v + P.beta * c_s[o];
    }
    c_s[o] = epilogue(o, oc, v);
}

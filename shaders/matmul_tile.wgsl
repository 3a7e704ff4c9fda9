// matmul_tile.wgsl: the tiled matmul of matmul.wgsl, C[m,n] = alpha * op(A) * op(B) + beta * C,
// for one tile configuration of the autotuner's family. The host (src/backend/gpu/tile.rs)
// prepends the configuration as constants, after the prelude:
//   BM, BN   rows and columns of the C tile per workgroup (64 or 128)
//   BK       depth of one A/B slice (8 or 16); KQ = BK / 4 vec4s of k per slice row
//   BM4, BN4 = BM / 4, BN / 4
//   TX, TY   = BN / 8, BM / 8: the invocation grid; NT = TX * TY invocations per workgroup
//   SA, SB   = BK * BM / 4, BK * BN / 4: vec4s of one A and one B slice
//   LA, LB   = SA / NT, SB / NT: vec4s of A and of B each invocation loads per slice
//   SA2, SB2 = 2 * SA, 2 * SB: the double-buffered slices in workgroup memory
// and WG_TILE = NT for the entry points' `@workgroup_size`.
//
// Each invocation owns 8x8 outputs, exactly as in matmul.wgsl: rows ty*4 + r and BM/2 + ty*4 +
// r - 4 (r in 0..8), columns tx*4 .. +4 and BN/2 + tx*4 .. +4. Every output is one fma chain
// over p = k0, k0 + 1, .. in order (zero past k1), the same float operations as matmul.wgsl's
// tiled kernels for the same split plan. Slices are stored k-major and double-buffered:
// 2 * (SA + SB) * 16 bytes of workgroup memory (32 KiB for 128x128, BK = 16).
//
// Entry points: matmul_tiled (scalar loads, any shape and flags) and matmul_tiled_{nn,nt,tn,tt}4
// (vec4 loads; the host guarantees the contiguous dimension of each stored operand and n are
// multiples of 4). Grid and split-k as in matmul.wgsl.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    alpha: f32,
    beta: f32,
    splits: u32,
    kc: u32,
    // Fused epilogue of the store (see below): 0 none, 1 bias, 2 bias + φ, 3 · φ'(Z),
    // 4 bias gradient (shaders/include/epilogue*.wgsl).
    epi: u32,
    // φ of epilogues 2 and 3: 0 identity, 1 relu, 2 tanh (act.wgsl's codes).
    act: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

@group(0) @binding(1) var<storage, read> a_s: array<f32>;
@group(0) @binding(2) var<storage, read> b_s: array<f32>;
@group(0) @binding(3) var<storage, read_write> c_s: array<f32>;
@group(0) @binding(1) var<storage, read> a_v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b_v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c_v: array<vec4<f32>>;

// ---- fused epilogue: shaders/include/epilogue.wgsl (EPI, ACT, bindings 4 and 5,
// alpha_times, epilogue, epilogue4), added to this source by src/backend/gpu/kernels.rs ----

// [buffer][p][row/4] and [buffer][p][col/4].
var<workgroup> As: array<vec4<f32>, SA2>;
var<workgroup> Bs: array<vec4<f32>, SB2>;

struct Acc {
    c00: vec4<f32>, c01: vec4<f32>,
    c10: vec4<f32>, c11: vec4<f32>,
    c20: vec4<f32>, c21: vec4<f32>,
    c30: vec4<f32>, c31: vec4<f32>,
    c40: vec4<f32>, c41: vec4<f32>,
    c50: vec4<f32>, c51: vec4<f32>,
    c60: vec4<f32>, c61: vec4<f32>,
    c70: vec4<f32>, c71: vec4<f32>,
}

struct Tile {
    row0: u32,
    col0: u32,
    ok: bool,
    k0: u32,
    k1: u32,
    c_off: u32,
}

fn tile_of(wid: vec3<u32>, nwg: vec3<u32>) -> Tile {
    let splits = max(P.splits, 1u);
    let fold = max(nwg.z / splits, 1u);
    let s = wid.z / fold;
    let rb = wid.y + (wid.z % fold) * nwg.y;
    let row_blocks = (P.m + BM - 1u) / BM;
    let k0 = min(s * P.kc, P.k);
    let k1 = min(k0 + P.kc, P.k);
    return Tile(rb * BM, wid.x * BN, rb < row_blocks && s < splits, k0, k1, s * P.m * P.n);
}

// Slice vec4 u of A (u in 0..SA): A plain ([m,k]) is read along k as (row = u / KQ,
// p = 4 * (u % KQ)); A transposed ([k,m]) along rows as (p = u / BM4, row = 4 * (u % BM4)).
// B likewise with BN4 (B plain is read along columns, B transposed along k).
fn store_a(buf: u32, u: u32, ta: bool, v: vec4<f32>) {
    let base = buf * SA;
    if (ta) {
        As[base + u] = v;
    } else {
        let i = u / KQ;
        let o = base + (u % KQ) * 4u * BM4 + (i >> 2u);
        let c = i & 3u;
        As[o][c] = v.x;
        As[o + BM4][c] = v.y;
        As[o + 2u * BM4][c] = v.z;
        As[o + 3u * BM4][c] = v.w;
    }
}

fn store_b(buf: u32, u: u32, tb: bool, v: vec4<f32>) {
    let base = buf * SB;
    if (!tb) {
        Bs[base + u] = v;
    } else {
        let j = u / KQ;
        let o = base + (u % KQ) * 4u * BN4 + (j >> 2u);
        let c = j & 3u;
        Bs[o][c] = v.x;
        Bs[o + BN4][c] = v.y;
        Bs[o + 2u * BN4][c] = v.z;
        Bs[o + 3u * BN4][c] = v.w;
    }
}

// Element `idx` of A (of B) if `ok`, else 0 (index 0 is read instead: branch-free).
fn ld_a(idx: u32, ok: bool) -> f32 {
    return select(0.0, a_s[select(0u, idx, ok)], ok);
}

fn ld_b(idx: u32, ok: bool) -> f32 {
    return select(0.0, b_s[select(0u, idx, ok)], ok);
}

// Slice vec4 u of A for depths from k0 (bounded by k1), by scalar loads (any shape).
fn load_a_s(row0: u32, k0: u32, k1: u32, u: u32, ta: bool) -> vec4<f32> {
    if (ta) {
        let p = k0 + u / BM4;
        let i = row0 + (u % BM4) * 4u;
        let o = p * P.m + i;
        let ok = p < k1;
        return vec4(
            ld_a(o, ok && i < P.m),
            ld_a(o + 1u, ok && i + 1u < P.m),
            ld_a(o + 2u, ok && i + 2u < P.m),
            ld_a(o + 3u, ok && i + 3u < P.m),
        );
    }
    let i = row0 + u / KQ;
    let p = k0 + (u % KQ) * 4u;
    let o = i * P.k + p;
    let ok = i < P.m;
    return vec4(
        ld_a(o, ok && p < k1),
        ld_a(o + 1u, ok && p + 1u < k1),
        ld_a(o + 2u, ok && p + 2u < k1),
        ld_a(o + 3u, ok && p + 3u < k1),
    );
}

fn load_b_s(col0: u32, k0: u32, k1: u32, u: u32, tb: bool) -> vec4<f32> {
    if (!tb) {
        let p = k0 + u / BN4;
        let j = col0 + (u % BN4) * 4u;
        let o = p * P.n + j;
        let ok = p < k1;
        return vec4(
            ld_b(o, ok && j < P.n),
            ld_b(o + 1u, ok && j + 1u < P.n),
            ld_b(o + 2u, ok && j + 2u < P.n),
            ld_b(o + 3u, ok && j + 3u < P.n),
        );
    }
    let j = col0 + u / KQ;
    let p = k0 + (u % KQ) * 4u;
    let o = j * P.k + p;
    let ok = j < P.n;
    return vec4(
        ld_b(o, ok && p < k1),
        ld_b(o + 1u, ok && p + 1u < k1),
        ld_b(o + 2u, ok && p + 2u < k1),
        ld_b(o + 3u, ok && p + 3u < k1),
    );
}

// The same by one vec4 load (aligned operands: a vec4 is wholly inside or outside).
fn load_a_v(row0: u32, k0: u32, k1: u32, u: u32, ta: bool) -> vec4<f32> {
    if (ta) {
        let p = k0 + u / BM4;
        let i = row0 + (u % BM4) * 4u;
        if (p < k1 && i < P.m) {
            return a_v[(p * P.m + i) >> 2u];
        }
    } else {
        let i = row0 + u / KQ;
        let p = k0 + (u % KQ) * 4u;
        if (i < P.m && p < k1) {
            return a_v[(i * P.k + p) >> 2u];
        }
    }
    return vec4(0.0);
}

fn load_b_v(col0: u32, k0: u32, k1: u32, u: u32, tb: bool) -> vec4<f32> {
    if (!tb) {
        let p = k0 + u / BN4;
        let j = col0 + (u % BN4) * 4u;
        if (p < k1 && j < P.n) {
            return b_v[(p * P.n + j) >> 2u];
        }
    } else {
        let j = col0 + u / KQ;
        let p = k0 + (u % KQ) * 4u;
        if (j < P.n && p < k1) {
            return b_v[(j * P.k + p) >> 2u];
        }
    }
    return vec4(0.0);
}

// acc += A[p] x B[p] for one depth of a slice; `oa`, `ob`: vec4 offsets of row p of the slices.
fn mma_step(oa: u32, ob: u32, tx: u32, ty: u32, acc_in: Acc) -> Acc {
    var s = acc_in;
    let a0 = As[oa + ty];
    let a1 = As[oa + TY + ty];
    let b0 = Bs[ob + tx];
    let b1 = Bs[ob + TX + tx];
    s.c00 = fma(vec4(a0.x), b0, s.c00);
    s.c01 = fma(vec4(a0.x), b1, s.c01);
    s.c10 = fma(vec4(a0.y), b0, s.c10);
    s.c11 = fma(vec4(a0.y), b1, s.c11);
    s.c20 = fma(vec4(a0.z), b0, s.c20);
    s.c21 = fma(vec4(a0.z), b1, s.c21);
    s.c30 = fma(vec4(a0.w), b0, s.c30);
    s.c31 = fma(vec4(a0.w), b1, s.c31);
    s.c40 = fma(vec4(a1.x), b0, s.c40);
    s.c41 = fma(vec4(a1.x), b1, s.c41);
    s.c50 = fma(vec4(a1.y), b0, s.c50);
    s.c51 = fma(vec4(a1.y), b1, s.c51);
    s.c60 = fma(vec4(a1.z), b0, s.c60);
    s.c61 = fma(vec4(a1.z), b1, s.c61);
    s.c70 = fma(vec4(a1.w), b0, s.c70);
    s.c71 = fma(vec4(a1.w), b1, s.c71);
    return s;
}

fn mma_slice(buf: u32, tx: u32, ty: u32, acc: Acc) -> Acc {
    var s = acc;
    for (var p = 0u; p < BK; p++) {
        s = mma_step(buf * SA + p * BM4, buf * SB + p * BN4, tx, ty, s);
    }
    return s;
}

fn zero_acc() -> Acc {
    let z = vec4(0.0);
    return Acc(z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z);
}

fn acc_row(ty: u32, r: u32) -> u32 {
    return select(BM / 2u + ty * 4u + r - 4u, ty * 4u + r, r < 4u);
}

fn put_c(o: u32, col: u32, x: f32) {
    if (col < P.n) {
        var y = alpha_times(x);
        if (P.beta != 0.0) {
            y = fma(P.beta, c_s[o], y);
        }
        c_s[o] = epilogue(o, col, y);
    }
}

// C[row, col .. col+4] = alpha * v + beta * C, scalar stores (columns past n skipped).
fn write_c_s(c_off: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row < P.m) {
        let o = c_off + row * P.n + col;
        put_c(o, col, v.x);
        put_c(o + 1u, col + 1u, v.y);
        put_c(o + 2u, col + 2u, v.z);
        put_c(o + 3u, col + 3u, v.w);
    }
}

// The same by one vec4 store (n is a multiple of 4).
fn write_c_v(c_off: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row < P.m && col < P.n) {
        let e = c_off + row * P.n + col;
        let o = e >> 2u;
        var x = alpha_times4(v);
        if (P.beta != 0.0) {
            x = fma(vec4(P.beta), c_v[o], x);
        }
        c_v[o] = epilogue4(e, col, x);
    }
}

// Scalar loads and stores: any shape, transposes from the parameter block.
fn tiled_s(t: u32, wid: vec3<u32>, nwg: vec3<u32>, ta: bool, tb: bool) {
    let tile = tile_of(wid, nwg);
    if (!tile.ok) {
        return;
    }
    let tx = t % TX;
    let ty = t / TX;
    let slices = (tile.k1 - tile.k0 + BK - 1u) / BK;

    var acc = zero_acc();
    var lanes: array<f32, 8>; // epilogue 5's column sums (include/epilogue.wgsl)
    var ra: array<vec4<f32>, LA>;
    var rb: array<vec4<f32>, LB>;
    for (var i = 0u; i < LA; i++) {
        store_a(0u, t + i * NT, ta, load_a_s(tile.row0, tile.k0, tile.k1, t + i * NT, ta));
    }
    for (var i = 0u; i < LB; i++) {
        store_b(0u, t + i * NT, tb, load_b_s(tile.col0, tile.k0, tile.k1, t + i * NT, tb));
    }
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let cur = s & 1u;
        let more = s + 1u < slices;
        let kn = tile.k0 + (s + 1u) * BK;
        if (more) {
            // Prefetch the next slice into registers while this one is multiplied.
            for (var i = 0u; i < LA; i++) {
                ra[i] = load_a_s(tile.row0, kn, tile.k1, t + i * NT, ta);
            }
            for (var i = 0u; i < LB; i++) {
                rb[i] = load_b_s(tile.col0, kn, tile.k1, t + i * NT, tb);
            }
        }
        acc = mma_slice(cur, tx, ty, acc);
        lanes = bias_lanes_add(lanes, cur, t, tile.col0);
        if (more) {
            for (var i = 0u; i < LA; i++) {
                store_a(1u - cur, t + i * NT, ta, ra[i]);
            }
            for (var i = 0u; i < LB; i++) {
                store_b(1u - cur, t + i * NT, tb, rb[i]);
            }
        }
        workgroupBarrier();
    }

    let r0 = tile.row0;
    let c0 = tile.col0 + tx * 4u;
    let c1 = c0 + BN / 2u;
    let o = tile.c_off;
    write_c_s(o, r0 + acc_row(ty, 0u), c0, acc.c00);
    write_c_s(o, r0 + acc_row(ty, 0u), c1, acc.c01);
    write_c_s(o, r0 + acc_row(ty, 1u), c0, acc.c10);
    write_c_s(o, r0 + acc_row(ty, 1u), c1, acc.c11);
    write_c_s(o, r0 + acc_row(ty, 2u), c0, acc.c20);
    write_c_s(o, r0 + acc_row(ty, 2u), c1, acc.c21);
    write_c_s(o, r0 + acc_row(ty, 3u), c0, acc.c30);
    write_c_s(o, r0 + acc_row(ty, 3u), c1, acc.c31);
    write_c_s(o, r0 + acc_row(ty, 4u), c0, acc.c40);
    write_c_s(o, r0 + acc_row(ty, 4u), c1, acc.c41);
    write_c_s(o, r0 + acc_row(ty, 5u), c0, acc.c50);
    write_c_s(o, r0 + acc_row(ty, 5u), c1, acc.c51);
    write_c_s(o, r0 + acc_row(ty, 6u), c0, acc.c60);
    write_c_s(o, r0 + acc_row(ty, 6u), c1, acc.c61);
    write_c_s(o, r0 + acc_row(ty, 7u), c0, acc.c70);
    write_c_s(o, r0 + acc_row(ty, 7u), c1, acc.c71);
    bias_grad_block(tile.row0, BM, tile.col0, t, NT);
    bias_lanes_store(tile.row0, tile.col0, t, lanes);
}

// vec4 loads and stores: aligned operands (see the header), transposes per entry point.
fn tiled_v(t: u32, wid: vec3<u32>, nwg: vec3<u32>, ta: bool, tb: bool) {
    let tile = tile_of(wid, nwg);
    if (!tile.ok) {
        return;
    }
    let tx = t % TX;
    let ty = t / TX;
    let slices = (tile.k1 - tile.k0 + BK - 1u) / BK;

    var acc = zero_acc();
    var lanes: array<f32, 8>; // epilogue 5's column sums (include/epilogue.wgsl)
    var ra: array<vec4<f32>, LA>;
    var rb: array<vec4<f32>, LB>;
    for (var i = 0u; i < LA; i++) {
        store_a(0u, t + i * NT, ta, load_a_v(tile.row0, tile.k0, tile.k1, t + i * NT, ta));
    }
    for (var i = 0u; i < LB; i++) {
        store_b(0u, t + i * NT, tb, load_b_v(tile.col0, tile.k0, tile.k1, t + i * NT, tb));
    }
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let cur = s & 1u;
        let more = s + 1u < slices;
        let kn = tile.k0 + (s + 1u) * BK;
        if (more) {
            // Prefetch the next slice into registers while this one is multiplied.
            for (var i = 0u; i < LA; i++) {
                ra[i] = load_a_v(tile.row0, kn, tile.k1, t + i * NT, ta);
            }
            for (var i = 0u; i < LB; i++) {
                rb[i] = load_b_v(tile.col0, kn, tile.k1, t + i * NT, tb);
            }
        }
        acc = mma_slice(cur, tx, ty, acc);
        lanes = bias_lanes_add(lanes, cur, t, tile.col0);
        if (more) {
            for (var i = 0u; i < LA; i++) {
                store_a(1u - cur, t + i * NT, ta, ra[i]);
            }
            for (var i = 0u; i < LB; i++) {
                store_b(1u - cur, t + i * NT, tb, rb[i]);
            }
        }
        workgroupBarrier();
    }

    let r0 = tile.row0;
    let c0 = tile.col0 + tx * 4u;
    let c1 = c0 + BN / 2u;
    let o = tile.c_off;
    write_c_v(o, r0 + acc_row(ty, 0u), c0, acc.c00);
    write_c_v(o, r0 + acc_row(ty, 0u), c1, acc.c01);
    write_c_v(o, r0 + acc_row(ty, 1u), c0, acc.c10);
    write_c_v(o, r0 + acc_row(ty, 1u), c1, acc.c11);
    write_c_v(o, r0 + acc_row(ty, 2u), c0, acc.c20);
    write_c_v(o, r0 + acc_row(ty, 2u), c1, acc.c21);
    write_c_v(o, r0 + acc_row(ty, 3u), c0, acc.c30);
    write_c_v(o, r0 + acc_row(ty, 3u), c1, acc.c31);
    write_c_v(o, r0 + acc_row(ty, 4u), c0, acc.c40);
    write_c_v(o, r0 + acc_row(ty, 4u), c1, acc.c41);
    write_c_v(o, r0 + acc_row(ty, 5u), c0, acc.c50);
    write_c_v(o, r0 + acc_row(ty, 5u), c1, acc.c51);
    write_c_v(o, r0 + acc_row(ty, 6u), c0, acc.c60);
    write_c_v(o, r0 + acc_row(ty, 6u), c1, acc.c61);
    write_c_v(o, r0 + acc_row(ty, 7u), c0, acc.c70);
    write_c_v(o, r0 + acc_row(ty, 7u), c1, acc.c71);
    bias_grad_block(tile.row0, BM, tile.col0, t, NT);
    bias_lanes_store(tile.row0, tile.col0, t, lanes);
}

@compute @workgroup_size(WG_TILE, 1, 1)
fn matmul_tiled(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_s(t, wid, nwg, P.trans_a != 0u, P.trans_b != 0u);
}

@compute @workgroup_size(WG_TILE, 1, 1)
fn matmul_tiled_nn4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_v(t, wid, nwg, false, false);
}

@compute @workgroup_size(WG_TILE, 1, 1)
fn matmul_tiled_nt4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_v(t, wid, nwg, false, true);
}

@compute @workgroup_size(WG_TILE, 1, 1)
fn matmul_tiled_tn4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_v(t, wid, nwg, true, false);
}

@compute @workgroup_size(WG_TILE, 1, 1)
fn matmul_tiled_tt4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_v(t, wid, nwg, true, true);
}

// matmul.wgsl: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]
//
// A is stored [m,k] row-major, or [k,m] when trans_a; B is stored [k,n], or [n,k] when trans_b;
// C is [m,n]. With beta == 0 the old C is never read (NaN in C does not propagate).
//
// Entry points (the host picks one, see src/backend/gpu/matmul.rs):
// - matmul_naive: one invocation per C element, 16x16 workgroups; any shape, any flags.
// - matmul_tiled: 128x128 C tile per 256-invocation workgroup, 8x8 outputs per invocation,
//   BK = 8 slices of A and B double-buffered in workgroup memory (16 KiB); scalar global loads,
//   so any shape and any flags (read from the parameter block).
// - matmul_tiled_{nn,nt,tn,tt}4: the same tiling with vec4 global loads and stores; the
//   transposes are fixed per entry point and the host guarantees that the contiguous dimension
//   of each stored operand is a multiple of 4 and that n is a multiple of 4.
//
// - matmul_splitk_reduce: C = sum_s Partial[s] + beta * C in a fixed order (after split-k).
// - matmul_skinny{8,4,1}: few rows of C (the small-batch products); 8, 4 or 1 rows x a block
//   of columns per workgroup, k walked by several lanes per column and summed in a fixed order (see below).
//
// Grids: x walks column blocks, y (+ z * num_workgroups.y when the row blocks exceed the
// per-dimension limit) walks row blocks; whole workgroups past the last row block return. With
// split-k the z dimension is `splits` times the row fold: z = s * fold + zr.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    alpha: f32,
    beta: f32,
    // Split-k (tiled kernels): z holds `splits` groups of row-block folds; group s covers depths
    // [s * kc, min(k, (s + 1) * kc)) and writes alpha * partial to C + s * m * n (the host binds
    // a scratch buffer as C and passes beta = 0). splits = 1, kc = k: the plain product.
    splits: u32,
    kc: u32,
    // Fused epilogue of the store (see below): 0 none, 1 bias, 2 bias + φ, 3 · φ'(Z), 4 bias
    // gradient.
    epi: u32,
    // φ of epilogues 2 and 3: 0 identity, 1 relu, 2 tanh (act.wgsl's codes).
    act: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// Scalar views (naive and generic tiled kernels).
@group(0) @binding(1) var<storage, read> a_s: array<f32>;
@group(0) @binding(2) var<storage, read> b_s: array<f32>;
@group(0) @binding(3) var<storage, read_write> c_s: array<f32>;
// vec4 views of the same bindings (the *4 kernels; no entry point uses both views).
// Buffers are allocated in multiples of 16 bytes, so the vec4 view always fits.
@group(0) @binding(1) var<storage, read> a_v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b_v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c_v: array<vec4<f32>>;

// ---- fused epilogue: shaders/include/epilogue.wgsl (EPI, ACT, bindings 4 and 5,
// alpha_times, epilogue, epilogue4), added to this source by src/backend/gpu/kernels.rs ----

// ---- naive ------------------------------------------------------------------------------

const NAIVE_WG: u32 = 16u;

@compute @workgroup_size(16, 16, 1)
fn matmul_naive(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = (wid.y + wid.z * nwg.y) * NAIVE_WG + lid.y; // row of C
    let j = wid.x * NAIVE_WG + lid.x; // column of C
    if (i >= P.m || j >= P.n) {
        return;
    }
    // op(A)[i,p] = A[i*k + p] or A[p*m + i]; op(B)[p,j] = B[p*n + j] or B[j*k + p].
    var a_idx = i * P.k;
    var a_step = 1u;
    if (P.trans_a != 0u) {
        a_idx = i;
        a_step = P.m;
    }
    var b_idx = j;
    var b_step = P.n;
    if (P.trans_b != 0u) {
        b_idx = j * P.k;
        b_step = 1u;
    }
    var acc = 0.0;
    for (var p = 0u; p < P.k; p++) {
        acc = fma(a_s[a_idx], b_s[b_idx], acc);
        a_idx += a_step;
        b_idx += b_step;
    }
    let o = i * P.n + j;
    var v = P.alpha * acc;
    if (P.beta != 0.0) {
        v = fma(P.beta, c_s[o], v);
    }
    c_s[o] = v;
}

// ---- tiled ------------------------------------------------------------------------------

const BM: u32 = 128u; // rows of the C tile
const BN: u32 = 128u; // columns of the C tile
const BK: u32 = 8u; // depth of one A/B slice
const BM4: u32 = 32u; // BM / 4
const SLICE4: u32 = 256u; // BK * BM / 4 = BK * BN / 4: vec4s of one slice
const SA: u32 = SLICE4; // as matmul_tile.wgsl names it (include/epilogue.wgsl reads As by it)

// Slices stored k-major, [buffer][p][row/4] and [buffer][p][col/4], so that one invocation
// reads its 4+4 rows (and columns) of step p as two vec4s; 2 * 2 * 8 KiB = 16 KiB.
var<workgroup> As: array<vec4<f32>, 512>;
var<workgroup> Bs: array<vec4<f32>, 512>;

// 8x8 accumulator of one invocation: row r in 0..8 (rows ty*4 + r, then 64 + ty*4 + r - 4),
// halves h = 0, 1 (columns tx*4 .. +4 and 64 + tx*4 .. +4). Named fields stay in registers.
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

// The tile this workgroup owns, or ok == false for a padding workgroup past the last row block;
// its depth range [k0, k1) and the element offset of its output (split-k partial s at s*m*n).
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

// One invocation's share of a slice load: A slice [BM rows][BK], B slice [BK][BN cols], 256
// vec4s each. k-contiguous operands (A plain, B transposed) are read as (row = t/2, p = 4*(t%2));
// row-contiguous ones (A transposed, B plain) as (p = t/32, row = 4*(t%32)).

// Store the A values loaded by invocation t into slice buffer `buf`.
fn store_a(buf: u32, t: u32, ta: bool, v: vec4<f32>) {
    let base = buf * SLICE4;
    if (ta) {
        As[base + t] = v; // [p = t/32][row4 = t%32]
    } else {
        let i = t >> 1u;
        let p4 = (t & 1u) * 4u;
        let o = base + p4 * BM4 + (i >> 2u);
        let c = i & 3u;
        As[o][c] = v.x;
        As[o + BM4][c] = v.y;
        As[o + 2u * BM4][c] = v.z;
        As[o + 3u * BM4][c] = v.w;
    }
}

fn store_b(buf: u32, t: u32, tb: bool, v: vec4<f32>) {
    let base = buf * SLICE4;
    if (!tb) {
        Bs[base + t] = v; // [p = t/32][col4 = t%32]
    } else {
        let j = t >> 1u;
        let p4 = (t & 1u) * 4u;
        let o = base + p4 * BM4 + (j >> 2u);
        let c = j & 3u;
        Bs[o][c] = v.x;
        Bs[o + BM4][c] = v.y;
        Bs[o + 2u * BM4][c] = v.z;
        Bs[o + 3u * BM4][c] = v.w;
    }
}

// acc += A[p] x B[p] for one depth p of a slice: rows a0 (4 rows), a1 (4 rows) times columns
// b0 (4 columns), b1 (4 columns); `o` is the vec4 offset of row p of the slice.
fn mma_step(o: u32, tx: u32, ty: u32, acc_in: Acc) -> Acc {
    var s = acc_in;
    let a0 = As[o + ty];
    let a1 = As[o + 16u + ty];
    let b0 = Bs[o + tx];
    let b1 = Bs[o + 16u + tx];
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

// acc += A_slice[buf] * B_slice[buf] for invocation (tx, ty); the BK = 8 steps are written out
// (constant offsets, no loop for the shader compiler to unroll or bound).
fn mma_slice(buf: u32, tx: u32, ty: u32, acc: Acc) -> Acc {
    let o = buf * SLICE4;
    var s = mma_step(o, tx, ty, acc);
    s = mma_step(o + BM4, tx, ty, s);
    s = mma_step(o + 2u * BM4, tx, ty, s);
    s = mma_step(o + 3u * BM4, tx, ty, s);
    s = mma_step(o + 4u * BM4, tx, ty, s);
    s = mma_step(o + 5u * BM4, tx, ty, s);
    s = mma_step(o + 6u * BM4, tx, ty, s);
    s = mma_step(o + 7u * BM4, tx, ty, s);
    return s;
}

fn zero_acc() -> Acc {
    let z = vec4(0.0);
    return Acc(z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z);
}

// Local row of accumulator row r for invocation row ty.
fn acc_row(ty: u32, r: u32) -> u32 {
    return select(64u + ty * 4u + r - 4u, ty * 4u + r, r < 4u);
}

// ---- generic tiled: scalar loads, runtime flags ------------------------------------------

// Element `idx` of A (of B) if `ok`, else 0; branch-free (index 0 is read instead, and every
// buffer holds at least 4 elements).
fn ld_a(idx: u32, ok: bool) -> f32 {
    return select(0.0, a_s[select(0u, idx, ok)], ok);
}

fn ld_b(idx: u32, ok: bool) -> f32 {
    return select(0.0, b_s[select(0u, idx, ok)], ok);
}

fn load_a_s(row0: u32, k0: u32, k1: u32, t: u32, ta: bool) -> vec4<f32> {
    if (ta) {
        // A stored [k,m]: rows i .. i+4 (i = row0 + 4*(t%32)) of depth p = k0 + t/32.
        let p = k0 + (t >> 5u);
        let i = row0 + (t & 31u) * 4u;
        let o = p * P.m + i;
        let ok = p < k1;
        return vec4(
            ld_a(o, ok && i < P.m),
            ld_a(o + 1u, ok && i + 1u < P.m),
            ld_a(o + 2u, ok && i + 2u < P.m),
            ld_a(o + 3u, ok && i + 3u < P.m),
        );
    }
    // A stored [m,k]: depths p .. p+4 (p = k0 + 4*(t%2)) of row i = row0 + t/2.
    let i = row0 + (t >> 1u);
    let p = k0 + (t & 1u) * 4u;
    let o = i * P.k + p;
    let ok = i < P.m;
    return vec4(
        ld_a(o, ok && p < k1),
        ld_a(o + 1u, ok && p + 1u < k1),
        ld_a(o + 2u, ok && p + 2u < k1),
        ld_a(o + 3u, ok && p + 3u < k1),
    );
}

fn load_b_s(col0: u32, k0: u32, k1: u32, t: u32, tb: bool) -> vec4<f32> {
    if (!tb) {
        // B stored [k,n]: columns j .. j+4 (j = col0 + 4*(t%32)) of depth p = k0 + t/32.
        let p = k0 + (t >> 5u);
        let j = col0 + (t & 31u) * 4u;
        let o = p * P.n + j;
        let ok = p < k1;
        return vec4(
            ld_b(o, ok && j < P.n),
            ld_b(o + 1u, ok && j + 1u < P.n),
            ld_b(o + 2u, ok && j + 2u < P.n),
            ld_b(o + 3u, ok && j + 3u < P.n),
        );
    }
    // B stored [n,k]: depths p .. p+4 (p = k0 + 4*(t%2)) of column j = col0 + t/2.
    let j = col0 + (t >> 1u);
    let p = k0 + (t & 1u) * 4u;
    let o = j * P.k + p;
    let ok = j < P.n;
    return vec4(
        ld_b(o, ok && p < k1),
        ld_b(o + 1u, ok && p + 1u < k1),
        ld_b(o + 2u, ok && p + 2u < k1),
        ld_b(o + 3u, ok && p + 3u < k1),
    );
}

// C[row, col] = alpha * x + beta * C[row, col] when col < n (row < m checked by the caller).
fn put_c(o: u32, col: u32, x: f32) {
    if (col < P.n) {
        var y = alpha_times(x);
        if (P.beta != 0.0) {
            y = fma(P.beta, c_s[o], y);
        }
        c_s[o] = epilogue(o, col, y);
    }
}

// C[row, col .. col+4] = alpha * v + beta * C (columns past n skipped).
fn write_c_s(c_off: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row < P.m) {
        let o = c_off + row * P.n + col;
        put_c(o, col, v.x);
        put_c(o + 1u, col + 1u, v.y);
        put_c(o + 2u, col + 2u, v.z);
        put_c(o + 3u, col + 3u, v.w);
    }
}

@compute @workgroup_size(256, 1, 1)
fn matmul_tiled(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let tile = tile_of(wid, nwg);
    if (!tile.ok) {
        return;
    }
    let ta = P.trans_a != 0u;
    let tb = P.trans_b != 0u;
    let tx = t & 15u;
    let ty = t >> 4u;
    let slices = (tile.k1 - tile.k0 + BK - 1u) / BK;

    var acc = zero_acc();
    var lanes: array<f32, 8>; // epilogue 5's column sums (include/epilogue.wgsl)
    var ra = load_a_s(tile.row0, tile.k0, tile.k1, t, ta);
    var rb = load_b_s(tile.col0, tile.k0, tile.k1, t, tb);
    store_a(0u, t, ta, ra);
    store_b(0u, t, tb, rb);
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let cur = s & 1u;
        let more = s + 1u < slices;
        if (more) {
            // Prefetch the next slice into registers while this one is multiplied.
            ra = load_a_s(tile.row0, tile.k0 + (s + 1u) * BK, tile.k1, t, ta);
            rb = load_b_s(tile.col0, tile.k0 + (s + 1u) * BK, tile.k1, t, tb);
        }
        acc = mma_slice(cur, tx, ty, acc);
        lanes = bias_lanes_add(lanes, cur, t, tile.col0);
        if (more) {
            store_a(1u - cur, t, ta, ra);
            store_b(1u - cur, t, tb, rb);
        }
        workgroupBarrier();
    }

    let r0 = tile.row0;
    let c0 = tile.col0 + tx * 4u;
    let c1 = c0 + 64u;
    write_c_s(tile.c_off, r0 + acc_row(ty, 0u), c0, acc.c00);
    write_c_s(tile.c_off, r0 + acc_row(ty, 0u), c1, acc.c01);
    write_c_s(tile.c_off, r0 + acc_row(ty, 1u), c0, acc.c10);
    write_c_s(tile.c_off, r0 + acc_row(ty, 1u), c1, acc.c11);
    write_c_s(tile.c_off, r0 + acc_row(ty, 2u), c0, acc.c20);
    write_c_s(tile.c_off, r0 + acc_row(ty, 2u), c1, acc.c21);
    write_c_s(tile.c_off, r0 + acc_row(ty, 3u), c0, acc.c30);
    write_c_s(tile.c_off, r0 + acc_row(ty, 3u), c1, acc.c31);
    write_c_s(tile.c_off, r0 + acc_row(ty, 4u), c0, acc.c40);
    write_c_s(tile.c_off, r0 + acc_row(ty, 4u), c1, acc.c41);
    write_c_s(tile.c_off, r0 + acc_row(ty, 5u), c0, acc.c50);
    write_c_s(tile.c_off, r0 + acc_row(ty, 5u), c1, acc.c51);
    write_c_s(tile.c_off, r0 + acc_row(ty, 6u), c0, acc.c60);
    write_c_s(tile.c_off, r0 + acc_row(ty, 6u), c1, acc.c61);
    write_c_s(tile.c_off, r0 + acc_row(ty, 7u), c0, acc.c70);
    write_c_s(tile.c_off, r0 + acc_row(ty, 7u), c1, acc.c71);
    bias_grad_block(tile.row0, BM, tile.col0, t, 256u);
    bias_lanes_store(tile.row0, tile.col0, t, lanes);
}

// ---- vec4 tiled: aligned operands, transposes fixed per entry point ----------------------
//
// Preconditions (checked on the host): the contiguous dimension of each stored operand is a
// multiple of 4 (k for A plain and B transposed, m for A transposed, n for B plain), and n is
// a multiple of 4 (C rows). Then a vec4 is either wholly inside a matrix or wholly outside.

fn load_a_v(row0: u32, k0: u32, k1: u32, t: u32, ta: bool) -> vec4<f32> {
    if (ta) {
        let p = k0 + (t >> 5u);
        let i = row0 + (t & 31u) * 4u;
        if (p < k1 && i < P.m) {
            return a_v[(p * P.m + i) >> 2u];
        }
    } else {
        let i = row0 + (t >> 1u);
        let p = k0 + (t & 1u) * 4u;
        if (i < P.m && p < k1) {
            return a_v[(i * P.k + p) >> 2u];
        }
    }
    return vec4(0.0);
}

fn load_b_v(col0: u32, k0: u32, k1: u32, t: u32, tb: bool) -> vec4<f32> {
    if (!tb) {
        let p = k0 + (t >> 5u);
        let j = col0 + (t & 31u) * 4u;
        if (p < k1 && j < P.n) {
            return b_v[(p * P.n + j) >> 2u];
        }
    } else {
        let j = col0 + (t >> 1u);
        let p = k0 + (t & 1u) * 4u;
        if (j < P.n && p < k1) {
            return b_v[(j * P.k + p) >> 2u];
        }
    }
    return vec4(0.0);
}

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

fn tiled_v4(t: u32, wid: vec3<u32>, nwg: vec3<u32>, ta: bool, tb: bool) {
    let tile = tile_of(wid, nwg);
    if (!tile.ok) {
        return;
    }
    let tx = t & 15u;
    let ty = t >> 4u;
    let slices = (tile.k1 - tile.k0 + BK - 1u) / BK;

    var acc = zero_acc();
    var lanes: array<f32, 8>; // epilogue 5's column sums (include/epilogue.wgsl)
    var ra = load_a_v(tile.row0, tile.k0, tile.k1, t, ta);
    var rb = load_b_v(tile.col0, tile.k0, tile.k1, t, tb);
    store_a(0u, t, ta, ra);
    store_b(0u, t, tb, rb);
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let cur = s & 1u;
        let more = s + 1u < slices;
        if (more) {
            ra = load_a_v(tile.row0, tile.k0 + (s + 1u) * BK, tile.k1, t, ta);
            rb = load_b_v(tile.col0, tile.k0 + (s + 1u) * BK, tile.k1, t, tb);
        }
        acc = mma_slice(cur, tx, ty, acc);
        lanes = bias_lanes_add(lanes, cur, t, tile.col0);
        if (more) {
            store_a(1u - cur, t, ta, ra);
            store_b(1u - cur, t, tb, rb);
        }
        workgroupBarrier();
    }

    let r0 = tile.row0;
    let c0 = tile.col0 + tx * 4u;
    let c1 = c0 + 64u;
    write_c_v(tile.c_off, r0 + acc_row(ty, 0u), c0, acc.c00);
    write_c_v(tile.c_off, r0 + acc_row(ty, 0u), c1, acc.c01);
    write_c_v(tile.c_off, r0 + acc_row(ty, 1u), c0, acc.c10);
    write_c_v(tile.c_off, r0 + acc_row(ty, 1u), c1, acc.c11);
    write_c_v(tile.c_off, r0 + acc_row(ty, 2u), c0, acc.c20);
    write_c_v(tile.c_off, r0 + acc_row(ty, 2u), c1, acc.c21);
    write_c_v(tile.c_off, r0 + acc_row(ty, 3u), c0, acc.c30);
    write_c_v(tile.c_off, r0 + acc_row(ty, 3u), c1, acc.c31);
    write_c_v(tile.c_off, r0 + acc_row(ty, 4u), c0, acc.c40);
    write_c_v(tile.c_off, r0 + acc_row(ty, 4u), c1, acc.c41);
    write_c_v(tile.c_off, r0 + acc_row(ty, 5u), c0, acc.c50);
    write_c_v(tile.c_off, r0 + acc_row(ty, 5u), c1, acc.c51);
    write_c_v(tile.c_off, r0 + acc_row(ty, 6u), c0, acc.c60);
    write_c_v(tile.c_off, r0 + acc_row(ty, 6u), c1, acc.c61);
    write_c_v(tile.c_off, r0 + acc_row(ty, 7u), c0, acc.c70);
    write_c_v(tile.c_off, r0 + acc_row(ty, 7u), c1, acc.c71);
    bias_grad_block(tile.row0, BM, tile.col0, t, 256u);
    bias_lanes_store(tile.row0, tile.col0, t, lanes);
}

@compute @workgroup_size(256, 1, 1)
fn matmul_tiled_nn4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_v4(t, wid, nwg, false, false);
}

@compute @workgroup_size(256, 1, 1)
fn matmul_tiled_nt4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_v4(t, wid, nwg, false, true);
}

@compute @workgroup_size(256, 1, 1)
fn matmul_tiled_tn4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_v4(t, wid, nwg, true, false);
}

@compute @workgroup_size(256, 1, 1)
fn matmul_tiled_tt4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    tiled_v4(t, wid, nwg, true, true);
}

// ---- split-k reduction ------------------------------------------------------------------

// Bindings: 1 = partials [splits, m, n] (the a_s view), 2 = C [m, n], then the epilogue's
// input (3: bias [n] or Z [m, n]) and output (4: Y [m, n]), as bindings 4 and 5 of the others.
@group(0) @binding(2) var<storage, read_write> c_r: array<f32>;
@group(0) @binding(3) var<storage, read> r_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> r_out: array<f32>;

// epilogue() over the reduce's bindings. The bias-gradient epilogue 4 leaves C as summed and
// puts col_sum into the same dispatch: workgroups past the reduce's sum G (splitk_col_sum).
fn reduce_epilogue(o: u32, col: u32, v: f32) -> f32 {
    switch EPI {
        case 1u: { return v + r_in[col]; }
        case 2u: {
            let z = v + r_in[col];
            r_out[o] = epi_phi(z, ACT);
            return z;
        }
        case 3u: { return epi_dgrad(v, r_in[o], ACT); }
        default: { return v; }
    }
}

// reduce.wgsl's col_sum of S = r_in [k, m] into G = r_out [m] (alpha 1, beta 0) for columns
// 32 cb .. 32 cb + 32, with its float operations in its order: invocation t is column t % 32
// and row lane t / 32 (lane l sums rows ≡ l (mod 8) in order from 0), then the tree 4, 2, 1 in
// workgroup memory (include/col_tree.wgsl). Called by every invocation of the workgroup (it has
// barriers).
fn splitk_col_sum(cb: u32, t: u32) {
    let c = cb * 32u + t % 32u;
    let lane = t / 32u;
    var acc = 0.0;
    if (c < P.m) {
        for (var r = lane; r < P.k; r = r + 8u) {
            acc = acc + r_in[r * P.m + c];
        }
    }
    let total = col_tree_sum(t, acc);
    if (lane == 0u && c < P.m) {
        r_out[c] = total;
    }
}

// C[o] = sum over s = 0, 1, .. of Partial[s, o] (fixed order: deterministic) + beta * C[o],
// then the epilogue; beta == 0 never reads C. One invocation per element, the workgroups in a
// 1-D grid folded into y; with epilogue 4, ceil(m / 32) more workgroups after the
// ceil(m n / WG_1D) of the sum run splitk_col_sum (the host sizes the grid for both).
@compute @workgroup_size(WG_1D, 1, 1)
fn matmul_splitk_reduce(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let mn = P.m * P.n;
    let group = wid.x + wid.y * nwg.x;
    let sum_groups = (mn + WG_1D - 1u) / WG_1D;
    if (EPI == 4u && group >= sum_groups) {
        splitk_col_sum(group - sum_groups, t); // uniform over the workgroup
        return;
    }
    let o = group * WG_1D + t;
    if (o >= mn) {
        return;
    }
    var acc = a_s[o];
    var idx = o;
    for (var s = 1u; s < P.splits; s++) {
        idx += mn;
        acc += a_s[idx];
    }
    if (P.beta != 0.0) {
        acc = fma(P.beta, c_r[o], acc);
    }
    c_r[o] = reduce_epilogue(o, o % P.n, acc);
}

// ---- skinny (small m) -------------------------------------------------------------------

// `rm` rows of C per workgroup (8, 4 or 1: entry points matmul_skinny{8,4,1}); the 256
// invocations are cw columns x kl k-lanes. With B stored [k,n] (row-contiguous) lanes run
// along columns: 32 columns x 8 k-lanes, invocation t = lane * 32 + column. With B stored
// [n,k] (trans_b, k-contiguous) lanes run along k: 8 columns x 32 k-lanes, t = column * 32 +
// lane. k-lane l accumulates depths l, l + kl, .. in order for each row; the kl partial sums
// of an output are then added in lane order 0, 1, .. kl-1. Every output's float operations
// are the same whatever rm is, so the entry points agree bit for bit, and the result does not
// depend on the device. Rows past m repeat row m-1 (loads stay in bounds, loops keep a
// constant trip count) and are never stored. Grid: x walks column blocks of cw, y (+ z fold)
// row blocks of rm.
var<workgroup> sk_red: array<f32, 2048>; // [rm rows][256 invocations]

fn skinny(t: u32, wid: vec3<u32>, nwg: vec3<u32>, rm: u32) {
    let tb = P.trans_b != 0u;
    let ta = P.trans_a != 0u;
    var kl_n = 8u; // k-lanes
    var cw = 32u; // columns per workgroup
    var lane = t / 32u;
    var cl = t % 32u;
    if (tb) {
        kl_n = 32u;
        cw = 8u;
        lane = t % 32u;
        cl = t / 32u;
    }
    let row0 = (wid.y + wid.z * nwg.y) * rm;
    let col = wid.x * cw + cl;
    var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    if (row0 < P.m && col < P.n) {
        // A row offsets (plain) or column indices (transposed) of this block's rows.
        var a_at = array<u32, 8>(0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
        var a_step = 1u;
        for (var i = 0u; i < rm; i++) {
            let r = min(row0 + i, P.m - 1u);
            if (ta) {
                a_at[i] = r;
            } else {
                a_at[i] = r * P.k;
            }
        }
        if (ta) {
            a_step = P.m;
        }
        var b_at = col;
        var b_step = P.n;
        if (tb) {
            b_at = col * P.k;
            b_step = 1u;
        }
        for (var p = lane; p < P.k; p += kl_n) {
            let bv = b_s[b_at + p * b_step];
            for (var i = 0u; i < rm; i++) {
                acc[i] = fma(a_s[a_at[i] + p * a_step], bv, acc[i]);
            }
        }
    }
    for (var i = 0u; i < rm; i++) {
        sk_red[i * 256u + t] = acc[i];
    }
    workgroupBarrier();
    bias_grad_block(row0, rm, wid.x * cw, t, 256u);
    // Output (row i, column c) of this workgroup: invocation t < rm * cw.
    if (t >= rm * cw) {
        return;
    }
    let i = t / cw;
    let c = t % cw;
    let row = row0 + i;
    let oc = wid.x * cw + c;
    if (row >= P.m || oc >= P.n) {
        return;
    }
    var sum = 0.0;
    for (var l = 0u; l < kl_n; l++) {
        var src = l * 32u + c;
        if (tb) {
            src = c * 32u + l;
        }
        sum += sk_red[i * 256u + src];
    }
    let o = row * P.n + oc;
    var v = alpha_times(sum);
    if (P.beta != 0.0) {
        v = fma(P.beta, c_s[o], v);
    }
    c_s[o] = epilogue(o, oc, v);
}

@compute @workgroup_size(256, 1, 1)
fn matmul_skinny8(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    skinny(t, wid, nwg, 8u);
}

@compute @workgroup_size(256, 1, 1)
fn matmul_skinny4(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    skinny(t, wid, nwg, 4u);
}

@compute @workgroup_size(256, 1, 1)
fn matmul_skinny1(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    skinny(t, wid, nwg, 1u);
}

// ---- ceiling: the tiled kernels' inner loop alone -----------------------------------------
//
// What the 128x128 kernels' inner loop (mma_slice: per depth two vec4 reads of A and two of B
// from workgroup memory, 64 FMAs) reaches on this device with no storage traffic: both slice
// buffers are filled once, As from a_v[0..512) and Bs from b_v[0..512); then mma_slice runs
// P.k times over buffer s & 1 with one barrier per slice, as in the kernels; invocation t of
// workgroup w stores the sum of its 16 accumulator vec4s at c_v[w * 256 + t]. The gap between
// this and the kernel's TFLOP/s is what the storage loads, slice stores and epilogue cost
// (src/backend/gpu/ceilings.rs; its CPU twin computes the same sums).
@compute @workgroup_size(256, 1, 1)
fn matmul_inner_ceiling(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    As[t] = a_v[t];
    As[t + 256u] = a_v[t + 256u];
    Bs[t] = b_v[t];
    Bs[t + 256u] = b_v[t + 256u];
    workgroupBarrier();
    let tx = t & 15u;
    let ty = t >> 4u;
    var acc = zero_acc();
    for (var s = 0u; s < P.k; s++) {
        acc = mma_slice(s & 1u, tx, ty, acc);
        workgroupBarrier();
    }
    let sum = acc.c00 + acc.c01 + acc.c10 + acc.c11 + acc.c20 + acc.c21 + acc.c30 + acc.c31
        + acc.c40 + acc.c41 + acc.c50 + acc.c51 + acc.c60 + acc.c61 + acc.c70 + acc.c71;
    c_v[(wid.x + wid.y * nwg.x) * 256u + t] = sum;
}

enable f16;
enable wgpu_cooperative_matrix;

// matmul_coop.wgsl: C[m,n] = op(A)[m,k] * op(B)[k,n] on cooperative matrices (tensor cores):
// TxT f16 tiles of A and B, f32 accumulators, f32 C.
//
// The host prepends the tile: the aliases TileA, TileB, Acc of coop_matTxT<f16, A>, <f16, B>,
// <f32, C>, the side T and the subgroup size SG (src/backend/gpu/coop_shape.rs): T = 16 on
// subgroups of 32 on GPUs (the H200), T = 8 on subgroups of 8 on Mesa's lavapipe, where CI
// runs these kernels (.ci/coop_lavapipe.sh); every length below is at T = 16.
// It also prepends the element the tile loads read, `Half` of `HW` halves: f16 (HW = 1),
// vec4<f16> (HW = 4, the `_v4` kernels) or vec4<f32> (HW = 8, the `_v8` kernels: 16 bytes, with
// TileA and TileB <f32> in the WGSL and retyped to f16 in the SPIR-V, src/backend/gpu/retype.rs);
// a quarter or an eighth of the load instructions where the driver goes by the pointer's
// element. Every tile origin and stride is a multiple of T, so of 8.
// Needs wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX and SHADER_F16 and an adapter whose
// cooperative_matrix_properties() list TxTxT f16 x f16 -> f32 (src/backend/gpu/matmul_coop.rs
// checks). The same packed half buffers as matmul_f16.wgsl are read here as `array<Half>` (the
// same bytes).
//
// Preconditions (the host checks): m, n, k multiples of T; alpha = 1, beta = 0 (C is
// overwritten). The store runs matmul_f16.wgsl's fused epilogue (P.epi, P.half_out; the same
// functions, copied below): the tiles are stored, then each element of the block is read back
// once and stored through epilogue2() (a column pair per invocation: whole words of the f16
// copy). Transposes are free: a row-major load (coopLoadT) of a stored [m,k] A is a
// column-major load (coopLoad) of a stored [k,m] one. The transpose pair is the module's: the
// host prepends TA and TB (A stored [k,m], B stored [n,k]; src/backend/gpu/matmul_coop.rs,
// `CoopModule`), so the layout branches of load_a and load_b fold away and every kernel here
// has one loop for all four pairs. (Constants, not parameters: naga's uniformity analysis takes
// a helper's argument for non-uniform, and cooperative loads must be in uniform control flow.)
//
// A workgroup is one subgroup of SG invocations (the host requires exactly SG) and owns a 32x32
// block of C: 2x2 tiles. Control flow may not depend on the workgroup id (naga's
// uniformity rules for cooperative ops), so there are no bounds branches: the grid is exactly
// ceil(m/32) x ceil(n/32) (no folding into z), and when m (or n) is an odd multiple of 16 the
// second tile row (column) of the last block is clamped onto its first one, which is then
// computed twice and stored twice with the same values.
//
// PREFETCH (a module constant the host prepends: BATCHSCOPE_COOP_PREFETCH=1, for A/B timing on
// a device) pipelines the 32x32 kernel's loop in registers: the next depth's four tiles are
// loaded before the current depth's four multiply-adds. The same multiply-adds in the same
// order: the same bits.

// struct Params: shaders/include/half_params.wgsl.

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<Half>;
@group(0) @binding(2) var<storage, read> b: array<Half>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// Bindings 4 (e_in), 5 (e_out), 6 (h_out), 7 (the loss scaler's state), f16_bits and the fused epilogue: shaders/include/epilogue_f16.wgsl.

// op(A) tile at rows i, depths p: A stored [m,k] (row-major) or, with TA, [k,m]. Offsets and
// strides in halves, divided by HW for the element.
fn load_a(i: u32, p: u32) -> TileA {
    if (TA) {
        return coopLoad<TileA>(&a[(p * P.m + i) / HW], P.m / HW);
    }
    return coopLoadT<TileA>(&a[(i * P.k + p) / HW], P.k / HW);
}
// op(B) tile at depths p, columns j: B stored [k,n] or, with TB, [n,k].
fn load_b(p: u32, j: u32) -> TileB {
    if (TB) {
        return coopLoad<TileB>(&b[(j * P.k + p) / HW], P.k / HW);
    }
    return coopLoadT<TileB>(&b[(p * P.n + j) / HW], P.n / HW);
}

fn store(acc: Acc, i: u32, j: u32) {
    // Every operand through a `let`: naga 30's WGSL front end emits the expressions written in
    // a cooperative store's arguments after the store statement, and its SPIR-V writer then
    // fails ("Expression is not cached"); bound first, they are emitted before it
    // (tests/shaders_validate.rs translates and validates every entry point).
    let stride = P.n;
    let dst = &c[i * P.n + j];
    coopStoreT(acc, dst, stride);
}

// ---- fused epilogue: a copy of matmul_f16.wgsl's (keep the two identical) ---------------


// After the block's tiles are stored: C = epilogue2(C) over the block's distinct elements (a
// clamped tile row or column, i1 == i0 or j1 == j0, is visited once). Invocation t walks the
// column pair p = t % T of the block (columns j0 + 2p, + 1 for p < T / 2, else j1 + 2 (p - T / 2),
// + 1: n is a multiple of T, so the pair's first element is even, one word of H) over the T
// rows of tile row t / T, in order (and of tile row 1 too where SG = T, at 8x8). The barrier is
// in uniform control flow (P is uniform).
fn finish(o: vec4<u32>, t: u32) {
    if (P.epi == 0u && P.half_out == 0u && P.unscale == 0u) {
        return;
    }
    // The block's rows are [i0, i0 + 2T) within m (i1 = i0 + T, or i0 when clamped); the bias
    // gradient reads dz only, and leaves C as stored unless C is unscaled too.
    bias_grad_block(o.x, 2u * T, o.z, t, SG);
    if (P.epi == 4u && P.half_out == 0u && P.unscale == 0u) {
        return;
    }
    storageBarrier();
    let p = t % T;
    let half = T / 2u;
    if (p >= half && o.w == o.z) {
        return;
    }
    let j = select(o.z + 2u * p, o.w + 2u * (p - half), p >= half);
    let inv = scale_inv();
    for (var u = t / T; u < 2u; u = u + SG / T) {
        if (u == 1u && o.y == o.x) {
            return;
        }
        let i = select(o.x, o.y, u == 1u);
        for (var r = 0u; r < T; r = r + 1u) {
            let idx = (i + r) * P.n + j;
            let out = epilogue2(idx, j, vec2<f32>(c[idx], c[idx + 1u]), inv);
            c[idx] = out.x;
            c[idx + 1u] = out.y;
        }
    }
}

// The block's tile origins: rows i0, i1 and columns j0, j1 (i1 == i0 on a clamped last block).
fn origins(wid: vec3<u32>) -> vec4<u32> {
    let i0 = wid.y * 2u * T;
    let j0 = wid.x * 2u * T;
    return vec4<u32>(i0, min(i0 + T, P.m - T), j0, min(j0 + T, P.n - T));
}

@compute @workgroup_size(SG, 1, 1)
fn matmul_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let o = origins(wid);
    var c00 = Acc();
    var c01 = Acc();
    var c10 = Acc();
    var c11 = Acc();
    if (PREFETCH) {
        // Depth p + T's tiles are loaded before depth p's multiply-adds, so that their loads
        // are in flight while the tensor cores work (the last depth loads itself again).
        var a0 = load_a(o.x, 0u);
        var a1 = load_a(o.y, 0u);
        var b0 = load_b(0u, o.z);
        var b1 = load_b(0u, o.w);
        for (var p = 0u; p < P.k; p = p + T) {
            let q = min(p + T, P.k - T);
            let na0 = load_a(o.x, q);
            let na1 = load_a(o.y, q);
            let nb0 = load_b(q, o.z);
            let nb1 = load_b(q, o.w);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            a0 = na0;
            a1 = na1;
            b0 = nb0;
            b1 = nb1;
        }
    } else {
        for (var p = 0u; p < P.k; p = p + T) {
            let a0 = load_a(o.x, p);
            let a1 = load_a(o.y, p);
            let b0 = load_b(p, o.z);
            let b1 = load_b(p, o.w);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
    }
    store(c00, o.x, o.z);
    store(c01, o.x, o.w);
    store(c10, o.y, o.z);
    store(c11, o.y, o.w);
    finish(o, t);
}

// ---- 64x64 blocks: matmul_coop64 --------------------------------------------------------------
// One subgroup owns a 64x64 block of C: 4x4 tiles, 16 accumulators. Per step of k each A tile
// meets 4 B tiles and each B tile 4 A tiles (2 each in the 32x32 kernel above): half the tile
// loads per multiply-add. Tile origins past m (or n) clamp onto the last tile, as above: such
// a tile is computed and stored again with the same values. The host picks this kernel for m
// and n of at least 64 (src/backend/gpu/matmul_f16.rs, `choose`).

// Origin of tile row r of the block at row i0 (of tile column q at column j0), clamped into C.
fn row64(i0: u32, r: u32) -> u32 {
    return min(i0 + T * r, P.m - T);
}
fn col64(j0: u32, q: u32) -> u32 {
    return min(j0 + T * q, P.n - T);
}

// finish() for a 64x64 block at (i0, j0): its distinct elements are rows [i0, min(i0 + 64, m))
// by columns [j0, min(j0 + 64, n)) (clamped tiles repeat the last tile's), each stored through
// epilogue2() once. Invocation t walks the column pairs j0 + 2q, j0 + 2q + 1 for q = t, t + SG,
// ... (one pair at 16x16: 2T pairs, SG = 2T; two at 8x8), rows in order: n is a multiple of T,
// so both columns are in C or neither, and the pair's first element is even (one word of H).
fn finish64(i0: u32, j0: u32, t: u32) {
    if (P.epi == 0u && P.half_out == 0u && P.unscale == 0u) {
        return;
    }
    bias_grad_block(i0, 4u * T, j0, t, SG);
    if (P.epi == 4u && P.half_out == 0u && P.unscale == 0u) {
        return;
    }
    storageBarrier();
    let rows = min(4u * T, P.m - i0);
    let cols = min(4u * T, P.n - j0);
    let inv = scale_inv();
    for (var q = t; 2u * q < cols; q = q + SG) {
        let j = j0 + 2u * q;
        for (var r = 0u; r < rows; r = r + 1u) {
            let idx = (i0 + r) * P.n + j;
            let out = epilogue2(idx, j, vec2<f32>(c[idx], c[idx + 1u]), inv);
            c[idx] = out.x;
            c[idx + 1u] = out.y;
        }
    }
}

@compute @workgroup_size(SG, 1, 1)
fn matmul_coop64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let i0 = wid.y * 4u * T;
    let j0 = wid.x * 4u * T;
    let r0 = row64(i0, 0u);
    let r1 = row64(i0, 1u);
    let r2 = row64(i0, 2u);
    let r3 = row64(i0, 3u);
    let q0 = col64(j0, 0u);
    let q1 = col64(j0, 1u);
    let q2 = col64(j0, 2u);
    let q3 = col64(j0, 3u);
    var c00 = Acc();
    var c01 = Acc();
    var c02 = Acc();
    var c03 = Acc();
    var c10 = Acc();
    var c11 = Acc();
    var c12 = Acc();
    var c13 = Acc();
    var c20 = Acc();
    var c21 = Acc();
    var c22 = Acc();
    var c23 = Acc();
    var c30 = Acc();
    var c31 = Acc();
    var c32 = Acc();
    var c33 = Acc();
    for (var p = 0u; p < P.k; p = p + T) {
        let a0 = load_a(r0, p);
        let a1 = load_a(r1, p);
        let a2 = load_a(r2, p);
        let a3 = load_a(r3, p);
        let b0 = load_b(p, q0);
        let b1 = load_b(p, q1);
        let b2 = load_b(p, q2);
        let b3 = load_b(p, q3);
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c02 = coopMultiplyAdd(a0, b2, c02);
        c03 = coopMultiplyAdd(a0, b3, c03);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
        c12 = coopMultiplyAdd(a1, b2, c12);
        c13 = coopMultiplyAdd(a1, b3, c13);
        c20 = coopMultiplyAdd(a2, b0, c20);
        c21 = coopMultiplyAdd(a2, b1, c21);
        c22 = coopMultiplyAdd(a2, b2, c22);
        c23 = coopMultiplyAdd(a2, b3, c23);
        c30 = coopMultiplyAdd(a3, b0, c30);
        c31 = coopMultiplyAdd(a3, b1, c31);
        c32 = coopMultiplyAdd(a3, b2, c32);
        c33 = coopMultiplyAdd(a3, b3, c33);
    }
    store(c00, r0, q0);
    store(c01, r0, q1);
    store(c02, r0, q2);
    store(c03, r0, q3);
    store(c10, r1, q0);
    store(c11, r1, q1);
    store(c12, r1, q2);
    store(c13, r1, q3);
    store(c20, r2, q0);
    store(c21, r2, q1);
    store(c22, r2, q2);
    store(c23, r2, q3);
    store(c30, r3, q0);
    store(c31, r3, q1);
    store(c32, r3, q2);
    store(c33, r3, q3);
    finish64(i0, j0, t);
}

// ---- ceilings: multiply-adds from registers --------------------------------------------------
// What the tensor cores reach through WGSL on this device with no memory traffic in the loop
// (`batchscope gemm --ceilings`, src/backend/gpu/ceilings.rs; CPU twin
// src/backend/cpu/ceilings.rs; run at T = 16). A is [64, 16] (4 tiles down, P.k = 16) and B [16, 64] (4 tiles
// across, P.n = 64); each subgroup loads its tiles once, then runs P.len steps of 4 (2x2 tiles,
// the 32x32 kernels' loop) or 16 (4x4, the 64x64 and staged kernels' loop) multiply-adds into
// as many accumulators, and stores them row-major at c[(w * 16 + tile) * 256] (w: the
// workgroup). With operands that are multiples of 1/8 every sum is exact, so the twin compares
// bits. 4 against 16 accumulators tells whether the accumulators stay in registers. They are
// compiled in the untransposed module (TA = TB = false).

fn store_ceiling(acc: Acc, w: u32, tile: u32) {
    let stride = T;
    let dst = &c[(w * 16u + tile) * T * T];
    coopStoreT(acc, dst, stride);
}

@compute @workgroup_size(SG, 1, 1)
fn coop_ceiling4(@builtin(workgroup_id) wid: vec3<u32>) {
    let a0 = load_a(0u, 0u);
    let a1 = load_a(T, 0u);
    let b0 = load_b(0u, 0u);
    let b1 = load_b(0u, T);
    var c00 = Acc();
    var c01 = Acc();
    var c10 = Acc();
    var c11 = Acc();
    for (var s = 0u; s < P.len; s = s + 1u) {
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
    }
    store_ceiling(c00, wid.x, 0u);
    store_ceiling(c01, wid.x, 1u);
    store_ceiling(c10, wid.x, 4u);
    store_ceiling(c11, wid.x, 5u);
}

@compute @workgroup_size(SG, 1, 1)
fn coop_ceiling16(@builtin(workgroup_id) wid: vec3<u32>) {
    let a0 = load_a(0u, 0u);
    let a1 = load_a(T, 0u);
    let a2 = load_a(2u * T, 0u);
    let a3 = load_a(3u * T, 0u);
    let b0 = load_b(0u, 0u);
    let b1 = load_b(0u, T);
    let b2 = load_b(0u, 2u * T);
    let b3 = load_b(0u, 3u * T);
    var c00 = Acc();
    var c01 = Acc();
    var c02 = Acc();
    var c03 = Acc();
    var c10 = Acc();
    var c11 = Acc();
    var c12 = Acc();
    var c13 = Acc();
    var c20 = Acc();
    var c21 = Acc();
    var c22 = Acc();
    var c23 = Acc();
    var c30 = Acc();
    var c31 = Acc();
    var c32 = Acc();
    var c33 = Acc();
    for (var s = 0u; s < P.len; s = s + 1u) {
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c02 = coopMultiplyAdd(a0, b2, c02);
        c03 = coopMultiplyAdd(a0, b3, c03);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
        c12 = coopMultiplyAdd(a1, b2, c12);
        c13 = coopMultiplyAdd(a1, b3, c13);
        c20 = coopMultiplyAdd(a2, b0, c20);
        c21 = coopMultiplyAdd(a2, b1, c21);
        c22 = coopMultiplyAdd(a2, b2, c22);
        c23 = coopMultiplyAdd(a2, b3, c23);
        c30 = coopMultiplyAdd(a3, b0, c30);
        c31 = coopMultiplyAdd(a3, b1, c31);
        c32 = coopMultiplyAdd(a3, b2, c32);
        c33 = coopMultiplyAdd(a3, b3, c33);
    }
    store_ceiling(c00, wid.x, 0u);
    store_ceiling(c01, wid.x, 1u);
    store_ceiling(c02, wid.x, 2u);
    store_ceiling(c03, wid.x, 3u);
    store_ceiling(c10, wid.x, 4u);
    store_ceiling(c11, wid.x, 5u);
    store_ceiling(c12, wid.x, 6u);
    store_ceiling(c13, wid.x, 7u);
    store_ceiling(c20, wid.x, 8u);
    store_ceiling(c21, wid.x, 9u);
    store_ceiling(c22, wid.x, 10u);
    store_ceiling(c23, wid.x, 11u);
    store_ceiling(c30, wid.x, 12u);
    store_ceiling(c31, wid.x, 13u);
    store_ceiling(c32, wid.x, 14u);
    store_ceiling(c33, wid.x, 15u);
}

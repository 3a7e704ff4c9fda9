enable f16;
enable wgpu_cooperative_matrix;

// matmul_coop_staged.wgsl: C[m,n] = op(A)[m,k] * op(B)[k,n] on cooperative matrices (tensor
// cores), with the operands staged through workgroup memory: matmul_coop.wgsl's arithmetic
// (f16 tiles, f32 accumulators, f32 C, the same fused epilogue) for large products.
//
// One module per configuration of the family (src/backend/gpu/staged.rs), which the host
// prepends, after the prelude, as:
//   TileA, TileB, Acc   aliases of coop_matTxT<f16, A>, <f16, B>, <f32, C> (for `vec8`,
//                       <f32, A>, <f32, B> in the WGSL, retyped to f16 in the SPIR-V:
//                       src/backend/gpu/retype.rs)
//   Half, HW            the element workgroup memory holds and the tile loads read, and its
//                       halves: f16 and 1 (`halves`), vec4<f16> and 4 (`vec4`: 2 stores per
//                       load of 8 halves, not 8), or vec4<f32> and 8 (`vec8`: one 16-byte
//                       store; src/backend/gpu/coop_shape.rs)
//   T                   the tile side (16 on GPUs; 8 where only 8x8 exists: Mesa's lavapipe)
//   NI                  invocations of a workgroup: 4 subgroups of the adapter's one size
//   BS = 8 T, SK = 2 T  side of a workgroup's block of C, depth of one staged slice
//   ROW_SK, ROW_BS      halves per staged row: SK + 8 and BS + 8 (padding of 16 bytes)
//   SLICE               halves of one staged slice (the larger of its two layouts)
//   sa, sb              the staged slices, 2 SLICE halves each
//   Stored, Load        the element A and B are read through from storage, and one load of 8
//                       halves in registers: two vec4<f16> (`halves`, `vec4`), or one
//                       vec4<u32> (`vec8`: one 16-byte load, the bits moved untouched)
//   fetch(), put()      load 8 halves at a half offset of A or B; store one load into sa or sb
// At T = 16 with subgroups of 32 (the H200) a workgroup is 128 invocations and owns a 128x128
// block of C; subgroup s owns the 64x64 quarter at rows 64 (s / 2), columns 64 (s % 2): 4x4
// tiles, 16 accumulators. Per step of 32 along k the workgroup copies the A slice (128 x 32)
// and the B slice (32 x 128) from storage into workgroup memory, one 16-byte load of 8 halves
// (the stored bits, no conversion) per invocation and load, 4 of A and 4 of B (as two
// vec4<f16>), coalesced along the stored rows; each subgroup then takes its 4 A and 4 B tiles
// per 16 of k from workgroup memory. Each element of A is read from storage once per 128
// columns of C (B: per 128 rows) instead of once per 64 (matmul_coop64) or 32 (the 32x32
// kernels): 2x and 4x fewer storage reads, all of them 16-byte coalesced loads. At T = 8 with
// subgroups of 8 (lavapipe) every length halves and a workgroup is 32 invocations: still 4
// loads of each operand per invocation and slice (the host checks BS SK / 8 = 4 NI).
//
// Workgroup memory holds the halves in rows padded by 8 halves (16 bytes: 40 halves for a
// 32-deep row, 136 for a 128-wide one), so the 8 rows of a tile load's phase start in
// different banks. A tile load reads f16 (`halves`), vec4<f16> (`vec4`) or 16-byte (`vec8`)
// elements, its offset and stride counted in elements (all multiples of 8 halves): naga types
// a cooperative load by its pointer's scalar and wants float matrices, so 16-byte elements are
// vec4<f32> here and the tiles f32 until the SPIR-V retype makes them f16.
// Slices are double-buffered (40 KiB at T = 16): the next slice's loads are issued into
// registers before the current slice's multiply-adds and stored after them, with one barrier
// per slice.
//
// Preconditions (the host checks, src/backend/gpu/matmul_coop.rs): m, n, k multiples of T
// (so every 16-byte load of 8 halves lies wholly inside or outside its matrix), alpha = 1,
// beta = 0, subgroups of exactly NI / 4. A and B are the packed halves of matmul_f16.wgsl read
// as `Stored` elements (vec4<f16>, or vec4<u32> for `vec8`: the bits, untouched).
// Out-of-range rows, columns and depths are staged as zeros.
// The transpose pair is the module's: TA and TB (A stored [k, m], B stored [n, k]) are
// constants the host prepends (src/backend/gpu/staged.rs, one module per pair, as the fp32 tiles
// have an entry point per pair), so every layout branch folds away and the depth loop has a
// constant trip count (SK / T) the driver unrolls: no branch between a slice's tile loads and
// its multiply-adds. coop_staged_ceiling runs in the untransposed module.
// Cooperative operations need uniform control flow, so there are no branches but on P and the
// module's constants: a subgroup's tiles past m (or n) clamp onto the last tile, which is
// then computed and stored again with the same values (as in matmul_coop.wgsl); the staged
// block always holds it.

// struct Params: shaders/include/half_params.wgsl.

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<Stored>;
@group(0) @binding(2) var<storage, read> b: array<Stored>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// Bindings 4 (e_in), 5 (e_out), 6 (h_out), 7 (the loss scaler's state), f16_bits and the fused
// epilogue: shaders/include/epilogue_f16.wgsl.

// The 4 loads of one operand's slice an invocation makes (kept in registers across a slice's
// multiply-adds); `Load` holds one load of 8 halves (prepended with fetch() and put()).
struct Loads {
    v0: Load,
    v1: Load,
    v2: Load,
    v3: Load,
}

// Where load q of invocation t lands in a slice stored with rows of `width` halves (SK or
// BS: 4 or 16 loads per row at T = 16): (row, first half) in the slice.
fn slot(t: u32, q: u32, width: u32) -> vec2<u32> {
    let per_row = width / 8u;
    let l = t + NI * q;
    return vec2<u32>(l / per_row, (l % per_row) * 8u);
}

// Load q of a slice of matrix `which` (0: A, 1: B) whose stored rows are `stride` halves long:
// stored rows row0.. (valid below `rows`), halves col0.. (valid below `cols`), zeros outside.
fn load(which: u32, t: u32, q: u32, row0: u32, rows: u32, col0: u32, cols: u32, stride: u32, width: u32) -> Load {
    let at = slot(t, q, width);
    if (row0 + at.x < rows && col0 + at.y < cols) {
        return fetch(which, (row0 + at.x) * stride + col0 + at.y);
    }
    return Load();
}

fn load4(which: u32, t: u32, row0: u32, rows: u32, col0: u32, cols: u32, stride: u32, width: u32) -> Loads {
    return Loads(
        load(which, t, 0u, row0, rows, col0, cols, stride, width),
        load(which, t, 1u, row0, rows, col0, cols, stride, width),
        load(which, t, 2u, row0, rows, col0, cols, stride, width),
        load(which, t, 3u, row0, rows, col0, cols, stride, width),
    );
}

// The A slice at block rows i0.., depths p..p + SK (TA: A stored [k, m]).
fn load_a(t: u32, i0: u32, p: u32) -> Loads {
    if (!TA) {
        return load4(0u, t, i0, P.m, p, P.k, P.k, SK); // A [m, k]: rows of the block, SK depths each
    }
    return load4(0u, t, p, P.k, i0, P.m, P.m, BS); // A [k, m]: SK depths, BS rows each
}

// The B slice at depths p..p + SK, block columns j0.. (TB: B stored [n, k]).
fn load_b(t: u32, j0: u32, p: u32) -> Loads {
    if (!TB) {
        return load4(1u, t, p, P.k, j0, P.n, P.n, BS); // B [k, n]: SK depths, BS columns each
    }
    return load4(1u, t, j0, P.n, p, P.k, P.k, SK); // B [n, k]: block columns, SK depths each
}

// Halves per staged row of an operand stored with rows of `width` halves.
fn row_len(width: u32) -> u32 {
    return select(ROW_BS, ROW_SK, width == SK);
}

// Store an invocation's loads of one operand into buffer `buf` of its staged slice.
fn stage(which: u32, buf: u32, t: u32, width: u32, v: Loads) {
    let row = row_len(width);
    let base = buf * SLICE;
    var at = slot(t, 0u, width);
    put(which, base + at.x * row + at.y, v.v0);
    at = slot(t, 1u, width);
    put(which, base + at.x * row + at.y, v.v1);
    at = slot(t, 2u, width);
    put(which, base + at.x * row + at.y, v.v2);
    at = slot(t, 3u, width);
    put(which, base + at.x * row + at.y, v.v3);
}

fn stage_a(buf: u32, t: u32, v: Loads) {
    stage(0u, buf, t, select(SK, BS, TA), v);
}

fn stage_b(buf: u32, t: u32, v: Loads) {
    stage(1u, buf, t, select(BS, SK, TB), v);
}

// The A tile at block row r, slice depth d (multiples of T), from buffer `buf`. Offsets and
// strides are in halves, multiples of 8, and divided by HW for the element type.
fn tile_a(buf: u32, r: u32, d: u32) -> TileA {
    let base = buf * SLICE;
    if (!TA) {
        return coopLoadT<TileA>(&sa[(base + r * ROW_SK + d) / HW], ROW_SK / HW);
    }
    return coopLoad<TileA>(&sa[(base + d * ROW_BS + r) / HW], ROW_BS / HW);
}

// The B tile at slice depth d, block column q, from buffer `buf`.
fn tile_b(buf: u32, d: u32, q: u32) -> TileB {
    let base = buf * SLICE;
    if (!TB) {
        return coopLoadT<TileB>(&sb[(base + d * ROW_BS + q) / HW], ROW_BS / HW);
    }
    return coopLoad<TileB>(&sb[(base + q * ROW_SK + d) / HW], ROW_SK / HW);
}

// Block-relative origin of tile row (column) u of the quarter at `quarter` (0 or BS / 2),
// clamped so that the tile lies inside C: `start` is the block's first row (column) in C,
// `size` m (n).
fn origin(start: u32, quarter: u32, u: u32, size: u32) -> u32 {
    return min(start + quarter + T * u, size - T) - start;
}

fn store(acc: Acc, i: u32, j: u32) {
    // Operands through `let`: naga 30 emits a cooperative store's argument expressions after
    // the statement otherwise (see matmul_coop.wgsl).
    let stride = P.n;
    let dst = &c[i * P.n + j];
    coopStoreT(acc, dst, stride);
}

// After every subgroup stored its tiles: C = epilogue2(C) over the block's elements in C, rows
// [i0, min(i0 + BS, m)) by columns [j0, min(j0 + BS, n)), each once. Invocation t walks the
// column pair j0 + 2 (t % (BS / 2)), + 1 (n is a multiple of T: both in C or neither, the
// first element even, one word of H), rows t / (BS / 2), then every NI / (BS / 2) (2 at
// T = 16, 1 at T = 8). The barriers are in uniform control flow (P is uniform).
fn finish(i0: u32, j0: u32, t: u32) {
    if (P.epi == 0u && P.half_out == 0u && P.unscale == 0u) {
        return;
    }
    bias_grad_block(i0, BS, j0, t, NI);
    if (P.epi == 4u && P.half_out == 0u && P.unscale == 0u) {
        return;
    }
    storageBarrier();
    let rows = min(BS, P.m - i0);
    let pairs = BS / 2u;
    let q = 2u * (t % pairs);
    if (q < min(BS, P.n - j0)) {
        let j = j0 + q;
        let inv = scale_inv();
        for (var r = t / pairs; r < rows; r = r + NI / pairs) {
            let idx = (i0 + r) * P.n + j;
            let out = epilogue2(idx, j, vec2<f32>(c[idx], c[idx + 1u]), inv);
            c[idx] = out.x;
            c[idx + 1u] = out.y;
        }
    }
}

@compute @workgroup_size(NI, 1, 1)
fn matmul_coop_staged(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) s: u32,
) {
    let i0 = wid.y * BS;
    let j0 = wid.x * BS;
    // This subgroup's tile origins in the block (rows r*, columns q*).
    let qr = (BS / 2u) * (s / 2u);
    let qc = (BS / 2u) * (s % 2u);
    let r0 = origin(i0, qr, 0u, P.m);
    let r1 = origin(i0, qr, 1u, P.m);
    let r2 = origin(i0, qr, 2u, P.m);
    let r3 = origin(i0, qr, 3u, P.m);
    let q0 = origin(j0, qc, 0u, P.n);
    let q1 = origin(j0, qc, 1u, P.n);
    let q2 = origin(j0, qc, 2u, P.n);
    let q3 = origin(j0, qc, 3u, P.n);
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
    // Slice 0 into buffer 0; then per slice: issue the next slice's loads, multiply the
    // current buffer, store the loads into the other buffer, one barrier.
    stage_a(0u, t, load_a(t, i0, 0u));
    stage_b(0u, t, load_b(t, j0, 0u));
    workgroupBarrier();
    let slices = (P.k + SK - 1u) / SK;
    for (var sl = 0u; sl < slices; sl = sl + 1u) {
        let cur = sl & 1u;
        let p = sl * SK;
        let more = sl + 1u < slices;
        let zero = Load();
        var na = Loads(zero, zero, zero, zero);
        var nb = na;
        if (more) {
            na = load_a(t, i0, p + SK);
            nb = load_b(t, j0, p + SK);
        }
        // Every slice takes its full depth. The last slice of a k that is an odd multiple of T
        // holds one tile of depth and a zero half (staged zeros in both operands): its
        // multiply-adds add exact zeros to accumulators that start at +0, which changes no bit,
        // and cost one tile of depth in k / T (2 % at k = 784), where a bound on the depth
        // would make the loop's trip count dynamic.
        for (var d = 0u; d < SK; d = d + T) {
            let a0 = tile_a(cur, r0, d);
            let a1 = tile_a(cur, r1, d);
            let a2 = tile_a(cur, r2, d);
            let a3 = tile_a(cur, r3, d);
            let b0 = tile_b(cur, d, q0);
            let b1 = tile_b(cur, d, q1);
            let b2 = tile_b(cur, d, q2);
            let b3 = tile_b(cur, d, q3);
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
        if (more) {
            stage_a(1u - cur, t, na);
            stage_b(1u - cur, t, nb);
        }
        workgroupBarrier();
    }
    store(c00, i0 + r0, j0 + q0);
    store(c01, i0 + r0, j0 + q1);
    store(c02, i0 + r0, j0 + q2);
    store(c03, i0 + r0, j0 + q3);
    store(c10, i0 + r1, j0 + q0);
    store(c11, i0 + r1, j0 + q1);
    store(c12, i0 + r1, j0 + q2);
    store(c13, i0 + r1, j0 + q3);
    store(c20, i0 + r2, j0 + q0);
    store(c21, i0 + r2, j0 + q1);
    store(c22, i0 + r2, j0 + q2);
    store(c23, i0 + r2, j0 + q3);
    store(c30, i0 + r3, j0 + q0);
    store(c31, i0 + r3, j0 + q1);
    store(c32, i0 + r3, j0 + q2);
    store(c33, i0 + r3, j0 + q3);
    finish(i0, j0, t);
}

// ---- ceiling: the staged kernel's multiply-adds from workgroup memory ------------------------
// The loop above without storage traffic (`batchscope gemm --ceilings`,
// src/backend/gpu/ceilings.rs; CPU twin src/backend/cpu/ceilings.rs; run at T = 16): both
// staged buffers of sa and sb are filled once with the halves a[0..2 SLICE) and b[0..2 SLICE)
// as stored (P.m = P.n = BS, untransposed: the slice layouts [row][depth] and [depth][col]);
// then P.len slices each take every subgroup's 8 tile loads per T of depth from buffer sl & 1
// and its 16 multiply-adds, with the kernel's one barrier per slice. Subgroup w of workgroup g
// stores its accumulators row-major at c[((g * 4 + w) * 16 + tile) * T * T]. Against
// `coop_ceiling16` (the same multiply-adds from registers) it prices the tile loads from
// workgroup memory.

fn store_ceiling(acc: Acc, w: u32, tile: u32) {
    let stride = T;
    let dst = &c[(w * 16u + tile) * T * T];
    coopStoreT(acc, dst, stride);
}

@compute @workgroup_size(NI, 1, 1)
fn coop_staged_ceiling(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) s: u32,
) {
    // Load v: the 8 halves from half 8 v, into both buffers.
    for (var v = t; v < SLICE / 4u; v = v + NI) {
        put(0u, 8u * v, fetch(0u, 8u * v));
        put(1u, 8u * v, fetch(1u, 8u * v));
    }
    workgroupBarrier();
    let qr = (BS / 2u) * (s / 2u);
    let qc = (BS / 2u) * (s % 2u);
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
    for (var sl = 0u; sl < P.len; sl = sl + 1u) {
        let cur = sl & 1u;
        for (var d = 0u; d < SK; d = d + T) {
            let a0 = tile_a(cur, qr, d);
            let a1 = tile_a(cur, qr + T, d);
            let a2 = tile_a(cur, qr + 2u * T, d);
            let a3 = tile_a(cur, qr + 3u * T, d);
            let b0 = tile_b(cur, d, qc);
            let b1 = tile_b(cur, d, qc + T);
            let b2 = tile_b(cur, d, qc + 2u * T);
            let b3 = tile_b(cur, d, qc + 3u * T);
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
        workgroupBarrier();
    }
    let w = wid.x * 4u + s;
    store_ceiling(c00, w, 0u);
    store_ceiling(c01, w, 1u);
    store_ceiling(c02, w, 2u);
    store_ceiling(c03, w, 3u);
    store_ceiling(c10, w, 4u);
    store_ceiling(c11, w, 5u);
    store_ceiling(c12, w, 6u);
    store_ceiling(c13, w, 7u);
    store_ceiling(c20, w, 8u);
    store_ceiling(c21, w, 9u);
    store_ceiling(c22, w, 10u);
    store_ceiling(c23, w, 11u);
    store_ceiling(c30, w, 12u);
    store_ceiling(c31, w, 13u);
    store_ceiling(c32, w, 14u);
    store_ceiling(c33, w, 15u);
}

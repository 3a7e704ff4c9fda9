enable f16;
enable wgpu_cooperative_matrix;

// matmul_coop_staged.wgsl: C[m,n] = op(A)[m,k] * op(B)[k,n] on cooperative matrices (tensor
// cores), with the operands staged through workgroup memory: matmul_coop.wgsl's arithmetic
// (16x16 f16 tiles, f32 accumulators, f32 C, the same fused epilogue) for large products.
//
// A workgroup is 4 subgroups of 32 invocations (the host requires subgroup size 32) and owns a
// 128x128 block of C; subgroup s owns the 64x64 quarter at rows 64 (s / 2), columns 64 (s % 2):
// 4x4 tiles, 16 accumulators. Per step of 32 along k the workgroup copies the A slice
// (128 x 32) and the B slice (32 x 128) from storage into workgroup memory (16 KiB), 8 halves
// per invocation and load (4 of A and 4 of B), coalesced along the stored rows; each subgroup
// then takes its 4 A and 4 B tiles per 16 of k from workgroup memory. Each element of A is read
// from storage once per 128 columns of C (B: per 128 rows) instead of once per 64
// (matmul_coop64) or 32 (the 32x32 kernels): 2x and 4x fewer storage reads, all of them wide
// coalesced loads rather than the tile loads' strided rows.
//
// Preconditions (the host checks, src/backend/gpu/matmul_coop.rs): m, n, k multiples of 16
// (so every 16-byte load of 8 halves lies wholly inside or outside its matrix), alpha = 1,
// beta = 0, subgroups of exactly 32. A and B are the packed halves of matmul_f16.wgsl read as
// vec4<f16>. Out-of-range rows, columns and depths are staged as zeros.
// Cooperative operations need uniform control flow, so there are no branches but on P: a
// subgroup's tiles past m (or n) clamp onto the last tile, which is then computed and stored
// again with the same values (as in matmul_coop.wgsl); the staged block always holds it.

// struct Params: shaders/include/half_params.wgsl.

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// Bindings 4 (e_in), 5 (e_out), 6 (h_out), 7 (the loss scaler's state), f16_bits and the fused
// epilogue: shaders/include/epilogue_f16.wgsl.

// Side of a workgroup's block of C, and the depth of one staged slice.
const BS: u32 = 128u;
const SK: u32 = 32u;

// The staged slices: op(A) as stored, 128 rows x 32 depths (A not transposed: [row][depth]) or
// 32 x 128 (A transposed: [depth][row]); op(B) as 32 x 128 ([depth][col]) or 128 x 32 (B
// transposed: [col][depth]). 4096 halves each.
var<workgroup> sa: array<f16, 4096>;
var<workgroup> sb: array<f16, 4096>;

// Stage a slice stored with rows of `width` halves (32 or 128: 4 or 16 loads of 8 halves per
// row) from matrix `which` (0: A, 1: B) whose stored rows are `stride` halves long: stored rows
// row0 .. row0 + 4096 / width (valid below `rows`), halves col0 .. col0 + width (valid below
// `cols`). Invocation t of 128 copies loads t, t + 128, t + 256, t + 384 of the 512.
fn stage(which: u32, t: u32, row0: u32, rows: u32, col0: u32, cols: u32, stride: u32, width: u32) {
    let per_row = width / 8u;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let l = t + 128u * q;
        let r = l / per_row;
        let h = (l % per_row) * 8u;
        // 8 halves as two vec4<f16>: the bits as stored (no conversion that could flush a
        // subnormal or change a NaN's payload).
        var lo = vec4<f16>(0.0h);
        var hi = vec4<f16>(0.0h);
        if (row0 + r < rows && col0 + h < cols) {
            let at = ((row0 + r) * stride + col0 + h) / 4u;
            if (which == 0u) {
                lo = a[at];
                hi = a[at + 1u];
            } else {
                lo = b[at];
                hi = b[at + 1u];
            }
        }
        let o = r * width + h;
        for (var e = 0u; e < 4u; e = e + 1u) {
            if (which == 0u) {
                sa[o + e] = lo[e];
                sa[o + 4u + e] = hi[e];
            } else {
                sb[o + e] = lo[e];
                sb[o + 4u + e] = hi[e];
            }
        }
    }
}

// The A slice at block rows i0.., depths p..p + 32.
fn stage_a(t: u32, i0: u32, p: u32) {
    if (P.trans_a == 0u) {
        stage(0u, t, i0, P.m, p, P.k, P.k, SK); // A [m, k]: rows of the block, 32 depths each
    } else {
        stage(0u, t, p, P.k, i0, P.m, P.m, BS); // A [k, m]: 32 depths, 128 rows each
    }
}

// The B slice at depths p..p + 32, block columns j0...
fn stage_b(t: u32, j0: u32, p: u32) {
    if (P.trans_b == 0u) {
        stage(1u, t, p, P.k, j0, P.n, P.n, BS); // B [k, n]: 32 depths, 128 columns each
    } else {
        stage(1u, t, j0, P.n, p, P.k, P.k, SK); // B [n, k]: block columns, 32 depths each
    }
}

// The A tile at block row r, slice depth d (multiples of 16), from the staged slice.
fn tile_a(r: u32, d: u32) -> coop_mat16x16<f16, A> {
    if (P.trans_a == 0u) {
        return coopLoadT<coop_mat16x16<f16, A>>(&sa[r * SK + d], SK);
    }
    return coopLoad<coop_mat16x16<f16, A>>(&sa[d * BS + r], BS);
}

// The B tile at slice depth d, block column q.
fn tile_b(d: u32, q: u32) -> coop_mat16x16<f16, B> {
    if (P.trans_b == 0u) {
        return coopLoadT<coop_mat16x16<f16, B>>(&sb[d * BS + q], BS);
    }
    return coopLoad<coop_mat16x16<f16, B>>(&sb[q * SK + d], SK);
}

// Block-relative origin of tile row (column) u of the quarter at `quarter` (0 or 64), clamped
// so that the tile lies inside C: `start` is the block's first row (column) in C, `size` m (n).
fn origin(start: u32, quarter: u32, u: u32, size: u32) -> u32 {
    return min(start + quarter + 16u * u, size - 16u) - start;
}

fn store(acc: coop_mat16x16<f32, C>, i: u32, j: u32) {
    // Operands through `let`: naga 30 emits a cooperative store's argument expressions after
    // the statement otherwise (see matmul_coop.wgsl).
    let stride = P.n;
    let dst = &c[i * P.n + j];
    coopStoreT(acc, dst, stride);
}

// After every subgroup stored its tiles: C = epilogue(C) over the block's elements in C, rows
// [i0, min(i0 + 128, m)) by columns [j0, min(j0 + 128, n)), each once. Invocation t walks
// column j0 + t, rows in order. The barriers are in uniform control flow (P is uniform).
fn finish(i0: u32, j0: u32, t: u32) {
    if (P.epi == 0u && P.half_out == 0u && P.unscale == 0u) {
        return;
    }
    bias_grad_block(i0, BS, j0, t, 128u);
    if (P.epi == 4u && P.half_out == 0u && P.unscale == 0u) {
        return;
    }
    storageBarrier();
    let rows = min(BS, P.m - i0);
    if (t < min(BS, P.n - j0)) {
        let j = j0 + t;
        for (var r = 0u; r < rows; r = r + 1u) {
            let idx = (i0 + r) * P.n + j;
            c[idx] = epilogue(idx, j, c[idx]);
        }
    }
}

@compute @workgroup_size(128, 1, 1)
fn matmul_coop_staged(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) s: u32,
) {
    let i0 = wid.y * BS;
    let j0 = wid.x * BS;
    // This subgroup's tile origins in the block (rows r*, columns q*).
    let qr = 64u * (s / 2u);
    let qc = 64u * (s % 2u);
    let r0 = origin(i0, qr, 0u, P.m);
    let r1 = origin(i0, qr, 1u, P.m);
    let r2 = origin(i0, qr, 2u, P.m);
    let r3 = origin(i0, qr, 3u, P.m);
    let q0 = origin(j0, qc, 0u, P.n);
    let q1 = origin(j0, qc, 1u, P.n);
    let q2 = origin(j0, qc, 2u, P.n);
    let q3 = origin(j0, qc, 3u, P.n);
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();
    var c20 = coop_mat16x16<f32, C>();
    var c21 = coop_mat16x16<f32, C>();
    var c22 = coop_mat16x16<f32, C>();
    var c23 = coop_mat16x16<f32, C>();
    var c30 = coop_mat16x16<f32, C>();
    var c31 = coop_mat16x16<f32, C>();
    var c32 = coop_mat16x16<f32, C>();
    var c33 = coop_mat16x16<f32, C>();
    for (var p = 0u; p < P.k; p = p + SK) {
        stage_a(t, i0, p);
        stage_b(t, j0, p);
        workgroupBarrier();
        // The last slice of a k that is an odd multiple of 16 holds one tile of depth: no
        // multiply-add of its zero half (the bound is uniform).
        let depth = min(SK, P.k - p);
        for (var d = 0u; d < depth; d = d + 16u) {
            let a0 = tile_a(r0, d);
            let a1 = tile_a(r1, d);
            let a2 = tile_a(r2, d);
            let a3 = tile_a(r3, d);
            let b0 = tile_b(d, q0);
            let b1 = tile_b(d, q1);
            let b2 = tile_b(d, q2);
            let b3 = tile_b(d, q3);
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

// wgrad_update.wgsl: one layer's weight gradient, bias gradient and optimizer step in one pass,
// the small-batch training step's backward-and-update (src/backend/gpu/wgrad_update.rs).
//
//   gW [m, n] = alpha * dzᵀ · x      dz: [k, m] (rows x out), x: [k, n] (rows x in)
//   gb [m]    = Σ_{i<k} dz[i, ·]
//   then for every element of W (with gW) and of b (with gb) the optimizer step
//     sgd:      p = p - lr (g + wd p)
//     momentum: v = mu v + (g + wd p); p = p - lr v
//
// Bit for bit the unfused path (tiled product with the bias-gradient epilogue, then
// update.wgsl): every gW element is one fma chain over k from 0 in order, padded with zero
// products to a multiple of 8 as the tiled kernels' BK = 8 slices are, then alpha_times; gb is
// col_sum's order (8 lanes, lane l adding the depths ≡ l (mod 8) in order from 0, then the tree
// 4, 2, 1), its lanes added from the staged chunks of dz as the product passes them; the update
// is shaders/include/update_rule.wgsl. gW and gb are stored too: the step's gradient norm and
// anything else that reads the gradients after the step see the same buffers.
//
// Launch: 256 invocations per workgroup own a 64 x 64 block of gW, 4 x 4 elements each (rows
// ty + 16 i, columns tx + 16 j: consecutive invocations store consecutive columns); dz and x
// are staged through workgroup memory 32 rows of k at a time (16 KiB). Grid: x walks column
// blocks, y (+ z * num_workgroups.y past the per-dimension limit) row blocks. The workgroups of
// the first column block also compute and apply gb for their 64 rows.

// Params, the uniform P and scaled(): shaders/include/step_param.wgsl.
// dz [k, m].
@group(0) @binding(1) var<storage, read> e_in: array<f32>;
@group(0) @binding(2) var<storage, read> x_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_w: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> param_w: array<f32>;
// Velocities: read and written by the momentum entry point only (the host binds placeholders
// for SGD).
@group(0) @binding(6) var<storage, read_write> vel_w: array<f32>;
@group(0) @binding(7) var<storage, read_write> param_b: array<f32>;
@group(0) @binding(8) var<storage, read_write> vel_b: array<f32>;

const BLOCK: u32 = 64u; // rows and columns of gW per workgroup
const KC: u32 = 32u; // rows of k staged per chunk
const PAD: u32 = 8u; // the tiled kernels' slice depth: the fma chain is padded to a multiple

// [KC][BLOCK] each: dz's columns row0 .. row0 + 64 and x's columns col0 .. col0 + 64 of one chunk.
var<workgroup> dz_t: array<f32, 2048>;
var<workgroup> x_t: array<f32, 2048>;

// step_param (the optimizer step of one element of W or b): shaders/include/step_param.wgsl.

fn wgrad_update(t: u32, wid: vec3<u32>, nwg: vec3<u32>, momentum: bool) {
    let rb = wid.y + wid.z * nwg.y;
    if (rb * BLOCK >= P.m) {
        return; // a padding workgroup past the last row block (uniform over the workgroup)
    }
    let row0 = rb * BLOCK;
    let col0 = wid.x * BLOCK;
    let tx = t % 16u;
    let ty = t / 16u;
    // acc[i][j]: row row0 + ty + 16 i, column col0 + tx + 16 j.
    var acc0 = vec4(0.0);
    var acc1 = vec4(0.0);
    var acc2 = vec4(0.0);
    var acc3 = vec4(0.0);
    // The first column block's invocations t < 64: col_sum's 8 lanes of gb's row row0 + t.
    var lanes: array<f32, 8>;
    for (var k0 = 0u; k0 < P.k; k0 += KC) {
        let kn = min(KC, P.k - k0);
        // The last chunk runs to a multiple of PAD: fma(0, 0, acc) as the tiled kernels do.
        let steps = min(KC, (kn + PAD - 1u) / PAD * PAD);
        // Rows past kn (and columns past m or n) are staged as zeros.
        for (var e = t; e < steps * BLOCK; e += 256u) {
            let i = e / BLOCK;
            let c = e % BLOCK;
            var a = 0.0;
            var b = 0.0;
            if (i < kn) {
                if (row0 + c < P.m) {
                    a = e_in[(k0 + i) * P.m + row0 + c];
                }
                if (col0 + c < P.n) {
                    b = x_in[(k0 + i) * P.n + col0 + c];
                }
            }
            dz_t[e] = a;
            x_t[e] = b;
        }
        workgroupBarrier();
        if (col0 == 0u && t < BLOCK) {
            // gb's lanes for row row0 + t: depth k0 + i is lane i % 8 (k0 is a multiple of 8).
            for (var i = 0u; i < kn; i++) {
                lanes[i & 7u] = lanes[i & 7u] + dz_t[i * BLOCK + t];
            }
        }
        for (var i = 0u; i < steps; i++) {
            let o = i * BLOCK;
            let xv = vec4(x_t[o + tx], x_t[o + tx + 16u], x_t[o + tx + 32u], x_t[o + tx + 48u]);
            acc0 = fma(vec4(dz_t[o + ty]), xv, acc0);
            acc1 = fma(vec4(dz_t[o + ty + 16u]), xv, acc1);
            acc2 = fma(vec4(dz_t[o + ty + 32u]), xv, acc2);
            acc3 = fma(vec4(dz_t[o + ty + 48u]), xv, acc3);
        }
        workgroupBarrier();
    }
    store_row(row0 + ty, col0 + tx, acc0, momentum);
    store_row(row0 + ty + 16u, col0 + tx, acc1, momentum);
    store_row(row0 + ty + 32u, col0 + tx, acc2, momentum);
    store_row(row0 + ty + 48u, col0 + tx, acc3, momentum);
    // The bias: one row per invocation of the first column block's workgroups, its lanes
    // added by col_sum's tree (4, 2, 1).
    if (col0 == 0u && t < BLOCK && row0 + t < P.m) {
        let r = row0 + t;
        for (var s = 4u; s > 0u; s = s >> 1u) {
            for (var l = 0u; l < s; l++) {
                lanes[l] = lanes[l] + lanes[l + s];
            }
        }
        let g = lanes[0];
        grad_b[r] = g;
        step_param(r, g, true, momentum);
    }
}

// gW and the step of W at row r, columns c, c + 16, c + 32, c + 48 (those inside gW).
fn store_row(r: u32, c: u32, v: vec4<f32>, momentum: bool) {
    if (r >= P.m) {
        return;
    }
    store_one(r, c, v.x, momentum);
    store_one(r, c + 16u, v.y, momentum);
    store_one(r, c + 32u, v.z, momentum);
    store_one(r, c + 48u, v.w, momentum);
}

fn store_one(r: u32, col: u32, acc: f32, momentum: bool) {
    if (col < P.n) {
        let o = r * P.n + col;
        let g = scaled(acc);
        grad_w[o] = g;
        step_param(o, g, false, momentum);
    }
}

@compute @workgroup_size(256, 1, 1)
fn wgrad_update_sgd(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    wgrad_update(t, wid, nwg, false);
}

@compute @workgroup_size(256, 1, 1)
fn wgrad_update_momentum(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    wgrad_update(t, wid, nwg, true);
}

// dgrad_wgrad_update.wgsl: a hidden-input layer's whole backward-and-update in one pass, the
// small-batch training step's backward (src/backend/gpu/dgrad_wgrad_update.rs):
//
//   dz_prev [k, n] = (dz [k, m] · W [m, n]) ⊙ φ'(z_prev)     the gradient the layer passes down
//   gW [m, n] = alpha * dzᵀ · x,  gb [m] = Σ_{i<k} dz[i, ·]   x [k, n]: the layer's input
//   then the optimizer step of W with gW and of b with gb (as wgrad_update.wgsl)
//
// k is the minibatch, m the layer's outputs, n its inputs. Column j of W is all that column j of
// dz_prev reads of W and all that column j of gW updates, so a workgroup that owns a block of W's
// columns reads them for dz_prev and then updates them, and no other workgroup touches them: the
// dgrad product, the weight gradient and the step need no dispatch boundary between them.
//
// Bit for bit the unfused path (the skinny product with the φ' epilogue, then wgrad_update.wgsl
// or the tiled product with the bias-gradient epilogue and the update): each dz_prev element is
// matmul_skinny's float operations for a plain B (8 k-lanes, lane l accumulating depths l, l + 8,
// .. by fma from 0, the 8 partials added to 0 in lane order), times φ'(z_prev) as
// include/epilogue.wgsl's epilogue 3; each gW element is one fma chain over k from 0 in order,
// padded with zero products to a multiple of 8 (the tiled kernels' BK), then alpha_times; gb is
// col_sum's order (include/col_sum_of.wgsl); the step is include/step_param.wgsl.
//
// Launch: one workgroup of 256 invocations per block of 4 columns of W (x + y * num_workgroups.x
// past the per-dimension limit): for a 1024-wide layer 256 workgroups, as many as the skinny
// dgrad's and wgrad_update's grids, each invocation with the work of theirs. Phase 1, dz_prev
// for every row: invocation t is column t % 4, k-lane (t / 4) % 8 and row slot t / 32, walking
// rows slot, slot + 8, .. of each group of 32 rows. Phase 2, after a barrier: gW and the step
// for the block's m x 4 elements, invocation t taking column t % 4 and rows t / 4, t / 4 + 64,
// .. (8 at a time, one x load per depth for the 8); the first block's workgroup also does gb
// and the bias's step.

// Params, the uniform P and scaled(): shaders/include/step_param.wgsl.
// dz [k, m], named as col_sum_of reads it.
@group(0) @binding(1) var<storage, read> e_in: array<f32>;
@group(0) @binding(2) var<storage, read> x_in: array<f32>;       // [k, n]
@group(0) @binding(3) var<storage, read> z_prev: array<f32>;     // [k, n]
@group(0) @binding(4) var<storage, read_write> dz_prev: array<f32>;  // [k, n]
@group(0) @binding(5) var<storage, read_write> grad_w: array<f32>;   // [m, n]
@group(0) @binding(6) var<storage, read_write> grad_b: array<f32>;   // [m]
@group(0) @binding(7) var<storage, read_write> param_w: array<f32>;  // [m, n]
// Velocities: read and written by the momentum entry point only (the host binds placeholders
// for SGD).
@group(0) @binding(8) var<storage, read_write> vel_w: array<f32>;
@group(0) @binding(9) var<storage, read_write> param_b: array<f32>;
@group(0) @binding(10) var<storage, read_write> vel_b: array<f32>;

// The pipeline constants of the φ' epilogue (as matmul.wgsl's; EPI is always 3 here).
override EPI: u32 = 3u;
override ACT: u32 = 0u;

const CW: u32 = 4u; // columns of W per workgroup
const LANES: u32 = 8u; // k-lanes per dz_prev element (the skinny kernel's for a plain B)
const SLOTS: u32 = 8u; // row slots of phase 1 (WG_1D = CW * LANES * SLOTS)
const RG: u32 = 32u; // rows per group of phase 1 (4 per slot)
const PAD: u32 = 8u; // the tiled kernels' slice depth: gW's fma chain is padded to a multiple

// Phase 1's partial sums of one group of rows: [row][column][lane] (RG * CW * LANES).
var<workgroup> partial: array<f32, 1024>;

fn dgrad_wgrad_update(t: u32, wid: vec3<u32>, nwg: vec3<u32>, momentum: bool) {
    let col0 = (wid.x + wid.y * nwg.x) * CW;
    if (col0 >= P.n) {
        return; // a padding workgroup past the last column block (uniform over the workgroup)
    }
    let c = t % CW;
    let col = col0 + c;
    // ---- phase 1: dz_prev[r, col] = (Σ_p dz[r, p] W[p, col]) * φ'(z_prev[r, col]) ----
    let lane = (t / CW) % LANES;
    let slot = t / (CW * LANES);
    for (var g0 = 0u; g0 < P.k; g0 += RG) {
        // This slot's rows of the group: slot, slot + 4, .. below the group's end.
        let rows = (min(RG, P.k - g0) + SLOTS - 1u - slot) / SLOTS;
        var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
        var dz_at = array<u32, 4>(0u, 0u, 0u, 0u);
        for (var i = 0u; i < rows; i++) {
            dz_at[i] = (g0 + slot + SLOTS * i) * P.m;
        }
        if (col < P.n) {
            for (var p = lane; p < P.m; p += LANES) {
                let wv = param_w[p * P.n + col];
                for (var i = 0u; i < rows; i++) {
                    acc[i] = fma(e_in[dz_at[i] + p], wv, acc[i]);
                }
            }
        }
        for (var i = 0u; i < rows; i++) {
            partial[((slot + SLOTS * i) * CW + c) * LANES + lane] = acc[i];
        }
        workgroupBarrier();
        // Element (g0 + t / 4, column c): one per invocation t < 128.
        let r = g0 + t / CW;
        if (t < RG * CW && r < P.k && col < P.n) {
            var sum = 0.0;
            for (var l = 0u; l < LANES; l++) {
                sum += partial[((t / CW) * CW + c) * LANES + l];
            }
            let o = r * P.n + col;
            dz_prev[o] = epi_dgrad(sum, z_prev[o], ACT);
        }
        workgroupBarrier();
    }
    // Every read of this block's columns of W above happens before the step below writes them.
    storageBarrier();
    // ---- phase 2: gW[r, col] = alpha Σ_i dz[i, r] x[i, col], then the step of W[r, col] ----
    // Invocation t: column c, rows t / 4 + 64 j, 8 of them (j < 8) per pass of 512 rows, each
    // one fma chain over i in order; the chain's padding to a multiple of 8 adds fma(0, 0, acc).
    let pad = (P.k + PAD - 1u) / PAD * PAD - P.k;
    for (var r0 = t / CW; r0 < P.m; r0 += WG_1D / CW * 8u) {
        var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        let rows = min(8u, (P.m - r0 + WG_1D / CW - 1u) / (WG_1D / CW));
        if (col < P.n) {
            for (var i = 0u; i < P.k; i++) {
                let xv = x_in[i * P.n + col];
                for (var j = 0u; j < rows; j++) {
                    acc[j] = fma(e_in[i * P.m + r0 + j * (WG_1D / CW)], xv, acc[j]);
                }
            }
            for (var j = 0u; j < rows; j++) {
                for (var i = 0u; i < pad; i++) {
                    acc[j] = fma(0.0, 0.0, acc[j]);
                }
                let o = (r0 + j * (WG_1D / CW)) * P.n + col;
                let g = scaled(acc[j]);
                grad_w[o] = g;
                step_param(o, g, false, momentum);
            }
        }
    }
    // The bias: rows t, t + 256, .. by the first column block's workgroup.
    if (col0 == 0u) {
        for (var r = t; r < P.m; r += WG_1D) {
            let g = col_sum_of(r);
            grad_b[r] = g;
            step_param(r, g, true, momentum);
        }
    }
}

@compute @workgroup_size(WG_1D)
fn dgrad_wgrad_update_sgd(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    dgrad_wgrad_update(t, wid, nwg, false);
}

@compute @workgroup_size(WG_1D)
fn dgrad_wgrad_update_momentum(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    dgrad_wgrad_update(t, wid, nwg, true);
}

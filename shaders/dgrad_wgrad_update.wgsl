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
// Launch: one workgroup of 256 invocations per block of 8 columns of W (x + y * num_workgroups.x
// past the per-dimension limit). Phase 1, dz_prev for every row: invocation t is column t % 8,
// k-lane (t / 8) % 8 and row slot t / 64, walking rows slot, slot + 4, .. of each group of 32
// rows. Phase 2, after a barrier: gW and the step for the block's m x 8 elements, invocation t
// taking column t % 8 and rows t / 8, t / 8 + 32, ..; the first block's workgroup also does gb
// and the bias's step.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    lr: f32,
    mu: f32,
    wd: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
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

const CW: u32 = 8u; // columns of W per workgroup
const LANES: u32 = 8u; // k-lanes per dz_prev element (the skinny kernel's for a plain B)
const SLOTS: u32 = 4u; // row slots of phase 1 (WG_1D = CW * LANES * SLOTS)
const RG: u32 = 32u; // rows per group of phase 1 (8 per slot)
const PAD: u32 = 8u; // the tiled kernels' slice depth: gW's fma chain is padded to a multiple

// Phase 1's partial sums of one group of rows: [row][column][lane].
var<workgroup> partial: array<f32, 2048>;

// alpha * x, with alpha == 1 exactly x (include/epilogue.wgsl's alpha_times).
fn scaled(x: f32) -> f32 {
    return select(P.alpha * x, x, P.alpha == 1.0);
}

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
        var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        if (col < P.n) {
            for (var p = lane; p < P.m; p += LANES) {
                let wv = param_w[p * P.n + col];
                for (var i = 0u; i < RG / SLOTS; i++) {
                    // Rows past the last repeat it (loads stay in bounds; never stored).
                    let r = min(g0 + slot + SLOTS * i, P.k - 1u);
                    acc[i] = fma(e_in[r * P.m + p], wv, acc[i]);
                }
            }
        }
        for (var i = 0u; i < RG / SLOTS; i++) {
            partial[((slot + SLOTS * i) * CW + c) * LANES + lane] = acc[i];
        }
        workgroupBarrier();
        // Element (g0 + t / 8, column c): one per invocation.
        let r = g0 + t / CW;
        if (r < P.k && col < P.n) {
            var sum = 0.0;
            for (var l = 0u; l < LANES; l++) {
                sum += partial[((t / CW) * CW + c) * LANES + l];
            }
            let o = r * P.n + col;
            dz_prev[o] = sum * epi_dphi(z_prev[o], ACT);
        }
        workgroupBarrier();
    }
    // Every read of this block's columns of W above happens before the step below writes them.
    storageBarrier();
    // ---- phase 2: gW[r, col] = alpha Σ_i dz[i, r] x[i, col], then the step of W[r, col] ----
    if (col < P.n) {
        let steps = (P.k + PAD - 1u) / PAD * PAD;
        for (var r = t / CW; r < P.m; r += WG_1D / CW) {
            var acc = 0.0;
            for (var i = 0u; i < steps; i++) {
                var a = 0.0;
                var b = 0.0;
                if (i < P.k) {
                    a = e_in[i * P.m + r];
                    b = x_in[i * P.n + col];
                }
                acc = fma(a, b, acc);
            }
            let o = r * P.n + col;
            let g = scaled(acc);
            grad_w[o] = g;
            step_param(o, g, false, momentum);
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

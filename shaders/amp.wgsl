// amp.wgsl: dynamic loss scaling on the device (PyTorch GradScaler's semantics).
//
// The scaler state is a 4-slot f32 buffer S (src/train/amp.rs names the slots):
//   S[0] scale, S[1] found_inf (0 or 1, set during this step), S[2] clean steps since the last
//   growth or overflow, S[3] skipped steps over the run.
// A step: amp_scale multiplies d logits by S[0] (amp_scale_half also writes their f16 copy, the
// last layer's wgrad operand, as to_half does); backward; amp_unscale multiplies every
// gradient by 1 / S[0] and sets S[1] when a gradient element is inf or NaN (tested on the bits:
// WGSL lets compilers assume floats are finite); amp_sgd / amp_momentum are update.wgsl's
// updates that do nothing when S[1] != 0; amp_update_scale halves the scale on overflow (and
// counts a skipped step) or doubles it after `interval` clean steps, then clears S[1].
// amp_col_sum_unscale is reduce.wgsl's col_sum (alpha 1, beta 0) with amp_unscale on each
// total: the bias gradient of a weight gradient whose product unscaled its own store.
// Nothing is read back: the flag never leaves the device.

struct Amp {
    n: u32,
    lr: f32,
    mu: f32,
    wd: f32,
    // amp_update_scale: clean steps before the scale grows, growth and backoff factors.
    interval: u32,
    growth: f32,
    backoff: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Amp;

// Float view of the state (amp_scale, the updates, amp_update_scale).
@group(0) @binding(1) var<storage, read> s_r: array<f32>;
@group(0) @binding(1) var<storage, read_write> s_w: array<f32>;
// Atomic view (amp_unscale: many invocations may raise the flag).
@group(0) @binding(1) var<storage, read_write> s_a: array<atomic<u32>>;

@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> vel: array<f32>;
@group(0) @binding(4) var<storage, read_write> mparam: array<f32>;
// amp_scale_half: f16(x) packed two to a word (f16_bits: shaders/include/f16_bits.wgsl).
@group(0) @binding(3) var<storage, read_write> x_half: array<u32>;

fn is_finite_bits(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// x[i] *= S[0], i < n
@compute @workgroup_size(WG_1D)
fn amp_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        x[i] = x[i] * s_r[0];
    }
}

// x[i] *= S[0] for i = 2w, 2w + 1 < n; x_half[w] = f16(x[2w]) | f16(x[2w + 1]) << 16 (the upper
// half 0 past n). One invocation per word, as to_half: no two invocations share a word.
@compute @workgroup_size(WG_1D)
fn amp_scale_half(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = lin(gid, nwg);
    let i = 2u * w;
    if (i >= p.n) {
        return;
    }
    let lo = x[i] * s_r[0];
    x[i] = lo;
    var hi = 0u;
    if (i + 1u < p.n) {
        let v = x[i + 1u] * s_r[0];
        x[i + 1u] = v;
        hi = f16_bits(v);
    }
    x_half[w] = f16_bits(lo) | (hi << 16u);
}

// x[i] *= 1 / S[0], i < n; S[1] = 1 when some x[i] is not finite.
@compute @workgroup_size(WG_1D)
fn amp_unscale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        x[i] = unscale_one(x[i]);
    }
}

// p -= lr * (g + wd * p) unless S[1] != 0
@compute @workgroup_size(WG_1D)
fn amp_sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n && s_r[1] == 0.0) {
        param[i] = sgd_value(param[i], grad[i], p.lr, p.wd);
    }
}

// v = mu * v + (g + wd * p); p -= lr * v; unless S[1] != 0
@compute @workgroup_size(WG_1D)
fn amp_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n && s_r[1] == 0.0) {
        let w = mparam[i];
        let v = momentum_velocity(vel[i], grad[i], w, p.mu, p.wd);
        vel[i] = v;
        mparam[i] = momentum_param(w, v, p.lr);
    }
}

// One invocation: the scale update of the step, then the flag is cleared.
@compute @workgroup_size(WG_1D)
fn amp_update_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    if (lin(gid, nwg) != 0u) {
        return;
    }
    let scale = s_w[0];
    if (s_w[1] != 0.0) {
        // Never below f32's smallest normal, where 1/S (the unscale factor) stays finite
        // (src/backend/half.rs MIN_LOSS_SCALE; subnormal products are flushed or kept alike).
        s_w[0] = max(scale * p.backoff, 0x1p-126f);
        s_w[2] = 0.0;
        s_w[3] = s_w[3] + 1.0;
    } else {
        let clean = s_w[2] + 1.0;
        if (clean >= f32(p.interval)) {
            let grown = scale * p.growth;
            if (is_finite_bits(grown)) {
                s_w[0] = grown;
            }
            s_w[2] = 0.0;
        } else {
            s_w[2] = clean;
        }
    }
    s_w[1] = 0.0;
}

// ---- two tensors per dispatch (a layer's weight and bias), as update.wgsl's pair kernels
// (which also run the guarded updates amp_sgd / amp_momentum of two tensors): workgroups
// [0, groups_a) unscale tensor a, the rest tensor b; each element gets amp_unscale's float
// operations, so the same bits and the same flag.

struct Amp2 {
    n_a: u32,
    n_b: u32,
    groups_a: u32, // ceil(n_a / WG_1D)
    _pad0: u32,
    _pad1: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p2: Amp2;
// amp_unscale2: [S, x_a, x_b]
@group(0) @binding(2) var<storage, read_write> u_x_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> u_x_b: array<f32>;

// v / S[0] (as v * (1 / S[0])), raising S[1] when v is inf or NaN.
fn unscale_one(v: f32) -> f32 {
    if (!is_finite_bits(v)) {
        atomicOr(&s_a[1], 0x3f800000u); // 1.0f
    }
    let inv = 1.0 / bitcast<f32>(atomicLoad(&s_a[0]));
    return v * inv;
}

@compute @workgroup_size(WG_1D)
fn amp_unscale2(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g < p2.groups_a) {
        let i = g * WG_1D + t;
        if (i < p2.n_a) {
            u_x_a[i] = unscale_one(u_x_a[i]);
        }
    } else {
        let i = (g - p2.groups_a) * WG_1D + t;
        if (i < p2.n_b) {
            u_x_b[i] = unscale_one(u_x_b[i]);
        }
    }
}

// ---- the bias gradient, unscaled: out[c] = Σ_r x[r, c] × 1 / S[0] ---------------------------
// reduce.wgsl's col_sum with alpha 1 and beta 0 (the same workgroup layout, lanes and tree, so
// the same total), then unscale_one of the total: the float operations of col_sum followed by
// amp_unscale, in one dispatch.

struct Cols {
    rows: u32,
    cols: u32,
    _pad: vec2<u32>,
}

@group(0) @binding(0) var<uniform> pc: Cols;
// amp_col_sum_unscale: [S, x [rows, cols], out [cols]]
@group(0) @binding(2) var<storage, read> cs_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> cs_out: array<f32>;

@compute @workgroup_size(32, 8)
fn amp_col_sum_unscale(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = wid.x * 32u + lid.x;
    let lane = lid.y;
    var acc = 0.0;
    if (c < pc.cols) {
        for (var r = lane; r < pc.rows; r = r + 8u) {
            acc = acc + cs_x[r * pc.cols + c];
        }
    }
    let total = col_tree_sum(lane * 32u + lid.x, acc);
    if (lane == 0u && c < pc.cols) {
        cs_out[c] = unscale_one(total);
    }
}

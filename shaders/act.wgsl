// Activations φ ∈ {identity (0), relu (1), tanh (2)}: forward, backward (φ'), and the
// second-derivative term of the R-backward pass (φ''); bias_act fuses the forward's bias add
// with φ (the same float operations as add_bias then act_forward, in one dispatch).

struct Act {
    n: u32,
    act: u32,
    cols: u32, // bias_act: columns of z [rows, cols]
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Act;

@group(0) @binding(1) var<storage, read> z: array<f32>;
// act_forward: y = φ(z)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// act_backward: dz = dy * φ'(z)
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;
// act_second: out += dy * φ''(z) * rz
@group(0) @binding(3) var<storage, read> rz: array<f32>;
@group(0) @binding(4) var<storage, read_write> acc: array<f32>;
// bias_act: z[r, c] += bias[c]; y = φ(z)
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> zb: array<f32>;
@group(0) @binding(3) var<storage, read_write> yb: array<f32>;

// tanh without overflow for large |v|: sign(v) (1 - e^{-2|v|}) / (1 + e^{-2|v|}).
fn stable_tanh(v: f32) -> f32 {
    let t = exp(-2.0 * abs(v));
    let r = (1.0 - t) / (1.0 + t);
    return select(r, -r, v < 0.0);
}

fn phi(v: f32) -> f32 {
    switch p.act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return stable_tanh(v); }
        default: { return v; }
    }
}

// g φ'(v): ReLU's as a select, so that the masked gradient is +0 whatever g is on every
// compiler (see include/activation.wgsl's epi_dgrad, the fused stores' twin).
fn dgrad(g: f32, v: f32) -> f32 {
    switch p.act {
        case 1u: { return select(0.0, g, v > 0.0); }
        case 2u: { let t = stable_tanh(v); return g * (1.0 - t * t); }
        default: { return g; }
    }
}

// φ''(v): 0 for identity and relu (almost everywhere), -2 tanh(v) (1 - tanh²(v)) for tanh.
fn d2phi(v: f32) -> f32 {
    switch p.act {
        case 2u: { let t = stable_tanh(v); return -2.0 * t * (1.0 - t * t); }
        default: { return 0.0; }
    }
}

@compute @workgroup_size(WG_1D)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { y[i] = phi(z[i]); }
}

@compute @workgroup_size(WG_1D)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { dz[i] = dgrad(dy[i], z[i]); }
}

@compute @workgroup_size(WG_1D)
fn act_second(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { acc[i] = acc[i] + dy[i] * d2phi(z[i]) * rz[i]; }
}

@compute @workgroup_size(WG_1D)
fn bias_act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        let v = zb[i] + bias[i % p.cols];
        zb[i] = v;
        yb[i] = phi(v);
    }
}

// Optimizer updates. Weight decay is L2: the gradient used is g + wd * p.

struct Opt {
    n: u32,
    lr: f32,
    mu: f32,
    wd: f32,
}

@group(0) @binding(0) var<uniform> p: Opt;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
// sgd_update
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
// momentum_update
@group(0) @binding(2) var<storage, read_write> vel: array<f32>;
@group(0) @binding(3) var<storage, read_write> mparam: array<f32>;

fn lin(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// p -= lr * (g + wd * p)
@compute @workgroup_size(256)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        let w = param[i];
        param[i] = w - p.lr * (grad[i] + p.wd * w);
    }
}

// v = mu * v + (g + wd * p); p -= lr * v
@compute @workgroup_size(256)
fn momentum_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        let w = mparam[i];
        let v = p.mu * vel[i] + (grad[i] + p.wd * w);
        vel[i] = v;
        mparam[i] = w - p.lr * v;
    }
}

// Global-norm clipping. stats[first .. first+count] hold squared norms of the gradient's
// tensors; x *= min(1, max_norm / sqrt(Σ stats)). When count_slot != 0xffffffff, invocation 0
// adds 1 to stats[count_slot] if the step was clipped (count_slot lies outside the norms).
struct ClipP {
    n: u32,
    max_norm: f32,
    first: u32,
    count: u32,
    count_slot: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> cp: ClipP;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> cx: array<f32>;

@compute @workgroup_size(256)
fn clip_global_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    var s = 0.0;
    for (var k = 0u; k < cp.count; k = k + 1u) { s = s + stats[cp.first + k]; }
    let norm = sqrt(s);
    let clipped = norm > cp.max_norm;
    let f = select(1.0, cp.max_norm / norm, clipped);
    if (i < cp.n) { cx[i] = cx[i] * f; }
    if (i == 0u && clipped && cp.count_slot != 0xffffffffu) {
        stats[cp.count_slot] = stats[cp.count_slot] + 1.0;
    }
}

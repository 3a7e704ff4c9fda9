// Optimizer updates (sgd_update, momentum_update, momentum_update2). Weight decay is L2: the
// gradient used is g + wd * p.

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

// p -= lr * (g + wd * p)
@compute @workgroup_size(WG_1D)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        let w = param[i];
        param[i] = w - p.lr * (grad[i] + p.wd * w);
    }
}

// v = mu * v + (g + wd * p); p -= lr * v
@compute @workgroup_size(WG_1D)
fn momentum_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        let w = mparam[i];
        let v = p.mu * vel[i] + (grad[i] + p.wd * w);
        vel[i] = v;
        mparam[i] = w - p.lr * v;
    }
}

// momentum_update2: two tensors (a layer's weight and bias) in one dispatch, with bindings
// 1-3 of momentum_update for tensor 0 and 4-6 for tensor 1. Invocation i < n updates element i
// of tensor 0, n <= i < n + n1 element i - n of tensor 1: momentum_update's float operations.
struct Opt2 {
    n: u32,
    lr: f32,
    mu: f32,
    wd: f32,
    n1: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> q: Opt2;
@group(0) @binding(4) var<storage, read> grad1: array<f32>;
@group(0) @binding(5) var<storage, read_write> vel1: array<f32>;
@group(0) @binding(6) var<storage, read_write> param1: array<f32>;

@compute @workgroup_size(WG_1D)
fn momentum_update2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < q.n) {
        let w = mparam[i];
        let v = q.mu * vel[i] + (grad[i] + q.wd * w);
        vel[i] = v;
        mparam[i] = w - q.lr * v;
    } else if (i - q.n < q.n1) {
        let j = i - q.n;
        let w = param1[j];
        let v = q.mu * vel1[j] + (grad1[j] + q.wd * w);
        vel1[j] = v;
        param1[j] = w - q.lr * v;
    }
}

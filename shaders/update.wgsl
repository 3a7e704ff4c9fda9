// Optimizer updates (sgd_update, momentum_update). Weight decay is L2: the gradient used is g + wd * p.

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

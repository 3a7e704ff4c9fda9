// Optimizer updates (sgd_update, momentum_update; sgd_update2, momentum_update2 for two tensors
// per dispatch). Weight decay is L2: the gradient used is g + wd * p.

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

// ---- two tensors per dispatch (a layer's weight and bias: the step's updates in half the
// dispatches). Workgroups [0, groups_a) update tensor a, the rest tensor b, so the choice of
// tensor is uniform over a workgroup (no invocation runs both sides of the branch). Each
// element gets the float operations of sgd_update / momentum_update above, so the same bits.

struct Opt2 {
    n_a: u32,
    n_b: u32,
    groups_a: u32, // ceil(n_a / WG_1D)
    _pad: u32,
    lr: f32,
    mu: f32,
    wd: f32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p2: Opt2;
// sgd_update2: [grad_a, param_a, grad_b, param_b]
@group(0) @binding(1) var<storage, read> s_grad_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> s_param_a: array<f32>;
@group(0) @binding(3) var<storage, read> s_grad_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> s_param_b: array<f32>;
// momentum_update2: [grad_a, vel_a, param_a, grad_b, vel_b, param_b]
@group(0) @binding(1) var<storage, read> m_grad_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> m_vel_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> m_param_a: array<f32>;
@group(0) @binding(4) var<storage, read> m_grad_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> m_vel_b: array<f32>;
@group(0) @binding(6) var<storage, read_write> m_param_b: array<f32>;

@compute @workgroup_size(WG_1D)
fn sgd_update2(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g < p2.groups_a) {
        let i = g * WG_1D + t;
        if (i < p2.n_a) {
            let w = s_param_a[i];
            s_param_a[i] = w - p2.lr * (s_grad_a[i] + p2.wd * w);
        }
    } else {
        let i = (g - p2.groups_a) * WG_1D + t;
        if (i < p2.n_b) {
            let w = s_param_b[i];
            s_param_b[i] = w - p2.lr * (s_grad_b[i] + p2.wd * w);
        }
    }
}

@compute @workgroup_size(WG_1D)
fn momentum_update2(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g < p2.groups_a) {
        let i = g * WG_1D + t;
        if (i < p2.n_a) {
            let w = m_param_a[i];
            let v = p2.mu * m_vel_a[i] + (m_grad_a[i] + p2.wd * w);
            m_vel_a[i] = v;
            m_param_a[i] = w - p2.lr * v;
        }
    } else {
        let i = (g - p2.groups_a) * WG_1D + t;
        if (i < p2.n_b) {
            let w = m_param_b[i];
            let v = p2.mu * m_vel_b[i] + (m_grad_b[i] + p2.wd * w);
            m_vel_b[i] = v;
            m_param_b[i] = w - p2.lr * v;
        }
    }
}

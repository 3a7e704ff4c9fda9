// Optimizer updates (sgd_update, momentum_update; sgd_update2, momentum_update2 for two tensors
// per dispatch). The per-element math (sgd_value, momentum_velocity, momentum_param) is
// shaders/include/update_rule.wgsl, added to this source by src/backend/gpu/kernels.rs.

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
        param[i] = sgd_value(param[i], grad[i], p.lr, p.wd);
    }
}

// v = mu * v + (g + wd * p); p -= lr * v
@compute @workgroup_size(WG_1D)
fn momentum_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        let w = mparam[i];
        let v = momentum_velocity(vel[i], grad[i], w, p.mu, p.wd);
        vel[i] = v;
        mparam[i] = momentum_param(w, v, p.lr);
    }
}

// ---- two tensors per dispatch (a layer's weight and bias: the step's updates in half the
// dispatches). Workgroups [0, groups_a) update tensor a, the rest tensor b, so the choice of
// tensor is uniform over a workgroup (on a GPU no invocation runs both sides of the branch).
// Each element gets the float operations of sgd_update / momentum_update above (or amp.wgsl's
// amp_sgd / amp_momentum when guarded), so the same bits.

struct Opt2 {
    n_a: u32,
    n_b: u32,
    groups_a: u32, // ceil(n_a / WG_1D)
    guarded: u32,  // 1: the f16 step's update, skipped when the loss scaler's found-inf is set
    lr: f32,
    mu: f32,
    wd: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p2: Opt2;
// Both: binding 1 is the loss scaler's state S (amp.wgsl; S[1] != 0: found inf), read only when
// guarded (the host binds a placeholder otherwise).
@group(0) @binding(1) var<storage, read> scaler_state: array<f32>;
// sgd_update2: [S, grad_a, param_a, grad_b, param_b]
@group(0) @binding(2) var<storage, read> s_grad_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_param_a: array<f32>;
@group(0) @binding(4) var<storage, read> s_grad_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> s_param_b: array<f32>;
// momentum_update2: [S, grad_a, vel_a, param_a, grad_b, vel_b, param_b]
@group(0) @binding(2) var<storage, read> m_grad_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> m_vel_a: array<f32>;
@group(0) @binding(4) var<storage, read_write> m_param_a: array<f32>;
@group(0) @binding(5) var<storage, read> m_grad_b: array<f32>;
@group(0) @binding(6) var<storage, read_write> m_vel_b: array<f32>;
@group(0) @binding(7) var<storage, read_write> m_param_b: array<f32>;

// Whether this step's update is skipped (uniform: the whole dispatch).
fn skipped() -> bool {
    return p2.guarded != 0u && scaler_state[1] != 0.0;
}

// (tensor, index) of invocation t of workgroup g: tensor 0 = a, 1 = b.
fn pair_at(t: u32, wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    let g = wid.x + wid.y * nwg.x;
    if (g < p2.groups_a) {
        return vec2(0u, g * WG_1D + t);
    }
    return vec2(1u, (g - p2.groups_a) * WG_1D + t);
}

@compute @workgroup_size(WG_1D)
fn sgd_update2(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    if (skipped()) {
        return;
    }
    let at = pair_at(t, wid, nwg);
    let i = at.y;
    if (at.x == 0u) {
        if (i < p2.n_a) { s_param_a[i] = sgd_value(s_param_a[i], s_grad_a[i], p2.lr, p2.wd); }
    } else if (i < p2.n_b) {
        s_param_b[i] = sgd_value(s_param_b[i], s_grad_b[i], p2.lr, p2.wd);
    }
}

@compute @workgroup_size(WG_1D)
fn momentum_update2(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    if (skipped()) {
        return;
    }
    let at = pair_at(t, wid, nwg);
    let i = at.y;
    if (at.x == 0u) {
        if (i < p2.n_a) {
            let w = m_param_a[i];
            let v = momentum_velocity(m_vel_a[i], m_grad_a[i], w, p2.mu, p2.wd);
            m_vel_a[i] = v;
            m_param_a[i] = momentum_param(w, v, p2.lr);
        }
    } else if (i < p2.n_b) {
        let w = m_param_b[i];
        let v = momentum_velocity(m_vel_b[i], m_grad_b[i], w, p2.mu, p2.wd);
        m_vel_b[i] = v;
        m_param_b[i] = momentum_param(w, v, p2.lr);
    }
}

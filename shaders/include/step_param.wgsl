// Included by src/backend/gpu/kernels.rs into the kernels that fuse a layer's optimizer step
// into its weight gradient (wgrad_update.wgsl, dgrad_wgrad_update.wgsl), with
// include/update_rule.wgsl: their parameter block, alpha's scaling and the step of one
// parameter. The including shader declares the bindings `param_w`, `vel_w`, `param_b`, `vel_b`.

// gW [m, n] = alpha * dzᵀ · x over k rows; the step's learning rate, momentum and weight decay
// (src/backend/gpu/wgrad_update.rs `Params`).
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

// alpha * x, with alpha == 1 exactly x (shaders/include/epilogue.wgsl's alpha_times).
fn scaled(x: f32) -> f32 {
    return select(P.alpha * x, x, P.alpha == 1.0);
}

// The optimizer step of parameter `o` of W (bias: false) or b (true) with gradient g.
fn step_param(o: u32, g: f32, bias: bool, momentum: bool) {
    if (bias) {
        let w = param_b[o];
        if (momentum) {
            let v = momentum_velocity(vel_b[o], g, w, P.mu, P.wd);
            vel_b[o] = v;
            param_b[o] = momentum_param(w, v, P.lr);
        } else {
            param_b[o] = sgd_value(w, g, P.lr, P.wd);
        }
    } else {
        let w = param_w[o];
        if (momentum) {
            let v = momentum_velocity(vel_w[o], g, w, P.mu, P.wd);
            vel_w[o] = v;
            param_w[o] = momentum_param(w, v, P.lr);
        } else {
            param_w[o] = sgd_value(w, g, P.lr, P.wd);
        }
    }
}

// Included by src/backend/gpu/kernels.rs into the kernels that fuse a layer's optimizer step
// into its weight gradient (wgrad_update.wgsl, dgrad_wgrad_update.wgsl), after
// include/update_rule.wgsl. The including shader declares `P` (with `lr`, `mu`, `wd`) and the
// bindings `param_w`, `vel_w`, `param_b`, `vel_b`.

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

// Included by src/backend/gpu/kernels.rs into update.wgsl, amp.wgsl and wgrad_update.wgsl: the
// optimizer's per-element float operations, written once so that every kernel that updates a
// parameter computes the same bits. Weight decay is L2: the gradient used is g + wd * p.

// SGD: the new parameter, p - lr (g + wd p).
fn sgd_value(w: f32, g: f32, lr: f32, wd: f32) -> f32 {
    return w - lr * (g + wd * w);
}

// Heavy-ball momentum: the new velocity mu v + (g + wd p); the parameter then becomes
// p - lr v_new (momentum_param).
fn momentum_velocity(v: f32, g: f32, w: f32, mu: f32, wd: f32) -> f32 {
    return mu * v + (g + wd * w);
}

fn momentum_param(w: f32, v_new: f32, lr: f32) -> f32 {
    return w - lr * v_new;
}

// Squared error per example. One invocation per example (row); rows are independent.

struct Loss {
    rows: u32,
    cols: u32,        // outputs
    grad_scale: f32,  // 1/B for a minibatch mean
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Loss;
// mse: [pred, targets, loss, dpred]
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dpred: array<f32>;

// loss = ½ Σ (pred - targets)²; dpred = s * (pred - targets).
@compute @workgroup_size(WG_1D)
fn mse(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = lin(gid, nwg);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var acc = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        let d = pred[base + c] - targets[base + c];
        acc = acc + d * d;
        dpred[base + c] = p.grad_scale * d;
    }
    loss[r] = 0.5 * acc;
}

// Softmax cross-entropy per example (surrogate NLL and 0-1 loss) and its R-operator.
// One invocation per example (row); rows are independent. softmax_xent_sums is softmax_xent
// for at most WG_1D rows in one workgroup that then also sums the losses and the 0-1 values
// into the step's metrics slots, with the float operations of reduce.wgsl's sums_small.

struct Loss {
    rows: u32,
    cols: u32,        // classes
    grad_scale: f32,  // 1/B for a minibatch mean
    _pad: u32,
    // softmax_xent_sums only: the loss sum's slots of out (.x, and .y unless NO_SLOT), the 0-1
    // sum's slot (.z).
    slots: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Loss;
@group(0) @binding(1) var<storage, read> logits: array<f32>;

// softmax_xent: [logits, labels, loss, correct, dlogits]
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> correct: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;

// softmax_xent_rop: [logits, rlogits, out]
@group(0) @binding(2) var<storage, read> rlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> rout: array<f32>;

// softmax_xent_sums: [logits, labels, loss, correct, dlogits, out] (p.slots name out's slots).
@group(0) @binding(6) var<storage, read_write> sums_out: array<f32>;

// ---- xent_row (each row's loss, 0-1 value and d logits) and store_step_sums (the sums tree):
// shaders/include/xent_row.wgsl, added to this source by src/backend/gpu/kernels.rs ----

// loss = logsumexp(l) - l[y]; correct = [first argmax == y]; dl = s * (softmax(l) - onehot(y)).
@compute @workgroup_size(WG_1D)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = lin(gid, nwg);
    if (r >= p.rows) { return; }
    xent_row(r);
}

// Row t < rows of one workgroup as softmax_xent; then Σ loss and Σ correct into the slots.
@compute @workgroup_size(WG_1D)
fn softmax_xent_sums(@builtin(local_invocation_index) t: u32) {
    var acc = vec2(0.0, 0.0);
    if (t < p.rows) {
        acc = acc + xent_row(t);
    }
    store_step_sums(t, acc);
}

// out = s * (diag(q) - q qᵀ) rl = s * q ⊙ (rl - q·rl), q = softmax(l).
@compute @workgroup_size(WG_1D)
fn softmax_xent_rop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = lin(gid, nwg);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var m = logits[base];
    for (var c = 1u; c < p.cols; c = c + 1u) { m = max(m, logits[base + c]); }
    var s = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) { s = s + exp(logits[base + c] - m); }
    let inv = 1.0 / s;
    var qr = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        qr = qr + exp(logits[base + c] - m) * inv * rlogits[base + c];
    }
    for (var c = 0u; c < p.cols; c = c + 1u) {
        let q = exp(logits[base + c] - m) * inv;
        rout[base + c] = p.grad_scale * q * (rlogits[base + c] - qr);
    }
}

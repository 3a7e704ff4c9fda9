// Softmax cross-entropy per example (surrogate NLL and 0-1 loss) and its R-operator.
// One invocation per example (row); rows are independent.

struct Loss {
    rows: u32,
    cols: u32,        // classes
    grad_scale: f32,  // 1/B for a minibatch mean
    _pad: u32,
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

// loss = logsumexp(l) - l[y]; correct = [first argmax == y]; dl = s * (softmax(l) - onehot(y)).
@compute @workgroup_size(WG_1D)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = lin(gid, nwg);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var m = logits[base];
    var arg = 0u;
    for (var c = 1u; c < p.cols; c = c + 1u) {
        let v = logits[base + c];
        if (v > m) { m = v; arg = c; }
    }
    var s = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        s = s + exp(logits[base + c] - m);
    }
    let y = labels[r];
    if (y >= p.cols) {
        // Out-of-range label: poison the loss so the host's NaN guard sees it.
        loss[r] = bitcast<f32>(0x7fc00000u);
        correct[r] = 0.0;
        for (var c = 0u; c < p.cols; c = c + 1u) { dlogits[base + c] = 0.0; }
        return;
    }
    let lse = m + log(s);
    loss[r] = lse - logits[base + y];
    correct[r] = select(0.0, 1.0, arg == y);
    let inv = 1.0 / s;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        let q = exp(logits[base + c] - m) * inv;
        dlogits[base + c] = p.grad_scale * (q - select(0.0, 1.0, c == y));
    }
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

// Included by src/backend/gpu/kernels.rs into xent.wgsl and linear_xent.wgsl: softmax
// cross-entropy of one row and the step's minibatch sums of one workgroup. The including shader
// declares `p` (with `cols`, `grad_scale` and `slots`), `logits`, `labels`, `loss`, `correct`,
// `dlogits` and `sums_out`.

// A slot of p.slots that is not written.
const NO_SLOT: u32 = 0xffffffffu;

var<workgroup> sum_tree: array<vec2<f32>, WG_1D>;

// Row r's loss, 0-1 value and d logits written; returns (loss, correct).
fn xent_row(r: u32) -> vec2<f32> {
    let base = r * p.cols;
    var m = logits[base];
    var arg = 0u;
    for (var c = 1u; c < p.cols; c = c + 1u) {
        let v = logits[base + c];
        if (v > m) { m = v; arg = c; }
    }
    // t = Σ_{c ≠ arg} exp(l_c − m) = s − 1, kept apart from the argmax's exp(0) = 1: near
    // convergence t falls below f32's rounding of 1, where m + log(s) − l_y read an exact 0 loss
    // and q_y − 1 an exact 0 gradient.
    var t = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        if (c != arg) { t = t + exp(logits[base + c] - m); }
    }
    let s = 1.0 + t;
    let y = labels[r];
    if (y >= p.cols) {
        // Out-of-range label: poison the loss so the host's NaN guard sees it.
        let nan = bitcast<f32>(0x7fc00000u);
        loss[r] = nan;
        correct[r] = 0.0;
        for (var c = 0u; c < p.cols; c = c + 1u) { dlogits[base + c] = 0.0; }
        return vec2(nan, 0.0);
    }
    // Right (y = arg): log(1 + t), and q_y − 1 = −t / s. Wrong: (m − l_y) + log(s) ≥ log 2,
    // and q_y ≤ ½, which no rounding of 1 cancels.
    let right = arg == y;
    let l = select((m - logits[base + y]) + log(s), log1p_nonneg(t), right);
    let ok = select(0.0, 1.0, right);
    loss[r] = l;
    correct[r] = ok;
    let inv = 1.0 / s;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        let q = exp(logits[base + c] - m) * inv;
        let dq = select(q - select(0.0, 1.0, c == y), -t * inv, right && c == y);
        dlogits[base + c] = p.grad_scale * dq;
    }
    return vec2(l, ok);
}

// log(1 + t) for t ≥ 0 to a few f32 ulps: below t = 1/4 as 2 atanh(w), w = t / (2 + t) ≤ 1/9,
// by its series to w⁹ (the next term is w¹⁰/11 ≤ 3e-11 of the sum); above, log(1 + t), whose
// absolute error (2⁻²¹ near 1 on Vulkan) is then a few ulps of a value ≥ 0.22.
fn log1p_nonneg(t: f32) -> f32 {
    if (t >= 0.25) { return log(1.0 + t); }
    let w = t / (2.0 + t);
    let w2 = w * w;
    return 2.0 * w * (1.0 + w2 * (1.0 / 3.0 + w2 * (0.2 + w2 * (1.0 / 7.0 + w2 * (1.0 / 9.0)))));
}

// Σ loss and Σ correct of the workgroup's rows (acc: this invocation's (loss, correct), 0 past
// the rows) into sums_out's slots p.slots.x (and .y unless NO_SLOT) and p.slots.z, by
// reduce.wgsl sums_small's tree: each lane 0 + its value, pairs added at strides 128 .. 1, then
// 0 + the total. Called by every invocation of the workgroup.
fn store_step_sums(t: u32, acc: vec2<f32>) {
    sum_tree[t] = acc;
    workgroupBarrier();
    for (var s = WG_1D / 2u; s > 0u; s = s >> 1u) {
        if (t < s) { sum_tree[t] = sum_tree[t] + sum_tree[t + s]; }
        workgroupBarrier();
    }
    if (t == 0u) {
        let total = vec2(0.0, 0.0) + sum_tree[0];
        sums_out[p.slots.x] = total.x;
        if (p.slots.y != NO_SLOT) { sums_out[p.slots.y] = total.x; }
        sums_out[p.slots.z] = total.y;
    }
}

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
    var s = 0.0;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        s = s + exp(logits[base + c] - m);
    }
    let y = labels[r];
    if (y >= p.cols) {
        // Out-of-range label: poison the loss so the host's NaN guard sees it.
        let nan = bitcast<f32>(0x7fc00000u);
        loss[r] = nan;
        correct[r] = 0.0;
        for (var c = 0u; c < p.cols; c = c + 1u) { dlogits[base + c] = 0.0; }
        return vec2(nan, 0.0);
    }
    let lse = m + log(s);
    let l = lse - logits[base + y];
    let ok = select(0.0, 1.0, arg == y);
    loss[r] = l;
    correct[r] = ok;
    let inv = 1.0 / s;
    for (var c = 0u; c < p.cols; c = c + 1u) {
        let q = exp(logits[base + c] - m) * inv;
        dlogits[base + c] = p.grad_scale * (q - select(0.0, 1.0, c == y));
    }
    return vec2(l, ok);
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

// Deterministic reductions (sum, dot, sum_sq): no atomics. Pass 1 (`reduce_partial`): workgroup g
// sums the elements i ≡ g*WG_1D + t (mod groups*WG_1D) by a fixed tree into partials[g]. Pass 2
// (`reduce_final`): one workgroup sums partials[0..groups] the same way into out[slot].
// The order depends only on n and groups, so the same inputs give bitwise the same result.
// `sums_partial` / `sums_final`: the same two passes for two vectors x, y of n elements at
// once (workgroup row v = 0 for x, 1 for y), each total written to up to two slots: per vector
// the same float operations as `reduce_partial` / `reduce_final` with op = sum.
// `sums_small`: both passes in one dispatch when one pass-1 workgroup covers n (n <= WG_1D):
// the same float operations as `sums_partial` then `sums_final`, so the same bits.
// `col_sum`: out[c] = alpha * Σ_r x[r, c] + beta * out[c], 8 row lanes per column, fixed tree.

struct Red {
    n: u32,       // elements (pass 1) or partials (pass 2); rows for col_sum
    op: u32,      // 0 sum, 1 dot, 2 sum of squares
    groups: u32,  // pass-1 workgroups; cols for col_sum
    slot: u32,    // output index (pass 2)
    alpha: f32,
    beta: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Red;

// reduce_partial: [x, y, partials]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
// reduce_final: [partials_in, out]; col_sum: [x, out]
@group(0) @binding(1) var<storage, read> pin: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// sums_partial: [x, y, partials], sums_final: [partials_in, out], sums_small: [x, y, sums_out],
// with this parameter block.
struct Sums {
    n: u32,      // elements of each vector (pass 1)
    groups: u32, // pass-1 workgroups per vector
    vectors: u32, // 1 (x only) or 2 (x and y)
    _pad: u32,
    slots: vec4<u32>, // x's slots (.x, .y), y's slots (.z, .w); NO_SLOT = none
}

const NO_SLOT: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> ps: Sums;
@group(0) @binding(3) var<storage, read_write> sums_out: array<f32>;

var<workgroup> tree: array<f32, WG_1D>;
// col_sum: the lanes' tree is include/col_tree.wgsl's col_tree_sum.

fn term(i: u32) -> f32 {
    switch p.op {
        case 1u: { return x[i] * y[i]; }
        case 2u: { let v = x[i]; return v * v; }
        default: { return x[i]; }
    }
}

fn tree_sum(t: u32) -> f32 {
    workgroupBarrier();
    for (var s = WG_1D / 2u; s > 0u; s = s >> 1u) {
        if (t < s) { tree[t] = tree[t] + tree[t + s]; }
        workgroupBarrier();
    }
    return tree[0];
}

@compute @workgroup_size(WG_1D)
fn reduce_partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = lid.x;
    let stride = p.groups * WG_1D;
    var acc = 0.0;
    for (var i = wid.x * WG_1D + t; i < p.n; i = i + stride) {
        acc = acc + term(i);
    }
    tree[t] = acc;
    let total = tree_sum(t);
    if (t == 0u) { partials[wid.x] = total; }
}

@compute @workgroup_size(WG_1D)
fn reduce_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    var acc = 0.0;
    for (var i = t; i < p.n; i = i + WG_1D) {
        acc = acc + pin[i];
    }
    tree[t] = acc;
    let total = tree_sum(t);
    if (t == 0u) { out[p.slot] = total; }
}

// Workgroup (g, v) sums vector v's elements i ≡ g*WG_1D + t (mod groups*WG_1D) into
// partials[v * groups + g], as reduce_partial does.
@compute @workgroup_size(WG_1D)
fn sums_partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = lid.x;
    let stride = ps.groups * WG_1D;
    var acc = 0.0;
    for (var i = wid.x * WG_1D + t; i < ps.n; i = i + stride) {
        acc = acc + select(x[i], y[i], wid.y == 1u);
    }
    tree[t] = acc;
    let total = tree_sum(t);
    if (t == 0u) { partials[wid.y * ps.groups + wid.x] = total; }
}

// Workgroup v sums vector v's partials as reduce_final does, into its one or two slots.
@compute @workgroup_size(WG_1D)
fn sums_final(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = lid.x;
    let base = wid.x * ps.groups;
    var acc = 0.0;
    for (var i = t; i < ps.groups; i = i + WG_1D) {
        acc = acc + pin[base + i];
    }
    tree[t] = acc;
    let total = tree_sum(t);
    let first = select(ps.slots.x, ps.slots.z, wid.x == 1u);
    let second = select(ps.slots.y, ps.slots.w, wid.x == 1u);
    if (t == 0u) {
        out[first] = total;
        if (second != NO_SLOT) { out[second] = total; }
    }
}

// Workgroup v sums vector v (n <= WG_1D elements) by sums_partial's tree into partial p, then
// writes 0 + p to its slots, as sums_final does with one partial (its other lanes add zeros).
@compute @workgroup_size(WG_1D)
fn sums_small(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = lid.x;
    var acc = 0.0;
    if (t < ps.n) {
        acc = acc + select(x[t], y[t], wid.x == 1u);
    }
    tree[t] = acc;
    let partial = tree_sum(t);
    let total = 0.0 + partial;
    let first = select(ps.slots.x, ps.slots.z, wid.x == 1u);
    let second = select(ps.slots.y, ps.slots.w, wid.x == 1u);
    if (t == 0u) {
        sums_out[first] = total;
        if (second != NO_SLOT) { sums_out[second] = total; }
    }
}

// Workgroup = 32 columns x 8 row lanes. Lane l sums rows r ≡ l (mod 8) in order.
@compute @workgroup_size(32, 8)
fn col_sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let cols = p.groups;
    let c = wid.x * 32u + lid.x;
    let lane = lid.y;
    var acc = 0.0;
    if (c < cols) {
        for (var r = lane; r < p.n; r = r + 8u) {
            acc = acc + pin[r * cols + c];
        }
    }
    let total = col_tree_sum(lid.y * 32u + lid.x, acc);
    if (lane == 0u && c < cols) {
        if (p.beta == 0.0) {
            out[c] = p.alpha * total;
        } else {
            out[c] = p.alpha * total + p.beta * out[c];
        }
    }
}

// Clipping: by global norm (clip_by_global_norm) and by value (clip_by_value).

// Global-norm clipping. stats[first .. first+count] hold squared norms of the gradient's
// tensors; x *= min(1, max_norm / sqrt(Σ stats)). When count_slot != 0xffffffff, invocation 0
// counts a clipped step in stats[count_slot] (count mod 2²⁴) and stats[count_slot + 1]
// (count / 2²⁴): f32 holds every integer below 2²⁴ exactly, one slot alone stopped at
// 16 777 216 (both slots lie outside the norms).
struct ClipP {
    n: u32,
    max_norm: f32,
    first: u32,
    count: u32,
    count_slot: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> cp: ClipP;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> cx: array<f32>;

@compute @workgroup_size(WG_1D)
fn clip_by_global_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    var s = 0.0;
    for (var k = 0u; k < cp.count; k = k + 1u) { s = s + stats[cp.first + k]; }
    let norm = sqrt(s);
    let clipped = norm > cp.max_norm;
    let f = select(1.0, cp.max_norm / norm, clipped);
    if (i < cp.n) { cx[i] = cx[i] * f; }
    if (i == 0u && clipped && cp.count_slot != 0xffffffffu) {
        let low = stats[cp.count_slot] + 1.0;
        if (low >= 16777216.0) {
            stats[cp.count_slot] = 0.0;
            stats[cp.count_slot + 1u] = stats[cp.count_slot + 1u] + 1.0;
        } else {
            stats[cp.count_slot] = low;
        }
    }
}

// Clipping by value: x[i] = clamp(x[i], -limit, limit).
struct ValueP {
    n: u32,
    limit: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> vp: ValueP;
@group(0) @binding(1) var<storage, read_write> vx: array<f32>;

@compute @workgroup_size(WG_1D)
fn clip_by_value(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < vp.n) { vx[i] = clamp(vx[i], -vp.limit, vp.limit); }
}

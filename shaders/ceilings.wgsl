// ceilings.wgsl: the fp32 arithmetic ceiling of this device through WGSL, for `batchscope gemm
// --ceilings` (src/backend/gpu/ceilings.rs, CPU twin src/backend/cpu/ceilings.rs).
//
// ceiling_fma: every invocation runs P.iters steps of 8 independent vec4 chains
// acc = fma(acc, x, y) (32 FMAs a step, no memory traffic in the loop; x and y come from the
// parameter block, so no compiler can fold them) and stores the sum of its 8 chains at
// out[invocation]. With x = y = 1 every value is an integer below 2^24: exact on every
// adapter, so the twin compares bits. The matmul kernels' FMAs cannot run faster than this.

struct Params {
    iters: u32,
    x: f32,
    y: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(WG_1D, 1, 1)
fn ceiling_fma(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    let base = f32(i & 7u);
    let x = vec4(P.x);
    let y = vec4(P.y);
    var a0 = vec4(base, base + 1.0, base + 2.0, base + 3.0);
    var a1 = a0 + 1.0;
    var a2 = a0 + 2.0;
    var a3 = a0 + 3.0;
    var a4 = a0 + 4.0;
    var a5 = a0 + 5.0;
    var a6 = a0 + 6.0;
    var a7 = a0 + 7.0;
    for (var s = 0u; s < P.iters; s++) {
        a0 = fma(a0, x, y);
        a1 = fma(a1, x, y);
        a2 = fma(a2, x, y);
        a3 = fma(a3, x, y);
        a4 = fma(a4, x, y);
        a5 = fma(a5, x, y);
        a6 = fma(a6, x, y);
        a7 = fma(a7, x, y);
    }
    out[i] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}

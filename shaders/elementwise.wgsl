// Elementwise kernels: fill, copy, axpy, scale, add_bias.
// Binding 0 is the parameter block; 1-D launch of 256 invocations per workgroup, folded into
// (x, y) when n exceeds the per-dimension workgroup limit.

struct Ew {
    n: u32,        // elements touched
    cols: u32,     // add_bias: columns of x [rows, cols]
    alpha: f32,    // axpy / scale factor, fill value
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Ew;

// Kernels with an input and an output.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// Kernels with only an in-place output (fill, scale).
@group(0) @binding(1) var<storage, read_write> io: array<f32>;

fn lin(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// io[i] = alpha
@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { io[i] = p.alpha; }
}

// io[i] *= alpha
@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { io[i] = p.alpha * io[i]; }
}

// io[i] = clamp(io[i], -alpha, alpha)
@compute @workgroup_size(256)
fn clamp_abs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { io[i] = clamp(io[i], -p.alpha, p.alpha); }
}

// y[i] = x[i]
@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { y[i] = x[i]; }
}

// y[i] = alpha * x[i] + y[i]
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { y[i] = fma(p.alpha, x[i], y[i]); }
}

// y [rows, cols] += x [cols] broadcast over rows (x is the bias).
@compute @workgroup_size(256)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { y[i] = y[i] + x[i % p.cols]; }
}

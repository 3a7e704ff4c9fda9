// Elementwise kernels: fill, copy, axpy, scale, add_bias.
// Binding 0 is the parameter block; 1-D launch of WG_1D invocations per workgroup, folded into
// (x, y) when n exceeds the per-dimension workgroup limit (`lin` and WG_1D: the prelude).

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

// io[i] = alpha
@compute @workgroup_size(WG_1D)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { io[i] = p.alpha; }
}

// io[i] *= alpha
@compute @workgroup_size(WG_1D)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { io[i] = p.alpha * io[i]; }
}

// y[i] = x[i]
@compute @workgroup_size(WG_1D)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { y[i] = x[i]; }
}

// y[i] = alpha * x[i] + y[i]
@compute @workgroup_size(WG_1D)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { y[i] = fma(p.alpha, x[i], y[i]); }
}

// y [rows, cols] += x [cols] broadcast over rows (x is the bias).
@compute @workgroup_size(WG_1D)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) { y[i] = y[i] + x[i % p.cols]; }
}

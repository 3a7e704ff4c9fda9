// Gather rows of a dataset by index: the minibatch of a resident dataset.

struct Gather {
    n: u32,        // elements of dst
    cols: u32,     // gather_rows: columns per row
    src_rows: u32, // rows (gather_rows) or elements (gather_idx) of src; indices are clamped
    first: u32,    // gather_rows_window: global index of src's first row
}

@group(0) @binding(0) var<uniform> p: Gather;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
// gather_rows: dst [rows, cols] = src [src_rows, cols][idx]
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
// gather_idx: dst [rows] = src [idx]
@group(0) @binding(1) var<storage, read> isrc: array<u32>;
@group(0) @binding(3) var<storage, read_write> idst: array<u32>;

@compute @workgroup_size(WG_1D)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        let r = i / p.cols;
        let c = i - r * p.cols;
        let s = min(idx[r], p.src_rows - 1u);
        dst[i] = src[s * p.cols + c];
    }
}

@compute @workgroup_size(WG_1D)
fn gather_idx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        idst[i] = isrc[min(idx[i], p.src_rows - 1u)];
    }
}

// Windowed gather for datasets larger than one binding: dst[r] = src[idx[r] - first] when
// first <= idx[r] < first + src_rows; other rows are left untouched (another window has them).
@compute @workgroup_size(WG_1D)
fn gather_rows_window(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i < p.n) {
        let r = i / p.cols;
        let c = i - r * p.cols;
        let g = idx[r];
        if (g >= p.first && g - p.first < p.src_rows) {
            dst[i] = src[(g - p.first) * p.cols + c];
        }
    }
}

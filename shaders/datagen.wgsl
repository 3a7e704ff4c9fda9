// Counter-based synthetic data: example i is a pure function of (seed, i / duplicates).
// Twin of src/backend/rng.rs (Philox4x32-10, Box-Muller with fixed polynomials) and
// src/backend/cpu/datagen.rs (the generators); keep the three in step.

struct Gen {
    rows: u32,      // examples generated
    dim: u32,       // D
    classes: u32,   // gaussian_mixture
    outputs: u32,   // K (linear_regression)
    key_lo: u32,    // seed
    key_hi: u32,
    first_lo: u32,  // distinct index of the first row: first / duplicates (64-bit)
    first_hi: u32,
    dup: u32,       // duplicates
    first_rem: u32, // first % duplicates
    noise_thr: u32, // a label is noisy iff (w1 >> 8) < noise_thr
    quads: u32,     // ceil(D / 4)
    noise_std: f32, // target noise (linear_regression)
    threads: u32,   // invocations that do work
    _pad0: u32,
    _pad1: u32,
}

const STREAM_X: u32 = 0u;
const STREAM_LABEL: u32 = 1u;
const STREAM_TARGET_NOISE: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Gen;
// gaussian_mixture: means [classes, D]; linear_regression: W* [K, D] then std [D]
@group(0) @binding(1) var<storage, read> table: array<f32>;
// generate_gaussian_mixture, generate_linear_x: x [rows, D]
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
// generate_gaussian_mixture: labels [rows]
@group(0) @binding(3) var<storage, read_write> labels: array<u32>;
// generate_linear_targets: x [rows, D] (written by generate_linear_x), targets [rows, K]
@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> targets: array<f32>;

// ---- Philox4x32-10 -------------------------------------------------------------------------

// (hi, lo) of the 64-bit product a * b from 16-bit halves.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let ll = al * bl;
    let lh = al * bh;
    let hl = ah * bl;
    let hh = ah * bh;
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox(counter: vec4<u32>, key0: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key0;
    for (var round = 0u; round < 10u; round++) {
        if (round > 0u) {
            k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
        }
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// Block `blk` of sub-stream d (64-bit, as (lo, hi)) of `stream`.
fn block(stream: u32, d: vec2<u32>, blk: u32) -> vec4<u32> {
    return philox(vec4<u32>(blk, d.x, d.y, stream), vec2<u32>(p.key_lo, p.key_hi));
}

fn below(w: u32, n: u32) -> u32 {
    return mulhilo(w, n).x;
}

// ---- Box-Muller with fixed polynomials (see rng.rs for the derivation) ---------------------

// ln(v * 2^-24) for v in [1, 2^24].
fn ln_scaled(v: u32) -> f32 {
    var e = firstLeadingBit(v);
    var m = f32(v) * bitcast<f32>((127u - e) << 23u);
    if (m > bitcast<f32>(0x3fb504f3u)) {
        m = m * 0.5;
        e = e + 1u;
    }
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let l3 = bitcast<f32>(0x3eaaaaabu);
    let l5 = bitcast<f32>(0x3e4ccccdu);
    let l7 = bitcast<f32>(0x3e124925u);
    let l9 = bitcast<f32>(0x3de38e39u);
    let l11 = bitcast<f32>(0x3dba2e8cu);
    let ln_m = 2.0 * s * (1.0 + z * (l3 + z * (l5 + z * (l7 + z * (l9 + z * l11)))));
    return ln_m + f32(i32(e) - 24) * bitcast<f32>(0x3f317218u);
}

// (cos, sin) of 2*pi*k / 2^24 for k < 2^24.
fn cos_sin_turn(k: u32) -> vec2<f32> {
    let t = k + (1u << 21u);
    let q = (t >> 22u) & 3u;
    let r = i32(t & ((1u << 22u) - 1u)) - (1i << 21u);
    let phi = f32(r) * bitcast<f32>(0x34c90fdbu);
    let z = phi * phi;
    let s3 = bitcast<f32>(0xbe2aaaabu);
    let s5 = bitcast<f32>(0x3c088889u);
    let s7 = bitcast<f32>(0xb9500d01u);
    let s9 = bitcast<f32>(0x3638ef1du);
    let c2 = bitcast<f32>(0xbf000000u);
    let c4 = bitcast<f32>(0x3d2aaaabu);
    let c6 = bitcast<f32>(0xbab60b61u);
    let c8 = bitcast<f32>(0x37d00d01u);
    let c10 = bitcast<f32>(0xb493f27eu);
    let s = phi + phi * z * (s3 + z * (s5 + z * (s7 + z * s9)));
    let c = 1.0 + z * (c2 + z * (c4 + z * (c6 + z * (c8 + z * c10))));
    switch q {
        case 0u: { return vec2<f32>(c, s); }
        case 1u: { return vec2<f32>(-s, c); }
        case 2u: { return vec2<f32>(-c, -s); }
        default: { return vec2<f32>(s, -c); }
    }
}

fn box_muller(wa: u32, wb: u32) -> vec2<f32> {
    let r = sqrt(-2.0 * ln_scaled((wa >> 8u) + 1u));
    return r * cos_sin_turn(wb >> 8u);
}

fn normals4(w: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(box_muller(w.x, w.y), box_muller(w.z, w.w));
}

// Distinct example of row r: (first + r) / dup = first / dup + (first % dup + r) / dup.
fn distinct(r: u32) -> vec2<u32> {
    let q = (p.first_rem + r) / p.dup;
    let lo = p.first_lo + q;
    return vec2<u32>(lo, p.first_hi + select(0u, 1u, lo < q));
}

// ---- kernels --------------------------------------------------------------------------------

// One invocation per (row, group of 4 columns): x = means[y] + N(0, I); labels[row] by group 0.
@compute @workgroup_size(WG_1D)
fn generate_gaussian_mixture(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i >= p.threads) {
        return;
    }
    let qd = max(p.quads, 1u);
    let r = i / qd;
    let q = i - r * qd;
    let d = distinct(r);
    let w = block(STREAM_LABEL, d, 0u);
    let y = below(w.x, p.classes);
    var label = y;
    if ((w.y >> 8u) < p.noise_thr) {
        label = below(w.z, p.classes);
    }
    if (q == 0u) {
        labels[r] = label;
    }
    let j0 = q * 4u;
    if (j0 < p.dim) {
        let n = normals4(block(STREAM_X, d, q));
        let row = r * p.dim;
        let mean = y * p.dim;
        for (var c = 0u; c < 4u; c++) {
            let j = j0 + c;
            if (j < p.dim) {
                x[row + j] = table[mean + j] + n[c];
            }
        }
    }
}

// One invocation per (row, group of 4 columns): x = std ⊙ N(0, I).
@compute @workgroup_size(WG_1D)
fn generate_linear_x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i >= p.threads) {
        return;
    }
    let r = i / p.quads;
    let q = i - r * p.quads;
    let d = distinct(r);
    let n = normals4(block(STREAM_X, d, q));
    let row = r * p.dim;
    let stds = p.outputs * p.dim;
    let j0 = q * 4u;
    for (var c = 0u; c < 4u; c++) {
        let j = j0 + c;
        if (j < p.dim) {
            x[row + j] = table[stds + j] * n[c];
        }
    }
}

// One invocation per (row, output k): t = W*[k] · x[row] (sequential over j) + noise_std * N(0, 1).
@compute @workgroup_size(WG_1D)
fn generate_linear_targets(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = lin(gid, nwg);
    if (i >= p.threads) {
        return;
    }
    let r = i / p.outputs;
    let k = i - r * p.outputs;
    let d = distinct(r);
    let wrow = k * p.dim;
    let xrow = r * p.dim;
    var acc = 0.0;
    for (var j = 0u; j < p.dim; j++) {
        acc = acc + table[wrow + j] * xin[xrow + j];
    }
    let n = normals4(block(STREAM_TARGET_NOISE, d, k / 4u));
    targets[i] = acc + p.noise_std * n[k & 3u];
}

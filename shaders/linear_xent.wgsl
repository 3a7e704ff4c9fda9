// linear_xent.wgsl: a classifier's output layer and its loss in one workgroup, the small-batch
// training step's last forward product, softmax cross-entropy and minibatch sums
// (src/backend/gpu/linear_xent.rs):
//
//   logits [rows, cols] = x [rows, k] · Wᵀ + b        W stored [cols, k], b [cols]
//   then per row the loss, 0-1 value and d logits of xent.wgsl's softmax_xent, and the step's
//   sums of both into sums_out's slots (softmax_xent_sums)
//
// Bit for bit the unfused path (matmul_skinny with trans_b and the bias epilogue, then
// softmax_xent_sums): each logit is the skinny kernel's float operations: 32 k-lanes, lane l
// accumulating depths l, l + 32, .. by fma from 0, the 32 partials added to 0 in lane order,
// then + b[col]; the rows' loss and sums are shaders/include/xent_row.wgsl, as in xent.wgsl.
//
// Launch: one workgroup (the sums need every row; the host fuses up to the skinny kernel's 32
// rows). Its 256 invocations walk the logits in blocks of 8 rows x 8 columns, the skinny
// kernel's trans_b block: 8 columns x 32 k-lanes, t = column * 32 + lane. The logits go to the
// storage buffer; after a storage barrier invocation r reads row r back for its loss.

struct Loss {
    rows: u32,
    cols: u32,        // classes
    grad_scale: f32,  // 1/B for a minibatch mean
    k: u32,           // inputs of the layer (xent.wgsl: padding)
    // The loss sum's slots of sums_out (.x, and .y unless NO_SLOT), the 0-1 sum's slot (.z).
    slots: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Loss;
@group(0) @binding(1) var<storage, read> x_in: array<f32>;      // [rows, k]
@group(0) @binding(2) var<storage, read> w_in: array<f32>;      // [cols, k]
@group(0) @binding(3) var<storage, read> bias_in: array<f32>;   // [cols]
@group(0) @binding(4) var<storage, read> labels: array<u32>;    // [rows]
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;   // [rows, cols]
@group(0) @binding(6) var<storage, read_write> loss: array<f32>;     // [rows]
@group(0) @binding(7) var<storage, read_write> correct: array<f32>;  // [rows]
@group(0) @binding(8) var<storage, read_write> dlogits: array<f32>;  // [rows, cols]
@group(0) @binding(9) var<storage, read_write> sums_out: array<f32>;

// ---- xent_row and store_step_sums: shaders/include/xent_row.wgsl ----

const RB: u32 = 8u; // rows per block
const CB: u32 = 8u; // columns per block
const LANES: u32 = 32u; // k-lanes per column (WG_1D = CB * LANES)

// [RB rows][WG_1D invocations]: each invocation's partial sums of the block.
var<workgroup> partial: array<f32, 2048>;

@compute @workgroup_size(WG_1D)
fn linear_xent_sums(@builtin(local_invocation_index) t: u32) {
    let lane = t % LANES;
    let cl = t / LANES;
    for (var row0 = 0u; row0 < p.rows; row0 += RB) {
        for (var col0 = 0u; col0 < p.cols; col0 += CB) {
            let col = col0 + cl;
            var acc = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            if (col < p.cols) {
                // Rows past the last repeat it (loads stay in bounds; never stored).
                var x_at = array<u32, 8>(0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
                for (var i = 0u; i < RB; i++) {
                    x_at[i] = min(row0 + i, p.rows - 1u) * p.k;
                }
                let w_at = col * p.k;
                for (var q = lane; q < p.k; q += LANES) {
                    let wv = w_in[w_at + q];
                    for (var i = 0u; i < RB; i++) {
                        acc[i] = fma(x_in[x_at[i] + q], wv, acc[i]);
                    }
                }
            }
            for (var i = 0u; i < RB; i++) {
                partial[i * WG_1D + t] = acc[i];
            }
            workgroupBarrier();
            // Logit (row0 + i, col0 + c): invocation t = i * CB + c < 64.
            let i = t / CB;
            let c = t % CB;
            if (t < RB * CB && row0 + i < p.rows && col0 + c < p.cols) {
                var sum = 0.0;
                for (var l = 0u; l < LANES; l++) {
                    sum += partial[i * WG_1D + c * LANES + l];
                }
                logits[(row0 + i) * p.cols + col0 + c] = sum + bias_in[col0 + c];
            }
            workgroupBarrier();
        }
    }
    // The logits written above, visible to every invocation of the workgroup.
    storageBarrier();
    var acc = vec2(0.0, 0.0);
    if (t < p.rows) {
        acc = acc + xent_row(t);
    }
    store_step_sums(t, acc);
}

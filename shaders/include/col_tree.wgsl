// Included by src/backend/gpu/kernels.rs into reduce.wgsl (col_sum), matmul.wgsl (the split-k
// reduce's col_sum workgroups), matmul_f16.wgsl (its col_sum workgroups) and amp.wgsl
// (amp_col_sum_unscale): the second half of col_sum's order, shared so that every copy adds
// in the same order.

// A col_sum workgroup is 32 columns × 8 row lanes: invocation t is column t % 32 and lane t / 32,
// and lane l has summed rows ≡ l (mod 8) in order from 0 into `acc`. The lanes are added by the
// tree 4, 2, 1 in workgroup memory; invocations of lane 0 get their column's total. Called by
// every invocation of the workgroup (it has barriers).
var<workgroup> col_tree: array<f32, 256>;

fn col_tree_sum(t: u32, acc: f32) -> f32 {
    let lane = t / 32u;
    col_tree[t] = acc;
    workgroupBarrier();
    for (var s = 4u; s > 0u; s = s >> 1u) {
        if (lane < s) {
            col_tree[t] = col_tree[t] + col_tree[t + s * 32u];
        }
        workgroupBarrier();
    }
    return col_tree[t];
}

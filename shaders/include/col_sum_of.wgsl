// Included by src/backend/gpu/kernels.rs with the fused epilogues: the bias-gradient epilogue
// (4)'s column sum, by one invocation.

// Σ_{i<P.k} e_in[i * P.m + c]: column c of S = e_in [k, m], with the float operations of
// reduce.wgsl's col_sum in their order (8 row lanes, lane l summing rows i ≡ l (mod 8) in
// order, then the lanes by the tree 4, 2, 1), so the same bits as the unfused col_sum.
fn col_sum_of(c: u32) -> f32 {
    var lanes: array<f32, 8>;
    for (var l = 0u; l < 8u; l++) {
        var acc = 0.0;
        for (var i = l; i < P.k; i += 8u) {
            acc = acc + e_in[i * P.m + c];
        }
        lanes[l] = acc;
    }
    for (var s = 4u; s > 0u; s = s >> 1u) {
        for (var l = 0u; l < s; l++) {
            lanes[l] = lanes[l] + lanes[l + s];
        }
    }
    return lanes[0];
}

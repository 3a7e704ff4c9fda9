// Included by src/backend/gpu/kernels.rs into matmul_f16.wgsl, matmul_coop.wgsl and
// matmul_coop_staged.wgsl: the parameter block of the f16 products (mirrored by `HalfParams` in
// src/backend/gpu/matmul_f16.rs, 64 bytes), bound by each file as `P` at binding 0.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    alpha: f32,
    beta: f32,
    // to_half: number of f32 elements.
    len: u32,
    // the fused epilogue (include/epilogue_f16.wgsl): 0 none, 1 bias, 2 bias + φ, 3 · φ'(Z),
    // 4 bias gradient, 5 the same by col_sum workgroups (shaders/include/epilogue*.wgsl).
    epi: u32,
    // φ of epilogues 2 and 3: 0 identity, 1 relu, 2 tanh (act.wgsl's codes).
    act: u32,
    // 1: the epilogue's result (Y for epilogue 2, else C) is also rounded to f16 into H.
    half_out: u32,
    // 1: C (and G) times 1 / S of the loss scaler at binding 7, flagging inf and NaN.
    unscale: u32,
    // matmul_f16_skinny: k lanes per column (a power of two, 8 to 256; 256 / k_lanes columns
    // per workgroup).
    k_lanes: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

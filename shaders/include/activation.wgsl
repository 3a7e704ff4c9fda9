// φ and φ' of the fused epilogues, for the act codes of act.wgsl (0 identity, 1 relu, 2
// tanh): the same float operations as act.wgsl's kernels, so a fused store gives their bits.
// Included by src/backend/gpu/kernels.rs into the matmul shaders that fuse an epilogue.

// tanh without overflow for large |v| (as in act.wgsl).
fn epi_tanh(v: f32) -> f32 {
    let t = exp(-2.0 * abs(v));
    let r = (1.0 - t) / (1.0 + t);
    return select(r, -r, v < 0.0);
}

fn epi_phi(v: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return epi_tanh(v); }
        default: { return v; }
    }
}

// g φ'(v), as act.wgsl's `dgrad`. ReLU's is a select, not g times a 0/1 factor: a compiler may
// fold that product into a select where it assumes no signed zeros and no NaNs (Mesa 26's
// lavapipe does in specialised pipelines), and then a fused and an unfused store differ in the
// sign of a masked zero or in a masked NaN. As a select the masked gradient is +0 whatever g
// is, on every compiler (PyTorch's threshold_backward).
fn epi_dgrad(g: f32, v: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return select(0.0, g, v > 0.0); }
        case 2u: { let t = epi_tanh(v); return g * (1.0 - t * t); }
        default: { return g; }
    }
}

//! CPU twin of the ceilings ([`crate::backend::ceiling`]): the output each ceiling kernel
//! stores, computed in f64 from the same operands. Every sum is exact in f32 within
//! [`Ceiling::max_iters`], so the GPU's output must equal this bit for bit.

use crate::backend::ceiling::Ceiling;

/// The output of `workgroups` workgroups of `ceiling` run for `iters` iterations on A = `a` and
/// B = `b` (f32 values; the tensor-core ceilings read them as halves, which they are exactly).
/// Elements a kernel leaves unwritten (the 2x2 ceiling's 12 other tiles) are 0, as the caller
/// zeroes the output first.
pub fn ceiling_output(
    ceiling: Ceiling,
    workgroups: usize,
    iters: u32,
    a: &[f32],
    b: &[f32],
) -> Vec<f32> {
    let one = match ceiling {
        Ceiling::Fp32Fma => return fma_output(workgroups, iters),
        Ceiling::TiledInner => tiled_inner(iters, a, b),
        Ceiling::CoopRegs2x2 => coop_regs(2, iters, a, b),
        Ceiling::CoopRegs4x4 => coop_regs(4, iters, a, b),
        // The load width changes how the tiles are read, not what they hold.
        Ceiling::CoopStaged | Ceiling::CoopStagedV4 | Ceiling::CoopStagedV8 => coop_staged(iters, a, b),
    };
    // Every workgroup computes the same values.
    one.iter().copied().cycle().take(one.len() * workgroups).collect()
}

/// `ceiling_fma`: invocation i starts its chain j (component c) at (i mod 8) + j + c and adds
/// 1 per iteration; it stores the sum of its 8 chains.
fn fma_output(workgroups: usize, iters: u32) -> Vec<f32> {
    let n = workgroups * 256;
    let mut out = Vec::with_capacity(n * 4);
    for i in 0..n {
        for c in 0..4 {
            let base = ((i % 8) + c) as f64;
            out.push((8.0 * base + 28.0 + 8.0 * f64::from(iters)) as f32);
        }
    }
    out
}

/// `matmul_inner_ceiling`: buffer s of the slices is A (B) vec4s [256 s, 256 s + 256), vec4
/// `p * 32 + r` of a buffer holding rows (columns) 4r..4r+4 of depth p; invocation (tx, ty)
/// multiplies rows ty and 16 + ty (vec4s) by columns tx and 16 + tx and stores the column
/// sums of its 8x8 accumulator (one vec4: component c sums the columns c and 4 + c... of
/// both column vec4s).
fn tiled_inner(iters: u32, a: &[f32], b: &[f32]) -> Vec<f32> {
    let vec4 = |x: &[f32], v: usize| -> [f64; 4] { std::array::from_fn(|c| f64::from(x[4 * v + c])) };
    let mut out = Vec::with_capacity(256 * 4);
    // Slices with buffer 0 and with buffer 1.
    let counts = [f64::from(iters.div_ceil(2)), f64::from(iters / 2)];
    for t in 0..256 {
        let (tx, ty) = (t % 16, t / 16);
        let mut sum = [0.0f64; 4];
        for (buf, count) in counts.iter().enumerate() {
            for p in 0..8 {
                let o = buf * 256 + p * 32;
                let rows: f64 = [vec4(a, o + ty), vec4(a, o + 16 + ty)].iter().flatten().sum();
                let (b0, b1) = (vec4(b, o + tx), vec4(b, o + 16 + tx));
                for c in 0..4 {
                    sum[c] += count * rows * (b0[c] + b1[c]);
                }
            }
        }
        out.extend(sum.map(|s| s as f32));
    }
    out
}

/// The 16x16 product of the tile of A at `a_at(i, kk)` and of B at `b_at(kk, j)`, row-major.
fn tile_product(a_at: impl Fn(usize, usize) -> f64, b_at: impl Fn(usize, usize) -> f64) -> Vec<f64> {
    let mut c = vec![0.0; 256];
    for i in 0..16 {
        for j in 0..16 {
            c[i * 16 + j] = (0..16).map(|kk| a_at(i, kk) * b_at(kk, j)).sum();
        }
    }
    c
}

/// `coop_ceiling4` (side 2) and `coop_ceiling16` (side 4): tile (r, q) at 4 r + q is `iters`
/// times tile r of A [64, 16] (rows 16 r..) by tile q of B [16, 64] (columns 16 q..).
fn coop_regs(side: usize, iters: u32, a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; 16 * 256];
    for r in 0..side {
        for q in 0..side {
            let tile = tile_product(
                |i, kk| f64::from(a[(16 * r + i) * 16 + kk]),
                |kk, j| f64::from(b[kk * 64 + 16 * q + j]),
            );
            for (e, v) in tile.iter().enumerate() {
                out[(4 * r + q) * 256 + e] = (f64::from(iters) * v) as f32;
            }
        }
    }
    out
}

/// `coop_staged_ceiling`: warp w owns rows 64 (w / 2).. and columns 64 (w % 2).. of the
/// 128x128 block; per slice on buffer s (5120 halves each; A rows of 40 halves [row][depth], B
/// rows of 136 [depth][column]) it adds the products of depths 0..16 and 16..32.
fn coop_staged(iters: u32, a: &[f32], b: &[f32]) -> Vec<f32> {
    let counts = [f64::from(iters.div_ceil(2)), f64::from(iters / 2)];
    let mut out = vec![0.0f32; 4 * 16 * 256];
    for w in 0..4 {
        let (qr, qc) = (64 * (w / 2), 64 * (w % 2));
        for u in 0..4 {
            for v in 0..4 {
                let mut sum = vec![0.0f64; 256];
                for (buf, count) in counts.iter().enumerate() {
                    for d in [0, 16] {
                        let base = buf * 5120;
                        let tile = tile_product(
                            |i, kk| f64::from(a[base + (qr + 16 * u + i) * 40 + d + kk]),
                            |kk, j| f64::from(b[base + (d + kk) * 136 + qc + 16 * v + j]),
                        );
                        sum.iter_mut().zip(&tile).for_each(|(s, x)| *s += count * x);
                    }
                }
                let at = (w * 16 + 4 * u + v) * 256;
                out[at..at + 256].iter_mut().zip(&sum).for_each(|(o, s)| *o = *s as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fma_chains_count_their_iterations() {
        let out = ceiling_output(Ceiling::Fp32Fma, 1, 5, &[], &[]);
        assert_eq!(out.len(), 1024);
        // Invocation 9: base 1, chains 1 + c + j + 5 for j < 8.
        let want: Vec<f32> = (0..4).map(|c| (0..8).map(|j| (1 + c + j + 5) as f32).sum()).collect();
        assert_eq!(out[36..40], want[..]);
    }

    #[test]
    fn the_tensor_ceilings_scale_one_product_by_the_iterations() {
        let a: Vec<f32> = (0..1024).map(|i| ((i % 5) as f32 - 2.0) * 0.125).collect();
        let b: Vec<f32> = (0..1024).map(|i| ((i % 7) as f32 - 3.0) * 0.125).collect();
        let one = ceiling_output(Ceiling::CoopRegs4x4, 1, 1, &a, &b);
        let three = ceiling_output(Ceiling::CoopRegs4x4, 2, 3, &a, &b);
        assert_eq!(three.len(), 2 * one.len());
        assert!(one.iter().zip(&three).all(|(x, y)| 3.0 * x == *y));
        // Element (1, 2) of tile (0, 0): row 1 of A by column 2 of B.
        let want: f32 = (0..16).map(|kk| a[16 + kk] * b[kk * 64 + 2]).sum();
        assert_eq!(one[18], want);
        // The 2x2 ceiling writes tiles 0, 1, 4, 5 only.
        let two = ceiling_output(Ceiling::CoopRegs2x2, 1, 1, &a, &b);
        assert_eq!(two[..512], one[..512]);
        assert!(two[512..1024].iter().all(|&x| x == 0.0));
    }
}

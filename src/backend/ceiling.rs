//! The arithmetic ceilings of a device through WGSL (`batchscope gemm --ceilings`): small
//! kernels that run the multiply-add loops of the matmul kernels with no storage traffic in
//! the loop, so that a kernel's TFLOP/s can be held against what its own loop reaches on the
//! same device, not only against a data-sheet peak. Each ceiling has a GPU kernel
//! ([`crate::backend::gpu::ceilings`]) and a CPU twin ([`crate::backend::cpu::ceilings`]) that
//! computes the same output exactly: the operands are [`pattern_value`]s (multiples of 1/8) or
//! integers, every partial sum stays exact in f32 up to [`Ceiling::max_iters`] iterations, so
//! a run's output is compared bit for bit before its time is reported.
//!
//! | ceiling | loop | bounds |
//! |---|---|---|
//! | `fp32_fma` | 8 independent vec4 FMA chains in registers | every fp32 kernel |
//! | `tiled_inner` | `mma_slice` of matmul.wgsl from workgroup memory, one barrier per slice | the 128x128 tiled kernels |
//! | `coop_regs_2x2` | 4 cooperative multiply-adds into 4 accumulators | the 32x32 tensor-core kernels |
//! | `coop_regs_4x4` | 16 multiply-adds into 16 accumulators | the 64x64 and staged ones |
//! | `coop_staged` | the staged kernel's tile loads from workgroup memory and 16 multiply-adds | the staged kernel |
//! | `coop_staged_v4`, `coop_staged_v8` | the same loop, tiles loaded as 8- and 16-byte elements | the staged kernel with those loads |
//!
//! [`pattern_value`]: crate::backend::gpu::autotune::verify::pattern_value

/// One ceiling (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ceiling {
    Fp32Fma,
    TiledInner,
    CoopRegs2x2,
    CoopRegs4x4,
    CoopStaged,
    /// [`Ceiling::CoopStaged`]'s loop with its tile loads reading `vec4<f16>` elements.
    CoopStagedV4,
    /// [`Ceiling::CoopStaged`]'s loop with its tile loads reading 16-byte elements (the
    /// retyped module, as NVIDIA's sample loads its tiles).
    CoopStagedV8,
}

/// Salts of the A and B operands of the ceilings that read any.
pub const SALTS: (u64, u64) = (7, 11);

impl Ceiling {
    pub const ALL: [Ceiling; 7] = [
        Ceiling::Fp32Fma,
        Ceiling::TiledInner,
        Ceiling::CoopRegs2x2,
        Ceiling::CoopRegs4x4,
        Ceiling::CoopStaged,
        Ceiling::CoopStagedV4,
        Ceiling::CoopStagedV8,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ceiling::Fp32Fma => "fp32_fma",
            Ceiling::TiledInner => "tiled_inner",
            Ceiling::CoopRegs2x2 => "coop_regs_2x2",
            Ceiling::CoopRegs4x4 => "coop_regs_4x4",
            Ceiling::CoopStaged => "coop_staged",
            Ceiling::CoopStagedV4 => "coop_staged_v4",
            Ceiling::CoopStagedV8 => "coop_staged_v8",
        }
    }

    /// What the loop is, for a table.
    pub fn what(self) -> &'static str {
        match self {
            Ceiling::Fp32Fma => "fp32 FMA, registers",
            Ceiling::TiledInner => "tiled kernels' inner loop, workgroup memory",
            Ceiling::CoopRegs2x2 => "tensor cores, 2x2 tiles per warp, registers",
            Ceiling::CoopRegs4x4 => "tensor cores, 4x4 tiles per warp, registers",
            Ceiling::CoopStaged => "staged kernel's loop, workgroup memory",
            Ceiling::CoopStagedV4 => "staged kernel's loop, workgroup memory, 8-byte tile loads",
            Ceiling::CoopStagedV8 => "staged kernel's loop, workgroup memory, 16-byte tile loads",
        }
    }

    /// Whether it runs on cooperative matrices (f16 operands, f32 sums).
    pub fn is_coop(self) -> bool {
        matches!(self, Ceiling::CoopRegs2x2 | Ceiling::CoopRegs4x4) || self.staged_width().is_some()
    }

    /// The tile loads' element of a staged ceiling, `None` for the others.
    pub fn staged_width(self) -> Option<crate::backend::gpu::coop_shape::LoadWidth> {
        use crate::backend::gpu::coop_shape::LoadWidth;
        match self {
            Ceiling::CoopStaged => Some(LoadWidth::Halves),
            Ceiling::CoopStagedV4 => Some(LoadWidth::Vec4),
            Ceiling::CoopStagedV8 => Some(LoadWidth::Vec8),
            _ => None,
        }
    }

    /// Floating-point operations (a multiply-add is two) per workgroup and iteration.
    pub fn flops_per_iter(self) -> f64 {
        let tile = 2.0 * 16.0 * 16.0 * 16.0;
        match self {
            Ceiling::Fp32Fma => 256.0 * 32.0 * 2.0,
            Ceiling::TiledInner => 256.0 * 8.0 * 64.0 * 2.0,
            Ceiling::CoopRegs2x2 => 4.0 * tile,
            Ceiling::CoopRegs4x4 => 16.0 * tile,
            Ceiling::CoopStaged | Ceiling::CoopStagedV4 | Ceiling::CoopStagedV8 => {
                4.0 * 2.0 * 16.0 * tile
            }
        }
    }

    /// Iterations up to which every sum of the output is exact in f32 (terms of at least 1/64,
    /// products of multiples of 1/8, and at most 1/4: [`SALTS`]' pattern; at most 2^20 of them
    /// per output element, so every partial sum is a multiple of 1/64 below 2^18; integers
    /// below 2^24 for the FMA chains), and below llvmpipe's 65535 iterations per loop (its
    /// shaders leave a loop there, whatever the bound says). A tensor core that rounds its
    /// sums more coarsely than IEEE f32 (aligning every term to the largest exponent) keeps a
    /// few bits of margin at these magnitudes; a `WRONG` coop ceiling is worth reading with
    /// that in mind before the indexing is suspected.
    pub fn max_iters(self) -> u32 {
        match self {
            // 16 accumulators x 8 depths per slice summed into each output.
            Ceiling::TiledInner => 1 << 13,
            // The staged loop: two 16-deep tiles per slice.
            _ => 1 << 15,
        }
    }

    /// Elements of A and of B it reads (f32 for the tiled loop, halves for the tensor-core
    /// ones, none for the FMA chains).
    pub fn operand_len(self) -> usize {
        match self {
            Ceiling::Fp32Fma => 0,
            Ceiling::TiledInner => 2 * 256 * 4,
            Ceiling::CoopRegs2x2 | Ceiling::CoopRegs4x4 => 64 * 16,
            Ceiling::CoopStaged | Ceiling::CoopStagedV4 | Ceiling::CoopStagedV8 => 2 * 5120,
        }
    }

    /// f32 elements of its output for `workgroups` workgroups.
    pub fn out_len(self, workgroups: usize) -> usize {
        workgroups
            * match self {
                Ceiling::Fp32Fma | Ceiling::TiledInner => 256 * 4,
                Ceiling::CoopRegs2x2 | Ceiling::CoopRegs4x4 => 16 * 256,
                Ceiling::CoopStaged | Ceiling::CoopStagedV4 | Ceiling::CoopStagedV8 => 4 * 16 * 256,
            }
    }

    /// TFLOP/s of `workgroups` x `iters` in `ms`.
    pub fn tflops(self, workgroups: usize, iters: u32, ms: f64) -> f64 {
        self.flops_per_iter() * workgroups as f64 * f64::from(iters) / (ms * 1e-3) / 1e12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_the_exact_range_is_a_power_of_two() {
        let mut names: Vec<_> = Ceiling::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Ceiling::ALL.len());
        for c in Ceiling::ALL {
            assert!(c.max_iters().is_power_of_two() && c.flops_per_iter() > 0.0, "{c:?}");
            assert_eq!(c.is_coop(), c.name().starts_with("coop"), "{c:?}");
        }
        // 1 ms for 1000 workgroups of 1000 FMA iterations: 16.384 TFLOP/s.
        assert!((Ceiling::Fp32Fma.tflops(1000, 1000, 1.0) - 16.384).abs() < 1e-9);
    }
}

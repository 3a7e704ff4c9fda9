//! The matmul family (CPU twin of `shaders/matmul.wgsl`): `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]`.
//!
//! [`matmul`] picks one [`Kernel`] per shape from a fixed table ([`choose`]), never by timing at
//! run time, so a given shape always runs the same code and the CPU results are bitwise
//! reproducible for a given thread count (the hand-written kernels do not even depend on it) on
//! a given machine. The table also reads the machine ([`Machine`]: whether MKL is loaded,
//! OpenBLAS's width, the dot kernel's AVX-512 path), so at some shapes (the forward product at
//! B = 33–128) an AVX-512 and an AVX2 CPU run different kernels and their bits differ, as
//! `gemm`'s own kernels already do.
//! The table was set on `cargo bench --bench cpu_gemm` (the MLP's products at every power-of-two
//! batch; numbers in `docs/CPU_PERF.md`):
//!
//! * [`Kernel::Dot`] for `A · Bᵀ` with 2..=32 rows — a layer's forward product at small batch,
//!   where `gemm`'s packing of the whole weight matrix for a few rows dominates (up to 128 rows
//!   with the kernel's AVX-512 path and no OpenBLAS in the table, [`WIDE_DOT_MAX_M`]) — and for
//!   the 10-class output layer's forward product from batch 32 up;
//! * [`Kernel::Rows`] for the weight gradient `dYᵀ · X` at batch 1..=16 (1..=8 with MKL);
//! * [`Kernel::OpenBlas`] (the system's OpenBLAS, loaded at run time, split over rayon's pool by
//!   shape) for the batch-row products at mid batch: the forward `X · Wᵀ` at 33..=256 rows and
//!   the input gradient `dY · W` at 17..=64 rows, where it measured 1.2–1.8× `gemm`;
//! * [`Kernel::Gemm`] (the `gemm` crate with its AVX-512 kernels, packed, on rayon's pool)
//!   for everything else, including batch 1 (its matrix-vector path), and for the OpenBLAS rows
//!   where no `libopenblas.so.0` is installed (or `BATCHSCOPE_BLAS=builtin`), or where its
//!   kernels are narrower than `gemm`'s (AVX2 OpenBLAS on an AVX-512 CPU: AMD Zen 5 with
//!   OpenBLAS 0.3.21). Where `B`'s columns are rows of a weight matrix whose length is a multiple
//!   of 512 (`A · Bᵀ` with `k = 1024`), `gemm` reads them from a padded copy (`matmul/pad.rs`).
//!
//! * [`Kernel::Mkl`] (oneMKL, loaded at run time where installed, its AVX-512 path on an
//!   AVX-512 CPU) for every product but the tiny-batch weight gradients and the narrow output
//!   layer's forward product, whose hand-written kernels stay: see [`choose_with`].
//!
//! Transposes are expressed as strides, never copied (the padded copy keeps the layout). Every
//! kernel stays callable through [`sgemm_with`] for benches and cross-checks. [`matmul_naive`]
//! is the plain triple loop in f64, the reference for tests only.

mod blas_blocks;
mod crates;
mod dot;
mod dot_avx512;
pub mod mkl;
pub mod openblas;
mod pad;
mod rows;
mod tasks;

use crate::backend::{check_len, gemm_lens, BackendError, Gemm, Result};

/// One implementation of the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `gemm` 0.19 (sarah-quinones), packed micro-kernels, threaded through rayon's pool.
    Gemm,
    /// `matrixmultiply` 0.3, single-threaded (benches and cross-checks only).
    MatrixMultiply,
    /// OpenBLAS's `cblas_sgemm` (loaded at run time), split over rayon's pool by shape.
    OpenBlas,
    /// oneMKL's `cblas_sgemm` (loaded at run time), whole, on its own threads (as many as
    /// rayon's pool, or a data-parallel replica's share of it).
    Mkl,
    /// Unpacked row combinations `C[i,:] = Σ_p op(A)[i,p] B[p,:]`; needs `!trans_b`.
    Rows,
    /// Unpacked dot products of rows `C[i,j] = A[i,:] · B[j,:]`; needs `!trans_a && trans_b`.
    Dot,
}

impl Kernel {
    /// Every kernel, for benches and tests.
    pub const ALL: [Kernel; 6] =
        [Kernel::Gemm, Kernel::OpenBlas, Kernel::Mkl, Kernel::MatrixMultiply, Kernel::Rows, Kernel::Dot];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Gemm => "gemm",
            Kernel::MatrixMultiply => "matrixmultiply",
            Kernel::OpenBlas => "openblas",
            Kernel::Mkl => "mkl",
            Kernel::Rows => "rows",
            Kernel::Dot => "dot",
        }
    }

    /// Whether the kernel can compute products of `g`'s layout.
    pub fn supports(self, g: &Gemm) -> bool {
        match self {
            Kernel::Gemm | Kernel::MatrixMultiply => true,
            Kernel::OpenBlas => openblas::get().is_some() && fits_int(g),
            Kernel::Mkl => mkl::get().is_some() && fits_int(g),
            Kernel::Rows => !g.trans_b,
            Kernel::Dot => !g.trans_a && g.trans_b,
        }
    }
}

/// Whether every dimension of `g` fits in a C `int` (the CBLAS interface's).
fn fits_int(g: &Gemm) -> bool {
    g.m.max(g.n).max(g.k) <= i32::MAX as usize
}

/// [`Kernel::Dot`] for `A · Bᵀ` with `2 ..= DOT_MAX_M` rows (a forward product at small batch;
/// at batch 1 the `gemm` crate's matrix-vector path streams the weights faster)...
pub const DOT_MAX_M: usize = 32;
/// ...and for at most this many columns from [`DOT_MAX_M`] rows up (a narrow output layer at
/// larger batch; below that, `gemm` is faster on the bench).
pub const DOT_MAX_N: usize = 16;
/// With the dot kernel's AVX-512 path ([`Machine::wide_dot`]) and no OpenBLAS in the table, the
/// forward product runs on [`Kernel::Dot`] up to this many rows (AMD Zen 5, 2 threads: 270–350
/// GFLOP/s at B = 64 against `gemm`'s 200–280; level with it at 256). Where OpenBLAS is in the
/// table (measured on an Intel Xeon, before the AVX-512 path) its rows stand.
pub const WIDE_DOT_MAX_M: usize = 128;
/// [`Kernel::Rows`] for `op(A)ᵀ · B` with `1 ..= ROWS_MAX_K` inner length and at least
/// [`ROWS_MIN_M`] rows: the weight gradient `dYᵀ · X` at a small batch, where the CPU also fuses
/// the optimizer step into it (`cpu::layer_step`). Up to k = 16 the fused rank-k update stays
/// memory-bound (2k FLOP per 16 bytes of W and its velocity, under the ridge), and skipping the
/// re-read of a whole gW beats `gemm`'s packed product plus a separate update: on an Intel Xeon
/// (2 threads, OpenBLAS in the table; 3 interleaved runs) the step of 784-1024-1024-10 went
/// from 2.12–2.32 to 1.61–1.78 ms at B = 8 and from 2.50–2.69 to 2.28–2.59 at B = 16; k = 32
/// gained nothing (3.16–3.47 against 3.39–3.58 ms).
pub const ROWS_MAX_K: usize = 16;
/// [`ROWS_MAX_K`] where oneMKL is in the table: MKL's weight gradient at k = 16 beat the fused
/// rows kernel there (B = 16: 2.25–3.59 ms per step on MKL, 3.57–4.15 on rows), while at k = 8
/// the fused one still won in 7 of 9 runs (1.26–1.45 against 1.75–2.19 ms; MKL's spin-waiting
/// threads put the other two at 2.54 and 2.79).
pub const ROWS_MAX_K_MKL: usize = 8;
/// See [`ROWS_MAX_K`].
pub const ROWS_MIN_M: usize = 16;

/// Rows of `C` for which the forward product `X · Wᵀ` runs on OpenBLAS (above them `gemm`'s
/// packed kernels win; below, [`Kernel::Dot`]).
pub const BLAS_NT_ROWS: std::ops::RangeInclusive<usize> = (DOT_MAX_M + 1)..=256;
/// Rows of `C` for which the input gradient `dY · W` (no transposes) runs on OpenBLAS.
pub const BLAS_NN_ROWS: std::ops::RangeInclusive<usize> = 17..=64;

/// The kernel [`matmul`] runs for `g`: a pure function of the shape and layout and of the
/// [`Machine`]: whether MKL or OpenBLAS is loaded with kernels as wide as `gemm`'s (otherwise
/// their rows fall back to `gemm`), and whether the dot kernel has its AVX-512 path.
pub fn choose(g: &Gemm) -> Kernel {
    choose_with(g, Machine::this())
}

/// What of the machine the shape table depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// OpenBLAS is loaded with kernels as wide as `gemm`'s
    /// ([`openblas::OpenBlas::as_wide_as_gemm`]).
    pub blas: bool,
    /// The dot kernel runs its AVX-512 path.
    pub wide_dot: bool,
    /// oneMKL is loaded with kernels as wide as `gemm`'s ([`mkl::Mkl::as_wide_as_gemm`]).
    pub mkl: bool,
}

impl Machine {
    /// A machine with none of the optional kernels: `gemm` and the hand-written AVX2 ones.
    pub const PLAIN: Machine = Machine { blas: false, wide_dot: false, mkl: false };

    /// This process's machine (the probes are made once).
    pub fn this() -> Self {
        Machine {
            blas: openblas::get().is_some_and(|b| b.as_wide_as_gemm()),
            wide_dot: dot_avx512::available(),
            mkl: mkl::get().is_some_and(|m| m.as_wide_as_gemm()),
        }
    }
}

/// The system BLAS of the device name: `", oneMKL 2026.2"` or `", OpenBLAS SkylakeX"` where the
/// table uses one, and why one that was found is left out; empty without either.
pub fn blas_name() -> String {
    let mkl = match (mkl::get(), mkl::unused()) {
        (Some(m), _) if m.as_wide_as_gemm() => return format!(", {}", m.version),
        (Some(m), _) => format!(
            ", {} unused: its code path (CBWR branch {}) is narrower than gemm's AVX-512",
            m.version, m.branch
        ),
        (None, Some(why)) => format!(", oneMKL unused: {}", why.0),
        (None, None) => String::new(),
    };
    let blas = match openblas::get() {
        Some(b) if b.as_wide_as_gemm() => format!(", OpenBLAS {}", b.core),
        Some(b) => format!(", OpenBLAS {} unused: narrower than gemm's AVX-512", b.core),
        None => String::new(),
    };
    mkl + &blas
}

/// [`choose`] on the machine `on`, for tests of every table.
///
/// With MKL every product runs on it but two kinds, which keep their hand-written kernels:
/// the weight gradient at batch 1–8 ([`Kernel::Rows`], which the CPU fuses with the optimizer
/// step, `cpu::layer_step`) and the narrow output layer's forward product ([`Kernel::Dot`]).
/// On an Intel Xeon (Sapphire Rapids, 2 threads, oneMKL 2026.2) MKL ran every other product of
/// the MLP step faster than `gemm`, OpenBLAS and the dot kernel at every batch from 1 to 4096
/// (`cargo bench --bench cpu_gemm`, `docs/CPU_PERF.md`).
pub fn choose_with(g: &Gemm, on: Machine) -> Kernel {
    let Machine { blas, wide_dot, mkl } = on;
    let narrow = g.n <= DOT_MAX_N && g.m >= DOT_MAX_M;
    let rows_max_k = if mkl { ROWS_MAX_K_MKL } else { ROWS_MAX_K };
    let rows = g.trans_a && (1..=rows_max_k).contains(&g.k) && g.m >= ROWS_MIN_M;
    if mkl && fits_int(g) {
        return if Kernel::Dot.supports(g) && narrow {
            Kernel::Dot
        } else if Kernel::Rows.supports(g) && rows {
            Kernel::Rows
        } else {
            Kernel::Mkl
        };
    }
    let dot_max_m = if wide_dot && !blas { WIDE_DOT_MAX_M } else { DOT_MAX_M };
    let dot = (2..=dot_max_m).contains(&g.m) || narrow;
    let blas_rows = match (g.trans_a, g.trans_b) {
        (false, true) => BLAS_NT_ROWS.contains(&g.m),
        (false, false) => BLAS_NN_ROWS.contains(&g.m),
        _ => false,
    };
    if Kernel::Dot.supports(g) && dot {
        Kernel::Dot
    } else if Kernel::Rows.supports(g) && rows {
        Kernel::Rows
    } else if blas && blas_rows && fits_int(g) {
        Kernel::OpenBlas
    } else {
        Kernel::Gemm
    }
}

/// Host bytes [`matmul`] may keep besides its operands for `X · Wᵀ` with `W: [n, k]`: the padded
/// copy of `W` (`matmul/pad.rs`), kept per calling thread for its next product; 0 where no product of
/// that weight is padded. Whatever the batch: an evaluation or curvature chunk (1024 rows) runs
/// on `gemm` even where the training step's rows run on another kernel.
pub fn workspace_bytes(n: usize, k: usize) -> u64 {
    if pad::wanted(&Gemm::nn(1024, n, k).trans(false, true)) {
        (n as u64).saturating_mul(k as u64 + pad::PAD as u64).saturating_mul(4)
    } else {
        0
    }
}

/// Checks the operand lengths of `g`: `a >= m*k`, `b >= k*n`, `c >= m*n`.
pub fn check_gemm(g: &Gemm, a: usize, b: usize, c: usize) -> Result<()> {
    let (la, lb, lc) = gemm_lens(g);
    check_len("matmul", "a", a, la)?;
    check_len("matmul", "b", b, lb)?;
    check_len("matmul", "c", c, lc)
}

/// `C = alpha * op(A) * op(B) + beta * C` with the kernel [`choose`] picks for the shape.
///
/// `a: [m,k]` (or `[k,m]` with `trans_a`), `b: [k,n]` (or `[n,k]` with `trans_b`), `c: [m,n]`;
/// longer buffers are fine, only the prefix is used. With `beta == 0` the old `C` is not read.
pub fn matmul(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    sgemm_with(choose(g), g, a, b, c)
}

/// Same as [`matmul`] with an explicit kernel (for benches and cross-checks); an `Invalid` error
/// when the kernel does not support `g`'s layout ([`Kernel::supports`]).
pub fn sgemm_with(which: Kernel, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    check_gemm(g, a.len(), b.len(), c.len())?;
    if !which.supports(g) {
        return Err(BackendError::Invalid {
            op: "matmul",
            message: format!("kernel `{}` does not support {g:?}", which.name()),
        });
    }
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let c = &mut c[..m * n];
    if k == 0 {
        // op(A)·op(B) is the zero matrix: C = beta * C, and beta == 0 overwrites (NaN included).
        if g.beta == 0.0 {
            c.fill(0.0);
        } else {
            c.iter_mut().for_each(|x| *x *= g.beta);
        }
        return Ok(());
    }
    let (a, b) = (&a[..m * k], &b[..k * n]);
    match which {
        Kernel::Gemm => crates::gemm_crate(g, a, b, c),
        Kernel::MatrixMultiply => crates::matrixmultiply_crate(g, a, b, c),
        Kernel::Mkl => mkl::run(mkl::get().ok_or_else(|| not_loaded(which, "libmkl_rt"))?, g, a, b, c),
        Kernel::OpenBlas => {
            let blas = openblas::get().ok_or_else(|| not_loaded(which, "libopenblas"))?;
            blas_blocks::run(blas, g, a, b, c)
        }
        Kernel::Rows => {
            let ((rsa, csa), _) = crates::strides(g);
            let (a, b) = (a.as_ptr(), b.as_ptr());
            let (alpha, beta) = (g.alpha, g.beta);
            let c = tasks::RawC::new(c);
            rows::Rows { m, n, k, a, rsa, csa, b, c, alpha, beta }.run();
        }
        Kernel::Dot => {
            let (a, b) = (a.as_ptr(), b.as_ptr());
            let (alpha, beta) = (g.alpha, g.beta);
            let c = tasks::RawC::new(c);
            dot::Dot { m, n, k, a, b, c, alpha, beta }.run();
        }
    }
    Ok(())
}

/// The error of a system-library kernel whose library is not loaded.
fn not_loaded(which: Kernel, library: &str) -> BackendError {
    BackendError::Invalid {
        op: "matmul",
        message: format!("kernel `{}`: {library} is not loaded", which.name()),
    }
}

/// Rows `i0 .. i0 + out.len() / n` of the weight gradient `C [m, n] = alpha · dzᵀ · x` (`g`
/// with `trans_a`, `beta = 0`; `dz: [k, m]`, `x: [k, n]`) into `out`, on the calling thread,
/// with [`Kernel::Rows`]'s arithmetic: where [`choose`] picks that kernel for `g`, the bits
/// [`matmul`] writes to those rows. The CPU's fused weight-gradient step (`cpu::layer_step`)
/// computes a block of rows and updates the same rows of the weights while they are in cache.
pub fn weight_grad_rows(g: &Gemm, i0: usize, dz: &[f32], x: &[f32], out: &mut [f32]) -> Result<()> {
    let (m, n, k) = (g.m, g.n, g.k);
    let rows = out.len() / n.max(1);
    if !g.trans_a || g.trans_b || g.beta != 0.0 || rows * n != out.len() || i0 + rows > m {
        return Err(BackendError::Invalid {
            op: "weight_grad_rows",
            message: format!(
                "rows {i0}.. of {} into {} elements: not a weight gradient's rows",
                m,
                out.len()
            ),
        });
    }
    check_len("weight_grad_rows", "dz", dz.len(), k * m)?;
    check_len("weight_grad_rows", "x", x.len(), k * n)?;
    if rows == 0 {
        return Ok(());
    }
    // Column i0 of dz [k, m]: op(A)[i, p] = dz[p * m + i0 + i].
    let a = dz[i0..].as_ptr();
    let c = tasks::RawC::new(out);
    rows::Rows { m: rows, n, k, a, rsa: 1, csa: m, b: x.as_ptr(), c, alpha: g.alpha, beta: 0.0 }
        .run_here();
    Ok(())
}

/// Reference product by the triple loop, accumulated in f64 (tests and kernel validation only).
///
/// Same shapes and semantics as [`matmul`], including `beta == 0` ignoring the old `C`.
pub fn matmul_naive(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    check_gemm(g, a.len(), b.len(), c.len())?;
    let (m, n, k) = (g.m, g.n, g.k);
    let ((rsa, csa), (rsb, csb)) = crates::strides(g);
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64;
            }
            let old = if g.beta == 0.0 { 0.0 } else { g.beta as f64 * c[i * n + j] as f64 };
            c[i * n + j] = (g.alpha as f64 * acc + old) as f32;
        }
    }
    Ok(())
}

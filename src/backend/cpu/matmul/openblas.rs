//! OpenBLAS's `cblas_sgemm`, loaded at run time from the system library when it is there.
//!
//! Loading at run time (as `nvml-wrapper` loads NVML) keeps the default build free of a link
//! dependency: where `libopenblas.so.0` is missing (or `BATCHSCOPE_BLAS=builtin`), the shape
//! table ([`super::choose`]) never picks [`super::Kernel::OpenBlas`] and the `gemm` crate runs
//! instead. Debian's and Ubuntu's `libopenblas0` are built with `DYNAMIC_ARCH`, so one library
//! picks its kernels (Haswell, SkylakeX, Zen, ...) for the CPU it finds. The table uses it only
//! where those kernels are as wide as `gemm`'s ([`OpenBlas::as_wide_as_gemm`]): an AVX2 core on an
//! AVX-512 CPU (0.3.21's `Haswell` on AMD Zen 5) is loaded but left out.
//!
//! Threads: OpenBLAS is told to run on the calling thread only (`openblas_set_num_threads(1)`),
//! and a product is split into column or row blocks of `C` that run on rayon's one pool
//! ([`super::blocks`]). So there is one pool, no oversubscription, and since the blocks are a
//! function of the shape alone, the result does not depend on the thread count.

use std::ffi::{c_char, c_float, c_int, CStr};
use std::sync::OnceLock;

/// `CBLAS_ORDER::CblasRowMajor`.
const ROW_MAJOR: c_int = 101;
/// `CBLAS_TRANSPOSE::CblasNoTrans`.
const NO_TRANS: c_int = 111;
/// `CBLAS_TRANSPOSE::CblasTrans`.
const TRANS: c_int = 112;

/// `cblas_sgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`.
pub(super) type SgemmFn = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_float,
    *const c_float,
    c_int,
    *const c_float,
    c_int,
    c_float,
    *mut c_float,
    c_int,
);
type SetThreadsFn = unsafe extern "C" fn(c_int);
type StrFn = unsafe extern "C" fn() -> *const c_char;

/// The loaded library and the entry points batchscope calls.
pub struct OpenBlas {
    sgemm: SgemmFn,
    /// `openblas_get_corename()`, e.g. `SkylakeX`.
    pub core: String,
    /// `openblas_get_config()`, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64`.
    pub config: String,
    /// Keeps the entry points valid for the life of the process.
    _lib: libloading::Library,
}

/// File names tried in order.
const NAMES: [&str; 3] = ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"];

/// Environment switch: `builtin` (or `off`) loads no BLAS; `openblas` or `mkl` only that one;
/// `auto` (the default) both where found; a path loads that file (MKL where its name starts
/// with `libmkl`, [`super::mkl::is_mkl_path`]; OpenBLAS otherwise).
pub const ENV: &str = "BATCHSCOPE_BLAS";

/// The process's OpenBLAS, loaded on first use; `None` where it is absent or switched off.
pub fn get() -> Option<&'static OpenBlas> {
    static BLAS: OnceLock<Option<OpenBlas>> = OnceLock::new();
    BLAS.get_or_init(|| {
        let choice = std::env::var(ENV).unwrap_or_default();
        match choice.trim() {
            "builtin" | "off" | "none" | "mkl" => None,
            path if super::mkl::is_mkl_path(path) => None,
            "" | "auto" => NAMES.iter().find_map(|name| load(name).ok()),
            // Asked for by name: its absence is said (once per process, on stderr).
            "openblas" => {
                let found = NAMES.iter().find_map(|name| load(name).ok());
                if found.is_none() {
                    eprintln!(
                        "notice: {ENV}=openblas: no libopenblas found; using the built-in gemm kernels"
                    );
                }
                found
            }
            path => match load(path) {
                Ok(blas) => Some(blas),
                Err(e) => {
                    eprintln!("notice: {ENV}={path}: {e}; using the built-in gemm kernels");
                    None
                }
            },
        }
    })
    .as_ref()
}

fn load(name: &str) -> Result<OpenBlas, libloading::Error> {
    // SAFETY: loading OpenBLAS runs its initialisers, which only probe the CPU and set up its
    // (here unused) thread pool; the symbols are looked up with their C signatures.
    unsafe {
        let lib = libloading::Library::new(name)?;
        let sgemm = *lib.get::<SgemmFn>(b"cblas_sgemm\0")?;
        let set_threads = *lib.get::<SetThreadsFn>(b"openblas_set_num_threads\0")?;
        let text = |sym: &[u8]| -> String {
            match lib.get::<StrFn>(sym) {
                Ok(f) => {
                    let p = f();
                    if p.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(p).to_string_lossy().trim().to_string()
                    }
                }
                Err(_) => String::new(),
            }
        };
        let core = text(b"openblas_get_corename\0");
        let config = text(b"openblas_get_config\0");
        set_threads(1);
        Ok(OpenBlas { sgemm, core, config, _lib: lib })
    }
}

/// Whether OpenBLAS's core `name` runs AVX-512 kernels.
pub fn core_has_avx512(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    AVX512_CORES.iter().any(|c| name == *c)
}

/// Whether this CPU has AVX-512F, which the `gemm` crate's kernels use where present.
pub(super) fn cpu_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One `cblas_sgemm` call on row-major operands.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub lda: usize,
    pub ldb: usize,
    pub beta: f32,
    pub ldc: usize,
}

/// OpenBLAS core names (`openblas_get_corename()`) whose SGEMM kernels use AVX-512 (`zen4` in
/// case a build names its AVX-512 AMD target so; unverified, and harmless where none does).
const AVX512_CORES: [&str; 4] = ["skylakex", "cooperlake", "sapphirerapids", "zen4"];

impl OpenBlas {
    /// Whether its kernels are at least as wide as the `gemm` crate's on this CPU: always on a
    /// CPU without AVX-512 (both run AVX2), and on one with AVX-512 only where OpenBLAS picked an
    /// AVX-512 core. OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 5 and runs its `Haswell`
    /// kernels there, at half `gemm`'s rate on every product of the MLP step (`docs/CPU_PERF.md`).
    pub fn as_wide_as_gemm(&self) -> bool {
        !cpu_has_avx512() || core_has_avx512(&self.core)
    }

    /// `C[m,n] (ldc) = alpha · op(A) · op(B) + beta · C`, single-threaded.
    ///
    /// # Safety
    /// `a`, `b`, `c` address every element the call reads or writes with the given leading
    /// dimensions; `c` does not alias `a` or `b`; every dimension fits in a C `int`.
    pub unsafe fn sgemm(&self, call: Call, a: *const f32, b: *const f32, c: *mut f32) {
        cblas(self.sgemm, call, a, b, c);
    }
}

/// One row-major `cblas_sgemm` call through `sgemm` (OpenBLAS's or MKL's).
///
/// # Safety
/// As [`OpenBlas::sgemm`].
pub(super) unsafe fn cblas(sgemm: SgemmFn, call: Call, a: *const f32, b: *const f32, c: *mut f32) {
    let t = |x: bool| if x { TRANS } else { NO_TRANS };
    sgemm(
        ROW_MAJOR,
        t(call.trans_a),
        t(call.trans_b),
        call.m as c_int,
        call.n as c_int,
        call.k as c_int,
        call.alpha,
        a,
        call.lda as c_int,
        b,
        call.ldb as c_int,
        call.beta,
        c,
        call.ldc as c_int,
    );
}

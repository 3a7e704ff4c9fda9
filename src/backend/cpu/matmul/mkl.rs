//! Intel oneMKL's `cblas_sgemm`, loaded at run time where `libmkl_rt` is installed.
//!
//! As with OpenBLAS ([`super::openblas`]) nothing is linked: the default build runs everywhere,
//! and where MKL is found (the loader's path, `$MKLROOT/lib`, `$CONDA_PREFIX/lib`,
//! `$VIRTUAL_ENV/lib`, `~/.local/lib`, `/usr/local/lib`, or the file `BATCHSCOPE_BLAS` names) the shape table ([`super::choose`])
//! gives it every product but the fused tiny-batch weight gradients and the narrow output layer. On
//! an Intel Xeon (Sapphire Rapids, 2 threads) its AVX-512 SGEMM ran the MLP step's products at
//! 307–356 GFLOP/s where the `gemm` crate ran 251–329 (`docs/CPU_PERF.md`).
//!
//! Threads: unlike OpenBLAS (one thread per call, the blocks split over rayon's pool), MKL runs
//! each product whole on its own OpenMP team of as many threads as rayon's pool has
//! (`MKL_Set_Num_Threads_Local`), because its threads share one packed copy of the operands;
//! split into blocks, each block packs the shared operand again, and the weight gradients
//! (depth 4096) ran at 170–204 GFLOP/s. Its results therefore depend on the thread count, as
//! the `gemm` crate's may; for a given thread count they are the same bits run after run:
//! conditional numerical reproducibility is set to the code path MKL picks
//! (`MKL_CBWR_Set(MKL_CBWR_AUTO)`, before any other call).
//!
//! MKL aborts the process when a library it needs at its first product is missing (its
//! threading layer, `libiomp5`). So before it is used, the files of the Intel OpenMP layer are
//! loaded here from `libmkl_rt`'s own directory; where one fails, MKL is left out, and the
//! reason is in [`Unused`] (`batchscope devices` and every CPU device name print it).

use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::openblas::{self, Call, SgemmFn};

/// `MKL_CBWR_AUTO`: the code path MKL detects, kept for the life of the process.
const CBWR_AUTO: c_int = 2;
/// `MKL_CBWR_SUCCESS`.
const CBWR_SUCCESS: c_int = 0;
/// `MKL_THREADING_INTEL`: Intel OpenMP (`libiomp5`), MKL's default layer.
const THREADING_INTEL: c_int = 0;
/// `MKL_CBWR_Get_Auto_Branch()` values whose SGEMM kernels are AVX-512 (`MKL_CBWR_AVX512`,
/// `MKL_CBWR_AVX512_E1`, `MKL_CBWR_AVX10`; `mkl_types.h` of oneMKL 2026.2).
const AVX512_BRANCHES: [c_int; 3] = [12, 14, 15];

type IntFn = unsafe extern "C" fn(c_int) -> c_int;
type VoidIntFn = unsafe extern "C" fn(c_int);
type BranchFn = unsafe extern "C" fn() -> c_int;
type VersionFn = unsafe extern "C" fn(*mut c_char, c_int);

/// Milliseconds MKL's OpenMP threads spin after a product before they sleep (Intel OpenMP's
/// default is 200). Between two products the step runs its element-wise ops on rayon's pool; a
/// thread spinning for 200 ms holds a core they need. On the Xeon, 2 threads, examples/s of the
/// MLP step, default / 0 / 1 ms: B = 2: 1 280–2 246 / 1 765–1 852 / 2 334–2 369; B = 64:
/// 17 678–18 061 / 15 113–15 685 / 18 009–18 108; B = 512: 26 090–26 486 / 25 343–25 709 /
/// 26 482–26 885. `KMP_BLOCKTIME` in the environment overrides it.
pub const BLOCKTIME_MS: c_int = 1;

/// The loaded library and the entry points batchscope calls.
pub struct Mkl {
    sgemm: SgemmFn,
    set_threads_local: IntFn,
    /// Intel OpenMP's `kmp_set_blocktime`, where batchscope sets the spin time (see
    /// [`BLOCKTIME_MS`]); `None` where `KMP_BLOCKTIME` is the user's.
    set_blocktime: Option<VoidIntFn>,
    /// `MKL_Get_Version_String()`, shortened: `oneMKL 2026.2`.
    pub version: String,
    /// `MKL_CBWR_Get_Auto_Branch()`: the instruction set of the code path MKL runs.
    pub branch: c_int,
    /// Keep the entry points and the preloaded threading layer valid for the process's life.
    _libs: Vec<libloading::Library>,
}

/// Why MKL is loaded but left out of the table, or why it was found but not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unused(pub String);

/// File names tried on the dynamic loader's path, newest interface first.
const NAMES: [&str; 3] = ["libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so"];

/// Whether `BATCHSCOPE_BLAS`'s value names an MKL file rather than an OpenBLAS one.
pub fn is_mkl_path(value: &str) -> bool {
    Path::new(value).file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with("libmkl"))
}

/// The process's MKL, loaded on first use; `None` where it is absent, switched off
/// (`BATCHSCOPE_BLAS=builtin` or `=openblas`), or unusable ([`unused`] says why).
pub fn get() -> Option<&'static Mkl> {
    state().as_ref().ok()
}

/// Why MKL was found but cannot run here; `None` where it runs or was never found.
pub fn unused() -> Option<&'static Unused> {
    state().as_ref().err().and_then(|e| e.as_ref())
}

/// `Ok(mkl)`, or `Err(None)` (not asked for or not found), or `Err(Some(why))`.
fn state() -> &'static Result<Mkl, Option<Unused>> {
    static MKL: OnceLock<Result<Mkl, Option<Unused>>> = OnceLock::new();
    MKL.get_or_init(|| {
        let choice = std::env::var(openblas::ENV).unwrap_or_default();
        let found = match choice.trim() {
            "builtin" | "off" | "none" | "openblas" => return Err(None),
            "" | "auto" => candidates().into_iter().find_map(|c| open(&c).ok()),
            "mkl" => match candidates().into_iter().find_map(|c| open(&c).ok()) {
                Some(lib) => Some(lib),
                None => {
                    eprintln!(
                        "notice: {}=mkl: no libmkl_rt found; using the built-in kernels",
                        openblas::ENV
                    );
                    None
                }
            },
            path if is_mkl_path(path) => match open(Path::new(path)) {
                Ok(lib) => Some(lib),
                Err(e) => {
                    eprintln!("notice: {}={path}: {e}; using the built-in kernels", openblas::ENV);
                    None
                }
            },
            _ => return Err(None),
        };
        let (lib, at) = found.ok_or(None)?;
        setup(lib, &at).map_err(|why| {
            log::warn!("oneMKL at {} unused: {}", at.display(), why.0);
            Some(why)
        })
    })
}

/// Where `libmkl_rt` may be: the loader's names, then `$MKLROOT` (oneAPI), `$CONDA_PREFIX` and
/// `$VIRTUAL_ENV` (the `mkl` package of conda or pip), `~/.local/lib` (`pip install --user`)
/// and `/usr/local/lib` (pip as root, where the loader's cache does not list it yet).
fn candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = NAMES.iter().map(PathBuf::from).collect();
    let dirs = [
        ("MKLROOT", "lib"),
        ("MKLROOT", "lib/intel64"),
        ("CONDA_PREFIX", "lib"),
        ("VIRTUAL_ENV", "lib"),
        ("HOME", ".local/lib"),
    ];
    let mut roots: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|(var, sub)| {
            std::env::var_os(var).filter(|r| !r.is_empty()).map(|r| Path::new(&r).join(sub))
        })
        .collect();
    roots.push(PathBuf::from("/usr/local/lib"));
    for dir in roots {
        out.extend(NAMES.iter().map(|n| dir.join(n)));
    }
    out
}

/// Loads `libmkl_rt` from `at` (a bare name goes through the loader's path).
fn open(at: &Path) -> Result<(libloading::Library, PathBuf), libloading::Error> {
    // SAFETY: loading libmkl_rt runs its initialisers, which only set up its dispatcher; no
    // computational library is loaded until the first call.
    let lib = unsafe { libloading::Library::new(at) }?;
    Ok((lib, at.to_path_buf()))
}

/// Sets the reproducibility mode, checks and preloads the threading layer, and looks up the
/// entry points of a loaded `libmkl_rt`.
fn setup(lib: libloading::Library, at: &Path) -> Result<Mkl, Unused> {
    let missing = |sym: &str| Unused(format!("no `{sym}` in it"));
    // SAFETY: each symbol is looked up with the C signature of oneMKL's mkl_service.h and
    // mkl_cblas.h; the function pointers are kept only alongside `lib`.
    unsafe {
        // First the libraries MKL would abort without, then its first call.
        let libs = preload_threading(at)?;
        let cbwr_set = *lib.get::<IntFn>(b"MKL_CBWR_Set\0").map_err(|_| missing("MKL_CBWR_Set"))?;
        let status = cbwr_set(CBWR_AUTO);
        if status != CBWR_SUCCESS {
            return Err(Unused(format!("MKL_CBWR_Set(AUTO) returned {status}")));
        }
        if std::env::var_os("MKL_THREADING_LAYER").is_none() {
            let layer = *lib
                .get::<IntFn>(b"MKL_Set_Threading_Layer\0")
                .map_err(|_| missing("MKL_Set_Threading_Layer"))?;
            layer(THREADING_INTEL);
        }
        let sgemm = *lib.get::<SgemmFn>(b"cblas_sgemm\0").map_err(|_| missing("cblas_sgemm"))?;
        let set_threads_local = *lib
            .get::<IntFn>(b"MKL_Set_Num_Threads_Local\0")
            .map_err(|_| missing("MKL_Set_Num_Threads_Local"))?;
        let branch = match lib.get::<BranchFn>(b"MKL_CBWR_Get_Auto_Branch\0") {
            Ok(f) => f(),
            Err(_) => 0,
        };
        let version = match lib.get::<VersionFn>(b"MKL_Get_Version_String\0") {
            Ok(f) => {
                let mut buf = [0 as c_char; 256];
                f(buf.as_mut_ptr(), buf.len() as c_int);
                short_version(&CStr::from_ptr(buf.as_ptr()).to_string_lossy())
            }
            Err(_) => "oneMKL".into(),
        };
        let set_blocktime = match std::env::var_os("KMP_BLOCKTIME") {
            Some(_) => None,
            None => {
                libs.iter().find_map(|l| l.get::<VoidIntFn>(b"kmp_set_blocktime\0").ok().map(|f| *f))
            }
        };
        let mut all = vec![lib];
        all.extend(libs);
        Ok(Mkl { sgemm, set_threads_local, set_blocktime, version, branch, _libs: all })
    }
}

/// Loads MKL's Intel OpenMP layer (`libmkl_core`, `libmkl_intel_thread` and through it
/// `libiomp5`) from `libmkl_rt`'s directory with its interface suffix, so that a missing file is
/// this function's error and not MKL's abort at the first product. A bare name (found through
/// the loader's path) loads the layer by bare names the same way.
fn preload_threading(rt: &Path) -> Result<Vec<libloading::Library>, Unused> {
    let name = rt.file_name().and_then(|f| f.to_str()).unwrap_or("libmkl_rt.so");
    let suffix = name.strip_prefix("libmkl_rt").unwrap_or(".so");
    let dir = rt.parent().filter(|d| !d.as_os_str().is_empty());
    ["libmkl_core", "libmkl_intel_thread"]
        .iter()
        .map(|stem| {
            let file = format!("{stem}{suffix}");
            let path = dir.map_or_else(|| PathBuf::from(&file), |d| d.join(&file));
            // SAFETY: MKL's own libraries, which libmkl_rt would load by the same names. Global,
            // as MKL loads them: the threading layer resolves symbols of libmkl_core.
            unsafe { global(&path) }
                .map_err(|e| Unused(format!("its threading layer does not load ({file}: {e})")))
        })
        .collect()
}

/// `dlopen(path, RTLD_LAZY | RTLD_GLOBAL)`, as libmkl_rt opens its layers (with RTLD_NOW the
/// layers, which resolve symbols of each other, do not load one by one).
///
/// # Safety
/// As [`libloading::Library::new`]: the library's initialisers run.
unsafe fn global(path: &Path) -> Result<libloading::Library, libloading::Error> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LAZY};
        Library::open(Some(path), RTLD_LAZY | RTLD_GLOBAL).map(libloading::Library::from)
    }
    #[cfg(not(unix))]
    {
        libloading::Library::new(path)
    }
}

/// `Intel(R) oneAPI Math Kernel Library Version 2026.2-Product Build ...` → `oneMKL 2026.2`.
pub fn short_version(full: &str) -> String {
    let version = full
        .split_once("Version ")
        .map(|(_, v)| v.split(|c: char| c == '-' || c.is_whitespace()).next().unwrap_or(""))
        .unwrap_or("");
    if version.is_empty() {
        "oneMKL".into()
    } else {
        format!("oneMKL {version}")
    }
}

/// Whether MKL's code path for `branch` (`MKL_CBWR_Get_Auto_Branch`) is AVX-512.
pub fn branch_is_avx512(branch: c_int) -> bool {
    AVX512_BRANCHES.contains(&branch)
}

impl Mkl {
    /// Whether its kernels are at least as wide as the `gemm` crate's on this CPU: always on a
    /// CPU without AVX-512, and on one with it only where MKL runs an AVX-512 path (on AMD CPUs
    /// it may pick AVX2).
    pub fn as_wide_as_gemm(&self) -> bool {
        !openblas::cpu_has_avx512() || branch_is_avx512(self.branch)
    }

    /// `C[m,n] (ldc) = alpha · op(A) · op(B) + beta · C` on `threads` OpenMP threads.
    ///
    /// # Safety
    /// As [`openblas::OpenBlas::sgemm`]: `a`, `b`, `c` address every element the call reads or
    /// writes with the given leading dimensions; `c` does not alias `a` or `b`; every dimension
    /// fits in a C `int`.
    pub unsafe fn sgemm(&self, call: Call, threads: usize, a: *const f32, b: *const f32, c: *mut f32) {
        if let Some(set) = self.set_blocktime {
            set(BLOCKTIME_MS);
        }
        (self.set_threads_local)(threads.clamp(1, c_int::MAX as usize) as c_int);
        openblas::cblas(self.sgemm, call, a, b, c);
    }
}

/// The product `g` on MKL, whole, on this caller's share of rayon's pool
/// ([`crate::backend::cpu::share`]: the whole pool but for data-parallel replicas); `a`, `b`, `c` hold
/// exactly `m·k`, `k·n`, `m·n` elements.
pub(super) fn run(mkl: &Mkl, g: &crate::backend::Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let call = Call {
        trans_a: g.trans_a,
        trans_b: g.trans_b,
        m: g.m,
        n: g.n,
        k: g.k,
        alpha: g.alpha,
        lda: if g.trans_a { g.m } else { g.k },
        ldb: if g.trans_b { g.k } else { g.n },
        beta: g.beta,
        ldc: g.n,
    };
    let threads = crate::backend::cpu::share::threads_for_caller();
    // SAFETY: the slices hold exactly the operands of `g` with these leading dimensions, `c` is
    // a distinct borrow, and the caller checked that every dimension fits in an int.
    unsafe { mkl.sgemm(call, threads, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) };
}

//! The environment variables batchscope reads (`BATCHSCOPE_*`), in one table: what each takes
//! and what it does, one check of every such variable before a command runs
//! ([`check_environment`]), and the set ones as a record for a run's summary ([`set_knobs`]).
//!
//! Most of them switch between kernels that compute the same thing, for A/B timing on a device.
//! A device session is short, and a misspelled name or value used to be ignored (a warning at
//! best, and only where the kernel was reached): the A/B then timed the default twice. Now the
//! command stops at once with one line naming the variable, and with a near miss, the name
//! meant (`BATCHSCOPE_COOP_LOAD` → `BATCHSCOPE_COOP_LOADS`).
//!
//! Each reader still parses its own variable where it is used (the same rules as [`Accepts`]):
//! a library user who never calls [`check_environment`] gets the readers' warnings.

use std::ffi::OsString;
use std::fmt;

use super::gpu::autotune::{half_kernel_of, Candidate};
use super::gpu::coop_shape::LoadWidth;
use super::gpu::tile::TileCfg;

/// The prefix every batchscope variable has.
pub const PREFIX: &str = "BATCHSCOPE_";

/// What a variable takes.
#[derive(Clone, Copy, Debug)]
pub enum Accepts {
    /// `0` or `1`.
    Switch,
    /// A whole number.
    Count,
    /// One of these words.
    Words(&'static [&'static str]),
    /// Anything the predicate accepts, described by the text.
    Named(&'static str, fn(&str) -> bool),
    /// A path (empty: as if unset).
    Path,
    /// Seconds: a number above 0, at most this many.
    Seconds(f64),
    /// A variable of the test suite, the benches or the CI scripts: the binary never reads it.
    Tooling,
}

impl Accepts {
    /// Whether `value` is one this variable takes.
    pub fn admits(self, value: &str) -> bool {
        match self {
            Accepts::Switch => matches!(value, "0" | "1"),
            Accepts::Count => value.parse::<usize>().is_ok(),
            Accepts::Words(words) => words.contains(&value),
            Accepts::Named(_, ok) => ok(value),
            Accepts::Path | Accepts::Tooling => true,
            Accepts::Seconds(max) => value.trim().parse::<f64>().is_ok_and(|s| s > 0.0 && s <= max),
        }
    }
}

impl fmt::Display for Accepts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accepts::Switch => write!(f, "0 or 1"),
            Accepts::Count => write!(f, "a whole number"),
            Accepts::Words(words) => write!(f, "one of {}", words.join(", ")),
            Accepts::Named(what, _) => write!(f, "{what}"),
            Accepts::Path => write!(f, "a path"),
            Accepts::Seconds(max) => write!(f, "seconds, above 0 and at most {max:e}"),
            Accepts::Tooling => write!(f, "anything (read by the tests, benches or CI, not the binary)"),
        }
    }
}

/// One variable: its name, what it takes, what it does (one line, for the README's table).
#[derive(Clone, Copy, Debug)]
pub struct Knob {
    pub name: &'static str,
    pub accepts: Accepts,
    pub does: &'static str,
}

const fn knob(name: &'static str, accepts: Accepts, does: &'static str) -> Knob {
    Knob { name, accepts, does }
}

fn small_grid_tile(v: &str) -> bool {
    v == "off" || TileCfg::parse(v).is_some()
}

fn f16_kernel(v: &str) -> bool {
    Candidate::parse(&format!("f16_{v}")).and_then(half_kernel_of).is_some()
}

fn load_width(v: &str) -> bool {
    LoadWidth::parse(v).is_some()
}

/// `BATCHSCOPE_BLAS`: one of its words, or a shared library, by name (`libopenblas.so.0`, for
/// the loader's search path) or by a path that exists. A misspelt word (`openblsa`, `MKL`) or
/// a file that is no library used to be tried as a library, said in a notice, and the run went
/// on with the built-in kernels.
fn blas_choice(v: &str) -> bool {
    let v = v.trim();
    let word = matches!(v, "" | "auto" | "mkl" | "openblas" | "builtin" | "off" | "none");
    let name = std::path::Path::new(v).file_name().and_then(|n| n.to_str()).unwrap_or("");
    let library = name.contains(".so") || name.ends_with(".dylib") || name.ends_with(".dll");
    word || (library && (!v.contains('/') || std::path::Path::new(v).is_file()))
}

/// Every variable batchscope, its tests, benches and CI scripts read.
pub const KNOBS: &[Knob] = &[
    knob("BATCHSCOPE_AUTOTUNE_CACHE", Accepts::Path, "the autotune cache file (default: the user's cache directory)"),
    knob("BATCHSCOPE_BLAS", Accepts::Named("auto, mkl, openblas, builtin, off, none, or a shared library (a name for the loader, or a path that exists)", blas_choice), "the CPU backend's system BLAS: `auto` (default): oneMKL where found (loader path, $MKLROOT, $CONDA_PREFIX, $VIRTUAL_ENV, ~/.local/lib, /usr/local/lib) and the system's OpenBLAS; `mkl` or `openblas`: only that one; `builtin`/`off`/`none`: neither; another value: that library file (MKL where its name starts with libmkl)"),
    knob("BATCHSCOPE_MPI_TIMEOUT", Accepts::Seconds(1e9), "seconds an MPI collective waits for the other ranks (default 300)"),
    knob("BATCHSCOPE_SHADER_CHECKS", Accepts::Switch, "1: compile the kernels with wgpu's runtime checks (index clamps, loop counters); default 0, trusted modules"),
    knob("BATCHSCOPE_SPLITK", Accepts::Switch, "0: no split-k for the tiled f32 products (default 1)"),
    knob("BATCHSCOPE_SKINNY_MAX_M", Accepts::Count, "rows of C up to which f32 products take the skinny kernel (default 128)"),
    knob("BATCHSCOPE_SKINNY_MAX_N", Accepts::Count, "columns of C up to which f32 products take the skinny kernel (default 16)"),
    knob("BATCHSCOPE_SKINNY_MAX_K", Accepts::Count, "depth up to which plain-A f32 products take the skinny kernel (default 0: off)"),
    knob("BATCHSCOPE_SKINNY_TA_MAX_M", Accepts::Count, "rows up to which weight-gradient products take the skinny kernel (default 0: off)"),
    knob("BATCHSCOPE_SMALL_GRID_TILE", Accepts::Named("off or a tile of the family (t64x64k8, t128x128k16, ...)", small_grid_tile), "the tile of f32 products whose 128x128 grid is short (default off)"),
    knob("BATCHSCOPE_UPDATE_PAIRS", Accepts::Switch, "two tensors per optimizer-update dispatch (default 1 on GPUs, 0 on CPU adapters)"),
    knob("BATCHSCOPE_FUSED_UPDATE", Accepts::Count, "depth up to which a weight gradient and its step are one dispatch: 0 off, 1 the default depth (32), else that depth (default 32 on GPUs, 0 on CPU adapters)"),
    knob("BATCHSCOPE_FUSED_HEAD", Accepts::Switch, "1: the output layer and its loss in one workgroup's dispatch (default 0)"),
    knob("BATCHSCOPE_FUSED_BACKWARD", Accepts::Switch, "1: a hidden layer's dgrad, wgrad and step in one dispatch (default 0)"),
    knob("BATCHSCOPE_STAGED_BIAS_GRAD", Accepts::Switch, "0: bias gradients past k = 32 as col_sum dispatches, not in the products (default 1)"),
    knob("BATCHSCOPE_FUSED_UNSCALE", Accepts::Switch, "0: the f16 step unscales its gradients in dispatches after the backward pass (default 1: in the products)"),
    knob("BATCHSCOPE_COL_SUM_WORKGROUPS", Accepts::Switch, "the packed f16 product's bias gradient in workgroups of its own dispatch (default 1 on GPUs, 0 on CPU adapters)"),
    knob("BATCHSCOPE_F16_KERNEL", Accepts::Named("packed, skinny, coop, coop64 or coop_staged (each cooperative one also with _v4 or _v8)", f16_kernel), "the f16 kernel of every product it can run, instead of the rule or the autotuner"),
    knob("BATCHSCOPE_COOP", Accepts::Switch, "0: no cooperative-matrix (tensor-core) f16 kernels (default 1)"),
    knob("BATCHSCOPE_COOP64", Accepts::Words(&["0", "1", "force"]), "0: the 64x64 cooperative kernel is no autotune candidate; force: the rule's choice wherever it fits"),
    knob("BATCHSCOPE_COOP_LOADS", Accepts::Named("halves, vec4 or vec8", load_width), "the tile-load width of the rule's cooperative kernels (default halves)"),
    knob("BATCHSCOPE_COOP_PREFETCH", Accepts::Switch, "1: the 32x32 tensor-core kernels load the next depth's tiles before the current depth's multiply-adds (A/B timing; default 0)"),
    knob("BATCHSCOPE_ADAPTER", Accepts::Tooling, "tests: the adapter under test, a name substring (the binary takes --adapter)"),
    knob("BATCHSCOPE_SPIRV_VAL", Accepts::Tooling, "tests: the spirv-val binary that validates the generated SPIR-V"),
    knob("BATCHSCOPE_SID_ROOT", Accepts::Tooling, "CI: where .ci/coop_lavapipe.sh keeps its Mesa 26 chroot"),
    knob("BATCHSCOPE_BENCH_BATCHES", Accepts::Tooling, "benches: the batch sizes of the HVP bench"),
    knob("BATCHSCOPE_BENCH_SLOW", Accepts::Tooling, "benches: 1 adds the slow matmul sizes"),
];

/// The variable named `name`, if batchscope knows it.
pub fn find(name: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.name == name)
}

/// What is wrong with a `BATCHSCOPE_*` variable of the environment.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KnobError {
    #[error(
        "{name} is no batchscope environment variable (did you mean {meant}?); unset it or fix its name"
    )]
    Misspelled { name: String, meant: &'static str },
    #[error("{name} is no batchscope environment variable (the README's \"Environment variables\" lists them); unset it")]
    Unknown { name: String },
    #[error("{name}={value:?}: expected {accepts}")]
    BadValue { name: &'static str, value: String, accepts: String },
    #[error("{name} holds bytes that are not UTF-8")]
    NotUtf8 { name: String },
}

/// The known name closest to `name`, if it is a likely misspelling of it: the parts after the
/// prefix at least 70 % alike (`COOP_LOAD` for `COOP_LOADS`; not `FOO` for `COOP`).
fn meant(name: &str) -> Option<&'static str> {
    let tail = |n: &'static str| n.strip_prefix(PREFIX).unwrap_or(n);
    let wanted = name.strip_prefix(PREFIX).unwrap_or(name);
    let meant = crate::suggest::closest(wanted, KNOBS.iter().map(|k| tail(k.name)))?;
    KNOBS.iter().map(|k| k.name).find(|n| tail(n) == meant)
}

/// Check one variable of the environment (any name: those without [`PREFIX`] pass).
pub fn check(name: &str, value: &str) -> Result<(), KnobError> {
    if !name.starts_with(PREFIX) {
        return Ok(());
    }
    let Some(knob) = find(name) else {
        return Err(match meant(name) {
            Some(meant) => KnobError::Misspelled { name: name.into(), meant },
            None => KnobError::Unknown { name: name.into() },
        });
    };
    match knob.accepts.admits(value) {
        true => Ok(()),
        false => Err(KnobError::BadValue {
            name: knob.name,
            value: value.into(),
            accepts: knob.accepts.to_string(),
        }),
    }
}

fn check_all(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<(), KnobError> {
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(PREFIX) {
            continue;
        }
        let value = value.to_str().ok_or_else(|| KnobError::NotUtf8 { name: name.into() })?;
        check(name, value)?;
    }
    Ok(())
}

/// Check every `BATCHSCOPE_*` variable of this process's environment: a name batchscope does
/// not know, or a value its variable does not take, is an error.
pub fn check_environment() -> Result<(), KnobError> {
    check_all(std::env::vars_os())
}

/// The set batchscope variables that change what a command runs (the tooling ones left out),
/// sorted by name: what a run's summary records beside its figures.
pub fn set_knobs() -> Vec<(&'static str, String)> {
    KNOBS
        .iter()
        .filter(|k| !matches!(k.accepts, Accepts::Tooling))
        .filter_map(|k| std::env::var(k.name).ok().map(|v| (k.name, v)))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<_> = KNOBS.iter().map(|k| k.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KNOBS.len());
        assert!(names.iter().all(|n| n.starts_with(PREFIX)));
    }

    #[test]
    fn values_are_checked_as_their_readers_read_them() {
        assert_eq!(check("BATCHSCOPE_SPLITK", "0"), Ok(()));
        assert!(matches!(check("BATCHSCOPE_SPLITK", "no"), Err(KnobError::BadValue { .. })));
        assert_eq!(check("BATCHSCOPE_SKINNY_MAX_K", "16"), Ok(()));
        assert!(check("BATCHSCOPE_SKINNY_MAX_K", "-1").is_err());
        assert!(check("BATCHSCOPE_SKINNY_MAX_K", "").is_err());
        for ok in ["halves", "vec4", "vec8"] {
            assert_eq!(check("BATCHSCOPE_COOP_LOADS", ok), Ok(()));
        }
        let e = check("BATCHSCOPE_COOP_LOADS", "vec16").unwrap_err().to_string();
        assert_eq!(e, "BATCHSCOPE_COOP_LOADS=\"vec16\": expected halves, vec4 or vec8");
        for ok in ["packed", "skinny", "coop", "coop64_v4", "coop_staged_v8"] {
            assert_eq!(check("BATCHSCOPE_F16_KERNEL", ok), Ok(()), "{ok}");
        }
        assert!(check("BATCHSCOPE_F16_KERNEL", "tiled").is_err());
        assert_eq!(check("BATCHSCOPE_SMALL_GRID_TILE", "off"), Ok(()));
        assert_eq!(check("BATCHSCOPE_SMALL_GRID_TILE", "t64x64k8"), Ok(()));
        assert!(check("BATCHSCOPE_SMALL_GRID_TILE", "t63x64k8").is_err());
        assert_eq!(check("BATCHSCOPE_COOP64", "force"), Ok(()));
        assert!(check("BATCHSCOPE_COOP64", "forced").is_err());
        assert_eq!(check("BATCHSCOPE_MPI_TIMEOUT", " 2.5 "), Ok(()));
        for bad in ["0", "-1", "1e10", "inf", "NaN", "x"] {
            assert!(check("BATCHSCOPE_MPI_TIMEOUT", bad).is_err(), "{bad}");
        }
        assert_eq!(check("BATCHSCOPE_AUTOTUNE_CACHE", ""), Ok(()));
        assert_eq!(check("BATCHSCOPE_SPIRV_VAL", "/x/spirv-val"), Ok(()));
        assert_eq!(check("HOME", "anything"), Ok(()));
    }

    #[test]
    fn unknown_names_are_refused_with_the_name_meant() {
        let e = check("BATCHSCOPE_COOP_LOAD", "vec8").unwrap_err();
        assert_eq!(
            e,
            KnobError::Misspelled {
                name: "BATCHSCOPE_COOP_LOAD".into(),
                meant: "BATCHSCOPE_COOP_LOADS"
            }
        );
        assert!(e.to_string().contains("did you mean BATCHSCOPE_COOP_LOADS?"), "{e}");
        let e = check("BATCHSCOPE_SKINY_MAX_M", "64").unwrap_err();
        assert!(e.to_string().contains("BATCHSCOPE_SKINNY_MAX_M"), "{e}");
        assert!(check("BATCHSCOPE_SPLIT_K", "0")
            .unwrap_err()
            .to_string()
            .contains("BATCHSCOPE_SPLITK?"));
        assert!(matches!(check("BATCHSCOPE_WHATEVER_ELSE", "1"), Err(KnobError::Unknown { .. })));
        assert!(matches!(check("BATCHSCOPE_FOO", "1"), Err(KnobError::Unknown { .. })));
    }

    #[test]
    fn non_utf8_values_are_refused_by_name() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0x66, 0xff]);
        let e = check_all([("BATCHSCOPE_COOP_LOADS".into(), bad.clone())]).unwrap_err();
        assert_eq!(e, KnobError::NotUtf8 { name: "BATCHSCOPE_COOP_LOADS".into() });
        // Not ours: not our business.
        assert_eq!(check_all([("LANG".into(), bad)]), Ok(()));
    }
}

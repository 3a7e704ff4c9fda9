//! Host memory: what the OS lets this process allocate, and whether a run's host-side buffers
//! (parameters built on the host, the resident dataset, and on the CPU backend the whole
//! training step) fit it. Checked before any model, dataset or workspace is allocated, so an
//! impossible request fails with one message instead of an allocation abort.
//!
//! The limit is the smallest of `/proc/meminfo` MemAvailable, the cgroup v2 limit
//! (`/sys/fs/cgroup/memory.max` less `memory.current`) where one is set, and the room under
//! the process's own limits where one is set (`ulimit -v`, `ulimit -d`: the soft limit less
//! the `VmSize` or `VmData` of `/proc/self/status`).

use thiserror::Error;

use super::memory::{estimate_step, MemoryError, BYTES_PER_ELEMENT};
use crate::model::Precision;

/// Memory this process may still allocate, and where the number came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLimit {
    pub bytes: u64,
    /// `MemAvailable` or `cgroup memory.max`.
    pub source: &'static str,
}

/// A host-side request that cannot fit.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HostMemoryError {
    #[error(
        "{what} needs {bytes} bytes of host memory, more than the {limit} bytes available ({origin})"
    )]
    TooLarge { what: String, bytes: u64, limit: u64, origin: &'static str },
    #[error("{what}: byte count overflows 64 bits")]
    Overflow { what: String },
    #[error(transparent)]
    Model(#[from] MemoryError),
}

/// `MemAvailable` from the text of `/proc/meminfo`, bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let kib: u64 = parts.next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A cgroup v2 `memory.max` value: `None` for `max` (no limit) or text that is not a number.
pub fn parse_cgroup_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The smaller of MemAvailable and the cgroup's remaining room; `None` when neither is readable.
pub fn combine(
    mem_available: Option<u64>,
    cgroup_max: Option<u64>,
    cgroup_current: Option<u64>,
) -> Option<HostLimit> {
    let cg = cgroup_max.map(|m| m.saturating_sub(cgroup_current.unwrap_or(0)));
    match (mem_available, cg) {
        (Some(a), Some(c)) if c < a => Some(HostLimit { bytes: c, source: "cgroup memory.max" }),
        (Some(a), _) => Some(HostLimit { bytes: a, source: "MemAvailable" }),
        (None, Some(c)) => Some(HostLimit { bytes: c, source: "cgroup memory.max" }),
        (None, None) => None,
    }
}

/// The host memory this process may allocate now (`None` where the OS does not say).
pub fn host_limit() -> Option<HostLimit> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let system = combine(
        read("/proc/meminfo").as_deref().and_then(parse_meminfo),
        read("/sys/fs/cgroup/memory.max").as_deref().and_then(parse_cgroup_max),
        read("/sys/fs/cgroup/memory.current").as_deref().and_then(parse_cgroup_max),
    );
    let status = read("/proc/self/status").unwrap_or_default();
    let own = [
        (process_limit::address_space(), "VmSize:", "ulimit -v"),
        (process_limit::data_segment(), "VmData:", "ulimit -d"),
    ];
    own.into_iter().fold(system, |limit, (soft, used, source)| {
        let room = soft.map(|l| l.saturating_sub(parse_status_kib(&status, used).unwrap_or(0)));
        tighter(limit, room.map(|bytes| HostLimit { bytes, source }))
    })
}

/// The smaller of two limits (either may be unknown).
pub fn tighter(a: Option<HostLimit>, b: Option<HostLimit>) -> Option<HostLimit> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.bytes < a.bytes { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A `key:` line of `/proc/self/status` (`VmSize:  123456 kB`), bytes.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// This process's soft resource limits on memory (`None`: unlimited, or not known here).
mod process_limit {
    #[cfg(unix)]
    fn soft(resource: libc::c_int) -> Option<u64> {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one rlimit through a valid pointer to a local.
        let ok = unsafe { libc::getrlimit(resource as _, &mut limit) } == 0;
        (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
    }

    /// `RLIMIT_AS` (`ulimit -v`): the address space, which every mapping counts against.
    pub fn address_space() -> Option<u64> {
        #[cfg(unix)]
        return soft(libc::RLIMIT_AS as libc::c_int);
        #[cfg(not(unix))]
        None
    }

    /// `RLIMIT_DATA` (`ulimit -d`): the data segment, which the heap counts against.
    pub fn data_segment() -> Option<u64> {
        #[cfg(unix)]
        return soft(libc::RLIMIT_DATA as libc::c_int);
        #[cfg(not(unix))]
        None
    }
}

/// Bytes of `dims` 4-byte elements (product), checked.
pub fn bytes_of(what: &str, dims: &[u64]) -> Result<u64, HostMemoryError> {
    let overflow = || HostMemoryError::Overflow { what: what.to_string() };
    let mut n: u64 = BYTES_PER_ELEMENT;
    for &d in dims {
        n = n.checked_mul(d).ok_or_else(overflow)?;
    }
    Ok(n)
}

/// Checked sum of byte counts.
pub fn sum_bytes(what: &str, parts: &[u64]) -> Result<u64, HostMemoryError> {
    parts.iter().try_fold(0u64, |acc, &p| {
        acc.checked_add(p).ok_or_else(|| HostMemoryError::Overflow { what: what.to_string() })
    })
}

/// Host bytes of an MLP's training step at `batch` (all buffers: the CPU backend), or at B = 1
/// (parameter-shaped sets only matter: what any backend builds on the host).
pub fn step_bytes(
    sizes: &[usize],
    momentum: bool,
    curvature: bool,
    batch: usize,
) -> Result<u64, HostMemoryError> {
    step_bytes_in(sizes, momentum, curvature, Precision::F32, batch)
}

/// [`step_bytes`] of a step in `precision` (an f16 step adds its f16 operands).
pub fn step_bytes_in(
    sizes: &[usize],
    momentum: bool,
    curvature: bool,
    precision: Precision,
    batch: usize,
) -> Result<u64, HostMemoryError> {
    match estimate_step(sizes, momentum, curvature, precision, batch) {
        Ok(e) => Ok(e.total_bytes),
        Err(MemoryError::Overflow { .. }) => Err(HostMemoryError::Overflow {
            what: format!("model {} at batch {batch}", sizes_text(sizes)),
        }),
        Err(e) => Err(e.into()),
    }
}

/// `Ok` when `bytes` fit `limit` (no limit known: everything fits).
pub fn check_host(what: &str, bytes: u64, limit: Option<HostLimit>) -> Result<(), HostMemoryError> {
    match limit {
        Some(l) if bytes > l.bytes => Err(HostMemoryError::TooLarge {
            what: what.to_string(),
            bytes,
            limit: l.bytes,
            origin: l.source,
        }),
        _ => Ok(()),
    }
}

/// Layer widths as `[784, 1024, 1024, 10]`, or for a deep model the first and last few with
/// the count (`[784, 8, 8, 8, … 8, 10] (100002 widths)`): one readable error line.
pub fn sizes_text(sizes: &[usize]) -> String {
    if sizes.len() <= 8 {
        return format!("{sizes:?}");
    }
    let head: Vec<String> = sizes[..4].iter().map(|w| w.to_string()).collect();
    let tail: Vec<String> = sizes[sizes.len() - 2..].iter().map(|w| w.to_string()).collect();
    format!("[{}, … {}] ({} widths)", head.join(", "), tail.join(", "), sizes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_limit_wins_and_status_lines_parse() {
        let l = |bytes, source| Some(HostLimit { bytes, source });
        assert_eq!(tighter(l(10, "a"), l(5, "b")), l(5, "b"));
        assert_eq!(tighter(l(5, "a"), l(10, "b")), l(5, "a"));
        assert_eq!(tighter(None, l(10, "b")), l(10, "b"));
        assert_eq!(tighter(l(10, "a"), None), l(10, "a"));
        let status = "Name:\tbatchscope\nVmPeak:\t  99 kB\nVmSize:\t  2048 kB\nVmData:\t 512 kB\n";
        assert_eq!(parse_status_kib(status, "VmSize:"), Some(2048 * 1024));
        assert_eq!(parse_status_kib(status, "VmData:"), Some(512 * 1024));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn parses_meminfo_and_cgroup() {
        let text = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(parse_meminfo(text), Some(12_000_000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_cgroup_max("max\n"), None);
        assert_eq!(parse_cgroup_max("12884901888\n"), Some(12 << 30));
    }

    #[test]
    fn limit_is_the_smaller_source() {
        let l = combine(Some(16 << 30), Some(12 << 30), Some(2 << 30)).unwrap();
        assert_eq!(l, HostLimit { bytes: 10 << 30, source: "cgroup memory.max" });
        let l = combine(Some(8 << 30), Some(12 << 30), None).unwrap();
        assert_eq!(l, HostLimit { bytes: 8 << 30, source: "MemAvailable" });
        assert_eq!(combine(None, None, None), None);
        assert_eq!(combine(None, Some(5), Some(9)).unwrap().bytes, 0);
        // This machine reports something.
        assert!(host_limit().is_some_and(|l| l.bytes > 0));
    }

    #[test]
    fn checks_sizes() {
        let limit = Some(HostLimit { bytes: 1000, source: "MemAvailable" });
        assert_eq!(check_host("x", 1000, limit), Ok(()));
        let e = check_host("model [2, 3]", 1001, limit).unwrap_err();
        assert!(e.to_string().contains("1001 bytes") && e.to_string().contains("1000 bytes"), "{e}");
        assert_eq!(check_host("x", u64::MAX, None), Ok(()));
        assert_eq!(bytes_of("t", &[3, 5]), Ok(60));
        assert!(matches!(bytes_of("t", &[u64::MAX, 2]), Err(HostMemoryError::Overflow { .. })));
        assert!(matches!(sum_bytes("t", &[u64::MAX, 1]), Err(HostMemoryError::Overflow { .. })));
        // hidden = [1e9]: 32·1e9 + 1e9·4 weights alone are 144 GB; [100000, 100000] overflows nothing
        // but needs 40 GB per weight set.
        let b = step_bytes(&[32, 1_000_000_000, 4], false, false, 1).unwrap();
        assert!(b > 2 * 4 * 36_000_000_000, "{b}");
        let b = step_bytes(&[32, 100_000, 100_000, 4], false, false, 1).unwrap();
        assert!(b > 2 * 4 * 10_000_000_000, "{b}");
        assert!(matches!(
            step_bytes(&[usize::MAX, 2], false, false, 2),
            Err(HostMemoryError::Overflow { .. })
        ));
    }
}

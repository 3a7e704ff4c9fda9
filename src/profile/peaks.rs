//! The device's peaks, fp32 FLOP/s and memory bandwidth, each with where it came from.
//!
//! Each peak is taken from the first source that has it: the config keys `sweep.peak_gflops` /
//! `sweep.peak_gbps` (a user's figure overrides every lookup), NVML (CUDA cores × max SM clock × 2;
//! bus width × max memory clock × 2), the table below keyed by adapter name, and last the
//! measured probes (the tiled matmul for FLOP/s, an axpy for bandwidth), labelled so.

use std::fmt;

/// Where a peak figure came from.
#[derive(Clone, Debug, PartialEq)]
pub enum PeakSource {
    Config(&'static str),
    Nvml,
    /// The table entry's key and its reference.
    Table {
        key: &'static str,
        reference: &'static str,
    },
    /// A probe run here (what it ran).
    Measured(String),
    /// The f16 tensor-core figure of the adapter table (its description).
    F16Tensor(String),
}

impl fmt::Display for PeakSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeakSource::Config(key) => write!(f, "config {key}"),
            PeakSource::Nvml => write!(f, "NVML (cores × max clock × 2 / bus width × memory clock × 2)"),
            PeakSource::Table { key, reference } => write!(f, "table entry {key} ({reference})"),
            PeakSource::Measured(what) => write!(f, "measured probe: {what}"),
            PeakSource::F16Tensor(what) => write!(f, "{what}"),
        }
    }
}

/// One peak figure and its source.
#[derive(Clone, Debug, PartialEq)]
pub struct Peak {
    pub value: f64,
    pub source: PeakSource,
}

/// FLOP/s and bandwidth peaks.
#[derive(Clone, Debug, PartialEq)]
pub struct Peaks {
    pub gflops: Peak,
    pub gbps: Peak,
}

/// Which roof bounds an op at its arithmetic intensity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Compute,
    Memory,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
        }
    }
}

impl Peaks {
    /// Ridge point of the roofline, FLOP per byte.
    pub fn ridge(&self) -> f64 {
        self.gflops.value / self.gbps.value
    }
    /// The roof an op with `flops` and `bytes` hits first.
    pub fn bound(&self, flops: f64, bytes: f64) -> Bound {
        if bytes > 0.0 && flops / bytes < self.ridge() {
            Bound::Memory
        } else {
            Bound::Compute
        }
    }
    /// The attainable GFLOP/s-equivalent time bound: the op's time at the roof, seconds.
    pub fn roof_seconds(&self, flops: f64, bytes: f64) -> f64 {
        (flops / (self.gflops.value * 1e9)).max(bytes / (self.gbps.value * 1e9))
    }
}

pub use crate::telemetry::NvmlPeaks;

/// A row of the peak table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TableEntry {
    /// Matched against the adapter name as a whole word sequence, case-insensitively.
    pub key: &'static str,
    pub gflops: f64,
    pub gbps: f64,
    pub reference: &'static str,
}

/// One row of [`TABLE`]: `(key, GFLOP/s, GB/s, reference)`.
const fn entry(key: &'static str, gflops: f64, gbps: f64, reference: &'static str) -> TableEntry {
    TableEntry { key, gflops, gbps, reference }
}

/// FP32 (non-tensor) FLOP/s and memory bandwidth from the vendors' datasheets. More specific
/// keys come first (`H100 PCIe` before `H100`, `L40S` before `L40`).
pub const TABLE: &[TableEntry] = &[
    // NVIDIA H200 Tensor Core GPU datasheet (2024): H200 SXM 67 TFLOPS FP32, 4.8 TB/s HBM3e.
    entry("H200", 67_000.0, 4_800.0, "NVIDIA H200 datasheet, SXM"),
    // NVIDIA H100 datasheet (2023): PCIe 51 TFLOPS, 2.0 TB/s; NVL 60 TFLOPS, 3.9 TB/s;
    // SXM 67 TFLOPS, 3.35 TB/s.
    entry("H100 PCIe", 51_000.0, 2_000.0, "NVIDIA H100 datasheet, PCIe"),
    entry("H100 NVL", 60_000.0, 3_900.0, "NVIDIA H100 datasheet, NVL"),
    entry("H100", 67_000.0, 3_350.0, "NVIDIA H100 datasheet, SXM"),
    // NVIDIA A100 datasheet (2021): 19.5 TFLOPS FP32; 80 GB SXM 2,039 GB/s, 40 GB PCIe 1,555 GB/s.
    entry("A100-SXM4-80GB", 19_500.0, 2_039.0, "NVIDIA A100 datasheet, 80GB SXM"),
    entry("A100 80GB", 19_500.0, 1_935.0, "NVIDIA A100 datasheet, 80GB PCIe"),
    entry("A100", 19_500.0, 1_555.0, "NVIDIA A100 datasheet, 40GB PCIe"),
    // NVIDIA L40S / L40 / L4 datasheets (2023): 91.6 / 90.5 / 30.3 TFLOPS; 864 / 864 / 300 GB/s.
    entry("L40S", 91_600.0, 864.0, "NVIDIA L40S datasheet"),
    entry("L40", 90_500.0, 864.0, "NVIDIA L40 datasheet"),
    entry("L4", 30_300.0, 300.0, "NVIDIA L4 datasheet"),
    // NVIDIA A10 datasheet (2021): 31.2 TFLOPS, 600 GB/s (AWS's A10G: 31.2 TFLOPS, 600 GB/s).
    entry("A10G", 31_200.0, 600.0, "AWS G5 / NVIDIA A10 datasheet"),
    entry("A10", 31_200.0, 600.0, "NVIDIA A10 datasheet"),
    // NVIDIA T4 datasheet: 8.1 TFLOPS, 320 GB/s. V100 SXM2 datasheet: 15.7 TFLOPS, 900 GB/s.
    entry("T4", 8_100.0, 320.0, "NVIDIA T4 datasheet"),
    entry("V100", 15_700.0, 900.0, "NVIDIA V100 datasheet, SXM2"),
    // NVIDIA Ada Lovelace whitepaper (2022): RTX 4090 82.6 TFLOPS, 1,008 GB/s; RTX 4080 48.7, 716.8.
    entry("RTX 4090", 82_600.0, 1_008.0, "NVIDIA Ada whitepaper"),
    entry("RTX 4080", 48_700.0, 716.8, "NVIDIA Ada whitepaper"),
    // NVIDIA Ampere GA102 whitepaper (2020): RTX 3090 35.6 TFLOPS, 936 GB/s; RTX A6000 38.7, 768.
    entry("RTX 3090", 35_600.0, 936.0, "NVIDIA GA102 whitepaper"),
    entry("RTX A6000", 38_700.0, 768.0, "NVIDIA RTX A6000 datasheet"),
];

/// A row of the f16 tensor-core peak table: dense FP16 × FP16 → FP32 tensor TFLOP/s as GFLOP/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorEntry {
    pub key: &'static str,
    pub gflops: f64,
    pub reference: &'static str,
}

/// Dense (no sparsity) FP16 tensor-core peaks with FP32 accumulation, from the vendors'
/// datasheets (which print the sparse figure, twice these, for Hopper and Ampere). Used for the
/// `% peak` of f16 sweep rows where the adapter offers cooperative matrices.
pub const F16_TENSOR_TABLE: &[TensorEntry] = &[
    // NVIDIA H200 datasheet (2024): FP16 Tensor Core 1,979 TFLOPS with sparsity (SXM).
    TensorEntry { key: "H200", gflops: 989_500.0, reference: "NVIDIA H200 datasheet, SXM, dense" },
    // NVIDIA H100 datasheet (2023): FP16 Tensor Core 1,513 (PCIe) / 1,979 (SXM) TFLOPS sparse.
    TensorEntry { key: "H100 PCIe", gflops: 756_500.0, reference: "NVIDIA H100 datasheet, PCIe, dense" },
    TensorEntry { key: "H100", gflops: 989_500.0, reference: "NVIDIA H100 datasheet, SXM, dense" },
    // NVIDIA A100 datasheet (2021): FP16 Tensor Core 312 TFLOPS dense (624 sparse).
    TensorEntry { key: "A100", gflops: 312_000.0, reference: "NVIDIA A100 datasheet, dense" },
    // NVIDIA V100 datasheet: 125 tensor TFLOPS (SXM2). T4 datasheet: 65 TFLOPS mixed FP16/FP32.
    TensorEntry { key: "V100", gflops: 125_000.0, reference: "NVIDIA V100 datasheet, SXM2" },
    TensorEntry { key: "T4", gflops: 65_000.0, reference: "NVIDIA T4 datasheet" },
];

/// The f16 tensor-core table entry for an adapter name, if any.
pub fn f16_tensor_lookup(adapter: &str) -> Option<&'static TensorEntry> {
    F16_TENSOR_TABLE.iter().find(|e| matches_words(adapter, e.key))
}

/// Whether `key` occurs in `name` as whole words (case-insensitive): `L4` matches
/// `NVIDIA L4` but not `NVIDIA L40S`.
fn matches_words(name: &str, key: &str) -> bool {
    let (name, key) = (name.to_uppercase(), key.to_uppercase());
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    name.match_indices(&key).any(|(i, _)| {
        !word(name[..i].chars().next_back()) && !word(name[i + key.len()..].chars().next())
    })
}

/// The table entry for an adapter name, if any.
pub fn table_lookup(adapter: &str) -> Option<&'static TableEntry> {
    TABLE.iter().find(|e| matches_words(adapter, e.key))
}

/// What the last-resort probes measured, each figure with what ran for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Probed {
    pub gflops: f64,
    /// What ran for the FLOP/s figure (`matmul 2048x2048x2048`).
    pub gflops_probe: String,
    pub gbps: f64,
    /// What ran for the bandwidth figure (`axpy over 2 × 16 MiB`).
    pub gbps_probe: String,
}

/// Pick each peak from the first source that has it; `probe` runs only when a peak is found
/// nowhere else.
pub fn resolve<E>(
    config_gflops: f64,
    config_gbps: f64,
    nvml: Option<NvmlPeaks>,
    adapter: &str,
    probe: impl FnOnce() -> Result<Probed, E>,
) -> Result<Peaks, E> {
    let table = table_lookup(adapter);
    let lookup = |config: f64, key: &'static str, nv: Option<f64>, tab: Option<f64>| {
        if config > 0.0 {
            Some(Peak { value: config, source: PeakSource::Config(key) })
        } else if let Some(v) = nv.filter(|v| *v > 0.0) {
            Some(Peak { value: v, source: PeakSource::Nvml })
        } else {
            tab.zip(table).map(|(v, e)| Peak {
                value: v,
                source: PeakSource::Table { key: e.key, reference: e.reference },
            })
        }
    };
    let flops =
        lookup(config_gflops, "sweep.peak_gflops", nvml.map(|n| n.gflops), table.map(|e| e.gflops));
    let bw = lookup(config_gbps, "sweep.peak_gbps", nvml.map(|n| n.gbps), table.map(|e| e.gbps));
    match (flops, bw) {
        (Some(gflops), Some(gbps)) => Ok(Peaks { gflops, gbps }),
        (flops, bw) => {
            let p = probe()?;
            Ok(Peaks {
                gflops: flops
                    .unwrap_or(Peak { value: p.gflops, source: PeakSource::Measured(p.gflops_probe) }),
                gbps: bw.unwrap_or(Peak { value: p.gbps, source: PeakSource::Measured(p.gbps_probe) }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_probe() -> Result<Probed, String> {
        Err("the probe must not run".into())
    }

    fn probed(gflops: f64, gbps: f64) -> Result<Probed, String> {
        Ok(Probed {
            gflops,
            gflops_probe: "matmul 1024x1024x1024".into(),
            gbps,
            gbps_probe: "axpy over 2 × 16 MiB".into(),
        })
    }

    #[test]
    fn table_entries_match_whole_words() {
        assert_eq!(table_lookup("NVIDIA H200").map(|e| e.gbps), Some(4_800.0));
        assert_eq!(table_lookup("NVIDIA H100 PCIe").map(|e| e.gflops), Some(51_000.0));
        assert_eq!(table_lookup("NVIDIA H100 80GB HBM3").map(|e| e.gbps), Some(3_350.0));
        assert_eq!(table_lookup("NVIDIA A100-SXM4-80GB").map(|e| e.gbps), Some(2_039.0));
        assert_eq!(table_lookup("NVIDIA L4").map(|e| e.key), Some("L4"));
        assert_eq!(table_lookup("NVIDIA L40S").map(|e| e.key), Some("L40S"));
        assert_eq!(table_lookup("NVIDIA GeForce RTX 4090").map(|e| e.gflops), Some(82_600.0));
        assert_eq!(table_lookup("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
        assert_eq!(table_lookup("NVIDIA H2000"), None);
    }

    #[test]
    fn f16_tensor_entries_are_dense_figures() {
        assert_eq!(f16_tensor_lookup("NVIDIA H200").map(|e| e.gflops), Some(989_500.0));
        assert_eq!(f16_tensor_lookup("NVIDIA H100 PCIe").map(|e| e.gflops), Some(756_500.0));
        assert_eq!(f16_tensor_lookup("NVIDIA H100 80GB HBM3").map(|e| e.key), Some("H100"));
        assert_eq!(f16_tensor_lookup("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
        // Every tensor figure is above the same chip's fp32 FMA figure.
        for e in F16_TENSOR_TABLE {
            let fp32 = table_lookup(e.key).map(|t| t.gflops).unwrap_or(0.0);
            assert!(e.gflops > fp32, "{}", e.key);
        }
    }

    #[test]
    fn table_then_config_override() {
        let p = resolve(0.0, 0.0, None, "NVIDIA H200", no_probe).unwrap();
        assert_eq!(p.gflops.value, 67_000.0);
        assert!(p.gflops.source.to_string().contains("table entry H200"), "{}", p.gflops.source);
        let p = resolve(1234.0, 0.0, None, "NVIDIA H200", no_probe).unwrap();
        assert_eq!(p.gflops, Peak { value: 1234.0, source: PeakSource::Config("sweep.peak_gflops") });
        assert_eq!(p.gbps.value, 4_800.0);
        assert!((p.ridge() - 1234.0 / 4800.0).abs() < 1e-12);
    }

    #[test]
    fn nvml_before_table_and_probe_last_labelled() {
        let nv = NvmlPeaks::from_device(16_896, 1_980, 5_120, 2_619);
        assert!((nv.gflops - 66_908.16).abs() < 1e-6);
        assert!((nv.gbps - 3_352.32).abs() < 1e-6);
        let p = resolve(0.0, 0.0, Some(nv), "NVIDIA H100 80GB HBM3", no_probe).unwrap();
        assert_eq!(p.gbps.source, PeakSource::Nvml);
        let p = resolve(0.0, 0.0, None, "llvmpipe", || probed(50.0, 8.0)).unwrap();
        assert_eq!(p.gflops.value, 50.0);
        assert_eq!(p.gflops.source, PeakSource::Measured("matmul 1024x1024x1024".into()));
        // Each figure names its own probe only.
        assert_eq!(p.gbps.source.to_string(), "measured probe: axpy over 2 × 16 MiB");
        // One figure from the config, the other from the probe.
        let p = resolve(0.0, 20.0, None, "llvmpipe", || probed(50.0, 8.0)).unwrap();
        assert_eq!((p.gflops.value, p.gbps.value), (50.0, 20.0));
        // Ridge 2.5 FLOP/byte.
        assert_eq!(p.bound(1.0, 1.0), Bound::Memory);
        assert_eq!(p.bound(10.0, 1.0), Bound::Compute);
    }
}

//! The `[sweep]` section: batch sizes, timing and the batch-size policy.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::policy::{Policy, PolicyParseError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    pub min_batch: usize,
    pub max_batch: usize,
    /// Untimed steps before timing each batch size.
    pub warmup_steps: usize,
    /// Timed steps per batch size.
    pub timed_steps: usize,
    /// Times every batch size is timed (warm-up and timed steps each time), in alternating
    /// order after the first, so that drift over the sweep lands on every size.
    pub rounds: usize,
    /// `max_throughput`, `knee`, `knee:F`, `largest_fit`, `time_to_target:B_NOISE`,
    /// `time_to_target:auto`.
    pub policy: SweepPolicy,
    /// Fraction of the best throughput the `knee` policy must reach.
    pub knee_fraction: f64,
    /// A doubling of B that gains less than this fraction of throughput marks the knee.
    pub knee_min_gain: f64,
    /// Device memory budget in MiB for the memory model (0 = the adapter's limits only).
    pub memory_budget_mib: u64,
    /// Wall-time budget of the whole sweep in seconds (0 = none): a batch size whose predicted
    /// time (twice the previous one's) would overrun it is skipped with the reason.
    pub time_budget_s: f64,
    /// The device's fp32 peak in GFLOP/s for "% of peak" columns (0 = NVML, the adapter
    /// table, or the measured matmul probe).
    #[serde(skip_serializing_if = "is_zero")]
    pub peak_gflops: f64,
    /// The device's memory bandwidth in GB/s (0 = NVML, the adapter table, or a measured probe).
    #[serde(skip_serializing_if = "is_zero")]
    pub peak_gbps: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            min_batch: 1,
            max_batch: 4096,
            warmup_steps: 2,
            timed_steps: 8,
            rounds: 1,
            policy: SweepPolicy::Knee,
            knee_fraction: 0.9,
            knee_min_gain: 0.1,
            memory_budget_mib: 0,
            time_budget_s: 600.0,
            peak_gflops: 0.0,
            peak_gbps: 0.0,
        }
    }
}

/// `sweep.policy`, parsed when the config is loaded. It serialises to the canonical spelling
/// (`max_throughput` for `max-throughput` or `Max_Throughput`, `knee` for `Knee`), the text
/// summary.json's `policy` uses, so the config.toml of a run directory says what was run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SweepPolicy {
    /// `knee` without a fraction: the knee at `sweep.knee_fraction`.
    Knee,
    /// Any other policy of `schedule::Policy`.
    Fixed { policy: Policy },
    /// `time_to_target:auto`: B_noise is measured at the initialisation (as by `noise`) before
    /// the sweep.
    TimeToTargetAuto,
}

impl SweepPolicy {
    const TIME_TO_TARGET_AUTO: &'static str = "time_to_target:auto";

    /// The policy with `knee` at `knee_fraction`; `None` for `time_to_target:auto` (its B_noise
    /// is measured first).
    pub fn resolve(&self, knee_fraction: f64) -> Option<Policy> {
        match self {
            SweepPolicy::Knee => Some(Policy::Knee { fraction: knee_fraction }),
            SweepPolicy::Fixed { policy } => Some(*policy),
            SweepPolicy::TimeToTargetAuto => None,
        }
    }
}

impl std::str::FromStr for SweepPolicy {
    type Err = String;

    /// Spelled as [`Policy`] reads names (case, `-` for `_` and spaces around the parts
    /// ignored): `Knee` is `sweep.knee_fraction`'s knee as `knee` is (it was knee:0.9).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = |n: &str| n.trim().to_ascii_lowercase().replace('-', "_");
        let key = match s.split_once(':') {
            Some((n, a)) => format!("{}:{}", name(n), a.trim().to_ascii_lowercase()),
            None => name(s),
        };
        match key.as_str() {
            "knee" => Ok(SweepPolicy::Knee),
            Self::TIME_TO_TARGET_AUTO => Ok(SweepPolicy::TimeToTargetAuto),
            _ => match s.parse::<Policy>() {
                Ok(policy) => Ok(SweepPolicy::Fixed { policy }),
                // A sweep also measures B_noise itself: say so where the policies are listed.
                Err(PolicyParseError::Unknown { input }) => Err(format!(
                    "sweep.policy: unknown batch-size policy `{input}`; expected max_throughput, knee, \
                     knee:<fraction>, largest_fit, time_to_target:<b_noise> or time_to_target:auto"
                )),
                Err(PolicyParseError::MissingNoiseScale) => {
                    Err("sweep.policy: `time_to_target` needs the gradient noise scale in examples \
                     (time_to_target:<b_noise>), or time_to_target:auto to measure it first"
                        .to_string())
                }
                Err(e) => Err(format!("sweep.policy: {e}")),
            },
        }
    }
}

impl TryFrom<String> for SweepPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SweepPolicy> for String {
    fn from(p: SweepPolicy) -> String {
        p.to_string()
    }
}

impl fmt::Display for SweepPolicy {
    /// The canonical spelling: `knee`, `time_to_target:auto`, or [`Policy`]'s own form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepPolicy::Knee => f.write_str("knee"),
            SweepPolicy::Fixed { policy } => write!(f, "{policy}"),
            SweepPolicy::TimeToTargetAuto => f.write_str(Self::TIME_TO_TARGET_AUTO),
        }
    }
}

//! The batch-size policy as configured: `max_throughput`, `knee`, `knee:<fraction>`,
//! `largest_fit`, `time_to_target:<b_noise>` (the same text on the command line and in a config),
//! its parsing, range checks and Display. Choosing a batch size with it is `schedule::choose`;
//! re-exported at `schedule::policy::{Policy, PolicyParseError}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How the batch size is chosen from a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Policy {
    /// The B with the highest examples/s.
    MaxThroughput,
    /// The smallest B reaching at least `fraction` (0 < fraction ≤ 1) of the best examples/s.
    Knee { fraction: f64 },
    /// The largest B that was not skipped (what Lightning's batch-size tuner gives).
    LargestFit,
    /// The B minimizing the predicted wall time to a target loss: steps
    /// `S(B) = S_min·(1 + b_noise/B)`, time `T(B) = S(B)·t_step(B)`; `b_noise` ≥ 0 is the
    /// gradient noise scale in examples.
    TimeToTarget { b_noise: f64 },
}

impl Policy {
    /// Fraction of the best throughput `knee` asks for when none is given.
    pub const DEFAULT_KNEE_FRACTION: f64 = 0.9;

    /// Range checks of the parameters: knee fraction in (0, 1], b_noise finite and ≥ 0.
    pub fn validate(&self) -> Result<(), PolicyParseError> {
        match *self {
            Policy::Knee { fraction } if !(fraction > 0.0 && fraction <= 1.0) => {
                Err(PolicyParseError::OutOfRange {
                    policy: "knee",
                    value: fraction,
                    expected: "in (0, 1]",
                })
            }
            // A noise scale is a number of examples: 10^15 is past any dataset.
            Policy::TimeToTarget { b_noise } if !(0.0..=1e15).contains(&b_noise) => {
                Err(PolicyParseError::OutOfRange {
                    policy: "time_to_target",
                    value: b_noise,
                    expected: "in [0, 1e15] (examples)",
                })
            }
            _ => Ok(()),
        }
    }
}

impl Default for Policy {
    /// `knee:0.9`.
    fn default() -> Self {
        Policy::Knee { fraction: Self::DEFAULT_KNEE_FRACTION }
    }
}

impl fmt::Display for Policy {
    /// The form `FromStr` reads back: `max_throughput`, `knee:0.9`, `largest_fit`,
    /// `time_to_target:1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::MaxThroughput => write!(f, "max_throughput"),
            Policy::Knee { fraction } => write!(f, "knee:{fraction}"),
            Policy::LargestFit => write!(f, "largest_fit"),
            Policy::TimeToTarget { b_noise } => write!(f, "time_to_target:{b_noise}"),
        }
    }
}

/// A policy string that cannot be read, or parameters out of range.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum PolicyParseError {
    #[error(
        "unknown batch-size policy `{input}`; expected max_throughput, knee, knee:<fraction>, largest_fit \
         or time_to_target:<b_noise>"
    )]
    Unknown { input: String },
    #[error("policy `{policy}` takes no argument, got `{input}`")]
    UnexpectedArgument { policy: &'static str, input: String },
    #[error(
        "policy `time_to_target` needs the gradient noise scale in examples: time_to_target:<b_noise>"
    )]
    MissingNoiseScale,
    #[error("policy `{policy}`: `{value}` is not a number")]
    BadNumber { policy: &'static str, value: String },
    #[error("policy `{policy}`: {} must be {expected}", short_number(*value))]
    OutOfRange { policy: &'static str, value: f64, expected: &'static str },
}

impl FromStr for Policy {
    type Err = PolicyParseError;

    /// Reads `name` or `name:argument`; `-` may stand for `_` and case is ignored in the name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input = s.trim();
        let (name, arg) = match input.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (input, None),
        };
        let name = name.to_ascii_lowercase().replace('-', "_");
        let number = |policy: &'static str, a: &str| {
            a.parse::<f64>().map_err(|_| PolicyParseError::BadNumber { policy, value: a.to_string() })
        };
        let no_arg = |policy: &'static str, p: Policy| match arg {
            None => Ok(p),
            Some(_) => Err(PolicyParseError::UnexpectedArgument { policy, input: input.to_string() }),
        };
        let policy = match name.as_str() {
            "max_throughput" => no_arg("max_throughput", Policy::MaxThroughput)?,
            "largest_fit" => no_arg("largest_fit", Policy::LargestFit)?,
            "knee" => Policy::Knee {
                fraction: match arg {
                    None => Self::DEFAULT_KNEE_FRACTION,
                    Some(a) => number("knee", a)?,
                },
            },
            "time_to_target" => match arg {
                None => return Err(PolicyParseError::MissingNoiseScale),
                Some(a) => Policy::TimeToTarget { b_noise: number("time_to_target", a)? },
            },
            _ => return Err(PolicyParseError::Unknown { input: input.to_string() }),
        };
        policy.validate()?;
        Ok(policy)
    }
}

impl TryFrom<String> for Policy {
    type Error = PolicyParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Policy> for String {
    fn from(p: Policy) -> String {
        p.to_string()
    }
}

/// `value` as written for a person: plain up to a million, else in scientific notation (10^308
/// printed 309 digits).
fn short_number(value: f64) -> String {
    match value.abs() < 1e6 {
        true => value.to_string(),
        false => format!("{value:e}"),
    }
}

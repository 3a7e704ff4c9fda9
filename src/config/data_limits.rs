//! Sizes of synthetic data past what its generator can give: a stream longer than its
//! training examples, a fixed table (class means, W*) or a teacher too large to compute on the
//! host.

use super::validate::{MAX_TEACHER_CLASSES, MAX_TEACHER_WORK, TEACHER_CALIBRATION_INPUTS};
use super::{ConfigError, DataConfig, DataKind};

/// The most values of a synthetic stream's fixed table (`classes × dim` class means,
/// `outputs × dim` of W*): 2^28, 1 GiB of f32 and about 30 s of host work on a 2-core VM
/// (1M classes of 784 inputs ran past 2 minutes before the first step, printing nothing).
pub const MAX_TABLE_VALUES: u64 = 1 << 28;

/// A stream's training examples are distinct examples below 2^48 (validation examples are
/// `crate::data::synth::VAL_FIRST + k`): a longer stream would train on them.
pub const MAX_STREAM_EXAMPLES: u64 = 1 << 48;

/// The first of `d`'s sizes past its generator, as an error naming the key.
pub(super) fn check(
    d: &DataConfig,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if d.n_train > MAX_STREAM_EXAMPLES {
        return Err(bad(
            "data.n_train",
            format!(
                "= {} is past the 2^48 training examples a stream holds (the validation examples follow them)",
                d.n_train
            ),
        ));
    }
    let (rows_key, rows, name) = match d.kind {
        DataKind::GaussianMixture => ("data.classes", d.classes, "class means"),
        DataKind::LinearRegression => ("data.outputs", d.outputs, "W*"),
        DataKind::Teacher | DataKind::Npy => return Ok(()),
    };
    let values = (rows as u64).saturating_mul(d.dim as u64);
    if values > MAX_TABLE_VALUES {
        // Named by the larger factor: the one to change.
        let key = if d.dim > rows { "data.dim" } else { rows_key };
        return Err(bad(
            key,
            format!(
                "makes the {name} table {rows_key} × data.dim = {rows} × {} = {values} values, past the 2^28 a synthetic dataset generates on the host",
                d.dim
            ),
        ));
    }
    Ok(())
}

/// A teacher whose labels the host can compute: at most [`MAX_TEACHER_CLASSES`] classes and
/// [`MAX_TEACHER_WORK`] multiply-adds (a wide teacher on many inputs ran for minutes before the
/// first step, printing nothing).
pub(super) fn teacher_fits(
    d: &DataConfig,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if d.classes > MAX_TEACHER_CLASSES {
        return Err(bad(
            "data.classes",
            format!(
                "= {} is past the {MAX_TEACHER_CLASSES} classes a teacher labels (its biases are balanced on {TEACHER_CALIBRATION_INPUTS} held-out inputs, at least 4 a class)",
                d.classes
            ),
        ));
    }
    let inputs = d.n_train as f64 + d.n_val as f64 + TEACHER_CALIBRATION_INPUTS as f64;
    let work = inputs * d.teacher_hidden as f64 * (d.dim as f64 + d.classes as f64);
    if work > MAX_TEACHER_WORK {
        return Err(bad(
            "data.teacher_hidden",
            format!(
                "= {}: the teacher's labels would cost {work:.1e} multiply-adds on the host ((n_train + n_val + {TEACHER_CALIBRATION_INPUTS}) × teacher_hidden × (dim + classes)), past the {MAX_TEACHER_WORK:.1e} a run may spend; use a narrower teacher or fewer examples",
                d.teacher_hidden
            ),
        ));
    }
    Ok(())
}

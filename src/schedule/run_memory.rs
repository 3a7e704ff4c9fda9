//! Host bytes of a run described by a [`Config`]: the model's parameter-shaped sets (built on
//! the host by every backend), the resident data, and on the CPU backend the whole step, checked
//! against [`host_limit`] before anything is allocated.

use crate::backend::cpu::matmul;
use crate::config::{Config, ConfigError, DataKind, DataMode, OptimizerKind};
use crate::data::npy;
use crate::data::resolve::npy_val_rows;
use crate::model::{LossKind, Precision};

use super::host_memory::{
    bytes_of, check_host, host_limit, sizes_text, step_bytes, step_bytes_in, sum_bytes, HostMemoryError,
};

/// Host bytes of the model's parameter-shaped sets (built on the host by every backend) and
/// of the resident data at its peak, checked arithmetic throughout: `(description, bytes)`.
/// The data is built on the host (an `.npy` file's rows beside the split made of them), then
/// each set is uploaded while its host copy lives (the CPU backend's buffers are host memory,
/// and wgpu stages a GPU upload in host-visible memory, which on lavapipe is all there is):
/// the training set, with a second device copy when `train.eval_train` evaluates it, then the
/// validation set once the host's training rows are gone.
pub fn host_bytes(cfg: &Config) -> Result<(String, u64), HostMemoryError> {
    let d = &cfg.data;
    let spec = cfg.mlp_spec();
    let momentum = cfg.train.optimizer == OptimizerKind::Momentum;
    let model = step_bytes(&spec.sizes, momentum, cfg.monitor.curvature_every > 0, 1)?;
    let dim = d.dim as u64;
    let outputs = cfg.data_outputs() as u64;
    let per_row = |what: &str, rows: u64| -> Result<u64, HostMemoryError> {
        let y = if cfg.model.loss == LossKind::Mse { outputs } else { 1 };
        sum_bytes(what, &[bytes_of(what, &[rows, dim])?, bytes_of(what, &[rows, y])?])
    };
    // An .npy file's rows split by data.val_fraction (data.n_val is a generator's setting).
    let npy_rows = match (d.kind, d.features.as_deref().map(npy::features_shape)) {
        (DataKind::Npy, Some(Ok((n, _)))) => Some((n, npy_val_rows(n, d.val_fraction))),
        _ => None, // generated data, or no file yet, or a bad one: reading it is the error
    };
    let val_rows = match (d.kind, npy_rows) {
        (DataKind::Npy, Some((_, n_val))) => n_val,
        (DataKind::Npy, None) => 0,
        _ => d.n_val,
    };
    let val = per_row("the validation set", val_rows as u64)?;
    // `(the file's rows as read, the training rows)`: an .npy file's rows, then its training
    // rows each repeated data.duplicates times.
    let (file, train) = match (d.kind, d.mode, npy_rows) {
        (DataKind::Npy, _, Some((n, n_val))) => {
            let repeats = ((n - n_val) as u64).checked_mul(d.duplicates.max(1) as u64);
            let repeats = repeats
                .ok_or_else(|| HostMemoryError::Overflow { what: "the training set".to_string() })?;
            (per_row("the data file", n as u64)?, per_row("the training set", repeats)?)
        }
        (DataKind::Npy, _, None) | (_, DataMode::Stream, _) => (0, 0),
        (_, DataMode::Resident, _) => (0, per_row("the training set", d.n_train)?),
    };
    let tables = match d.kind {
        DataKind::GaussianMixture => bytes_of("the class means", &[d.classes as u64, dim])?,
        DataKind::LinearRegression => bytes_of("the regression table", &[dim, outputs.max(dim)])?,
        // Its weights, and the hidden layer and logits of every calibration input (kept while
        // the class balance is fitted).
        DataKind::Teacher => {
            let calibration = crate::data::synth::CALIBRATION_EXAMPLES as u64;
            sum_bytes(
                "the teacher",
                &[
                    bytes_of("the teacher", &[dim, d.teacher_hidden as u64])?,
                    bytes_of("the teacher", &[d.teacher_hidden as u64, d.classes as u64])?,
                    bytes_of("the teacher's calibration", &[calibration, d.teacher_hidden as u64])?,
                    bytes_of("the teacher's calibration", &[calibration, d.classes as u64])?,
                ],
            )?
        }
        DataKind::Npy => 0,
    };
    // The evaluation's working buffers: one chunk of validation rows through every layer
    // (with many classes the logits alone are large).
    let eval_rows = val_rows.min(crate::train::EVAL_CHUNK);
    let eval = if eval_rows == 0 {
        0
    } else {
        let at = |rows| step_bytes(&spec.sizes, false, false, rows);
        at(eval_rows)?.saturating_sub(at(1)?)
    };
    let times = |what: &str, bytes: u64, copies: u64| {
        bytes.checked_mul(copies).ok_or_else(|| HostMemoryError::Overflow { what: what.to_string() })
    };
    let on_device = 1 + u64::from(cfg.train.eval_train); // device copies of the training set
    let phases = [
        sum_bytes("the data as read", &[file, train, val])?,
        sum_bytes(
            "the training set's upload",
            &[times("the training set", train, 1 + on_device)?, val],
        )?,
        sum_bytes(
            "the validation set's upload",
            &[times("the training set", train, on_device)?, times("the validation set", val, 2)?],
        )?,
    ];
    let data = phases.into_iter().max().unwrap_or(0);
    let total = sum_bytes("model and data", &[model, data, tables, eval])?;
    let what = format!(
        "model {} ({model} bytes of parameters, gradients and optimizer state) with data.dim = {}, \
         {} resident examples ({} bytes of data on the host and in the backend's buffers)",
        sizes_text(&spec.sizes),
        d.dim,
        match (d.kind, d.mode, npy_rows) {
            (DataKind::Npy, _, Some((n, _))) => n as u64,
            (DataKind::Npy, _, None) => 0,
            (_, DataMode::Resident, _) => d.n_train + d.n_val as u64,
            (_, DataMode::Stream, _) => d.n_val as u64,
        },
        total - model
    );
    Ok((what, total))
}

/// Host bytes of `f32_sets` f32 and `f64_sets` f64 vectors of every parameter of `cfg`'s
/// model: the flat copies a command keeps beside its step (a checkpoint's, a probe's).
pub fn param_vectors_bytes(cfg: &Config, f32_sets: u64, f64_sets: u64) -> Result<u64, HostMemoryError> {
    let sizes = &cfg.mlp_spec().sizes;
    let what = format!("the flat parameter vectors of model {}", sizes_text(sizes));
    let overflow = || HostMemoryError::Overflow { what: what.clone() };
    let params = sizes.windows(2).try_fold(0u64, |n, w| {
        let (fan_in, fan_out) = (w[0] as u64, w[1] as u64);
        fan_in.checked_add(1)?.checked_mul(fan_out)?.checked_add(n)
    });
    let per_param = 4 * f32_sets + 8 * f64_sets;
    params.and_then(|p| p.checked_mul(per_param)).ok_or_else(overflow)
}

/// Host bytes of a checkpoint as it is written: the host copies of the parameters and the
/// optimizer's velocity, and the serialized file beside them (a 0.9 G-parameter model trained
/// for minutes, then aborted writing its checkpoint).
pub fn checkpoint_bytes(cfg: &Config) -> Result<u64, HostMemoryError> {
    let sets = 1 + u64::from(cfg.train.optimizer == OptimizerKind::Momentum);
    param_vectors_bytes(cfg, 2 * sets, 0)
}

/// Fail when the model and data, and a checkpoint written beside them, cannot fit the host's
/// memory.
pub fn check_host_memory(cfg: &Config, origin: &str) -> Result<(), ConfigError> {
    let fail = |e: HostMemoryError| ConfigError::TooLarge {
        origin: origin.to_string(),
        message: e.to_string(),
    };
    let (what, bytes) = host_bytes(cfg).map_err(fail)?;
    let with_checkpoint =
        sum_bytes(&what, &[bytes, checkpoint_bytes(cfg).map_err(fail)?]).map_err(fail)?;
    check_host(&format!("{what}, and its checkpoint's host copies"), with_checkpoint, host_limit())
        .map_err(fail)
}

/// On the CPU backend the whole training step at `batch` lives in host memory: fail when
/// it cannot fit (checked before the dataset or workspace is allocated). With `train.workers`
/// = N > 1 every replica holds its own state at `batch / N` rows and its own copy of the data.
pub fn check_cpu_step(cfg: &Config, batch: usize) -> Result<(), HostMemoryError> {
    check_step_in_host_memory(cfg, batch, "the CPU")
}

/// [`check_cpu_step`] for a step on `device`, whose buffers are host memory (a software
/// adapter such as lavapipe: its replicas' data copies live there too).
pub fn check_step_in_host_memory(
    cfg: &Config,
    batch: usize,
    device: &str,
) -> Result<(), HostMemoryError> {
    let (what, bytes) = cpu_step_bytes(cfg, batch, device)?;
    check_host(&what, bytes, host_limit())
}

/// Host bytes the CPU's products keep besides their operands: the largest forward product's
/// workspace ([`matmul::workspace_bytes`], one per thread that runs a step).
fn matmul_workspace(sizes: &[usize]) -> u64 {
    sizes.windows(2).map(|w| matmul::workspace_bytes(w[1], w[0])).max().unwrap_or(0)
}

/// Host bytes of the f32 buffers the CPU's f16 products widen their halves into
/// ([`crate::backend::cpu::f16::matmul_half`]): two per product running, which are kept and
/// reused for either operand, so each grows to the longest operand of the step at `rows` (per
/// layer `X [rows, in]`, `dZ [rows, out]`, `W [out, in]`).
fn widened_operands(sizes: &[usize], rows: usize) -> Result<u64, HostMemoryError> {
    let what = "the f16 products' widened operands";
    let mut longest = 0;
    for w in sizes.windows(2) {
        let (fan_in, fan_out) = (w[0] as u64, w[1] as u64);
        for dims in [[rows as u64, fan_in], [rows as u64, fan_out], [fan_out, fan_in]] {
            longest = longest.max(bytes_of(what, &dims)?);
        }
    }
    sum_bytes(what, &[longest, longest])
}

/// Host bytes of the CPU training step at `batch` with its replicas: `(description, bytes)`,
/// the step said to run on `device`.
pub fn cpu_step_bytes(
    cfg: &Config,
    batch: usize,
    device: &str,
) -> Result<(String, u64), HostMemoryError> {
    let spec = cfg.mlp_spec();
    let momentum = cfg.train.optimizer == OptimizerKind::Momentum;
    let curvature = cfg.monitor.curvature_every > 0;
    let workers = cfg.train.workers.max(1);
    let precision = cfg.model.precision;
    // One replica's step at `rows`: its buffers, the products' workspace and, in f16, the
    // widened operands of its largest product.
    let replica = |what: &str, rows: usize| -> Result<u64, HostMemoryError> {
        let step = step_bytes_in(&spec.sizes, momentum, curvature, precision, rows)?;
        let widened = match precision {
            Precision::F16 => widened_operands(&spec.sizes, rows)?,
            Precision::F32 => 0,
        };
        sum_bytes(what, &[step, matmul_workspace(&spec.sizes), widened])
    };
    if workers == 1 {
        let what = format!(
            "a training step on {device} of model {} at train.batch_size = {batch}",
            sizes_text(&spec.sizes)
        );
        let bytes = sum_bytes(&what, &[replica(&what, batch)?, checkpoint_bytes(cfg)?])?;
        return Ok((what, bytes));
    }
    let what = format!(
        "a training step on {device} of model {} at train.batch_size = {batch} on train.workers = {workers} \
         replicas (each with its own state and copy of the data)",
        sizes_text(&spec.sizes)
    );
    let rows = (batch / workers).max(1);
    let replica = replica(&what, rows)?;
    let (_, copy) = host_bytes(cfg)?;
    let w = workers as u64;
    let overflow = || HostMemoryError::Overflow { what: what.clone() };
    let states = replica.checked_mul(w).ok_or_else(overflow)?;
    let copies = copy.checked_mul(w - 1).ok_or_else(overflow)?;
    let bytes = sum_bytes(&what, &[states, copies, checkpoint_bytes(cfg)?])?;
    Ok((what, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BatchSize;

    /// The resident data is counted at its peak, its upload: a training row twice (three times
    /// when `train.eval_train` uploads it again) while the validation set is the smaller.
    /// Counted once, a set of half the host's memory passed the check and the upload ran the
    /// host out of memory (the process was killed generating 12.8 GB on a 23 GB machine).
    #[test]
    fn resident_data_counts_its_upload() {
        let mut cfg = Config::embedded_default().expect("default");
        cfg.data.mode = crate::config::DataMode::Resident;
        let row = 4 * (cfg.data.dim as u64 + 1); // features + one label, 4 bytes each
        let bytes = |cfg: &Config| host_bytes(cfg).expect("host bytes").1;
        let base = bytes(&cfg);
        let mut more = cfg.clone();
        more.data.n_train += 1000;
        assert_eq!(bytes(&more) - base, 2 * 1000 * row, "training rows");
        more.train.eval_train = true;
        let with_eval = bytes(&more);
        cfg.train.eval_train = true;
        assert_eq!(with_eval - bytes(&cfg), 3 * 1000 * row, "training rows evaluated too");
        // A validation row once while the training set is the larger (the peak is its upload),
        // plus the evaluation's working chunk, which grows with n_val up to its size.
        let mut val = cfg.clone();
        val.data.n_val += 100;
        let diff = bytes(&val) - bytes(&cfg);
        assert!((100 * row..2 * 100 * row).contains(&diff), "{diff}");
        // A validation set larger than the training set peaks at its own upload: twice.
        val.data.n_train = 1000;
        val.data.n_val = 4000;
        let mut more_val = val.clone();
        more_val.data.n_val += 100;
        assert!(bytes(&more_val) - bytes(&val) >= 2 * 100 * row);
    }

    /// `train.workers = N`: N replica states at batch / N rows plus N − 1 more copies of the data
    /// (the check counted one state at the whole batch, so N replicas of a large model passed it
    /// and then aborted allocating).
    #[test]
    fn cpu_step_counts_every_replica() {
        let mut cfg = Config::embedded_default().expect("default");
        cfg.train.batch_size = BatchSize::Fixed(256);
        let (_, one) = cpu_step_bytes(&cfg, 256, "the CPU").expect("one worker");
        let (_, data) = host_bytes(&cfg).expect("host bytes");
        cfg.train.workers = 256;
        let (what, many) = cpu_step_bytes(&cfg, 256, "the CPU").expect("256 workers");
        assert!(what.contains("train.workers = 256"), "{what}");
        let spec = cfg.mlp_spec();
        let replica = step_bytes(&spec.sizes, true, false, 1).expect("replica");
        // Each replica's thread keeps the padded copy of the 1024 × 1024 weight (rows of 1040).
        let workspace = matmul_workspace(&spec.sizes);
        assert_eq!(workspace, 1024 * 1040 * 4);
        // And the checkpoint as it is written: parameters and velocity, host copies and file.
        let params: u64 = spec.sizes.windows(2).map(|w| (w[0] as u64 + 1) * w[1] as u64).sum();
        let checkpoint = checkpoint_bytes(&cfg).expect("checkpoint");
        assert_eq!(checkpoint, params * 2 * 2 * 4);
        assert_eq!(
            one,
            step_bytes(&spec.sizes, true, false, 256).expect("step") + workspace + checkpoint
        );
        assert_eq!(many, 256 * (replica + workspace) + 255 * data + checkpoint);
        assert!(many > 100 * one, "{many} vs {one}");
        cfg.train.workers = 1024;
        cfg.model.hidden = vec![1 << 44];
        assert!(matches!(cpu_step_bytes(&cfg, 1024, "the CPU"), Err(HostMemoryError::Overflow { .. })));
    }

    /// An f16 CPU step holds the f32 step, its f16 operands, and the two f32 buffers its
    /// products widen them into, each as long as the longest operand: at B = 4096 of the
    /// default model, a hidden layer's `[4096, 1024]`.
    #[test]
    fn cpu_f16_step_counts_its_halves_and_widened_operands() {
        let mut cfg = Config::embedded_default().expect("default");
        let (_, f32_step) = cpu_step_bytes(&cfg, 4096, "the CPU").expect("f32");
        cfg.model.precision = Precision::F16;
        let (_, f16_step) = cpu_step_bytes(&cfg, 4096, "the CPU").expect("f16");
        let sizes = cfg.mlp_spec().sizes;
        let est = crate::schedule::memory::estimate_step(&sizes, true, false, Precision::F16, 4096)
            .expect("estimate");
        let halves = est.bytes_of(crate::schedule::BufferKind::HalfCopies);
        let widened = 4 * 2 * 4096 * 1024;
        assert_eq!(f16_step, f32_step + halves + widened);
    }
}

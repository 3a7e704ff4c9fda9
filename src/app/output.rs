//! Small writers shared by the commands.

use std::path::Path;

use crate::report::rundir::write_atomic;

/// Write `text` to `dir/config.toml`.
pub fn write_config(dir: &Path, text: &str) -> anyhow::Result<()> {
    write_atomic(&dir.join("config.toml"), text.as_bytes())?;
    Ok(())
}

/// Write `v` as pretty JSON to `path`.
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, v: &T) -> anyhow::Result<()> {
    Ok(crate::report::jsonl::write_pretty(path, v)?)
}

/// Write a measuring command's `summary` (a JSON object) to `dir/summary.json`, with the
/// batchscope variables of the environment that chose its kernels under `"environment"` (an
/// empty object when none is set): the figures say what they measured.
pub fn write_summary(dir: &Path, mut summary: serde_json::Value) -> anyhow::Result<()> {
    if let Some(obj) = summary.as_object_mut() {
        let env: serde_json::Map<String, serde_json::Value> = crate::backend::knobs::set_knobs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        obj.insert("environment".into(), env.into());
    }
    write_json(&dir.join("summary.json"), &summary)
}

/// The notice of a measurement of the loss alone (`what`) run with `train.weight_decay` set:
/// the objective a run with that decay minimises has the Hessian H + wd·I (every eigenvalue,
/// and so λmax and 2/λmax, moved by wd) and the gradient g + wd·θ; the figures here are of the
/// loss without it (they were the same bits with and without it, unsaid).
pub fn notice_weight_decay(cfg: &crate::config::Config, what: &str) {
    let wd = cfg.train.weight_decay;
    if wd > 0.0 {
        eprintln!(
            "notice: train.weight_decay = {wd} is not in {what}: they are of the loss alone (the objective with the decay has the Hessian H + {wd}·I and the gradient g + {wd}·θ)"
        );
    }
}

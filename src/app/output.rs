//! Small writers shared by the commands.

use std::path::Path;

use anyhow::Context;

use crate::report::rundir::write_atomic;

/// Write `text` to `dir/config.toml`.
pub fn write_config(dir: &Path, text: &str) -> anyhow::Result<()> {
    write_atomic(&dir.join("config.toml"), text.as_bytes())?;
    Ok(())
}

/// Write `v` as pretty JSON to `path`.
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, v: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v).context("serialising summary")?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

//! The `[gpu]` section: how the GPU backend picks its matmul kernels.

use serde::{Deserialize, Serialize};

use crate::backend::gpu::AutotuneMode;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// `off` (the default: the pure shape rule, the same kernels everywhere), `cached` (the
    /// autotune cache's choices, never timing) or `on` (also time unseen shapes on first use).
    pub autotune: AutotuneMode,
}

impl GpuConfig {
    /// The default section is not written to a run's config.toml (byte-compatible files).
    pub fn is_default(&self) -> bool {
        *self == GpuConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::gpu::AutotuneMode;
    use crate::config::Config;

    #[test]
    fn the_default_section_is_not_written_and_a_set_one_round_trips() {
        let plain = Config::embedded_default().expect("default");
        assert_eq!(plain.gpu.autotune, AutotuneMode::Off);
        assert!(!plain.to_toml().contains("[gpu]"), "config.toml stays byte-compatible");
        let set = Config::load(None, &["gpu.autotune=cached".into()]).expect("override");
        assert_eq!(set.gpu.autotune, AutotuneMode::Cached);
        let text = set.to_toml();
        assert!(text.contains("[gpu]") && text.contains("autotune = \"cached\""), "{text}");
        assert_eq!(Config::from_toml(&text, "round trip").expect("parse"), set);
        let bad = Config::load(None, &["gpu.autotune=fast".into()]).expect_err("unknown mode");
        assert!(bad.to_string().contains("autotune") || bad.to_string().contains("fast"), "{bad}");
        assert!(Config::load(None, &["gpu.tiles=3".into()]).is_err(), "unknown key");
    }
}

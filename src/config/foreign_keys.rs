//! Data keys that only one kind of data, or one loss, reads: set for another, they changed
//! nothing, and a run told to do something it then does not do is a wrong result.

use super::validate::kind_name;
use super::{Config, ConfigError, DataKind};
use crate::model::LossKind;

impl Config {
    /// The `[data]` keys that this config's data kind and loss do not read and that hold their
    /// defaults (a key that is not read and differs is refused as a config error, so leaving
    /// these out of a config.toml loses nothing: reading it back gives the same config).
    pub(super) fn unread_data_keys(&self) -> Vec<&'static str> {
        let (d, def) = (&self.data, super::DataConfig::default());
        let npy = d.kind == DataKind::Npy;
        [
            ("separation", d.kind != DataKind::GaussianMixture, d.separation == def.separation),
            ("noise_std", d.kind != DataKind::LinearRegression, d.noise_std == def.noise_std),
            (
                "condition_number",
                d.kind != DataKind::LinearRegression,
                d.condition_number == def.condition_number,
            ),
            ("teacher_hidden", d.kind != DataKind::Teacher, d.teacher_hidden == def.teacher_hidden),
            ("n_train", npy, d.n_train == def.n_train),
            ("n_val", npy, d.n_val == def.n_val),
            ("label_noise", npy, d.label_noise == def.label_noise),
            ("val_fraction", !npy, d.val_fraction == def.val_fraction),
            ("classes", self.model.loss == LossKind::Mse, d.classes == def.classes),
            ("outputs", self.model.loss == LossKind::SoftmaxXent, d.outputs == def.outputs),
        ]
        .into_iter()
        .filter(|&(_, unread, default)| unread && default)
        .map(|(key, _, _)| key)
        .collect()
    }

    /// The first data key set for a data kind or loss that does not read it, as an error
    /// naming the key.
    pub(super) fn data_key_of_another_kind(
        &self,
        bad: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let d = &self.data;
        // Keys that shape one synthetic kind's data: set for another kind they changed nothing.
        let def = super::DataConfig::default();
        for (key, set, kind) in [
            ("data.separation", d.separation != def.separation, DataKind::GaussianMixture),
            ("data.noise_std", d.noise_std != def.noise_std, DataKind::LinearRegression),
            (
                "data.condition_number",
                d.condition_number != def.condition_number,
                DataKind::LinearRegression,
            ),
            ("data.teacher_hidden", d.teacher_hidden != def.teacher_hidden, DataKind::Teacher),
        ] {
            if set && d.kind != kind {
                return Err(bad(
                    key,
                    format!(
                        "shapes data.kind = \"{}\" data; data.kind = \"{}\" does not read it",
                        kind_name(kind),
                        kind_name(d.kind)
                    ),
                ));
            }
        }
        // Classes shape a classification's labels and outputs, outputs a regression's targets:
        // the other count changed nothing.
        match self.model.loss {
            LossKind::SoftmaxXent if d.outputs != def.outputs => {
                return Err(bad(
                "data.outputs",
                "counts a regression's targets; a classification (model.loss = \"softmax_xent\") has data.classes outputs"
                    .into(),
            ));
            }
            LossKind::Mse if d.classes != def.classes => {
                return Err(bad(
                "data.classes",
                "counts a classification's classes; a regression (model.loss = \"mse\") has data.outputs outputs"
                    .into(),
            ));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(sets: &[&str]) -> Config {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::load(None, &sets).expect("config")
    }

    /// config.toml leaves out what the data kind and loss do not read, and reads back as the
    /// same config.
    #[test]
    fn config_toml_names_only_the_data_keys_its_kind_reads() {
        let keys = |c: &Config| -> Vec<String> {
            let t: toml::Table = toml::from_str(&c.to_toml()).expect("toml");
            t["data"].as_table().expect("[data]").keys().cloned().collect()
        };
        let mixture = load(&[]);
        let k = keys(&mixture);
        for (key, want) in [
            ("separation", true),
            ("noise_std", false),
            ("teacher_hidden", false),
            ("n_train", true),
            ("classes", true),
            ("outputs", false),
            ("val_fraction", false),
        ] {
            assert_eq!(k.contains(&key.to_string()), want, "gaussian_mixture: {key} in {k:?}");
        }
        let regression =
            load(&["data.kind=\"linear_regression\"", "model.loss=\"mse\"", "data.noise_std=0.5"]);
        let k = keys(&regression);
        for (key, want) in [
            ("separation", false),
            ("noise_std", true),
            ("condition_number", true),
            ("classes", false),
            ("outputs", true),
        ] {
            assert_eq!(k.contains(&key.to_string()), want, "linear_regression: {key} in {k:?}");
        }
        // What config.toml leaves out is no difference: only the keys that differ are named.
        let teacher = load(&["data.kind=\"teacher\""]);
        let keys: Vec<String> = mixture.differences(&teacher).into_iter().map(|d| d.0).collect();
        assert_eq!(keys, ["data.kind"]);
        for c in [mixture, regression] {
            let back: Config = toml::from_str(&c.to_toml()).expect("reads back");
            assert_eq!(back, c);
        }
    }
}

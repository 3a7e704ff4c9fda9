//! Data keys that only one kind of data, or one loss, reads: set for another, they changed
//! nothing, and a run told to do something it then does not do is a wrong result.

use super::validate::kind_name;
use super::{Config, ConfigError, DataKind};
use crate::model::LossKind;

impl Config {
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

//! One training run, as a researcher writes it in TOML: model, data, training length, optimizer,
//! and how the run is evaluated afterwards.
//!
//! Every section rejects unknown keys, and every number that has a sane default has one, so a
//! run file says only what differs from the paper's recipe. Each section is a type in its own
//! module that holds its keys, their defaults (written once: a section whose every key has a
//! default deserialises missing keys from its `Default`) and its checks, so changing a setting
//! touches one file. This module only ties the sections together: loading, the paths a run
//! directory records, what counts as the same experiment, and the order sections are checked
//! in. Top-level sections name their keys in full (`train.seq_len`); sub-tables take the
//! dotted key of their table, because evaluation checks them again on their own.

mod data;
mod diagnostics;
mod eval;
mod mitigation;
mod optim;
mod passkey;
mod train;
mod verdict;

use serde::{Deserialize, Serialize};

pub use data::{DataConfig, Packing, SyntheticConfig, SyntheticTask};
pub use diagnostics::{DiagnosticsConfig, DiagnosticsPrompt};
pub use eval::{EvalConfig, EvalText, SyntheticPrompt};
pub use mitigation::Mitigation;
pub use optim::{OptimConfig, Schedule};
pub use passkey::{PasskeyConfig, RecallRule};
pub use train::{Precision, StatePassing, TrainConfig};
pub use verdict::{VerdictConfig, VerdictCurve};

use crate::config::{Invalid, ModelConfig};

/// A complete run configuration (`config.toml` in a run directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Free-form name, shown in logs and the dashboard.
    #[serde(default)]
    pub name: Option<String>,
    /// Seeds initialisation, data order, synthetic tasks and evaluation windows.
    #[serde(default)]
    pub seed: u64,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub eval: EvalConfig,
}

impl RunConfig {
    /// Parses and validates a run config; errors name the key and its line.
    pub fn from_toml_str(source: &str) -> Result<Self, crate::config::ConfigError> {
        crate::config::parse_validated(source, Self::validate)
    }

    /// Reads, parses and validates a run config file.
    pub fn load(path: &std::path::Path) -> Result<Self, crate::config::ConfigError> {
        crate::config::load_validated(path, Self::validate)
    }

    /// The same config with every relative data path (shards, globs, tokenizer, cache)
    /// resolved against `base`, as written into run directories so that runs do not depend on
    /// the directory they were launched from.
    pub fn with_absolute_paths(&self, base: &std::path::Path) -> RunConfig {
        let abs = |p: &str| -> String {
            let path = std::path::Path::new(p);
            if path.is_absolute() {
                p.to_string()
            } else {
                base.join(path).to_string_lossy().into_owned()
            }
        };
        let mut out = self.clone();
        out.data.train = self.data.train.iter().map(|p| abs(p)).collect();
        out.data.validation = self.data.validation.iter().map(|p| abs(p)).collect();
        out.data.tokenizer = base.join(&self.data.tokenizer);
        out.data.cache_dir = self.data.cache_dir.as_ref().map(|c| base.join(c));
        out
    }

    /// Whether `other` describes the same experiment: equal except for where and how fast it
    /// executes (`train.device`, `train.threads`, `train.workers`). A run may resume under
    /// other execution settings, e.g. after a requeue onto different hardware.
    pub fn same_experiment(&self, other: &RunConfig) -> bool {
        self.experiment_only() == other.experiment_only()
    }

    /// The config without its execution settings (`train.device`, `train.threads`,
    /// `train.workers`), which a run may change when it resumes.
    pub(crate) fn experiment_only(&self) -> RunConfig {
        RunConfig {
            train: self.train.without_execution(),
            ..self.clone()
        }
    }

    /// Serialises to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a RunConfig always serialises to TOML")
    }

    /// Checks every section (model, train, optim, data, eval; the first failure is reported);
    /// the error names the offending key. The default horizon is a multiple of the training
    /// length, so the eval section is checked against it.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.model.validate()?;
        self.train.validate()?;
        self.optim.validate()?;
        self.data.validate()?;
        self.eval.validate(self.train.seq_len)?;
        self.eval
            .mitigation
            .check_mixer(self.model.mixer, "eval.mitigation")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serde fills a missing key of these sections from the type's `Default`, so an empty
    /// table, an absent one and `Default::default()` are the same settings.
    #[test]
    fn an_empty_section_is_its_default() {
        fn empty<T: serde::de::DeserializeOwned>() -> T {
            crate::config::parse("").unwrap()
        }
        assert_eq!(empty::<OptimConfig>(), OptimConfig::default());
        assert_eq!(empty::<EvalConfig>(), EvalConfig::default());
        assert_eq!(empty::<SyntheticConfig>(), SyntheticConfig::default());
        assert_eq!(empty::<VerdictConfig>(), VerdictConfig::default());
        assert_eq!(empty::<PasskeyConfig>(), PasskeyConfig::default());
        assert_eq!(empty::<DiagnosticsConfig>(), DiagnosticsConfig::default());
        assert_eq!(empty::<Mitigation>(), Mitigation::default());
        let partial: OptimConfig = crate::config::parse("lr = 0.01").unwrap();
        assert_eq!(
            partial,
            OptimConfig {
                lr: 0.01,
                ..OptimConfig::default()
            }
        );
    }

    #[test]
    fn every_default_section_is_valid() {
        OptimConfig::default().validate().unwrap();
        EvalConfig::default().validate(128).unwrap();
        SyntheticConfig::default()
            .validate("data.synthetic")
            .unwrap();
        VerdictConfig::default().validate("eval.verdict").unwrap();
        PasskeyConfig::default().validate("eval.passkey").unwrap();
        DiagnosticsConfig::default()
            .validate("eval.diagnostics")
            .unwrap();
        Mitigation::default().validate("eval.mitigation").unwrap();
    }

    /// The reference curve needs the whole experiment, so no single run may be decided on it:
    /// the verdict's own check refuses it, not only the run config's.
    #[test]
    fn the_verdict_rules_refuse_a_reference_decision() {
        let on_reference = VerdictConfig {
            on: VerdictCurve::Reference,
            ..VerdictConfig::default()
        };
        let err = on_reference.validate("eval.verdict").unwrap_err();
        assert_eq!(err.key, "eval.verdict.on", "{err}");
    }
}

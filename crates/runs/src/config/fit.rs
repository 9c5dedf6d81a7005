//! `[fit]` of an experiment file: how `forgetlab fit` turns an experiment's verdicts into the
//! T_forget(N_S) and T_recall(N_S) laws. It lives here, beside the run config, because the
//! sweep writes it (inside `experiment.toml`) and the fit reads it, and neither depends on the
//! other.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Invalid};

/// Experiment-level fit settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConfig {
    /// Bootstrap resamples behind every confidence interval.
    pub bootstrap_samples: usize,
    /// Seed of the bootstrap draw.
    pub seed: u64,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Whether the primary T_forget line includes the (0, 0) point, as the paper's does. Both
    /// lines are always computed and stored in `law.json`; this picks the one `law.json` marks
    /// primary (`primary_with_origin`) and the chart and summaries lead with.
    pub include_origin: bool,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            bootstrap_samples: 1000,
            seed: 0,
            confidence: 0.95,
            include_origin: true,
        }
    }
}

/// An experiment file seen only through its `[fit]` table; every other section is ignored.
#[derive(Deserialize)]
struct FitSection {
    #[serde(default)]
    fit: FitConfig,
}

impl FitConfig {
    /// Checks value ranges; keys are reported as `fit.<key>`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.bootstrap_samples == 0 {
            return Err(Invalid::new("fit.bootstrap_samples", "must be at least 1"));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(Invalid::new(
                "fit.confidence",
                format!("must be in (0, 1), got {}", self.confidence),
            ));
        }
        Ok(())
    }

    /// Reads `[fit]` from an experiment file (e.g. `runs/<experiment>/experiment.toml`);
    /// defaults when the section is absent.
    pub fn from_experiment_file(path: &Path) -> Result<Self, ConfigError> {
        crate::config::load_validated(path, |s: &FitSection| s.fit.validate()).map(|s| s.fit)
    }

    /// Like [`FitConfig::from_experiment_file`], from a TOML source.
    pub fn from_experiment_str(source: &str) -> Result<Self, ConfigError> {
        crate::config::parse_validated(source, |s: &FitSection| s.fit.validate()).map(|s| s.fit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fit_and_ignores_other_sections() {
        let src = "[experiment]\nname = \"x\"\n\n[fit]\nbootstrap_samples = 50\nseed = 7\n";
        let fit = FitConfig::from_experiment_str(src).unwrap();
        assert_eq!(fit.bootstrap_samples, 50);
        assert_eq!(fit.seed, 7);
        assert!(fit.include_origin);
        let fit = FitConfig::from_experiment_str("[fit]\ninclude_origin = false\n").unwrap();
        assert!(!fit.include_origin);
        assert_eq!(
            FitConfig::from_experiment_str("").unwrap(),
            FitConfig::default()
        );
    }

    #[test]
    fn bad_fit_values_name_key_and_line() {
        let err = FitConfig::from_experiment_str("[fit]\nconfidence = 1.5\n").unwrap_err();
        assert_eq!(err.key(), Some("fit.confidence"));
        assert_eq!(err.line(), Some(2));
        let err = FitConfig::from_experiment_str("[fit]\nbootstrap = 5\n").unwrap_err();
        assert_eq!(err.line(), Some(2), "{err}");
        assert!(err.to_string().contains("bootstrap"), "{err}");
    }
}

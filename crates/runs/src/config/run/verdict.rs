//! `[eval.verdict]`: the forget criterion's settings and the single set of rules for them.
//! Training checks them before step 1 and the verdict checks them again after command-line
//! overrides; both call [`VerdictConfig::validate`], so a setting that trains is never
//! refused at evaluation, nor the other way round.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// The forget criterion; paper.md section 3 gives no exact threshold, so both the default
/// test and its tolerance are configurable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictConfig {
    /// The margin in nats. Past T_train the loss is averaged over a few wide ranges and
    /// compared, window by window, with its mean over [T_train/2, T_train): a run whose rise
    /// is confidently below the margin in every range forgets; one whose rise is confidently
    /// above it in some range does not; anything else is undetermined.
    pub epsilon: f64,
    /// Confidence level of the simultaneous intervals (Bonferroni over the ranges).
    pub confidence: f64,
    /// Which curve decides: raw loss on position-stationary text (default), the excess over
    /// the n-gram baseline, the others are reported beside it.
    pub on: VerdictCurve,
    /// Removed with the version-1 criterion; rejected with an explanation when set.
    #[serde(skip_serializing)]
    pub max_slope_per_1k: Option<f64>,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self {
            epsilon: 0.1,
            confidence: 0.95,
            on: VerdictCurve::default(),
            max_slope_per_1k: None,
        }
    }
}

impl VerdictConfig {
    /// Checks the margin, the confidence level and the deciding curve; `prefix` is the dotted
    /// key of the table. The one rule set for these values: run configs are checked with it
    /// before training, and the verdict checks its (possibly overridden) settings with it
    /// again.
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return Err(Invalid::new(
                format!("{prefix}.epsilon"),
                format!("must be a finite number >= 0 (nats), got {}", self.epsilon),
            ));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(Invalid::new(
                format!("{prefix}.confidence"),
                format!("must be in (0.5, 1), got {}", self.confidence),
            ));
        }
        if self.max_slope_per_1k.is_some() {
            return Err(Invalid::new(
                format!("{prefix}.max_slope_per_1k"),
                "was removed: the verdict now tests the rise over wide ranges past T_train with \
                 confidence intervals (see the README's science section); delete the key",
            ));
        }
        if self.on == VerdictCurve::Reference {
            return Err(Invalid::new(
                format!("{prefix}.on"),
                "\"reference\" needs the whole experiment; `forgetlab fit` reports it beside \
                 the decision; use \"raw\" or \"excess\"",
            ));
        }
        Ok(())
    }
}

/// The loss curve the verdict is decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictCurve {
    /// Model loss as is, on text whose difficulty does not depend on position.
    #[default]
    Raw,
    /// Model loss minus the position-matched n-gram baseline.
    Excess,
    /// Model loss minus the experiment's longest-trained run of the same state size, on the
    /// same windows (set by `forgetlab fit`; never the decision of a single run).
    Reference,
}

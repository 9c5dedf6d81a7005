//! `[eval.passkey]`: the passkey retrieval test, with the one set of rules that training
//! applies before step 1 and evaluation applies again after command-line overrides.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// Passkey retrieval (paper.md section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasskeyConfig {
    /// Context lengths in tokens; empty = powers of two from seq_len/4 to the horizon.
    pub lengths: Vec<usize>,
    /// Samples per length; sample i has depth (i + 0.5) / samples.
    pub samples: usize,
    /// T_recall = the longest length whose accuracy is at least this.
    pub threshold: f64,
    /// Rows of the depth x length heatmap.
    pub depth_bins: usize,
    /// Prepend the EOS token to each prompt.
    pub use_bos: bool,
    /// Seed of the passkey draw.
    pub seed: u64,
    /// How T_recall is read off the accuracy-per-length curve.
    pub recall_rule: RecallRule,
}

impl Default for PasskeyConfig {
    fn default() -> Self {
        Self {
            lengths: Vec::new(),
            samples: 20,
            threshold: 0.95,
            depth_bins: 10,
            use_bos: false,
            seed: 1234,
            recall_rule: RecallRule::default(),
        }
    }
}

impl PasskeyConfig {
    /// Checks lengths, samples, threshold and depth bins; `prefix` is the dotted key of the
    /// table. The one rule set for these values, before training and again at evaluation.
    /// Whether a length fits the prompt depends on the tokenizer; training checks that too.
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        if let Some(i) = self.lengths.iter().position(|&l| l == 0) {
            return Err(Invalid::new(
                format!("{prefix}.lengths[{i}]"),
                "must be at least 1 token",
            ));
        }
        if let Some(w) = self.lengths.windows(2).find(|w| w[0] >= w[1]) {
            return Err(Invalid::new(
                format!("{prefix}.lengths"),
                format!(
                    "must be increasing, each length once (got {} before {})",
                    w[0], w[1]
                ),
            ));
        }
        if self.samples == 0 {
            return Err(Invalid::new(
                format!("{prefix}.samples"),
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(Invalid::new(
                format!("{prefix}.threshold"),
                format!("must be in [0, 1], got {}", self.threshold),
            ));
        }
        if self.depth_bins == 0 {
            return Err(Invalid::new(
                format!("{prefix}.depth_bins"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// How T_recall is read off the accuracy per length. The paper's definition is "the maximum
/// context length with accuracy >= threshold", which counts a length that passes again after
/// a failure; the stricter reading stops at the first failing length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecallRule {
    /// The longest length whose accuracy reaches the threshold (paper-faithful).
    #[default]
    Longest,
    /// The longest length such that every length up to it reaches the threshold.
    BeforeFirstFailure,
}

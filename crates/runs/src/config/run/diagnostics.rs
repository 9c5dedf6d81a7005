//! `[eval.diagnostics]`: the state-diagnostics pass, whose memory lengths gate the verdict.

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// State diagnostics (paper.md section 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnosticsConfig {
    /// Record statistics every this many tokens.
    pub sample_every: usize,
    /// Length of the diagnostic sequence (default: the per-position horizon).
    pub length: Option<usize>,
    /// Prompt: held-out text or a synthetic prompt.
    pub prompt: DiagnosticsPrompt,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        Self {
            sample_every: 64,
            length: None,
            prompt: DiagnosticsPrompt::default(),
        }
    }
}

impl DiagnosticsConfig {
    /// Checks the sampling cadence; `prefix` is the dotted key of the table.
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        if self.sample_every == 0 {
            return Err(Invalid::new(
                format!("{prefix}.sample_every"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Input of the diagnostics pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiagnosticsPrompt {
    #[default]
    Text,
    Newlines,
    Capital,
}

//! `[eval]`: what `forgetlab eval` measures after training. It is part of the run config,
//! not of the eval command, so every run of an experiment is judged by the settings it was
//! trained with; its sub-tables ([`super::verdict`], [`super::passkey`],
//! [`super::diagnostics`], [`super::mitigation`]) are checked again at evaluation, after
//! command-line overrides, by the same functions.

use serde::{Deserialize, Serialize};

use super::{DiagnosticsConfig, Mitigation, PasskeyConfig, VerdictConfig};
use crate::config::Invalid;

/// How `forgetlab eval` evaluates the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Per-position loss horizon as a multiple of seq_len.
    pub horizon_factor: usize,
    /// Explicit horizon in tokens (overrides horizon_factor).
    pub horizon: Option<usize>,
    /// Number of disjoint evaluation windows (the verdict's independent samples).
    pub windows: usize,
    /// Seed of the held-out document order the windows are cut from; shared by every run of
    /// an experiment, so all runs are scored on the same windows.
    pub window_seed: u64,
    /// Scored positions per verdict range: each range past T_train (and the in-length
    /// reference) is measured on about this many tokens' worth of disjoint windows, at least
    /// `windows` of them, so narrow early ranges are not the noisiest.
    pub range_tokens: usize,
    /// Bucket size in tokens (default: seq_len / 8, at least 1).
    pub bucket: Option<usize>,
    /// Text source of the windows.
    pub text: EvalText,
    /// Length of the generated evaluation stream when `text = "bindings"`.
    pub synthetic_tokens: usize,
    /// Synthetic prompts evaluated besides text.
    pub prompts: Vec<SyntheticPrompt>,
    /// Order of the count n-gram baseline fitted on training tokens (0 = none).
    pub ngram_order: usize,
    /// Training tokens used to fit the n-gram baseline.
    pub ngram_tokens: usize,
    /// Forget criterion.
    pub verdict: VerdictConfig,
    /// Passkey retrieval.
    pub passkey: PasskeyConfig,
    /// State diagnostics.
    pub diagnostics: DiagnosticsConfig,
    /// Inference-time mitigation applied in every eval of this run (default: none).
    pub mitigation: Mitigation,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            horizon_factor: 8,
            horizon: None,
            windows: 64,
            window_seed: 20241009,
            range_tokens: 1 << 19,
            bucket: None,
            text: EvalText::default(),
            synthetic_tokens: 1 << 21,
            prompts: vec![SyntheticPrompt::Newlines, SyntheticPrompt::Capital],
            ngram_order: 3,
            ngram_tokens: 2_000_000,
            verdict: VerdictConfig::default(),
            passkey: PasskeyConfig::default(),
            diagnostics: DiagnosticsConfig::default(),
            mitigation: Mitigation::default(),
        }
    }
}

impl EvalConfig {
    /// The per-position evaluation horizon for a run trained at `seq_len`.
    pub fn horizon_for(&self, seq_len: usize) -> usize {
        self.horizon.unwrap_or(self.horizon_factor * seq_len)
    }

    /// The bucket size for a run trained at `seq_len`.
    pub fn bucket_for(&self, seq_len: usize) -> usize {
        self.bucket.unwrap_or((seq_len / 8).max(1))
    }

    /// Checks the section and its sub-tables for a run trained at `seq_len` (the default
    /// horizon is a multiple of it); keys are reported as `eval.<key>`.
    pub fn validate(&self, seq_len: usize) -> Result<(), Invalid> {
        if self.windows == 0 {
            return Err(Invalid::new("eval.windows", "must be at least 1"));
        }
        if self.horizon_for(seq_len) == 0 {
            return Err(Invalid::new("eval.horizon", "must be at least 1"));
        }
        if self.bucket == Some(0) {
            return Err(Invalid::new("eval.bucket", "must be at least 1"));
        }
        self.verdict.validate("eval.verdict")?;
        self.passkey.validate("eval.passkey")?;
        self.diagnostics.validate("eval.diagnostics")?;
        self.mitigation.validate("eval.mitigation")
    }
}

/// How evaluation windows are cut from held-out text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvalText {
    /// Disjoint windows cut at fixed strides from the whole held-out split, its documents in a
    /// seeded order (EOS-separated) and rotated by a seeded offset: every position of a window
    /// sees the same distribution of text, and a window never wraps.
    #[default]
    Concatenated,
    /// Windows from the start of single documents at least `horizon` tokens long (each
    /// document at most once). Position 0 is always a document start, so text difficulty
    /// changes with position; the n-gram curve shows by how much.
    LongDocuments,
    /// A seeded stream of the `bindings` synthetic task (`[data.synthetic]` keys and lag),
    /// `[eval] synthetic_tokens` long: the synthetic-task version of the forget test.
    Bindings,
}

/// The synthetic long prompts of the paper (section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyntheticPrompt {
    /// `"\n"` repeated.
    Newlines,
    /// "The capital of China is Beijing. ..." repeated.
    Capital,
}

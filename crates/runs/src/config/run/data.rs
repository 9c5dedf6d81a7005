//! `[data]` and `[data.synthetic]`: the only sections that name files, so the only ones
//! [`super::RunConfig::with_absolute_paths`] rewrites, and the ones the data identity recorded
//! in a run directory is derived from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Invalid;

/// Where training text comes from and how it becomes sequences.
///
/// `train` and `tokenizer` are required, so the section has no `Default`; each other key
/// names its default itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training shards: files, directories or glob patterns (jsonl, jsonl.zst, json.gz,
    /// parquet, txt). Relative paths are resolved against the working directory.
    pub train: Vec<String>,
    /// Held-out shards for validation and evaluation text. Empty = hold out
    /// `validation_fraction` of the training documents instead.
    #[serde(default)]
    pub validation: Vec<String>,
    /// Fraction of training documents held out when `validation` is empty.
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// A `tokenizer.json` (HF tokenizers format).
    pub tokenizer: PathBuf,
    /// How documents become training sequences.
    #[serde(default)]
    pub packing: Packing,
    /// Keep only documents with at least this many tokens (0 = all).
    #[serde(default)]
    pub min_doc_tokens: usize,
    /// Keep only documents whose `meta.redpajama_set_name` is listed (empty = all).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Skip (and count) malformed records instead of stopping.
    #[serde(default)]
    pub skip_bad: bool,
    /// Token cache directory written by `forgetlab data prepare`; used when present.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Synthetic long-memory tasks mixed into training.
    #[serde(default)]
    pub synthetic: SyntheticConfig,
}

fn default_validation_fraction() -> f64 {
    0.01
}

impl DataConfig {
    /// Checks value ranges; keys are reported as `data.<key>`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.train.is_empty() {
            return Err(Invalid::new("data.train", "lists no shards"));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(Invalid::new(
                "data.validation_fraction",
                "must be in [0, 1)",
            ));
        }
        self.synthetic.validate("data.synthetic")
    }
}

/// Packing strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Packing {
    /// Concatenate documents with an EOS separator and cut into windows.
    #[default]
    Concat,
    /// Only documents of at least `seq_len + 1` tokens, each cut into windows, so a sequence
    /// never crosses a document boundary.
    LongDocument,
}

/// Synthetic tasks that make long memory worth learning at CPU scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Fraction of training sequences that are synthetic (0 = text only).
    pub ratio: f64,
    /// Which tasks to draw from, uniformly.
    pub tasks: Vec<SyntheticTask>,
    /// Number of key-value pairs in an associative-recall sequence.
    pub recall_pairs: usize,
    /// Number of queries at the end of an associative-recall sequence.
    pub recall_queries: usize,
    /// Distinct keys of the `bindings` task.
    pub binding_keys: usize,
    /// A `bindings` query asks for a key among the last this many bindings; 0 = any key bound
    /// so far, so memory of a key's latest binding is worth keeping however long ago it was.
    pub binding_lag: usize,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            ratio: 0.0,
            tasks: vec![SyntheticTask::Passkey, SyntheticTask::AssociativeRecall],
            recall_pairs: 8,
            recall_queries: 4,
            binding_keys: 64,
            binding_lag: 4,
        }
    }
}

impl SyntheticConfig {
    /// Checks value ranges; `prefix` is the dotted key of the table.
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        if !(0.0..=1.0).contains(&self.ratio) {
            return Err(Invalid::new(format!("{prefix}.ratio"), "must be in [0, 1]"));
        }
        if self.ratio > 0.0 && self.tasks.is_empty() {
            return Err(Invalid::new(
                format!("{prefix}.tasks"),
                "lists no task but ratio > 0",
            ));
        }
        if self.recall_pairs == 0 || self.recall_queries == 0 {
            return Err(Invalid::new(
                format!("{prefix}.recall_pairs"),
                "recall_pairs and recall_queries must be at least 1",
            ));
        }
        if self.binding_keys < 2 {
            return Err(Invalid::new(
                format!("{prefix}.binding_keys"),
                "must be at least 2",
            ));
        }
        Ok(())
    }
}

/// A synthetic long-memory task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyntheticTask {
    /// A 5-digit passkey hidden in random filler, asked for at the end.
    Passkey,
    /// Key-value pairs, then queries for some keys far later.
    AssociativeRecall,
    /// A stream of key-value bindings that overwrite each other ("k12=40;") and queries for
    /// the latest value of a recently bound key ("k12?40;"), filling the whole sequence: a
    /// state that keeps every binding fills with stale ones, so forgetting is worth learning.
    Bindings,
}

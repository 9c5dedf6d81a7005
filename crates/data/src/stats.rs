//! `forgetlab data stats`: documents, bytes and (with a tokenizer) tokens per source of a set
//! of shards, as stable JSON.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::shards::{SkipCounts, read_shard, resolve_shards};
use crate::tokenizer::Tokenizer;

/// Counts of one source (or of everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStats {
    pub documents: u64,
    pub bytes: u64,
    /// Present when a tokenizer was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

/// The stats report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub files: u64,
    pub documents: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokenizer_sha256: Option<String>,
    /// By `redpajama_set_name` (`unknown` when a record has none).
    pub sources: BTreeMap<String, SourceStats>,
    /// Records skipped with `skip_bad`, by reason.
    pub skipped: SkipCounts,
}

/// Reads every record of `patterns`, tokenizing in parallel batches when `tokenizer` is given.
pub fn stats(
    patterns: &[String],
    tokenizer: Option<&Tokenizer>,
    skip_bad: bool,
) -> Result<Stats, DataError> {
    let files = resolve_shards(patterns)?;
    let mut out = Stats {
        files: files.len() as u64,
        tokens: tokenizer.map(|_| 0),
        tokenizer_sha256: tokenizer.map(|t| t.sha256().to_string()),
        ..Stats::default()
    };
    let mut batch: Vec<(String, String)> = Vec::new();
    let mut batch_bytes = 0usize;
    let flush = |batch: &mut Vec<(String, String)>, out: &mut Stats| -> Result<(), DataError> {
        let counts: Vec<Result<Option<u64>, DataError>> = batch
            .par_iter()
            .map(|(_, text)| {
                tokenizer
                    .map(|t| t.encode(text).map(|ids| ids.len() as u64))
                    .transpose()
            })
            .collect();
        for ((source, text), tokens) in batch.drain(..).zip(counts) {
            let tokens = tokens?;
            let s = out.sources.entry(source).or_default();
            s.documents += 1;
            s.bytes += text.len() as u64;
            out.documents += 1;
            out.bytes += text.len() as u64;
            if let Some(n) = tokens {
                *s.tokens.get_or_insert(0) += n;
                *out.tokens.get_or_insert(0) += n;
            }
        }
        Ok(())
    };
    let mut skipped = SkipCounts::new();
    for file in &files {
        read_shard(file, skip_bad, &mut skipped, |record| {
            batch_bytes += record.text.len();
            batch.push((
                record.source.unwrap_or_else(|| "unknown".into()),
                record.text,
            ));
            if batch_bytes > (8 << 20) {
                flush(&mut batch, &mut out)?;
                batch_bytes = 0;
            }
            Ok(())
        })?;
    }
    flush(&mut batch, &mut out)?;
    out.skipped = skipped;
    Ok(out)
}

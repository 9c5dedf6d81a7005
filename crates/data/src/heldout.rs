//! Held-out text for validation and evaluation: the cache's held-out split, in a fixed order.

use std::sync::Arc;

use forgetlab_runs::config::DataConfig;

use crate::cache::TokenCache;
use crate::error::DataError;
use crate::rng::SplitMix64;
use crate::tokenizer::Tokenizer;

/// Purpose tag of the evaluation stream's generator (document order and rotation).
const EVAL_STREAM_PURPOSE: u64 = 0xE7A1_5EED;

/// The held-out documents of a data config.
pub struct HeldOut {
    cache: Arc<TokenCache>,
    tokenizer: Tokenizer,
}

/// Opens the held-out split of `data` (the `validation` shards, or the held-out fraction of the
/// training documents when none are given).
pub fn heldout_stream(data: &DataConfig) -> Result<HeldOut, DataError> {
    let tokenizer = Tokenizer::from_file(&data.tokenizer)?;
    let cache = Arc::new(TokenCache::for_config(data, &tokenizer)?);
    if cache.heldout.documents() == 0 {
        return Err(DataError::Empty(format!(
            "no held-out documents: give data.validation shards or a larger data.validation_fraction (cache {})",
            cache.dir.display()
        )));
    }
    Ok(HeldOut { cache, tokenizer })
}

impl HeldOut {
    /// The held-out documents concatenated with end-of-text separators, at most `max_tokens`.
    pub fn tokens(&mut self, max_tokens: usize) -> Result<Vec<u32>, DataError> {
        let split = &self.cache.heldout;
        let mut out = Vec::with_capacity(
            max_tokens.min(self.cache.manifest.heldout.tokens as usize + split.documents()),
        );
        for doc in 0..split.documents() {
            if out.len() >= max_tokens {
                break;
            }
            let take = split.doc_len(doc).min(max_tokens - out.len());
            split.extend_from(doc, 0, take, &mut out);
            if out.len() < max_tokens {
                out.push(self.tokenizer.eos_id());
            }
        }
        Ok(out)
    }

    /// The whole held-out split as one evaluation stream: every document once, in an order
    /// drawn from `seed`, each followed by the end-of-text token, then rotated left by a
    /// seeded offset so the stream does not begin at a document start. The result depends
    /// only on the split and the seed, never on a horizon or a training length, so every run
    /// of an experiment cuts its windows from the same text.
    pub fn evaluation_stream(&mut self, seed: u64) -> Result<Vec<u32>, DataError> {
        let split = &self.cache.heldout;
        let mut order: Vec<usize> = (0..split.documents()).collect();
        let mut rng = SplitMix64::derived(seed, EVAL_STREAM_PURPOSE);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut out = Vec::with_capacity(self.cache.manifest.heldout.tokens as usize + order.len());
        for doc in order {
            split.extend_from(doc, 0, split.doc_len(doc), &mut out);
            out.push(self.tokenizer.eos_id());
        }
        if !out.is_empty() {
            let offset = rng.below(out.len() as u64) as usize;
            out.rotate_left(offset);
        }
        Ok(out)
    }

    /// Held-out documents of at least `min_tokens` tokens, at most `max_docs` of them.
    pub fn long_documents(
        &mut self,
        min_tokens: usize,
        max_docs: usize,
    ) -> Result<Vec<Vec<u32>>, DataError> {
        let split = &self.cache.heldout;
        Ok((0..split.documents())
            .filter(|&d| split.doc_len(d) >= min_tokens)
            .take(max_docs)
            .map(|d| split.doc(d))
            .collect())
    }

    /// Total held-out tokens (without separators).
    pub fn total_tokens(&self) -> u64 {
        self.cache.manifest.heldout.tokens
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

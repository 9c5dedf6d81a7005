//! The training stream of one run: fixed-length sequences from the token cache, in a seeded
//! order, optionally mixed with synthetic long-memory tasks, and resumable exactly from a
//! [`DataCursor`].
//!
//! - `packing = "concat"`: each epoch visits the eligible documents in a fresh seeded order,
//!   appends an end-of-text token after each, and cuts the stream into sequences of
//!   `seq_len + 1` tokens (inputs and shifted targets).
//! - `packing = "long-document"`: only documents of at least `seq_len + 1` tokens, each cut
//!   into whole windows; each epoch visits all windows in a fresh seeded order, so a sequence
//!   is always `seq_len + 1` consecutive tokens of one document.
//!
//! When the budget outlasts the data, the next epoch starts with a new order. The cursor is
//! (epoch, position, offset inside the current document, synthetic RNG state): a resumed
//! stream returns exactly what the original would have.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use forgetlab_runs::config::{DataConfig, Packing};

use crate::cache::TokenCache;
use crate::error::DataError;
use crate::rng::SplitMix64;
use crate::synthetic::SyntheticTasks;
use crate::tokenizer::Tokenizer;

const ORDER_PURPOSE: u64 = 0x006f_7264_6572;
const SYNTHETIC_PURPOSE: u64 = 0x0073_796e_7468;

/// Where a stream is. Saved in checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    /// Passes over the data so far.
    pub epoch: u64,
    /// Index into this epoch's order of documents (concat) or windows (long-document).
    pub position: u64,
    /// Tokens already taken from the current document (concat mode; the separator counts).
    pub offset: u64,
    /// State of the synthetic-task generator (draws both the mixing and the tasks).
    pub synthetic_rng: SplitMix64,
    /// Sequences produced so far.
    pub sequences: u64,
}

/// What a stream has consumed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    pub epoch: u64,
    pub sequences: u64,
    pub text_sequences: u64,
    pub synthetic_sequences: u64,
    /// Documents eligible for training after the source and length filters.
    pub eligible_documents: u64,
    pub eligible_tokens: u64,
    /// Records skipped while building the cache, by reason.
    pub skipped: std::collections::BTreeMap<String, u64>,
    pub cache_dir: std::path::PathBuf,
}

/// A deterministic, resumable stream of training sequences.
pub struct TrainStream {
    cache: Arc<TokenCache>,
    tokenizer: Tokenizer,
    seq_len: usize,
    seed: u64,
    packing: Packing,
    /// Eligible documents (concat) or (document, window) pairs packed as doc << 24 | window.
    units: Vec<u64>,
    order: Vec<u64>,
    cursor: DataCursor,
    synthetic: Option<SyntheticTasks>,
    synthetic_ratio: f64,
    report: StreamReport,
}

impl TrainStream {
    /// A stream from the beginning.
    pub fn open(data: &DataConfig, seq_len: usize, seed: u64) -> Result<Self, DataError> {
        let cursor = DataCursor {
            epoch: 0,
            position: 0,
            offset: 0,
            synthetic_rng: SplitMix64::derived(seed, SYNTHETIC_PURPOSE),
            sequences: 0,
        };
        Self::resume(data, seq_len, seed, &cursor)
    }

    /// A stream continuing exactly at `cursor`.
    pub fn resume(
        data: &DataConfig,
        seq_len: usize,
        seed: u64,
        cursor: &DataCursor,
    ) -> Result<Self, DataError> {
        let tokenizer = Tokenizer::from_file(&data.tokenizer)?;
        let cache = Arc::new(TokenCache::for_config(data, &tokenizer)?);
        let window = seq_len + 1;
        let allowed: Option<Vec<u16>> = (!data.sources.is_empty()).then(|| {
            data.sources
                .iter()
                .filter_map(|s| cache.source_index(s))
                .collect()
        });
        if let Some(allowed) = &allowed
            && allowed.is_empty()
        {
            return Err(DataError::Empty(format!(
                "data.sources = {:?} matches no document (sources in the data: {})",
                data.sources,
                cache.manifest.source_names.join(", ")
            )));
        }
        let split = &cache.train;
        let min_len = match data.packing {
            Packing::Concat => data.min_doc_tokens.max(1),
            Packing::LongDocument => data.min_doc_tokens.max(window),
        };
        let mut units = Vec::new();
        let mut eligible_tokens = 0u64;
        let mut eligible_documents = 0u64;
        for doc in 0..split.documents() {
            let len = split.doc_len(doc);
            if len < min_len
                || allowed
                    .as_ref()
                    .is_some_and(|a| !a.contains(&split.doc_source(doc)))
            {
                continue;
            }
            eligible_documents += 1;
            eligible_tokens += len as u64;
            match data.packing {
                Packing::Concat => units.push(doc as u64),
                Packing::LongDocument => {
                    for w in 0..len / window {
                        units.push(((doc as u64) << 24) | w as u64);
                    }
                }
            }
        }
        if units.is_empty() {
            return Err(DataError::Empty(format!(
                "no training document passes the filters (packing {:?}, min_doc_tokens {}, sources {:?}; longest document has {} tokens)",
                data.packing,
                min_len,
                data.sources,
                (0..split.documents())
                    .map(|d| split.doc_len(d))
                    .max()
                    .unwrap_or(0)
            )));
        }
        let synthetic = (data.synthetic.ratio > 0.0)
            .then(|| SyntheticTasks::new(&data.synthetic, &tokenizer, seq_len))
            .transpose()?;
        let report = StreamReport {
            eligible_documents,
            eligible_tokens,
            skipped: cache.manifest.skipped.clone(),
            cache_dir: cache.dir.clone(),
            ..StreamReport::default()
        };
        let mut stream = Self {
            cache,
            tokenizer,
            seq_len,
            seed,
            packing: data.packing,
            units,
            order: Vec::new(),
            cursor: cursor.clone(),
            synthetic,
            synthetic_ratio: data.synthetic.ratio,
            report,
        };
        stream.order = stream.order_for(cursor.epoch);
        Ok(stream)
    }

    fn order_for(&self, epoch: u64) -> Vec<u64> {
        let mut order = self.units.clone();
        SplitMix64::derived(
            self.seed ^ epoch.wrapping_mul(0xA24B_AED4_963E_E407),
            ORDER_PURPOSE,
        )
        .shuffle(&mut order);
        order
    }

    fn next_epoch(&mut self) {
        self.cursor.epoch += 1;
        self.cursor.position = 0;
        self.cursor.offset = 0;
        self.order = self.order_for(self.cursor.epoch);
    }

    /// `n` sequences of seq_len + 1 tokens each, row-major.
    pub fn next_sequences(&mut self, n: usize) -> Result<Vec<u32>, DataError> {
        let window = self.seq_len + 1;
        let mut out = Vec::with_capacity(n * window);
        for _ in 0..n {
            let synthetic = match &self.synthetic {
                Some(_) => self.cursor.synthetic_rng.unit() < self.synthetic_ratio,
                None => false,
            };
            if synthetic {
                let tasks = self.synthetic.as_ref().expect("checked above");
                out.extend(tasks.sample(&mut self.cursor.synthetic_rng));
                self.report.synthetic_sequences += 1;
            } else {
                self.next_text_sequence(&mut out);
                self.report.text_sequences += 1;
            }
            self.cursor.sequences += 1;
        }
        Ok(out)
    }

    fn next_text_sequence(&mut self, out: &mut Vec<u32>) {
        let window = self.seq_len + 1;
        let cache = Arc::clone(&self.cache);
        let split = &cache.train;
        match self.packing {
            Packing::LongDocument => {
                if self.cursor.position as usize >= self.order.len() {
                    self.next_epoch();
                }
                let unit = self.order[self.cursor.position as usize];
                let (doc, w) = ((unit >> 24) as usize, (unit & 0xFF_FFFF) as usize);
                split.extend_from(doc, w * window, (w + 1) * window, out);
                self.cursor.position += 1;
            }
            Packing::Concat => {
                let eos = self.tokenizer.eos_id();
                let mut need = window;
                while need > 0 {
                    if self.cursor.position as usize >= self.order.len() {
                        self.next_epoch();
                    }
                    let doc = self.order[self.cursor.position as usize] as usize;
                    let len = split.doc_len(doc) + 1; // the document and its separator
                    let offset = self.cursor.offset as usize;
                    let take = need.min(len - offset);
                    let doc_end = (offset + take).min(len - 1);
                    if doc_end > offset {
                        split.extend_from(doc, offset, doc_end, out);
                    }
                    if offset + take == len {
                        out.push(eos);
                        self.cursor.position += 1;
                        self.cursor.offset = 0;
                    } else {
                        self.cursor.offset += take as u64;
                    }
                    need -= take;
                }
            }
        }
    }

    /// The stream's position, to save in a checkpoint.
    pub fn cursor(&self) -> DataCursor {
        self.cursor.clone()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// What the stream has consumed.
    pub fn report(&self) -> StreamReport {
        StreamReport {
            epoch: self.cursor.epoch,
            sequences: self.cursor.sequences,
            ..self.report.clone()
        }
    }

    /// The token cache the stream reads.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }
}

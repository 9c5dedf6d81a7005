//! The token cache: shards tokenized once, in parallel, into memory-mapped token files.
//!
//! Tokenizing is the expensive part of the data path (about 1.5 MB of text per CPU-second
//! for GPT-NeoX), so training never tokenizes on the fly: it reads documents as slices of a
//! memory-mapped `u16` (or `u32`) file. A cache directory holds
//!
//! ```text
//! manifest.json                 inputs (path, size, mtime), tokenizer sha256, counts, skips
//! train.tokens  train.offsets   tokens of the training documents; u64 document offsets
//! train.sources                 u16 index into manifest.source_names per document
//! heldout.tokens heldout.offsets heldout.sources   the held-out (validation) documents
//! ```
//!
//! It is built in a temporary directory and renamed into place, so a cache is complete or
//! absent. Re-running on the same inputs is a no-op; a changed input file or tokenizer is
//! detected from the manifest. Held-out documents are the `validation` shards, or, when none
//! are given, a deterministic fraction of the training documents chosen by a hash of their
//! text, so the split does not depend on order or parallelism.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use forgetlab_runs::config::DataConfig;

use crate::error::DataError;
use crate::shards::{Record, SkipCounts, read_shard, resolve_shards};
use crate::tokenizer::{Tokenizer, hex_sha256};

const VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";

/// One input file as the cache saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: PathBuf,
    pub bytes: u64,
    pub mtime_ns: u128,
    /// `train` or `validation`.
    pub split: String,
}

/// Document, byte and token counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub documents: u64,
    pub bytes: u64,
    pub tokens: u64,
}

/// `manifest.json` of a token cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub tokenizer: PathBuf,
    pub tokenizer_sha256: String,
    pub vocab_size: usize,
    pub eos_id: u32,
    /// `u16` or `u32`.
    pub dtype: String,
    pub inputs: Vec<InputFile>,
    /// Fraction of training documents held out when no validation shards are given.
    pub validation_fraction: Option<f64>,
    pub skip_bad: bool,
    pub source_names: Vec<String>,
    pub train: Counts,
    pub heldout: Counts,
    /// Per source name (`unknown` when a shard has none): training documents, bytes, tokens.
    pub train_by_source: std::collections::BTreeMap<String, Counts>,
    pub skipped: SkipCounts,
}

/// The identity of a cache's inputs: files, tokenizer and split rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct CacheKey {
    version: u32,
    inputs: Vec<InputFile>,
    tokenizer_sha256: String,
    validation_fraction: Option<f64>,
    skip_bad: bool,
}

fn describe_inputs(data: &DataConfig) -> Result<Vec<InputFile>, DataError> {
    let mut inputs = Vec::new();
    for (split, patterns) in [("train", &data.train), ("validation", &data.validation)] {
        if patterns.is_empty() {
            continue;
        }
        for path in resolve_shards(patterns)? {
            let meta = std::fs::metadata(&path).map_err(DataError::io(&path))?;
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            inputs.push(InputFile {
                path: path.canonicalize().unwrap_or(path),
                bytes: meta.len(),
                mtime_ns,
                split: split.to_string(),
            });
        }
    }
    Ok(inputs)
}

fn key_for(data: &DataConfig, tokenizer: &Tokenizer) -> Result<CacheKey, DataError> {
    Ok(CacheKey {
        version: VERSION,
        inputs: describe_inputs(data)?,
        tokenizer_sha256: tokenizer.sha256().to_string(),
        validation_fraction: data
            .validation
            .is_empty()
            .then_some(data.validation_fraction),
        skip_bad: data.skip_bad,
    })
}

/// Where caches live when `data.cache_dir` is not set: `$FORGETLAB_CACHE`, else
/// `$XDG_CACHE_HOME/forgetlab/tokens`, else `~/.cache/forgetlab/tokens`.
pub fn default_cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("FORGETLAB_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("forgetlab").join("tokens")
}

/// Token ids of one split, memory-mapped.
pub struct SplitTokens {
    tokens: Mmap,
    wide: bool,
    offsets: Vec<u64>,
    sources: Vec<u16>,
}

impl SplitTokens {
    fn open(dir: &Path, name: &str, wide: bool) -> Result<Self, DataError> {
        let open = |ext: &str| -> Result<Vec<u8>, DataError> {
            let p = dir.join(format!("{name}.{ext}"));
            std::fs::read(&p).map_err(DataError::io(p))
        };
        let path = dir.join(format!("{name}.tokens"));
        let file = File::open(&path).map_err(DataError::io(&path))?;
        // SAFETY: cache files are written once into a temporary directory and renamed into
        // place; they are never modified afterwards.
        let tokens = unsafe { Mmap::map(&file) }.map_err(DataError::io(&path))?;
        let offsets = open("offsets")?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect::<Vec<_>>();
        let sources = open("sources")?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes(c.try_into().expect("2 bytes")))
            .collect();
        let split = Self {
            tokens,
            wide,
            offsets,
            sources,
        };
        let width = if wide { 4 } else { 2 };
        let expected = split.offsets.last().copied().unwrap_or(0) as usize * width;
        if split.tokens.len() != expected || split.sources.len() + 1 != split.offsets.len().max(1) {
            return Err(DataError::Cache {
                path: dir.to_path_buf(),
                reason: format!(
                    "{name} files are inconsistent; delete the cache and prepare it again"
                ),
            });
        }
        Ok(split)
    }

    /// Number of documents.
    pub fn documents(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Token count of document `doc`.
    pub fn doc_len(&self, doc: usize) -> usize {
        (self.offsets[doc + 1] - self.offsets[doc]) as usize
    }

    /// Source index of document `doc`.
    pub fn doc_source(&self, doc: usize) -> u16 {
        self.sources[doc]
    }

    /// Appends tokens `[from, to)` of document `doc` to `out`.
    pub fn extend_from(&self, doc: usize, from: usize, to: usize, out: &mut Vec<u32>) {
        let start = self.offsets[doc] as usize + from;
        let end = self.offsets[doc] as usize + to;
        if self.wide {
            out.extend(
                self.tokens[start * 4..end * 4]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))),
            );
        } else {
            out.extend(
                self.tokens[start * 2..end * 2]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes(c.try_into().expect("2 bytes")) as u32),
            );
        }
    }

    /// All tokens of document `doc`.
    pub fn doc(&self, doc: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.doc_len(doc));
        self.extend_from(doc, 0, self.doc_len(doc), &mut out);
        out
    }
}

/// An opened token cache.
pub struct TokenCache {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub train: SplitTokens,
    pub heldout: SplitTokens,
}

impl TokenCache {
    /// Opens the cache for `data`, building it first if it does not exist. An explicit
    /// `data.cache_dir` whose manifest does not match the inputs is an error (it is never
    /// overwritten silently); the automatic per-input cache is keyed by its inputs.
    pub fn for_config(data: &DataConfig, tokenizer: &Tokenizer) -> Result<Self, DataError> {
        let key = key_for(data, tokenizer)?;
        let dir = match &data.cache_dir {
            Some(dir) => dir.clone(),
            None => {
                let digest = hex_sha256(&serde_json::to_vec(&key).expect("serialisable"));
                default_cache_root().join(&digest[..24])
            }
        };
        if dir.join(MANIFEST).is_file() {
            let cache = Self::open(&dir)?;
            if let Some(reason) = mismatch(&cache.manifest, &key) {
                return Err(DataError::Cache {
                    path: dir,
                    reason: format!(
                        "{reason}; run `forgetlab data prepare` with this run's config to rebuild it"
                    ),
                });
            }
            return Ok(cache);
        }
        prepare(data, tokenizer, &dir, key)?;
        Self::open(&dir)
    }

    /// Opens an existing cache directory.
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(DataError::io(&path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| DataError::Cache {
            path: path.clone(),
            reason: format!("unreadable manifest: {e}"),
        })?;
        if manifest.version != VERSION {
            return Err(DataError::Cache {
                path,
                reason: format!(
                    "made by cache format {}, this is {VERSION}; prepare it again",
                    manifest.version
                ),
            });
        }
        let wide = manifest.dtype == "u32";
        Ok(Self {
            dir: dir.to_path_buf(),
            train: SplitTokens::open(dir, "train", wide)?,
            heldout: SplitTokens::open(dir, "heldout", wide)?,
            manifest,
        })
    }

    /// Index of a source name, if any document has it.
    pub fn source_index(&self, name: &str) -> Option<u16> {
        self.manifest
            .source_names
            .iter()
            .position(|n| n == name)
            .map(|i| i as u16)
    }
}

fn mismatch(manifest: &Manifest, key: &CacheKey) -> Option<String> {
    if manifest.tokenizer_sha256 != key.tokenizer_sha256 {
        return Some("it was built with a different tokenizer".into());
    }
    if manifest.validation_fraction != key.validation_fraction || manifest.skip_bad != key.skip_bad
    {
        return Some("it was built with a different validation split or skip_bad setting".into());
    }
    if manifest.inputs != key.inputs {
        let changed = key
            .inputs
            .iter()
            .find(|i| !manifest.inputs.contains(i))
            .map(|i| format!("{} is new or changed", i.path.display()))
            .or_else(|| {
                manifest
                    .inputs
                    .iter()
                    .find(|i| !key.inputs.contains(i))
                    .map(|i| format!("{} is gone or changed", i.path.display()))
            })
            .unwrap_or_else(|| "the input files changed".into());
        return Some(changed);
    }
    None
}

/// Whether a document goes to the held-out split: a stable hash of its text against the
/// validation fraction.
pub fn is_heldout(text: &str, fraction: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 1_000_000) as f64 / 1e6 < fraction
}

/// Builds (or rebuilds) the cache of `data` in `dir` and returns its manifest; a no-op when a
/// matching cache is already there.
pub fn prepare_cache(
    data: &DataConfig,
    tokenizer: &Tokenizer,
    dir: &Path,
    force: bool,
) -> Result<Manifest, DataError> {
    let key = key_for(data, tokenizer)?;
    if !force && dir.join(MANIFEST).is_file() {
        let cache = TokenCache::open(dir)?;
        if mismatch(&cache.manifest, &key).is_none() {
            tracing::info!("{}: up to date", dir.display());
            return Ok(cache.manifest);
        }
        tracing::info!("{}: inputs changed, rebuilding", dir.display());
    }
    prepare(data, tokenizer, dir, key)
}

struct SplitWriter {
    tokens: BufWriter<File>,
    offsets: Vec<u64>,
    sources: Vec<u16>,
    wide: bool,
    counts: Counts,
}

impl SplitWriter {
    fn create(dir: &Path, name: &str, wide: bool) -> Result<Self, DataError> {
        let path = dir.join(format!("{name}.tokens"));
        Ok(Self {
            tokens: BufWriter::new(File::create(&path).map_err(DataError::io(&path))?),
            offsets: vec![0],
            sources: Vec::new(),
            wide,
            counts: Counts::default(),
        })
    }

    fn push(
        &mut self,
        ids: &[u32],
        source: u16,
        bytes: usize,
        dir: &Path,
    ) -> Result<(), DataError> {
        let mut raw = Vec::with_capacity(ids.len() * 4);
        for &t in ids {
            if self.wide {
                raw.extend_from_slice(&t.to_le_bytes());
            } else {
                raw.extend_from_slice(&(t as u16).to_le_bytes());
            }
        }
        self.tokens.write_all(&raw).map_err(DataError::io(dir))?;
        let last = *self.offsets.last().expect("starts with 0");
        self.offsets.push(last + ids.len() as u64);
        self.sources.push(source);
        self.counts.documents += 1;
        self.counts.tokens += ids.len() as u64;
        self.counts.bytes += bytes as u64;
        Ok(())
    }

    fn finish(mut self, dir: &Path, name: &str) -> Result<Counts, DataError> {
        self.tokens.flush().map_err(DataError::io(dir))?;
        self.tokens
            .get_ref()
            .sync_all()
            .map_err(DataError::io(dir))?;
        let offsets: Vec<u8> = self.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        let sources: Vec<u8> = self.sources.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(dir.join(format!("{name}.offsets")), offsets).map_err(DataError::io(dir))?;
        std::fs::write(dir.join(format!("{name}.sources")), sources).map_err(DataError::io(dir))?;
        Ok(self.counts)
    }
}

fn prepare(
    data: &DataConfig,
    tokenizer: &Tokenizer,
    dir: &Path,
    key: CacheKey,
) -> Result<Manifest, DataError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(DataError::io(parent))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(DataError::io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(DataError::io(&tmp))?;
    let wide = tokenizer.vocab_size() > u16::MAX as usize + 1;
    let mut train = SplitWriter::create(&tmp, "train", wide)?;
    let mut heldout = SplitWriter::create(&tmp, "heldout", wide)?;
    let mut source_names: Vec<String> = vec!["unknown".into()];
    let mut by_source: std::collections::BTreeMap<String, Counts> = Default::default();
    let mut skipped = SkipCounts::new();
    let fraction = key.validation_fraction;
    let started = std::time::Instant::now();
    tracing::info!(
        "tokenizing {} files into {} with {}",
        key.inputs.len(),
        dir.display(),
        tokenizer.path().display()
    );

    // Documents are tokenized in parallel in batches of a few MB, written in input order.
    const BATCH_BYTES: usize = 8 << 20;
    let mut batch: Vec<(Record, bool)> = Vec::new();
    let mut batch_bytes = 0usize;
    let flush = |batch: &mut Vec<(Record, bool)>,
                 train: &mut SplitWriter,
                 heldout: &mut SplitWriter,
                 source_names: &mut Vec<String>,
                 by_source: &mut std::collections::BTreeMap<String, Counts>|
     -> Result<(), DataError> {
        let encoded: Vec<Result<Vec<u32>, DataError>> = batch
            .par_iter()
            .map(|(r, _)| tokenizer.encode(&r.text))
            .collect();
        for ((record, held), ids) in batch.drain(..).zip(encoded) {
            let ids = ids?;
            let name = record.source.unwrap_or_else(|| "unknown".to_string());
            let index = match source_names.iter().position(|n| *n == name) {
                Some(i) => i,
                None => {
                    source_names.push(name.clone());
                    source_names.len() - 1
                }
            };
            if held {
                heldout.push(&ids, index as u16, record.text.len(), &tmp)?;
            } else {
                let c = by_source.entry(name).or_default();
                c.documents += 1;
                c.bytes += record.text.len() as u64;
                c.tokens += ids.len() as u64;
                train.push(&ids, index as u16, record.text.len(), &tmp)?;
            }
        }
        Ok(())
    };
    for input in &key.inputs {
        let validation_file = input.split == "validation";
        read_shard(&input.path, data.skip_bad, &mut skipped, |record| {
            let held = validation_file || fraction.is_some_and(|f| is_heldout(&record.text, f));
            batch_bytes += record.text.len();
            batch.push((record, held));
            if batch_bytes >= BATCH_BYTES {
                flush(
                    &mut batch,
                    &mut train,
                    &mut heldout,
                    &mut source_names,
                    &mut by_source,
                )?;
                batch_bytes = 0;
            }
            Ok(())
        })?;
    }
    flush(
        &mut batch,
        &mut train,
        &mut heldout,
        &mut source_names,
        &mut by_source,
    )?;
    let train_counts = train.finish(&tmp, "train")?;
    let heldout_counts = heldout.finish(&tmp, "heldout")?;
    if train_counts.documents == 0 {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(DataError::Empty(format!(
            "no training documents in {:?}",
            data.train
        )));
    }
    let manifest = Manifest {
        version: VERSION,
        tokenizer: tokenizer.path().to_path_buf(),
        tokenizer_sha256: key.tokenizer_sha256.clone(),
        vocab_size: tokenizer.vocab_size(),
        eos_id: tokenizer.eos_id(),
        dtype: if wide { "u32" } else { "u16" }.to_string(),
        inputs: key.inputs.clone(),
        validation_fraction: fraction,
        skip_bad: data.skip_bad,
        source_names,
        train: train_counts,
        heldout: heldout_counts,
        train_by_source: by_source,
        skipped,
    };
    forgetlab_runs::write_json_atomic(&tmp.join(MANIFEST), &manifest)
        .map_err(DataError::io(&tmp))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(DataError::io(dir))?;
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        // Another process may have finished the same cache first; use theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join(MANIFEST).is_file() {
            return Err(DataError::io(dir)(e));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        "token cache ready: {} train docs / {} tokens, {} held-out docs / {} tokens, {} skipped, {:.1}s ({:.2} MB/s)",
        manifest.train.documents,
        manifest.train.tokens,
        manifest.heldout.documents,
        manifest.heldout.tokens,
        manifest.skipped.values().sum::<u64>(),
        secs,
        (manifest.train.bytes + manifest.heldout.bytes) as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(manifest)
}

//! `data.json`: the tokenizer and data a run was started with, and the check that they have
//! not changed since.
//!
//! A run's config names its tokenizer and shards by path, and a path says nothing about the
//! bytes behind it: a tokenizer replaced in place would re-map every token id of a resumed or
//! evaluated model and still run, just with worse numbers. So the run records, when it starts,
//! the tokenizer's sha256 and the identity of its data (every resolved shard with its size and
//! a digest over the list), and resume and evaluation refuse when either differs, naming both
//! values. The record is written once; later processes only compare against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::RunDir;
use crate::config::Packing;
use crate::marker::sha256_hex;

/// One resolved data shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// `train` or `validation`.
    pub split: String,
    /// Canonical path.
    pub path: PathBuf,
    pub bytes: u64,
}

/// The identity of a run's data: its resolved shards and a digest over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// sha256 over the shard list (split, path and size of each, in order).
    pub sha256: String,
    pub shards: Vec<ShardFile>,
}

impl DataIdentity {
    /// The identity of a shard list, in the order the data is read.
    pub fn new(shards: Vec<ShardFile>) -> Self {
        let canonical = serde_json::to_vec(&shards).expect("shard lists serialise");
        Self {
            sha256: sha256_hex(&canonical),
            shards,
        }
    }

    /// The first difference from `self` to `now`, as a clause naming the shard.
    pub fn difference(&self, now: &DataIdentity) -> String {
        let key = |s: &ShardFile| (s.split.clone(), s.path.clone());
        let before: BTreeMap<_, u64> = self.shards.iter().map(|s| (key(s), s.bytes)).collect();
        let after: BTreeMap<_, u64> = now.shards.iter().map(|s| (key(s), s.bytes)).collect();
        let mut differences = Vec::new();
        for ((split, path), bytes) in &after {
            match before.get(&(split.clone(), path.clone())) {
                None => differences.push(format!("{} ({split}) is new", path.display())),
                Some(was) if was != bytes => differences.push(format!(
                    "{} ({split}) was {was} bytes, is {bytes}",
                    path.display()
                )),
                Some(_) => {}
            }
        }
        for (split, path) in before.keys() {
            if !after.contains_key(&(split.clone(), path.clone())) {
                differences.push(format!("{} ({split}) is gone", path.display()));
            }
        }
        match differences.len() {
            0 => "the shards are read in another order".to_string(),
            1 => differences.remove(0),
            n => format!("{} (and {} more)", differences[0], n - 1),
        }
    }
}

/// The contents of a run's `data.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataProvenance {
    /// The tokenizer's path when the run started.
    #[serde(default)]
    pub tokenizer: PathBuf,
    /// sha256 of the tokenizer file's bytes.
    pub tokenizer_sha256: String,
    #[serde(default)]
    pub tokenizer_vocab_size: usize,
    /// The `data.train` and `data.validation` patterns.
    #[serde(default)]
    pub train: Vec<String>,
    #[serde(default)]
    pub validation: Vec<String>,
    #[serde(default)]
    pub packing: Packing,
    /// The token cache directory the run read.
    #[serde(default)]
    pub token_cache: PathBuf,
    #[serde(default)]
    pub eligible_documents: u64,
    #[serde(default)]
    pub eligible_tokens: u64,
    #[serde(default)]
    pub skipped_records: BTreeMap<String, u64>,
    /// The data's identity; absent in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataIdentity>,
}

/// Why a run's provenance cannot be trusted; displays as one line naming both values.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{}: unreadable record of the run's tokenizer and data ({reason}); it is needed to check them",
        path.display()
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "the tokenizer changed since the run started: {} has sha256 {current}, the run was trained with sha256 {recorded} (recorded in {}); restore that tokenizer",
        tokenizer.display(),
        record.display()
    )]
    Tokenizer {
        tokenizer: PathBuf,
        recorded: String,
        current: String,
        record: PathBuf,
    },
    #[error(
        "the training data changed since the run started: its identity is sha256 {current} now, {recorded} when the run started (recorded in {}): {difference}",
        record.display()
    )]
    Data {
        recorded: String,
        current: String,
        difference: String,
        record: PathBuf,
    },
}

/// Where a run records its provenance.
pub fn path(run: &RunDir) -> PathBuf {
    run.root().join("data.json")
}

impl DataProvenance {
    /// Reads `data.json` of `run`; `None` when the run has none.
    pub fn read(run: &RunDir) -> Result<Option<Self>, ProvenanceError> {
        let path = path(run);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(ProvenanceError::Io { path, error }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ProvenanceError::Unreadable {
                path,
                reason: e.to_string(),
            })
    }

    /// Writes `data.json` of `run` atomically.
    pub fn write(&self, run: &RunDir) -> Result<(), ProvenanceError> {
        let path = path(run);
        crate::write_json_atomic(&path, self).map_err(|error| ProvenanceError::Io { path, error })
    }

    /// Checks the tokenizer at `tokenizer` (whose bytes hash to `tokenizer_sha256`) and the
    /// data identity `data` against this record of `run`. A record without a data identity
    /// checks the tokenizer only.
    pub fn check(
        &self,
        run: &RunDir,
        tokenizer: &Path,
        tokenizer_sha256: &str,
        data: &DataIdentity,
    ) -> Result<(), ProvenanceError> {
        if self.tokenizer_sha256 != tokenizer_sha256 {
            return Err(ProvenanceError::Tokenizer {
                tokenizer: tokenizer.to_path_buf(),
                recorded: self.tokenizer_sha256.clone(),
                current: tokenizer_sha256.to_string(),
                record: path(run),
            });
        }
        if let Some(recorded) = &self.data
            && recorded.sha256 != data.sha256
        {
            return Err(ProvenanceError::Data {
                recorded: recorded.sha256.clone(),
                current: data.sha256.clone(),
                difference: recorded.difference(data),
                record: path(run),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(split: &str, path: &str, bytes: u64) -> ShardFile {
        ShardFile {
            split: split.to_string(),
            path: PathBuf::from(path),
            bytes,
        }
    }

    fn identity() -> DataIdentity {
        DataIdentity::new(vec![
            shard("train", "/d/a.jsonl", 100),
            shard("train", "/d/b.jsonl", 200),
            shard("validation", "/d/v.jsonl", 50),
        ])
    }

    fn record(data: Option<DataIdentity>) -> DataProvenance {
        DataProvenance {
            tokenizer: PathBuf::from("/t/tok.json"),
            tokenizer_sha256: "aa".repeat(32),
            tokenizer_vocab_size: 4096,
            train: vec!["/d/*.jsonl".to_string()],
            validation: Vec::new(),
            packing: Packing::Concat,
            token_cache: PathBuf::from("/c"),
            eligible_documents: 3,
            eligible_tokens: 300,
            skipped_records: BTreeMap::new(),
            data,
        }
    }

    #[test]
    fn the_digest_depends_on_every_shard_and_its_size() {
        let a = identity();
        assert_eq!(a, identity());
        let mut grown = a.shards.clone();
        grown[1].bytes = 201;
        assert_ne!(DataIdentity::new(grown).sha256, a.sha256);
        let mut reordered = a.shards.clone();
        reordered.swap(0, 1);
        let reordered = DataIdentity::new(reordered);
        assert_ne!(reordered.sha256, a.sha256);
        assert_eq!(
            a.difference(&reordered),
            "the shards are read in another order"
        );
    }

    #[test]
    fn differences_name_the_shard() {
        let a = identity();
        let mut shards = a.shards.clone();
        shards[1].bytes = 150;
        assert_eq!(
            a.difference(&DataIdentity::new(shards.clone())),
            "/d/b.jsonl (train) was 200 bytes, is 150"
        );
        shards.remove(0);
        assert_eq!(
            a.difference(&DataIdentity::new(shards.clone())),
            "/d/b.jsonl (train) was 200 bytes, is 150 (and 1 more)"
        );
        assert_eq!(
            a.difference(&DataIdentity::new(a.shards[1..].to_vec())),
            "/d/a.jsonl (train) is gone"
        );
        let mut more = a.shards.clone();
        more.push(shard("train", "/d/c.jsonl", 1));
        assert_eq!(
            a.difference(&DataIdentity::new(more)),
            "/d/c.jsonl (train) is new"
        );
    }

    #[test]
    fn a_changed_tokenizer_is_refused_naming_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let rec = record(Some(identity()));
        let other = "bb".repeat(32);
        let err = rec
            .check(&run, Path::new("/t/tok.json"), &other, &identity())
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ProvenanceError::Tokenizer { .. }));
        assert!(
            text.contains(&"aa".repeat(32)) && text.contains(&other),
            "{text}"
        );
        assert!(text.contains("/t/tok.json"), "{text}");
    }

    #[test]
    fn changed_data_is_refused_naming_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let rec = record(Some(identity()));
        let tok = rec.tokenizer_sha256.clone();
        rec.check(&run, Path::new("/t/tok.json"), &tok, &identity())
            .unwrap();
        let now = DataIdentity::new(identity().shards[..2].to_vec());
        let err = rec
            .check(&run, Path::new("/t/tok.json"), &tok, &now)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&identity().sha256) && text.contains(&now.sha256),
            "{text}"
        );
        assert!(text.ends_with("/d/v.jsonl (validation) is gone"), "{text}");
        // An old record without a data identity checks the tokenizer only.
        record(None)
            .check(&run, Path::new("/t/tok.json"), &tok, &now)
            .unwrap();
    }

    #[test]
    fn old_records_read_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert!(DataProvenance::read(&run).unwrap().is_none());
        // data.json as training wrote it before the data identity was recorded.
        std::fs::write(
            path(&run),
            r#"{"tokenizer": "/t/tok.json", "tokenizer_sha256": "abc", "tokenizer_vocab_size": 4096,
               "train": ["/d/*.jsonl"], "validation": [], "packing": "concat", "token_cache": "/c",
               "eligible_documents": 3, "eligible_tokens": 300, "skipped_records": {}}"#,
        )
        .unwrap();
        let old = DataProvenance::read(&run).unwrap().unwrap();
        assert_eq!(old.tokenizer_sha256, "abc");
        assert!(old.data.is_none());
        let new = record(Some(identity()));
        new.write(&run).unwrap();
        assert_eq!(DataProvenance::read(&run).unwrap().unwrap(), new);
        std::fs::write(path(&run), "{not json").unwrap();
        assert!(matches!(
            DataProvenance::read(&run),
            Err(ProvenanceError::Unreadable { .. })
        ));
    }
}

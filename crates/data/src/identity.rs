//! The identity of a run's data as recorded in `data.json`: the resolved shards and their
//! sizes, read from the file system without opening (or building) a token cache, so a resume
//! or an evaluation can refuse changed data before spending minutes tokenizing it.

use forgetlab_runs::config::DataConfig;
use forgetlab_runs::provenance::{DataIdentity, ShardFile};

use crate::error::DataError;
use crate::shards::resolve_shards;

/// The shards `data` resolves to now (training, then validation), with their sizes.
pub fn data_identity(data: &DataConfig) -> Result<DataIdentity, DataError> {
    let mut shards = Vec::new();
    for (split, patterns) in [("train", &data.train), ("validation", &data.validation)] {
        if patterns.is_empty() {
            continue;
        }
        for path in resolve_shards(patterns)? {
            let bytes = std::fs::metadata(&path)
                .map_err(DataError::io(&path))?
                .len();
            shards.push(ShardFile {
                split: split.to_string(),
                path: path.canonicalize().unwrap_or(path),
                bytes,
            });
        }
    }
    Ok(DataIdentity::new(shards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_follows_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let shard = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        shard("a.jsonl", "{\"text\": \"one\"}\n");
        shard("b.jsonl", "{\"text\": \"two\"}\n");
        let config = forgetlab_runs::RunConfig::from_toml_str(&format!(
            "[model]\nd_model = 32\nn_layer = 1\nd_state = 8\nheaddim = 16\nvocab_size = 256\n\
             [data]\ntrain = [\"{}/*.jsonl\"]\ntokenizer = \"t.json\"\n\
             [train]\nseq_len = 8\ntokens_per_step = 8\ntotal_tokens = 8\n",
            dir.path().display()
        ))
        .unwrap();
        let data: &DataConfig = &config.data;
        let first = data_identity(data).unwrap();
        assert_eq!(first.shards.len(), 2);
        assert_eq!(first.shards[0].bytes, 16);
        assert_eq!(data_identity(data).unwrap(), first);
        shard("b.jsonl", "{\"text\": \"two, longer\"}\n");
        let grown = data_identity(data).unwrap();
        assert_ne!(grown.sha256, first.sha256);
        assert!(
            first
                .difference(&grown)
                .contains("b.jsonl (train) was 16 bytes, is 24")
        );
    }
}

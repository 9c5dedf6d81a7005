//! Why data could not be read, tokenized or prepared. Every message names the file and, where
//! there is one, the line (JSON lines) or row (parquet).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A malformed record; `at` is "line N" or "row N".
    #[error("{}: {at}: {reason}", path.display())]
    BadRecord {
        path: PathBuf,
        at: String,
        reason: String,
    },
    /// A whole file that cannot be read as a shard.
    #[error("{}: {reason}", path.display())]
    BadShard { path: PathBuf, reason: String },
    #[error("tokenizer {}: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },
    #[error("no shards match {pattern:?}")]
    NoShards { pattern: String },
    #[error("token cache {}: {reason}", path.display())]
    Cache { path: PathBuf, reason: String },
    #[error("{0}")]
    Empty(String),
    #[error("fetch: {0}")]
    Fetch(String),
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |error| DataError::Io { path, error }
    }
}

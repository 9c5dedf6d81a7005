//! forgetlab's data path: real dataset shards in, deterministic resumable token sequences out.
//!
//! - [`shards`]: streaming readers for SlimPajama / RedPajama (jsonl, jsonl.zst, json.gz),
//!   parquet and plain text, with bad records named by file and line, or counted and skipped;
//! - [`tokenizer`]: any `tokenizer.json`, its sha256, and byte-level BPE training;
//! - [`cache`]: tokenize once, in parallel, into memory-mapped token files with a manifest;
//! - [`stream`]: the training stream (concat or long-document packing, seeded order, epochs,
//!   synthetic-task mixing) and its exact resume cursor;
//! - [`heldout`]: validation and evaluation text;
//! - [`synthetic`]: the paper's long prompts and the long-memory training tasks;
//! - [`passkey`]: the paper's passkey prompt;
//! - [`stats`], [`fetch`]: corpus statistics, and fetching a real corpus from package registries.

pub mod cache;
pub mod error;
pub mod fetch;
pub mod heldout;
pub mod identity;
pub mod passkey;
pub mod rng;
pub mod shards;
pub mod stats;
pub mod stream;
pub mod synthetic;
pub mod tokenizer;

pub use cache::{Manifest, TokenCache, prepare_cache};
pub use error::DataError;
pub use heldout::{HeldOut, heldout_stream};
pub use identity::data_identity;
pub use stream::{DataCursor, StreamReport, TrainStream};
pub use synthetic::{SyntheticTasks, bindings_stream, synthetic_prompt};
pub use tokenizer::{Tokenizer, train_bpe};

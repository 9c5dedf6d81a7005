//! Tokenizers (HF `tokenizers` JSON format): loading any `tokenizer.json`, recording its sha256
//! in the runs that use it, and training a byte-level BPE on a corpus.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

use crate::error::DataError;

/// The end-of-text token every forgetlab tokenizer must have (id 0 in GPT-NeoX).
pub const EOS_TOKEN: &str = "<|endoftext|>";
/// The padding token of forgetlab-trained tokenizers (id 1, as in GPT-NeoX).
pub const PAD_TOKEN: &str = "<|padding|>";

/// A loaded tokenizer with its identity.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    sha256: String,
    eos: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// Loads a `tokenizer.json`; it must define `<|endoftext|>`. Anything but a regular file
    /// is refused unopened.
    pub fn from_file(path: &Path) -> Result<Self, DataError> {
        let bytes = forgetlab_runs::read_regular(path).map_err(DataError::io(path))?;
        let bad = |reason: String| DataError::Tokenizer {
            path: path.to_path_buf(),
            reason,
        };
        // Tell "not a tokenizer at all" from "a damaged tokenizer": every tokenizer.json is a
        // JSON object with a `model` object, and the tokenizers library's own message for any
        // other JSON is about syntax.
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        if !json.get("model").is_some_and(serde_json::Value::is_object) {
            return Err(bad(
                "not a tokenizer.json (Hugging Face tokenizers format): it has no `model` object"
                    .to_string(),
            ));
        }
        let inner = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| bad(format!("not a valid tokenizer.json: {e}")))?;
        let eos = inner
            .token_to_id(EOS_TOKEN)
            .ok_or_else(|| bad(format!("has no {EOS_TOKEN} token")))?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            sha256: hex_sha256(&bytes),
            eos,
        })
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of `<|endoftext|>`, the document separator.
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        self.inner
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| DataError::Tokenizer {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    /// Text of token ids (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| DataError::Tokenizer {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    /// sha256 of the tokenizer.json bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Trains a byte-level BPE tokenizer (GPT-NeoX style: NFC, ByteLevel without prefix space,
/// `<|endoftext|>` = 0, `<|padding|>` = 1) of `vocab_size` tokens on text files, and writes it
/// to `output` atomically. Returns the trained tokenizer.
pub fn train_bpe(
    files: &[PathBuf],
    vocab_size: usize,
    output: &Path,
) -> Result<Tokenizer, DataError> {
    let bad = |reason: String| DataError::Tokenizer {
        path: output.to_path_buf(),
        reason,
    };
    if files.is_empty() {
        return Err(bad("no training text given".into()));
    }
    let specials = vec![
        AddedToken::from(EOS_TOKEN, true),
        AddedToken::from(PAD_TOKEN, true),
    ];
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(Some(NFC))
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    tokenizer
        .train_from_files(&mut trainer, names)
        .map_err(|e| bad(format!("training failed: {e}")))?;
    let json = tokenizer.to_string(true).map_err(|e| bad(e.to_string()))?;
    forgetlab_runs::write_atomic(output, json.as_bytes()).map_err(DataError::io(output))?;
    Tokenizer::from_file(output)
}

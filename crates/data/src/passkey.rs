//! The passkey retrieval prompt of the paper (paper.md section 4, from the official
//! `passkey-retrieval/passkey.py`, itself from InfiniteBench), reproduced exactly:
//!
//! ```text
//! {prefix}{filler block × num_blocks, one replaced by the passkey block}{suffix}
//! ```
//!
//! with `num_blocks = (length − |prefix| − |suffix|) // |filler block|` in tokens (each piece
//! tokenized on its own), the passkey block at index `int(depth · (num_blocks − 1))`, and sample
//! `i` of `n` at depth `(i + 0.5) / n`.

use crate::error::DataError;
use crate::rng::SplitMix64;
use crate::tokenizer::Tokenizer;

pub const PREFIX: &str = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it.\n\n";
pub const FILLER: &str =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";
pub const SUFFIX: &str = "\nWhat is the pass key? The passkey is";

/// The needle, with the passkey in both places.
pub fn needle(passkey: &str) -> String {
    format!("The passkey is {passkey}. Remember it. {passkey} is the passkey.\n")
}

/// One passkey prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeyPrompt {
    /// The exact prompt text.
    pub text: String,
    /// Its token ids (with the end-of-text token first when `use_bos`).
    pub ids: Vec<u32>,
    pub passkey: String,
    pub depth: f64,
    /// Index of the block holding the passkey.
    pub needle_block: usize,
    pub num_blocks: usize,
}

/// The shortest passkey prompt `tok` can build, in tokens: prefix, suffix and one filler block.
pub fn shortest_length(tok: &Tokenizer) -> Result<usize, DataError> {
    Ok(tok.encode(PREFIX)?.len() + tok.encode(SUFFIX)?.len() + tok.encode(FILLER)?.len())
}

/// Builds the prompt for a context of `length` tokens with the needle at `depth` in [0, 1].
pub fn build(
    tok: &Tokenizer,
    length: usize,
    depth: f64,
    passkey: &str,
    use_bos: bool,
) -> Result<PasskeyPrompt, DataError> {
    if !(0.0..=1.0).contains(&depth) {
        return Err(DataError::Invalid(format!(
            "passkey depth must be in [0, 1], got {depth}"
        )));
    }
    let prefix = tok.encode(PREFIX)?.len();
    let suffix = tok.encode(SUFFIX)?.len();
    let block = tok.encode(FILLER)?.len();
    let context = length.checked_sub(prefix + suffix).filter(|c| *c >= block).ok_or_else(|| {
        DataError::Invalid(format!(
            "a passkey prompt of {length} tokens is too short: prefix and suffix take {} tokens and one filler block {block}",
            prefix + suffix
        ))
    })?;
    let num_blocks = context / block;
    let needle_block = (depth * (num_blocks - 1) as f64) as usize;
    let mut text = String::with_capacity(length * 5);
    text.push_str(PREFIX);
    for i in 0..num_blocks {
        if i == needle_block {
            text.push_str(&needle(passkey));
        } else {
            text.push_str(FILLER);
        }
    }
    text.push_str(SUFFIX);
    let mut ids = Vec::with_capacity(length + 1);
    if use_bos {
        ids.push(tok.eos_id());
    }
    ids.extend(tok.encode(&text)?);
    Ok(PasskeyPrompt {
        text,
        ids,
        passkey: passkey.to_string(),
        depth,
        needle_block,
        num_blocks,
    })
}

/// Depth of sample `i` of `n`: (i + 0.5) / n.
pub fn depth(i: usize, n: usize) -> f64 {
    (i as f64 + 0.5) / n.max(1) as f64
}

/// A 5-digit passkey, uniform over 00000–99999, determined by (seed, length, i).
pub fn draw_passkey(seed: u64, length: usize, i: usize) -> String {
    let mut rng = SplitMix64::derived(
        seed ^ (length as u64).rotate_left(20),
        0x7061_7373 ^ i as u64,
    );
    format!("{:05}", rng.below(100_000))
}

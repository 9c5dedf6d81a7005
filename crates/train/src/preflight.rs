//! The run config checked against the files it names, before the run directory is touched.
//!
//! [`RunConfig::validate`] checks what the TOML alone can tell. Some settings are only wrong
//! for a given tokenizer: a vocabulary larger than `model.vocab_size`, or a passkey length too
//! short to hold the prompt. Without this check they surface hours later, in evaluation,
//! without file or key; here they are [`Invalid`] values naming the key, so the command that
//! loaded the file reports file, line and key.

use forgetlab_data::{Tokenizer, passkey};
use forgetlab_runs::{Invalid, RunConfig};

/// Loads the tokenizer of `config` and checks the settings that depend on it: the tokenizer
/// itself (`data.tokenizer`), the vocabulary (`model.vocab_size`) and the passkey lengths
/// (`eval.passkey.lengths`).
pub fn check_inputs(config: &RunConfig) -> Result<(), Invalid> {
    let tokenizer = Tokenizer::from_file(&config.data.tokenizer)
        .map_err(|e| Invalid::new("data.tokenizer", e.to_string()))?;
    let vocab = tokenizer.vocab_size();
    if vocab > config.model.vocab_size {
        return Err(Invalid::new(
            "model.vocab_size",
            format!(
                "{} is smaller than the {vocab} tokens of {} (data.tokenizer)",
                config.model.vocab_size,
                config.data.tokenizer.display()
            ),
        ));
    }
    let lengths = &config.eval.passkey.lengths;
    if !lengths.is_empty() {
        let shortest = passkey::shortest_length(&tokenizer)
            .map_err(|e| Invalid::new("data.tokenizer", e.to_string()))?;
        if let Some(i) = lengths.iter().position(|&l| l < shortest) {
            return Err(Invalid::new(
                format!("eval.passkey.lengths[{i}]"),
                format!(
                    "{} tokens cannot hold a passkey prompt with this tokenizer: prefix, \
                     suffix and one filler block take {shortest}",
                    lengths[i]
                ),
            ));
        }
    }
    Ok(())
}

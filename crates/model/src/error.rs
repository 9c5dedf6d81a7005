//! Errors of model construction and checkpoint I/O.

use std::path::PathBuf;

/// Why a model could not be built, loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{origin}: {message}")]
    Checkpoint { origin: String, message: String },
    #[error(
        "{origin}: tensors do not match the config{}{}{}",
        list("missing", missing),
        list("wrong shape", misshaped),
        list("unexpected", unexpected)
    )]
    TensorMismatch {
        origin: String,
        missing: Vec<String>,
        misshaped: Vec<String>,
        unexpected: Vec<String>,
    },
    #[error("invalid model config: {0}")]
    Invalid(#[from] forgetlab_runs::Invalid),
    #[error("device `{device}`: {message}")]
    Device { device: String, message: String },
}

fn list(what: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    const SHOWN: usize = 8;
    let mut text = format!(
        "; {what} ({}): {}",
        items.len(),
        items[..items.len().min(SHOWN)].join(", ")
    );
    if items.len() > SHOWN {
        text.push_str(", ...");
    }
    text
}

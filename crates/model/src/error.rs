//! Errors of model construction and checkpoint I/O.

use std::path::PathBuf;

/// Why a model could not be built, loaded or saved. Each message is one self-contained line
/// that includes its cause, so no variant also reports the cause as its `source` (a printed
/// error chain would repeat it).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
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
    /// Displays the key and reason itself, so it is not also the error's source (a printed
    /// chain would repeat it).
    #[error("invalid model config: {0}")]
    Invalid(forgetlab_runs::Invalid),
    #[error("device `{device}`: {message}")]
    Device { device: String, message: String },
}

impl From<forgetlab_runs::Invalid> for ModelError {
    fn from(invalid: forgetlab_runs::Invalid) -> Self {
        ModelError::Invalid(invalid)
    }
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

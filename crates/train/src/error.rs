//! Why training could not start or continue.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] forgetlab_runs::ConfigError),
    #[error(transparent)]
    Data(#[from] forgetlab_data::DataError),
    #[error(transparent)]
    Model(#[from] forgetlab_model::ModelError),
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("{message}")]
    Invalid { message: String },
    #[error("loss became {loss} at step {step}; stopped, the last good checkpoint is kept")]
    NonFinite { step: u64, loss: f64 },
    #[error("{0}")]
    Unsupported(String),
    /// Refused before allocating: the run would not fit in the memory available.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    /// Checkpoints exist but none verifies; nothing was changed.
    #[error(
        "no intact checkpoint in {}/checkpoints ({}); nothing was changed: restore the damaged files, or start over with `forgetlab train --resume {} --restart` (moves the old checkpoints and logs to {}/.old/)",
        run.display(),
        problems.join("; "),
        run.display(),
        run.display()
    )]
    NoIntactCheckpoint { run: PathBuf, problems: Vec<String> },
    /// The run config differs, by experiment, from the one the checkpoint was trained under.
    #[error(
        "{} changed since the run started: {} (checkpoint step {step} was trained with the old values); restore them, or start over with `forgetlab train --resume {} --restart`",
        config.display(),
        changes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        run.display()
    )]
    ConfigChanged {
        config: PathBuf,
        run: PathBuf,
        step: u64,
        changes: Vec<forgetlab_runs::config::ConfigChange>,
    },
    #[error(transparent)]
    Provenance(#[from] forgetlab_runs::provenance::ProvenanceError),
}

impl TrainError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.to_path_buf();
        move |error| TrainError::Io { path, error }
    }
}

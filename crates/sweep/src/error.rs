//! Errors of the sweep library. Configuration mistakes keep the located form of
//! [`ConfigError`] (file, line, dotted key); everything else names the file, run or command
//! involved.

use std::path::PathBuf;

use forgetlab_runs::{ConfigError, LockError};

/// Why a sweep operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The experiment file (or a run config it produces) is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A child process (`forgetlab train`, `sbatch`, ...) could not be started.
    #[error("could not run {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    /// An existing run directory disagrees with the plan and holds progress.
    #[error("run {run}: {message}")]
    RunConflict { run: String, message: String },
    /// Runs named on the command line (`--only`) that the experiment does not have; `known`
    /// lists its runs, or the closest ones.
    #[error("experiment {experiment} has no run {}; {known}", quoted(unknown))]
    UnknownRuns {
        experiment: String,
        unknown: Vec<String>,
        known: String,
    },
    /// The experiment reference names nothing that exists.
    #[error("no experiment at {given}: tried {tried}")]
    NotFound { given: String, tried: String },
    /// A Slurm command failed or answered something unexpected.
    #[error("slurm: {0}")]
    Slurm(String),
    /// Another process writes the experiment directory.
    #[error(transparent)]
    Locked(#[from] LockError),
}

fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    quoted.join(", ")
}

impl SweepError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SweepError::Io {
            path: path.into(),
            error: source,
        }
    }
}

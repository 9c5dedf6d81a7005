//! Errors of the dashboard's entry points and of report writing.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the dashboard could not start or a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("runs directory {}: {error}", path.display())]
    RunsRoot {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("dashboard server: {0}")]
    Runtime(std::io::Error),
    #[error("experiment directory {}: {reason}", path.display())]
    Experiment { path: PathBuf, reason: String },
    #[error("writing {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

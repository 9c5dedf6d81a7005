//! Errors of the dashboard's entry points and of report writing.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the dashboard could not start or a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("runs directory {}: {source}", path.display())]
    RunsRoot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("dashboard server: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("experiment directory {}: {reason}", path.display())]
    Experiment { path: PathBuf, reason: String },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

//! The run-directory contract of forgetlab.
//!
//! Training and evaluation write run directories; the sweep executors, the dashboard and the
//! reports read them, often while they are still being written and sometimes from another
//! machine. This crate is the one place that says what those files are: the run config
//! ([`RunConfig`], including the Mamba-2 [`ModelConfig`] and its state size N_S), the layout
//! ([`RunDir`], [`ExperimentDir`]), the metrics log, the status file, the evaluation results and
//! the law fits. It has no dependency on burn, so every reader builds and tests in seconds.

pub mod atomic;
pub mod config;
pub mod host;
pub mod layout;
pub mod lock;
pub mod marker;
pub mod metrics;
pub mod provenance;
pub mod regular;
pub mod results;
pub mod status;
pub mod summary;
pub mod utc;

pub use atomic::{append_json_line, write_atomic, write_json_atomic};
pub use config::{ConfigError, FitConfig, Invalid, ModelConfig, RunConfig, StateSize};
pub use layout::{CHECKPOINT_MARKER, ExperimentDir, RunDir};
pub use lock::{DirLock, LockError, LockHolder};
pub use metrics::{MetricKind, MetricRecord, read_metrics};
pub use regular::{NotRegularFile, open_regular, read_regular};
pub use status::{RunState, RunStatus, unix_now};
pub use summary::RunSummary;

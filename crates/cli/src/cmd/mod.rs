//! One module per subcommand; shared process setup.

pub mod bench;
pub mod dashboard;
pub mod data;
pub mod eval;
pub mod fit;
pub mod model;
pub mod quickstart;
pub mod report;
pub mod sweep;
pub mod tokenizer;
pub mod train;

use std::fmt;

/// Exit status of a run that stopped on a signal after checkpointing (resumable).
pub const EXIT_INTERRUPTED: u8 = 3;

/// Returned by a command that stopped early on a signal, leaving resumable state behind.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted, resumable: {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Installs the tracing subscriber (stderr, filter from RUST_LOG or `--log`).
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Whether `--threads` sized the pool (it wins over a run config's `train.threads`).
static THREADS_FROM_COMMAND_LINE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Sizes the global rayon pool used by the CPU backend and the data pipeline from `--threads`.
/// Must run before any parallel work starts.
pub fn set_threads(threads: usize) {
    THREADS_FROM_COMMAND_LINE.store(true, std::sync::atomic::Ordering::SeqCst);
    build_thread_pool(threads);
}

/// Sizes the pool from a config's `threads`, unless `--threads` already did.
pub fn set_threads_from_config(threads: Option<usize>) {
    if let Some(threads) = threads
        && !THREADS_FROM_COMMAND_LINE.load(std::sync::atomic::Ordering::SeqCst)
    {
        build_thread_pool(threads);
    }
}

fn build_thread_pool(threads: usize) {
    if let Err(err) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global()
    {
        tracing::warn!("could not size the thread pool: {err}");
    }
}

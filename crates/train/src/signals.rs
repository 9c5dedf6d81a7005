//! SIGINT, SIGTERM and SIGUSR1 (Slurm's pre-timeout signal) ask the trainer to checkpoint and
//! stop; a second signal ends the process at once. Checkpoints are written to a temporary
//! directory and renamed into place, so even that cannot leave a half-written checkpoint.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

/// Exit status used when a second signal ends the process immediately.
pub const EXIT_ON_SECOND_SIGNAL: i32 = 130;

/// Set when a stop was requested.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Whether a stop was requested.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Requests a stop (used by tests and embedders).
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Installs the handlers for SIGINT, SIGTERM and SIGUSR1 on this flag.
    pub fn install_signal_handlers(&self) -> io::Result<()> {
        for signal in [SIGINT, SIGTERM, SIGUSR1] {
            // Order matters: the shutdown check must see the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                EXIT_ON_SECOND_SIGNAL,
                Arc::clone(&self.0),
            )?;
            signal_hook::flag::register(signal, Arc::clone(&self.0))?;
        }
        Ok(())
    }
}

//! The Slurm executor: one array job with a task per run that needs work, and a dependent job
//! that evaluates leftovers, fits and reports once the array is over.
//!
//! Each array task runs `forgetlab sweep task <run-dir>`, which trains (resuming from the
//! newest checkpoint) and evaluates its run. Before the time limit Slurm sends SIGUSR1 to the
//! batch shell (`--signal=B:USR1@<seconds>`); the shell forwards it to forgetlab, waits for it
//! to checkpoint and exit 3, and requeues its own task (`scontrol requeue <array>_<task>`,
//! not the bare job id, which for task 0 would requeue the whole array). The requeued task
//! starts again later and resumes. Logs are appended (`--open-mode=append`) across restarts.
//!
//! Only portable options and text formats are used (`--parsable`, `squeue -o`, `sacct -P`,
//! `scontrol -o`), so it works from Slurm 22.05 to current releases, with or without
//! accounting: when `sacct` is unavailable the final task states come from `scontrol`, and
//! each run's own `status.json` is always read.

mod accounting;
mod config;
mod queue;
mod script;
mod submit;
mod track;

use std::process::Command;

pub use accounting::{JobState, StateSource, parse_sacct, parse_scontrol};
pub use config::{SlurmConfig, gpus_for};
pub use queue::{QueueEntry, job_active};
pub use script::{ScriptSpec, array_script, finish_script};
pub use submit::{SlurmOptions, Submission, submit};
pub use track::{TrackOptions, TrackReport, track};

use crate::error::SweepError;

/// Runs a Slurm command to completion, capturing its output.
fn run_slurm(program: &str, args: &[String]) -> Result<std::process::Output, SweepError> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|error| SweepError::Spawn {
            program: program.to_string(),
            error,
        })
}

//! forgetlab-sweep: from one experiment file to every run trained, evaluated and fitted.
//!
//! A researcher writes an experiment (a base run config, axes over any config key, explicit
//! extra points, fit and Slurm settings; see [`experiment`]). This crate expands it into named
//! runs ([`Experiment::load`], [`plan`]), creates their directories, and gets the work done by
//! running the `forgetlab` binary as child processes: on this machine ([`run_experiment`]) or
//! as a Slurm array job ([`slurm::submit`], [`slurm::track`]). Everything is restartable from
//! the run directories alone: finished runs are skipped, interrupted ones resume from their
//! checkpoints, failed ones are recorded and left alone unless retried. Runs can also be
//! named ([`select`]), to re-check one result without running the grid again.
//!
//! It never links the model: training, evaluation, fitting and reporting are `forgetlab train`,
//! `forgetlab eval all`, `forgetlab fit` and `forgetlab report`, so a crash in one run cannot
//! take the sweep down, and the crate builds without burn.

pub mod error;
pub mod experiment;
pub mod local;
pub mod locate;
pub mod log;
pub mod plan;
pub mod process;
pub mod rundirs;
pub mod select;
pub mod slurm;
pub mod status;
mod table;
pub mod task;

pub use error::SweepError;
pub use experiment::{Experiment, ExperimentRef, PlannedRun, RunOrigin, resolve_experiment};
pub use local::{LocalOptions, SweepOutcome, run_experiment, run_local};
pub use process::{EXIT_INTERRUPTED, Forgetlab};
pub use rundirs::{prepare, prepare_runs};
pub use slurm::{SlurmConfig, SlurmOptions, Submission, TrackOptions, TrackReport};
pub use task::{FinishOptions, FinishOutcome, RunOutcome, finish_experiment, run_task};

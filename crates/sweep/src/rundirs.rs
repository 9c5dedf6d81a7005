//! Run directories as the sweep creates and judges them: each planned run gets
//! `runs/<experiment>/<name>/` with its resolved `config.toml` and a `pending` status; on every
//! later invocation the directory says what is left to do (train, evaluate, nothing) and a run
//! whose directory disagrees with the plan is refused rather than silently overwritten.

use std::path::Path;

use forgetlab_runs::summary::{has_current_verdict, read_json};
use forgetlab_runs::{
    DirLock, ExperimentDir, RunConfig, RunDir, RunState, RunStatus, write_atomic, write_json_atomic,
};
use toml::Value;

use crate::error::SweepError;
use crate::experiment::{Experiment, PlannedRun};
use crate::log::{Event, Outcome, Stage, SweepLog};

/// Creates the experiment directory if needed and locks it for this process: one sweep
/// writes an experiment at a time (a second is refused, naming the first); the `forgetlab`
/// children it runs lock their own run directories.
pub fn lock_experiment(dir: &ExperimentDir) -> Result<DirLock, SweepError> {
    std::fs::create_dir_all(dir.root()).map_err(|e| SweepError::io(dir.root(), e))?;
    Ok(DirLock::acquire(dir.root())?)
}

/// Creates the experiment directory (with `experiment.toml`, a copy of the experiment file)
/// and every planned run's directory.
pub fn prepare(experiment: &Experiment, runs_root: &Path) -> Result<ExperimentDir, SweepError> {
    let runs: Vec<&PlannedRun> = experiment.runs.iter().collect();
    prepare_runs(experiment, runs_root, &runs)
}

/// [`prepare`] for some of the planned runs (`--only`): no directory is made for the others.
pub fn prepare_runs(
    experiment: &Experiment,
    runs_root: &Path,
    runs: &[&PlannedRun],
) -> Result<ExperimentDir, SweepError> {
    let dir = experiment.dir(runs_root);
    // Check every run before writing anything, so a conflict leaves the directory untouched.
    for run in runs {
        check_run_dir(&dir.run(&run.name), run)?;
    }
    std::fs::create_dir_all(dir.root()).map_err(|e| SweepError::io(dir.root(), e))?;
    let copy = dir.experiment_file();
    write_atomic(&copy, experiment.source.as_bytes()).map_err(|e| SweepError::io(&copy, e))?;
    for run in runs {
        write_run_dir(&dir.run(&run.name), run)?;
    }
    Ok(dir)
}

/// Whether a run directory holds any trace of training.
pub fn has_progress(run: &RunDir) -> bool {
    let status: Option<RunStatus> = read_json(&run.status(), &mut Vec::new());
    let started = status.is_some_and(|s| s.state != RunState::Pending || s.step > 0);
    started
        || run.metrics().exists()
        || run.final_model().exists()
        || !run.complete_checkpoints().is_empty()
}

/// The config a run directory holds: the planned one with data paths made absolute against
/// the working directory, exactly as `forgetlab train` resolves and rewrites it (the sweep's
/// tasks run in the same directory, locally and on Slurm).
fn resolved_config(run: &PlannedRun) -> Result<RunConfig, SweepError> {
    let cwd = std::env::current_dir().map_err(|e| SweepError::io(Path::new("."), e))?;
    Ok(run.config.with_absolute_paths(&cwd))
}

fn check_run_dir(dir: &RunDir, run: &PlannedRun) -> Result<(), SweepError> {
    if !dir.config().exists() || !has_progress(dir) {
        return Ok(());
    }
    let planned = resolved_config(run)?;
    match RunConfig::load(&dir.config()) {
        Ok(existing) if existing.same_experiment(&planned) => Ok(()),
        Ok(existing) => {
            let mut keys = Vec::new();
            if let (Ok(a), Ok(b)) = (Value::try_from(&existing), Value::try_from(&planned)) {
                diff_keys(&a, &b, "", &mut keys);
            }
            let shown: Vec<String> = keys.iter().take(6).cloned().collect();
            Err(SweepError::RunConflict {
                run: run.name.clone(),
                message: format!(
                    "{} already holds progress under a different config (differs in {}{}); move the run directory away or give the experiment another name",
                    dir.root().display(),
                    if shown.is_empty() {
                        "?".to_string()
                    } else {
                        shown.join(", ")
                    },
                    if keys.len() > shown.len() {
                        ", ..."
                    } else {
                        ""
                    }
                ),
            })
        }
        Err(e) => Err(SweepError::RunConflict {
            run: run.name.clone(),
            message: format!("holds progress but its config cannot be read: {e}"),
        }),
    }
}

fn write_run_dir(dir: &RunDir, run: &PlannedRun) -> Result<(), SweepError> {
    std::fs::create_dir_all(dir.root()).map_err(|e| SweepError::io(dir.root(), e))?;
    let planned = resolved_config(run)?;
    let existing = RunConfig::load(&dir.config()).ok();
    if existing.as_ref() != Some(&planned) {
        write_atomic(&dir.config(), planned.to_toml().as_bytes())
            .map_err(|e| SweepError::io(dir.config(), e))?;
    }
    // A new execution setting (device, workers) keeps the run's progress and status.
    let same_experiment = existing.is_some_and(|c| c.same_experiment(&planned));
    if !same_experiment || !dir.status().exists() {
        let total = run.config.train.total_steps();
        let status = RunStatus::now(RunState::Pending, 0, total, 0);
        let status = RunStatus {
            pid: None,
            slurm_job: None,
            ..status
        };
        write_json_atomic(&dir.status(), &status).map_err(|e| SweepError::io(dir.status(), e))?;
    }
    Ok(())
}

fn diff_keys(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Table(ta), Value::Table(tb)) => {
            let keys: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
            for k in keys {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (ta.get(k), tb.get(k)) {
                    (Some(x), Some(y)) => diff_keys(x, y, &key, out),
                    _ => out.push(key),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// What a run still needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Train (fresh or resuming), then evaluate.
    Train,
    /// Training is complete; evaluate.
    Eval,
}

/// Why a run gets no work this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Trained and evaluated.
    Done,
    /// Training failed earlier; `--retry-failed` retries it.
    Failed(String),
    /// Evaluation failed earlier; `--retry-failed` retries it.
    EvalFailed(String),
    /// Another process is training it now.
    Running(String),
}

impl Skip {
    /// One-line description.
    pub fn describe(&self) -> String {
        match self {
            Skip::Done => "done".into(),
            Skip::Failed(r) => format!("failed earlier ({r})"),
            Skip::EvalFailed(r) => format!("evaluation failed earlier ({r})"),
            Skip::Running(who) => format!("running ({who})"),
        }
    }
}

/// The verdict on one run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    Work(Work),
    Skip(Skip),
}

/// Decides what `dir` needs. `events` is the experiment's sweep log.
pub fn assess(dir: &RunDir, events: &[Event], retry_failed: bool) -> Assessment {
    let status: Option<RunStatus> = read_json(&dir.status(), &mut Vec::new());
    let Some(status) = status else {
        return Assessment::Work(Work::Train);
    };
    match status.state {
        RunState::Completed => {
            if has_current_verdict(dir) {
                return Assessment::Skip(Skip::Done);
            }
            if !retry_failed
                && SweepLog::last_outcome(events, &dir.name(), Stage::Eval) == Some(Outcome::Failed)
            {
                let message = events
                    .iter()
                    .rev()
                    .find(|e| {
                        e.run == dir.name()
                            && e.stage == Stage::Eval
                            && e.outcome == Outcome::Failed
                    })
                    .and_then(|e| e.message.clone())
                    .unwrap_or_default();
                return Assessment::Skip(Skip::EvalFailed(message));
            }
            Assessment::Work(Work::Eval)
        }
        RunState::Failed if !retry_failed => {
            Assessment::Skip(Skip::Failed(status.reason.unwrap_or_default()))
        }
        RunState::Running => match crate::process::live_elsewhere(&status) {
            Some(who) => Assessment::Skip(Skip::Running(who)),
            None => Assessment::Work(Work::Train),
        },
        RunState::Pending | RunState::Interrupted | RunState::Failed => {
            Assessment::Work(Work::Train)
        }
    }
}

/// Records in `status.json` that training stopped without the trainer saying so (it crashed or
/// was killed before writing its status). Keeps step, totals and checkpoint information.
pub fn record_unreported_stop(
    dir: &RunDir,
    state: RunState,
    reason: String,
) -> Result<(), SweepError> {
    let previous: Option<RunStatus> = read_json(&dir.status(), &mut Vec::new());
    let checkpoints = dir.complete_checkpoints();
    let mut status = match previous {
        Some(p) => RunStatus {
            updated_unix: forgetlab_runs::unix_now(),
            ..p
        },
        None => RunStatus::now(state, 0, 0, 0),
    };
    status.state = state;
    status.reason = Some(reason);
    status.resumable = !checkpoints.is_empty() || state == RunState::Interrupted;
    status.last_checkpoint = checkpoints.last().copied().or(status.last_checkpoint);
    write_json_atomic(&dir.status(), &status).map_err(|e| SweepError::io(dir.status(), e))
}

/// Reads a run's status, if readable.
pub fn read_status(dir: &RunDir) -> Option<RunStatus> {
    read_json(&dir.status(), &mut Vec::new())
}

pub(crate) fn log_event(log: &SweepLog, event: Event) {
    if let Err(err) = log.append(&event) {
        tracing::warn!("could not write the sweep log: {err}");
    }
}

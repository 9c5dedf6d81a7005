//! One run's work (train, then evaluate) and the experiment's closing work (evaluate what is
//! left, fit, report). The local executor runs these in worker threads; a Slurm array task
//! runs [`run_task`] for its run and the dependent job runs [`finish_experiment`].

use std::path::Path;

use forgetlab_runs::summary::has_current_verdict;
use forgetlab_runs::{DirLock, ExperimentDir, RunDir, RunState};

use crate::error::SweepError;
use crate::log::{Event, Outcome, Stage, SweepLog};
use crate::process::{
    Exit, Forgetlab, Output, Supervisor, console_log, experiment_console_log, live_here,
};
use crate::rundirs::{
    Assessment, Skip, Work, assess, log_event, read_status, record_unreported_stop,
};
use crate::select::check_names;

/// How one run's turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Nothing to do.
    Skipped(Skip),
    /// Trained (when `trained`) and evaluated.
    Completed { trained: bool },
    /// Training failed; the reason is in `status.json` and the sweep log.
    TrainFailed(String),
    /// Training is complete but evaluation failed.
    EvalFailed(String),
    /// Stopped by a signal; resumable.
    Interrupted(Stage),
    /// Not started because the sweep was stopping.
    NotStarted,
}

impl RunOutcome {
    /// A failure the user has to look at.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            RunOutcome::TrainFailed(_)
                | RunOutcome::EvalFailed(_)
                | RunOutcome::Skipped(Skip::Failed(_))
                | RunOutcome::Skipped(Skip::EvalFailed(_))
        )
    }

    /// Whether this turn ran a process that changed the run.
    pub fn did_work(&self) -> bool {
        matches!(
            self,
            RunOutcome::Completed { .. }
                | RunOutcome::TrainFailed(_)
                | RunOutcome::EvalFailed(_)
                | RunOutcome::Interrupted(_)
        )
    }

    /// One-line description for logs and tables.
    pub fn describe(&self) -> String {
        match self {
            RunOutcome::Skipped(Skip::Done) => "done earlier".into(),
            RunOutcome::Skipped(Skip::Failed(r)) => {
                format!("failed earlier ({r}); --retry-failed to retry")
            }
            RunOutcome::Skipped(Skip::EvalFailed(r)) => {
                format!("evaluation failed earlier ({r}); --retry-failed to retry")
            }
            RunOutcome::Skipped(Skip::Running(who)) => format!("running elsewhere ({who})"),
            RunOutcome::Completed { trained: true } => "trained and evaluated".into(),
            RunOutcome::Completed { trained: false } => "evaluated".into(),
            RunOutcome::TrainFailed(r) => format!("training failed: {r}"),
            RunOutcome::EvalFailed(r) => format!("evaluation failed: {r}"),
            RunOutcome::Interrupted(stage) => format!("interrupted during {stage}, resumable"),
            RunOutcome::NotStarted => "not started (stopping)".into(),
        }
    }
}

/// Everything [`execute_run`] needs besides the run.
pub(crate) struct Runner<'a> {
    pub forgetlab: &'a Forgetlab,
    pub supervisor: &'a Supervisor,
    pub log: &'a SweepLog,
    /// Children in their own process group with output in the run's console log (local), or
    /// sharing the caller's group and output (Slurm task).
    pub local: bool,
}

impl Runner<'_> {
    fn output(&self, run: &RunDir) -> Output {
        if self.local {
            Output::File(console_log(run))
        } else {
            Output::Inherit
        }
    }
}

/// Trains (when `work` says so) and evaluates one run, recording every failure.
pub(crate) fn execute_run(
    runner: &Runner<'_>,
    run: &RunDir,
    work: Work,
    on_poll: &mut dyn FnMut(Stage),
) -> Result<RunOutcome, SweepError> {
    let name = run.name();
    let output = runner.output(run);
    let trained = work == Work::Train;
    if trained {
        log_event(
            runner.log,
            Event::new(&name, Stage::Train, Outcome::Started),
        );
        let exit = runner.supervisor.run(
            runner.forgetlab.train(run),
            &output,
            runner.local,
            &mut || on_poll(Stage::Train),
        )?;
        let status = read_status(run);
        match exit {
            Exit::Success => {
                if status.as_ref().map(|s| s.state) != Some(RunState::Completed) {
                    let reason = format!(
                        "forgetlab train exited 0 but status.json says {}",
                        status.map(|s| s.state.as_str()).unwrap_or("nothing")
                    );
                    record_unreported_stop(run, RunState::Failed, reason.clone())?;
                    log_event(
                        runner.log,
                        Event::new(&name, Stage::Train, Outcome::Failed)
                            .code(Some(0))
                            .message(&reason),
                    );
                    return Ok(RunOutcome::TrainFailed(reason));
                }
                log_event(
                    runner.log,
                    Event::new(&name, Stage::Train, Outcome::Completed).code(Some(0)),
                );
            }
            Exit::Interrupted => {
                if status.as_ref().map(|s| s.state) != Some(RunState::Interrupted) {
                    record_unreported_stop(
                        run,
                        RunState::Interrupted,
                        "forgetlab train exited 3".into(),
                    )?;
                }
                log_event(
                    runner.log,
                    Event::new(&name, Stage::Train, Outcome::Interrupted).code(exit.code()),
                );
                return Ok(RunOutcome::Interrupted(Stage::Train));
            }
            Exit::Failed { .. } if runner.supervisor.stopping() => {
                let reason = format!("stopped by a signal: forgetlab train {}", exit.describe());
                record_unreported_stop(run, RunState::Interrupted, reason.clone())?;
                log_event(
                    runner.log,
                    Event::new(&name, Stage::Train, Outcome::Interrupted)
                        .code(exit.code())
                        .message(reason),
                );
                return Ok(RunOutcome::Interrupted(Stage::Train));
            }
            Exit::Failed { .. } => {
                let reason = match status {
                    Some(s) if s.state == RunState::Failed => s
                        .reason
                        .unwrap_or_else(|| format!("forgetlab train {}", exit.describe())),
                    _ => {
                        let reason = format!(
                            "forgetlab train {} without recording why; see {}",
                            exit.describe(),
                            where_output_went(&output)
                        );
                        record_unreported_stop(run, RunState::Failed, reason.clone())?;
                        reason
                    }
                };
                log_event(
                    runner.log,
                    Event::new(&name, Stage::Train, Outcome::Failed)
                        .code(exit.code())
                        .message(&reason),
                );
                return Ok(RunOutcome::TrainFailed(reason));
            }
        }
        if runner.supervisor.stopping() {
            return Ok(RunOutcome::Interrupted(Stage::Eval));
        }
    }

    log_event(runner.log, Event::new(&name, Stage::Eval, Outcome::Started));
    let exit = runner.supervisor.run(
        runner.forgetlab.eval(run),
        &output,
        runner.local,
        &mut || on_poll(Stage::Eval),
    )?;
    match exit {
        Exit::Success if run.verdict().exists() => {
            log_event(
                runner.log,
                Event::new(&name, Stage::Eval, Outcome::Completed).code(Some(0)),
            );
            Ok(RunOutcome::Completed { trained })
        }
        Exit::Success => {
            let reason = format!(
                "forgetlab eval exited 0 but wrote no {}",
                run.verdict().display()
            );
            log_event(
                runner.log,
                Event::new(&name, Stage::Eval, Outcome::Failed)
                    .code(Some(0))
                    .message(&reason),
            );
            Ok(RunOutcome::EvalFailed(reason))
        }
        Exit::Interrupted => {
            log_event(
                runner.log,
                Event::new(&name, Stage::Eval, Outcome::Interrupted).code(exit.code()),
            );
            Ok(RunOutcome::Interrupted(Stage::Eval))
        }
        Exit::Failed { .. } if runner.supervisor.stopping() => {
            log_event(
                runner.log,
                Event::new(&name, Stage::Eval, Outcome::Interrupted)
                    .code(exit.code())
                    .message(exit.describe()),
            );
            Ok(RunOutcome::Interrupted(Stage::Eval))
        }
        Exit::Failed { .. } => {
            let reason = format!(
                "forgetlab eval {}; see {}",
                exit.describe(),
                where_output_went(&output)
            );
            log_event(
                runner.log,
                Event::new(&name, Stage::Eval, Outcome::Failed)
                    .code(exit.code())
                    .message(&reason),
            );
            Ok(RunOutcome::EvalFailed(reason))
        }
    }
}

fn where_output_went(output: &Output) -> String {
    match output {
        Output::File(path) => path.display().to_string(),
        Output::Inherit => "the job output".into(),
    }
}

/// The experiment directory a run directory belongs to (its parent).
fn experiment_of(run: &RunDir) -> ExperimentDir {
    ExperimentDir::new(
        run.root()
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// Trains and evaluates one run directory, as a Slurm array task does: resumes whatever is
/// there, forwards SIGUSR1/SIGTERM/SIGINT to the running child, and retries a failed run
/// (the submission already decided this run needs work). Output goes to this process's.
pub fn run_task(run_dir: &Path, forgetlab: &Forgetlab) -> Result<RunOutcome, SweepError> {
    let run = RunDir::new(run_dir);
    if !run.exists() {
        return Err(SweepError::io(
            run.config(),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not a run directory (no config.toml)",
            ),
        ));
    }
    let log = SweepLog::of(&experiment_of(&run));
    let supervisor = Supervisor::new(None, true);
    // The submission decided this run needs work; a `running` status left by this task's own
    // earlier incarnation (requeued) is stale, only a live process on this host is respected.
    let work = match read_status(&run) {
        Some(s) if s.state == RunState::Completed => {
            if has_current_verdict(&run) {
                return Ok(RunOutcome::Skipped(Skip::Done));
            }
            Work::Eval
        }
        Some(s) if s.state == RunState::Running => match live_here(&s) {
            Some(who) => return Ok(RunOutcome::Skipped(Skip::Running(who))),
            None => Work::Train,
        },
        _ => Work::Train,
    };
    let runner = Runner {
        forgetlab,
        supervisor: &supervisor,
        log: &log,
        local: false,
    };
    let name = run.name();
    tracing::info!(
        "{name}: {}",
        if work == Work::Train {
            "training"
        } else {
            "evaluating"
        }
    );
    let outcome = execute_run(&runner, &run, work, &mut |_| {})?;
    tracing::info!("{name}: {}", outcome.describe());
    Ok(outcome)
}

/// What the closing stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishOutcome {
    /// `law.json` and the report were written.
    Done,
    /// Not run, and why.
    Skipped(String),
    /// A stage failed.
    Failed { stage: Stage, message: String },
}

/// What [`finish_experiment`] should do.
#[derive(Debug, Clone)]
pub struct FinishOptions {
    /// Evaluate completed runs that have no verdict yet (and no failed evaluation, unless
    /// `retry_failed`).
    pub eval_leftovers: bool,
    pub retry_failed: bool,
    /// Run fit and report even if nothing changed since the last fit.
    pub force: bool,
    /// Outputs in `console.log` files and children in their own process groups (local), or
    /// inherited (Slurm job).
    pub local: bool,
    /// Evaluate leftovers only among these runs (`sweep run --only` on Slurm); the fit and the
    /// report still cover every evaluated run. `None`: every run.
    pub only: Option<Vec<String>>,
}

impl Default for FinishOptions {
    fn default() -> Self {
        Self {
            eval_leftovers: true,
            retry_failed: false,
            force: true,
            local: true,
            only: None,
        }
    }
}

/// Evaluates leftovers, then fits the laws and writes the report for an experiment directory.
/// A name in `options.only` that is not a run directory of it is an error.
pub fn finish_experiment(
    dir: &ExperimentDir,
    forgetlab: &Forgetlab,
    options: &FinishOptions,
) -> Result<(Vec<(String, RunOutcome)>, FinishOutcome), SweepError> {
    if let Some(only) = &options.only {
        let names: Vec<String> = dir.runs().iter().map(RunDir::name).collect();
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        let how_to_list = format!(
            "`forgetlab sweep status {}` lists them",
            dir.root().display()
        );
        check_names(&dir.name(), only, &known, &how_to_list)?;
    }
    let _lock = DirLock::acquire(dir.root())?;
    let supervisor = Supervisor::new(None, true);
    finish_with(dir, forgetlab, options, &supervisor, false)
}

pub(crate) fn finish_with(
    dir: &ExperimentDir,
    forgetlab: &Forgetlab,
    options: &FinishOptions,
    supervisor: &Supervisor,
    changed: bool,
) -> Result<(Vec<(String, RunOutcome)>, FinishOutcome), SweepError> {
    let log = SweepLog::of(dir);
    let mut evaluated = Vec::new();
    let mut changed = changed;
    if options.eval_leftovers {
        let events = log.read();
        let runner = Runner {
            forgetlab,
            supervisor,
            log: &log,
            local: options.local,
        };
        for run in dir.runs() {
            if supervisor.stopping() {
                break;
            }
            if let Some(only) = &options.only
                && !only.iter().any(|n| n.trim() == run.name())
            {
                continue;
            }
            if assess(&run, &events, options.retry_failed) == Assessment::Work(Work::Eval) {
                tracing::info!("{}: evaluating", run.name());
                let outcome = execute_run(&runner, &run, Work::Eval, &mut |_| {})?;
                tracing::info!("{}: {}", run.name(), outcome.describe());
                changed |= outcome.did_work();
                evaluated.push((run.name(), outcome));
            }
        }
    }
    if supervisor.stopping() {
        return Ok((evaluated, FinishOutcome::Skipped("interrupted".into())));
    }
    if !dir.runs().iter().any(|r| r.verdict().exists()) {
        return Ok((
            evaluated,
            FinishOutcome::Skipped("no run has been evaluated yet".into()),
        ));
    }
    if !options.force && !changed && dir.law().exists() && dir.report().exists() {
        return Ok((evaluated, FinishOutcome::Skipped("up to date".into())));
    }
    let output = if options.local {
        Output::File(experiment_console_log(dir))
    } else {
        Output::Inherit
    };
    for (stage, cmd) in [
        (Stage::Fit, forgetlab.fit(dir)),
        (Stage::Report, forgetlab.report(dir)),
    ] {
        log_event(&log, Event::new("", stage, Outcome::Started));
        tracing::info!("{}: {stage}", dir.name());
        let exit = supervisor.run(cmd, &output, options.local, &mut || {})?;
        if exit != Exit::Success {
            let message = format!(
                "forgetlab {} {}; see {}",
                stage,
                exit.describe(),
                where_output_went(&output)
            );
            let outcome = if supervisor.stopping() {
                Outcome::Interrupted
            } else {
                Outcome::Failed
            };
            log_event(
                &log,
                Event::new("", stage, outcome)
                    .code(exit.code())
                    .message(&message),
            );
            return Ok((evaluated, FinishOutcome::Failed { stage, message }));
        }
        log_event(
            &log,
            Event::new("", stage, Outcome::Completed).code(Some(0)),
        );
    }
    Ok((evaluated, FinishOutcome::Done))
}

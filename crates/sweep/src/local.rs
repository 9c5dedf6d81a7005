//! The local executor: every run of an experiment trained and evaluated on this machine,
//! `jobs` at a time with the CPU threads divided between them, then the fit and the report.
//! Re-running it is always safe: finished runs are skipped, interrupted ones resume from their
//! newest checkpoint, failed ones are left alone unless `retry_failed`. With `only`, just the
//! named runs get directories and work; the fit still covers every evaluated run.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use forgetlab_runs::{ExperimentDir, RunDir};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::SweepError;
use crate::experiment::Experiment;
use crate::log::{Stage, SweepLog};
use crate::process::{Forgetlab, Supervisor, available_cores};
use crate::rundirs::{Assessment, Work, assess, lock_experiment, prepare_runs, read_status};
use crate::select::{check_fresh, move_aside, select};
use crate::task::{FinishOptions, FinishOutcome, RunOutcome, Runner, execute_run, finish_with};

/// How to run an experiment locally.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The `forgetlab` executable that trains, evaluates, fits and reports.
    pub forgetlab: PathBuf,
    /// Where experiment directories live (`runs/`).
    pub runs_root: PathBuf,
    /// Runs trained at the same time.
    pub jobs: usize,
    /// CPU threads for all jobs together (default: every core); each job gets an equal share.
    pub threads: Option<usize>,
    /// Retry runs whose training or evaluation failed before.
    pub retry_failed: bool,
    /// Train and evaluate only these runs (by name); `None`: every run.
    pub only: Option<Vec<String>>,
    /// Move the selected runs' directories aside (`<experiment>/.old/`) and train them anew.
    pub fresh: bool,
    /// Fit the laws and write the report at the end.
    pub fit: bool,
    /// Forward SIGINT/SIGTERM/SIGUSR1 to the children (checkpoint and stop) instead of dying.
    pub handle_signals: bool,
    /// Draw progress bars (only shown on a terminal).
    pub progress: bool,
    /// Set to ask the sweep to stop: children get SIGTERM, nothing new starts.
    pub stop: Option<Arc<AtomicBool>>,
}

impl LocalOptions {
    /// One job using every core, runs under `runs/`, fit at the end, signals handled.
    pub fn new(forgetlab: impl Into<PathBuf>) -> Self {
        Self {
            forgetlab: forgetlab.into(),
            runs_root: PathBuf::from("runs"),
            jobs: 1,
            threads: None,
            retry_failed: false,
            only: None,
            fresh: false,
            fit: true,
            handle_signals: true,
            progress: true,
            stop: None,
        }
    }
}

/// What a sweep invocation did.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    pub experiment: String,
    pub dir: ExperimentDir,
    /// Every selected run (every planned run without `only`), in plan order, with what
    /// happened to it this time.
    pub runs: Vec<(String, RunOutcome)>,
    /// Runs whose old directory `fresh` moved aside, with where it went.
    pub moved: Vec<(String, PathBuf)>,
    pub finish: FinishOutcome,
    /// A stop was requested (signal or flag); interrupted runs resume next time.
    pub interrupted: bool,
    /// Threads given to each job.
    pub threads_per_job: usize,
}

impl SweepOutcome {
    /// Runs that failed (now or earlier).
    pub fn failures(&self) -> Vec<&(String, RunOutcome)> {
        self.runs.iter().filter(|(_, o)| o.is_failure()).collect()
    }

    /// True when every selected run is trained and evaluated and the fit ran or is up to date.
    pub fn all_done(&self) -> bool {
        !self.interrupted
            && self.failures().is_empty()
            && self.runs.iter().all(|(_, o)| {
                matches!(
                    o,
                    RunOutcome::Completed { .. } | RunOutcome::Skipped(crate::rundirs::Skip::Done)
                )
            })
            && !matches!(self.finish, FinishOutcome::Failed { .. })
    }
}

/// Plans, trains, evaluates, fits and reports an experiment file on this machine.
pub fn run_experiment(path: &Path, options: &LocalOptions) -> Result<SweepOutcome, SweepError> {
    let experiment = Experiment::load(path)?;
    run_local(&experiment, options)
}

/// [`run_experiment`] for an already loaded experiment.
pub fn run_local(
    experiment: &Experiment,
    options: &LocalOptions,
) -> Result<SweepOutcome, SweepError> {
    let selected = select(experiment, options.only.as_deref())?;
    let _lock = lock_experiment(&experiment.dir(&options.runs_root))?;
    let mut moved = Vec::new();
    if options.fresh {
        let dir = experiment.dir(&options.runs_root);
        check_fresh(&dir, &selected)?;
        moved = move_aside(&dir, &selected)?;
    }
    let dir = prepare_runs(experiment, &options.runs_root, &selected)?;
    let log = SweepLog::of(&dir);
    let events = log.read();
    let supervisor = Supervisor::new(options.stop.clone(), options.handle_signals);

    let mut results: Vec<Option<RunOutcome>> = vec![None; selected.len()];
    let mut queue = VecDeque::new();
    for (index, run) in selected.iter().enumerate() {
        match assess(&dir.run(&run.name), &events, options.retry_failed) {
            Assessment::Work(work) => queue.push_back((index, work)),
            Assessment::Skip(skip) => results[index] = Some(RunOutcome::Skipped(skip)),
        }
    }
    let total_threads = options.threads.unwrap_or_else(available_cores).max(1);
    let jobs = options.jobs.max(1).min(queue.len().max(1));
    let threads_per_job = (total_threads / jobs).max(1);
    let forgetlab = Forgetlab::new(&options.forgetlab, threads_per_job);
    tracing::info!(
        "{}: {} runs{}, {} to do, {} job(s) x {} thread(s)",
        experiment.meta.name,
        selected.len(),
        if selected.len() < experiment.runs.len() {
            format!(" of {}", experiment.runs.len())
        } else {
            String::new()
        },
        queue.len(),
        jobs,
        threads_per_job
    );

    let multi = MultiProgress::with_draw_target(if options.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let overall = multi.add(ProgressBar::new(queue.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} runs, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    overall.set_prefix(experiment.meta.name.clone());

    let queue = Mutex::new(queue);
    let results = Mutex::new(results);
    let first_error: Mutex<Option<SweepError>> = Mutex::new(None);
    let runner = Runner {
        forgetlab: &forgetlab,
        supervisor: &supervisor,
        log: &log,
        local: true,
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let (queue, results, first_error, runner, overall, multi, dir, supervisor, selected) = (
                &queue,
                &results,
                &first_error,
                &runner,
                &overall,
                &multi,
                &dir,
                &supervisor,
                &selected,
            );
            scope.spawn(move || {
                loop {
                    if supervisor.stopping() {
                        break;
                    }
                    let Some((index, work)) = lock(queue).pop_front() else {
                        break;
                    };
                    let name = selected[index].name.clone();
                    let run = dir.run(&name);
                    multi.suspend(|| tracing::info!("{name}: {}", describe_work(&work)));
                    let mut last_draw = Instant::now() - Duration::from_secs(10);
                    let mut on_poll = |stage: Stage| {
                        if last_draw.elapsed() >= Duration::from_millis(500) {
                            bar.set_message(progress_message(&run, &name, stage));
                            bar.tick();
                            last_draw = Instant::now();
                        }
                    };
                    match execute_run(runner, &run, work, &mut on_poll) {
                        Ok(outcome) => {
                            let say = format!("{name}: {}", outcome.describe());
                            if outcome.is_failure() {
                                multi.suspend(|| tracing::warn!("{say}"));
                            } else {
                                multi.suspend(|| tracing::info!("{say}"));
                            }
                            lock(results)[index] = Some(outcome);
                        }
                        Err(err) => {
                            multi.suspend(|| tracing::error!("{name}: {err}"));
                            lock(first_error).get_or_insert(err);
                            supervisor.request_stop();
                        }
                    }
                    overall.inc(1);
                }
                bar.finish_and_clear();
            });
        }
    });
    overall.finish_and_clear();
    if let Some(err) = lock(&first_error).take() {
        return Err(err);
    }

    let interrupted = supervisor.stopping();
    let runs: Vec<(String, RunOutcome)> = selected
        .iter()
        .zip(lock(&results).drain(..))
        .map(|(run, outcome)| (run.name.clone(), outcome.unwrap_or(RunOutcome::NotStarted)))
        .collect();
    let changed = runs.iter().any(|(_, o)| o.did_work());
    let finish = if !options.fit {
        FinishOutcome::Skipped("disabled".into())
    } else if interrupted {
        FinishOutcome::Skipped("interrupted".into())
    } else {
        let fit_forgetlab = Forgetlab::new(&options.forgetlab, total_threads);
        let finish_options = FinishOptions {
            eval_leftovers: false,
            retry_failed: options.retry_failed,
            force: false,
            local: true,
            only: None,
        };
        finish_with(&dir, &fit_forgetlab, &finish_options, &supervisor, changed)?.1
    };
    match &finish {
        FinishOutcome::Done => tracing::info!("{}: fit and report written", experiment.meta.name),
        FinishOutcome::Skipped(why) => {
            tracing::info!("{}: fit skipped: {why}", experiment.meta.name)
        }
        FinishOutcome::Failed { stage, message } => {
            tracing::warn!("{}: {stage} failed: {message}", experiment.meta.name)
        }
    }
    Ok(SweepOutcome {
        experiment: experiment.meta.name.clone(),
        dir,
        runs,
        moved,
        finish,
        interrupted: interrupted || supervisor.stopping(),
        threads_per_job,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn describe_work(work: &Work) -> &'static str {
    match work {
        Work::Train => "training",
        Work::Eval => "evaluating",
    }
}

fn progress_message(run: &RunDir, name: &str, stage: Stage) -> String {
    match (stage, read_status(run)) {
        (Stage::Train, Some(s)) if s.total_steps > 0 => {
            format!("{name}: train step {}/{}", s.step, s.total_steps)
        }
        _ => format!("{name}: {stage}"),
    }
}

//! Following a submission until its jobs leave the queue, with a one-line summary of the
//! queue and of the runs' own status files, then collecting the jobs' final states.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use forgetlab_runs::summary::has_current_verdict;
use forgetlab_runs::{ExperimentDir, RunState, RunSummary};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::accounting::{JobState, StateSource, final_states};
use super::queue::{QueueEntry, squeue};
use super::submit::Submission;
use crate::error::SweepError;
use crate::process::Supervisor;
use crate::rundirs::read_status;

/// How to follow a submission.
#[derive(Debug, Clone)]
pub struct TrackOptions {
    /// Time between polls.
    pub poll: Duration,
    pub progress: bool,
    /// Set to stop following (the jobs keep running).
    pub stop: Option<Arc<AtomicBool>>,
    /// Give up following after this long.
    pub timeout: Option<Duration>,
    /// Stop following on SIGINT/SIGTERM (Ctrl-C) instead of dying; the jobs keep running.
    pub handle_signals: bool,
}

impl Default for TrackOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(15),
            progress: true,
            stop: None,
            timeout: None,
            handle_signals: false,
        }
    }
}

/// The result of following a submission.
#[derive(Debug, Clone)]
pub struct TrackReport {
    pub jobs: Vec<JobState>,
    pub source: StateSource,
    /// Why `sacct` was not used, when it was not.
    pub sacct_note: Option<String>,
    /// Every run of the experiment directory, read from its files.
    pub runs: Vec<RunSummary>,
    /// True when following stopped (timeout or stop flag) before the jobs left the queue.
    pub stopped_early: bool,
    /// Wall time spent following.
    pub elapsed: Duration,
}

/// Polls `squeue` and the runs' `status.json` until the submitted jobs have left the queue,
/// then collects their final states from `sacct` or, without accounting, `scontrol`.
pub fn track(
    submission: &Submission,
    dir: &ExperimentDir,
    options: &TrackOptions,
) -> Result<TrackReport, SweepError> {
    let start = Instant::now();
    let supervisor = Supervisor::new(options.stop.clone(), options.handle_signals);
    let jobs: Vec<&str> = submission
        .array_job
        .iter()
        .chain(submission.finish_job.iter())
        .map(String::as_str)
        .collect();
    let bar = ProgressBar::with_draw_target(
        None,
        if options.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut last_line = String::new();
    let mut failures_in_a_row = 0;
    let mut stopped_early = false;
    while !jobs.is_empty() {
        let queue = squeue(&jobs);
        let line = match &queue {
            Some(entries) if entries.is_empty() => break,
            Some(entries) => {
                failures_in_a_row = 0;
                format!(
                    "{} | {}",
                    summarize_queue(entries),
                    summarize_runs(dir, &submission.runs)
                )
            }
            None => {
                failures_in_a_row += 1;
                if failures_in_a_row >= 10 {
                    return Err(SweepError::Slurm(
                        "squeue failed 10 times in a row; the jobs may still run: check `squeue` and `forgetlab sweep status`".into(),
                    ));
                }
                "squeue did not answer".to_string()
            }
        };
        if line != last_line {
            bar.suspend(|| tracing::info!("{line}"));
            bar.set_message(line.clone());
            last_line = line;
        }
        bar.tick();
        if supervisor.stopping() || options.timeout.is_some_and(|t| start.elapsed() >= t) {
            stopped_early = true;
            break;
        }
        sleep_polling(options.poll, &supervisor);
    }
    bar.finish_and_clear();

    let (jobs_state, source, sacct_note) = if stopped_early || jobs.is_empty() {
        (Vec::new(), StateSource::None, None)
    } else {
        final_states(&jobs)
    };
    Ok(TrackReport {
        jobs: jobs_state,
        source,
        sacct_note,
        runs: dir.runs().iter().map(RunSummary::read).collect(),
        stopped_early,
        elapsed: start.elapsed(),
    })
}

fn sleep_polling(total: Duration, supervisor: &Supervisor) {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if supervisor.stopping() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
    }
}

fn summarize_queue(entries: &[QueueEntry]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in entries {
        *counts.entry(e.state.to_lowercase()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!("slurm: {}", parts.join(", "))
}

fn summarize_runs(dir: &ExperimentDir, names: &[String]) -> String {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut running = Vec::new();
    for name in names {
        let run = dir.run(name);
        let label = match read_status(&run) {
            Some(s) if s.state == RunState::Completed && has_current_verdict(&run) => "evaluated",
            Some(s) => {
                if s.state == RunState::Running {
                    running.push(format!("{name} {}/{}", s.step, s.total_steps));
                }
                s.state.as_str()
            }
            None => "unknown",
        };
        *counts.entry(label).or_default() += 1;
    }
    let mut text = format!(
        "runs: {}",
        counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !running.is_empty() {
        text.push_str(&format!(" ({})", running.join("; ")));
    }
    text
}

//! The sweep log, `runs/<experiment>/sweep-log.jsonl`: one JSON line per thing the sweep did
//! to a run (started training, evaluation failed, submitted to Slurm, ...). It is the record of
//! failures the trainer could not write itself (an evaluation that crashed, a process killed
//! before it wrote its status), and how the sweep knows not to retry a failed evaluation
//! without `--retry-failed`.

use std::path::{Path, PathBuf};

use forgetlab_runs::{ExperimentDir, append_json_line, unix_now};
use serde::{Deserialize, Serialize};

use crate::error::SweepError;

/// The stage of a run's life an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Train,
    Eval,
    Fit,
    Report,
    Submit,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Train => "train",
            Stage::Eval => "eval",
            Stage::Fit => "fit",
            Stage::Report => "report",
            Stage::Submit => "submit",
        })
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Started,
    Completed,
    Failed,
    Interrupted,
    Skipped,
}

/// One line of the sweep log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub unix: f64,
    /// Run name; empty for experiment-level stages (fit, report, submit).
    #[serde(default)]
    pub run: String,
    pub stage: Stage,
    pub outcome: Outcome,
    /// Exit code of the process, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Event {
    pub fn new(run: &str, stage: Stage, outcome: Outcome) -> Self {
        Self {
            unix: unix_now(),
            run: run.to_string(),
            stage,
            outcome,
            exit_code: None,
            message: None,
        }
    }

    pub fn code(mut self, code: Option<i32>) -> Self {
        self.exit_code = code;
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

/// Appends to and reads an experiment's sweep log.
#[derive(Debug, Clone)]
pub struct SweepLog {
    path: PathBuf,
}

impl SweepLog {
    pub fn of(dir: &ExperimentDir) -> Self {
        Self {
            path: dir.root().join("sweep-log.jsonl"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (flushed to disk).
    pub fn append(&self, event: &Event) -> Result<(), SweepError> {
        append_json_line(&self.path, event).map_err(|e| SweepError::io(&self.path, e))
    }

    /// Every readable event, oldest first; a torn or foreign line is skipped.
    pub fn read(&self) -> Vec<Event> {
        std::fs::read_to_string(&self.path)
            .map(|text| {
                text.lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last finished outcome (not `started`) of `stage` for `run`.
    pub fn last_outcome(events: &[Event], run: &str, stage: Stage) -> Option<Outcome> {
        events
            .iter()
            .rev()
            .find(|e| e.run == run && e.stage == stage && e.outcome != Outcome::Started)
            .map(|e| e.outcome)
    }
}

//! `status.json`: what a run is doing now, written atomically by the trainer at every state
//! change and read by the sweep executors and the dashboard.

use serde::{Deserialize, Serialize};

/// Lifecycle of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Planned or submitted, not started.
    Pending,
    /// Training now.
    Running,
    /// Reached its token budget; final weights written.
    Completed,
    /// Stopped by an error (NaN loss, bad data, ...); `reason` says why.
    Failed,
    /// Stopped by a signal after checkpointing; resumable.
    Interrupted,
}

impl RunState {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// Contents of `status.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    pub state: RunState,
    /// Optimizer steps done.
    pub step: u64,
    /// Optimizer steps in the budget.
    pub total_steps: u64,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Why the run failed or was interrupted.
    #[serde(default)]
    pub reason: Option<String>,
    /// Whether `forgetlab train --resume` can continue it.
    #[serde(default)]
    pub resumable: bool,
    /// Step of the newest complete checkpoint.
    #[serde(default)]
    pub last_checkpoint: Option<u64>,
    /// Seconds since the Unix epoch of this write.
    pub updated_unix: f64,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Slurm job id (`<array>_<task>`) when run under Slurm.
    #[serde(default)]
    pub slurm_job: Option<String>,
}

impl RunStatus {
    /// A status stamped with the current time, host and process.
    pub fn now(state: RunState, step: u64, total_steps: u64, tokens: u64) -> Self {
        Self {
            state,
            step,
            total_steps,
            tokens,
            reason: None,
            resumable: matches!(state, RunState::Interrupted),
            last_checkpoint: None,
            updated_unix: unix_now(),
            host: hostname(),
            pid: Some(std::process::id()),
            slurm_job: slurm_job_id(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

fn slurm_job_id() -> Option<String> {
    match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(job), Ok(task)) => Some(format!("{job}_{task}")),
        _ => std::env::var("SLURM_JOB_ID").ok(),
    }
}

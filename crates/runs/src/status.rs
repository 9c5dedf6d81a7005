//! `status.json`: what a run is doing now, written atomically by the trainer at every state
//! change and read by the sweep executors and the dashboard.

use serde::{Deserialize, Serialize};

use crate::host::{hostname, is_this_host, writer_alive};

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
    /// Host of the writing process (decides, with `pid`, whether a `running` run is alive).
    #[serde(default)]
    pub host: Option<String>,
    /// Pid of the writing process on `host`.
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

    /// This status as readers on this host must take it: a `running` status whose process
    /// is dead here (killed, crashed, out of memory) is `interrupted` and resumable from its
    /// last checkpoint. Statuses from other hosts, or without host and pid (older files), are
    /// returned as written: only the writer's own host can tell.
    pub fn seen_from_here(self) -> Self {
        let dead = self.state == RunState::Running
            && matches!((&self.host, self.pid), (Some(host), Some(pid))
                if is_this_host(host) && !writer_alive(pid, self.updated_unix));
        if !dead {
            return self;
        }
        let at = match self.last_checkpoint {
            Some(step) => format!("resumable from step {step}"),
            None => "resumable from the start (no checkpoint)".to_string(),
        };
        RunStatus {
            state: RunState::Interrupted,
            reason: Some(format!(
                "the training process (pid {} on {}) died without recording it; {at}",
                self.pid.unwrap_or_default(),
                self.host.as_deref().unwrap_or_default()
            )),
            resumable: true,
            ..self
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

fn slurm_job_id() -> Option<String> {
    match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(job), Ok(task)) => Some(format!("{job}_{task}")),
        _ => std::env::var("SLURM_JOB_ID").ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn running_with_a_dead_process_on_this_host_reads_as_interrupted() {
        let mut status = RunStatus::now(RunState::Running, 12, 40, 12 * 1024);
        status.last_checkpoint = Some(8);
        assert_eq!(
            status.clone().seen_from_here(),
            status,
            "this process is alive"
        );

        status.pid = Some(dead_pid());
        let seen = status.clone().seen_from_here();
        assert_eq!(seen.state, RunState::Interrupted);
        assert!(seen.resumable);
        assert_eq!(seen.step, 12);
        let reason = seen.reason.unwrap();
        assert!(reason.contains("step 8"), "{reason}");
        assert!(
            reason.contains(&format!("pid {}", status.pid.unwrap())),
            "{reason}"
        );

        // Another host's run, an old file without host and pid, and a finished run stay.
        let elsewhere = RunStatus {
            host: Some("another-node.invalid".into()),
            ..status.clone()
        };
        assert_eq!(elsewhere.clone().seen_from_here(), elsewhere);
        let old: RunStatus = serde_json::from_str(
            r#"{"state": "running", "step": 3, "total_steps": 9, "tokens": 0, "updated_unix": 1.0}"#,
        )
        .unwrap();
        assert_eq!(old.clone().seen_from_here(), old);
        let completed = RunStatus {
            state: RunState::Completed,
            ..status
        };
        assert_eq!(completed.clone().seen_from_here(), completed);
    }
}

//! What Slurm still has queued, from `squeue`: whether a run's job is alive, and which runs
//! of earlier submissions are pending or running (array tasks are listed compressed, as in
//! `12_[0-2,5%2]`).

use std::collections::BTreeMap;

use forgetlab_runs::ExperimentDir;

use super::run_slurm;
use super::submit::Submission;

/// Lines `squeue` shows for `jobs` (`<id>|<state>|<reason>`); `None` when squeue cannot be
/// asked. A job id Slurm has forgotten counts as not queued.
pub(super) fn squeue(jobs: &[&str]) -> Option<Vec<QueueEntry>> {
    let args = vec![
        "-h".to_string(),
        "-j".to_string(),
        jobs.join(","),
        "-o".to_string(),
        "%i|%T|%r".to_string(),
    ];
    let out = run_slurm("squeue", &args).ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return err.contains("Invalid job id").then(Vec::new);
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let mut parts = line.trim().splitn(3, '|');
                Some(QueueEntry {
                    id: parts.next()?.to_string(),
                    state: parts.next()?.to_string(),
                    reason: parts.next().unwrap_or("").to_string(),
                })
            })
            .collect(),
    )
}

/// One line of squeue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// `12_3`, `12_[4-9%2]`, `13`.
    pub id: String,
    pub state: String,
    pub reason: String,
}

/// Whether Slurm still has `job` (`<id>` or `<array>_<task>`) pending or running; `None`
/// when Slurm cannot be asked.
pub fn job_active(job: &str) -> Option<bool> {
    squeue(&[job]).map(|entries| !entries.is_empty())
}

/// What earlier submissions still have in the queue.
#[derive(Debug, Default)]
pub(super) struct Queued {
    /// Run name -> `<array>_<task>` still pending or running.
    pub(super) runs: BTreeMap<String, String>,
    /// Array jobs with tasks still queued.
    pub(super) arrays: Vec<String>,
    /// Finish jobs not yet run.
    pub(super) finish_jobs: Vec<String>,
}

/// Reads `slurm/submissions.jsonl` and asks squeue which of those jobs are still queued.
pub(super) fn queued_elsewhere(dir: &ExperimentDir) -> Queued {
    let mut queued = Queued::default();
    let record = dir.slurm().join("submissions.jsonl");
    let Ok(text) = std::fs::read_to_string(&record) else {
        return queued;
    };
    for sub in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Submission>(l).ok())
    {
        if let Some(array) = &sub.array_job
            && let Some(entries) = squeue(&[array.as_str()])
            && !entries.is_empty()
        {
            queued.arrays.push(array.clone());
            for entry in entries {
                for task in task_ids(&entry.id, array) {
                    if let Some(name) = sub.runs.get(task) {
                        queued.runs.insert(name.clone(), format!("{array}_{task}"));
                    }
                }
            }
        }
        if let Some(finish) = &sub.finish_job
            && job_active(finish) == Some(true)
        {
            queued.finish_jobs.push(finish.clone());
        }
    }
    queued
}

/// Task ids named by a squeue id: `12_3` -> [3]; `12_[0-2,5%2]` -> [0, 1, 2, 5].
fn task_ids(id: &str, array: &str) -> Vec<usize> {
    let Some(rest) = id.strip_prefix(array).and_then(|r| r.strip_prefix('_')) else {
        return Vec::new();
    };
    let inner = rest.trim_start_matches('[').trim_end_matches(']');
    let inner = inner.split('%').next().unwrap_or("");
    let mut ids = Vec::new();
    for part in inner.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    ids.extend(a..=b);
                }
            }
            None => ids.extend(part.parse::<usize>().ok()),
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_from_squeue_ids() {
        assert_eq!(task_ids("12_3", "12"), vec![3]);
        assert_eq!(task_ids("12_[0-2,5%2]", "12"), vec![0, 1, 2, 5]);
        assert_eq!(task_ids("13", "12"), Vec::<usize>::new());
        assert_eq!(task_ids("123_1", "12"), Vec::<usize>::new());
    }
}

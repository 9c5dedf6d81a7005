//! Final states of finished jobs, from `sacct` when accounting is on and from `scontrol`
//! otherwise (which keeps finished jobs only for MinJobAge), so tracking works on clusters
//! with and without accounting.

use std::collections::BTreeMap;

use super::run_slurm;

/// Final scheduler state of one job or array task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// `12_3` or `13`.
    pub id: String,
    /// `COMPLETED`, `FAILED`, `CANCELLED`, ...
    pub state: String,
    /// `0:0` (exit code : signal).
    pub exit_code: String,
    /// Times the job was requeued, when the source says.
    pub restarts: Option<u32>,
}

/// Where [`JobState`]s came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateSource {
    Sacct,
    /// `scontrol show job`, used when accounting is off (jobs stay visible for MinJobAge).
    Scontrol,
    /// Neither answered; only the runs' status files are known.
    None,
}

/// Final states from sacct, else scontrol.
pub(super) fn final_states(jobs: &[&str]) -> (Vec<JobState>, StateSource, Option<String>) {
    let args = vec![
        "-n".to_string(),
        "-P".to_string(),
        "-X".to_string(),
        "-j".to_string(),
        jobs.join(","),
        "-o".to_string(),
        "JobID,State,ExitCode".to_string(),
    ];
    let note = match run_slurm("sacct", &args) {
        Ok(out) if out.status.success() => {
            let states = parse_sacct(&String::from_utf8_lossy(&out.stdout));
            if !states.is_empty() {
                return (states, StateSource::Sacct, None);
            }
            "sacct listed none of the jobs".to_string()
        }
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.trim().to_string()
        }
        Err(err) => err.to_string(),
    };
    let mut states = Vec::new();
    for job in jobs {
        if let Ok(out) = run_slurm(
            "scontrol",
            &["-o".into(), "show".into(), "job".into(), job.to_string()],
        ) && out.status.success()
        {
            states.extend(parse_scontrol(&String::from_utf8_lossy(&out.stdout)));
        }
    }
    let source = if states.is_empty() {
        StateSource::None
    } else {
        StateSource::Scontrol
    };
    (states, source, Some(note))
}

/// Parses `sacct -n -P -X -o JobID,State,ExitCode`.
pub fn parse_sacct(text: &str) -> Vec<JobState> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().split('|');
            let id = parts.next()?.to_string();
            let state = parts.next()?.split_whitespace().next()?.to_string();
            let exit_code = parts.next().unwrap_or("").to_string();
            (!id.is_empty()).then_some(JobState {
                id,
                state,
                exit_code,
                restarts: None,
            })
        })
        .collect()
}

/// Parses `scontrol -o show job` (one `Key=Value ...` line per job or array task).
pub fn parse_scontrol(text: &str) -> Vec<JobState> {
    text.lines()
        .filter_map(|line| {
            let fields: BTreeMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .collect();
            let id = match (fields.get("ArrayJobId"), fields.get("ArrayTaskId")) {
                (Some(a), Some(t)) => format!("{a}_{t}"),
                _ => fields.get("JobId")?.to_string(),
            };
            Some(JobState {
                id,
                state: fields.get("JobState")?.to_string(),
                exit_code: fields.get("ExitCode").unwrap_or(&"").to_string(),
                restarts: fields.get("Restarts").and_then(|r| r.parse().ok()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scheduler_text() {
        let s = parse_scontrol(
            "JobId=14 ArrayJobId=12 ArrayTaskId=2 JobName=x JobState=COMPLETED Reason=None Restarts=1 ExitCode=0:0\n\
             JobId=15 JobName=y JobState=FAILED Restarts=0 ExitCode=1:0\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id, "12_2");
        assert_eq!(s[0].restarts, Some(1));
        assert_eq!(s[1].id, "15");
        assert_eq!(s[1].state, "FAILED");
        let s = parse_sacct("12_0|COMPLETED|0:0\n12_1|CANCELLED by 0|0:15\n");
        assert_eq!(s[1].state, "CANCELLED");
    }
}

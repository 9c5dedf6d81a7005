//! `[slurm]` settings: what an experiment file and the command line may say about the jobs,
//! checked before anything is written, since sbatch would otherwise reject a script only once
//! it is queued.

use forgetlab_runs::Invalid;
use serde::{Deserialize, Serialize};

use crate::experiment::Experiment;

/// `[slurm]` of an experiment file; every field can also be given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default)]
    pub account: Option<String>,
    /// `--qos`.
    #[serde(default)]
    pub qos: Option<String>,
    /// `--time` per task, in any Slurm format (`30`, `4:00:00`, `2-00:00:00`).
    #[serde(default)]
    pub time: Option<String>,
    /// GPUs per task (`--gres=gpu:N`); default: one per device of `train.device` unless cpu.
    #[serde(default)]
    pub gpus_per_task: Option<u32>,
    /// `--cpus-per-task`; forgetlab's thread pool is sized to it.
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// `--mem` (`64G`).
    #[serde(default)]
    pub mem: Option<String>,
    /// Array tasks running at once (`--array=...%N`).
    #[serde(default)]
    pub max_parallel: Option<usize>,
    /// Seconds before the time limit at which a task checkpoints and requeues (default 90).
    #[serde(default)]
    pub signal_seconds: Option<u32>,
    /// More `#SBATCH` options, written as given (`["--constraint=a100", "--exclusive"]`).
    #[serde(default)]
    pub extra: Vec<String>,
    /// Shell lines run before forgetlab in every job (`module load cuda/12.4`, `source env`).
    #[serde(default)]
    pub setup: Vec<String>,
}

impl SlurmConfig {
    /// Seconds of warning before the time limit.
    pub fn signal_seconds(&self) -> u32 {
        self.signal_seconds.unwrap_or(90)
    }

    /// This config with every field `over` sets taking precedence (lists are appended).
    pub fn overridden_by(&self, over: &SlurmConfig) -> SlurmConfig {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        SlurmConfig {
            partition: pick(&self.partition, &over.partition),
            account: pick(&self.account, &over.account),
            qos: pick(&self.qos, &over.qos),
            time: pick(&self.time, &over.time),
            gpus_per_task: over.gpus_per_task.or(self.gpus_per_task),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            mem: pick(&self.mem, &over.mem),
            max_parallel: over.max_parallel.or(self.max_parallel),
            signal_seconds: over.signal_seconds.or(self.signal_seconds),
            extra: self.extra.iter().chain(&over.extra).cloned().collect(),
            setup: self.setup.iter().chain(&over.setup).cloned().collect(),
        }
    }

    /// Checks values; keys are reported as `slurm.<key>`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.max_parallel == Some(0) {
            return Err(Invalid::new("slurm.max_parallel", "must be at least 1"));
        }
        if self.cpus_per_task == Some(0) {
            return Err(Invalid::new("slurm.cpus_per_task", "must be at least 1"));
        }
        if self.signal_seconds == Some(0) {
            return Err(Invalid::new("slurm.signal_seconds", "must be at least 1"));
        }
        for (index, option) in self.extra.iter().enumerate() {
            if !option.starts_with('-') || option.contains('\n') {
                return Err(Invalid::new(
                    format!("slurm.extra[{index}]"),
                    format!("{option:?} is not an sbatch option such as \"--constraint=a100\""),
                ));
            }
        }
        for (key, value) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
            ("time", &self.time),
            ("mem", &self.mem),
        ] {
            if let Some(v) = value
                && (v.trim().is_empty() || v.chars().any(char::is_whitespace))
            {
                return Err(Invalid::new(
                    format!("slurm.{key}"),
                    format!("{v:?} must be a single word"),
                ));
            }
        }
        Ok(())
    }
}

/// GPUs per task implied by the runs' devices: one per listed device unless cpu.
pub fn gpus_for(experiment: &Experiment) -> u32 {
    experiment
        .runs
        .iter()
        .map(|r| {
            let device = r.config.train.device.trim();
            if device == "cpu" {
                0
            } else {
                device.split(',').filter(|d| !d.trim().is_empty()).count() as u32
            }
        })
        .max()
        .unwrap_or(0)
}

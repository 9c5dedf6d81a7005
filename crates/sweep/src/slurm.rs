//! The Slurm executor: one array job with a task per run that needs work, and a dependent job
//! that evaluates leftovers, fits and reports once the array is over.
//!
//! Each array task runs `forgetlab sweep task <run-dir>`, which trains (resuming from the
//! newest checkpoint) and evaluates its run. Before the time limit Slurm sends SIGUSR1 to the
//! batch shell (`--signal=B:USR1@<seconds>`); the shell forwards it to forgetlab, waits for it
//! to checkpoint and exit 3, and requeues its own task (`scontrol requeue <array>_<task>`,
//! not the bare job id, which for task 0 would requeue the whole array). The requeued task
//! starts again later and resumes. Logs are appended (`--open-mode=append`) across restarts.
//!
//! Only portable options and text formats are used (`--parsable`, `squeue -o`, `sacct -P`,
//! `scontrol -o`), so it works from Slurm 22.05 to current releases, with or without
//! accounting: when `sacct` is unavailable the final task states come from `scontrol`, and
//! each run's own `status.json` is always read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use forgetlab_runs::summary::has_current_verdict;
use forgetlab_runs::{ExperimentDir, Invalid, RunState, RunSummary, append_json_line, unix_now};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::error::SweepError;
use crate::experiment::{Experiment, PlannedRun};
use crate::log::{Event, Outcome, Stage, SweepLog};
use crate::process::Supervisor;
use crate::rundirs::{Assessment, assess, lock_experiment, log_event, prepare_runs, read_status};
use crate::select::{check_fresh, move_aside, select};

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

/// How to submit an experiment to Slurm.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The `forgetlab` executable; copied into `runs/<experiment>/slurm/bin/` so a rebuild
    /// does not change the binary under queued tasks.
    pub forgetlab: PathBuf,
    pub runs_root: PathBuf,
    /// Command-line values over the experiment's `[slurm]`.
    pub overrides: SlurmConfig,
    pub retry_failed: bool,
    /// Submit only these runs (by name); `None`: every run.
    pub only: Option<Vec<String>>,
    /// Move the selected runs' directories aside (`<experiment>/.old/`) and train them anew;
    /// on a dry run nothing is moved and the scripts include them as if it had been.
    pub fresh: bool,
    /// Submit the dependent evaluate-fit-report job.
    pub fit: bool,
    /// Write the scripts, submit nothing.
    pub dry_run: bool,
}

impl SlurmOptions {
    pub fn new(forgetlab: impl Into<PathBuf>) -> Self {
        Self {
            forgetlab: forgetlab.into(),
            runs_root: PathBuf::from("runs"),
            overrides: SlurmConfig::default(),
            retry_failed: false,
            only: None,
            fresh: false,
            fit: true,
            dry_run: false,
        }
    }
}

/// What was submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub experiment: String,
    /// Array job id (`None` when no run needed work, or on a dry run).
    pub array_job: Option<String>,
    /// Dependent evaluate-fit-report job id.
    pub finish_job: Option<String>,
    /// Run names, indexed by array task id.
    pub runs: Vec<String>,
    pub array_script: Option<PathBuf>,
    pub finish_script: Option<PathBuf>,
    pub submitted_unix: f64,
    /// Runs left out, with the reason.
    #[serde(default)]
    pub skipped: Vec<(String, String)>,
    /// Runs whose old directory `fresh` moved aside, with where it went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<(String, PathBuf)>,
}

/// Everything an sbatch script needs.
#[derive(Debug, Clone)]
pub struct ScriptSpec {
    pub job_name: String,
    /// The forgetlab binary the job runs.
    pub exe: PathBuf,
    /// Working directory of the job (relative data paths resolve against it).
    pub workdir: PathBuf,
    /// Where Slurm writes the job's output.
    pub output_dir: PathBuf,
    pub config: SlurmConfig,
    pub gpus: u32,
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn directives(spec: &ScriptSpec) -> Vec<String> {
    let c = &spec.config;
    let mut lines = vec![
        format!("--job-name={}", spec.job_name),
        format!("--chdir={}", spec.workdir.display()),
        "--open-mode=append".to_string(),
        "--ntasks=1".to_string(),
    ];
    let mut opt = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            lines.push(format!("--{name}={v}"));
        }
    };
    opt("partition", &c.partition);
    opt("account", &c.account);
    opt("qos", &c.qos);
    opt("time", &c.time);
    opt("mem", &c.mem);
    if let Some(cpus) = c.cpus_per_task {
        lines.push(format!("--cpus-per-task={cpus}"));
    }
    if spec.gpus > 0 {
        lines.push(format!("--gres=gpu:{}", spec.gpus));
    }
    lines.extend(c.extra.iter().cloned());
    lines
}

fn header(spec: &ScriptSpec, specific: &[String]) -> String {
    let mut out = String::from("#!/usr/bin/env bash\n");
    for d in directives(spec).iter().chain(specific) {
        out.push_str(&format!("#SBATCH {d}\n"));
    }
    out
}

fn setup_lines(spec: &ScriptSpec) -> String {
    let mut out = String::new();
    if !spec.config.setup.is_empty() {
        out.push_str("# [slurm] setup\n");
        for line in &spec.config.setup {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The array script: task `i` trains and evaluates `run_dirs[i]`.
pub fn array_script(spec: &ScriptSpec, run_dirs: &[PathBuf]) -> String {
    let n = run_dirs.len();
    let mut array = format!("--array=0-{}", n.saturating_sub(1));
    if let Some(p) = spec.config.max_parallel {
        array.push_str(&format!("%{p}"));
    }
    let specific = vec![
        array,
        format!(
            "--output={}/{}_%A_%a.out",
            spec.output_dir.display(),
            spec.job_name
        ),
        "--requeue".to_string(),
        format!("--signal=B:USR1@{}", spec.config.signal_seconds()),
    ];
    let mut out = header(spec, &specific);
    out.push_str(
        "# Written by `forgetlab sweep run --executor slurm`. One task per run: train (resuming\n\
         # from the newest checkpoint) and evaluate. On SIGUSR1 (time limit near) the task\n\
         # checkpoints, exits 3 and is requeued; the requeued task resumes.\n",
    );
    out.push_str("set -u\n");
    out.push_str(&setup_lines(spec));
    out.push_str(&format!(
        "FORGETLAB={}\n",
        quote(&spec.exe.display().to_string())
    ));
    out.push_str("RUNS=(\n");
    for dir in run_dirs {
        out.push_str(&format!("  {}\n", quote(&dir.display().to_string())));
    }
    out.push_str(")\n");
    out.push_str(
        r#"TASK="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
RUN_DIR="${RUNS[$SLURM_ARRAY_TASK_ID]}"
THREADS="${SLURM_CPUS_PER_TASK:-1}"
say() { echo "[$(date '+%F %T')] forgetlab task $TASK: $*"; }
say "start run=$RUN_DIR restart=${SLURM_RESTART_COUNT:-0} host=$(hostname)"
child=""
on_usr1() {
  say "got SIGUSR1: checkpointing"
  rc=3
  if [ -n "$child" ]; then
    kill -USR1 "$child" 2>/dev/null
    wait "$child"; rc=$?
  fi
  if [ "$rc" = 3 ]; then
    say "checkpointed; requeue"
    scontrol requeue "$TASK" || say "scontrol requeue failed; rerun the sweep to resume"
  else
    say "forgetlab exited $rc; not requeued"
  fi
  exit "$rc"
}
trap on_usr1 USR1
"$FORGETLAB" --threads "$THREADS" sweep task "$RUN_DIR" &
child=$!
wait "$child"; rc=$?
say "exit $rc"
exit "$rc"
"#,
    );
    out
}

/// The dependent job: evaluate leftovers (among `only`, when given), fit, report.
pub fn finish_script(spec: &ScriptSpec, experiment_dir: &Path, only: Option<&[String]>) -> String {
    let specific = vec![format!(
        "--output={}/{}_%j.out",
        spec.output_dir.display(),
        spec.job_name
    )];
    let mut out = header(spec, &specific);
    out.push_str(
        "# Written by `forgetlab sweep run --executor slurm`: runs after the array (afterany),\n\
         # evaluates completed runs that have no verdict, fits the laws, writes the report.\n",
    );
    out.push_str("set -u\n");
    out.push_str(&setup_lines(spec));
    let only = only
        .map(|names| format!(" --only {}", quote(&names.join(","))))
        .unwrap_or_default();
    out.push_str(&format!(
        "exec {} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" sweep finish {}{only}\n",
        quote(&spec.exe.display().to_string()),
        quote(&experiment_dir.display().to_string())
    ));
    out
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

fn absolute(path: &Path) -> Result<PathBuf, SweepError> {
    std::path::absolute(path).map_err(|e| SweepError::io(path, e))
}

/// Writes the scripts and submits the array and its dependent job. Runs already done, failed
/// (without `retry_failed`), running, or queued in an earlier submission that is still active
/// are left out; with `only`, so is every run not named.
pub fn submit(experiment: &Experiment, options: &SlurmOptions) -> Result<Submission, SweepError> {
    let selected = select(experiment, options.only.as_deref())?;
    let config = experiment.slurm.overridden_by(&options.overrides);
    config
        .validate()
        .map_err(|i| SweepError::Slurm(format!("{i} (from the command line)")))?;
    let dir = experiment.dir(&options.runs_root);
    // Held while submitting only: the finish job locks the experiment itself.
    let _lock = lock_experiment(&dir)?;
    let queued = if options.dry_run {
        Queued::default()
    } else {
        queued_elsewhere(&dir)
    };

    let mut moved = Vec::new();
    if options.fresh {
        if let Some((name, job)) = selected
            .iter()
            .find_map(|r| queued.runs.get_key_value(&r.name))
        {
            return Err(SweepError::RunConflict {
                run: name.clone(),
                message: format!(
                    "is queued in Slurm job {job}; cancel it before starting the run fresh"
                ),
            });
        }
        check_fresh(&dir, &selected)?;
        if !options.dry_run {
            moved = move_aside(&dir, &selected)?;
        }
    }
    // A dry run of a fresh start leaves the old directories as they are.
    let to_prepare: &[&PlannedRun] = if options.fresh && options.dry_run {
        &[]
    } else {
        &selected
    };
    let dir = prepare_runs(experiment, &options.runs_root, to_prepare)?;
    let log = SweepLog::of(&dir);
    let events = log.read();
    let mut todo = Vec::new();
    let mut skipped = Vec::new();
    for run in &selected {
        if options.fresh {
            todo.push(run.name.clone());
            continue;
        }
        if let Some(job) = queued.runs.get(&run.name) {
            skipped.push((run.name.clone(), format!("queued in Slurm job {job}")));
            continue;
        }
        match assess(&dir.run(&run.name), &events, options.retry_failed) {
            Assessment::Work(_) => todo.push(run.name.clone()),
            Assessment::Skip(skip) => skipped.push((run.name.clone(), skip.describe())),
        }
    }

    let slurm_dir = dir.slurm();
    std::fs::create_dir_all(&slurm_dir).map_err(|e| SweepError::io(&slurm_dir, e))?;
    let exe = absolute(&copy_binary(&options.forgetlab, &slurm_dir)?)?;
    let spec = ScriptSpec {
        job_name: format!("forgetlab-{}", experiment.meta.name),
        exe,
        workdir: absolute(Path::new("."))?,
        output_dir: absolute(&slurm_dir)?,
        gpus: config.gpus_per_task.unwrap_or_else(|| gpus_for(experiment)),
        config,
    };
    let experiment_dir = absolute(dir.root())?;
    let mut submission = Submission {
        experiment: experiment.meta.name.clone(),
        array_job: None,
        finish_job: None,
        runs: todo.clone(),
        array_script: None,
        finish_script: None,
        submitted_unix: unix_now(),
        skipped,
        moved,
    };
    if !todo.is_empty() {
        let run_dirs: Vec<PathBuf> = todo.iter().map(|n| experiment_dir.join(n)).collect();
        let path = slurm_dir.join("array.sbatch");
        forgetlab_runs::write_atomic(&path, array_script(&spec, &run_dirs).as_bytes())
            .map_err(|e| SweepError::io(&path, e))?;
        submission.array_script = Some(path.clone());
        if !options.dry_run {
            let id = sbatch(&path, &[])?;
            tracing::info!("submitted array job {id}: {} task(s)", todo.len());
            log_event(
                &log,
                Event::new("", Stage::Submit, Outcome::Started)
                    .message(format!("array job {id}: {}", todo.join(" "))),
            );
            submission.array_job = Some(id);
        }
    }
    // A new finish job waits for every array still at work on this experiment; with nothing
    // new to run, an earlier finish job still queued will do.
    let fit_needed = if todo.is_empty() {
        queued.finish_jobs.is_empty()
            && queued.arrays.is_empty()
            && (!dir.law().exists() || !dir.report().exists())
    } else {
        true
    };
    if options.fit && fit_needed {
        let finish_spec = ScriptSpec {
            job_name: format!("{}-finish", spec.job_name),
            ..spec.clone()
        };
        let path = slurm_dir.join("finish.sbatch");
        let names: Vec<String> = selected.iter().map(|r| r.name.clone()).collect();
        let only = options.only.as_ref().map(|_| names.as_slice());
        forgetlab_runs::write_atomic(
            &path,
            finish_script(&finish_spec, &experiment_dir, only).as_bytes(),
        )
        .map_err(|e| SweepError::io(&path, e))?;
        submission.finish_script = Some(path.clone());
        if !options.dry_run {
            let after: Vec<&str> = submission
                .array_job
                .iter()
                .chain(&queued.arrays)
                .map(String::as_str)
                .collect();
            let id = sbatch(&path, &after)?;
            tracing::info!("submitted finish job {id} (evaluate leftovers, fit, report)");
            log_event(
                &log,
                Event::new("", Stage::Submit, Outcome::Started).message(format!("finish job {id}")),
            );
            submission.finish_job = Some(id);
        }
    }
    if !options.dry_run && (submission.array_job.is_some() || submission.finish_job.is_some()) {
        let record = slurm_dir.join("submissions.jsonl");
        append_json_line(&record, &submission).map_err(|e| SweepError::io(&record, e))?;
    }
    Ok(submission)
}

/// Copies the executable next to the scripts (replacing any earlier copy atomically, so tasks
/// still running keep their binary).
fn copy_binary(exe: &Path, slurm_dir: &Path) -> Result<PathBuf, SweepError> {
    let bin = slurm_dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| SweepError::io(&bin, e))?;
    let target = bin.join("forgetlab");
    let tmp = bin.join(format!(".forgetlab.tmp-{}", std::process::id()));
    std::fs::copy(exe, &tmp).map_err(|e| SweepError::io(exe, e))?;
    std::fs::rename(&tmp, &target).map_err(|e| SweepError::io(&target, e))?;
    Ok(target)
}

fn run_slurm(program: &str, args: &[String]) -> Result<std::process::Output, SweepError> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|error| SweepError::Spawn {
            program: program.to_string(),
            error,
        })
}

fn sbatch(script: &Path, after: &[&str]) -> Result<String, SweepError> {
    let mut args = vec!["--parsable".to_string()];
    if !after.is_empty() {
        args.push(format!("--dependency=afterany:{}", after.join(":")));
    }
    args.push(script.display().to_string());
    let out = run_slurm("sbatch", &args)?;
    if !out.status.success() {
        return Err(SweepError::Slurm(format!(
            "sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `--parsable` prints `<id>` or `<id>;<cluster>`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SweepError::Slurm(format!(
            "sbatch printed {text:?}, not a job id"
        )));
    }
    Ok(id)
}

/// Lines `squeue` shows for `jobs` (`<id>|<state>|<reason>`); `None` when squeue cannot be
/// asked. A job id Slurm has forgotten counts as not queued.
fn squeue(jobs: &[&str]) -> Option<Vec<QueueEntry>> {
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
struct Queued {
    /// Run name -> `<array>_<task>` still pending or running.
    runs: BTreeMap<String, String>,
    /// Array jobs with tasks still queued.
    arrays: Vec<String>,
    /// Finish jobs not yet run.
    finish_jobs: Vec<String>,
}

/// Reads `slurm/submissions.jsonl` and asks squeue which of those jobs are still queued.
fn queued_elsewhere(dir: &ExperimentDir) -> Queued {
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

/// Final states from sacct, else scontrol.
fn final_states(jobs: &[&str]) -> (Vec<JobState>, StateSource, Option<String>) {
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
    fn task_ids_from_squeue_ids() {
        assert_eq!(task_ids("12_3", "12"), vec![3]);
        assert_eq!(task_ids("12_[0-2,5%2]", "12"), vec![0, 1, 2, 5]);
        assert_eq!(task_ids("13", "12"), Vec::<usize>::new());
        assert_eq!(task_ids("123_1", "12"), Vec::<usize>::new());
    }

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

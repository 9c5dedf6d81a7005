//! Submitting an experiment: choose the runs that need work, write the scripts, and queue the
//! array and its dependent finish job, recording each submission so a later one can see what
//! is still queued.

use std::path::{Path, PathBuf};

use forgetlab_runs::{append_json_line, unix_now};
use serde::{Deserialize, Serialize};

use super::config::{SlurmConfig, gpus_for};
use super::queue::{Queued, queued_elsewhere};
use super::run_slurm;
use super::script::{ScriptSpec, array_script, finish_script};
use crate::error::SweepError;
use crate::experiment::{Experiment, PlannedRun};
use crate::log::{Event, Outcome, Stage, SweepLog};
use crate::rundirs::{Assessment, assess, lock_experiment, log_event, prepare_runs};
use crate::select::{check_fresh, move_aside, select};

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

fn absolute(path: &Path) -> Result<PathBuf, SweepError> {
    std::path::absolute(path).map_err(|e| SweepError::io(path, e))
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

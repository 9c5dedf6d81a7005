//! `forgetlab sweep`: plan, run and track experiment grids, locally or as Slurm array jobs.
//! A thin layer over `forgetlab_sweep`; the binary itself is the trainer and evaluator the
//! sweep runs as child processes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use forgetlab_runs::ExperimentDir;
use forgetlab_sweep::rundirs::Skip;
use forgetlab_sweep::select;
use forgetlab_sweep::slurm::{self, SlurmConfig, SlurmOptions, TrackOptions};
use forgetlab_sweep::status::{status_json, status_rows, status_text};
use forgetlab_sweep::{
    Experiment, ExperimentRef, FinishOptions, FinishOutcome, Forgetlab, LocalOptions, RunOutcome,
    plan, resolve_experiment,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print the runs an experiment file expands to (name, N_S, length, tokens), running nothing.
    Plan(PlanArgs),
    /// Train, evaluate, fit and report every run of an experiment (or the --only ones), locally or on Slurm.
    Run(Box<RunArgs>),
    /// Show every run of an experiment: state, step, last loss, verdict.
    Status(StatusArgs),
    /// Train and evaluate one run directory (what each Slurm array task runs).
    Task(TaskArgs),
    /// Evaluate leftover runs, fit and report an experiment (the dependent Slurm job).
    Finish(FinishArgs),
    /// Print an experiment's directory, e.g. `forgetlab fit $(forgetlab sweep dir EXP)`.
    Dir(DirArgs),
}

/// An experiment: a file, an experiment directory, or a bare name (`experiments/<name>.toml`).
#[derive(clap::Args)]
struct Target {
    /// Experiment file, experiment directory, or name of a file in experiments/.
    experiment: PathBuf,
    /// Root of the experiment directories.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
}

#[derive(clap::Args)]
struct PlanArgs {
    #[command(flatten)]
    target: Target,
    /// One JSON object per line per run: name, run_dir, n_s, state_size, params, point, config.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Executor {
    /// This machine, `--jobs` runs at a time.
    Local,
    /// A Slurm array job plus a dependent fit job.
    Slurm,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, value_enum, default_value = "local")]
    executor: Executor,
    /// Runs trained at once (local); the --threads budget is divided between them.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Retry runs whose training or evaluation failed before.
    #[arg(long)]
    retry_failed: bool,
    /// Only these runs, as `sweep plan` names them (comma-separated or repeated); the fit and
    /// report still cover every evaluated run. A run already evaluated is skipped, a trained
    /// one without a current verdict is only evaluated.
    #[arg(long, value_delimiter = ',', value_name = "RUN")]
    only: Option<Vec<String>>,
    /// With --only: move the named runs' directories to <experiment>/.old/<run>.old-<unix time>
    /// (nothing is deleted) and train them again from scratch.
    #[arg(long, requires = "only")]
    fresh: bool,
    /// Do not fit and report at the end.
    #[arg(long)]
    no_fit: bool,
    #[command(flatten)]
    slurm: SlurmArgs,
}

/// Slurm settings; each overrides the experiment's [slurm] section.
#[derive(clap::Args)]
struct SlurmArgs {
    #[arg(long, help_heading = "Slurm")]
    partition: Option<String>,
    #[arg(long, help_heading = "Slurm")]
    account: Option<String>,
    #[arg(long, help_heading = "Slurm")]
    qos: Option<String>,
    /// Time limit per task (`4:00:00`, `2-00:00:00`).
    #[arg(long, help_heading = "Slurm")]
    time: Option<String>,
    /// GPUs per task (`--gres=gpu:N`); default from train.device.
    #[arg(long, help_heading = "Slurm")]
    gpus_per_task: Option<u32>,
    #[arg(long, help_heading = "Slurm")]
    cpus_per_task: Option<u32>,
    /// Memory per task (`64G`).
    #[arg(long, help_heading = "Slurm")]
    mem: Option<String>,
    /// Array tasks running at once.
    #[arg(long, help_heading = "Slurm")]
    max_parallel: Option<usize>,
    /// Seconds before the time limit at which a task checkpoints and requeues.
    #[arg(long, help_heading = "Slurm")]
    signal_seconds: Option<u32>,
    /// Extra sbatch option, repeatable (`--sbatch-option=--constraint=a100`).
    #[arg(
        long = "sbatch-option",
        help_heading = "Slurm",
        allow_hyphen_values = true
    )]
    extra: Vec<String>,
    /// Shell line run before forgetlab in each job, repeatable (`module load cuda`).
    #[arg(long, help_heading = "Slurm")]
    setup: Vec<String>,
    /// Return after submitting instead of following the jobs.
    #[arg(long, help_heading = "Slurm")]
    no_wait: bool,
    /// Write the sbatch scripts without submitting them.
    #[arg(long, help_heading = "Slurm")]
    dry_run: bool,
    /// Seconds between polls while following the jobs.
    #[arg(long, default_value_t = 30, help_heading = "Slurm")]
    poll_seconds: u64,
}

impl SlurmArgs {
    fn config(&self) -> SlurmConfig {
        SlurmConfig {
            partition: self.partition.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            time: self.time.clone(),
            gpus_per_task: self.gpus_per_task,
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            max_parallel: self.max_parallel,
            signal_seconds: self.signal_seconds,
            extra: self.extra.clone(),
            setup: self.setup.clone(),
        }
    }
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// One JSON run summary per line.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct TaskArgs {
    /// The run directory (holding config.toml).
    run_dir: PathBuf,
}

#[derive(clap::Args)]
struct FinishArgs {
    #[command(flatten)]
    target: Target,
    /// Retry evaluations that failed before.
    #[arg(long)]
    retry_failed: bool,
    /// Evaluate leftovers only among these runs (the fit still covers every evaluated run).
    #[arg(long, value_delimiter = ',', value_name = "RUN")]
    only: Option<Vec<String>>,
}

#[derive(clap::Args)]
struct DirArgs {
    #[command(flatten)]
    target: Target,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Plan(a) => plan_cmd(a),
        Command::Run(a) => run_cmd(*a),
        Command::Status(a) => status_cmd(a),
        Command::Task(a) => task_cmd(a),
        Command::Finish(a) => finish_cmd(a),
        Command::Dir(a) => {
            let reference = resolve_experiment(&a.target.experiment, &a.target.runs_dir)?;
            println!("{}", reference.dir(&a.target.runs_dir)?.root().display());
            Ok(())
        }
    }
}

fn load(target: &Target) -> anyhow::Result<Experiment> {
    Ok(resolve_experiment(&target.experiment, &target.runs_dir)?.load()?)
}

fn this_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the forgetlab executable")
}

/// The thread budget: `--threads`, RAYON_NUM_THREADS, or every core.
fn threads() -> usize {
    rayon::current_num_threads()
}

fn plan_cmd(a: PlanArgs) -> anyhow::Result<()> {
    let experiment = load(&a.target)?;
    if a.json {
        print!("{}", plan::plan_json(&experiment, &a.target.runs_dir));
    } else {
        print!("{}", plan::plan_text(&experiment, &a.target.runs_dir));
    }
    Ok(())
}

fn print_status(reference: &ExperimentRef, runs_dir: &Path) -> anyhow::Result<()> {
    let (dir, rows) = status_rows(reference, runs_dir)?;
    println!("{}", status_text(&dir, &rows));
    Ok(())
}

fn run_cmd(mut a: RunArgs) -> anyhow::Result<()> {
    let reference = resolve_experiment(&a.target.experiment, &a.target.runs_dir)?;
    let experiment = reference.load()?;
    a.target.runs_dir = reference.runs_root(&a.target.runs_dir);
    if let ExperimentRef::Dir(dir) = &reference
        && dir.file_name() != Some(std::ffi::OsStr::new(&experiment.meta.name))
    {
        bail!(
            "{} holds experiment {:?}; its directory must be named after it",
            dir.display(),
            experiment.meta.name
        );
    }
    match a.executor {
        Executor::Local => {
            if a.slurm.dry_run {
                bail!(
                    "--dry-run writes Slurm scripts (--executor slurm); `forgetlab sweep plan` lists the runs and `forgetlab sweep status` shows where each stands"
                );
            }
            let mut options = LocalOptions::new(this_exe()?);
            options.runs_root = a.target.runs_dir.clone();
            options.jobs = a.jobs;
            options.threads = Some(threads());
            options.retry_failed = a.retry_failed;
            options.only = a.only.clone();
            options.fresh = a.fresh;
            options.fit = !a.no_fit;
            let outcome = forgetlab_sweep::run_local(&experiment, &options)?;
            print_status(
                &ExperimentRef::File(experiment.path.clone()),
                &a.target.runs_dir,
            )?;
            print_moved(&outcome.moved);
            if a.only.is_some() {
                for (name, run) in &outcome.runs {
                    if let RunOutcome::Skipped(skip) = run {
                        print_skipped(name, &skip.describe(), &outcome.dir);
                    }
                }
            }
            if outcome.interrupted {
                let only = a
                    .only
                    .as_ref()
                    .map(|names| format!(" --only {}", names.join(",")))
                    .unwrap_or_default();
                return Err(super::Interrupted(format!(
                    "rerun `forgetlab sweep run {}{only}` to resume",
                    experiment.path.display()
                ))
                .into());
            }
            let failures = outcome.failures();
            if !failures.is_empty() {
                let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
                bail!(
                    "{} run(s) failed: {} (details: status.json, console.log and {}/sweep-log.jsonl; --retry-failed to retry)",
                    failures.len(),
                    names.join(", "),
                    outcome.dir.root().display()
                );
            }
            if let FinishOutcome::Failed { stage, message } = &outcome.finish {
                bail!("{stage} failed: {message}");
            }
            Ok(())
        }
        Executor::Slurm => {
            let mut options = SlurmOptions::new(this_exe()?);
            options.runs_root = a.target.runs_dir.clone();
            options.overrides = a.slurm.config();
            options.retry_failed = a.retry_failed;
            options.only = a.only.clone();
            options.fresh = a.fresh;
            options.fit = !a.no_fit;
            options.dry_run = a.slurm.dry_run;
            let submission = slurm::submit(&experiment, &options)?;
            let dir = experiment.dir(&a.target.runs_dir);
            for (name, why) in &submission.skipped {
                if a.only.is_some() {
                    print_skipped(name, why, &dir);
                } else {
                    tracing::info!("{name}: skipped ({why})");
                }
            }
            print_moved(&submission.moved);
            if a.fresh && a.slurm.dry_run {
                let to_move: Vec<&str> = submission
                    .runs
                    .iter()
                    .filter(|n| select::holds_results(&dir.run(n)))
                    .map(String::as_str)
                    .collect();
                if !to_move.is_empty() {
                    println!(
                        "dry run: nothing moved; a real run first moves {} to {}",
                        to_move.join(", "),
                        dir.root().join(select::OLD_DIR).display()
                    );
                }
            }
            if let Some(script) = &submission.array_script {
                println!("array script: {}", script.display());
            }
            if let Some(script) = &submission.finish_script {
                println!("finish script: {}", script.display());
            }
            if a.slurm.dry_run {
                println!(
                    "dry run: nothing submitted ({} run(s) need work)",
                    submission.runs.len()
                );
                return Ok(());
            }
            match (&submission.array_job, &submission.finish_job) {
                (None, None) => {
                    println!("nothing to submit: every run is done or skipped");
                    return print_status(&reference, &a.target.runs_dir);
                }
                (array, finish) => println!(
                    "submitted: array job {} ({} task(s)), finish job {}",
                    array.as_deref().unwrap_or("-"),
                    submission.runs.len(),
                    finish.as_deref().unwrap_or("-")
                ),
            }
            if a.slurm.no_wait {
                println!(
                    "follow with `forgetlab sweep status {}` or squeue",
                    experiment.path.display()
                );
                return Ok(());
            }
            let track = TrackOptions {
                poll: Duration::from_secs(a.slurm.poll_seconds.max(1)),
                handle_signals: true,
                ..TrackOptions::default()
            };
            let report = slurm::track(&submission, &dir, &track)?;
            if report.stopped_early {
                println!("stopped following; the jobs keep running");
            }
            for job in &report.jobs {
                let restarts = job
                    .restarts
                    .map(|r| format!(" restarts={r}"))
                    .unwrap_or_default();
                println!("{} {} exit={}{restarts}", job.id, job.state, job.exit_code);
            }
            if let Some(note) = &report.sacct_note {
                tracing::info!("sacct not used: {note}");
            }
            print_status(&reference, &a.target.runs_dir)
        }
    }
}

/// Where `--fresh` put the old run directories.
fn print_moved(moved: &[(String, PathBuf)]) {
    for (name, to) in moved {
        println!("{name}: old directory moved to {}", to.display());
    }
}

/// A named run that got no work, and for a finished one how to train it again.
fn print_skipped(name: &str, why: &str, dir: &ExperimentDir) {
    if why == Skip::Done.describe() {
        println!(
            "{name}: skipped, already trained and evaluated; add --fresh to train it again from scratch (the old directory goes to {})",
            dir.root().join(select::OLD_DIR).display()
        );
    } else {
        println!("{name}: skipped ({why})");
    }
}

fn status_cmd(a: StatusArgs) -> anyhow::Result<()> {
    let reference = resolve_experiment(&a.target.experiment, &a.target.runs_dir)?;
    let (dir, rows) = status_rows(&reference, &a.target.runs_dir)?;
    if a.json {
        print!("{}", status_json(&rows));
    } else {
        print!("{}", status_text(&dir, &rows));
    }
    Ok(())
}

fn task_cmd(a: TaskArgs) -> anyhow::Result<()> {
    let forgetlab = Forgetlab::new(this_exe()?, threads());
    let outcome = forgetlab_sweep::run_task(&a.run_dir, &forgetlab)?;
    match outcome {
        RunOutcome::Interrupted(_) => Err(super::Interrupted(outcome.describe()).into()),
        o if o.is_failure() => bail!("{}: {}", a.run_dir.display(), o.describe()),
        _ => Ok(()),
    }
}

fn finish_cmd(a: FinishArgs) -> anyhow::Result<()> {
    let reference = resolve_experiment(&a.target.experiment, &a.target.runs_dir)?;
    let dir = reference.dir(&a.target.runs_dir)?;
    let forgetlab = Forgetlab::new(this_exe()?, threads());
    let options = FinishOptions {
        retry_failed: a.retry_failed,
        only: a.only,
        // Inside a Slurm job the output belongs in the job's log.
        local: std::env::var_os("SLURM_JOB_ID").is_none(),
        ..FinishOptions::default()
    };
    let (evaluated, finish) = forgetlab_sweep::finish_experiment(&dir, &forgetlab, &options)?;
    for (name, outcome) in &evaluated {
        println!("{name}: {}", outcome.describe());
    }
    match finish {
        FinishOutcome::Done => {
            println!(
                "fit: {}; report: {}",
                dir.law().display(),
                dir.report().display()
            );
            Ok(())
        }
        FinishOutcome::Skipped(why) => {
            println!("fit skipped: {why}");
            Ok(())
        }
        FinishOutcome::Failed { stage, message } => bail!("{stage} failed: {message}"),
    }
}

//! `forgetlab train CONFIG --run-dir DIR` and `forgetlab train --resume DIR`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use forgetlab_runs::summary::read_json;
use forgetlab_runs::{DirLock, RunConfig, RunDir, RunState, RunStatus};
use forgetlab_train::{StopFlag, TrainOptions, TrainOutcome, train};

use super::Interrupted;

#[derive(clap::Args)]
pub struct Args {
    /// A run config (TOML). Omit with --resume.
    config: Option<PathBuf>,
    /// Run directory (default: runs/<config file stem>). A directory with checkpoints of the
    /// same config is resumed.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Resume the run in this directory from its newest complete checkpoint.
    #[arg(long, conflicts_with_all = ["config", "run_dir"])]
    resume: Option<PathBuf>,
    /// Override train.device (cpu, wgpu, cuda:N, or a comma-separated list); a resumed run
    /// may move to other devices.
    #[arg(long)]
    device: Option<String>,
    /// Override train.workers (micro-batches computed at once).
    #[arg(long)]
    workers: Option<usize>,
    /// Start the run over from step 0. Its old checkpoints, metrics, final weights, eval
    /// results and data.json are moved (not deleted) to RUN_DIR/.old/restart-<unix time>/.
    #[arg(long)]
    restart: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (run, config) = match (&args.resume, &args.config) {
        (Some(dir), _) => (RunDir::new(dir), None),
        (None, Some(path)) => {
            // The whole config, eval settings and the files it names included, before step 1.
            let config = forgetlab_runs::config::load_validated(path, |c: &RunConfig| {
                c.validate()?;
                forgetlab_train::check_inputs(c)
            })?;
            let dir = args.run_dir.clone().unwrap_or_else(|| {
                PathBuf::from("runs").join(path.file_stem().unwrap_or_default())
            });
            (RunDir::new(dir), Some(config))
        }
        (None, None) => bail!("give a run config to train, or --resume RUN_DIR"),
    };
    let _lock = lock_run_dir(&run)?;
    let config = if args.device.is_some() || args.workers.is_some() {
        let mut config = match config {
            Some(c) => c,
            None => RunConfig::load(&run.config())
                .with_context(|| format!("{} is not a run directory", run.root().display()))?,
        };
        if let Some(device) = &args.device {
            config.train.device = device.clone();
        }
        if let Some(workers) = args.workers {
            config.train.workers = Some(workers);
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("--device/--workers: {e}"))?;
        Some(config)
    } else {
        config
    };
    let threads = match &config {
        Some(c) => c.train.threads,
        None => RunConfig::load(&run.config())
            .ok()
            .and_then(|c| c.train.threads),
    };
    super::set_threads_from_config(threads);
    let stop = StopFlag::default();
    stop.install_signal_handlers()
        .context("installing signal handlers")?;
    let options = TrainOptions {
        progress: true,
        stop,
        restart: args.restart,
    };
    match train(&run, config.as_ref(), &options)? {
        TrainOutcome::Completed {
            steps,
            final_val_loss,
        } => {
            match final_val_loss {
                Some(v) => println!(
                    "{}: completed {steps} steps, validation loss {v:.4}",
                    run.root().display()
                ),
                None => println!("{}: completed {steps} steps", run.root().display()),
            }
            Ok(())
        }
        TrainOutcome::Interrupted { step } => Err(Interrupted(format!(
            "{} checkpointed at step {step}; continue with `forgetlab train --resume {}`",
            run.root().display(),
            run.root().display()
        ))
        .into()),
    }
}

/// Locks the run directory for the whole run, before anything is written into it: a second
/// writer is refused, naming this one.
fn lock_run_dir(run: &RunDir) -> Result<DirLock> {
    std::fs::create_dir_all(run.root())
        .with_context(|| format!("creating {}", run.root().display()))?;
    let lock = DirLock::acquire(run.root())?;
    // A run left `running` by a process that died here is resumed as an interrupted one.
    let status: Option<RunStatus> = read_json(&run.status(), &mut Vec::new());
    if let Some(status) = status.filter(|s| s.state == RunState::Running) {
        let seen = status.seen_from_here();
        if seen.state == RunState::Interrupted {
            tracing::info!(
                "{}: {}",
                run.root().display(),
                seen.reason.unwrap_or_default()
            );
        }
    }
    Ok(lock)
}

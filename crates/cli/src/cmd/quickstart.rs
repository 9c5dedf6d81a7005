//! `forgetlab quickstart`: the README's main job. Fetches the corpus and tokenizers (once), runs
//! experiments/quickstart.toml end to end on this machine (train, evaluate past the training
//! length, fit, report) and says where to look.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use forgetlab_data::fetch::{FetchOptions, fetch_corpus};
use forgetlab_sweep::{LocalOptions, run_experiment};

use super::Interrupted;

#[derive(clap::Args)]
pub struct Args {
    /// The experiment to run.
    #[arg(long, default_value = "experiments/quickstart.toml")]
    experiment: PathBuf,
    /// Corpus directory (fetched when incomplete).
    #[arg(long, default_value = "data/corpus")]
    corpus: PathBuf,
    /// Runs trained at the same time (cores are divided between them).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Where experiment directories live.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    if !args.experiment.is_file() {
        bail!(
            "{} not found: run the quickstart from the repository root",
            args.experiment.display()
        );
    }
    tracing::info!("1/2 corpus and tokenizers in {}", args.corpus.display());
    fetch_corpus(&args.corpus, &FetchOptions::default()).context("fetching the corpus")?;
    tracing::info!("2/2 experiment {}", args.experiment.display());
    let exe = std::env::current_exe().context("locating the forgetlab binary")?;
    let mut options = LocalOptions::new(exe);
    options.jobs = args.jobs.max(1);
    options.runs_root = args.runs_dir.clone();
    let outcome = run_experiment(&args.experiment, &options)?;
    if outcome.interrupted {
        return Err(Interrupted(format!(
            "quickstart stopped; run it again to continue where it left off ({})",
            outcome.dir.root().display()
        ))
        .into());
    }
    let failures = outcome.failures();
    let root = outcome.dir.root();
    println!(
        "\nquickstart: {} runs in {}",
        outcome.runs.len(),
        root.display()
    );
    println!(
        "  run table:  forgetlab sweep status {}",
        args.experiment.display()
    );
    println!("  law:        {}", outcome.dir.law().display());
    println!(
        "  report:     {}",
        outcome.dir.report().join("index.html").display()
    );
    println!(
        "  dashboard:  forgetlab dashboard --runs {}",
        args.runs_dir.display()
    );
    if !failures.is_empty() {
        bail!(
            "{} run(s) failed: {}",
            failures.len(),
            failures
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !outcome.all_done() {
        bail!(
            "the experiment did not finish: see {}",
            root.join("sweep-log.jsonl").display()
        );
    }
    Ok(())
}

//! `forgetlab fit`: T_forget(N_S) and T_recall(N_S) over an experiment's runs.
//!
//! Thin layer over [`forgetlab_stats::experiment`]: options come from the experiment file's
//! `[fit]` table, flags override them, and the result is `law.json`, its figures (`law.svg`,
//! `recall_law.svg`) and a table on stdout.

use std::path::PathBuf;

use anyhow::Context;
use forgetlab_runs::ExperimentDir;
use forgetlab_stats::experiment::{fit_experiment, fit_options};
use forgetlab_stats::law::summary_text;

#[derive(clap::Args)]
pub struct Args {
    /// Experiment directory: one subdirectory per run (each with config.toml and eval/).
    pub experiment: PathBuf,
    /// Bootstrap resamples per confidence interval (default: `[fit] bootstrap_samples` of
    /// experiment.toml, else 1000).
    #[arg(long)]
    pub bootstrap: Option<usize>,
    /// Seed of the bootstrap draw (default: `[fit] seed`, else 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also fit state sizes whose T_forget is only an upper bound (the shortest training
    /// length tried already forgets).
    #[arg(long)]
    pub include_unbracketed: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let experiment = ExperimentDir::new(&args.experiment);
    let mut options = fit_options(&experiment)
        .with_context(|| format!("reading the fit options of {}", args.experiment.display()))?;
    if let Some(bootstrap) = args.bootstrap {
        options.bootstrap = bootstrap;
    }
    if let Some(seed) = args.seed {
        options.seed = seed;
    }
    options.include_unbracketed = args.include_unbracketed;

    let fit = fit_experiment(&experiment, &options)
        .with_context(|| format!("fitting the laws of {}", args.experiment.display()))?;
    for run in &fit.updated_verdicts {
        tracing::info!("{run}: reference criterion written to its verdict.json");
    }
    print!("{}", summary_text(&fit.report));
    // One law per mixer (a single-mixer experiment is its own one law).
    for law in fit.report.per_mixer() {
        let who = law
            .mixer()
            .filter(|_| fit.report.has_several_mixers())
            .map_or(String::new(), |m| format!("{}: ", m.label()));
        if law.linear.is_none() && law.linear_with_origin.is_none() {
            println!(
                "{who}T_forget(N_S) was NOT fitted: too few state sizes with a bracketed T_forget (see the notes above)."
            );
        }
        if law.exponential.is_none() {
            match law
                .recall_shape
                .as_ref()
                .and_then(|shape| shape.reason.as_deref())
            {
                Some(reason) => println!(
                    "{who}T_recall(N_S) exponential NOT reported: {reason} (a straight line is \
                     reported instead; see the notes above)."
                ),
                None => println!(
                    "{who}T_recall(N_S) was NOT fitted: too few state sizes with a zero-shot \
                     T_recall (see the notes above)."
                ),
            }
        }
    }
    println!("wrote {}", fit.law_path.display());
    // The figures: T_forget vs N_S with the fitted line(s), band and the paper's line, and
    // T_recall vs N_S with the exponential law; with several mixers, one law each on one figure.
    let figures = [
        (
            experiment.law_plot(),
            forgetlab_plot::law_chart(&fit.report),
        ),
        (
            experiment.root().join("recall_law.svg"),
            forgetlab_plot::recall_law_chart(&fit.report),
        ),
    ];
    for (path, svg) in figures {
        forgetlab_runs::write_atomic(&path, svg.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

//! `forgetlab report`: a static HTML and Markdown report of one experiment.
//!
//! Thin layer over [`forgetlab_dashboard::write_report`]: the same figures as the dashboard
//! (SVG files), the fitted laws from `law.json` and the run table, in `<experiment>/report/`
//! unless `--out` says otherwise.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Experiment directory (e.g. runs/quickstart).
    pub experiment: PathBuf,
    /// Output directory (default: <experiment>/report).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let outcome = forgetlab_dashboard::write_report(&args.experiment, args.out.as_deref())
        .with_context(|| format!("writing the report of {}", args.experiment.display()))?;
    for problem in &outcome.problems {
        tracing::warn!("{problem}");
    }
    println!(
        "report of {} run(s), {} figure(s), {} unreadable file(s):\n  {}\n  {}",
        outcome.runs,
        outcome.figures,
        outcome.problems.len(),
        outcome.html.display(),
        outcome.markdown.display()
    );
    Ok(())
}

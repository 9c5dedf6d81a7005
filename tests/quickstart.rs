//! The README's main job, end to end: `forgetlab quickstart` fetches (a no-op when the corpus
//! is there), trains, evaluates, fits and reports the quickstart experiment.

mod common;

use common::{corpus, run_ok};
use forgetlab_runs::results::LawReport;
use forgetlab_runs::{ExperimentDir, RunState, RunSummary};

#[test]
fn the_quickstart_runs_end_to_end() {
    corpus();
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(&["quickstart", "--runs-dir", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("quickstart: 6 runs"), "{stdout}");
    let experiment = ExperimentDir::new(dir.path().join("quickstart"));
    let runs = experiment.runs();
    assert_eq!(runs.len(), 6);
    for run in &runs {
        let summary = RunSummary::read(run);
        assert_eq!(summary.state, Some(RunState::Completed), "{}", summary.name);
        assert!(summary.has_verdict, "{} has no verdict", summary.name);
        assert!(
            summary.problems.is_empty(),
            "{}: {:?}",
            summary.name,
            summary.problems
        );
    }
    let law: LawReport = serde_json::from_slice(&std::fs::read(experiment.law()).unwrap()).unwrap();
    assert_eq!(law.forget_points.len(), 2);
    let figure = std::fs::read_to_string(experiment.law_plot()).unwrap();
    assert!(
        figure.contains("<svg") && figure.contains("5.172"),
        "law.svg shows the paper's line"
    );
    // The report names the experiment and every figure it links is an SVG file beside it.
    let report_dir = experiment.report();
    let report = std::fs::read_to_string(report_dir.join("index.html")).unwrap();
    assert!(
        report.contains("quickstart"),
        "the report names its experiment"
    );
    let figures: Vec<&str> = report
        .split("<img src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        figures.contains(&"figures/law.svg"),
        "the report shows the law figure: {figures:?}"
    );
    for figure in &figures {
        let svg = std::fs::read_to_string(report_dir.join(figure))
            .unwrap_or_else(|e| panic!("report figure {figure}: {e}"));
        assert!(svg.contains("<svg"), "{figure} is an SVG");
    }
    // A second run finds everything done and only refreshes the fit and report.
    let again = std::time::Instant::now();
    run_ok(&["quickstart", "--runs-dir", dir.path().to_str().unwrap()]);
    assert!(
        again.elapsed().as_secs() < 60,
        "a finished quickstart is skipped"
    );
}

//! From run directories to the forgetlab-plot charts. The dashboard serves these and the report
//! saves them, so both show the same figure for the same concept.

use forgetlab_plot::format::fmt_length;
use forgetlab_plot::{
    CurveOptions, LabeledCurve, PositionQuantity, RunMetrics, TrainingChart, TrainingOptions,
    diagnostics_charts, law_chart, no_data_chart, passkey_heatmap, recall_law_chart,
    training_curves,
};
use forgetlab_runs::results::{Diagnostics, PasskeySummary, PerPositionReport};

use crate::model::{ExperimentView, read_guarded, run_metrics};
use crate::root::{RunEntry, RunsRoot};

/// Per-position chart options as they arrive in a query string.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionQuery {
    pub quantity: PositionQuantity,
    pub log_x: bool,
    /// Mitigation label of the report (`none` = unmodified model).
    pub mitigation: String,
    /// Prompt to draw when several runs are overlaid (default: `text`, else the first).
    pub prompt: Option<String>,
}

impl Default for PositionQuery {
    fn default() -> Self {
        Self {
            quantity: PositionQuantity::Loss,
            log_x: false,
            mitigation: "none".to_string(),
            prompt: None,
        }
    }
}

/// One run's training chart.
pub fn run_training(
    root: &RunsRoot,
    run: &RunEntry,
    which: TrainingChart,
    opts: &TrainingOptions,
) -> String {
    let metrics = if run.escapes {
        Default::default()
    } else {
        run_metrics(root, &run.dir)
    };
    training_curves(
        &[RunMetrics {
            label: &run.name,
            records: &metrics.records,
        }],
        which,
        opts,
    )
}

/// Training chart of several runs overlaid, labelled by `label(run)`.
pub fn overlay_training(
    root: &RunsRoot,
    runs: &[(&RunEntry, String)],
    which: TrainingChart,
    opts: &TrainingOptions,
) -> String {
    let loaded: Vec<(String, std::sync::Arc<crate::cache::Metrics>)> = runs
        .iter()
        .map(|(run, label)| {
            let metrics = if run.escapes {
                Default::default()
            } else {
                run_metrics(root, &run.dir)
            };
            (label.clone(), metrics)
        })
        .collect();
    let metrics: Vec<RunMetrics> = loaded
        .iter()
        .map(|(label, m)| RunMetrics {
            label,
            records: &m.records,
        })
        .collect();
    training_curves(&metrics, which, opts)
}

/// Per-position loss of one run (every prompt) or several runs (one prompt each), with their
/// training lengths marked. Runs without a readable report are named in the subtitle.
pub fn position(
    root: &RunsRoot,
    runs: &[(&RunEntry, String)],
    title: &str,
    query: &PositionQuery,
) -> String {
    let mut reports: Vec<(String, PerPositionReport)> = Vec::new();
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    for (run, label) in runs {
        if run.escapes {
            problems.push(format!("{}: links outside the runs root", run.name));
            continue;
        }
        let path = run.dir.per_position(&query.mitigation);
        if std::fs::symlink_metadata(&path).is_err() {
            missing.push(run.name.clone());
            continue;
        }
        let mut local = Vec::new();
        match read_guarded::<PerPositionReport>(root, &path, &mut local) {
            Some(r) => reports.push((label.clone(), r)),
            None => problems.extend(local.into_iter().map(|p| format!("{}: {p}", run.name))),
        }
    }
    if reports.is_empty() {
        let reason = if let Some(p) = problems.first() {
            p.clone()
        } else if query.mitigation != "none" {
            format!(
                "no per-position results for mitigation {} (run `forgetlab eval`)",
                query.mitigation
            )
        } else {
            "no per-position results yet (run `forgetlab eval`)".to_string()
        };
        return no_data_chart(title, &reason);
    }
    let mut curves = Vec::new();
    let mut lens = Vec::new();
    if reports.len() == 1 && runs.len() == 1 {
        let report = &reports[0].1;
        curves = LabeledCurve::all_from_report(report, query.quantity);
        lens.push(report.seq_len);
    } else {
        for (label, report) in &reports {
            let prompt = query
                .prompt
                .clone()
                .filter(|p| report.curves.iter().any(|c| &c.prompt == p))
                .or_else(|| {
                    report
                        .curves
                        .iter()
                        .find(|c| c.prompt == "text")
                        .or(report.curves.first())
                        .map(|c| c.prompt.clone())
                });
            if let Some(prompt) = prompt
                && let Some(curve) =
                    LabeledCurve::from_report(report, &prompt, query.quantity, label.clone())
            {
                curves.push(curve);
                lens.push(report.seq_len);
            }
        }
    }
    let mut notes = Vec::new();
    if !missing.is_empty() {
        notes.push(format!("not evaluated: {}", missing.join(", ")));
    }
    if !problems.is_empty() {
        notes.push(format!("unreadable: {}", problems.join("; ")));
    }
    if query.mitigation != "none" {
        notes.insert(0, format!("mitigation {}", query.mitigation));
    }
    let several = curves.len() > 1 && reports.len() > 1;
    forgetlab_plot::loss_vs_position(
        &curves,
        &lens,
        &CurveOptions {
            title: title.to_string(),
            subtitle: (!notes.is_empty()).then(|| notes.join(" · ")),
            quantity: query.quantity,
            log_x: query.log_x,
            show_stderr: true,
            // Overlaid runs share one baseline; drawing it per run only adds clutter.
            show_baseline: !several,
            ..CurveOptions::default()
        },
    )
}

/// Every passkey heatmap of a run as (mitigation label, svg).
pub fn passkey(root: &RunsRoot, run: &RunEntry, labels: &[String]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|label| {
            let path = run.dir.passkey_dir(label).join("summary.json");
            let mut problems = Vec::new();
            let svg = match read_guarded::<PasskeySummary>(root, &path, &mut problems) {
                Some(summary) => passkey_heatmap(&summary),
                None => no_data_chart(
                    "Passkey retrieval",
                    problems
                        .first()
                        .map(String::as_str)
                        .unwrap_or("no passkey results"),
                ),
            };
            (label.clone(), svg)
        })
        .collect()
}

/// The diagnostics charts of a run, or one "no data" chart saying why there are none.
pub fn diagnostics(root: &RunsRoot, run: &RunEntry) -> Vec<(String, String)> {
    let path = run.dir.diagnostics();
    if run.escapes || std::fs::symlink_metadata(&path).is_err() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    match read_guarded::<Diagnostics>(root, &path, &mut problems) {
        Some(d) => diagnostics_charts(&d),
        None => vec![(
            "unreadable".to_string(),
            no_data_chart(
                "State diagnostics",
                problems
                    .first()
                    .map(String::as_str)
                    .unwrap_or("diagnostics.json could not be read"),
            ),
        )],
    }
}

/// T_forget(N_S), or a placeholder saying why there is none.
pub fn law(view: &ExperimentView) -> String {
    match (&view.law, &view.law_problem) {
        (Some(law), _) => law_chart(law),
        (None, Some(problem)) => no_data_chart("T_forget vs state size", problem),
        (None, None) => no_data_chart(
            "T_forget vs state size",
            "no law.json yet (run `forgetlab fit` once runs are evaluated)",
        ),
    }
}

/// T_recall(N_S), or a placeholder saying why there is none.
pub fn recall(view: &ExperimentView) -> String {
    match (&view.law, &view.law_problem) {
        (Some(law), _) => recall_law_chart(law),
        (None, Some(problem)) => no_data_chart("T_recall vs state size", problem),
        (None, None) => no_data_chart(
            "T_recall vs state size",
            "no law.json yet (run `forgetlab fit` once runs are evaluated)",
        ),
    }
}

/// Runs of one state size, labelled by training length (and seed when several share one).
pub fn runs_at_state_size<'a>(
    view: &ExperimentView,
    entries: &'a [RunEntry],
    state_size: u64,
) -> Vec<(&'a RunEntry, String)> {
    let mut picked: Vec<(&RunEntry, usize, Option<u64>)> = entries
        .iter()
        .filter_map(|e| {
            let row = view.row(&e.name)?;
            (row.summary.state_size == Some(state_size)).then_some((
                e,
                row.summary.seq_len?,
                row.summary.seed,
            ))
        })
        .collect();
    picked.sort_by_key(|(e, len, seed)| (*len, *seed, e.name.clone()));
    let seeds_differ = picked
        .iter()
        .any(|(_, len, seed)| picked.iter().any(|(_, l, s)| l == len && s != seed));
    picked
        .into_iter()
        .map(|(e, len, seed)| {
            let mut label = format!("T_train {}", fmt_length(len as f64));
            if seeds_differ && let Some(seed) = seed {
                label.push_str(&format!(" seed {seed}"));
            }
            (e, label)
        })
        .collect()
}

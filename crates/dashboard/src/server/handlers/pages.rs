//! The three HTML pages: the experiments, one experiment, one run. Each arrives complete, with
//! its charts inlined, so it reads without JavaScript; the script only refreshes parts.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::response::Html;
use forgetlab_plot::{TrainingChart, TrainingOptions};
use forgetlab_runs::ExperimentDir;

use super::{blocking, find_experiment, summaries};
use crate::charts::{self, PositionQuery};
use crate::model::{self, ExperimentView, RunDetail, experiment_view, run_detail};
use crate::pages::{self, ExperimentCharts, RunCharts, RunFiles};
use crate::root::{Rejection, RunEntry};
use crate::server::problem::{PageProblem, Problem};
use crate::server::{AppState, Shared};

fn experiment_charts(
    state: &AppState,
    view: &ExperimentView,
    e: &ExperimentDir,
) -> ExperimentCharts {
    let entries = state.root.runs(e);
    let by_state_size = view
        .grid
        .rows
        .iter()
        .map(|row| {
            let runs = charts::runs_at_state_size(view, &entries, row.state_size);
            let title = format!("N_S {}", pages::state_size_text(row.state_size));
            (
                row.state_size,
                charts::position(
                    &state.root,
                    &runs,
                    &format!("Loss by position · {title}"),
                    &PositionQuery::default(),
                ),
                charts::overlay_training(
                    &state.root,
                    &runs,
                    TrainingChart::Loss,
                    &TrainingOptions {
                        title: Some(format!("Training loss · {title}")),
                        ..TrainingOptions::default()
                    },
                ),
            )
        })
        .collect();
    ExperimentCharts {
        law: charts::law(view),
        recall: charts::recall(view),
        by_state_size,
    }
}

fn run_charts(state: &AppState, detail: &RunDetail, entry: &RunEntry) -> RunCharts {
    let training = TrainingChart::ALL
        .into_iter()
        .map(|c| {
            (
                c,
                charts::run_training(&state.root, entry, c, &TrainingOptions::for_chart(c)),
            )
        })
        .collect();
    let position = charts::position(
        &state.root,
        &[(entry, entry.name.clone())],
        &format!("Loss by position · {}", entry.name),
        &PositionQuery::default(),
    );
    RunCharts {
        training,
        position,
        passkey: charts::passkey(&state.root, entry, &detail.eval.passkey),
        diagnostics: charts::diagnostics(&state.root, entry),
    }
}

/// Up to `max` bytes from the end of a text file, starting at a line.
fn tail(path: &Path, max: u64) -> Option<String> {
    let mut file = forgetlab_runs::open_regular(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Some(if start > 0 {
        text.split_once('\n')
            .map(|x| x.1.to_string())
            .unwrap_or(text)
    } else {
        text
    })
}

fn run_files(state: &AppState, detail: &RunDetail, entry: &RunEntry) -> RunFiles {
    if entry.escapes {
        return RunFiles {
            config_text: None,
            log_tail: None,
            links: Vec::new(),
        };
    }
    let run = &entry.dir;
    let safe = |p: &Path| p.is_file() && state.root.contains(p);
    let mut rel = vec![
        "config.toml".to_string(),
        "status.json".to_string(),
        "metrics.jsonl".to_string(),
        "train.log".to_string(),
        "eval/verdict.json".to_string(),
        "eval/diagnostics.json".to_string(),
    ];
    for label in &detail.eval.per_position {
        for ext in ["json", "svg"] {
            let path = run.per_position(label);
            let name = path
                .with_extension(ext)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            rel.push(format!("eval/{name}"));
        }
    }
    for label in &detail.eval.passkey {
        let dir = run.passkey_dir(label);
        if let Some(d) = dir.file_name() {
            rel.push(format!("eval/{}/summary.json", d.to_string_lossy()));
        }
    }
    let links = rel
        .into_iter()
        .filter(|r| safe(&run.root().join(r)))
        .map(|r| format!("{}/{r}", entry.name))
        .collect();
    let config_text = safe(&run.config())
        .then(|| tail(&run.config(), 64 * 1024))
        .flatten();
    let log_tail = safe(&run.log())
        .then(|| tail(&run.log(), 12 * 1024))
        .flatten();
    RunFiles {
        config_text,
        log_tail,
        links,
    }
}

/// Other evaluated runs of the experiment, offered for overlaying.
fn siblings(state: &AppState, e: &ExperimentDir, name: &str) -> Vec<String> {
    state
        .root
        .runs(e)
        .into_iter()
        .filter(|r| r.name != name && !r.escapes && r.dir.per_position("none").is_file())
        .map(|r| r.name)
        .collect()
}

pub(in crate::server) async fn index(
    State(state): State<Shared>,
) -> Result<Html<String>, PageProblem> {
    page(&state, |s| {
        let list = summaries(s);
        Ok(pages::index_page(
            &list,
            &model::root_stamp(&s.root),
            s.poll_ms,
            &s.display(),
        ))
    })
    .await
}

pub(in crate::server) async fn experiment(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Html<String>, PageProblem> {
    page(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        let view = experiment_view(&s.root, &e);
        let charts = experiment_charts(s, &view, &e);
        Ok(pages::experiment_page(
            &view,
            &charts,
            s.poll_ms,
            &s.display(),
        ))
    })
    .await
}

pub(in crate::server) async fn run(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
) -> Result<Html<String>, PageProblem> {
    page(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        let entry = match s.root.run(&e, &run) {
            Ok(entry) => entry,
            // A link out of the root is listed in the experiment: show it as broken.
            Err(Rejection::Escapes(_)) => s
                .root
                .runs(&e)
                .into_iter()
                .find(|r| r.name == run && r.escapes)
                .ok_or_else(|| Problem::NotFound(format!("run {run:?} not found")))?,
            Err(other) => return Err(other.into()),
        };
        let detail = run_detail(&s.root, &e, &entry);
        let charts = run_charts(s, &detail, &entry);
        let files = run_files(s, &detail, &entry);
        Ok(pages::run_page(
            &detail,
            &charts,
            &files,
            &siblings(s, &e, &run),
            s.poll_ms,
            &s.display(),
        ))
    })
    .await
}

async fn page<F>(state: &Shared, work: F) -> Result<Html<String>, PageProblem>
where
    F: FnOnce(&AppState) -> Result<maud::Markup, Problem> + Send + 'static,
{
    let display = state.display();
    blocking(state, work)
        .await
        .map(|m| Html(m.into_string()))
        .map_err(|e| e.on_page(display))
}

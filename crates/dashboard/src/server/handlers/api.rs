//! The JSON API: the same views the pages show, and the result files of runs as written.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Json, Response};
use forgetlab_runs::results::{
    Diagnostics, ForgetVerdict, LawReport, PasskeySummary, PerPositionReport,
};
use forgetlab_runs::{MetricRecord, RunDir};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{blocking, find_experiment, readable_run, summaries};
use crate::model::{
    self, ExperimentSummary, ExperimentView, RunDetail, experiment_view, read_guarded, run_detail,
    run_metrics,
};
use crate::server::problem::Problem;
use crate::server::query::{QueryMap, mitigation, number};
use crate::server::{AppState, Shared};

/// A fingerprint of the files behind a page: it changes when they do.
#[derive(Serialize)]
pub(in crate::server) struct Stamp {
    stamp: String,
}

pub(in crate::server) async fn root_stamp(
    State(state): State<Shared>,
) -> Result<Json<Stamp>, Problem> {
    blocking(&state, |s| {
        Ok(Json(Stamp {
            stamp: model::root_stamp(&s.root),
        }))
    })
    .await
}

pub(in crate::server) async fn experiments(
    State(state): State<Shared>,
) -> Result<Json<Vec<ExperimentSummary>>, Problem> {
    blocking(&state, |s| Ok(Json(summaries(s)))).await
}

pub(in crate::server) async fn experiment(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Json<ExperimentView>, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        Ok(Json(experiment_view(&s.root, &e)))
    })
    .await
}

pub(in crate::server) async fn experiment_stamp(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Json<Stamp>, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        Ok(Json(Stamp {
            stamp: model::experiment_stamp(&s.root, &e),
        }))
    })
    .await
}

pub(in crate::server) async fn law(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        let law: LawReport = result_file(s, &e.law(), "law.json")?;
        Ok(Json(law).into_response())
    })
    .await
}

pub(in crate::server) async fn run(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
) -> Result<Json<RunDetail>, Problem> {
    blocking(&state, move |s| {
        let (e, entry) = readable_run(s, &exp, &run)?;
        Ok(Json(run_detail(&s.root, &e, &entry)))
    })
    .await
}

pub(in crate::server) async fn run_stamp(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
) -> Result<Json<Stamp>, Problem> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        Ok(Json(Stamp {
            stamp: model::run_stamp(&entry.dir),
        }))
    })
    .await
}

#[derive(Serialize)]
pub(in crate::server) struct MetricsPage {
    /// Index of the first record returned (the `since` parameter).
    since: usize,
    /// Records in the file (pass as `since` to get only newer ones).
    total: usize,
    bad_lines: usize,
    records: Vec<MetricRecord>,
}

pub(in crate::server) async fn metrics(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Json<MetricsPage>, Problem> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        s.root.guard(&entry.dir.metrics(), "metrics.jsonl")?;
        let since = number::<usize>(&q, "since")?.unwrap_or(0);
        let metrics = run_metrics(&s.root, &entry.dir);
        Ok(Json(MetricsPage {
            since,
            total: metrics.records.len(),
            bad_lines: metrics.bad_lines,
            records: metrics.records.iter().skip(since).cloned().collect(),
        }))
    })
    .await
}

pub(in crate::server) async fn per_position(
    State(state): State<Shared>,
    UrlPath(names): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Json<PerPositionReport>, Problem> {
    run_result(&state, names, "per-position report", move |run| {
        Ok(run.per_position(&mitigation(&q)?))
    })
    .await
}

pub(in crate::server) async fn verdict(
    State(state): State<Shared>,
    UrlPath(names): UrlPath<(String, String)>,
) -> Result<Json<ForgetVerdict>, Problem> {
    run_result(&state, names, "verdict.json", |run| Ok(run.verdict())).await
}

pub(in crate::server) async fn passkey(
    State(state): State<Shared>,
    UrlPath(names): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Json<PasskeySummary>, Problem> {
    run_result(&state, names, "passkey summary", move |run| {
        Ok(run.passkey_dir(&mitigation(&q)?).join("summary.json"))
    })
    .await
}

pub(in crate::server) async fn diagnostics(
    State(state): State<Shared>,
    UrlPath(names): UrlPath<(String, String)>,
) -> Result<Json<Diagnostics>, Problem> {
    run_result(&state, names, "diagnostics.json", |run| {
        Ok(run.diagnostics())
    })
    .await
}

/// One JSON result file of run `(experiment, run)`: finds the run, then the file `locate`
/// names in its directory (after the run, so an unknown run is a 404 before a bad query is a
/// 400), and reads it with [`result_file`].
async fn run_result<T>(
    state: &Shared,
    (exp, run): (String, String),
    what: &'static str,
    locate: impl FnOnce(&RunDir) -> Result<PathBuf, Problem> + Send + 'static,
) -> Result<Json<T>, Problem>
where
    T: DeserializeOwned + Send + 'static,
{
    blocking(state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        let path = locate(&entry.dir)?;
        Ok(Json(result_file(s, &path, what)?))
    })
    .await
}

/// Reads one JSON result file: 404 when absent, 403 when it links out of the root, 422 with
/// the reason when unreadable (also when it is not a regular file).
fn result_file<T: DeserializeOwned>(
    state: &AppState,
    path: &Path,
    what: &str,
) -> Result<T, Problem> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(Problem::NotFound(format!("{what}: not written yet")));
    }
    state.root.guard(path, what)?;
    let mut problems = Vec::new();
    read_guarded(&state.root, path, &mut problems).ok_or_else(|| {
        Problem::Unreadable(
            problems
                .into_iter()
                .next()
                .unwrap_or_else(|| format!("{what}: unreadable")),
        )
    })
}

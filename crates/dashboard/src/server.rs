//! The HTTP server: routes, handlers and the blocking entry points.
//!
//! Every handler reads files on a blocking thread, never panics on what it reads, and answers
//! a bad request with a status and a one-line reason (JSON for `/api`, a page otherwise).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use forgetlab_plot::{
    DIAGNOSTICS_CHARTS, PositionQuantity, TrainingChart, TrainingOptions, no_data_chart,
};
use forgetlab_runs::results::{Diagnostics, ForgetVerdict, PasskeySummary, PerPositionReport};
use forgetlab_runs::{ExperimentDir, MetricRecord};
use serde::Serialize;

use crate::charts::{self, PositionQuery};
use crate::error::DashboardError;
use crate::model::{
    self, ExperimentSummary, ExperimentView, RunDetail, experiment_view, read_guarded, run_detail,
    run_metrics,
};
use crate::pages::{self, ExperimentCharts, RunCharts, RunFiles};
use crate::root::{Rejection, RunEntry, RunsRoot, is_plain_name};

/// How the dashboard is served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Directory of experiments (or one experiment directory).
    pub runs_root: PathBuf,
    /// Listen address; loopback by default.
    pub addr: SocketAddr,
    /// How often open pages poll for changes, in milliseconds.
    pub poll_ms: u64,
    /// Longest a request may take before it is answered 503 (whatever blocks its reads).
    pub request_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            runs_root: PathBuf::from("runs"),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            poll_ms: 2000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

struct AppState {
    root: RunsRoot,
    poll_ms: u64,
    request_timeout: Duration,
}

impl AppState {
    fn display(&self) -> String {
        self.root.path().display().to_string()
    }
}

type Shared = Arc<AppState>;

/// A request that cannot be answered, with its status and reason.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let status = match r {
            Rejection::BadName(_) => StatusCode::BAD_REQUEST,
            Rejection::NotFound(_) => StatusCode::NOT_FOUND,
            Rejection::Escapes(_) => StatusCode::FORBIDDEN,
            Rejection::NotRegular(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, r.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// An error shown as an HTML page.
struct PageError(ApiError, String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = pages::error_page(self.0.status.as_u16(), &self.0.message, &self.1);
        (self.0.status, Html(page.into_string())).into_response()
    }
}

/// Runs `work` on a blocking thread.
async fn blocking<T, F>(state: &Shared, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(|e| {
            tracing::error!("dashboard handler failed: {e}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })?
}

async fn page<F>(state: &Shared, work: F) -> Result<Html<String>, PageError>
where
    F: FnOnce(&AppState) -> Result<maud::Markup, ApiError> + Send + 'static,
{
    let display = state.display();
    blocking(state, work)
        .await
        .map(|m| Html(m.into_string()))
        .map_err(|e| PageError(e, display))
}

fn svg_response(svg: String) -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        svg,
    )
        .into_response()
}

fn html_fragment(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

#[derive(Serialize)]
struct Stamp {
    stamp: String,
}

type QueryMap = Query<HashMap<String, String>>;

fn flag(q: &HashMap<String, String>, key: &str, default: bool) -> Result<bool, ApiError> {
    match q.get(key).map(String::as_str) {
        None | Some("") => Ok(default),
        Some("1" | "true" | "on" | "yes") => Ok(true),
        Some("0" | "false" | "off" | "no") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key}: expected 1 or 0, got {other:?}"
        ))),
    }
}

fn number<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    match q.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{key}: not a number: {v:?}"))),
    }
}

fn mitigation(q: &HashMap<String, String>) -> Result<String, ApiError> {
    let m = q
        .get("mitigation")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| "none".to_string());
    if is_plain_name(&m) {
        Ok(m)
    } else {
        Err(ApiError::bad_request(format!(
            "mitigation: invalid label {m:?}"
        )))
    }
}

fn training_options(
    q: &HashMap<String, String>,
    which: TrainingChart,
) -> Result<TrainingOptions, ApiError> {
    let mut opts = TrainingOptions::for_chart(which);
    if let Some(s) = number::<f64>(q, "smooth")? {
        if !(0.0..1.0).contains(&s) {
            return Err(ApiError::bad_request(format!(
                "smooth: must be in [0, 1), got {s}"
            )));
        }
        opts.smoothing = s;
    }
    opts.log_x = flag(q, "logx", opts.log_x)?;
    opts.log_y = flag(q, "logy", opts.log_y)?;
    Ok(opts)
}

fn position_query(q: &HashMap<String, String>) -> Result<PositionQuery, ApiError> {
    let quantity = match q.get("quantity").map(String::as_str) {
        None | Some("") => PositionQuantity::Loss,
        Some(s) => PositionQuantity::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("quantity: expected loss or excess, got {s:?}"))
        })?,
    };
    Ok(PositionQuery {
        quantity,
        log_x: flag(q, "logx", false)?,
        mitigation: mitigation(q)?,
        prompt: q.get("prompt").filter(|p| !p.is_empty()).cloned(),
    })
}

/// Builds the dashboard's router over `runs_root` (which must exist).
pub fn router(runs_root: &Path) -> Result<Router, DashboardError> {
    router_with(&ServeOptions {
        runs_root: runs_root.to_path_buf(),
        ..ServeOptions::default()
    })
}

fn router_with(opts: &ServeOptions) -> Result<Router, DashboardError> {
    let root = RunsRoot::open(&opts.runs_root).map_err(|error| DashboardError::RunsRoot {
        path: opts.runs_root.clone(),
        error,
    })?;
    let state = Arc::new(AppState {
        root,
        poll_ms: opts.poll_ms.max(250),
        request_timeout: opts.request_timeout,
    });
    Ok(Router::new()
        .route("/", get(index))
        .route("/experiments/{exp}", get(experiment_page))
        .route("/runs/{exp}/{run}", get(run_page))
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .route("/fragments/index", get(fragment_index))
        .route(
            "/fragments/experiments/{exp}/{part}",
            get(fragment_experiment),
        )
        .route("/fragments/runs/{exp}/{run}/{part}", get(fragment_run))
        .route("/api/stamp", get(api_stamp))
        .route("/api/experiments", get(api_experiments))
        .route("/api/experiments/{exp}", get(api_experiment))
        .route("/api/experiments/{exp}/stamp", get(api_experiment_stamp))
        .route("/api/experiments/{exp}/law", get(api_law))
        .route("/api/runs/{exp}/{run}", get(api_run))
        .route("/api/runs/{exp}/{run}/stamp", get(api_run_stamp))
        .route("/api/runs/{exp}/{run}/metrics", get(api_metrics))
        .route("/api/runs/{exp}/{run}/per_position", get(api_per_position))
        .route("/api/runs/{exp}/{run}/verdict", get(api_verdict))
        .route("/api/runs/{exp}/{run}/passkey", get(api_passkey))
        .route("/api/runs/{exp}/{run}/diagnostics", get(api_diagnostics))
        .route("/svg/experiments/{exp}/law", get(svg_law))
        .route("/svg/experiments/{exp}/recall", get(svg_recall))
        .route(
            "/svg/experiments/{exp}/per_position",
            get(svg_experiment_position),
        )
        .route(
            "/svg/experiments/{exp}/training",
            get(svg_experiment_training),
        )
        .route(
            "/svg/runs/{exp}/{run}/training/{chart}",
            get(svg_run_training),
        )
        .route("/svg/runs/{exp}/{run}/per_position", get(svg_run_position))
        .route("/svg/runs/{exp}/{run}/passkey", get(svg_run_passkey))
        .route(
            "/svg/runs/{exp}/{run}/diagnostics/{name}",
            get(svg_run_diagnostics),
        )
        .route("/files/{exp}/{*path}", get(file))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            bounded_time,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state))
}

/// Headers on every response: no caching (pages are live), no MIME sniffing, and a content
/// security policy that only allows the dashboard's own script and styles.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
        ));
    response
}

/// Answers 503 when a request takes longer than the configured bound: a file system that
/// stalls (a hung network mount, a file someone else keeps locked) cannot hold a page or an
/// API call open forever. The blocking read may still finish in the background.
async fn bounded_time(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_string();
    let limit = state.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("{path}: no answer within {limit:?}; answered 503");
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{path}: no answer within {:.1} s (reading the runs directory stalled)",
                    limit.as_secs_f64()
                ),
            );
            if path.starts_with("/api/") {
                error.into_response()
            } else {
                PageError(error, state.display()).into_response()
            }
        }
    }
}

async fn not_found(State(state): State<Shared>, uri: Uri) -> Response {
    let message = format!("no such page: {}", uri.path());
    if uri.path().starts_with("/api/") {
        ApiError::not_found(message).into_response()
    } else {
        PageError(ApiError::not_found(message), state.display()).into_response()
    }
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/app.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
        .into_response()
}

// ---------------------------------------------------------------- reading helpers

fn experiments(state: &AppState) -> Vec<ExperimentSummary> {
    state
        .root
        .experiments()
        .iter()
        .map(|e| experiment_view(&state.root, e).summary())
        .collect()
}

fn experiment(state: &AppState, name: &str) -> Result<ExperimentDir, ApiError> {
    Ok(state.root.experiment(name)?)
}

fn run_entry(state: &AppState, exp: &ExperimentDir, name: &str) -> Result<RunEntry, ApiError> {
    Ok(state.root.run(exp, name)?)
}

/// A run that can be read (not a link out of the root).
fn readable_run(
    state: &AppState,
    exp: &str,
    run: &str,
) -> Result<(ExperimentDir, RunEntry), ApiError> {
    let e = experiment(state, exp)?;
    let r = run_entry(state, &e, run)?;
    Ok((e, r))
}

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

// ---------------------------------------------------------------- pages

async fn index(State(state): State<Shared>) -> Result<Html<String>, PageError> {
    page(&state, |s| {
        let list = experiments(s);
        Ok(pages::index_page(
            &list,
            &model::root_stamp(&s.root),
            s.poll_ms,
            &s.display(),
        ))
    })
    .await
}

async fn experiment_page(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Html<String>, PageError> {
    page(&state, move |s| {
        let e = experiment(s, &exp)?;
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

async fn run_page(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
) -> Result<Html<String>, PageError> {
    page(&state, move |s| {
        let e = experiment(s, &exp)?;
        let entry = match s.root.run(&e, &run) {
            Ok(entry) => entry,
            // A link out of the root is listed in the experiment: show it as broken.
            Err(Rejection::Escapes(_)) => s
                .root
                .runs(&e)
                .into_iter()
                .find(|r| r.name == run && r.escapes)
                .ok_or_else(|| ApiError::not_found(format!("run {run:?} not found")))?,
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

// ---------------------------------------------------------------- fragments

async fn fragment_index(State(state): State<Shared>) -> Result<Response, ApiError> {
    blocking(&state, |s| {
        Ok(html_fragment(pages::experiments_table(&experiments(s))))
    })
    .await
}

async fn fragment_experiment(
    State(state): State<Shared>,
    UrlPath((exp, part)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        let view = experiment_view(&s.root, &e);
        let markup = match part.as_str() {
            "grid" => pages::grid_fragment(&view),
            "runs" => pages::runs_table(&view),
            "law" => pages::law_fragment(&view),
            other => return Err(ApiError::not_found(format!("no fragment {other:?}"))),
        };
        Ok(html_fragment(markup))
    })
    .await
}

async fn fragment_run(
    State(state): State<Shared>,
    UrlPath((exp, run, part)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let (e, entry) = readable_run(s, &exp, &run)?;
        let detail = run_detail(&s.root, &e, &entry);
        let markup = match part.as_str() {
            "header" => pages::run_header(&detail),
            "verdict" => pages::verdict_fragment(&detail),
            other => return Err(ApiError::not_found(format!("no fragment {other:?}"))),
        };
        Ok(html_fragment(markup))
    })
    .await
}

// ---------------------------------------------------------------- JSON API

async fn api_stamp(State(state): State<Shared>) -> Result<Json<Stamp>, ApiError> {
    blocking(&state, |s| {
        Ok(Json(Stamp {
            stamp: model::root_stamp(&s.root),
        }))
    })
    .await
}

async fn api_experiments(
    State(state): State<Shared>,
) -> Result<Json<Vec<ExperimentSummary>>, ApiError> {
    blocking(&state, |s| Ok(Json(experiments(s)))).await
}

async fn api_experiment(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Json<ExperimentView>, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        Ok(Json(experiment_view(&s.root, &e)))
    })
    .await
}

async fn api_experiment_stamp(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Json<Stamp>, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        Ok(Json(Stamp {
            stamp: model::experiment_stamp(&s.root, &e),
        }))
    })
    .await
}

/// Reads one JSON result file: 404 when absent, 403 when it links out of the root, 422 with
/// the reason when unreadable (also when it is not a regular file).
fn result_file<T: serde::de::DeserializeOwned>(
    state: &AppState,
    path: &Path,
    what: &str,
) -> Result<T, ApiError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(ApiError::not_found(format!("{what}: not written yet")));
    }
    state.root.guard(path, what)?;
    let mut problems = Vec::new();
    read_guarded(&state.root, path, &mut problems).ok_or_else(|| {
        let message = problems
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("{what}: unreadable"));
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    })
}

async fn api_law(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        let law: forgetlab_runs::results::LawReport = result_file(s, &e.law(), "law.json")?;
        Ok(Json(law).into_response())
    })
    .await
}

async fn api_run(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
) -> Result<Json<RunDetail>, ApiError> {
    blocking(&state, move |s| {
        let (e, entry) = readable_run(s, &exp, &run)?;
        Ok(Json(run_detail(&s.root, &e, &entry)))
    })
    .await
}

async fn api_run_stamp(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
) -> Result<Json<Stamp>, ApiError> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        Ok(Json(Stamp {
            stamp: model::run_stamp(&entry.dir),
        }))
    })
    .await
}

#[derive(Serialize)]
struct MetricsPage {
    /// Index of the first record returned (the `since` parameter).
    since: usize,
    /// Records in the file (pass as `since` to get only newer ones).
    total: usize,
    bad_lines: usize,
    records: Vec<MetricRecord>,
}

async fn api_metrics(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Json<MetricsPage>, ApiError> {
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

async fn api_per_position(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Json<PerPositionReport>, ApiError> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        let m = mitigation(&q)?;
        Ok(Json(result_file(
            s,
            &entry.dir.per_position(&m),
            "per-position report",
        )?))
    })
    .await
}

async fn api_verdict(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
) -> Result<Json<ForgetVerdict>, ApiError> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        Ok(Json(result_file(s, &entry.dir.verdict(), "verdict.json")?))
    })
    .await
}

async fn api_passkey(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Json<PasskeySummary>, ApiError> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        let m = mitigation(&q)?;
        Ok(Json(result_file(
            s,
            &entry.dir.passkey_dir(&m).join("summary.json"),
            "passkey summary",
        )?))
    })
    .await
}

async fn api_diagnostics(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
) -> Result<Json<Diagnostics>, ApiError> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        Ok(Json(result_file(
            s,
            &entry.dir.diagnostics(),
            "diagnostics.json",
        )?))
    })
    .await
}

// ---------------------------------------------------------------- SVG charts

async fn svg_law(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        Ok(svg_response(charts::law(&experiment_view(&s.root, &e))))
    })
    .await
}

async fn svg_recall(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        Ok(svg_response(charts::recall(&experiment_view(&s.root, &e))))
    })
    .await
}

fn state_size_param(q: &HashMap<String, String>) -> Result<u64, ApiError> {
    number::<u64>(q, "state_size")?
        .ok_or_else(|| ApiError::bad_request("state_size: required (N_S in scalars)"))
}

async fn svg_experiment_position(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
    Query(q): QueryMap,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        let size = state_size_param(&q)?;
        let query = position_query(&q)?;
        let view = experiment_view(&s.root, &e);
        let entries = s.root.runs(&e);
        let runs = charts::runs_at_state_size(&view, &entries, size);
        let title = format!("Loss by position · N_S {}", pages::state_size_text(size));
        if runs.is_empty() {
            return Ok(svg_response(no_data_chart(
                &title,
                "no run has this state size",
            )));
        }
        Ok(svg_response(charts::position(
            &s.root, &runs, &title, &query,
        )))
    })
    .await
}

async fn svg_experiment_training(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
    Query(q): QueryMap,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        let size = state_size_param(&q)?;
        let which = match q.get("chart") {
            None => TrainingChart::Loss,
            Some(c) => TrainingChart::from_slug(c)
                .ok_or_else(|| ApiError::bad_request(format!("chart: unknown chart {c:?}")))?,
        };
        let mut opts = training_options(&q, which)?;
        let view = experiment_view(&s.root, &e);
        let entries = s.root.runs(&e);
        let runs = charts::runs_at_state_size(&view, &entries, size);
        opts.title = Some(format!(
            "Training {} · N_S {}",
            match which {
                TrainingChart::Loss => "loss",
                TrainingChart::LearningRate => "learning rate",
                TrainingChart::GradNorm => "gradient norm",
                TrainingChart::Throughput => "throughput",
            },
            pages::state_size_text(size)
        ));
        Ok(svg_response(charts::overlay_training(
            &s.root, &runs, which, &opts,
        )))
    })
    .await
}

async fn svg_run_training(
    State(state): State<Shared>,
    UrlPath((exp, run, chart)): UrlPath<(String, String, String)>,
    Query(q): QueryMap,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        let which = TrainingChart::from_slug(&chart)
            .ok_or_else(|| ApiError::not_found(format!("no training chart {chart:?}")))?;
        let opts = training_options(&q, which)?;
        Ok(svg_response(charts::run_training(
            &s.root, &entry, which, &opts,
        )))
    })
    .await
}

async fn svg_run_position(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let (e, entry) = readable_run(s, &exp, &run)?;
        let query = position_query(&q)?;
        let mut others = Vec::new();
        for name in q
            .get("compare")
            .map(|c| c.split(',').filter(|n| !n.is_empty()).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if name != run {
                others.push(run_entry(s, &e, name)?);
            }
        }
        let svg = if others.is_empty() {
            charts::position(
                &s.root,
                &[(&entry, entry.name.clone())],
                &format!("Loss by position · {}", entry.name),
                &query,
            )
        } else {
            let mut runs = vec![(&entry, entry.name.clone())];
            runs.extend(others.iter().map(|o| (o, o.name.clone())));
            charts::position(&s.root, &runs, "Loss by position · comparison", &query)
        };
        Ok(svg_response(svg))
    })
    .await
}

async fn svg_run_passkey(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        let m = mitigation(&q)?;
        let mut maps = charts::passkey(&s.root, &entry, &[m]);
        Ok(svg_response(
            maps.pop().map(|(_, svg)| svg).unwrap_or_default(),
        ))
    })
    .await
}

async fn svg_run_diagnostics(
    State(state): State<Shared>,
    UrlPath((exp, run, name)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        if !DIAGNOSTICS_CHARTS.contains(&name.as_str()) {
            return Err(ApiError::not_found(format!(
                "no diagnostics chart {name:?}"
            )));
        }
        let charts = charts::diagnostics(&s.root, &entry);
        let svg = charts
            .iter()
            .find(|(n, _)| *n == name)
            .or(charts.first())
            .map(|(_, svg)| svg.clone())
            .unwrap_or_else(|| no_data_chart("State diagnostics", "no diagnostics.json yet"));
        Ok(svg_response(svg))
    })
    .await
}

// ---------------------------------------------------------------- raw files

/// The largest file `/files` serves.
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "html" => "text/html; charset=utf-8",
        "toml" | "log" | "jsonl" | "txt" | "md" | "out" | "err" | "sh" | "sbatch" | "csv" => {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

async fn file(
    State(state): State<Shared>,
    UrlPath((exp, path)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    blocking(&state, move |s| {
        let e = experiment(s, &exp)?;
        let real = s.root.file(&e, &path)?;
        let len = std::fs::metadata(&real).map(|m| m.len()).unwrap_or(0);
        if len > MAX_FILE_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{path}: {len} bytes is more than the dashboard serves"),
            ));
        }
        let bytes = forgetlab_runs::read_regular(&real).map_err(|err| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{path}: {err}"))
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(&real)),
        );
        // Files written by runs are data: they may show images and styles, never run scripts.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'",
            ),
        );
        Ok((headers, bytes).into_response())
    })
    .await
}

// ---------------------------------------------------------------- entry points

fn runtime() -> Result<tokio::runtime::Runtime, DashboardError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dashboard")
        .enable_all()
        .build()
        .map_err(DashboardError::Runtime)
}

fn warn_if_exposed(addr: &SocketAddr) {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the dashboard listens on {addr}, which is reachable from other machines; it is \
             read-only but shows every run under the runs directory"
        );
    }
}

/// Serves the dashboard until Ctrl-C (blocking).
pub fn serve(opts: &ServeOptions) -> Result<(), DashboardError> {
    serve_with(opts, |addr| {
        tracing::info!(
            "dashboard at http://{addr}/ over {} (Ctrl-C to stop)",
            opts.runs_root.display()
        );
    })
}

/// Serves the dashboard until Ctrl-C (blocking), calling `ready` with the bound address once
/// it accepts connections.
pub fn serve_with(
    opts: &ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), DashboardError> {
    let app = router_with(opts)?;
    warn_if_exposed(&opts.addr);
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|error| DashboardError::Bind {
                addr: opts.addr,
                error,
            })?;
        ready(listener.local_addr().map_err(DashboardError::Runtime)?);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(DashboardError::Runtime)
    })
}

/// A dashboard serving in a background thread (tests, embedding). Stops when dropped.
pub struct RunningDashboard {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), DashboardError>>>,
}

impl RunningDashboard {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) -> Result<(), DashboardError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), DashboardError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(DashboardError::Runtime(std::io::Error::other(
                "the dashboard thread panicked",
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningDashboard {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Binds `opts.addr` now (so the port is known and errors surface here) and serves in a
/// background thread.
pub fn spawn(opts: &ServeOptions) -> Result<RunningDashboard, DashboardError> {
    let app = router_with(opts)?;
    warn_if_exposed(&opts.addr);
    let listener =
        std::net::TcpListener::bind(opts.addr).map_err(|error| DashboardError::Bind {
            addr: opts.addr,
            error,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(DashboardError::Runtime)?;
    let addr = listener.local_addr().map_err(DashboardError::Runtime)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rt = runtime()?;
    let thread = std::thread::Builder::new()
        .name("dashboard-server".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).map_err(DashboardError::Runtime)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .map_err(DashboardError::Runtime)
            })
        })
        .map_err(DashboardError::Runtime)?;
    Ok(RunningDashboard {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Instant;

    use super::*;

    /// A handler that outlives the bound is answered 503, in JSON under /api, within about
    /// the bound.
    #[test]
    fn a_request_that_takes_too_long_is_answered_503() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(AppState {
            root: RunsRoot::open(dir.path()).unwrap(),
            poll_ms: 1000,
            request_timeout: Duration::from_millis(300),
        });
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        }
        let app: Router = Router::new()
            .route("/api/slow", get(slow))
            .route("/slow", get(slow))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                bounded_time,
            ))
            .with_state(state);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let rt = runtime().unwrap();
        std::thread::spawn(move || {
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            })
        });
        for (path, kind) in [("/api/slow", "application/json"), ("/slow", "text/html")] {
            let started = Instant::now();
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).unwrap();
            assert!(started.elapsed() < Duration::from_secs(10), "{path}");
            assert!(reply.starts_with("HTTP/1.0 503"), "{path}: {reply}");
            assert!(reply.contains(kind) && reply.contains("no answer within 0.3 s"));
        }
    }
}

//! The HTTP server: the route table over the runs directory, and how it is started.
//!
//! Every handler reads files on a blocking thread, never panics on what it reads, and answers
//! a bad request with a status and a one-line reason (JSON for `/api`, a page otherwise); see
//! [`problem`] for why a status is a property of the problem.

mod files;
mod handlers;
mod layers;
mod lifecycle;
mod problem;
mod query;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

pub use lifecycle::{RunningDashboard, serve, serve_with, spawn};

use crate::error::DashboardError;
use crate::root::RunsRoot;
use handlers::{api, fragments, pages, svg};

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
        .route("/", get(pages::index))
        .route("/experiments/{exp}", get(pages::experiment))
        .route("/runs/{exp}/{run}", get(pages::run))
        .route("/static/app.css", get(files::css))
        .route("/static/app.js", get(files::js))
        .route("/fragments/index", get(fragments::index))
        .route(
            "/fragments/experiments/{exp}/{part}",
            get(fragments::experiment),
        )
        .route("/fragments/runs/{exp}/{run}/{part}", get(fragments::run))
        .route("/api/stamp", get(api::root_stamp))
        .route("/api/experiments", get(api::experiments))
        .route("/api/experiments/{exp}", get(api::experiment))
        .route("/api/experiments/{exp}/stamp", get(api::experiment_stamp))
        .route("/api/experiments/{exp}/law", get(api::law))
        .route("/api/runs/{exp}/{run}", get(api::run))
        .route("/api/runs/{exp}/{run}/stamp", get(api::run_stamp))
        .route("/api/runs/{exp}/{run}/metrics", get(api::metrics))
        .route("/api/runs/{exp}/{run}/per_position", get(api::per_position))
        .route("/api/runs/{exp}/{run}/verdict", get(api::verdict))
        .route("/api/runs/{exp}/{run}/passkey", get(api::passkey))
        .route("/api/runs/{exp}/{run}/diagnostics", get(api::diagnostics))
        .route("/svg/experiments/{exp}/law", get(svg::law))
        .route("/svg/experiments/{exp}/recall", get(svg::recall))
        .route(
            "/svg/experiments/{exp}/per_position",
            get(svg::experiment_position),
        )
        .route(
            "/svg/experiments/{exp}/training",
            get(svg::experiment_training),
        )
        .route(
            "/svg/runs/{exp}/{run}/training/{chart}",
            get(svg::run_training),
        )
        .route("/svg/runs/{exp}/{run}/per_position", get(svg::run_position))
        .route("/svg/runs/{exp}/{run}/passkey", get(svg::run_passkey))
        .route(
            "/svg/runs/{exp}/{run}/diagnostics/{name}",
            get(svg::run_diagnostics),
        )
        .route("/files/{exp}/{*path}", get(files::file))
        .fallback(layers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            layers::bounded_time,
        ))
        .layer(axum::middleware::map_response(layers::security_headers))
        .with_state(state))
}

//! Files served as they are: the dashboard's own script and styles, and any regular file of
//! an experiment under `/files`, as data that may never run as a script in the browser.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::handlers::{blocking, find_experiment};
use super::problem::Problem;

pub(super) async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/app.css"),
    )
        .into_response()
}

pub(super) async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
        .into_response()
}

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

pub(super) async fn file(
    State(state): State<Shared>,
    UrlPath((exp, path)): UrlPath<(String, String)>,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        let real = s.root.file(&e, &path)?;
        let len = std::fs::metadata(&real).map(|m| m.len()).unwrap_or(0);
        if len > MAX_FILE_BYTES {
            return Err(Problem::TooLarge(format!(
                "{path}: {len} bytes is more than the dashboard serves"
            )));
        }
        let bytes = forgetlab_runs::read_regular(&real)
            .map_err(|err| Problem::Unreadable(format!("{path}: {err}")))?;
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

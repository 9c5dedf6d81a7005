//! What applies to every response: security headers, the request time bound, and the answer
//! for an unknown URL (JSON under `/api`, a page elsewhere, like every other problem).

use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::problem::Problem;

/// Headers on every response: no caching (pages are live), no MIME sniffing, and a content
/// security policy that only allows the dashboard's own script and styles.
pub(super) async fn security_headers(mut response: Response) -> Response {
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
pub(super) async fn bounded_time(
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
            let problem = Problem::Stalled(format!(
                "{path}: no answer within {:.1} s (reading the runs directory stalled)",
                limit.as_secs_f64()
            ));
            answer(problem, &path, &state)
        }
    }
}

pub(super) async fn not_found(State(state): State<Shared>, uri: Uri) -> Response {
    let problem = Problem::NotFound(format!("no such page: {}", uri.path()));
    answer(problem, uri.path(), &state)
}

/// `problem` in the form the URL's client reads: JSON under `/api`, a page elsewhere.
fn answer(problem: Problem, path: &str, state: &Shared) -> Response {
    if path.starts_with("/api/") {
        problem.into_response()
    } else {
        problem.on_page(state.display()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use axum::Router;
    use axum::routing::get;

    use super::*;
    use crate::root::RunsRoot;
    use crate::server::AppState;
    use crate::server::lifecycle::runtime;

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

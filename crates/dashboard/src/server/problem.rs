//! Why a request cannot be answered. Each kind of problem carries its own HTTP status, so a
//! status is chosen where the problem is recognised (a rejected name, a missing file, a file
//! that will not parse) and never guessed afterwards from the wording of a message.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json, Response};

use crate::pages;
use crate::root::Rejection;

/// A request that cannot be answered, with the one-line reason shown to the client.
#[derive(Debug)]
pub(super) enum Problem {
    /// A name or query parameter that is malformed or out of range.
    BadRequest(String),
    /// A path that resolves outside the runs root.
    Forbidden(String),
    /// No such page, experiment, run, chart or file (yet).
    NotFound(String),
    /// A file larger than the dashboard serves.
    TooLarge(String),
    /// A file that exists but cannot be read as what it should be (malformed, not a regular
    /// file).
    Unreadable(String),
    /// No answer within the request time bound.
    Stalled(String),
    /// The handler itself failed (a panic on its blocking thread); details go to the log.
    Internal,
}

impl Problem {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Problem::BadRequest(_) => StatusCode::BAD_REQUEST,
            Problem::Forbidden(_) => StatusCode::FORBIDDEN,
            Problem::NotFound(_) => StatusCode::NOT_FOUND,
            Problem::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::Unreadable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::Stalled(_) => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(super) fn message(&self) -> &str {
        match self {
            Problem::BadRequest(m)
            | Problem::Forbidden(m)
            | Problem::NotFound(m)
            | Problem::TooLarge(m)
            | Problem::Unreadable(m)
            | Problem::Stalled(m) => m,
            Problem::Internal => "internal error",
        }
    }

    /// This problem as an HTML page (for pages) rather than JSON (for `/api` and the rest).
    pub(super) fn on_page(self, runs_root: String) -> PageProblem {
        PageProblem {
            problem: self,
            runs_root,
        }
    }
}

impl From<Rejection> for Problem {
    fn from(r: Rejection) -> Self {
        let message = r.to_string();
        match r {
            Rejection::BadName(_) => Problem::BadRequest(message),
            Rejection::NotFound(_) => Problem::NotFound(message),
            Rejection::Escapes(_) => Problem::Forbidden(message),
            Rejection::NotRegular(_) => Problem::Unreadable(message),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(serde_json::json!({ "error": self.message() })),
        )
            .into_response()
    }
}

/// A problem shown as an HTML page, naming the runs directory the dashboard serves.
pub(super) struct PageProblem {
    problem: Problem,
    runs_root: String,
}

impl IntoResponse for PageProblem {
    fn into_response(self) -> Response {
        let status = self.problem.status();
        let page = pages::error_page(status.as_u16(), self.problem.message(), &self.runs_root);
        (status, Html(page.into_string())).into_response()
    }
}

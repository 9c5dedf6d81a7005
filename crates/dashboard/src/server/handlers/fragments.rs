//! Parts of pages as HTML, for the script that swaps in what changed while runs train.

use axum::extract::{Path as UrlPath, State};
use axum::response::{Html, IntoResponse, Response};

use super::{blocking, find_experiment, readable_run, summaries};
use crate::model::{experiment_view, run_detail};
use crate::pages;
use crate::server::Shared;
use crate::server::problem::Problem;

pub(in crate::server) async fn index(State(state): State<Shared>) -> Result<Response, Problem> {
    blocking(&state, |s| {
        Ok(html_fragment(pages::experiments_table(&summaries(s))))
    })
    .await
}

pub(in crate::server) async fn experiment(
    State(state): State<Shared>,
    UrlPath((exp, part)): UrlPath<(String, String)>,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        let view = experiment_view(&s.root, &e);
        let markup = match part.as_str() {
            "grid" => pages::grid_fragment(&view),
            "runs" => pages::runs_table(&view),
            "law" => pages::law_fragment(&view),
            other => return Err(Problem::NotFound(format!("no fragment {other:?}"))),
        };
        Ok(html_fragment(markup))
    })
    .await
}

pub(in crate::server) async fn run(
    State(state): State<Shared>,
    UrlPath((exp, run, part)): UrlPath<(String, String, String)>,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let (e, entry) = readable_run(s, &exp, &run)?;
        let detail = run_detail(&s.root, &e, &entry);
        let markup = match part.as_str() {
            "header" => pages::run_header(&detail),
            "verdict" => pages::verdict_fragment(&detail),
            other => return Err(Problem::NotFound(format!("no fragment {other:?}"))),
        };
        Ok(html_fragment(markup))
    })
    .await
}

fn html_fragment(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

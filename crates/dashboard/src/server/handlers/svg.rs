//! Charts as SVG, drawn on the server by `forgetlab-plot` with the options of the query.

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use forgetlab_plot::{DIAGNOSTICS_CHARTS, TrainingChart, no_data_chart};

use super::{blocking, find_experiment, readable_run, run_entry};
use crate::charts;
use crate::model::experiment_view;
use crate::pages;
use crate::server::Shared;
use crate::server::problem::Problem;
use crate::server::query::{QueryMap, mitigation, position_query, state_size, training_options};

pub(in crate::server) async fn law(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        Ok(svg_response(charts::law(&experiment_view(&s.root, &e))))
    })
    .await
}

pub(in crate::server) async fn recall(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        Ok(svg_response(charts::recall(&experiment_view(&s.root, &e))))
    })
    .await
}

pub(in crate::server) async fn experiment_position(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
    Query(q): QueryMap,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        let size = state_size(&q)?;
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

pub(in crate::server) async fn experiment_training(
    State(state): State<Shared>,
    UrlPath(exp): UrlPath<String>,
    Query(q): QueryMap,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let e = find_experiment(s, &exp)?;
        let size = state_size(&q)?;
        let which = match q.get("chart") {
            None => TrainingChart::Loss,
            Some(c) => TrainingChart::from_slug(c)
                .ok_or_else(|| Problem::BadRequest(format!("chart: unknown chart {c:?}")))?,
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

pub(in crate::server) async fn run_training(
    State(state): State<Shared>,
    UrlPath((exp, run, chart)): UrlPath<(String, String, String)>,
    Query(q): QueryMap,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        let which = TrainingChart::from_slug(&chart)
            .ok_or_else(|| Problem::NotFound(format!("no training chart {chart:?}")))?;
        let opts = training_options(&q, which)?;
        Ok(svg_response(charts::run_training(
            &s.root, &entry, which, &opts,
        )))
    })
    .await
}

pub(in crate::server) async fn run_position(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Response, Problem> {
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

pub(in crate::server) async fn run_passkey(
    State(state): State<Shared>,
    UrlPath((exp, run)): UrlPath<(String, String)>,
    Query(q): QueryMap,
) -> Result<Response, Problem> {
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

pub(in crate::server) async fn run_diagnostics(
    State(state): State<Shared>,
    UrlPath((exp, run, name)): UrlPath<(String, String, String)>,
) -> Result<Response, Problem> {
    blocking(&state, move |s| {
        let (_, entry) = readable_run(s, &exp, &run)?;
        if !DIAGNOSTICS_CHARTS.contains(&name.as_str()) {
            return Err(Problem::NotFound(format!("no diagnostics chart {name:?}")));
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

fn svg_response(svg: String) -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        svg,
    )
        .into_response()
}

//! The handlers, one module per kind of answer (pages, fragments, JSON, SVG), and what they
//! share: reading on a blocking thread and finding an experiment or run by its URL names.

pub(super) mod api;
pub(super) mod fragments;
pub(super) mod pages;
pub(super) mod svg;

use forgetlab_runs::ExperimentDir;

use super::problem::Problem;
use super::{AppState, Shared};
use crate::model::{ExperimentSummary, experiment_view};
use crate::root::RunEntry;

/// Runs `work` on a blocking thread.
pub(super) async fn blocking<T, F>(state: &Shared, work: F) -> Result<T, Problem>
where
    T: Send + 'static,
    F: FnOnce(&AppState) -> Result<T, Problem> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(|e| {
            tracing::error!("dashboard handler failed: {e}");
            Problem::Internal
        })?
}

pub(super) fn summaries(state: &AppState) -> Vec<ExperimentSummary> {
    state
        .root
        .experiments()
        .iter()
        .map(|e| experiment_view(&state.root, e).summary())
        .collect()
}

pub(super) fn find_experiment(state: &AppState, name: &str) -> Result<ExperimentDir, Problem> {
    Ok(state.root.experiment(name)?)
}

pub(super) fn run_entry(
    state: &AppState,
    exp: &ExperimentDir,
    name: &str,
) -> Result<RunEntry, Problem> {
    Ok(state.root.run(exp, name)?)
}

/// A run that can be read (not a link out of the root).
pub(super) fn readable_run(
    state: &AppState,
    exp: &str,
    run: &str,
) -> Result<(ExperimentDir, RunEntry), Problem> {
    let e = find_experiment(state, exp)?;
    let r = run_entry(state, &e, run)?;
    Ok((e, r))
}

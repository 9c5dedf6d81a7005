//! `forgetlab sweep plan`: what an experiment will run, before anything runs. Two stable
//! formats: an aligned table for people, and one JSON object per line per run for scripts.

use std::path::Path;

use serde::Serialize;

use crate::experiment::{Experiment, PlannedRun};
use crate::table::render;

/// One line of `sweep plan --json`.
#[derive(Debug, Clone, Serialize)]
pub struct PlanLine<'a> {
    pub experiment: &'a str,
    /// Run (directory) name.
    pub name: &'a str,
    /// The run directory under the given runs root.
    pub run_dir: String,
    /// N_S in scalars (SSM states plus convolution caches).
    pub n_s: u64,
    pub state_size: forgetlab_runs::StateSize,
    pub params: u64,
    /// The varied keys' values in this run.
    pub point: serde_json::Map<String, serde_json::Value>,
    /// The full resolved run config; `config.toml` holds it with data paths made absolute
    /// against the working directory. JSON has no infinity: an unbounded `dt_limit` end is
    /// `null`.
    pub config: serde_json::Value,
}

/// The JSON form of one planned run.
pub fn plan_line<'a>(
    experiment: &'a Experiment,
    run: &'a PlannedRun,
    runs_root: &Path,
) -> PlanLine<'a> {
    let state_size = run.config.model.state_size();
    PlanLine {
        experiment: &experiment.meta.name,
        name: &run.name,
        run_dir: experiment
            .dir(runs_root)
            .run(&run.name)
            .root()
            .display()
            .to_string(),
        n_s: state_size.total,
        state_size,
        params: run.config.model.param_count(),
        point: run
            .point
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect(),
        config: serde_json::to_value(&run.config).unwrap_or(serde_json::Value::Null),
    }
}

/// `sweep plan --json`: one object per line per run, in plan order.
pub fn plan_json(experiment: &Experiment, runs_root: &Path) -> String {
    let mut out = String::new();
    for run in &experiment.runs {
        let line = plan_line(experiment, run, runs_root);
        out.push_str(&serde_json::to_string(&line).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// `sweep plan`: a summary line, the axes, and a table of runs.
pub fn plan_text(experiment: &Experiment, runs_root: &Path) -> String {
    let mut out = format!(
        "experiment {} ({}): {} run(s) in {}\n",
        experiment.meta.name,
        experiment.path.display(),
        experiment.runs.len(),
        experiment.dir(runs_root).root().display()
    );
    if let Some(description) = &experiment.meta.description {
        out.push_str(&format!("  {}\n", description.trim()));
    }
    for axis in &experiment.axes {
        let values: Vec<String> = axis.values.iter().map(inline).collect();
        out.push_str(&format!("axis {} = [{}]\n", axis.key, values.join(", ")));
    }
    let explicit = experiment
        .runs
        .iter()
        .filter(|r| matches!(r.origin, crate::experiment::RunOrigin::Point { .. }))
        .count();
    if explicit > 0 {
        out.push_str(&format!("explicit points: {explicit}\n"));
    }
    out.push('\n');
    let header = [
        "run",
        "N_S",
        "params",
        "T_train",
        "segment",
        "tokens/step",
        "tokens",
        "steps",
        "device",
    ];
    let rows: Vec<Vec<String>> = experiment
        .runs
        .iter()
        .map(|r| {
            let t = &r.config.train;
            vec![
                r.name.clone(),
                r.config.model.state_size().total.to_string(),
                r.config.model.param_count().to_string(),
                t.seq_len.to_string(),
                t.segment_len().to_string(),
                t.tokens_per_step.to_string(),
                t.total_tokens.to_string(),
                t.total_steps().to_string(),
                t.device.clone(),
            ]
        })
        .collect();
    out.push_str(&render(&header, &rows));
    let tokens: u64 = experiment
        .runs
        .iter()
        .map(|r| r.config.train.total_tokens)
        .sum();
    out.push_str(&format!(
        "\ntotal: {} run(s), {} training tokens\n",
        experiment.runs.len(),
        tokens
    ));
    out
}

fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Table(t) => {
            let parts: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        toml::Value::Array(a) => {
            format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

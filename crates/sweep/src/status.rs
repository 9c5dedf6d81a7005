//! `forgetlab sweep status`: where every run of an experiment stands, read from its files
//! ([`RunSummary`] never fails on a broken or half-written run).

use std::path::Path;

use forgetlab_runs::{ExperimentDir, RunSummary};

use crate::error::SweepError;
use crate::experiment::{Experiment, ExperimentRef};
use crate::table::render;

/// One row of the status table.
#[derive(Debug, Clone)]
pub struct StatusRow {
    pub summary: RunSummary,
    /// In the plan of the experiment file (always true when listing a directory).
    pub planned: bool,
    /// The run directory exists.
    pub created: bool,
}

/// Every run of an experiment: planned runs in plan order (when given a file), then any other
/// run directory found.
pub fn status_rows(
    reference: &ExperimentRef,
    runs_root: &Path,
) -> Result<(ExperimentDir, Vec<StatusRow>), SweepError> {
    let (dir, experiment): (ExperimentDir, Option<Experiment>) = match reference {
        ExperimentRef::File(_) => {
            let experiment: Experiment = reference.load()?;
            (experiment.dir(runs_root), Some(experiment))
        }
        ExperimentRef::Dir(path) => (ExperimentDir::new(path), None),
    };
    let planned: Vec<String> = experiment
        .iter()
        .flat_map(|e| e.runs.iter().map(|r| r.name.clone()))
        .collect();
    let existing = dir.runs();
    let mut rows = Vec::new();
    for name in &planned {
        let run = dir.run(name);
        let created = run.exists();
        let mut summary = RunSummary::read(&run);
        if !created {
            // Not created yet: show what the plan says.
            summary.problems.clear();
            if let Some(planned) = experiment.as_ref().and_then(|e| e.run(name)) {
                let c = &planned.config;
                summary.state_size = Some(c.model.state_size().total);
                summary.seq_len = Some(c.train.seq_len);
                summary.d_state = Some(c.model.d_state);
                summary.n_layer = Some(c.model.n_layer);
                summary.d_model = Some(c.model.d_model);
                summary.seed = Some(c.seed);
                summary.total_steps = Some(c.train.total_steps());
            }
        }
        rows.push(StatusRow {
            summary,
            planned: true,
            created,
        });
    }
    for run in existing {
        if !planned.contains(&run.name()) {
            rows.push(StatusRow {
                summary: RunSummary::read(&run),
                planned: planned.is_empty(),
                created: true,
            });
        }
    }
    Ok((dir, rows))
}

/// The status table, with a count of runs per state below it.
pub fn status_text(dir: &ExperimentDir, rows: &[StatusRow]) -> String {
    let header = [
        "run", "N_S", "T_train", "state", "step", "loss", "val_loss", "verdict", "note",
    ];
    let fmt_loss = |l: Option<f64>| l.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let s = &row.summary;
            let state = if !row.created {
                "not created".to_string()
            } else {
                s.state
                    .map(|st| st.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into())
            };
            let step = match (s.step, s.total_steps) {
                (Some(a), Some(b)) => format!("{a}/{b}"),
                (None, Some(b)) => format!("-/{b}"),
                _ => "-".into(),
            };
            let mut verdict = match (s.has_verdict, s.forgets) {
                (false, _) => "-",
                (true, Some(true)) => "forgets",
                (true, Some(false)) => "fails",
                (true, None) => "undetermined",
            }
            .to_string();
            if let Some((rise, low, high)) = s.effect {
                verdict.push_str(&format!(" {rise:+.2} [{low:+.2}, {high:+.2}]"));
            }
            let mut notes = Vec::new();
            if !row.planned {
                notes.push("not in the plan".to_string());
            }
            if let Some(reason) = &s.reason {
                notes.push(reason.clone());
            }
            notes.extend(s.problems.iter().cloned());
            vec![
                s.name.clone(),
                s.state_size
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.seq_len
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                state,
                step,
                fmt_loss(s.last_loss),
                fmt_loss(s.last_val_loss),
                verdict,
                notes.join("; "),
            ]
        })
        .collect();
    let mut out = format!("{} ({} runs)\n", dir.root().display(), rows.len());
    out.push_str(&render(&header, &table));
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for row in &table {
        *counts.entry(row[3].clone()).or_default() += 1;
    }
    let evaluated = rows.iter().filter(|r| r.summary.has_verdict).count();
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out.push_str(&format!("\n{}; {} evaluated", parts.join(", "), evaluated));
    if dir.law().exists() {
        out.push_str(&format!("; law: {}", dir.law().display()));
    }
    out.push('\n');
    out
}

/// `sweep status --json`: one [`RunSummary`] per line.
pub fn status_json(rows: &[StatusRow]) -> String {
    rows.iter()
        .map(|r| serde_json::to_string(&r.summary).unwrap_or_default() + "\n")
        .collect()
}

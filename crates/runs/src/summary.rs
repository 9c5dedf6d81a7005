//! A tolerant, read-only view of a run directory for tables and dashboards. Runs are read
//! while they are being written, and some are broken; a summary never fails, it records what
//! it could not read.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::layout::RunDir;
use crate::metrics::{MetricKind, MetricRecord, read_metrics};
use crate::results::ForgetVerdict;
use crate::status::{RunState, RunStatus};

/// Whether `run` has a `verdict.json` written by the current criterion (a version-1 file, or
/// one that cannot be read, needs the run evaluated again).
pub fn has_current_verdict(run: &RunDir) -> bool {
    read_json::<ForgetVerdict>(&run.verdict(), &mut Vec::new()).is_some_and(|v| v.is_current())
}

/// What the tables and dashboards show for one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub state: Option<RunState>,
    pub step: Option<u64>,
    pub total_steps: Option<u64>,
    pub seq_len: Option<usize>,
    pub state_size: Option<u64>,
    /// The recurrent mixer (`mamba2`, `gated-deltanet`).
    #[serde(default)]
    pub mixer: Option<String>,
    /// Mamba-2's d_state (none for other mixers).
    pub d_state: Option<usize>,
    pub n_layer: Option<usize>,
    pub d_model: Option<usize>,
    pub seed: Option<u64>,
    pub last_loss: Option<f64>,
    pub last_val_loss: Option<f64>,
    pub forgets: Option<bool>,
    pub has_verdict: bool,
    /// The verdict's deciding rise past T_train and its interval `(rise, low, high)`, nats.
    #[serde(default)]
    pub effect: Option<(f64, f64, f64)>,
    pub reason: Option<String>,
    /// Files that exist but could not be parsed, with the reason.
    pub problems: Vec<String>,
}

impl RunSummary {
    /// Reads whatever is readable in `run`.
    pub fn read(run: &RunDir) -> Self {
        let mut problems = Vec::new();
        let config = read_config(&run.config(), &mut problems);
        let status = read_json(&run.status(), &mut problems).map(RunStatus::seen_from_here);
        let mut verdict: Option<ForgetVerdict> = read_json(&run.verdict(), &mut problems);
        if verdict.as_ref().is_some_and(|v| !v.is_current()) {
            problems.push(
                "verdict.json: written by the version-1 criterion; `forgetlab eval all` (or \
                 `forgetlab sweep finish`) regenerates it"
                    .to_string(),
            );
            verdict = None;
        }
        let (records, bad_lines) = read_metrics(&run.metrics()).unwrap_or_else(|e| {
            problems.push(format!("metrics.jsonl: {e}"));
            (Vec::new(), 0)
        });
        if bad_lines > 0 {
            problems.push(format!("metrics.jsonl: {bad_lines} unreadable line(s)"));
        }
        let last = |kind: MetricKind| -> Option<&MetricRecord> {
            records.iter().rev().find(|r| r.kind == kind)
        };
        RunSummary {
            name: run.name(),
            state: status.as_ref().map(|s| s.state),
            step: status.as_ref().map(|s| s.step),
            total_steps: status
                .as_ref()
                .map(|s| s.total_steps)
                .or_else(|| config.as_ref().map(|c| c.train.total_steps())),
            seq_len: config.as_ref().map(|c| c.train.seq_len),
            state_size: config.as_ref().map(|c| c.model.state_size().total),
            mixer: config.as_ref().map(|c| c.model.mixer.name().to_string()),
            d_state: config
                .as_ref()
                .filter(|c| c.model.mixer.is_mamba2())
                .map(|c| c.model.d_state),
            n_layer: config.as_ref().map(|c| c.model.n_layer),
            d_model: config.as_ref().map(|c| c.model.d_model),
            seed: config.as_ref().map(|c| c.seed),
            last_loss: last(MetricKind::Train).map(|r| r.loss),
            last_val_loss: last(MetricKind::Val).map(|r| r.loss),
            forgets: verdict.as_ref().and_then(|v| v.forgets),
            has_verdict: verdict.is_some(),
            effect: verdict.as_ref().and_then(ForgetVerdict::effect),
            reason: status.and_then(|s| s.reason),
            problems,
        }
    }

    /// True when something in the directory could not be read.
    pub fn is_broken(&self) -> bool {
        !self.problems.is_empty()
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_config(path: &Path, problems: &mut Vec<String>) -> Option<RunConfig> {
    if !path.exists() {
        problems.push("config.toml: missing".to_string());
        return None;
    }
    match RunConfig::load(path) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(format!("config.toml: {e}"));
            None
        }
    }
}

/// Reads a JSON file if it exists; a parse failure, or a path that is not a regular file
/// (never opened), is recorded, not raised.
pub fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    problems: &mut Vec<String>,
) -> Option<T> {
    let bytes = match crate::regular::read_regular(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(format!("{}: {e}", file_name(path)));
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{}: {e}", file_name(path)));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verdict of the version-1 criterion (no `version`, its own fields) still parses, is
    /// marked outdated, and does not count as a verdict: the run gets evaluated again.
    #[test]
    fn old_criterion_verdicts_are_recognised_and_not_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path().join("r"));
        std::fs::create_dir_all(run.eval()).unwrap();
        let old = r#"{"run":"r","seq_len":16,"state_size":100,"forgets":true,"decided_on":"excess",
            "prompt":"text","epsilon":0.05,"max_slope_per_1k":0.05,
            "raw":{"curve":"raw","in_length_mean":3.0,"beyond_max":3.01,"beyond_argmax":64,
                   "threshold":3.05,"slope_per_1k":0.0,"passes_max":true,"passes_slope":true,
                   "forgets":true},
            "memory":{"per_head":[[5.0]],"max":5.0,"median":5.0,"any_beyond_train_len":false},
            "note":"old"}"#;
        std::fs::write(run.verdict(), old).unwrap();
        let parsed: ForgetVerdict = serde_json::from_str(old).expect("old verdicts parse");
        assert_eq!(parsed.version, 1);
        assert!(!parsed.is_current());
        assert!(parsed.memory.as_ref().unwrap().per_head_max.is_empty());
        assert!(!has_current_verdict(&run));
        let summary = RunSummary::read(&run);
        assert!(!summary.has_verdict && summary.forgets.is_none());
        assert!(
            summary
                .problems
                .iter()
                .any(|p| p.contains("version-1 criterion")),
            "{:?}",
            summary.problems
        );
        let mut current = parsed;
        current.version = crate::results::VERDICT_VERSION;
        std::fs::write(run.verdict(), serde_json::to_vec(&current).unwrap()).unwrap();
        assert!(has_current_verdict(&run));
        let summary = RunSummary::read(&run);
        assert!(summary.has_verdict && summary.forgets == Some(true));
        assert!(summary.effect.is_none(), "no decision recorded, no effect");
    }
}

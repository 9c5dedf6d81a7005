//! `metrics.jsonl`: one JSON object per logged training step or validation, appended as the
//! run goes. Readers tolerate a torn last line (a crash mid-append).

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Whether a record is a training step or a validation pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Train,
    Val,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub kind: MetricKind,
    /// Optimizer step (1-based: the step just finished).
    pub step: u64,
    /// Training tokens consumed after this step.
    pub tokens: u64,
    /// Mean next-token cross-entropy in nats (train: over the logged interval's last step).
    pub loss: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Global gradient norm before clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Training wall time so far, excluding time before a resume.
    pub elapsed_s: f64,
}

/// Every complete record of a metrics file, plus the number of unreadable lines.
pub fn read_metrics(path: &Path) -> std::io::Result<(Vec<MetricRecord>, usize)> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    let mut bad = 0;
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(r) => records.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((records, bad))
}

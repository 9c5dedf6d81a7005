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

/// Every complete record of a metrics file, plus the number of unreadable lines. Lines are
/// read as bytes, so one line that is not UTF-8 (or not a record) is counted and skipped
/// while the records around it are kept. A path that is not a regular file is refused
/// unopened ([`crate::NotRegularFile`]); a missing file has no records.
pub fn read_metrics(path: &Path) -> std::io::Result<(Vec<MetricRecord>, usize)> {
    let file = match crate::regular::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut bad = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice(&line) {
            Ok(r) => records.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((records, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_is_not_utf8_is_counted_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let good = |step: u64| {
            format!(
                "{{\"kind\":\"train\",\"step\":{step},\"tokens\":{},\"loss\":1.5,\"elapsed_s\":0.1}}\n",
                step * 8
            )
        };
        let mut bytes = good(1).into_bytes();
        bytes.extend_from_slice(b"{\"kind\":\"train\",\"step\":\xff\xfe}\n");
        bytes.extend_from_slice(good(2).as_bytes());
        bytes.extend_from_slice(b"\n{\"torn\":");
        std::fs::write(&path, bytes).unwrap();
        let (records, bad) = read_metrics(&path).unwrap();
        assert_eq!(records.iter().map(|r| r.step).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(bad, 2, "the non-UTF-8 line and the torn last line");
    }
}

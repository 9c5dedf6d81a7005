//! Parsed run files, reused while the files are unchanged.
//!
//! An open page refreshes every part of itself whenever any file behind it changes, which
//! during training is every few seconds; without a cache every refresh would parse every run's
//! whole metrics log again, on a machine that is busy training. Entries are keyed by path and
//! checked against the file's size and modification time (or the run's stamp), so a reader
//! never sees stale data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use forgetlab_runs::MetricRecord;

use crate::model::RunRow;

/// The records of a metrics log and the number of lines that could not be parsed.
#[derive(Debug, Default)]
pub struct Metrics {
    pub records: Vec<MetricRecord>,
    pub bad_lines: usize,
}

type FileKey = (u64, Option<SystemTime>);

#[derive(Debug, Default)]
pub struct Cache {
    rows: Mutex<HashMap<PathBuf, (String, RunRow)>>,
    metrics: Mutex<HashMap<PathBuf, (FileKey, Arc<Metrics>)>>,
}

fn file_key(path: &Path) -> Option<FileKey> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

impl Cache {
    /// The row of the run at `dir`, recomputed when `stamp` differs from the cached one.
    pub fn row(&self, dir: &Path, stamp: &str, compute: impl FnOnce() -> RunRow) -> RunRow {
        if let Ok(rows) = self.rows.lock()
            && let Some((cached, row)) = rows.get(dir)
            && cached == stamp
        {
            return row.clone();
        }
        let row = compute();
        if let Ok(mut rows) = self.rows.lock() {
            rows.insert(dir.to_path_buf(), (stamp.to_string(), row.clone()));
        }
        row
    }

    /// The parsed metrics log at `path`, re-read when its size or modification time changed.
    pub fn metrics(&self, path: &Path, read: impl FnOnce() -> Metrics) -> Arc<Metrics> {
        let Some(key) = file_key(path) else {
            return Arc::new(read());
        };
        if let Ok(map) = self.metrics.lock()
            && let Some((cached, metrics)) = map.get(path)
            && *cached == key
        {
            return metrics.clone();
        }
        let metrics = Arc::new(read());
        if let Ok(mut map) = self.metrics.lock() {
            map.insert(path.to_path_buf(), (key, metrics.clone()));
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_runs::{MetricKind, append_json_line, read_metrics};

    #[test]
    fn metrics_are_reread_when_the_log_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let record = |step| MetricRecord {
            kind: MetricKind::Train,
            step,
            tokens: step * 10,
            loss: 1.0,
            lr: None,
            grad_norm: None,
            tokens_per_s: None,
            elapsed_s: 0.0,
        };
        let cache = Cache::default();
        let read = || {
            let (records, bad_lines) = read_metrics(&path).unwrap();
            Metrics { records, bad_lines }
        };
        append_json_line(&path, &record(1)).unwrap();
        assert_eq!(cache.metrics(&path, read).records.len(), 1);
        // Unchanged: served from the cache (the reader is not called).
        let again = cache.metrics(&path, || panic!("re-read an unchanged file"));
        assert_eq!(again.records.len(), 1);
        append_json_line(&path, &record(2)).unwrap();
        assert_eq!(cache.metrics(&path, read).records.len(), 2);
    }
}

//! Scoring passkey retrieval: accuracy per length, the depth x length heatmap, T_recall, and
//! the resumable prediction files.
//!
//! Predictions are appended one JSON line at a time to `preds_<length>.jsonl` as they are
//! decoded (paper.md section 4), so an interrupted evaluation resumes where it stopped. A
//! crash can tear the last line; readers ignore a torn last line, and [`load_for_resume`]
//! cuts it off so the next append starts on a fresh line. A bad line anywhere else is an
//! error naming the file and line: it means the file was damaged, not interrupted.
//!
//! Resuming must never mix answers of different models or settings, so each predictions file
//! has a sidecar `preds_<length>.key.json` naming what produced it ([`PredictionKey`]);
//! [`load_keyed`] resumes only under an equal key and otherwise discards the file. The
//! readers of finished results ignore the sidecar, so files from before keys still read.
//!
//! T_recall (paper.md section 4, 10.4) is the longest length whose accuracy reaches the
//! threshold (default 0.95). That reading counts a length that passes again after a failing
//! one; [`RecallRule::BeforeFirstFailure`] stops at the first failure instead. Only complete
//! lengths (all configured samples scored) count, because samples are drawn in depth order
//! and a partial length would see only shallow needles.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use forgetlab_runs::config::{Mitigation, PasskeyConfig, RecallRule};
use forgetlab_runs::results::{PasskeyPrediction, PasskeySummary};
use serde::{Deserialize, Serialize};

/// Why predictions could not be read or scored.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}:{line}: not a passkey prediction: {message}", path.display())]
    BadLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}:{line}: prediction for length {found} in the file for length {expected}", path.display())]
    WrongLength {
        path: PathBuf,
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("prediction {idx} at length {length}: depth {depth} is outside [0, 1]")]
    BadDepth {
        idx: usize,
        length: usize,
        depth: f64,
    },
    #[error("passkey config: {0}")]
    InvalidConfig(forgetlab_runs::Invalid),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PasskeyError + '_ {
    move |error| PasskeyError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// `<dir>/preds_<length>.jsonl`.
pub fn predictions_file(dir: &Path, length: usize) -> PathBuf {
    dir.join(format!("preds_{length}.jsonl"))
}

/// `<dir>/preds_<length>.key.json`: what produced that length's predictions.
pub fn key_file(dir: &Path, length: usize) -> PathBuf {
    dir.join(format!("preds_{length}.key.json"))
}

/// What produced a file of passkey predictions; they are resumed only under an equal key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionKey {
    /// sha256 over the model's configuration, precision and parameter values.
    pub model_sha256: String,
    /// sha256 of the tokenizer.json.
    pub tokenizer_sha256: String,
    /// Prompt length in tokens.
    pub length: usize,
    /// Seed of the passkey draw.
    pub seed: u64,
    /// Samples per length (they set the depths).
    pub samples: usize,
    /// Whether prompts start with the EOS token.
    pub use_bos: bool,
    /// The mitigation's label (`none` without one).
    pub mitigation: String,
    /// State-norm clipping cadence in tokens, when clipping.
    pub state_norm_every: Option<usize>,
    /// Tokens decoded per sample.
    pub new_tokens: usize,
}

impl PredictionKey {
    /// Names of the fields in which the two keys differ.
    pub fn differences(&self, other: &PredictionKey) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |name, same: bool| {
            if !same {
                out.push(name);
            }
        };
        check("model", self.model_sha256 == other.model_sha256);
        check("tokenizer", self.tokenizer_sha256 == other.tokenizer_sha256);
        check("length", self.length == other.length);
        check("seed", self.seed == other.seed);
        check("samples", self.samples == other.samples);
        check("use_bos", self.use_bos == other.use_bos);
        check("mitigation", self.mitigation == other.mitigation);
        check(
            "state_norm_every",
            self.state_norm_every == other.state_norm_every,
        );
        check("new_tokens", self.new_tokens == other.new_tokens);
        out
    }
}

/// The key stored beside `length`'s predictions, or why there is none usable.
fn read_key(dir: &Path, length: usize) -> Result<PredictionKey, String> {
    let path = key_file(dir, length);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| format!("its key file is unreadable ({e})"))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err("they have no key (written before predictions were keyed)".into())
        }
        Err(e) => Err(format!("its key file is unreadable ({e})")),
    }
}

/// The predictions of `length` in `dir` that may be resumed under `key`: all of them when the
/// stored key equals `key`; otherwise none (the file is removed, with a warning saying why)
/// and `key` is stored for the predictions to come.
pub fn load_keyed(
    dir: &Path,
    length: usize,
    key: &PredictionKey,
) -> Result<Vec<PasskeyPrediction>, PasskeyError> {
    let path = predictions_file(dir, length);
    let stored = read_key(dir, length);
    if stored.as_ref() == Ok(key) {
        return load_for_resume(&path, Some(length));
    }
    if path.exists() {
        let why = match &stored {
            Ok(old) => format!(
                "they were made with a different {}",
                old.differences(key).join(", ")
            ),
            Err(why) => why.clone(),
        };
        tracing::warn!(
            "{}: discarding the predictions, recomputing: {why}",
            path.display()
        );
        // Removed before the new key is written, so a crash in between leaves no stale file.
        std::fs::remove_file(&path).map_err(io_err(&path))?;
    }
    let key_path = key_file(dir, length);
    forgetlab_runs::write_json_atomic(&key_path, key).map_err(io_err(&key_path))?;
    Ok(Vec::new())
}

/// `<dir>/summary.json`.
pub fn summary_file(dir: &Path) -> PathBuf {
    dir.join("summary.json")
}

/// The readable predictions of one file, and whether its last line was torn.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionFile {
    pub predictions: Vec<PasskeyPrediction>,
    /// The file ends in an unparsable line without a newline (an interrupted append).
    pub torn_tail: bool,
}

/// Reads a predictions file; a missing file has no predictions. `expected_length`, when
/// given, is checked against every line.
pub fn read_predictions(
    path: &Path,
    expected_length: Option<usize>,
) -> Result<PredictionFile, PasskeyError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(PredictionFile {
                predictions: Vec::new(),
                torn_tail: false,
            });
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let ends_with_newline = bytes.last() == Some(&b'\n');
    let mut predictions = Vec::new();
    let mut torn_tail = false;
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // `split` yields a final empty piece after a trailing newline.
    let count = if ends_with_newline {
        lines.len() - 1
    } else {
        lines.len()
    };
    for (i, line) in lines[..count].iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<PasskeyPrediction>(line) {
            Ok(p) => {
                if let Some(expected) = expected_length
                    && p.length != expected
                {
                    return Err(PasskeyError::WrongLength {
                        path: path.to_path_buf(),
                        line: i + 1,
                        expected,
                        found: p.length,
                    });
                }
                predictions.push(p);
            }
            Err(_) if i + 1 == count && !ends_with_newline => torn_tail = true,
            Err(e) => {
                return Err(PasskeyError::BadLine {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(PredictionFile {
        predictions,
        torn_tail,
    })
}

/// Reads a predictions file for resuming: a torn last line is cut off (it held no complete
/// prediction), so appends start on a fresh line. Returns the complete predictions.
pub fn load_for_resume(
    path: &Path,
    expected_length: Option<usize>,
) -> Result<Vec<PasskeyPrediction>, PasskeyError> {
    let file = read_predictions(path, expected_length)?;
    if file.torn_tail {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let handle = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        handle.set_len(keep as u64).map_err(io_err(path))?;
        handle.sync_all().map_err(io_err(path))?;
        tracing::warn!(
            "{}: cut off a torn last line ({} bytes) left by an interrupted run",
            path.display(),
            bytes.len() - keep
        );
    }
    Ok(file.predictions)
}

/// Appends one prediction as a JSON line, flushed to disk (creating the directory).
pub fn append_prediction(path: &Path, prediction: &PasskeyPrediction) -> Result<(), PasskeyError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    forgetlab_runs::append_json_line(path, prediction).map_err(io_err(path))
}

/// Every prediction in `<dir>/preds_*.jsonl`, ordered by length then file order.
pub fn read_prediction_dir(dir: &Path) -> Result<Vec<PasskeyPrediction>, PasskeyError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut files = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(length) = name
            .to_str()
            .and_then(|n| n.strip_prefix("preds_"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        files.insert(length, entry.path());
    }
    let mut all = Vec::new();
    for (length, path) in files {
        all.extend(read_predictions(&path, Some(length))?.predictions);
    }
    Ok(all)
}

/// Depth bin of a relative needle position: bins are (0, 1/n], (1/n, 2/n], ..., with depth 0
/// in the first bin.
pub fn depth_bin(depth: f64, bins: usize) -> usize {
    ((depth * bins as f64).ceil() as usize).clamp(1, bins) - 1
}

/// T_recall from accuracies of complete lengths (ascending), by `rule`.
pub fn t_recall(
    lengths_and_accuracy: &[(usize, f64)],
    threshold: f64,
    rule: RecallRule,
) -> Option<usize> {
    // Tolerance for accuracies like 19/20 compared with 0.95.
    let passes = |acc: f64| acc + 1e-12 >= threshold;
    match rule {
        RecallRule::Longest => lengths_and_accuracy
            .iter()
            .filter(|(_, a)| passes(*a))
            .map(|(l, _)| *l)
            .max(),
        RecallRule::BeforeFirstFailure => lengths_and_accuracy
            .iter()
            .take_while(|(_, a)| passes(*a))
            .map(|(l, _)| *l)
            .last(),
    }
}

/// Builds the summary of a run's passkey predictions. Repeated `(length, idx)` pairs (a
/// sample re-decoded after a resume) count once, the last one winning.
pub fn summarize(
    run: &str,
    predictions: &[PasskeyPrediction],
    config: &PasskeyConfig,
    mitigation: &Mitigation,
) -> Result<PasskeySummary, PasskeyError> {
    config
        .validate("eval.passkey")
        .map_err(PasskeyError::InvalidConfig)?;
    let mut unique: BTreeMap<(usize, usize), &PasskeyPrediction> = BTreeMap::new();
    for p in predictions {
        if !(0.0..=1.0).contains(&p.depth) {
            return Err(PasskeyError::BadDepth {
                idx: p.idx,
                length: p.length,
                depth: p.depth,
            });
        }
        unique.insert((p.length, p.idx), p);
    }
    let mut by_length: BTreeMap<usize, Vec<&PasskeyPrediction>> = BTreeMap::new();
    for ((length, _), p) in unique {
        by_length.entry(length).or_default().push(p);
    }
    let bins = config.depth_bins;
    let lengths: Vec<usize> = by_length.keys().copied().collect();
    let mut accuracy = Vec::with_capacity(lengths.len());
    let mut samples = Vec::with_capacity(lengths.len());
    let mut heatmap = vec![vec![None; lengths.len()]; bins];
    for (j, preds) in by_length.values().enumerate() {
        let correct = preds.iter().filter(|p| p.correct).count();
        accuracy.push(correct as f64 / preds.len() as f64);
        samples.push(preds.len());
        let mut cells = vec![(0usize, 0usize); bins];
        for p in preds {
            let cell = &mut cells[depth_bin(p.depth, bins)];
            cell.0 += usize::from(p.correct);
            cell.1 += 1;
        }
        for (bin, (c, n)) in cells.into_iter().enumerate() {
            if n > 0 {
                heatmap[bin][j] = Some(c as f64 / n as f64);
            }
        }
    }
    let complete: Vec<(usize, f64)> = lengths
        .iter()
        .zip(&accuracy)
        .zip(&samples)
        .filter(|(_, n)| **n >= config.samples)
        .map(|((l, a), _)| (*l, *a))
        .collect();
    Ok(PasskeySummary {
        run: run.to_string(),
        t_recall: t_recall(&complete, config.threshold, config.recall_rule),
        lengths,
        samples_per_length: config.samples,
        accuracy,
        heatmap,
        depth_bins: bins,
        threshold: config.threshold,
        mitigation: mitigation.clone(),
        samples,
        recall_rule: config.recall_rule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pred(length: usize, idx: usize, n: usize, correct: bool) -> PasskeyPrediction {
        PasskeyPrediction {
            idx,
            length,
            depth: (idx as f64 + 0.5) / n as f64,
            passkey: "01234".into(),
            prediction: if correct { " 01234." } else { " 99" }.into(),
            correct,
        }
    }

    fn config(samples: usize) -> PasskeyConfig {
        PasskeyConfig {
            samples,
            ..PasskeyConfig::default()
        }
    }

    #[test]
    fn accuracy_heatmap_and_t_recall() {
        let n = 20;
        let mut preds = Vec::new();
        // 1K: all correct; 2K: 19/20 (0.95); 4K: needles in the first half of the context
        // are missed; 8K: 19/20 again.
        for i in 0..n {
            preds.push(pred(1024, i, n, true));
            preds.push(pred(2048, i, n, i != 3));
            preds.push(pred(4096, i, n, i >= n / 2));
            preds.push(pred(8192, i, n, i != 0));
        }
        let s = summarize("r", &preds, &config(n), &Mitigation::default()).unwrap();
        assert_eq!(s.lengths, vec![1024, 2048, 4096, 8192]);
        assert_eq!(s.accuracy, vec![1.0, 0.95, 0.5, 0.95]);
        assert_eq!(s.samples, vec![20; 4]);
        assert_eq!(s.heatmap.len(), 10);
        // Depths (i + 0.5)/20: bin b holds samples 2b and 2b+1.
        assert_eq!(s.heatmap[0][2], Some(0.0));
        assert_eq!(s.heatmap[9][2], Some(1.0));
        assert_eq!(s.heatmap[1][1], Some(0.5));
        // Paper-faithful: the longest length that passes, even after a failure.
        assert_eq!(s.t_recall, Some(8192));
        assert_eq!(s.recall_rule, RecallRule::Longest);
        let strict = PasskeyConfig {
            recall_rule: RecallRule::BeforeFirstFailure,
            ..config(n)
        };
        let s = summarize("r", &preds, &strict, &Mitigation::default()).unwrap();
        assert_eq!(s.t_recall, Some(2048));
    }

    #[test]
    fn incomplete_lengths_do_not_count_and_duplicates_count_once() {
        let n = 10;
        let mut preds: Vec<_> = (0..n).map(|i| pred(1024, i, n, true)).collect();
        preds.extend((0..4).map(|i| pred(2048, i, n, true))); // interrupted
        preds.push(pred(1024, 3, n, false)); // re-decoded after a resume: last one wins
        let s = summarize("r", &preds, &config(n), &Mitigation::default()).unwrap();
        assert_eq!(s.samples, vec![10, 4]);
        assert_eq!(s.accuracy, vec![0.9, 1.0]);
        assert_eq!(s.t_recall, None);
        let s = summarize(
            "r",
            &preds,
            &PasskeyConfig {
                threshold: 0.9,
                ..config(n)
            },
            &Mitigation::default(),
        )
        .unwrap();
        assert_eq!(s.t_recall, Some(1024));
        // Empty heatmap cells are None, not zero.
        assert_eq!(s.heatmap[9][1], None);
    }

    #[test]
    fn depth_bins_are_right_closed() {
        assert_eq!(depth_bin(0.0, 10), 0);
        assert_eq!(depth_bin(0.1, 10), 0);
        assert_eq!(depth_bin(0.1000001, 10), 1);
        assert_eq!(depth_bin(0.95, 10), 9);
        assert_eq!(depth_bin(1.0, 10), 9);
        let mut bad = pred(1024, 0, 1, true);
        bad.depth = 1.5;
        assert!(matches!(
            summarize("r", &[bad], &config(1), &Mitigation::default()),
            Err(PasskeyError::BadDepth { .. })
        ));
    }

    #[test]
    fn jsonl_round_trip_with_torn_tail_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = predictions_file(&dir.path().join("passkey"), 1024);
        for i in 0..3 {
            append_prediction(&path, &pred(1024, i, 5, true)).unwrap();
        }
        // Simulate a crash mid-append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"idx\":3,\"length\":10").unwrap();
        drop(f);
        let file = read_predictions(&path, Some(1024)).unwrap();
        assert_eq!(file.predictions.len(), 3);
        assert!(file.torn_tail);
        let resumed = load_for_resume(&path, Some(1024)).unwrap();
        assert_eq!(resumed.len(), 3);
        append_prediction(&path, &pred(1024, 3, 5, false)).unwrap();
        let file = read_predictions(&path, Some(1024)).unwrap();
        assert!(!file.torn_tail);
        assert_eq!(
            file.predictions.iter().map(|p| p.idx).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        // Another length in the same directory; directory reading orders by length.
        append_prediction(
            &predictions_file(&dir.path().join("passkey"), 512),
            &pred(512, 0, 1, true),
        )
        .unwrap();
        std::fs::write(dir.path().join("passkey/notes.txt"), "ignored").unwrap();
        let all = read_prediction_dir(&dir.path().join("passkey")).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].length, 512);
        assert!(
            read_prediction_dir(&dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );
    }

    fn key(seed: u64) -> PredictionKey {
        PredictionKey {
            model_sha256: "ab".into(),
            tokenizer_sha256: "cd".into(),
            length: 1024,
            seed,
            samples: 5,
            use_bos: false,
            mitigation: "none".into(),
            state_norm_every: None,
            new_tokens: 5,
        }
    }

    #[test]
    fn keyed_predictions_resume_only_under_the_same_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = predictions_file(dir, 1024);
        assert!(load_keyed(dir, 1024, &key(1)).unwrap().is_empty());
        for i in 0..3 {
            append_prediction(&path, &pred(1024, i, 5, true)).unwrap();
        }
        assert_eq!(load_keyed(dir, 1024, &key(1)).unwrap().len(), 3);
        // The dashboard's readers ignore the key file.
        assert_eq!(read_prediction_dir(dir).unwrap().len(), 3);
        assert_eq!(key(1).differences(&key(2)), ["seed"]);
        assert!(load_keyed(dir, 1024, &key(2)).unwrap().is_empty());
        assert!(!path.exists());
        let stored: PredictionKey =
            serde_json::from_slice(&std::fs::read(key_file(dir, 1024)).unwrap()).unwrap();
        assert_eq!(stored, key(2));
        append_prediction(&path, &pred(1024, 0, 5, true)).unwrap();
        assert_eq!(load_keyed(dir, 1024, &key(2)).unwrap().len(), 1);
        // A file from before keys is stale.
        std::fs::remove_file(key_file(dir, 1024)).unwrap();
        assert!(load_keyed(dir, 1024, &key(2)).unwrap().is_empty());
        assert!(!path.exists() && key_file(dir, 1024).exists());
    }

    #[test]
    fn damaged_files_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = predictions_file(dir.path(), 2048);
        let good = serde_json::to_string(&pred(2048, 0, 2, true)).unwrap();
        std::fs::write(&path, format!("{good}\ngarbage\n{good}\n")).unwrap();
        let err = read_predictions(&path, Some(2048)).unwrap_err();
        assert!(err.to_string().contains("preds_2048.jsonl:2:"), "{err}");
        // A complete (newline-terminated) bad last line is damage, not a torn append.
        std::fs::write(&path, format!("{good}\ngarbage\n")).unwrap();
        assert!(read_predictions(&path, None).is_err());
        std::fs::write(&path, format!("{good}\n")).unwrap();
        let err = read_predictions(&path, Some(1024)).unwrap_err();
        assert!(
            matches!(
                err,
                PasskeyError::WrongLength {
                    line: 1,
                    found: 2048,
                    ..
                }
            ),
            "{err}"
        );
    }
}

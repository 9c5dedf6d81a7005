//! `forgetlab fit`: from an experiment directory to `law.json`.
//!
//! Reads every run's config, verdict, passkey summary and per-position table, adds the
//! reference-run criterion to each verdict, and fits the laws ([`crate::law`]).
//!
//! The reference criterion is a second, model-based baseline: within one state size, the run
//! with the longest training length is the one most likely to forget, and it was evaluated on
//! the same windows (the window seed is shared across an experiment). A shorter-trained run's
//! loss minus the reference's loss, bucket by bucket on the `text` prompt, isolates what the
//! shorter training changed. It is stored as `reference` in the shorter run's `verdict.json`;
//! the verdict's decision is not changed.
//!
//! A run that cannot be read is reported in the law's notes and left out; nothing already
//! written is lost (files are replaced atomically).

use std::collections::BTreeMap;
use std::path::PathBuf;

use forgetlab_runs::results::{ForgetVerdict, LawReport, PasskeySummary, PerPositionReport};
use forgetlab_runs::summary::read_json;
use forgetlab_runs::{ConfigError, ExperimentDir, FitConfig, RunConfig, RunDir, write_json_atomic};

use crate::law::{self, LawError, LawOptions, RunOutcome, format_len};
use crate::passkey_score::summary_file;
use crate::verdict::{criterion, reference_curve};

/// The prompt whose curve the reference comparison uses.
pub const REFERENCE_PROMPT: &str = "text";

/// Why an experiment could not be fitted at all.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{}: no runs (no subdirectory holds a config.toml)", .0.display())]
    NoRuns(PathBuf),
    #[error("{}: every run failed to load; first problem: {first}", dir.display())]
    NoReadableRuns { dir: PathBuf, first: String },
    #[error(transparent)]
    Law(#[from] LawError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `fit_experiment` did.
#[derive(Debug, Clone)]
pub struct ExperimentFit {
    pub report: LawReport,
    /// Where `law.json` was written.
    pub law_path: PathBuf,
    /// Runs whose `verdict.json` was rewritten (a reference criterion added, or a stale one
    /// removed).
    pub updated_verdicts: Vec<String>,
}

/// Everything read from one run directory.
struct RunFiles {
    dir: RunDir,
    name: String,
    config: RunConfig,
    verdict: Option<ForgetVerdict>,
    per_position: Option<PerPositionReport>,
    passkey: Option<PasskeySummary>,
}

impl RunFiles {
    fn state_size(&self) -> u64 {
        self.config.model.state_size().total
    }
    fn seq_len(&self) -> usize {
        self.config.train.seq_len
    }
    fn text_curve(&self) -> Option<&[forgetlab_runs::results::LossBucket]> {
        self.per_position.as_ref().and_then(|p| {
            p.curves
                .iter()
                .find(|c| c.prompt == REFERENCE_PROMPT)
                .map(|c| c.buckets.as_slice())
        })
    }
}

fn read_run(dir: RunDir, notes: &mut Vec<String>) -> Option<RunFiles> {
    let name = dir.name();
    let config = match RunConfig::load(&dir.config()) {
        Ok(c) => c,
        Err(e) => {
            notes.push(format!("run {name} skipped: {e}"));
            return None;
        }
    };
    let mut problems = Vec::new();
    let verdict = read_json(&dir.verdict(), &mut problems);
    let per_position = read_json(&dir.per_position("none"), &mut problems);
    let passkey = read_json(&summary_file(&dir.passkey_dir("none")), &mut problems);
    for p in problems {
        notes.push(format!("run {name}: unreadable {p}; treated as missing"));
    }
    Some(RunFiles {
        dir,
        name,
        config,
        verdict,
        per_position,
        passkey,
    })
}

/// The fit options of an experiment: its `experiment.toml` `[fit]` table when the file exists,
/// the defaults otherwise.
pub fn fit_options(experiment: &ExperimentDir) -> Result<LawOptions, ExperimentError> {
    let path = experiment.experiment_file();
    let fit = if path.is_file() {
        FitConfig::from_experiment_file(&path)?
    } else {
        FitConfig::default()
    };
    Ok(LawOptions::from_fit_config(&fit))
}

/// Fits the laws of an experiment, writing the reference criteria into the verdicts and
/// `law.json` into the experiment directory.
pub fn fit_experiment(
    experiment: &ExperimentDir,
    options: &LawOptions,
) -> Result<ExperimentFit, ExperimentError> {
    let root = experiment.root().to_path_buf();
    if !root.is_dir() {
        return Err(ExperimentError::NotADirectory(root));
    }
    let dirs = experiment.runs();
    if dirs.is_empty() {
        return Err(ExperimentError::NoRuns(root));
    }
    let mut notes = Vec::new();
    let runs: Vec<RunFiles> = dirs
        .into_iter()
        .filter_map(|d| read_run(d, &mut notes))
        .collect();
    if runs.is_empty() {
        return Err(ExperimentError::NoReadableRuns {
            dir: root,
            first: notes.first().cloned().unwrap_or_default(),
        });
    }

    let updated_verdicts = add_reference_criteria(&runs, &mut notes)?;

    let outcomes: Vec<RunOutcome> = runs
        .iter()
        .map(|r| RunOutcome {
            run: r.name.clone(),
            state_size: r.state_size(),
            seq_len: r.seq_len(),
            has_verdict: r.verdict.is_some(),
            forgets: r.verdict.as_ref().and_then(|v| v.forgets),
            has_passkey: r.passkey.is_some(),
            t_recall: r.passkey.as_ref().and_then(|p| p.t_recall),
        })
        .collect();
    let mut report = law::law_report(&experiment.name(), &outcomes, options)?;
    notes.append(&mut report.notes);
    report.notes = notes;
    let law_path = experiment.law();
    write_json_atomic(&law_path, &report).map_err(|source| ExperimentError::Write {
        path: law_path.clone(),
        source,
    })?;
    Ok(ExperimentFit {
        report,
        law_path,
        updated_verdicts,
    })
}

/// For each state size, compares every shorter-trained run with the longest-trained one and
/// stores the result in the shorter run's verdict. Returns the runs updated.
fn add_reference_criteria(
    runs: &[RunFiles],
    notes: &mut Vec<String>,
) -> Result<Vec<String>, ExperimentError> {
    let mut by_size: BTreeMap<u64, Vec<&RunFiles>> = BTreeMap::new();
    for r in runs {
        by_size.entry(r.state_size()).or_default().push(r);
    }
    let mut updated = Vec::new();
    for group in by_size.values() {
        let longest = group.iter().map(|r| r.seq_len()).max().unwrap_or(0);
        // Reference candidates: the longest-trained runs with a text curve, same seed first.
        let candidates: Vec<&&RunFiles> = group
            .iter()
            .filter(|r| r.seq_len() == longest && r.text_curve().is_some())
            .collect();
        for run in group.iter().filter(|r| r.seq_len() < longest) {
            let Some(verdict) = &run.verdict else {
                continue;
            };
            let Some(curve) = run.text_curve() else {
                notes.push(format!(
                    "run {}: no `{REFERENCE_PROMPT}` curve in per_position.json, no reference criterion",
                    run.name
                ));
                continue;
            };
            let Some(reference) = candidates
                .iter()
                .find(|c| c.config.seed == run.config.seed)
                .or_else(|| candidates.first())
            else {
                notes.push(format!(
                    "run {}: the longest-trained run(s) at its state size ({}) have no \
                     `{REFERENCE_PROMPT}` curve, no reference criterion",
                    run.name,
                    format_len(longest)
                ));
                continue;
            };
            let (a, b) = (&run.config.eval, &reference.config.eval);
            if (a.window_seed, a.windows, a.text) != (b.window_seed, b.windows, b.text) {
                notes.push(format!(
                    "run {} and its reference {} were evaluated on different windows \
                     (window_seed/windows/text differ), so the reference comparison is not \
                     position-matched",
                    run.name, reference.name
                ));
            }
            let Some(reference_buckets) = reference.text_curve() else {
                continue;
            };
            let result = reference_curve(curve, reference_buckets)
                .and_then(|points| criterion("reference", &points, run.seq_len(), &a.verdict));
            match result {
                Ok(c) => {
                    if let Some(decided) = verdict.forgets
                        && decided != c.forgets
                    {
                        notes.push(format!(
                            "run {}: its verdict says it {} but against reference {} it {}",
                            run.name,
                            if decided {
                                "forgets"
                            } else {
                                "does not forget"
                            },
                            reference.name,
                            if c.forgets { "stays flat" } else { "rises" }
                        ));
                    }
                    let mut new_verdict = verdict.clone();
                    new_verdict.reference = Some(c);
                    let path = run.dir.verdict();
                    write_json_atomic(&path, &new_verdict)
                        .map_err(|source| ExperimentError::Write { path, source })?;
                    updated.push(run.name.clone());
                }
                Err(e) => {
                    notes.push(format!(
                        "run {}: no reference criterion against {}: {e}",
                        run.name, reference.name
                    ));
                    // Drop a criterion left by an earlier fit: it no longer holds.
                    if verdict.reference.is_some() {
                        let mut new_verdict = verdict.clone();
                        new_verdict.reference = None;
                        let path = run.dir.verdict();
                        write_json_atomic(&path, &new_verdict)
                            .map_err(|source| ExperimentError::Write { path, source })?;
                        updated.push(run.name.clone());
                    }
                }
            }
        }
    }
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_runs::config::{Mitigation, VerdictConfig};
    use forgetlab_runs::results::{LossBucket, LossCurve};

    use crate::verdict::{VerdictInput, decide};

    fn config_toml(d_model: usize, seq_len: usize, seed: u64) -> String {
        format!(
            r#"
seed = {seed}

[model]
d_model = {d_model}
n_layer = 2
d_state = 16
headdim = 16
vocab_size = 256

[data]
train = ["shards/*.jsonl"]
tokenizer = "tok.json"

[train]
seq_len = {seq_len}
tokens_per_step = {seq_len}
total_tokens = {}
"#,
            seq_len * 10
        )
    }

    /// A curve flat at `base` up to `rise_from`, then rising 1 nat per 1K tokens; buckets of
    /// seq_len/8 to 8 seq_len, baseline 3.0 everywhere.
    fn buckets(seq_len: usize, base: f64, rise_from: Option<usize>) -> Vec<LossBucket> {
        let b = seq_len / 8;
        (0..64)
            .map(|i| {
                let (start, end) = (i * b, (i + 1) * b);
                let rise = rise_from.map_or(0.0, |r| (start as f64 - r as f64).max(0.0) / 1000.0);
                LossBucket {
                    start,
                    end,
                    loss: 3.0 + base + rise,
                    stderr: 0.0,
                    ngram: Some(3.0),
                    reference: None,
                }
            })
            .collect()
    }

    /// Writes a run with a config, a per-position table, a verdict and optionally a passkey
    /// summary, like `forgetlab eval` would.
    fn write_run(
        exp: &ExperimentDir,
        name: &str,
        d_model: usize,
        seq_len: usize,
        rise_from: Option<usize>,
        t_recall: Option<usize>,
    ) -> RunDir {
        let run = exp.run(name);
        std::fs::create_dir_all(run.root()).unwrap();
        std::fs::write(run.config(), config_toml(d_model, seq_len, 0)).unwrap();
        let config = RunConfig::load(&run.config()).unwrap();
        let curve = buckets(seq_len, 0.5, rise_from);
        let report = PerPositionReport {
            run: name.into(),
            seq_len,
            horizon: 8 * seq_len,
            bucket: seq_len / 8,
            state_size: config.model.state_size().total,
            mitigation: Mitigation::default(),
            curves: vec![LossCurve {
                prompt: "text".into(),
                sequences: 32,
                buckets: curve.clone(),
            }],
        };
        write_json_atomic(&run.per_position("none"), &report).unwrap();
        let verdict = decide(VerdictInput {
            run: name,
            seq_len,
            state_size: config.model.state_size().total,
            prompt: "text",
            buckets: &curve,
            memory: None,
            config: &VerdictConfig::default(),
        })
        .unwrap();
        write_json_atomic(&run.verdict(), &verdict).unwrap();
        if let Some(t) = t_recall {
            let summary = PasskeySummary {
                run: name.into(),
                lengths: vec![t],
                samples_per_length: 1,
                accuracy: vec![1.0],
                heatmap: vec![vec![Some(1.0)]],
                depth_bins: 1,
                threshold: 0.95,
                t_recall: Some(t),
                mitigation: Mitigation::default(),
                samples: vec![1],
                recall_rule: Default::default(),
            };
            write_json_atomic(&summary_file(&run.passkey_dir("none")), &summary).unwrap();
        }
        run
    }

    #[test]
    fn fits_an_experiment_and_adds_reference_criteria() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = ExperimentDir::new(tmp.path().join("exp"));
        // Two state sizes (d_model 32 and 64); the short runs fail past T, the long ones forget.
        write_run(&exp, "a-256", 32, 256, Some(400), None);
        write_run(&exp, "a-512", 32, 512, None, None);
        write_run(&exp, "a-1024", 32, 1024, None, Some(2048));
        write_run(&exp, "b-512", 64, 512, Some(700), None);
        write_run(&exp, "b-1024", 64, 1024, None, None);
        write_run(&exp, "b-2048", 64, 2048, None, Some(4096));
        // A broken run is reported, not fatal.
        std::fs::create_dir_all(exp.run("broken").root()).unwrap();
        std::fs::write(exp.run("broken").config(), "seed = \"x\"").unwrap();

        let options = LawOptions {
            bootstrap: 100,
            ..LawOptions::default()
        };
        let fit = fit_experiment(&exp, &options).unwrap();
        let report = &fit.report;
        let ts: Vec<_> = report
            .forget_points
            .iter()
            .map(|p| (p.t_forget, p.bracketed))
            .collect();
        assert_eq!(ts, vec![(Some(512), true), (Some(1024), true)]);
        let line = report
            .linear
            .as_ref()
            .expect("two bracketed points give a line");
        assert_eq!(line.n, 2);
        assert!(report.exponential.is_none());
        let notes = report.notes.join("\n");
        assert!(notes.contains("run broken skipped"), "{notes}");
        assert!(notes.contains("no T_recall law: too few points"), "{notes}");

        // law.json round-trips.
        let back: LawReport =
            serde_json::from_slice(&std::fs::read(&fit.law_path).unwrap()).unwrap();
        assert_eq!(&back, report);

        // Every shorter run got a reference criterion; the references did not.
        let mut updated = fit.updated_verdicts.clone();
        updated.sort();
        assert_eq!(updated, vec!["a-256", "a-512", "b-1024", "b-512"]);
        let read = |name: &str| -> ForgetVerdict {
            serde_json::from_slice(&std::fs::read(exp.run(name).verdict()).unwrap()).unwrap()
        };
        let short = read("a-256");
        let c = short.reference.expect("reference criterion");
        assert!(!c.forgets, "{c:?}");
        assert_eq!(c.curve, "reference");
        assert_eq!(short.forgets, Some(false), "the decision is unchanged");
        assert!(read("a-512").reference.unwrap().forgets);
        assert!(read("a-1024").reference.is_none());

        // Running again is idempotent.
        let again = fit_experiment(&exp, &options).unwrap();
        assert_eq!(again.report, fit.report);

        // If the reference changes so that no comparison is possible any more, the stale
        // criteria are removed rather than left behind.
        let reference_dir = exp.run("a-1024");
        let mut table: PerPositionReport =
            serde_json::from_slice(&std::fs::read(reference_dir.per_position("none")).unwrap())
                .unwrap();
        table.curves[0].buckets = (0..8)
            .map(|i| LossBucket {
                start: i * 1000,
                end: (i + 1) * 1000,
                loss: 3.5,
                stderr: 0.0,
                ngram: None,
                reference: None,
            })
            .collect();
        write_json_atomic(&reference_dir.per_position("none"), &table).unwrap();
        let third = fit_experiment(&exp, &options).unwrap();
        assert!(read("a-256").reference.is_none());
        assert!(third.updated_verdicts.contains(&"a-256".to_string()));
        let notes = third.report.notes.join("\n");
        assert!(
            notes.contains("run a-256: no reference criterion against a-1024"),
            "{notes}"
        );
    }

    #[test]
    fn empty_and_missing_experiments_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = fit_experiment(
            &ExperimentDir::new(tmp.path().join("nope")),
            &LawOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        let err =
            fit_experiment(&ExperimentDir::new(tmp.path()), &LawOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no runs"), "{err}");
        assert!(!ExperimentDir::new(tmp.path()).law().exists());
    }

    #[test]
    fn fit_options_come_from_the_experiment_file() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = ExperimentDir::new(tmp.path());
        assert_eq!(fit_options(&exp).unwrap(), LawOptions::default());
        std::fs::write(
            exp.experiment_file(),
            "[fit]\nbootstrap_samples = 300\nseed = 9\nconfidence = 0.9\n",
        )
        .unwrap();
        let o = fit_options(&exp).unwrap();
        assert_eq!((o.bootstrap, o.seed, o.confidence), (300, 9, 0.9));
        std::fs::write(exp.experiment_file(), "[fit]\nconfidence = 2.0\n").unwrap();
        let err = fit_options(&exp).unwrap_err().to_string();
        assert!(err.contains("experiment.toml:2: fit.confidence"), "{err}");
    }

    #[test]
    fn unevaluated_runs_leave_too_few_points_and_say_so() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = ExperimentDir::new(tmp.path());
        let run = exp.run("only");
        std::fs::create_dir_all(run.root()).unwrap();
        std::fs::write(run.config(), config_toml(32, 256, 0)).unwrap();
        let fit = fit_experiment(&exp, &LawOptions::default()).unwrap();
        assert!(fit.report.linear.is_none());
        let text = law::summary_text(&fit.report);
        assert!(text.contains("not evaluated"), "{text}");
        assert!(text.contains("no T_forget line: too few points"), "{text}");
        assert!(exp.law().is_file());
    }
}

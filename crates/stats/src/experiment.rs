//! `forgetlab fit`: from an experiment directory to `law.json`.
//!
//! Reads every run's config, verdict, passkey summary and per-position table, adds the
//! reference-run criterion to each verdict, and fits the laws ([`crate::law`]). The config gives
//! N_S with its SSM part (the laws are fitted on both), the mixer (one law per mixer) and
//! whether training mixed in synthetic passkey sequences, which makes that run's passkey
//! retrieval in-distribution, not zero-shot.
//!
//! The reference test is a second, model-based comparison: within one state size, the run with
//! the longest training length is the one most likely to forget, and it was scored on the same
//! windows (the evaluation text is shared across an experiment). A shorter-trained run's loss
//! minus the reference's loss, window by window over the shorter run's verdict ranges, isolates
//! what the shorter training changed, with the text's own difficulty cancelled token for token.
//! It is stored as the `reference` test in the shorter run's `verdict.json`; the verdict's
//! decision is not changed.
//!
//! A run that cannot be read is reported in the law's notes and left out; nothing already
//! written is lost (files are replaced atomically).

use std::collections::BTreeMap;
use std::path::PathBuf;

use forgetlab_runs::config::{MixerKind, SyntheticTask};
use forgetlab_runs::results::{ForgetVerdict, LawReport, PasskeySummary, PerPositionReport};
use forgetlab_runs::summary::read_json;
use forgetlab_runs::{ConfigError, ExperimentDir, FitConfig, RunConfig, RunDir, write_json_atomic};

use crate::law::{self, LawError, LawOptions, RunOutcome, format_len};
use crate::passkey_score::summary_file;
use crate::ranges::verdict_ranges;
use crate::verdict::{reference_values, rise_test_paired};

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
    #[error("{}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
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
    fn text_curve(&self) -> Option<&forgetlab_runs::results::LossCurve> {
        self.per_position
            .as_ref()
            .and_then(|p| p.curves.iter().find(|c| c.prompt == REFERENCE_PROMPT))
    }
    fn text_blocks(&self) -> Option<&forgetlab_runs::results::WindowRanges> {
        self.text_curve().and_then(|c| c.blocks.as_ref())
    }
    fn horizon(&self) -> Option<usize> {
        self.per_position.as_ref().map(|p| p.horizon)
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
    let mut verdict: Option<ForgetVerdict> = read_json(&dir.verdict(), &mut problems);
    if verdict.as_ref().is_some_and(|v| !v.is_current()) {
        notes.push(format!(
            "run {name}: verdict.json was written by the version-1 criterion and is ignored; \
             regenerate it with `forgetlab sweep finish` or `forgetlab eval all {}`",
            dir.root().display()
        ));
        verdict = None;
    }
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
            mixer: r.config.model.mixer,
            state_size: r.state_size(),
            ssm_state_size: r.config.model.state_size().ssm,
            seq_len: r.seq_len(),
            has_verdict: r.verdict.is_some(),
            forgets: r.verdict.as_ref().and_then(|v| v.forgets),
            has_passkey: r.passkey.is_some(),
            t_recall: r.passkey.as_ref().and_then(|p| p.t_recall),
            passkey_lengths: r.passkey.as_ref().map_or(Vec::new(), complete_lengths),
            passkey_trained: trained_on_passkey(&r.config),
        })
        .collect();
    let mut report = law::law_report(&experiment.name(), &outcomes, options)?;
    notes.append(&mut report.notes);
    report.notes = notes;
    let law_path = experiment.law();
    write_json_atomic(&law_path, &report).map_err(|error| ExperimentError::Write {
        path: law_path.clone(),
        error,
    })?;
    Ok(ExperimentFit {
        report,
        law_path,
        updated_verdicts,
    })
}

/// The passkey lengths scored with every sample asked for (the ones T_recall is read from);
/// every length for summaries written before sample counts were recorded.
fn complete_lengths(summary: &PasskeySummary) -> Vec<usize> {
    let mut lengths: Vec<usize> = if summary.samples.len() == summary.lengths.len() {
        summary
            .lengths
            .iter()
            .zip(&summary.samples)
            .filter(|(_, n)| **n >= summary.samples_per_length)
            .map(|(l, _)| *l)
            .collect()
    } else {
        summary.lengths.clone()
    };
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

/// Whether a run's training mixed in synthetic passkey sequences, so that passkey retrieval is
/// in-distribution for it rather than zero-shot.
fn trained_on_passkey(config: &RunConfig) -> bool {
    let synthetic = &config.data.synthetic;
    synthetic.ratio > 0.0 && synthetic.tasks.contains(&SyntheticTask::Passkey)
}

/// For each mixer and state size, compares every shorter-trained run with the longest-trained
/// one and stores the result in the shorter run's verdict. Returns the runs updated.
fn add_reference_criteria(
    runs: &[RunFiles],
    notes: &mut Vec<String>,
) -> Result<Vec<String>, ExperimentError> {
    // A reference is the same model trained longer: the same mixer at the same N_S.
    let mut by_size: BTreeMap<(MixerKind, u64), Vec<&RunFiles>> = BTreeMap::new();
    for r in runs {
        by_size
            .entry((r.config.model.mixer, r.state_size()))
            .or_default()
            .push(r);
    }
    let mut updated = Vec::new();
    for group in by_size.values() {
        let longest = group.iter().map(|r| r.seq_len()).max().unwrap_or(0);
        // Reference candidates: the longest-trained runs with a text curve, same seed first.
        let candidates: Vec<&&RunFiles> = group
            .iter()
            .filter(|r| r.seq_len() == longest && r.text_blocks().is_some())
            .collect();
        for run in group.iter().filter(|r| r.seq_len() < longest) {
            let Some(verdict) = &run.verdict else {
                continue;
            };
            let Some(blocks) = run.text_blocks() else {
                notes.push(format!(
                    "run {}: no per-window `{REFERENCE_PROMPT}` blocks in per_position.json, no \
                     reference test",
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
                     per-window `{REFERENCE_PROMPT}` blocks, no reference test",
                    run.name,
                    format_len(longest)
                ));
                continue;
            };
            let Some(reference_blocks) = reference.text_blocks() else {
                continue;
            };
            let ranges = verdict_ranges(run.seq_len(), run.horizon().unwrap_or(0));
            let config = &run.config.eval.verdict;
            let result = reference_values(&ranges, blocks, reference_blocks).and_then(|values| {
                values
                    .map(|v| rise_test_paired("reference", &ranges, &v, config))
                    .transpose()
            });
            let mut new_verdict = verdict.clone();
            new_verdict.tests.retain(|t| t.curve != "reference");
            match result {
                Ok(Some(test)) => {
                    if let Some(decided) = verdict.forgets
                        && test.outcome.forgets().is_some_and(|f| f != decided)
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
                            if decided {
                                "rises beyond the margin"
                            } else {
                                "stays within the margin"
                            }
                        ));
                    }
                    new_verdict.tests.push(test);
                }
                Ok(None) => notes.push(format!(
                    "run {}: its ranges are not unions of dyadic blocks (a training length \
                     that is not a power of two) or reach past {}'s horizon, no reference test",
                    run.name, reference.name
                )),
                Err(e) => notes.push(format!(
                    "run {}: no reference test against {}: {e}",
                    run.name, reference.name
                )),
            }
            if new_verdict != *verdict {
                let path = run.dir.verdict();
                write_json_atomic(&path, &new_verdict)
                    .map_err(|error| ExperimentError::Write { path, error })?;
                updated.push(run.name.clone());
            }
        }
    }
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_runs::config::{Mitigation, VerdictConfig};
    use forgetlab_runs::results::{Censoring, Estimate, LossBucket, LossCurve, Outcome, Retrieval};

    use crate::simulate::{Noise, block_windows, range_samples};
    use crate::verdict::{VerdictInput, decide, memory_lengths};

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

    /// Flat at 3.5 nats up to `rise_from`, then rising 1 nat per 1K tokens.
    fn truth(rise_from: Option<usize>) -> impl Fn(usize) -> f64 {
        move |p| 3.5 + rise_from.map_or(0.0, |r| (p as f64 - r as f64).max(0.0) / 1000.0)
    }

    const NOISE: Noise = Noise {
        token_sd: 0.5,
        segment_sd: 0.01,
        window_sd: 0.1,
    };

    /// Writes a run with a config, a per-position table, a verdict and optionally a passkey
    /// summary, like `forgetlab eval` would. Every run is scored on the same simulated windows.
    fn write_run(
        exp: &ExperimentDir,
        name: &str,
        d_model: usize,
        seq_len: usize,
        rise_from: Option<usize>,
        t_recall: Option<usize>,
    ) -> RunDir {
        let config = config_toml(d_model, seq_len, 0);
        write_run_with(exp, name, &config, seq_len, rise_from, t_recall)
    }

    /// [`write_run`] with the config's text given.
    fn write_run_with(
        exp: &ExperimentDir,
        name: &str,
        config_text: &str,
        seq_len: usize,
        rise_from: Option<usize>,
        t_recall: Option<usize>,
    ) -> RunDir {
        let run = exp.run(name);
        std::fs::create_dir_all(run.root()).unwrap();
        std::fs::write(run.config(), config_text).unwrap();
        let config = RunConfig::load(&run.config()).unwrap();
        let horizon = 8 * seq_len;
        let f = truth(rise_from);
        let ranges = range_samples(seq_len, horizon, 32, 1 << 14, &f, NOISE, 11);
        let blocks = block_windows(horizon, 32, &f, NOISE, 11);
        let bucket = seq_len / 8;
        let buckets = (0..64)
            .map(|i| LossBucket {
                start: i * bucket,
                end: (i + 1) * bucket,
                loss: f(i * bucket),
                stderr: 0.01,
                ngram: None,
                excess_stderr: None,
                reference: None,
            })
            .collect();
        let report = PerPositionReport {
            run: name.into(),
            seq_len,
            horizon,
            bucket,
            state_size: config.model.state_size().total,
            mitigation: Mitigation::default(),
            curves: vec![LossCurve {
                prompt: "text".into(),
                sequences: 32,
                buckets,
                ranges: Some(ranges.clone()),
                blocks: Some(blocks),
            }],
        };
        write_json_atomic(&run.per_position("none"), &report).unwrap();
        let memory = memory_lengths(&[vec![1e6]], &[vec![1e6]], seq_len).unwrap();
        let verdict = decide(VerdictInput {
            run: name,
            seq_len,
            horizon,
            state_size: config.model.state_size().total,
            prompt: "text",
            ranges: &ranges,
            memory,
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
        let c = short.test("reference").expect("reference test");
        assert_eq!(c.outcome, Outcome::DoesNotForget, "{c:?}");
        assert_eq!(short.forgets, Some(false), "the decision is unchanged");
        assert_eq!(
            read("a-512").test("reference").unwrap().outcome,
            Outcome::Forgets
        );
        assert!(read("a-1024").test("reference").is_none());

        // Running again is idempotent.
        let again = fit_experiment(&exp, &options).unwrap();
        assert_eq!(again.report, fit.report);
        assert!(
            again.updated_verdicts.is_empty(),
            "{:?}",
            again.updated_verdicts
        );

        // If the reference was scored on other windows, the comparison is refused and the
        // stale test removed rather than left behind.
        let reference_dir = exp.run("a-1024");
        let mut table: PerPositionReport =
            serde_json::from_slice(&std::fs::read(reference_dir.per_position("none")).unwrap())
                .unwrap();
        let blocks = table.curves[0].blocks.as_mut().unwrap();
        blocks.windows_id = "other text".into();
        write_json_atomic(&reference_dir.per_position("none"), &table).unwrap();
        let third = fit_experiment(&exp, &options).unwrap();
        assert!(read("a-256").test("reference").is_none());
        assert!(third.updated_verdicts.contains(&"a-256".to_string()));
        let notes = third.report.notes.join("\n");
        assert!(
            notes.contains("run a-256: no reference test against a-1024"),
            "{notes}"
        );

        // A verdict of the old criterion is ignored with a note naming the command.
        let old = exp.run("b-512").verdict();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&old).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("version");
        std::fs::write(&old, serde_json::to_vec(&v).unwrap()).unwrap();
        let fourth = fit_experiment(&exp, &options).unwrap();
        let notes = fourth.report.notes.join("\n");
        assert!(
            notes.contains("run b-512: verdict.json was written by the version-1 criterion"),
            "{notes}"
        );
    }

    /// A Gated DeltaNet of the same N_S as `config_toml(32, ..)`'s Mamba-2 (2624 scalars: one
    /// head of d_k = d_v = 32 against four heads of 16 x 16).
    fn gated_deltanet_toml(seq_len: usize) -> String {
        config_toml(32, seq_len, 0)
            .replace(
                "d_state = 16\nheaddim = 16\n",
                "mixer = \"gated-deltanet\"\n",
            )
            .replace(
                "[data]",
                "[model.gated_deltanet]\nheads = 1\nhead_k_dim = 32\nexpand_v = 1.0\n\
                 intermediate_size = 0\n\n[data]",
            )
    }

    /// Runs of two mixers at the same N_S: each mixer its own point, its own law section, and
    /// its own reference run (the same mixer trained longest), the mixer read from the config.
    #[test]
    fn mixers_are_fitted_apart_and_referenced_within_their_own_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = ExperimentDir::new(tmp.path().join("exp"));
        write_run(&exp, "a-256", 32, 256, Some(400), None);
        write_run(&exp, "a-512", 32, 512, None, None);
        write_run(&exp, "a-1024", 32, 1024, None, None);
        // Gated DeltaNet at the same N_S: every length rises past 400 tokens the same way.
        for len in [256, 512, 1024] {
            let text = gated_deltanet_toml(len);
            write_run_with(&exp, &format!("g-{len}"), &text, len, Some(400), None);
        }
        let mamba = RunConfig::load(&exp.run("a-256").config()).unwrap();
        let gdn = RunConfig::load(&exp.run("g-256").config()).unwrap();
        assert_eq!(gdn.model.mixer, MixerKind::GatedDeltaNet);
        assert_eq!(gdn.model.state_size().total, mamba.model.state_size().total);

        let options = LawOptions {
            bootstrap: 50,
            ..LawOptions::default()
        };
        let fit = fit_experiment(&exp, &options).unwrap();
        let report = &fit.report;
        let points: Vec<_> = report
            .forget_points
            .iter()
            .map(|p| {
                (
                    p.mixer,
                    p.state_size,
                    p.t_forget,
                    p.estimate.map(|e| e.kind),
                )
            })
            .collect();
        assert_eq!(
            points,
            [
                (
                    Some(MixerKind::Mamba2),
                    2624,
                    Some(512),
                    Some(Censoring::Exact)
                ),
                (
                    Some(MixerKind::GatedDeltaNet),
                    2624,
                    None,
                    Some(Censoring::LowerBound)
                ),
            ]
        );
        assert_eq!(report.mixers.len(), 2);
        assert!(report.linear.is_none());
        // g-256's reference is g-1024 (same curve, so within the margin), not a-1024 (flat).
        let notes = report.notes.join("\n");
        assert!(
            notes.contains(
                "run g-256: its verdict says it does not forget but against reference g-1024"
            ),
            "{notes}"
        );
        assert!(!notes.contains("reference a-1024"), "{notes}");
        let back: LawReport =
            serde_json::from_slice(&std::fs::read(&fit.law_path).unwrap()).unwrap();
        assert_eq!(&back, report);
    }

    /// Replaces a run's passkey summary with one scored at `lengths` (`samples` each of 1
    /// asked for, `accuracy` per length).
    fn write_passkey(run: &RunDir, lengths: &[usize], samples: &[usize], accuracy: &[f64]) {
        let complete: Vec<(usize, f64)> = lengths
            .iter()
            .zip(accuracy)
            .zip(samples)
            .filter(|(_, n)| **n >= 1)
            .map(|((l, a), _)| (*l, *a))
            .collect();
        let summary = PasskeySummary {
            run: run.name(),
            lengths: lengths.to_vec(),
            samples_per_length: 1,
            accuracy: accuracy.to_vec(),
            heatmap: vec![accuracy.iter().map(|a| Some(*a)).collect()],
            depth_bins: 1,
            threshold: 0.95,
            t_recall: crate::passkey_score::t_recall(&complete, 0.95, Default::default()),
            mitigation: Mitigation::default(),
            samples: samples.to_vec(),
            recall_rule: Default::default(),
        };
        write_json_atomic(&summary_file(&run.passkey_dir("none")), &summary).unwrap();
    }

    /// law.json gets the SSM part of every state size from the run configs, labels a model
    /// trained on synthetic passkey as in-distribution, marks a T_recall at the longest
    /// complete length as a lower bound, and marks the primary line as `[fit]` asks.
    #[test]
    fn run_configs_decide_state_parts_retrieval_and_the_primary_line() {
        let tmp = tempfile::tempdir().unwrap();
        let exp = ExperimentDir::new(tmp.path().join("exp"));
        write_run(&exp, "a-256", 32, 256, Some(400), None);
        let a = write_run(&exp, "a-512", 32, 512, None, None);
        write_run(&exp, "b-512", 64, 512, Some(700), None);
        let b = write_run(&exp, "b-1024", 64, 1024, None, None);
        // b was trained with synthetic passkey sequences.
        for run in [exp.run("b-512"), b.clone()] {
            let mut config = std::fs::read_to_string(run.config()).unwrap();
            config.push_str("\n[data.synthetic]\nratio = 0.25\ntasks = [\"passkey\"]\n");
            std::fs::write(run.config(), config).unwrap();
        }
        // a passes up to 2K of 1K-4K: exact. b passes 1K and 2K; 4K is incomplete, so 2K is
        // the longest length that counts: a lower bound.
        write_passkey(&a, &[1024, 2048, 4096], &[1, 1, 1], &[1.0, 1.0, 0.0]);
        write_passkey(&b, &[1024, 2048, 4096], &[1, 1, 0], &[1.0, 1.0, 0.0]);
        std::fs::write(exp.experiment_file(), "[fit]\ninclude_origin = false\n").unwrap();

        let options = LawOptions {
            bootstrap: 50,
            ..fit_options(&exp).unwrap()
        };
        let fit = fit_experiment(&exp, &options).unwrap();
        let report = &fit.report;
        assert!(!report.primary_with_origin);
        assert_eq!(report.primary_linear().map(|f| f.with_origin), Some(false));

        let model = |d_model: usize| {
            RunConfig::load(
                &exp.run(if d_model == 32 { "a-256" } else { "b-512" })
                    .config(),
            )
            .unwrap()
            .model
            .state_size()
        };
        for (i, d_model) in [32, 64].into_iter().enumerate() {
            let size = model(d_model);
            let p = &report.forget_points[i];
            assert_eq!(
                (p.state_size, p.ssm_state_size),
                (size.total, Some(size.ssm))
            );
            let r = &report.recall_points[i];
            assert_eq!(
                (r.state_size, r.ssm_state_size),
                (size.total, Some(size.ssm))
            );
        }
        let [a_recall, b_recall] = [&report.recall_points[0], &report.recall_points[1]];
        assert_eq!(a_recall.retrieval, Retrieval::ZeroShot);
        assert_eq!(b_recall.retrieval, Retrieval::InDistribution);
        assert_eq!(
            a_recall.estimate,
            Some(Estimate {
                tokens: 2048,
                kind: Censoring::Exact
            })
        );
        assert_eq!(a_recall.lengths, vec![1024, 2048, 4096]);
        assert_eq!(
            b_recall.estimate,
            Some(Estimate {
                tokens: 2048,
                kind: Censoring::LowerBound
            })
        );
        assert_eq!(b_recall.lengths, vec![1024, 2048]);
        assert!(report.ssm_only.is_some());
        let notes = report.notes.join("\n");
        assert!(
            notes.contains("1 state size(s) have an in-distribution T_recall"),
            "{notes}"
        );
        let back: LawReport =
            serde_json::from_slice(&std::fs::read(&fit.law_path).unwrap()).unwrap();
        assert_eq!(&back, report);
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

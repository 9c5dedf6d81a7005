//! Evaluating one trained run from its directory: what `forgetlab eval` does.
//!
//! Everything comes from the run's own `config.toml` (`[eval]`, with command-line overrides):
//! the final weights in `model/`, held-out text and the tokenizer from `[data]`, and the
//! training length. Results go to `eval/` atomically, each with the mitigation it was computed
//! under; the verdict is written only for the unmodified model.

use std::path::PathBuf;

use crate::diagnostics::{diagnose, head_memory_table};
use crate::mitigation::hooks_for;
use crate::passkey::{PasskeyEvalError, evaluate as evaluate_passkey, lengths_for};
use crate::per_position::{
    PerPositionOptions, TextSource, WindowError, cut_windows, loss_curve, range_samples,
};
use burn::prelude::Device;
use forgetlab_data::{
    HeldOut, Tokenizer, TrainStream, bindings_stream, heldout_stream, synthetic_prompt,
};
use forgetlab_model::{Model, ScanHooks, checkpoint};
use forgetlab_plot::{
    CurveOptions, LabeledCurve, PositionQuantity, diagnostics_charts, loss_vs_position,
    passkey_heatmap,
};
use forgetlab_runs::config::{DiagnosticsPrompt, EvalText, Mitigation, RunConfig, SyntheticPrompt};
use forgetlab_runs::results::{Diagnostics, ForgetVerdict, PasskeySummary, PerPositionReport};
use forgetlab_runs::{RunDir, write_atomic, write_json_atomic};
use forgetlab_stats::bucket::BucketError;
use forgetlab_stats::ngram::{NgramError, NgramModel};
use forgetlab_stats::verdict::{VerdictError, VerdictInput, decide, memory_lengths};

/// Why evaluating a run failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] forgetlab_runs::ConfigError),
    #[error(transparent)]
    Model(#[from] forgetlab_model::ModelError),
    #[error(transparent)]
    Data(#[from] forgetlab_data::DataError),
    #[error(transparent)]
    Buckets(#[from] BucketError),
    #[error(transparent)]
    Ngram(#[from] NgramError),
    #[error(transparent)]
    Verdict(#[from] VerdictError),
    #[error(transparent)]
    Passkey(#[from] PasskeyEvalError),
    #[error(transparent)]
    Windows(#[from] WindowError),
    #[error(
        "{}: {what}; regenerate it with `{command}`",
        path.display()
    )]
    Stale {
        path: PathBuf,
        what: String,
        command: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// The tokenizer can produce ids the model has no embedding for.
    #[error(
        "tokenizer {} has {tokenizer} tokens but the model in {} has a vocabulary of {model}; evaluate with the tokenizer the run was trained with (data.tokenizer in {})",
        path.display(),
        model_dir.display(),
        config.display()
    )]
    VocabMismatch {
        path: PathBuf,
        tokenizer: usize,
        model_dir: PathBuf,
        model: usize,
        config: PathBuf,
    },
    #[error(transparent)]
    Provenance(#[from] forgetlab_runs::provenance::ProvenanceError),
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EvalError {
    let path = path.to_path_buf();
    move |error| EvalError::Io { path, error }
}

/// Refuses to evaluate with a tokenizer or data other than those the run was trained on, as
/// recorded in its `data.json`: the token ids and the held-out text would silently differ.
fn check_provenance(
    run: &RunDir,
    config: &RunConfig,
    tokenizer: &Tokenizer,
) -> Result<(), EvalError> {
    let Some(record) = forgetlab_runs::provenance::DataProvenance::read(run)? else {
        tracing::warn!(
            "{} is missing: the tokenizer and data cannot be checked against the run's training",
            forgetlab_runs::provenance::path(run).display()
        );
        return Ok(());
    };
    let data = forgetlab_data::data_identity(&config.data)?;
    record.check(run, &config.data.tokenizer, tokenizer.sha256(), &data)?;
    Ok(())
}

/// A run opened for evaluation: its config (with overrides applied), weights and tokenizer.
pub struct RunEval {
    pub run: RunDir,
    pub config: RunConfig,
    pub model: Model,
    pub tokenizer: Tokenizer,
}

/// Refuses a tokenizer whose ids reach past the model's vocabulary (they would index past its
/// embedding).
fn check_vocab(tokenizer: &Tokenizer, model: &Model, run: &RunDir) -> Result<(), EvalError> {
    let vocab = model.config().vocab_size;
    if tokenizer.vocab_size() > vocab {
        return Err(EvalError::VocabMismatch {
            path: tokenizer.path().to_path_buf(),
            tokenizer: tokenizer.vocab_size(),
            model_dir: run.final_model(),
            model: vocab,
            config: run.config(),
        });
    }
    Ok(())
}

/// The config with the architecture of the weights actually loaded: N_S, vocabulary and
/// shapes come from the model, never from a `[model]` edited after training (named in a
/// warning).
fn with_model_architecture(mut config: RunConfig, model: &Model, run: &RunDir) -> RunConfig {
    let loaded = model.config();
    if config.model != *loaded {
        let fields = |c: &forgetlab_runs::ModelConfig| match serde_json::to_value(c) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let (written, actual) = (fields(&config.model), fields(loaded));
        let changed: Vec<String> = actual
            .iter()
            .filter(|(k, v)| written.get(*k) != Some(*v))
            .map(|(k, v)| {
                let was = written
                    .get(k)
                    .map_or("unset".to_string(), |w| w.to_string());
                format!("model.{k} = {was} (weights: {v})")
            })
            .collect();
        tracing::warn!(
            "{}: [model] differs from the weights in {}: {}; evaluating the weights' architecture",
            run.config().display(),
            run.final_model().display(),
            changed.join(", ")
        );
        config.model = loaded.clone();
    }
    config
}

impl RunEval {
    /// Opens `run` on `device`; `config` replaces the directory's config when given (for
    /// command-line overrides of `[eval]`).
    pub fn open(
        run: RunDir,
        config: Option<RunConfig>,
        device: &Device,
    ) -> Result<Self, EvalError> {
        let config = match config {
            Some(c) => c,
            None => RunConfig::load(&run.config())?,
        };
        let model_dir = run.final_model();
        if !model_dir.is_dir() {
            return Err(EvalError::Invalid(format!(
                "{} has no final weights in model/: train it to completion first (`forgetlab train --resume {}`)",
                run.root().display(),
                run.root().display()
            )));
        }
        let (model, _) = checkpoint::load(&model_dir, device)?;
        let config = with_model_architecture(config, &model, &run);
        let tokenizer = Tokenizer::from_file(&config.data.tokenizer)?;
        check_vocab(&tokenizer, &model, &run)?;
        check_provenance(&run, &config, &tokenizer)?;
        Ok(Self {
            run,
            config,
            model,
            tokenizer,
        })
    }

    fn seq_len(&self) -> usize {
        self.config.train.seq_len
    }

    /// The per-position horizon.
    pub fn horizon(&self) -> usize {
        self.config.eval.horizon_for(self.seq_len())
    }

    fn heldout(&self) -> Result<HeldOut, EvalError> {
        Ok(heldout_stream(&self.config.data)?)
    }

    /// The evaluation stream of `[eval]` and a string naming it: the held-out stream (also the
    /// source of everything but the windows for `long-documents`), or `bindings_len` tokens of
    /// the bindings task when the run is evaluated on it.
    fn stream(&self, bindings_len: usize) -> Result<(Vec<u32>, String), EvalError> {
        let e = &self.config.eval;
        Ok(match e.text {
            EvalText::Bindings => {
                let s = &self.config.data.synthetic;
                let stream = bindings_stream(
                    &self.tokenizer,
                    s.binding_keys,
                    s.binding_lag,
                    e.window_seed,
                    bindings_len,
                )?;
                let id = format!(
                    "bindings:keys-{}:lag-{}:seed-{}:tokens-{}:hash-{:016x}",
                    s.binding_keys,
                    s.binding_lag,
                    e.window_seed,
                    stream.len(),
                    token_hash(&stream)
                );
                (stream, id)
            }
            EvalText::Concatenated | EvalText::LongDocuments => {
                let stream = self.heldout()?.evaluation_stream(e.window_seed)?;
                let id = format!(
                    "concatenated:seed-{}:tokens-{}:hash-{:016x}",
                    e.window_seed,
                    stream.len(),
                    token_hash(&stream)
                );
                (stream, id)
            }
        })
    }

    /// The first `len` tokens of the evaluation stream, for calibration and diagnostics.
    fn heldout_tokens(&self, len: usize) -> Result<Vec<u32>, EvalError> {
        let (stream, _) = self.stream(len)?;
        Ok(cut_windows(&stream, 1, len)?.swap_remove(0))
    }

    /// Hooks for a mitigation, calibrating state-norm thresholds on T_train held-out tokens.
    pub fn hooks(&self, mitigation: &Mitigation) -> Result<ScanHooks, EvalError> {
        if mitigation.is_none() {
            return Ok(ScanHooks::default());
        }
        let calibration = if mitigation.state_norm_clip.is_some() {
            self.heldout_tokens(self.seq_len())?
        } else {
            Vec::new()
        };
        let (hooks, thresholds) = hooks_for(
            &self.model,
            mitigation,
            &calibration,
            crate::mitigation::STATE_NORM_EVERY,
        )
        .map_err(EvalError::Invalid)?;
        if let Some(t) = thresholds {
            let path = self
                .run
                .eval()
                .join(format!("state_norm_thresholds-{}.json", mitigation.label()));
            write_json_atomic(&path, &t).map_err(io(&path))?;
        }
        Ok(hooks)
    }

    /// The evaluation text of `[eval]`: the stream (or the long documents' windows), the
    /// per-position windows of horizon + 1 tokens, and a string naming the text. All are the
    /// same for every run of an experiment with the same data and `[eval]` text settings.
    fn evaluation_text(&self) -> Result<EvaluationText, EvalError> {
        let e = &self.config.eval;
        let len = self.horizon() + 1;
        match e.text {
            EvalText::Concatenated | EvalText::Bindings => {
                let (stream, text_id) = self.stream(e.synthetic_tokens)?;
                let windows = cut_windows(&stream, e.windows, len)?;
                Ok(EvaluationText {
                    stream: Some(stream),
                    windows,
                    text_id,
                })
            }
            EvalText::LongDocuments => {
                let docs = self.heldout()?.long_documents(len, e.windows)?;
                if docs.len() < e.windows {
                    return Err(WindowError::TooFewLongDocuments {
                        windows: e.windows,
                        len,
                        found: docs.len(),
                    }
                    .into());
                }
                let windows: Vec<Vec<u32>> = docs.into_iter().map(|d| d[..len].to_vec()).collect();
                let text_id = format!(
                    "long-documents:windows-{}:hash-{:016x}",
                    e.windows,
                    token_hash(&windows.concat())
                );
                Ok(EvaluationText {
                    stream: None,
                    windows,
                    text_id,
                })
            }
        }
    }

    /// The n-gram baseline fitted on the run's own training tokens.
    fn ngram(&self) -> Result<Option<NgramModel>, EvalError> {
        let e = &self.config.eval;
        if e.ngram_order == 0 {
            return Ok(None);
        }
        let seq = self.seq_len() + 1;
        let mut stream = TrainStream::open(&self.config.data, self.seq_len(), self.config.seed)?;
        let rows = (e.ngram_tokens / seq).max(1);
        let tokens = stream.next_sequences(rows)?;
        let model = NgramModel::fit(
            e.ngram_order,
            self.tokenizer
                .vocab_size()
                .max(self.config.model.vocab_size),
            tokens.chunks(seq),
        )?;
        Ok(Some(model))
    }

    /// Per-position loss on text windows and the synthetic prompts; writes the table and plot.
    pub fn per_position(&self, mitigation: &Mitigation) -> Result<PerPositionReport, EvalError> {
        let e = &self.config.eval;
        let horizon = self.horizon();
        let bucket = e.bucket_for(self.seq_len());
        let hooks = self.hooks(mitigation)?;
        let vocab = self.model.config().padded_vocab_size();
        let text = self.evaluation_text()?;
        let windows = &text.windows;
        let windows_id = format!("{}:windows-{}", text.text_id, windows.len());
        let ngram = self.ngram()?;
        let options = PerPositionOptions::sized(horizon, bucket, vocab, windows.len());
        tracing::info!(
            "per-position loss: {} windows x {horizon} tokens (bucket {bucket}, segment {})",
            windows.len(),
            options.segment_len
        );
        let mut text_curve = loss_curve(
            &self.model,
            "text",
            windows,
            ngram.as_ref(),
            &options,
            &hooks,
            Some(&windows_id),
        )?;
        let source = match &text.stream {
            Some(stream) => TextSource::Stream(stream),
            None => TextSource::Windows(windows),
        };
        text_curve.ranges = Some(range_samples(
            &self.model,
            source,
            self.seq_len(),
            horizon,
            e.windows,
            e.range_tokens,
            ngram.as_ref(),
            &hooks,
            &text.text_id,
        )?);
        let mut curves = vec![text_curve];
        for prompt in &e.prompts {
            let tokens = synthetic_prompt(*prompt, &self.tokenizer, horizon + 1)?;
            let name = match prompt {
                SyntheticPrompt::Newlines => "newlines",
                SyntheticPrompt::Capital => "capital",
            };
            let single = PerPositionOptions::sized(horizon, bucket, vocab, 1);
            curves.push(loss_curve(
                &self.model,
                name,
                &[tokens],
                None,
                &single,
                &hooks,
                None,
            )?);
        }
        let report = PerPositionReport {
            run: self.run.name(),
            seq_len: self.seq_len(),
            horizon,
            bucket,
            state_size: self.config.model.state_size().total,
            mitigation: mitigation.clone(),
            curves,
        };
        let label = mitigation.label();
        let path = self.run.per_position(&label);
        write_json_atomic(&path, &report).map_err(io(&path))?;
        let svg = per_position_svg(&report);
        let plot = self.run.per_position_plot(&label);
        write_atomic(&plot, svg.as_bytes()).map_err(io(&plot))?;
        Ok(report)
    }

    /// State diagnostics; writes `diagnostics.json` and its plots.
    pub fn diagnostics(&self, mitigation: &Mitigation) -> Result<Diagnostics, EvalError> {
        let d = &self.config.eval.diagnostics;
        let len = d.length.unwrap_or_else(|| self.horizon());
        let (tokens, prompt) = match d.prompt {
            DiagnosticsPrompt::Text => (self.heldout_tokens(len)?, "text"),
            DiagnosticsPrompt::Newlines => (
                synthetic_prompt(SyntheticPrompt::Newlines, &self.tokenizer, len)?,
                "newlines",
            ),
            DiagnosticsPrompt::Capital => (
                synthetic_prompt(SyntheticPrompt::Capital, &self.tokenizer, len)?,
                "capital",
            ),
        };
        let hooks = self.hooks(mitigation)?;
        let result = diagnose(
            &self.model,
            &self.run.name(),
            prompt,
            &tokens,
            self.seq_len(),
            d.sample_every,
            mitigation,
            &hooks,
        );
        if mitigation.is_none() {
            let path = self.run.diagnostics();
            write_json_atomic(&path, &result).map_err(io(&path))?;
            for (name, svg) in diagnostics_charts(&result) {
                let path = self.run.eval().join(format!("diagnostics-{name}.svg"));
                write_atomic(&path, svg.as_bytes()).map_err(io(&path))?;
            }
        } else {
            let path = self
                .run
                .eval()
                .join(format!("diagnostics-{}.json", mitigation.label()));
            write_json_atomic(&path, &result).map_err(io(&path))?;
        }
        Ok(result)
    }

    /// The forget verdict from a per-position report and the diagnostics; writes
    /// `verdict.json`.
    pub fn verdict(
        &self,
        report: &PerPositionReport,
        diagnostics: &Diagnostics,
    ) -> Result<ForgetVerdict, EvalError> {
        write_verdict(&self.run, &self.config, report, diagnostics)
    }

    /// Passkey retrieval; writes predictions, `summary.json` and the heatmap.
    pub fn passkey(&self, mitigation: &Mitigation) -> Result<PasskeySummary, EvalError> {
        let e = &self.config.eval;
        let lengths = lengths_for(&e.passkey, self.seq_len(), self.horizon());
        let hooks = self.hooks(mitigation)?;
        let dir = self.run.passkey_dir(&mitigation.label());
        let summary = evaluate_passkey(
            &self.model,
            &self.tokenizer,
            &self.run.name(),
            &lengths,
            &e.passkey,
            mitigation,
            &hooks,
            &dir,
        )?;
        let path = dir.join("heatmap.svg");
        write_atomic(&path, passkey_heatmap(&summary).as_bytes()).map_err(io(&path))?;
        Ok(summary)
    }

    /// Every evaluation of `[eval]`: per-position loss, diagnostics, verdict, passkey.
    pub fn all(&self) -> Result<ForgetVerdict, EvalError> {
        let mitigation = self.config.eval.mitigation.clone();
        let report = self.per_position(&mitigation)?;
        let diagnostics = self.diagnostics(&Mitigation::default())?;
        let verdict = if mitigation.is_none() {
            self.verdict(&report, &diagnostics)?
        } else {
            let plain = self.per_position(&Mitigation::default())?;
            self.verdict(&plain, &diagnostics)?
        };
        self.passkey(&mitigation)?;
        Ok(verdict)
    }
}

/// The evaluation text of a run (see [`RunEval::evaluation_text`]).
struct EvaluationText {
    stream: Option<Vec<u32>>,
    windows: Vec<Vec<u32>>,
    text_id: String,
}

/// A 64-bit FNV-1a hash of a token sequence, naming the evaluation text in `windows_id`.
fn token_hash(tokens: &[u32]) -> u64 {
    tokens.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| {
        t.to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    })
}

/// Decides the verdict of the run in `run` from a per-position report and diagnostics and
/// writes `verdict.json`. Needs no model: `forgetlab eval verdict` recomputes it from stored
/// files.
pub fn write_verdict(
    run: &RunDir,
    config: &RunConfig,
    report: &PerPositionReport,
    diagnostics: &Diagnostics,
) -> Result<ForgetVerdict, EvalError> {
    let per_position = run.per_position("none");
    let stale = |path: &std::path::Path, what: &str, command: &str| EvalError::Stale {
        path: path.to_path_buf(),
        what: what.to_string(),
        command: format!("forgetlab eval {command} {}", run.root().display()),
    };
    let text = report
        .curves
        .iter()
        .find(|c| c.prompt == "text")
        .ok_or_else(|| stale(&per_position, "it has no text curve", "per-position"))?;
    let ranges = text.ranges.as_ref().ok_or_else(|| {
        stale(
            &per_position,
            "it was written before per-window ranges were stored (verdict version 1)",
            "per-position",
        )
    })?;
    let (medians, maxima) = head_memory_table(diagnostics).ok_or_else(|| {
        stale(
            &run.diagnostics(),
            "it was written before memory was measured token by token",
            "diagnostics",
        )
    })?;
    let memory = memory_lengths(&medians, &maxima, report.seq_len)?;
    let verdict = decide(VerdictInput {
        run: &run.name(),
        seq_len: report.seq_len,
        horizon: report.horizon,
        state_size: report.state_size,
        prompt: "text",
        ranges,
        memory,
        config: &config.eval.verdict,
    })?;
    let path = run.verdict();
    write_json_atomic(&path, &verdict).map_err(io(&path))?;
    Ok(verdict)
}

/// Reads the stored per-position report and diagnostics of `run` and rewrites its verdict
/// under `config` (`forgetlab eval verdict`).
pub fn verdict_from_files(run: &RunDir, config: &RunConfig) -> Result<ForgetVerdict, EvalError> {
    let read = |path: PathBuf, command: &str| -> Result<Vec<u8>, EvalError> {
        std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => EvalError::Stale {
                path: path.clone(),
                what: "it does not exist".into(),
                command: format!("forgetlab eval {command} {}", run.root().display()),
            },
            _ => EvalError::Io {
                path: path.clone(),
                error: source,
            },
        })
    };
    fn parse<T: serde::de::DeserializeOwned>(
        path: &std::path::Path,
        bytes: &[u8],
    ) -> Result<T, EvalError> {
        serde_json::from_slice(bytes)
            .map_err(|e| EvalError::Invalid(format!("{}: {e}", path.display())))
    }
    let pp_path = run.per_position("none");
    let report: PerPositionReport = parse(&pp_path, &read(pp_path.clone(), "per-position")?)?;
    let d_path = run.diagnostics();
    let diagnostics: Diagnostics = parse(&d_path, &read(d_path.clone(), "diagnostics")?)?;
    write_verdict(run, config, &report, &diagnostics)
}

/// The per-position figure of one run: every prompt, training length marked.
pub fn per_position_svg(report: &PerPositionReport) -> String {
    let curves = LabeledCurve::all_from_report(report, PositionQuantity::Loss);
    loss_vs_position(
        &curves,
        &[report.seq_len],
        &CurveOptions {
            title: format!("{}: loss by position", report.run),
            subtitle: Some(format!(
                "T_train = {}, bucket {}, mitigation {}",
                report.seq_len,
                report.bucket,
                report.mitigation.label()
            )),
            // Far past T the doubling ranges read best on a log axis.
            log_x: report.horizon >= 32 * report.seq_len.max(1),
            ..CurveOptions::default()
        },
    )
}

//! Evaluating one trained run from its directory: what `forgetlab eval` does.
//!
//! Everything comes from the run's own `config.toml` (`[eval]`, with command-line overrides):
//! the final weights in `model/`, held-out text and the tokenizer from `[data]`, and the
//! training length. Results go to `eval/` atomically, each with the mitigation it was computed
//! under; the verdict is written only for the unmodified model.

use std::path::PathBuf;

use burn::prelude::Device;
use forgetlab_data::{HeldOut, Tokenizer, TrainStream, heldout_stream, synthetic_prompt};
use forgetlab_model::{Mamba2, ScanHooks, checkpoint};
use forgetlab_plot::{
    CurveOptions, LabeledCurve, PositionQuantity, diagnostics_charts, loss_vs_position,
    passkey_heatmap,
};
use forgetlab_runs::config::{DiagnosticsPrompt, EvalText, Mitigation, RunConfig, SyntheticPrompt};
use forgetlab_runs::results::{Diagnostics, ForgetVerdict, PasskeySummary, PerPositionReport};
use forgetlab_runs::{RunDir, write_atomic, write_json_atomic};

use crate::bucket::BucketError;
use crate::diagnostics::{diagnose, mean_log_decay};
use crate::mitigation::hooks_for;
use crate::ngram::{NgramError, NgramModel};
use crate::passkey::{PasskeyEvalError, evaluate as evaluate_passkey, lengths_for};
use crate::per_position::{PerPositionOptions, draw_windows, loss_curve};
use crate::verdict::{VerdictError, VerdictInput, decide, memory_lengths};

/// Why evaluating a run failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EvalError {
    let path = path.to_path_buf();
    move |source| EvalError::Io { path, source }
}

/// A run opened for evaluation: its config (with overrides applied), weights and tokenizer.
pub struct RunEval {
    pub run: RunDir,
    pub config: RunConfig,
    pub model: Mamba2,
    pub tokenizer: Tokenizer,
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
        let tokenizer = Tokenizer::from_file(&config.data.tokenizer)?;
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

    /// Held-out tokens for calibration and diagnostics (at least `len`, wrapping if needed).
    fn heldout_tokens(&self, len: usize) -> Result<Vec<u32>, EvalError> {
        let pool = self.heldout()?.tokens(len)?;
        if pool.is_empty() {
            return Err(EvalError::Invalid("the held-out split is empty".into()));
        }
        Ok((0..len).map(|i| pool[i % pool.len()]).collect())
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
        let (hooks, thresholds) = hooks_for(&self.model, mitigation, &calibration, 128);
        if let Some(t) = thresholds {
            let path = self
                .run
                .eval()
                .join(format!("state_norm_thresholds-{}.json", mitigation.label()));
            write_json_atomic(&path, &t).map_err(io(&path))?;
        }
        Ok(hooks)
    }

    /// The evaluation windows of `[eval]`: seeded random windows of horizon + 1 tokens.
    fn text_windows(&self) -> Result<Vec<Vec<u32>>, EvalError> {
        let e = &self.config.eval;
        let len = self.horizon() + 1;
        match e.text {
            EvalText::Concatenated => {
                let pool = self
                    .heldout()?
                    .tokens(len.max(1 << 20).min(len * 4).max(len))?;
                if pool.is_empty() {
                    return Err(EvalError::Invalid("the held-out split is empty".into()));
                }
                if pool.len() < len {
                    tracing::warn!(
                        "held-out text has {} tokens, fewer than a window of {len}: windows wrap around it",
                        pool.len()
                    );
                }
                Ok(draw_windows(&pool, e.windows, len, e.window_seed))
            }
            EvalText::LongDocuments => {
                let docs = self.heldout()?.long_documents(len, e.windows)?;
                if docs.is_empty() {
                    return Err(EvalError::Invalid(format!(
                        "eval.text = \"long-documents\" but no held-out document has {len} tokens; use \"concatenated\" or a shorter horizon"
                    )));
                }
                Ok((0..e.windows)
                    .map(|i| {
                        let doc = &docs[i % docs.len()];
                        let windows = draw_windows(doc, 1, len, e.window_seed + i as u64);
                        windows.into_iter().next().unwrap_or_default()
                    })
                    .collect())
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
        let windows = self.text_windows()?;
        let ngram = self.ngram()?;
        let options = PerPositionOptions::sized(horizon, bucket, vocab, windows.len());
        tracing::info!(
            "per-position loss: {} windows x {horizon} tokens (bucket {bucket}, segment {})",
            windows.len(),
            options.segment_len
        );
        let mut curves = vec![loss_curve(
            &self.model,
            "text",
            &windows,
            ngram.as_ref(),
            &options,
            &hooks,
        )?];
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

    /// The forget verdict from a per-position report and (optionally) diagnostics.
    pub fn verdict(
        &self,
        report: &PerPositionReport,
        diagnostics: Option<&Diagnostics>,
    ) -> Result<ForgetVerdict, EvalError> {
        let text = report
            .curves
            .iter()
            .find(|c| c.prompt == "text")
            .ok_or_else(|| {
                EvalError::Invalid("the per-position report has no text curve".into())
            })?;
        let memory = diagnostics
            .map(|d| memory_lengths(&mean_log_decay(d), self.seq_len()))
            .transpose()?;
        let verdict = decide(VerdictInput {
            run: &self.run.name(),
            seq_len: self.seq_len(),
            state_size: self.config.model.state_size().total,
            prompt: "text",
            buckets: &text.buckets,
            memory,
            config: &self.config.eval.verdict,
        })?;
        let path = self.run.verdict();
        write_json_atomic(&path, &verdict).map_err(io(&path))?;
        Ok(verdict)
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
            self.verdict(&report, Some(&diagnostics))?
        } else {
            let plain = self.per_position(&Mitigation::default())?;
            self.verdict(&plain, Some(&diagnostics))?
        };
        self.passkey(&mitigation)?;
        Ok(verdict)
    }
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
            ..CurveOptions::default()
        },
    )
}

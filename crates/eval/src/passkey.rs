//! Passkey retrieval (paper.md section 4): prefill the exact prompt with the streaming chunked
//! forward, then greedily decode 5 tokens with the recurrent step; a sample is correct when the
//! passkey is a substring of the decoded text. Predictions are appended to
//! `preds_<length>.jsonl` as they are made, so an interrupted evaluation resumes where it
//! stopped.

use std::collections::HashSet;
use std::path::Path;

use burn::prelude::*;
use forgetlab_data::Tokenizer;
use forgetlab_data::passkey;
use forgetlab_model::{Mamba2, ScanHooks};
use forgetlab_runs::config::{Mitigation, PasskeyConfig};
use forgetlab_runs::results::{PasskeyPrediction, PasskeySummary};

use crate::passkey_score::{self, PasskeyError};

/// Tokens generated per sample, as in the official evaluation.
pub const NEW_TOKENS: usize = 5;

/// Why a passkey evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyEvalError {
    #[error(transparent)]
    Data(#[from] forgetlab_data::DataError),
    #[error(transparent)]
    Score(#[from] PasskeyError),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Greedy continuation of `prompt`: prefill in segments, then `new_tokens` recurrent steps.
pub fn greedy_continue(
    model: &Mamba2,
    prompt: &[u32],
    new_tokens: usize,
    segment_len: usize,
    hooks: &ScanHooks,
) -> Vec<u32> {
    let device = model.device();
    let ids: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, prompt.len()]), &device);
    let mut last_logits: Option<Tensor<2>> = None;
    let state = model.forward_streaming(ids, segment_len, None, hooks, |_, logits| {
        let [_, len, vocab] = logits.dims();
        last_logits = Some(logits.narrow(1, len - 1, 1).reshape([1, vocab]));
    });
    let mut state = state;
    let mut logits = last_logits.expect("a prompt has at least one token");
    let mut out = Vec::with_capacity(new_tokens);
    let vocab = model.config().vocab_size;
    for i in 0..new_tokens {
        // Padded vocabulary rows are never predicted.
        let next = logits
            .narrow(1, 0, vocab)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .expect("int data")[0];
        out.push(next as u32);
        if i + 1 == new_tokens {
            break;
        }
        let input = Tensor::<1, Int>::from_data(TensorData::new(vec![next], [1]), &device);
        let (l, s) = model.step(input, state, hooks);
        logits = l;
        state = s;
    }
    out
}

/// Runs (or resumes) the passkey evaluation into `dir` and returns its summary (also written
/// as `summary.json`).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &Mamba2,
    tokenizer: &Tokenizer,
    run_name: &str,
    lengths: &[usize],
    config: &PasskeyConfig,
    mitigation: &Mitigation,
    hooks: &ScanHooks,
    dir: &Path,
) -> Result<PasskeySummary, PasskeyEvalError> {
    std::fs::create_dir_all(dir).map_err(|source| PasskeyEvalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut all = Vec::new();
    for &length in lengths {
        let path = passkey_score::predictions_file(dir, length);
        let existing = if path.exists() {
            passkey_score::load_for_resume(&path, Some(length))?
        } else {
            Vec::new()
        };
        let done: HashSet<usize> = existing.iter().map(|p| p.idx).collect();
        all.extend(existing);
        let mut correct = 0usize;
        for idx in 0..config.samples {
            if done.contains(&idx) {
                continue;
            }
            let depth = passkey::depth(idx, config.samples);
            let key = passkey::draw_passkey(config.seed, length, idx);
            let prompt = passkey::build(tokenizer, length, depth, &key, config.use_bos)?;
            let generated = greedy_continue(model, &prompt.ids, NEW_TOKENS, 2048, hooks);
            let prediction = tokenizer.decode(&generated)?;
            let hit = prediction.contains(&key);
            correct += usize::from(hit);
            let record = PasskeyPrediction {
                idx,
                length,
                depth,
                passkey: key,
                prediction,
                correct: hit,
            };
            passkey_score::append_prediction(&path, &record)?;
            all.push(record);
        }
        tracing::info!("passkey length {length}: {correct} new correct samples");
    }
    let summary = passkey_score::summarize(run_name, &all, config, mitigation)?;
    let path = passkey_score::summary_file(dir);
    forgetlab_runs::write_json_atomic(&path, &summary)
        .map_err(|source| PasskeyEvalError::Io { path, source })?;
    Ok(summary)
}

/// Passkey lengths of a run: the configured list, or powers of two from seq_len / 4 up to
/// the per-position horizon.
pub fn lengths_for(config: &PasskeyConfig, seq_len: usize, horizon: usize) -> Vec<usize> {
    if !config.lengths.is_empty() {
        return config.lengths.clone();
    }
    let mut out = Vec::new();
    let mut length = (seq_len / 4).max(128).next_power_of_two();
    while length <= horizon.max(length) && out.len() < 16 {
        out.push(length);
        if length >= horizon {
            break;
        }
        length *= 2;
    }
    out
}

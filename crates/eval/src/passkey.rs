//! Passkey retrieval (paper.md section 4): prefill the exact prompt with the streaming chunked
//! forward, then greedily decode 5 tokens with the recurrent step; a sample is correct when the
//! passkey is a substring of the decoded text. Predictions are appended to
//! `preds_<length>.jsonl` as they are made, so an interrupted evaluation resumes where it
//! stopped; they are keyed by the model's weights and the settings that produced them, so a
//! retrained model or changed settings recompute them instead of inheriting old answers.

use std::collections::HashSet;
use std::path::Path;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use forgetlab_data::Tokenizer;
use forgetlab_data::passkey;
use forgetlab_model::{Model, ScanHooks};
use forgetlab_runs::config::{Mitigation, PasskeyConfig};
use forgetlab_runs::results::{PasskeyPrediction, PasskeySummary};
use forgetlab_stats::passkey_score::{self, PasskeyError, PredictionKey};
use sha2::{Digest, Sha256};

/// Tokens generated per sample, as in the official evaluation.
pub const NEW_TOKENS: usize = 5;

/// Why a passkey evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyEvalError {
    #[error(transparent)]
    Data(#[from] forgetlab_data::DataError),
    #[error(transparent)]
    Score(#[from] PasskeyError),
    #[error("{}: {error}", path.display())]
    Io {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

/// Greedy continuation of `prompt`: prefill in segments, then `new_tokens` recurrent steps.
pub fn greedy_continue(
    model: &Model,
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

/// sha256 over a model's configuration, precision and parameter values (shapes and f32
/// bits): equal weights give equal fingerprints wherever they were loaded from.
pub fn model_fingerprint(model: &Model) -> String {
    struct Hash(Sha256);
    impl ModuleVisitor for Hash {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            for dim in value.dims() {
                self.0.update((dim as u64).to_le_bytes());
            }
            let values = value
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("converted to f32");
            for v in values {
                self.0.update(v.to_le_bytes());
            }
        }
    }
    let mut hash = Hash(Sha256::new());
    hash.0
        .update(serde_json::to_vec(model.config()).expect("a model config serialises"));
    hash.0.update(format!("{:?}", model.precision).as_bytes());
    model.visit(&mut hash);
    hash.0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key of one length's predictions; `model_sha256` is [`model_fingerprint`].
pub fn prediction_key(
    model_sha256: &str,
    tokenizer: &Tokenizer,
    length: usize,
    config: &PasskeyConfig,
    mitigation: &Mitigation,
    hooks: &ScanHooks,
) -> PredictionKey {
    PredictionKey {
        model_sha256: model_sha256.to_string(),
        tokenizer_sha256: tokenizer.sha256().to_string(),
        length,
        seed: config.seed,
        samples: config.samples,
        use_bos: config.use_bos,
        mitigation: mitigation.label(),
        state_norm_every: hooks.state_norm_clip.as_ref().map(|c| c.cadence()),
        new_tokens: NEW_TOKENS,
    }
}

/// Runs (or resumes) the passkey evaluation into `dir` and returns its summary (also written
/// as `summary.json`). Earlier predictions are reused only when their key (see
/// [`prediction_key`]) matches.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &Model,
    tokenizer: &Tokenizer,
    run_name: &str,
    lengths: &[usize],
    config: &PasskeyConfig,
    mitigation: &Mitigation,
    hooks: &ScanHooks,
    dir: &Path,
) -> Result<PasskeySummary, PasskeyEvalError> {
    std::fs::create_dir_all(dir).map_err(|error| PasskeyEvalError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    let model_sha256 = model_fingerprint(model);
    let mut all = Vec::new();
    for &length in lengths {
        let path = passkey_score::predictions_file(dir, length);
        let key = prediction_key(&model_sha256, tokenizer, length, config, mitigation, hooks);
        let existing = passkey_score::load_keyed(dir, length, &key)?;
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
        .map_err(|error| PasskeyEvalError::Io { path, error })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use forgetlab_data::passkey::{FILLER, PREFIX, SUFFIX, needle};
    use forgetlab_model::ModelConfig;

    const LENGTH: usize = 256;

    fn tokenizer(dir: &Path) -> Tokenizer {
        let mut text = String::from(PREFIX);
        for i in 0..20 {
            text.push_str(FILLER);
            text.push_str(&needle(&format!("{:05}", i * 4817)));
        }
        text.push_str(SUFFIX);
        let corpus = dir.join("corpus.txt");
        std::fs::write(&corpus, text).unwrap();
        forgetlab_data::train_bpe(&[corpus], 300, &dir.join("tokenizer.json")).unwrap()
    }

    fn model(seed: u64) -> Model {
        let mut config = ModelConfig::new(32, 1, 320);
        config.d_state = 8;
        config.headdim = 16;
        config.chunk_size = 16;
        Model::init(&config, seed, &Device::flex()).unwrap()
    }

    fn predictions(dir: &Path) -> Vec<PasskeyPrediction> {
        let path = passkey_score::predictions_file(dir, LENGTH);
        passkey_score::read_predictions(&path, Some(LENGTH))
            .unwrap()
            .predictions
    }

    /// Replaces sample 0's prediction by one no model made.
    fn tamper(dir: &Path) {
        let path = passkey_score::predictions_file(dir, LENGTH);
        let preds = predictions(dir);
        std::fs::remove_file(&path).unwrap();
        for mut p in preds {
            if p.idx == 0 {
                p.prediction = "tampered".into();
            }
            passkey_score::append_prediction(&path, &p).unwrap();
        }
    }

    fn tampered(dir: &Path) -> bool {
        predictions(dir).iter().any(|p| p.prediction == "tampered")
    }

    #[test]
    fn predictions_resume_only_for_the_same_model_and_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let tokenizer = tokenizer(tmp.path());
        let dir = tmp.path().join("passkey");
        let run = |model: &Model, config: &PasskeyConfig| {
            evaluate(
                model,
                &tokenizer,
                "r",
                &[LENGTH],
                config,
                &Mitigation::default(),
                &ScanHooks::default(),
                &dir,
            )
            .unwrap()
        };
        let config = PasskeyConfig {
            samples: 2,
            seed: 1,
            ..PasskeyConfig::default()
        };
        let summary = run(&model(1), &config);
        assert_eq!(summary.samples, [2]);
        assert_eq!(predictions(&dir).len(), 2);
        assert!(passkey_score::key_file(&dir, LENGTH).is_file());

        // The same weights (initialised again): resumed, so the planted answer survives.
        tamper(&dir);
        run(&model(1), &config);
        assert!(tampered(&dir), "same key: predictions are kept");
        assert_eq!(predictions(&dir).len(), 2);

        // Another passkey seed: recomputed with the new passkeys.
        let reseeded = PasskeyConfig { seed: 2, ..config };
        run(&model(1), &reseeded);
        assert!(!tampered(&dir));
        let keys: Vec<String> = predictions(&dir).into_iter().map(|p| p.passkey).collect();
        let want: Vec<String> = (0..2)
            .map(|i| passkey::draw_passkey(2, LENGTH, i))
            .collect();
        assert_eq!(keys, want);

        // Other weights: recomputed.
        tamper(&dir);
        run(&model(2), &reseeded);
        assert!(
            !tampered(&dir),
            "a retrained model discards the predictions"
        );
        assert_eq!(predictions(&dir).len(), 2);

        // A file from before predictions were keyed: recomputed.
        tamper(&dir);
        std::fs::remove_file(passkey_score::key_file(&dir, LENGTH)).unwrap();
        run(&model(2), &reseeded);
        assert!(!tampered(&dir));
        assert!(passkey_score::key_file(&dir, LENGTH).is_file());
    }
}

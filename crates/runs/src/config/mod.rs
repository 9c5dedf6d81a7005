//! Configuration files: parsing with errors a researcher can act on.
//!
//! A bad key, a wrong type or an impossible value is reported as one line that names the file,
//! the line and the dotted key (`smoke.toml:12: optim.lr: invalid type: string "x", expected
//! f64`). serde gives us the byte span of the failure; [`locate`] maps spans to dotted keys and
//! keys to lines by walking toml's spanned document.

mod diff;
mod fit;
mod locate;
mod model;
mod run;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use diff::ConfigChange;
pub use fit::FitConfig;
pub use locate::line_of;
pub use model::{GatedDeltaNetConfig, MAMBA2_ONLY_KEYS, MixerKind, ModelConfig, StateSize};
pub use run::{
    DataConfig, DiagnosticsConfig, DiagnosticsPrompt, EvalConfig, EvalText, Mitigation,
    OptimConfig, Packing, PasskeyConfig, Precision, RecallRule, RunConfig, Schedule, StatePassing,
    SyntheticConfig, SyntheticPrompt, SyntheticTask, TrainConfig, VerdictConfig, VerdictCurve,
};

/// A value that parsed but cannot be used, with the dotted key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key, e.g. `model.headdim`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for Invalid {}

/// Why a configuration file could not be used. Displays as a single line that includes the
/// cause, so no variant also reports it as its `source` (a printed chain would repeat it).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Syntax, unknown key or wrong type.
    #[error("{}", located(file.as_deref(), *line, key.as_deref(), message))]
    Parse {
        file: Option<PathBuf>,
        line: Option<usize>,
        key: Option<String>,
        message: String,
    },
    /// A well-typed value that is impossible.
    #[error("{}", located(file.as_deref(), *line, Some(key), message))]
    Invalid {
        file: Option<PathBuf>,
        line: Option<usize>,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { key, .. } => key.as_deref(),
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }

    /// The 1-based line the error is about, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { line, .. } | ConfigError::Invalid { line, .. } => *line,
        }
    }

    fn with_file(mut self, path: &Path) -> Self {
        match &mut self {
            ConfigError::Io { .. } => {}
            ConfigError::Parse { file, .. } | ConfigError::Invalid { file, .. } => {
                *file = Some(path.to_path_buf())
            }
        }
        self
    }
}

fn located(file: Option<&Path>, line: Option<usize>, key: Option<&str>, message: &str) -> String {
    let mut out = String::new();
    if let Some(file) = file {
        out.push_str(&file.display().to_string());
        if let Some(line) = line {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
    } else if let Some(line) = line {
        out.push_str(&format!("line {line}: "));
    }
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        out.push_str(key);
        out.push_str(": ");
    }
    // serde messages can span lines (e.g. "expected one of ..."); keep the error on one line.
    out.push_str(&message.split_whitespace().collect::<Vec<_>>().join(" "));
    out
}

/// Deserialises `source` as `T`, mapping failures to [`ConfigError::Parse`] with line and key.
pub fn parse<T: DeserializeOwned>(source: &str) -> Result<T, ConfigError> {
    toml::from_str(source).map_err(|err| {
        let (line, key) = match err.span() {
            // The whole document (a missing top-level table): no line or key to blame.
            Some(span) if span.is_empty() && span.start == 0 => (None, None),
            Some(span) => (
                Some(locate::line_of(source, span.start)),
                locate::key_at(source, span),
            ),
            None => (None, None),
        };
        ConfigError::Parse {
            file: None,
            line,
            key,
            message: err.message().to_string(),
        }
    })
}

/// Turns a validation failure into a [`ConfigError::Invalid`] pointing at the key's line.
pub fn invalid_in(source: &str, invalid: Invalid) -> ConfigError {
    ConfigError::Invalid {
        file: None,
        line: locate::line_of_key(source, &invalid.key),
        key: invalid.key,
        message: invalid.message,
    }
}

/// Parses `source` and runs `validate` on the result.
pub fn parse_validated<T: DeserializeOwned>(
    source: &str,
    validate: impl FnOnce(&T) -> Result<(), Invalid>,
) -> Result<T, ConfigError> {
    let value: T = parse(source)?;
    validate(&value).map_err(|invalid| invalid_in(source, invalid))?;
    Ok(value)
}

/// Reads `path` (a regular file; anything else is refused unopened), parses and validates
/// it; errors carry the file name.
pub fn load_validated<T: DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> Result<(), Invalid>,
) -> Result<T, ConfigError> {
    let source = crate::regular::read_regular_to_string(path).map_err(|error| ConfigError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_validated(&source, validate).map_err(|e| e.with_file(path))
}

/// The 1-based line of a dotted key in a TOML source, if the key is written there.
pub fn line_of_key(source: &str, key: &str) -> Option<usize> {
    locate::line_of_key(source, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOKE: &str = r#"
seed = 3

[model]
d_model = 64
n_layer = 2
d_state = 16
headdim = 16
vocab_size = 256

[data]
train = ["shards/*.jsonl"]
tokenizer = "tok.json"

[train]
seq_len = 128
tokens_per_step = 1024
total_tokens = 102400

[optim]
lr = 1e-3
"#;

    #[test]
    fn smoke_config_parses_with_defaults() {
        let c = RunConfig::from_toml_str(SMOKE).unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(c.model.chunk_size, 64);
        assert_eq!(c.train.total_steps(), 100);
        assert_eq!(c.train.sequences_per_step(), 8);
        assert_eq!(c.optim.schedule, Schedule::Cosine);
        assert_eq!(c.eval.horizon_for(c.train.seq_len), 1024);
        assert!(c.model.dt_limit.1.is_infinite());
        // Round trip through the resolved form written into run directories.
        let again = RunConfig::from_toml_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let src = SMOKE.replace("lr = 1e-3", "lr = 1e-3\nlearning_rate = 2");
        let err = RunConfig::from_toml_str(&src).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.line(), Some(22), "{text}");
        assert!(text.contains("learning_rate"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let src = SMOKE.replace("lr = 1e-3", "lr = \"fast\"");
        let err = RunConfig::from_toml_str(&src).unwrap_err();
        assert_eq!(err.key(), Some("optim.lr"), "{err}");
        assert_eq!(err.line(), Some(21), "{err}");
        assert!(
            err.to_string()
                .starts_with("line 21: optim.lr: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn impossible_value_names_key_and_line() {
        let src = SMOKE.replace("headdim = 16", "headdim = 48");
        let err = RunConfig::from_toml_str(&src).unwrap_err();
        assert_eq!(err.key(), Some("model.headdim"));
        assert_eq!(err.line(), Some(8));
        let src = SMOKE.replace("tokens_per_step = 1024", "tokens_per_step = 1000");
        let err = RunConfig::from_toml_str(&src).unwrap_err();
        assert_eq!(err.key(), Some("train.tokens_per_step"));
        assert_eq!(err.line(), Some(17));
    }

    #[test]
    fn workers_split_the_step_unless_micro_batches_are_given() {
        let c = RunConfig::from_toml_str(SMOKE).unwrap();
        assert_eq!(
            (c.train.workers(), c.train.sequences_per_micro_batch()),
            (1, 8)
        );
        let with = |extra: &str| {
            SMOKE.replace(
                "total_tokens = 102400",
                &format!("total_tokens = 102400\n{extra}"),
            )
        };
        let c = RunConfig::from_toml_str(&with("workers = 4")).unwrap();
        assert_eq!(c.train.sequences_per_micro_batch(), 2);
        let c = RunConfig::from_toml_str(&with("device = \"cpu,cpu\"")).unwrap();
        assert_eq!(c.train.workers(), 2);
        let c = RunConfig::from_toml_str(&with("workers = 4\nmicro_batch_tokens = 512")).unwrap();
        assert_eq!(c.train.sequences_per_micro_batch(), 4);
        // 9 sequences do not split into 2 equal micro-batches.
        let nine = with("workers = 2").replace("tokens_per_step = 1024", "tokens_per_step = 1152");
        let err = RunConfig::from_toml_str(&nine).unwrap_err();
        assert_eq!(err.key(), Some("train.workers"), "{err}");
        let line = nine.lines().position(|l| l.starts_with("workers")).unwrap() + 1;
        assert_eq!(err.line(), Some(line), "{err}");
        let err = RunConfig::from_toml_str(&with("workers = 0")).unwrap_err();
        assert_eq!(err.key(), Some("train.workers"), "{err}");
    }

    #[test]
    fn execution_settings_do_not_change_the_experiment() {
        let base = RunConfig::from_toml_str(SMOKE).unwrap();
        let mut moved = base.clone();
        moved.train.device = "cuda:0,cuda:1".to_string();
        moved.train.workers = Some(4);
        moved.train.threads = Some(8);
        assert!(base.same_experiment(&moved));
        let mut other = base.clone();
        other.train.seq_len = 256;
        assert!(!base.same_experiment(&other));
        let mut other = base.clone();
        other.train.precision = Precision::Bf16;
        assert!(!base.same_experiment(&other));
    }

    #[test]
    fn a_missing_table_is_named_not_blamed_on_the_first_key() {
        for first in ["seed = 3", "name = \"x\""] {
            let src = SMOKE.replace("seed = 3", first);
            let start = src.find("[model]").unwrap();
            let end = src.find("[data]").unwrap();
            let src = format!("{}{}", &src[..start], &src[end..]);
            let err = RunConfig::from_toml_str(&src).unwrap_err();
            let text = err.to_string();
            assert_eq!(err.key(), None, "{text}");
            assert_eq!(err.line(), None, "{text}");
            assert_eq!(text, "missing field `model`");
        }
        // A key missing inside a table is blamed on that table, at its header.
        let src = SMOKE.replace("n_layer = 2\n", "");
        let err = RunConfig::from_toml_str(&src).unwrap_err();
        assert_eq!(err.key(), Some("model"), "{err}");
        assert_eq!(err.line(), Some(4), "{err}");
    }

    #[test]
    fn eval_settings_are_checked_with_the_run_config() {
        let with_eval = |eval: &str| format!("{SMOKE}\n{eval}\n");
        let passkey = |l: &str| format!("[eval.passkey]\n{l}");
        let verdict = |l: &str| format!("[eval.verdict]\n{l}");
        for (eval, key, line) in [
            (passkey("lengths = [0, 256]"), "eval.passkey.lengths[0]", 24),
            (passkey("lengths = [512, 256]"), "eval.passkey.lengths", 24),
            (passkey("lengths = [256, 256]"), "eval.passkey.lengths", 24),
            (passkey("samples = 0"), "eval.passkey.samples", 24),
            (verdict("epsilon = inf"), "eval.verdict.epsilon", 24),
            (verdict("epsilon = nan"), "eval.verdict.epsilon", 24),
            (verdict("confidence = 1.0"), "eval.verdict.confidence", 24),
        ] {
            let err = RunConfig::from_toml_str(&with_eval(&eval)).unwrap_err();
            assert_eq!(err.key(), Some(key), "{eval}: {err}");
            assert_eq!(err.line(), Some(line), "{eval}: {err}");
        }
        let ok = RunConfig::from_toml_str(&with_eval("[eval.passkey]\nlengths = [128, 256]"));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn file_errors_carry_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, SMOKE.replace("n_layer = 2", "n_layer = -2")).unwrap();
        let err = RunConfig::load(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:6: model.n_layer:", path.display())),
            "{text}"
        );
    }
}

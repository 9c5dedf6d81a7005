//! forgetlab-eval: the evaluation science of forgetlab.
//!
//! The model-independent half lives here as plain Rust over slices and the
//! [`forgetlab_runs`] result types, so it builds and tests in seconds:
//!
//! - [`bucket`]: per-position losses of many windows -> bucketed curves with standard errors,
//!   and the position-matched baseline beside them.
//! - [`ngram`]: the count n-gram baseline (interpolated modified Kneser-Ney).
//! - [`ranges`]: the verdict's position ranges and per-window range means.
//! - [`verdict`]: the forget criterion and per-head memory lengths -> `verdict.json`.
//! - [`passkey_score`]: passkey accuracy, heatmap, T_recall, resumable prediction files.
//! - [`law`]: T_forget per state size and the T_forget(N_S) / T_recall(N_S) fits -> `law.json`.
//! - [`experiment`]: `forgetlab fit` over an experiment directory.
//!
//! The model-dependent half runs trained models with the streaming forward:
//!
//! - [`per_position`]: per-token loss far past the training length, memory independent of it;
//! - [`passkey`]: the paper's passkey retrieval with greedy recurrent decoding;
//! - [`diagnostics`]: decays, first-token retention and state statistics over time;
//! - [`mitigation`]: RRI, Δ scaling, state-norm clipping and the exact sliding window;
//! - [`run_eval`]: everything above for one run directory (`forgetlab eval`).

pub mod bucket;
pub mod diagnostics;
pub mod experiment;
pub mod law;
pub mod mitigation;
pub mod ngram;
pub mod passkey;
pub mod passkey_score;
pub mod per_position;
pub mod ranges;
pub mod run_eval;
#[cfg(test)]
pub(crate) mod simulate;
pub mod verdict;

pub use bucket::{BucketAccumulator, BucketError, PairedAccumulator};
pub use experiment::{ExperimentError, ExperimentFit, fit_experiment, fit_options};
pub use law::{LawError, LawOptions, RunOutcome, law_report};
pub use ngram::{NgramError, NgramModel};
pub use passkey_score::{PasskeyError, summarize as summarize_passkey};
pub use verdict::{VerdictError, VerdictInput, decide, memory_lengths};

//! forgetlab-stats: the statistics of forgetlab's science, without burn.
//!
//! Everything that turns measured losses and passkey answers into curves, verdicts and laws is
//! plain Rust over slices and the [`forgetlab_runs`] result types, so `forgetlab fit` and the
//! tests of the science build and run in seconds, never waiting on a tensor library. The half
//! that runs models to produce the measurements is `forgetlab-eval`.
//!
//! - [`bucket`]: per-position losses of many windows -> bucketed curves with standard errors,
//!   and the position-matched baseline beside them.
//! - [`ngram`]: the count n-gram baseline (interpolated modified Kneser-Ney).
//! - [`ranges`]: the verdict's position ranges and per-window range means.
//! - [`verdict`]: the forget criterion and per-head memory lengths -> `verdict.json`.
//! - [`passkey_score`]: passkey accuracy, heatmap, T_recall, resumable prediction files.
//! - [`regression`], [`bootstrap`]: least squares and percentile bootstrap intervals.
//! - [`law`]: T_forget per state size and the T_forget(N_S) / T_recall(N_S) fits -> `law.json`.
//! - [`experiment`]: `forgetlab fit` over an experiment directory.

pub mod bootstrap;
pub mod bucket;
pub mod experiment;
pub mod law;
pub mod ngram;
pub mod passkey_score;
pub mod ranges;
pub mod regression;
#[cfg(test)]
pub(crate) mod simulate;
pub mod verdict;

pub use bucket::{BucketAccumulator, BucketError, PairedAccumulator};
pub use experiment::{ExperimentError, ExperimentFit, fit_experiment, fit_options};
pub use law::{LawError, LawOptions, RunOutcome, law_report};
pub use ngram::{NgramError, NgramModel};
pub use passkey_score::{PasskeyError, summarize as summarize_passkey};
pub use verdict::{VerdictError, VerdictInput, decide, memory_lengths};

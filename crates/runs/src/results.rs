//! Evaluation results as they are stored in `eval/` and at the experiment level. The evaluator
//! writes them; the sweep status table, the dashboard and the report read them.

use serde::{Deserialize, Serialize};

use crate::config::{Mitigation, RecallRule, VerdictCurve};

/// `eval/per_position*.json`: bucketed per-token loss from position 0 to the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerPositionReport {
    pub run: String,
    /// Training length T_train.
    pub seq_len: usize,
    pub horizon: usize,
    pub bucket: usize,
    pub state_size: u64,
    pub mitigation: Mitigation,
    pub curves: Vec<LossCurve>,
}

/// One prompt's bucketed loss curve, averaged over `sequences` windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossCurve {
    /// `text`, `newlines` or `capital`.
    pub prompt: String,
    pub sequences: usize,
    pub buckets: Vec<LossBucket>,
}

/// Mean loss over target positions `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossBucket {
    pub start: usize,
    pub end: usize,
    /// Model loss in nats, averaged over positions and windows.
    pub loss: f64,
    /// Standard error of `loss` across windows.
    pub stderr: f64,
    /// Position-matched n-gram baseline loss on the same windows.
    #[serde(default)]
    pub ngram: Option<f64>,
    /// Loss of the experiment's reference run (same N_S, longest training length).
    #[serde(default)]
    pub reference: Option<f64>,
}

impl LossBucket {
    /// Model loss minus the n-gram baseline.
    pub fn excess(&self) -> Option<f64> {
        self.ngram.map(|b| self.loss - b)
    }
}

/// The numbers one forget test looked at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionResult {
    /// Which curve: `excess`, `raw` or `reference`.
    pub curve: String,
    /// Mean bucket value over [T_train/2, T_train).
    pub in_length_mean: f64,
    /// Largest bucket value beyond T_train.
    pub beyond_max: f64,
    /// Position (bucket start) of that maximum.
    pub beyond_argmax: usize,
    /// in_length_mean + epsilon.
    pub threshold: f64,
    /// Least-squares slope over the last half of the horizon, nats per 1K tokens.
    pub slope_per_1k: f64,
    pub passes_max: bool,
    pub passes_slope: bool,
    /// Both tests pass.
    pub forgets: bool,
}

/// Effective memory length of each head: tokens until the decay product drops below 1/e.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryLengths {
    /// `[layer][head]`, in tokens (may be infinite-like large numbers for alpha near 1).
    pub per_head: Vec<Vec<f64>>,
    pub max: f64,
    pub median: f64,
    /// Whether any head remembers past T_train; if none does, the run cannot show the effect.
    pub any_beyond_train_len: bool,
}

/// `eval/verdict.json`: did the run learn to forget?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForgetVerdict {
    pub run: String,
    pub seq_len: usize,
    pub state_size: u64,
    /// `Some(true)` forgets, `Some(false)` fails past T_train, `None` undetermined.
    pub forgets: Option<bool>,
    /// The curve the decision used.
    pub decided_on: VerdictCurve,
    pub prompt: String,
    pub epsilon: f64,
    pub max_slope_per_1k: f64,
    /// Excess over the n-gram baseline (when a baseline exists).
    #[serde(default)]
    pub excess: Option<CriterionResult>,
    /// Raw loss, reported beside the decision.
    pub raw: CriterionResult,
    /// Excess over the experiment's reference run (filled by `forgetlab fit`).
    #[serde(default)]
    pub reference: Option<CriterionResult>,
    #[serde(default)]
    pub memory: Option<MemoryLengths>,
    /// Human-readable explanation of the decision.
    pub note: String,
}

/// One passkey sample (`eval/passkey/preds_<len>.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyPrediction {
    pub idx: usize,
    /// Context length in tokens.
    pub length: usize,
    /// Relative position of the needle in (0, 1).
    pub depth: f64,
    pub passkey: String,
    pub prediction: String,
    pub correct: bool,
}

/// `eval/passkey/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeySummary {
    pub run: String,
    pub lengths: Vec<usize>,
    pub samples_per_length: usize,
    /// Accuracy per length.
    pub accuracy: Vec<f64>,
    /// `[depth_bin][length]` accuracy; `None` when a bin had no sample.
    pub heatmap: Vec<Vec<Option<f64>>>,
    pub depth_bins: usize,
    pub threshold: f64,
    /// Longest length whose accuracy reaches the threshold (see `recall_rule`).
    pub t_recall: Option<usize>,
    pub mitigation: Mitigation,
    /// Samples actually scored per length (parallel to `lengths`); a length with fewer than
    /// `samples_per_length` is incomplete and does not count for T_recall.
    #[serde(default)]
    pub samples: Vec<usize>,
    /// How `t_recall` was read off `accuracy`.
    #[serde(default)]
    pub recall_rule: RecallRule,
}

/// `eval/diagnostics.json`: decay and state statistics per layer and head over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    pub run: String,
    pub prompt: String,
    pub seq_len: usize,
    pub length: usize,
    pub sample_every: usize,
    /// Token positions (1-based counts of tokens seen) at which samples were taken.
    pub positions: Vec<usize>,
    pub layers: Vec<LayerDiagnostics>,
    pub mitigation: Mitigation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerDiagnostics {
    pub layer: usize,
    pub heads: Vec<HeadDiagnostics>,
}

/// Time series for one head, one value per sampled position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadDiagnostics {
    pub head: usize,
    /// Mean decay alpha_t over the tokens of each sampling interval.
    pub alpha_mean: Vec<f64>,
    /// log alpha_{1:t}: the first token's retention strength, in log space.
    pub log_retention_first: Vec<f64>,
    pub state_mean: Vec<f64>,
    pub state_var: Vec<f64>,
    pub state_rms: Vec<f64>,
    /// Frobenius norm of the head's state.
    pub state_norm: Vec<f64>,
    /// Time-mean alpha over the whole sequence.
    pub alpha_time_mean: f64,
    /// Tokens until the mean decay product drops below 1/e.
    pub memory_length: f64,
}

/// A straight-line fit y = a x + b with its quality and bootstrap intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    pub a: f64,
    pub b: f64,
    pub r2: f64,
    pub n: usize,
    /// Bootstrap confidence intervals at [`LinearFit::confidence`].
    pub a_ci: (f64, f64),
    pub b_ci: (f64, f64),
    /// Whether the (0, 0) point was included.
    pub with_origin: bool,
    /// Pointwise bootstrap band of the line at [`LinearFit::confidence`]: (x, low, high), the
    /// percentiles of the resampled lines' values at each x, from 0 to 1.25 times the largest x
    /// fitted. Empty in law files written before it existed.
    #[serde(default)]
    pub band: Vec<(f64, f64, f64)>,
    /// Confidence level of the intervals and the band (`[fit] confidence`); 0.95 in law files
    /// written before it was recorded, the only level they could have used.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
}

fn default_confidence() -> f64 {
    0.95
}

/// An exponential fit y = c (k^x - 1) + d.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExponentialFit {
    pub c: f64,
    pub k: f64,
    pub d: f64,
    pub r2: f64,
    pub n: usize,
    pub k_ci: (f64, f64),
    pub c_ci: (f64, f64),
    pub d_ci: (f64, f64),
    pub with_origin: bool,
}

/// One state size's T_forget as found in an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForgetPoint {
    pub state_size: u64,
    /// Training lengths tried at this state size, ascending.
    pub lengths: Vec<usize>,
    /// Verdict per length (`None` = undetermined or not evaluated).
    pub verdicts: Vec<Option<bool>>,
    /// Smallest training length whose run forgets.
    pub t_forget: Option<usize>,
    /// True when a shorter length that does not forget was also tried, so T_forget is
    /// bracketed; false when the smallest length tried already forgets (an upper bound only)
    /// or none forgets.
    pub bracketed: bool,
    pub note: String,
}

/// One state size's T_recall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallPoint {
    pub state_size: u64,
    /// From the run with the longest training length at this state size.
    pub run: String,
    pub t_recall: Option<usize>,
}

/// `law.json`: the experiment's scaling laws, in the paper's units (x: millions of state
/// scalars; y: thousands of tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LawReport {
    pub experiment: String,
    pub forget_points: Vec<ForgetPoint>,
    pub linear: Option<LinearFit>,
    pub linear_with_origin: Option<LinearFit>,
    pub recall_points: Vec<RecallPoint>,
    pub exponential: Option<ExponentialFit>,
    /// The paper's line, T_forget[K] = 5.172 N_S[M] - 4.469.
    pub paper_linear: (f64, f64),
    /// The paper's law, T_recall[K] = 4.756 (1.365^N_S[M] - 1) - 0.742.
    pub paper_exponential: (f64, f64, f64),
    pub notes: Vec<String>,
}

/// The paper's published T_forget line: (slope K tokens per M scalars, intercept K tokens).
pub const PAPER_FORGET_LINE: (f64, f64) = (5.172, -4.469);
/// The paper's T_recall law (c, k, d): T = c (k^{N_S} - 1) + d.
pub const PAPER_RECALL_LAW: (f64, f64, f64) = (4.756, 1.365, -0.742);

#[cfg(test)]
mod tests {
    use super::*;

    /// A linear fit from a law file written before the band and the confidence level were
    /// recorded still reads: no band, and the 0.95 those files always used.
    #[test]
    fn old_linear_fits_read_with_defaults() {
        let old = r#"{"a": 5.0, "b": -4.0, "r2": 0.9, "n": 3, "a_ci": [4.0, 6.0],
                      "b_ci": [-5.0, -3.0], "with_origin": false}"#;
        let fit: LinearFit = serde_json::from_str(old).expect("old law files still read");
        assert!(fit.band.is_empty());
        assert_eq!(fit.confidence, 0.95);
    }
}

//! Evaluation results as they are stored in `eval/` and at the experiment level. The evaluator
//! writes them; the sweep status table, the dashboard and the report read them.

use serde::{Deserialize, Serialize};

use crate::config::{Mitigation, MixerKind, RecallRule, VerdictCurve};

/// The version of the forget criterion that [`ForgetVerdict`] files are written with. Version 1
/// (files without a `version`) compared the max of narrow buckets to an epsilon and cannot be
/// read as a current verdict; `forgetlab eval per-position` and `forgetlab eval verdict`
/// regenerate them.
pub const VERDICT_VERSION: u32 = 2;

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
    /// The verdict's ranges, each measured on its own disjoint windows (text curves written
    /// since the version-2 criterion); the verdict is recomputed from these.
    #[serde(default)]
    pub ranges: Option<RangeSamples>,
    /// Per-window means of the `windows` above over dyadic blocks `[0, 1), [1, 2), [2, 4), ...`,
    /// so runs trained at different lengths can be compared window by window on the same text.
    #[serde(default)]
    pub blocks: Option<WindowRanges>,
}

/// The verdict's position ranges (the in-length reference `[T/2, T)` first, then ranges that
/// double past T_train), each measured on as many disjoint windows of `end + 1` tokens as the
/// evaluation's token budget allows, so narrow early ranges get many windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeSamples {
    pub ranges: Vec<RangeSample>,
    /// Identifies the evaluation text (source, seed, held-out tokens).
    pub text_id: String,
}

/// One range's per-window mean loss, summarised over its windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeSample {
    pub start: usize,
    pub end: usize,
    /// Disjoint windows the range was measured on (window = `end + 1` tokens).
    pub windows: usize,
    /// Mean over windows of each window's mean model loss over the range.
    pub mean: f64,
    /// Standard deviation of those per-window means.
    pub sd: f64,
    /// The n-gram baseline on the same positions, when it ran.
    #[serde(default)]
    pub ngram: Option<BaselineSample>,
}

/// The n-gram baseline's side of a [`RangeSample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSample {
    pub mean: f64,
    pub sd: f64,
    /// Standard deviation over windows of (model mean - baseline mean).
    pub excess_sd: f64,
}

/// Each window's mean loss over a few position ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRanges {
    /// `[start, end)` target positions of each range.
    pub ranges: Vec<(usize, usize)>,
    /// `[window][range]`: the model's mean loss.
    pub model: Vec<Vec<f64>>,
    /// `[window][range]`: the n-gram baseline's mean loss on the same positions, when it ran.
    #[serde(default)]
    pub ngram: Option<Vec<Vec<f64>>>,
    /// Identifies the evaluation windows (text source, seed, count, held-out tokens), so curves
    /// of two runs are paired only when they were scored on the same windows.
    #[serde(default)]
    pub windows_id: String,
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
    /// Standard error across windows of the paired difference `loss - ngram` (each window's
    /// bucket mean minus its own baseline), when the baseline ran.
    #[serde(default)]
    pub excess_stderr: Option<f64>,
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

/// One range past T_train: how far the loss rose above the in-length reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeRise {
    pub start: usize,
    pub end: usize,
    /// Windows the range was measured on.
    #[serde(default)]
    pub windows: usize,
    /// The range's mean minus the in-length mean, in nats.
    pub rise: f64,
    /// Standard error of `rise` (the two means come from separate windows, or from the same
    /// windows paired, as the test says).
    pub stderr: f64,
    /// Simultaneous confidence interval of `rise` (Bonferroni over the ranges).
    pub low: f64,
    pub high: f64,
}

/// What a rise test concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Forgets,
    DoesNotForget,
    Undetermined,
}

impl Outcome {
    /// `Some(true)` forgets, `Some(false)` does not, `None` undetermined.
    pub fn forgets(self) -> Option<bool> {
        match self {
            Outcome::Forgets => Some(true),
            Outcome::DoesNotForget => Some(false),
            Outcome::Undetermined => None,
        }
    }
}

/// The rise test on one curve (`raw`, `excess` over the n-gram, or `reference` against the
/// experiment's longest-trained run of the same state size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiseTest {
    pub curve: String,
    /// Windows the in-length mean was measured on.
    pub windows: usize,
    /// The in-length reference range `[T/2, T)` and the curve's mean over it.
    pub in_length: (usize, usize),
    pub in_length_mean: f64,
    /// Every range past T_train.
    pub ranges: Vec<RangeRise>,
    /// Index into `ranges` of the range that decided (largest lower bound for "does not
    /// forget", largest upper bound otherwise).
    pub decisive: usize,
    pub outcome: Outcome,
    /// Windows that would shrink the widest interval below the margin at the same spread
    /// (about; `None` when already determined).
    #[serde(default)]
    pub windows_needed: Option<usize>,
}

impl RiseTest {
    /// The deciding range.
    pub fn decisive_range(&self) -> &RangeRise {
        &self.ranges[self.decisive]
    }
}

/// Effective memory of each head, measured token by token: at token t, the number of tokens
/// back until the product of decays since then falls below 1/e (from prefix sums of log alpha).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryLengths {
    /// `[layer][head]` median over tokens, in tokens ([`MEMORY_LENGTH_CAP`] when the decay
    /// never reaches 1/e within the prompt at most tokens).
    pub per_head: Vec<Vec<f64>>,
    /// `[layer][head]` maximum over tokens.
    #[serde(default)]
    pub per_head_max: Vec<Vec<f64>>,
    /// Largest per-head median: the memory a head has at a typical token.
    pub max: f64,
    /// Median of the per-head medians.
    pub median: f64,
    /// Whether some head's median memory exceeds T_train; if none does, the run forgets
    /// trivially and cannot show the effect.
    pub any_beyond_train_len: bool,
}

/// Upper bound on a reported memory length, standing for "longer than the prompt" or "never
/// forgets" (alpha = 1), since JSON has no infinity.
pub const MEMORY_LENGTH_CAP: f64 = 1e15;

/// Why a verdict is undetermined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Undetermined {
    /// The interval straddles the margin: about `windows_needed` windows would decide.
    TooNoisy { windows_needed: Option<usize> },
    /// No head remembers past T_train at a typical token: the run forgets trivially.
    MemoryTooShort { longest_median: f64 },
    /// The horizon holds no range past T_train long enough to test.
    HorizonTooShort { horizon: usize },
}

/// `eval/verdict.json`: did the run learn to forget?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForgetVerdict {
    /// Criterion version ([`VERDICT_VERSION`]); 1 for files written before it was recorded.
    #[serde(default = "verdict_version_1")]
    pub version: u32,
    pub run: String,
    pub seq_len: usize,
    pub state_size: u64,
    /// `Some(true)` forgets, `Some(false)` fails past T_train, `None` undetermined.
    pub forgets: Option<bool>,
    /// The curve the decision used.
    pub decided_on: VerdictCurve,
    pub prompt: String,
    /// The margin in nats: rises confidently below it are flat, confidently above it fail.
    #[serde(default)]
    pub margin: f64,
    /// Confidence level of the simultaneous intervals.
    #[serde(default)]
    pub confidence: f64,
    /// The deciding test (on `decided_on`).
    #[serde(default)]
    pub decision: Option<RiseTest>,
    /// Every curve's test: the decisive one and the ones reported beside it.
    #[serde(default)]
    pub tests: Vec<RiseTest>,
    /// Why the verdict is undetermined, when it is.
    #[serde(default)]
    pub undetermined: Option<Undetermined>,
    #[serde(default)]
    pub memory: Option<MemoryLengths>,
    /// Human-readable explanation of the decision.
    pub note: String,
}

fn verdict_version_1() -> u32 {
    1
}

impl ForgetVerdict {
    /// Whether this file was written by the current criterion.
    pub fn is_current(&self) -> bool {
        self.version == VERDICT_VERSION
    }

    /// The deciding range's rise and its interval, `(rise, low, high)`.
    pub fn effect(&self) -> Option<(f64, f64, f64)> {
        self.decision.as_ref().map(|d| {
            let r = d.decisive_range();
            (r.rise, r.low, r.high)
        })
    }

    /// The test on one curve, by name.
    pub fn test(&self, curve: &str) -> Option<&RiseTest> {
        self.tests.iter().find(|t| t.curve == curve)
    }
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
    /// Median over tokens of the token-by-token memory length (tokens back until the decay
    /// product since then falls below 1/e); see [`MemoryLengths`].
    pub memory_length: f64,
    /// Maximum over tokens of the same; `None` in files written before memory was measured
    /// token by token (their `memory_length` came from the mean log decay and is biased short).
    #[serde(default)]
    pub memory_max: Option<f64>,
}

/// A straight-line fit y = a x + b with its quality and bootstrap intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    pub a: f64,
    pub b: f64,
    pub r2: f64,
    /// Points fitted, the (0, 0) point included when `with_origin`.
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

impl LinearFit {
    /// State sizes behind the fit (the origin not counted).
    pub fn state_sizes(&self) -> usize {
        self.n.saturating_sub(usize::from(self.with_origin))
    }

    /// Whether so few state sizes were resampled that the intervals are rough.
    pub fn is_rough(&self) -> bool {
        self.state_sizes() <= ROUGH_FIT_POINTS
    }
}

/// With this many state sizes or fewer, a bootstrap over state sizes draws from a handful of
/// distinct resamples: its intervals are rough, and reports say so.
pub const ROUGH_FIT_POINTS: usize = 4;

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
    /// Points fitted, the (0, 0) point included when `with_origin`.
    pub n: usize,
    pub k_ci: (f64, f64),
    pub c_ci: (f64, f64),
    pub d_ci: (f64, f64),
    pub with_origin: bool,
}

impl ExponentialFit {
    /// State sizes behind the fit (the origin not counted).
    pub fn state_sizes(&self) -> usize {
        self.n.saturating_sub(usize::from(self.with_origin))
    }

    /// Whether so few state sizes were resampled that the intervals are rough.
    pub fn is_rough(&self) -> bool {
        self.state_sizes() <= ROUGH_FIT_POINTS
    }
}

/// Whether a point's quantity was measured or only bounded by the lengths tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Censoring {
    /// Measured to the resolution of the lengths tried (T_forget: bracketed).
    Exact,
    /// The quantity is at least (T_recall) or above (T_forget) `tokens`.
    LowerBound,
    /// The quantity is at most (T_forget) or below (T_recall) `tokens`.
    UpperBound,
}

impl Censoring {
    /// `exact`, `lower bound`, `upper bound`.
    pub fn label(self) -> &'static str {
        match self {
            Censoring::Exact => "exact",
            Censoring::LowerBound => "lower bound",
            Censoring::UpperBound => "upper bound",
        }
    }
}

/// A point's value in tokens and whether it is exact or a bound. Only exact points are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    pub tokens: usize,
    pub kind: Censoring,
}

impl Estimate {
    pub fn is_exact(&self) -> bool {
        self.kind == Censoring::Exact
    }
}

/// One state size's T_forget as found in an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ForgetPointFile")]
pub struct ForgetPoint {
    /// The mixer of this point's runs; written only when the experiment holds a mixer other
    /// than Mamba-2 (`None`: Mamba-2, as in every law file written before there was a choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixer: Option<MixerKind>,
    /// N_S, SSM states plus convolution caches.
    pub state_size: u64,
    /// The SSM-state part of N_S (`None` in law files written before it was recorded).
    pub ssm_state_size: Option<u64>,
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
    /// T_forget exact (bracketed: `tokens` = `t_forget`), an upper bound (the shortest length
    /// tried already forgets: T_forget <= `tokens`) or a lower bound (no length forgets:
    /// T_forget > `tokens`, the longest length that does not); `None` without a determined
    /// verdict.
    pub estimate: Option<Estimate>,
    pub note: String,
}

impl ForgetPoint {
    /// The estimate the lengths and verdicts imply (how law files without `estimate` read).
    pub fn implied_estimate(
        lengths: &[usize],
        verdicts: &[Option<bool>],
        t_forget: Option<usize>,
        bracketed: bool,
    ) -> Option<Estimate> {
        match t_forget {
            Some(tokens) => Some(Estimate {
                tokens,
                kind: if bracketed {
                    Censoring::Exact
                } else {
                    Censoring::UpperBound
                },
            }),
            None => lengths
                .iter()
                .zip(verdicts)
                .filter(|(_, v)| **v == Some(false))
                .map(|(l, _)| *l)
                .max()
                .map(|tokens| Estimate {
                    tokens,
                    kind: Censoring::LowerBound,
                }),
        }
    }

    /// The share of N_S held by the convolution caches, when the SSM part is known.
    pub fn conv_share(&self) -> Option<f64> {
        self.ssm_state_size
            .filter(|_| self.state_size > 0)
            .map(|ssm| 1.0 - ssm as f64 / self.state_size as f64)
    }
}

/// [`ForgetPoint`] as stored, with the fields added since law files were first written.
#[derive(Deserialize)]
struct ForgetPointFile {
    #[serde(default)]
    mixer: Option<MixerKind>,
    state_size: u64,
    #[serde(default)]
    ssm_state_size: Option<u64>,
    lengths: Vec<usize>,
    verdicts: Vec<Option<bool>>,
    t_forget: Option<usize>,
    bracketed: bool,
    #[serde(default)]
    estimate: Option<Estimate>,
    note: String,
}

impl From<ForgetPointFile> for ForgetPoint {
    fn from(f: ForgetPointFile) -> Self {
        let estimate = f.estimate.or_else(|| {
            ForgetPoint::implied_estimate(&f.lengths, &f.verdicts, f.t_forget, f.bracketed)
        });
        Self {
            mixer: f.mixer,
            state_size: f.state_size,
            ssm_state_size: f.ssm_state_size,
            lengths: f.lengths,
            verdicts: f.verdicts,
            t_forget: f.t_forget,
            bracketed: f.bracketed,
            estimate,
            note: f.note,
        }
    }
}

/// How the model behind a T_recall met the passkey task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retrieval {
    /// Trained on text only: passkey is zero-shot, as in the paper.
    #[default]
    ZeroShot,
    /// Trained with synthetic passkey sequences (`[data.synthetic]`): retrieval is
    /// in-distribution and kept out of the zero-shot law.
    InDistribution,
}

impl Retrieval {
    pub fn label(self) -> &'static str {
        match self {
            Retrieval::ZeroShot => "zero-shot",
            Retrieval::InDistribution => "in-distribution",
        }
    }
}

/// One state size's T_recall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RecallPointFile")]
pub struct RecallPoint {
    /// The mixer, as in [`ForgetPoint::mixer`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixer: Option<MixerKind>,
    pub state_size: u64,
    /// The SSM-state part of N_S (`None` in law files written before it was recorded).
    pub ssm_state_size: Option<u64>,
    /// From the run with the longest training length at this state size.
    pub run: String,
    pub t_recall: Option<usize>,
    /// Whether that run has a passkey summary; `None` in law files written before this was
    /// recorded that have no T_recall (not run, or no length passed: they cannot tell).
    pub passkey_ran: Option<bool>,
    /// Passkey lengths scored in full, ascending (empty when passkey did not run, and in old
    /// law files).
    pub lengths: Vec<usize>,
    /// T_recall exact, a lower bound (the longest length tried passes: T_recall >= `tokens`)
    /// or an upper bound (no length passes: T_recall < `tokens`, the shortest length tried);
    /// `None` when passkey did not run.
    pub estimate: Option<Estimate>,
    /// Zero-shot, or in-distribution for a model trained on synthetic passkey sequences.
    pub retrieval: Retrieval,
}

/// [`RecallPoint`] as stored, with the fields added since law files were first written.
#[derive(Deserialize)]
struct RecallPointFile {
    #[serde(default)]
    mixer: Option<MixerKind>,
    state_size: u64,
    #[serde(default)]
    ssm_state_size: Option<u64>,
    run: String,
    t_recall: Option<usize>,
    #[serde(default)]
    passkey_ran: Option<bool>,
    #[serde(default)]
    lengths: Vec<usize>,
    #[serde(default)]
    estimate: Option<Estimate>,
    #[serde(default)]
    retrieval: Retrieval,
}

impl From<RecallPointFile> for RecallPoint {
    fn from(f: RecallPointFile) -> Self {
        let estimate = f.estimate.or(f.t_recall.map(|tokens| Estimate {
            tokens,
            kind: Censoring::Exact,
        }));
        Self {
            mixer: f.mixer,
            state_size: f.state_size,
            ssm_state_size: f.ssm_state_size,
            run: f.run,
            t_recall: f.t_recall,
            passkey_ran: f.passkey_ran.or(f.t_recall.map(|_| true)),
            lengths: f.lengths,
            estimate,
            retrieval: f.retrieval,
        }
    }
}

/// Whether the T_recall points pin down the curvature of `c (k^x - 1) + d`, and the straight
/// line that describes them in the experiment's own scale. Over a narrow x range k^x is a line
/// to within the noise, and the k of the best fit is then set by noise alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallShape {
    /// Whether the exponential's curvature is distinguishable from a straight line.
    pub identifiable: bool,
    /// p-value of the extra-sum-of-squares F test of the exponential against a straight line
    /// on the same points (small: the curvature is real); `None` when it cannot be computed.
    pub curvature_p: Option<f64>,
    /// Largest gap between the best-fitting exponential and its chord over the points' x
    /// range, as a fraction of its rise there (0: straight).
    pub departure: f64,
    /// The same for the paper's k over the same range.
    pub paper_departure: f64,
    /// The x range fitted, in millions of scalars (from 0 when the origin is fitted).
    pub x_range: (f64, f64),
    /// Why the curvature is not identifiable, when it is not.
    #[serde(default)]
    pub reason: Option<String>,
    /// A straight line through the same points (the origin included as in the exponential).
    #[serde(default)]
    pub line: Option<LinearFit>,
}

/// The fits against one measure of the state size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFits {
    pub linear: Option<LinearFit>,
    pub linear_with_origin: Option<LinearFit>,
    /// The zero-shot T_recall law, when its curvature is identifiable.
    pub exponential: Option<ExponentialFit>,
    #[serde(default)]
    pub recall_shape: Option<RecallShape>,
}

/// One mixer's law in an experiment that holds several: its points and the same fits the
/// top level of [`LawReport`] carries for a single-mixer experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixerLaw {
    pub mixer: MixerKind,
    pub forget_points: Vec<ForgetPoint>,
    pub linear: Option<LinearFit>,
    pub linear_with_origin: Option<LinearFit>,
    pub recall_points: Vec<RecallPoint>,
    pub exponential: Option<ExponentialFit>,
    #[serde(default)]
    pub recall_shape: Option<RecallShape>,
    #[serde(default)]
    pub ssm_only: Option<StateFits>,
}

/// `law.json`: the experiment's scaling laws, in the paper's units (x: millions of state
/// scalars; y: thousands of tokens). x is N_S with the convolution caches (the paper's
/// definition) unless said otherwise; `ssm_only` repeats the fits on the SSM states alone.
///
/// A law is never fitted across mixers. An experiment of one mixer keeps everything at the
/// top level, as law files always had it (its points name the mixer unless it is Mamba-2). An
/// experiment of several lists every point at the top level, each naming its mixer, leaves the
/// top-level fits empty (a line through two architectures' points means nothing), and gives
/// one law per mixer in `mixers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LawReport {
    pub experiment: String,
    pub forget_points: Vec<ForgetPoint>,
    /// The line through the exact (bracketed) T_forget points.
    pub linear: Option<LinearFit>,
    /// The same with the (0, 0) point, as the paper fits it.
    pub linear_with_origin: Option<LinearFit>,
    /// Which of the two the reports lead with (`[fit] include_origin`; true in law files
    /// written before it was recorded, the setting's default).
    #[serde(default = "default_primary_with_origin")]
    pub primary_with_origin: bool,
    pub recall_points: Vec<RecallPoint>,
    /// The zero-shot T_recall law through the exact points; `None` when it cannot be fitted
    /// or its curvature is not identifiable (see `recall_shape`).
    pub exponential: Option<ExponentialFit>,
    /// Whether the T_recall points pin down an exponential, with a straight line beside it.
    #[serde(default)]
    pub recall_shape: Option<RecallShape>,
    /// The same fits with x = the SSM states alone (`None` in old law files).
    #[serde(default)]
    pub ssm_only: Option<StateFits>,
    /// The paper's line, T_forget[K] = 5.172 N_S[M] - 4.469.
    pub paper_linear: (f64, f64),
    /// The paper's law, T_recall[K] = 4.756 (1.365^N_S[M] - 1) - 0.742.
    pub paper_exponential: (f64, f64, f64),
    pub notes: Vec<String>,
    /// One law per mixer, in [`MixerKind::ALL`] order, when the experiment holds more than one
    /// (empty, and not written, otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mixers: Vec<MixerLaw>,
}

fn default_primary_with_origin() -> bool {
    true
}

impl LawReport {
    /// The law of each mixer as a report of its own (top-level fields only, no notes): the
    /// report itself for a single-mixer experiment, one per entry of `mixers` otherwise. What
    /// draws or prints one law draws or prints each of these.
    pub fn per_mixer(&self) -> Vec<LawReport> {
        if self.mixers.is_empty() {
            return vec![self.clone()];
        }
        self.mixers
            .iter()
            .map(|m| LawReport {
                experiment: self.experiment.clone(),
                forget_points: m.forget_points.clone(),
                linear: m.linear.clone(),
                linear_with_origin: m.linear_with_origin.clone(),
                primary_with_origin: self.primary_with_origin,
                recall_points: m.recall_points.clone(),
                exponential: m.exponential.clone(),
                recall_shape: m.recall_shape.clone(),
                ssm_only: m.ssm_only.clone(),
                paper_linear: self.paper_linear,
                paper_exponential: self.paper_exponential,
                notes: Vec::new(),
                mixers: Vec::new(),
            })
            .collect()
    }

    /// The mixer of a single-mixer report as its points name it (`None`: Mamba-2 or an old
    /// law file; also `None` for a report of several mixers).
    pub fn mixer(&self) -> Option<MixerKind> {
        if !self.mixers.is_empty() {
            return None;
        }
        self.forget_points
            .iter()
            .filter_map(|p| p.mixer)
            .chain(self.recall_points.iter().filter_map(|p| p.mixer))
            .next()
    }

    /// Whether the experiment holds more than one mixer.
    pub fn has_several_mixers(&self) -> bool {
        !self.mixers.is_empty()
    }

    /// The T_forget line the reports lead with (the other one when it is missing).
    pub fn primary_linear(&self) -> Option<&LinearFit> {
        let (chosen, other) = self.linear_pair();
        chosen.or(other)
    }

    /// The line reported beside the primary one.
    pub fn secondary_linear(&self) -> Option<&LinearFit> {
        let (chosen, other) = self.linear_pair();
        chosen.and(other)
    }

    fn linear_pair(&self) -> (Option<&LinearFit>, Option<&LinearFit>) {
        if self.primary_with_origin {
            (self.linear_with_origin.as_ref(), self.linear.as_ref())
        } else {
            (self.linear.as_ref(), self.linear_with_origin.as_ref())
        }
    }
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

    /// A law file written before censoring, the SSM part, retrieval labels and the primary
    /// fit were recorded reads with what its fields imply.
    #[test]
    fn old_law_files_read_with_implied_estimates() {
        let old = r#"{"experiment": "e",
            "forget_points": [
              {"state_size": 10, "lengths": [16, 32], "verdicts": [false, true],
               "t_forget": 32, "bracketed": true, "note": ""},
              {"state_size": 20, "lengths": [16, 32], "verdicts": [true, true],
               "t_forget": 16, "bracketed": false, "note": ""},
              {"state_size": 30, "lengths": [16, 32], "verdicts": [false, null],
               "t_forget": null, "bracketed": false, "note": ""},
              {"state_size": 40, "lengths": [16], "verdicts": [null],
               "t_forget": null, "bracketed": false, "note": ""}],
            "linear": null, "linear_with_origin": null,
            "recall_points": [{"state_size": 10, "run": "a", "t_recall": 64},
                              {"state_size": 20, "run": "b", "t_recall": null}],
            "exponential": null, "paper_linear": [5.172, -4.469],
            "paper_exponential": [4.756, 1.365, -0.742], "notes": []}"#;
        let law: LawReport = serde_json::from_str(old).expect("old law files still read");
        let kinds: Vec<Option<(usize, Censoring)>> = law
            .forget_points
            .iter()
            .map(|p| p.estimate.map(|e| (e.tokens, e.kind)))
            .collect();
        assert_eq!(
            kinds,
            vec![
                Some((32, Censoring::Exact)),
                Some((16, Censoring::UpperBound)),
                Some((16, Censoring::LowerBound)),
                None
            ]
        );
        assert!(law.forget_points.iter().all(|p| p.ssm_state_size.is_none()));
        assert!(law.primary_with_origin);
        assert!(law.ssm_only.is_none() && law.recall_shape.is_none());
        let r = &law.recall_points;
        assert_eq!(
            r[0].estimate,
            Some(Estimate {
                tokens: 64,
                kind: Censoring::Exact
            })
        );
        assert_eq!((r[0].passkey_ran, r[1].passkey_ran), (Some(true), None));
        assert_eq!(r[1].estimate, None);
        assert!(r.iter().all(|p| p.retrieval == Retrieval::ZeroShot));
        // What is written reads back unchanged.
        let again: LawReport = serde_json::from_str(&serde_json::to_string(&law).unwrap()).unwrap();
        assert_eq!(again, law);
    }

    fn line(with_origin: bool, n: usize) -> LinearFit {
        LinearFit {
            a: if with_origin { 1.0 } else { 2.0 },
            b: 0.0,
            r2: 1.0,
            n,
            a_ci: (0.0, 3.0),
            b_ci: (0.0, 0.0),
            with_origin,
            band: vec![],
            confidence: 0.95,
        }
    }

    #[test]
    fn the_primary_line_follows_the_setting() {
        let mut law: LawReport = serde_json::from_str(
            r#"{"experiment": "e", "forget_points": [], "linear": null,
                "linear_with_origin": null, "recall_points": [], "exponential": null,
                "paper_linear": [5.172, -4.469], "paper_exponential": [4.756, 1.365, -0.742],
                "notes": []}"#,
        )
        .unwrap();
        law.linear = Some(line(false, 3));
        law.linear_with_origin = Some(line(true, 4));
        assert_eq!(law.primary_linear().map(|f| f.with_origin), Some(true));
        assert_eq!(law.secondary_linear().map(|f| f.with_origin), Some(false));
        law.primary_with_origin = false;
        assert_eq!(law.primary_linear().map(|f| f.with_origin), Some(false));
        assert_eq!(law.secondary_linear().map(|f| f.with_origin), Some(true));
        law.linear = None;
        assert_eq!(law.primary_linear().map(|f| f.with_origin), Some(true));
        assert!(law.secondary_linear().is_none());
        // Four state sizes or fewer: rough; the origin is not a state size.
        assert!(line(true, 5).is_rough() && !line(true, 6).is_rough());
        assert_eq!(line(true, 5).state_sizes(), 4);
    }
}

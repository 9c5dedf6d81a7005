//! The forget verdict: does a run's loss stay flat past its training length?
//!
//! paper.md section 3 gives no numeric criterion, so it is made explicit here and fixed before
//! any experiment is judged by it. The loss is averaged over the in-length reference
//! `[T/2, T)` and over K ranges that double past T ([`crate::ranges`]), each range on its own
//! disjoint windows of position-stationary text; the rise of range `k` is its mean minus the
//! in-length mean, with a Welch standard error from the spread of the per-window means:
//!
//! ```text
//! rise_k = mean_k - mean_ref          se_k = sqrt(sd_k^2 / n_k + sd_ref^2 / n_ref)
//! high_k = rise_k + t(1 - a,   df_k) se_k       (one-sided upper bound)
//! low_k  = rise_k - t(1 - a/K, df_k) se_k       (one-sided lower bound, Bonferroni over K)
//!
//! does not forget  <=>  some range has low_k  > margin
//! forgets          <=>  every range has high_k < margin
//! undetermined     otherwise
//! ```
//!
//! with `a = 1 - confidence` and Welch-Satterthwaite degrees of freedom. "Forgets" is an
//! intersection of K one-sided tests, which needs no multiplicity correction (the
//! intersection-union principle); "does not forget" is a union and gets Bonferroni, so each
//! wrong call has probability at most `a`. Comparisons of two runs on the same windows
//! ([`rise_test_paired`]) use per-window differences instead. A run whose heads all forget
//! within T_train at a typical token cannot show the effect: its verdict is undetermined
//! whatever the loss does.

use forgetlab_runs::config::{VerdictConfig, VerdictCurve};
use forgetlab_runs::results::{
    ForgetVerdict, MEMORY_LENGTH_CAP, MemoryLengths, Outcome, RangeRise, RangeSamples, RiseTest,
    Undetermined, VERDICT_VERSION, WindowRanges,
};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Why a verdict could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerdictError {
    #[error("training length must be at least 1 token")]
    ZeroTrainLength,
    #[error("the {curve} values have {found} windows; intervals need at least 2")]
    TooFewWindows { curve: String, found: usize },
    #[error("the {curve} values are malformed: {reason}")]
    Malformed { curve: String, reason: String },
    #[error("verdict config: {0}")]
    InvalidConfig(forgetlab_runs::Invalid),
    #[error("memory lengths: {0}")]
    InvalidDecay(String),
    #[error(
        "the two runs were scored on different windows ({a} vs {b}); the reference test needs \
         both evaluated with the same [eval] text, windows and window_seed"
    )]
    DifferentWindows { a: String, b: String },
}

/// The run config's own rules ([`VerdictConfig::validate`]), applied again to settings that
/// may have been overridden on the command line.
fn check_config(config: &VerdictConfig) -> Result<(), VerdictError> {
    config
        .validate("eval.verdict")
        .map_err(VerdictError::InvalidConfig)
}

/// The `p` quantile of Student's t with `df` degrees of freedom.
fn t_quantile(p: f64, df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df)
        .expect("df > 0 is a valid t distribution")
        .inverse_cdf(p)
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_sd(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// Checks what every rise test needs: a valid config and, among `ranges` ranges, the in-length
/// reference and at least one range past T_train.
fn check_test(curve: &str, ranges: usize, config: &VerdictConfig) -> Result<(), VerdictError> {
    check_config(config)?;
    if ranges < 2 {
        return Err(VerdictError::Malformed {
            curve: curve.to_string(),
            reason: format!(
                "{ranges} range(s); the test needs the in-length reference and at least one \
                 range past T_train"
            ),
        });
    }
    Ok(())
}

/// A range's mean over `n` windows with the spread `sd` of the per-window means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeStat {
    pub start: usize,
    pub end: usize,
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
}

/// One range's rise over the reference, before the decision.
struct Contrast {
    start: usize,
    end: usize,
    windows: usize,
    rise: f64,
    stderr: f64,
    df: f64,
}

/// The rise test on ranges measured on separate windows: `stats[0]` is the in-length
/// reference, the rest are ranges past T_train (Welch's unequal-variance comparison).
pub fn rise_test(
    curve: &str,
    stats: &[RangeStat],
    config: &VerdictConfig,
) -> Result<RiseTest, VerdictError> {
    check_test(curve, stats.len(), config)?;
    let malformed = |reason: String| VerdictError::Malformed {
        curve: curve.to_string(),
        reason,
    };
    if let Some(s) = stats.iter().find(|s| s.n < 2) {
        return Err(VerdictError::TooFewWindows {
            curve: curve.to_string(),
            found: s.n,
        });
    }
    if let Some(s) = stats
        .iter()
        .find(|s| !(s.mean.is_finite() && s.sd.is_finite() && s.sd >= 0.0))
    {
        return Err(malformed(format!(
            "range [{}, {}) has mean {} and spread {}",
            s.start, s.end, s.mean, s.sd
        )));
    }
    let reference = stats[0];
    let var_ref = reference.sd.powi(2) / reference.n as f64;
    let contrasts = stats[1..]
        .iter()
        .map(|s| {
            let var = s.sd.powi(2) / s.n as f64;
            let total = var + var_ref;
            let df = if total > 0.0 {
                total.powi(2)
                    / (var.powi(2) / (s.n - 1) as f64 + var_ref.powi(2) / (reference.n - 1) as f64)
            } else {
                (s.n + reference.n - 2) as f64
            };
            Contrast {
                start: s.start,
                end: s.end,
                windows: s.n,
                rise: s.mean - reference.mean,
                stderr: total.sqrt(),
                df,
            }
        })
        .collect();
    Ok(judge(
        curve,
        (reference.start, reference.end),
        reference.mean,
        reference.n,
        contrasts,
        config,
    ))
}

/// The rise test on per-window values `values[w][r]` of the same windows over `ranges`
/// (`ranges[0]` the in-length reference): each window's rise is paired with its own
/// reference, as when comparing two runs scored on the same text.
pub fn rise_test_paired(
    curve: &str,
    ranges: &[(usize, usize)],
    values: &[Vec<f64>],
    config: &VerdictConfig,
) -> Result<RiseTest, VerdictError> {
    check_test(curve, ranges.len(), config)?;
    let malformed = |reason: String| VerdictError::Malformed {
        curve: curve.to_string(),
        reason,
    };
    let n = values.len();
    if n < 2 {
        return Err(VerdictError::TooFewWindows {
            curve: curve.to_string(),
            found: n,
        });
    }
    if let Some((w, row)) = values
        .iter()
        .enumerate()
        .find(|(_, row)| row.len() != ranges.len() || row.iter().any(|v| !v.is_finite()))
    {
        return Err(malformed(format!(
            "window {w} has {} values (all must be finite) for {} ranges",
            row.len(),
            ranges.len()
        )));
    }
    let (in_length_mean, _) = mean_sd(values.iter().map(|row| row[0]));
    let contrasts = (1..ranges.len())
        .map(|r| {
            let (rise, sd) = mean_sd(values.iter().map(|row| row[r] - row[0]));
            Contrast {
                start: ranges[r].0,
                end: ranges[r].1,
                windows: n,
                rise,
                stderr: sd / (n as f64).sqrt(),
                df: (n - 1) as f64,
            }
        })
        .collect();
    Ok(judge(
        curve,
        ranges[0],
        in_length_mean,
        n,
        contrasts,
        config,
    ))
}

/// The three-way decision over a test's contrasts (see the module docs).
fn judge(
    curve: &str,
    in_length: (usize, usize),
    in_length_mean: f64,
    windows: usize,
    contrasts: Vec<Contrast>,
    config: &VerdictConfig,
) -> RiseTest {
    let k = contrasts.len() as f64;
    let alpha = 1.0 - config.confidence;
    let margin = config.epsilon;
    let rises: Vec<RangeRise> = contrasts
        .iter()
        .map(|c| RangeRise {
            start: c.start,
            end: c.end,
            windows: c.windows,
            rise: c.rise,
            stderr: c.stderr,
            low: c.rise - t_quantile(1.0 - alpha / k, c.df) * c.stderr,
            high: c.rise + t_quantile(1.0 - alpha, c.df) * c.stderr,
        })
        .collect();
    let argmax = |key: fn(&RangeRise) -> f64| {
        (0..rises.len())
            .max_by(|&a, &b| key(&rises[a]).total_cmp(&key(&rises[b])))
            .unwrap_or(0)
    };
    let by_low = argmax(|r| r.low);
    let by_high = argmax(|r| r.high);
    let (outcome, decisive) = if rises[by_low].low > margin {
        (Outcome::DoesNotForget, by_low)
    } else if rises[by_high].high < margin {
        (Outcome::Forgets, by_high)
    } else {
        (Outcome::Undetermined, by_high)
    };
    let windows_needed = (outcome == Outcome::Undetermined)
        .then(|| windows_needed(&rises, margin))
        .flatten();
    RiseTest {
        curve: curve.to_string(),
        windows,
        in_length,
        in_length_mean,
        ranges: rises,
        decisive,
        outcome,
        windows_needed,
    }
}

/// About how many windows (of the deciding range, every range scaled alike) would decide an
/// undetermined test at the same spread and effects: enough for one range above the margin to
/// clear it from below, or, when every rise is below the margin, for all of them to clear it.
fn windows_needed(rises: &[RangeRise], margin: f64) -> Option<usize> {
    // The bound's half-width shrinks as 1/sqrt(windows); scale it until it fits the gap.
    let needed = |r: &RangeRise, half: f64, gap: f64| {
        (r.windows as f64 * (half / gap).powi(2)).ceil() as usize
    };
    let above: Vec<usize> = rises
        .iter()
        .filter(|r| r.rise > margin)
        .map(|r| needed(r, r.rise - r.low, r.rise - margin))
        .collect();
    if !above.is_empty() {
        return above.into_iter().min();
    }
    if rises.iter().any(|r| r.rise >= margin) {
        return None;
    }
    rises
        .iter()
        .map(|r| needed(r, r.high - r.rise, margin - r.rise))
        .max()
}

/// The mean of `blocks` values over `[lo, hi)` per window, when `[lo, hi)` is a union of blocks.
fn from_blocks(blocks: &WindowRanges, lo: usize, hi: usize) -> Option<Vec<f64>> {
    let first = blocks.ranges.iter().position(|&(s, _)| s == lo)?;
    let last = blocks.ranges.iter().position(|&(_, e)| e == hi)?;
    if last < first {
        return None;
    }
    Some(
        blocks
            .model
            .iter()
            .map(|row| {
                let sum: f64 = (first..=last)
                    .map(|i| row[i] * (blocks.ranges[i].1 - blocks.ranges[i].0) as f64)
                    .sum();
                sum / (hi - lo) as f64
            })
            .collect(),
    )
}

/// The run's loss minus the control run's loss, window by window, over the run's verdict
/// ranges, read from both runs' dyadic blocks. `None` when a range is not a union of blocks
/// (a training length that is not a power of two) or the control's horizon is shorter.
pub fn reference_values(
    run_ranges: &[(usize, usize)],
    run: &WindowRanges,
    control: &WindowRanges,
) -> Result<Option<Vec<Vec<f64>>>, VerdictError> {
    if run.windows_id != control.windows_id || run.model.len() != control.model.len() {
        return Err(VerdictError::DifferentWindows {
            a: run.windows_id.clone(),
            b: control.windows_id.clone(),
        });
    }
    let mut columns = Vec::with_capacity(run_ranges.len());
    for &(lo, hi) in run_ranges {
        let (Some(a), Some(b)) = (from_blocks(run, lo, hi), from_blocks(control, lo, hi)) else {
            return Ok(None);
        };
        columns.push(a.iter().zip(&b).map(|(x, y)| x - y).collect::<Vec<f64>>());
    }
    Ok(Some(
        (0..run.model.len())
            .map(|w| columns.iter().map(|c| c[w]).collect())
            .collect(),
    ))
}

/// Token-by-token memory lengths of one head from its log decays `log_alpha[t]` (<= 0): at
/// token t, the number of tokens `m` back such that the decays of tokens `t-m+1..=t` multiply
/// to at most 1/e, i.e. the smallest `m` with `sum(log_alpha[t-m+1..=t]) <= -1`. Tokens whose
/// whole prefix has not decayed that far get [`MEMORY_LENGTH_CAP`] (longer than the prompt).
pub fn token_memory_lengths(log_alpha: &[f64]) -> Vec<f64> {
    // prefix[i] = sum of log_alpha[..i], non-increasing; find the largest s <= t with
    // prefix[s] >= prefix[t + 1] + 1 by binary search.
    let mut prefix = Vec::with_capacity(log_alpha.len() + 1);
    prefix.push(0.0f64);
    for &la in log_alpha {
        prefix.push(prefix[prefix.len() - 1] + la.min(0.0));
    }
    (0..log_alpha.len())
        .map(|t| {
            let target = prefix[t + 1] + 1.0;
            // Number of s in 0..=t with prefix[s] >= target (a prefix of 0..=t).
            let count = prefix[..=t].partition_point(|&p| p >= target);
            if count == 0 {
                MEMORY_LENGTH_CAP
            } else {
                (t + 1 - (count - 1)) as f64
            }
        })
        .collect()
}

/// `(median, max)` of a head's token-by-token memory lengths over the second half of the
/// prompt. A token can only show a memory as long as its prefix, so early tokens are censored;
/// in the second half every memory shorter than half the prompt is seen exactly, and a longer
/// one reads as [`MEMORY_LENGTH_CAP`].
pub fn head_memory(log_alpha: &[f64]) -> (f64, f64) {
    let all = token_memory_lengths(log_alpha);
    let mut lengths = all[all.len() / 2..].to_vec();
    if lengths.is_empty() {
        return (0.0, 0.0);
    }
    lengths.sort_by(f64::total_cmp);
    (median_sorted(&lengths), lengths[lengths.len() - 1])
}

fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Memory lengths from `[layer][head]` per-head medians and maxima over tokens.
pub fn memory_lengths(
    medians: &[Vec<f64>],
    maxima: &[Vec<f64>],
    seq_len: usize,
) -> Result<MemoryLengths, VerdictError> {
    if medians.iter().all(Vec::is_empty) {
        return Err(VerdictError::InvalidDecay("no heads given".into()));
    }
    let mut all = Vec::new();
    for (layer, heads) in medians.iter().enumerate() {
        for (head, &m) in heads.iter().enumerate() {
            if !(m >= 0.0 && m.is_finite()) {
                return Err(VerdictError::InvalidDecay(format!(
                    "layer {layer} head {head}: memory length is {m}; it must be a finite \
                     number >= 0"
                )));
            }
            all.push(m);
        }
    }
    all.sort_by(f64::total_cmp);
    let max = all[all.len() - 1];
    Ok(MemoryLengths {
        per_head: medians.to_vec(),
        per_head_max: maxima.to_vec(),
        max,
        median: median_sorted(&all),
        any_beyond_train_len: max > seq_len as f64,
    })
}

/// Everything the verdict of one run is decided from.
#[derive(Debug, Clone)]
pub struct VerdictInput<'a> {
    pub run: &'a str,
    /// Training length T_train.
    pub seq_len: usize,
    pub horizon: usize,
    pub state_size: u64,
    /// Which prompt the ranges come from (`text` normally).
    pub prompt: &'a str,
    /// The verdict's range samples of that prompt.
    pub ranges: &'a RangeSamples,
    /// Per-head memory lengths (required: no verdict without them).
    pub memory: MemoryLengths,
    pub config: &'a VerdictConfig,
}

fn curve_name(curve: VerdictCurve) -> &'static str {
    match curve {
        VerdictCurve::Raw => "raw",
        VerdictCurve::Excess => "excess",
        VerdictCurve::Reference => "reference",
    }
}

/// The tests a run's own samples support: raw loss, excess over the n-gram, and the n-gram's
/// own curve (how the text's difficulty moves with position).
pub fn own_tests(
    samples: &RangeSamples,
    config: &VerdictConfig,
) -> Result<Vec<RiseTest>, VerdictError> {
    let stat = |s: &forgetlab_runs::results::RangeSample, mean: f64, sd: f64| RangeStat {
        start: s.start,
        end: s.end,
        n: s.windows,
        mean,
        sd,
    };
    let raw: Vec<RangeStat> = samples
        .ranges
        .iter()
        .map(|s| stat(s, s.mean, s.sd))
        .collect();
    let mut tests = vec![rise_test("raw", &raw, config)?];
    let baselines: Option<Vec<(RangeStat, RangeStat)>> = samples
        .ranges
        .iter()
        .map(|s| {
            s.ngram
                .as_ref()
                .map(|b| (stat(s, s.mean - b.mean, b.excess_sd), stat(s, b.mean, b.sd)))
        })
        .collect();
    if let Some(pairs) = baselines {
        let (excess, text): (Vec<RangeStat>, Vec<RangeStat>) = pairs.into_iter().unzip();
        tests.push(rise_test("excess", &excess, config)?);
        tests.push(rise_test("text-difficulty", &text, config)?);
    }
    Ok(tests)
}

/// Decides whether a run forgets and explains why.
pub fn decide(input: VerdictInput<'_>) -> Result<ForgetVerdict, VerdictError> {
    let config = input.config;
    check_config(config)?;
    if input.seq_len == 0 {
        return Err(VerdictError::ZeroTrainLength);
    }
    let mut verdict = ForgetVerdict {
        version: VERDICT_VERSION,
        run: input.run.to_string(),
        seq_len: input.seq_len,
        state_size: input.state_size,
        forgets: None,
        decided_on: config.on,
        prompt: input.prompt.to_string(),
        margin: config.epsilon,
        confidence: config.confidence,
        decision: None,
        tests: Vec::new(),
        undetermined: None,
        memory: Some(input.memory.clone()),
        note: String::new(),
    };
    if input.ranges.ranges.len() < 2 {
        verdict.undetermined = Some(Undetermined::HorizonTooShort {
            horizon: input.horizon,
        });
        verdict.note = format!(
            "Undetermined: the horizon {} does not reach past T_train = {}; evaluate to at \
             least 2x T_train (default 8x).",
            input.horizon, input.seq_len
        );
        return Ok(verdict);
    }
    verdict.tests = own_tests(input.ranges, config)?;
    let mut notes = Vec::new();
    let wanted = curve_name(config.on);
    let decision = match verdict.test(wanted) {
        Some(t) => t.clone(),
        None => {
            notes.push(format!(
                "No {wanted} curve on these windows (no n-gram baseline), so the decision uses \
                 raw loss."
            ));
            verdict.decided_on = VerdictCurve::Raw;
            verdict.tests[0].clone()
        }
    };
    let loss_says = decision.outcome;
    let memory = &input.memory;
    if !memory.any_beyond_train_len {
        verdict.undetermined = Some(Undetermined::MemoryTooShort {
            longest_median: memory.max,
        });
        notes.insert(
            0,
            format!(
                "Undetermined: no head remembers past T_train = {} tokens at a typical token \
                 (longest median memory {:.0} tokens), so this run forgets trivially and cannot \
                 show whether it learned to forget; the loss test alone says {}.",
                input.seq_len,
                memory.max,
                outcome_words(loss_says)
            ),
        );
    } else {
        verdict.forgets = loss_says.forgets();
        if loss_says == Outcome::Undetermined {
            verdict.undetermined = Some(Undetermined::TooNoisy {
                windows_needed: decision.windows_needed,
            });
        }
        notes.insert(0, headline(&decision, input.seq_len, config));
    }
    notes.push(describe(&decision, config));
    for other in &verdict.tests {
        if other.curve != decision.curve
            && other.curve != "text-difficulty"
            && other.outcome != decision.outcome
        {
            notes.push(format!(
                "The {} test says {}: {}",
                other.curve,
                outcome_words(other.outcome),
                describe(other, config)
            ));
        }
    }
    if let Some(text) = verdict.test("text-difficulty")
        && text
            .ranges
            .iter()
            .any(|r| r.low > config.epsilon || r.high < -config.epsilon)
    {
        notes.push(format!(
            "The text's own difficulty (the n-gram's loss) changes with position by more than \
             the margin: {}",
            describe(text, config)
        ));
    }
    verdict.decision = Some(decision);
    verdict.note = notes.join(" ");
    Ok(verdict)
}

fn outcome_words(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Forgets => "it forgets",
        Outcome::DoesNotForget => "it does not forget",
        Outcome::Undetermined => "undetermined",
    }
}

fn headline(test: &RiseTest, seq_len: usize, config: &VerdictConfig) -> String {
    let r = test.decisive_range();
    match test.outcome {
        Outcome::Forgets => format!(
            "Forgets: past T_train = {seq_len} the {} loss rises at most {:+.3} nats (upper \
             bound, range [{}, {})), below the margin {}.",
            test.curve, r.high, r.start, r.end, config.epsilon
        ),
        Outcome::DoesNotForget => format!(
            "Does not forget: over [{}, {}) the {} loss rises {:+.3} nats above its in-length \
             mean (at least {:+.3}), beyond the margin {}.",
            r.start, r.end, test.curve, r.rise, r.low, config.epsilon
        ),
        Outcome::Undetermined => format!(
            "Undetermined (too noisy): over [{}, {}) the {} loss rises {:+.3} nats, interval \
             [{:+.3}, {:+.3}] contains the margin {}{}.",
            r.start,
            r.end,
            test.curve,
            r.rise,
            r.low,
            r.high,
            config.epsilon,
            match test.windows_needed {
                Some(w) => format!("; about {w} windows would decide it"),
                None => String::new(),
            }
        ),
    }
}

/// One sentence with the numbers of a test.
pub fn describe(t: &RiseTest, config: &VerdictConfig) -> String {
    let ranges: Vec<String> = t
        .ranges
        .iter()
        .map(|r| {
            format!(
                "[{}, {}) {:+.3} ({:+.3}..{:+.3})",
                r.start, r.end, r.rise, r.low, r.high
            )
        })
        .collect();
    format!(
        "{} loss over {} windows, rise above the in-length mean {:.3} of [{}, {}) at {:.0}% \
         confidence: {}.",
        t.curve,
        t.windows,
        t.in_length_mean,
        t.in_length.0,
        t.in_length.1,
        config.confidence * 100.0,
        ranges.join(", ")
    )
}

#[cfg(test)]
mod tests;

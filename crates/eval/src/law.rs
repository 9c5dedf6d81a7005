//! The scaling laws over an experiment: T_forget(N_S) and T_recall(N_S).
//!
//! For each state size, T_forget is the smallest training length whose run forgets (paper.md
//! section 3). A power-of-two grid only brackets it, and at the grid's ends it is only bounded:
//! every point is marked exact (bracketed), an upper bound (the shortest length tried already
//! forgets) or a lower bound (no length tried forgets), and only exact points are fitted
//! unless asked otherwise. The paper fits `T_forget[K] = a N_S[M] + b` with the (0, 0) point
//! included; we fit both with and without it, and `[fit] include_origin` picks the primary one.
//!
//! T_recall (longest passkey length at the accuracy threshold, from the longest-trained run of
//! each state size) follows `T[K] = c (k^{N_S[M]} - 1) + d`. A T_recall at the longest length
//! tried is a lower bound, and a model trained on synthetic passkey sequences retrieves
//! in-distribution, not zero-shot as in the paper: neither enters the law. Over a narrow range
//! of N_S, k^x is a straight line to within the noise and k is not identifiable; the fit says
//! so (an F test of the curvature against a line) and keeps a straight line instead.
//!
//! The convolution caches are part of N_S (the paper's definition) but a large share of it in
//! tiny models, so every fit is repeated on the SSM states alone.
//!
//! Units are the paper's: x in millions of state scalars, y in K = 1024 tokens (the paper's
//! "16K" training length is 16384 tokens). Intervals are percentile bootstrap intervals (95%
//! by default, `[fit] confidence`) over resampled state sizes (the origin, when used, is kept
//! in every resample), seeded; with a handful of state sizes they are rough, and the notes say
//! so. The linear fit also carries a pointwise band: at each x, the same percentiles of the
//! resampled lines' values there (tighter than combining the separate intervals of a and b,
//! which co-vary).

use std::collections::BTreeMap;

use forgetlab_runs::FitConfig;
use forgetlab_runs::results::{
    Censoring, Estimate, ExponentialFit, ForgetPoint, LawReport, LinearFit, PAPER_FORGET_LINE,
    PAPER_RECALL_LAW, ROUGH_FIT_POINTS, RecallPoint, RecallShape, Retrieval, StateFits,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

/// Tokens per "K" in the paper's units.
pub const TOKENS_PER_K: f64 = 1024.0;
/// State scalars per "M" in the paper's units.
pub const SCALARS_PER_M: f64 = 1e6;
/// Below this many usable resamples, intervals are flagged as rough in the notes.
pub const ROUGH_BOOTSTRAP: usize = 100;

/// Why a law could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LawError {
    #[error("too few points for {what}: {found} usable, need at least {need}")]
    TooFewPoints {
        what: String,
        found: usize,
        need: usize,
    },
    #[error("the bootstrap needs at least 1 resample")]
    NoResamples,
    #[error("confidence level must be in (0, 1), got {0}")]
    BadConfidence(f64),
    #[error("point ({x}, {y}) is not finite")]
    NonFinite { x: f64, y: f64 },
}

/// What the law needs from one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub run: String,
    /// N_S in scalars (SSM states plus convolution caches).
    pub state_size: u64,
    /// The SSM-state part of N_S.
    pub ssm_state_size: u64,
    /// Training length T_train.
    pub seq_len: usize,
    /// Whether `eval/verdict.json` exists.
    pub has_verdict: bool,
    /// The verdict's decision (`None`: undetermined or not evaluated).
    pub forgets: Option<bool>,
    /// Whether a passkey summary exists.
    pub has_passkey: bool,
    /// T_recall from the passkey summary.
    pub t_recall: Option<usize>,
    /// Passkey lengths scored in full (the ones T_recall is read from), ascending.
    pub passkey_lengths: Vec<usize>,
    /// Whether the run was trained on synthetic passkey sequences.
    pub passkey_trained: bool,
}

/// How the law is fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct LawOptions {
    /// Bootstrap resamples per fit.
    pub bootstrap: usize,
    /// Seed of the bootstrap draw.
    pub seed: u64,
    /// Confidence level of the percentile intervals, in (0, 1).
    pub confidence: f64,
    /// Also fit state sizes whose T_forget is only an upper bound (the shortest length tried
    /// already forgets).
    pub include_unbracketed: bool,
    /// Whether the primary T_forget line goes through (0, 0).
    pub include_origin: bool,
}

impl Default for LawOptions {
    fn default() -> Self {
        Self::from_fit_config(&FitConfig::default())
    }
}

impl LawOptions {
    /// Options from an experiment file's `[fit]` table.
    pub fn from_fit_config(fit: &FitConfig) -> Self {
        Self {
            bootstrap: fit.bootstrap_samples,
            seed: fit.seed,
            confidence: fit.confidence,
            include_unbracketed: false,
            include_origin: fit.include_origin,
        }
    }

    fn validate(&self) -> Result<(), LawError> {
        if self.bootstrap == 0 {
            return Err(LawError::NoResamples);
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(LawError::BadConfidence(self.confidence));
        }
        Ok(())
    }
}

/// A length in the paper's style: `16K` when a multiple of 1024, else the token count.
pub fn format_len(tokens: usize) -> String {
    if tokens >= 1024 && tokens.is_multiple_of(1024) {
        format!("{}K", tokens / 1024)
    } else {
        tokens.to_string()
    }
}

/// T_forget of one state size from its runs (all with this state size).
pub fn forget_point(state_size: u64, runs: &[&RunOutcome]) -> ForgetPoint {
    let mut by_len: BTreeMap<usize, Vec<&RunOutcome>> = BTreeMap::new();
    for r in runs {
        by_len.entry(r.seq_len).or_default().push(r);
    }
    let mut notes = Vec::new();
    let mut lengths = Vec::new();
    let mut verdicts = Vec::new();
    for (&len, group) in &by_len {
        let yes = group.iter().filter(|r| r.forgets == Some(true)).count();
        let no = group.iter().filter(|r| r.forgets == Some(false)).count();
        let verdict = if yes > no {
            Some(true)
        } else if no > yes {
            Some(false)
        } else {
            None
        };
        if yes > 0 && no > 0 {
            notes.push(format!(
                "runs at {} disagree ({yes} forget, {no} do not){}",
                format_len(len),
                if verdict.is_none() {
                    "; treated as undetermined"
                } else {
                    "; majority used"
                }
            ));
        }
        if verdict.is_none() && yes + no == 0 {
            let missing = group.iter().filter(|r| !r.has_verdict).count();
            notes.push(if missing == group.len() {
                format!("{} not evaluated", format_len(len))
            } else {
                format!("{} undetermined", format_len(len))
            });
        }
        lengths.push(len);
        verdicts.push(verdict);
    }
    let pattern: String = lengths
        .iter()
        .zip(&verdicts)
        .map(|(l, v)| {
            let mark = match v {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "?",
            };
            format!("{}{mark}", format_len(*l))
        })
        .collect::<Vec<_>>()
        .join(" ");

    let first_forget = verdicts.iter().position(|v| *v == Some(true));
    let t_forget = first_forget.map(|i| lengths[i]);
    let mut bracketed = false;
    match first_forget {
        None if verdicts.iter().all(Option::is_none) => {
            notes.insert(0, "no determined verdict".to_string());
        }
        None => {
            // Only a determined "does not forget" bounds T_forget from below.
            let longest_fail = verdicts
                .iter()
                .rposition(|v| *v == Some(false))
                .map_or(0, |j| lengths[j]);
            notes.insert(
                0,
                format!(
                    "no run forgets up to {}: T_forget > {} (lower bound only); train longer \
                     to bracket it",
                    format_len(longest_fail),
                    format_len(longest_fail)
                ),
            )
        }
        Some(i) => {
            let last_fail = verdicts[..i].iter().rposition(|v| *v == Some(false));
            match last_fail {
                Some(j) => {
                    bracketed = true;
                    notes.insert(
                        0,
                        format!(
                            "T_forget in ({}, {}]",
                            format_len(lengths[j]),
                            format_len(lengths[i])
                        ),
                    );
                }
                None => notes.insert(
                    0,
                    format!(
                        "already forgets at the shortest determined length {}: T_forget <= {} \
                         (upper bound only); train shorter to bracket it",
                        format_len(lengths[i]),
                        format_len(lengths[i])
                    ),
                ),
            }
            let later_fail: Vec<String> = lengths[i + 1..]
                .iter()
                .zip(&verdicts[i + 1..])
                .filter(|(_, v)| **v == Some(false))
                .map(|(l, _)| format_len(*l))
                .collect();
            if !later_fail.is_empty() {
                notes.push(format!(
                    "inconsistent pattern: longer runs fail to forget at {} although {} forgets; \
                     check seeds and training budgets",
                    later_fail.join(", "),
                    format_len(lengths[i])
                ));
            }
        }
    }
    let mut ssm: Vec<u64> = runs.iter().map(|r| r.ssm_state_size).collect();
    ssm.sort_unstable();
    ssm.dedup();
    if ssm.len() > 1 {
        notes.push(format!(
            "runs of this N_S differ in their SSM part ({}); the smallest is used",
            ssm.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let estimate = ForgetPoint::implied_estimate(&lengths, &verdicts, t_forget, bracketed);
    ForgetPoint {
        state_size,
        ssm_state_size: ssm.first().copied(),
        lengths,
        verdicts,
        t_forget,
        bracketed,
        estimate,
        note: format!("{pattern}: {}", notes.join("; ")),
    }
}

/// T_recall of one state size, from its longest-trained run (one with a passkey summary when
/// there is one).
pub fn recall_point(
    state_size: u64,
    runs: &[&RunOutcome],
    notes: &mut Vec<String>,
) -> Option<RecallPoint> {
    let longest = runs.iter().map(|r| r.seq_len).max()?;
    let mut candidates: Vec<&&RunOutcome> = runs.iter().filter(|r| r.seq_len == longest).collect();
    candidates.sort_by(|a, b| (!a.has_passkey, &a.run).cmp(&(!b.has_passkey, &b.run)));
    let best = candidates.first()?;
    let at = format!("N_S = {:.3}M", state_size as f64 / SCALARS_PER_M);
    let estimate = if !best.has_passkey {
        notes.push(format!(
            "{at}: passkey not run on {} (no passkey summary), no T_recall",
            best.run
        ));
        None
    } else {
        let shortest = best.passkey_lengths.first().copied();
        let longest_tried = best.passkey_lengths.last().copied();
        match best.t_recall {
            Some(tokens) if Some(tokens) == longest_tried => {
                notes.push(format!(
                    "{at}: {} passes at the longest passkey length tried, so T_recall >= {} \
                     (lower bound only); try longer lengths to measure it",
                    best.run,
                    format_len(tokens)
                ));
                Some(Estimate {
                    tokens,
                    kind: Censoring::LowerBound,
                })
            }
            Some(tokens) => Some(Estimate {
                tokens,
                kind: Censoring::Exact,
            }),
            None => {
                notes.push(format!(
                    "{at}: passkey ran on {} but no length reached the accuracy threshold{}",
                    best.run,
                    shortest.map_or(String::new(), |s| format!(
                        ", so T_recall < {} (upper bound only)",
                        format_len(s)
                    ))
                ));
                shortest.map(|tokens| Estimate {
                    tokens,
                    kind: Censoring::UpperBound,
                })
            }
        }
    };
    Some(RecallPoint {
        state_size,
        ssm_state_size: Some(best.ssm_state_size),
        run: best.run.clone(),
        t_recall: best.t_recall,
        passkey_ran: Some(best.has_passkey),
        lengths: best.passkey_lengths.clone(),
        estimate,
        retrieval: if best.passkey_trained {
            Retrieval::InDistribution
        } else {
            Retrieval::ZeroShot
        },
    })
}

/// Fits `y = a x + b` on `points`, adding (0, 0) when `with_origin`, with bootstrap intervals.
pub fn fit_linear(
    points: &[(f64, f64)],
    with_origin: bool,
    options: &LawOptions,
) -> Result<(LinearFit, usize), LawError> {
    check_points(points)?;
    options.validate()?;
    let what = format!(
        "the linear T_forget fit{}",
        if with_origin { " with the origin" } else { "" }
    );
    if distinct_x(points) < 2 {
        return Err(LawError::TooFewPoints {
            what,
            found: distinct_x(points),
            need: 2,
        });
    }
    let with = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        let mut v = pts.to_vec();
        if with_origin {
            v.push((0.0, 0.0));
        }
        v
    };
    let fitted = with(points);
    let (a, b) = least_squares(&fitted).ok_or(LawError::TooFewPoints {
        what,
        found: 1,
        need: 2,
    })?;
    let r2 = r_squared(&fitted, |x| a * x + b);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    for _ in 0..options.bootstrap {
        let sample = with(&resample(points, &mut rng));
        if let Some((ra, rb)) = least_squares(&sample) {
            sa.push(ra);
            sb.push(rb);
        }
    }
    let used = sa.len();
    let x_max = points.iter().map(|p| p.0).fold(0.0, f64::max) * BAND_REACH;
    let band = (0..=BAND_STEPS)
        .map(|i| {
            let x = x_max * i as f64 / BAND_STEPS as f64;
            let mut at_x: Vec<f64> = sa.iter().zip(&sb).map(|(ra, rb)| ra * x + rb).collect();
            let (low, high) = interval(&mut at_x, a * x + b, options.confidence);
            (x, low, high)
        })
        .collect();
    Ok((
        LinearFit {
            a,
            b,
            r2,
            n: fitted.len(),
            a_ci: interval(&mut sa, a, options.confidence),
            b_ci: interval(&mut sb, b, options.confidence),
            with_origin,
            band,
            confidence: options.confidence,
        },
        used,
    ))
}

/// The linear fit's band reaches this multiple of the largest state size fitted...
const BAND_REACH: f64 = 1.25;
/// ...in this many steps.
const BAND_STEPS: usize = 50;

/// Least-squares `c (k^x - 1) + d` for a fixed `ln k`: returns (c, d, sse).
fn exp_fit_given_k(points: &[(f64, f64)], ln_k: f64) -> Option<(f64, f64, f64)> {
    let basis: Vec<(f64, f64)> = points
        .iter()
        .map(|&(x, y)| ((x * ln_k).exp_m1(), y))
        .collect();
    let (c, d) = least_squares(&basis)?;
    let sse: f64 = basis.iter().map(|&(f, y)| (y - c * f - d).powi(2)).sum();
    sse.is_finite().then_some((c, d, sse))
}

/// Search range of the curvature over the points' x span, `ln k * (x_max - x_min)`: from
/// nearly straight (k^x departs from its chord by about 0.01% of its rise) to e^60. Scaled to
/// the data, so an experiment whose state sizes span 0.01M is searched as finely, in its own
/// scale, as the paper's 13M.
const CURVATURE_RANGE: (f64, f64) = (1e-3, 60.0);
const LN_K_GRID: usize = 400;

/// The searched range of ln k for these points.
fn ln_k_range(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let (lo, hi) = x_span(points)?;
    let span = hi - lo;
    (span > 0.0).then(|| (CURVATURE_RANGE.0 / span, CURVATURE_RANGE.1 / span))
}

/// The smallest and largest x of `points`.
fn x_span(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let lo = points.iter().map(|p| p.0).reduce(f64::min)?;
    let hi = points.iter().map(|p| p.0).reduce(f64::max)?;
    Some((lo, hi))
}

/// The best fit of `c (k^x - 1) + d`.
struct ExpProfile {
    ln_k: f64,
    c: f64,
    d: f64,
    sse: f64,
    /// Whether ln k sits on the edge of the searched range.
    boundary: bool,
}

/// The best exponential. For a fixed k the problem is linear in c and d, so we profile over k:
/// a log-spaced grid over ln k, then a golden-section refinement between the best grid point's
/// neighbours.
fn exp_profile(points: &[(f64, f64)]) -> Option<ExpProfile> {
    let (lo, hi) = ln_k_range(points)?;
    let (lo, hi) = (lo.ln(), hi.ln());
    let u_at = |i: usize| lo + (hi - lo) * i as f64 / (LN_K_GRID - 1) as f64;
    let sse_at = |u: f64| exp_fit_given_k(points, u.exp()).map_or(f64::INFINITY, |f| f.2);
    let (best_i, best_sse) =
        (0..LN_K_GRID)
            .map(|i| (i, sse_at(u_at(i))))
            .fold(
                (0, f64::INFINITY),
                |acc, cur| if cur.1 < acc.1 { cur } else { acc },
            );
    if !best_sse.is_finite() {
        return None;
    }
    let (mut a, mut b) = (
        u_at(best_i.saturating_sub(1)),
        u_at((best_i + 1).min(LN_K_GRID - 1)),
    );
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let m1 = b - ratio * (b - a);
        let m2 = a + ratio * (b - a);
        if sse_at(m1) <= sse_at(m2) {
            b = m2;
        } else {
            a = m1;
        }
    }
    let mut u = (a + b) / 2.0;
    if sse_at(u) > best_sse {
        u = u_at(best_i);
    }
    let ln_k = u.exp();
    let (c, d, sse) = exp_fit_given_k(points, ln_k)?;
    let boundary = best_i == 0 || best_i == LN_K_GRID - 1;
    Some(ExpProfile {
        ln_k,
        c,
        d,
        sse,
        boundary,
    })
}

/// An exponential fit with what it takes to judge it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialResult {
    pub fit: ExponentialFit,
    /// Bootstrap resamples that gave a fit.
    pub used: usize,
    /// Whether k sits on the edge of the searched range.
    pub boundary: bool,
    /// Residual sum of squares of the fit.
    pub sse: f64,
    /// The points fitted (the origin included when used).
    pub fitted: Vec<(f64, f64)>,
}

/// Fits `y = c (k^x - 1) + d` (k > 1) on `points`, adding (0, 0) when `with_origin`.
pub fn fit_exponential(
    points: &[(f64, f64)],
    with_origin: bool,
    options: &LawOptions,
) -> Result<ExponentialResult, LawError> {
    check_points(points)?;
    options.validate()?;
    let with = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        let mut v = pts.to_vec();
        if with_origin {
            v.push((0.0, 0.0));
        }
        v
    };
    let fitted = with(points);
    // Three parameters: at least four distinct x leave one degree of freedom.
    if distinct_x(&fitted) < 4 {
        return Err(LawError::TooFewPoints {
            what: format!(
                "the exponential T_recall fit{}",
                if with_origin { " with the origin" } else { "" }
            ),
            found: distinct_x(points),
            need: if with_origin { 3 } else { 4 },
        });
    }
    let too_few = || LawError::TooFewPoints {
        what: "the exponential T_recall fit (degenerate points)".into(),
        found: distinct_x(points),
        need: 4,
    };
    let best = exp_profile(&fitted).ok_or_else(too_few)?;
    let (ln_k, c, d) = (best.ln_k, best.c, best.d);
    let k = ln_k.exp();
    let r2 = r_squared(&fitted, |x| c * (x * ln_k).exp_m1() + d);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let (mut sk, mut sc, mut sd) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.bootstrap {
        let sample = with(&resample(points, &mut rng));
        if distinct_x(&sample) < 3 {
            continue;
        }
        if let Some(r) = exp_profile(&sample) {
            sk.push(r.ln_k.exp());
            sc.push(r.c);
            sd.push(r.d);
        }
    }
    let used = sk.len();
    Ok(ExponentialResult {
        fit: ExponentialFit {
            c,
            k,
            d,
            r2,
            n: fitted.len(),
            k_ci: interval(&mut sk, k, options.confidence),
            c_ci: interval(&mut sc, c, options.confidence),
            d_ci: interval(&mut sd, d, options.confidence),
            with_origin,
        },
        used,
        boundary: best.boundary,
        sse: best.sse,
        fitted,
    })
}

/// Largest gap between `e^{u t}` and its chord over t in [0, 1], as a fraction of its rise:
/// 0 for a straight line (u -> 0, about u / 8 there), approaching 1 as u grows.
pub fn chord_departure(u: f64) -> f64 {
    if u.is_nan() || u <= 0.0 {
        return 0.0;
    }
    if u < 1e-6 {
        return u / 8.0;
    }
    if u > 700.0 {
        // e^u overflows; the maximum sits at t = 1 - ln(u) / u.
        return 1.0 - (u.ln() + 1.0) / u;
    }
    let t = (u.exp_m1() / u).ln() / u;
    (t - (u * t).exp_m1() / u.exp_m1()).max(0.0)
}

/// Whether an exponential fit's curvature is identifiable: k not on the edge of the search,
/// and the curvature distinguishable from a straight line on the same points by the extra
/// sum-of-squares F test at the fit's confidence level. Also fits that straight line.
pub fn recall_shape(result: &ExponentialResult, options: &LawOptions) -> RecallShape {
    let fitted = &result.fitted;
    let with_origin = result.fit.with_origin;
    let (lo, hi) = x_span(fitted).unwrap_or((0.0, 0.0));
    let span = hi - lo;
    let departure = chord_departure(result.fit.k.ln() * span);
    let paper_departure = chord_departure(PAPER_RECALL_LAW.1.ln() * span);
    let sse_line = least_squares(fitted).map(|(a, b)| {
        fitted
            .iter()
            .map(|&(x, y)| (y - a * x - b).powi(2))
            .sum::<f64>()
    });
    let df = fitted.len().saturating_sub(3) as f64;
    let mean = fitted.iter().map(|p| p.1).sum::<f64>() / fitted.len().max(1) as f64;
    let sst: f64 = fitted.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let tiny = 1e-12 * sst.max(f64::MIN_POSITIVE);
    let curvature_p = sse_line.and_then(|sse_line| {
        let gain = sse_line - result.sse;
        if df < 1.0 {
            None
        } else if gain <= tiny {
            Some(1.0)
        } else if result.sse <= tiny {
            Some(0.0)
        } else {
            let f = gain / (result.sse / df);
            FisherSnedecor::new(1.0, df).ok().map(|d| d.sf(f))
        }
    });
    let alpha = 1.0 - options.confidence;
    let range = format!("N_S in [{}, {}]M", fmt_x(lo), fmt_x(hi));
    // On the edge of the search: the flat end or the steep one.
    let flattest = result.fit.k.ln() * span < (CURVATURE_RANGE.0 * CURVATURE_RANGE.1).sqrt();
    let reason = if result.boundary && flattest {
        Some(format!(
            "the best fit over {range} is a straight line (the flattest k^x searched); the \
             paper's k would depart from a line there by {:.2}% of its rise",
            paper_departure * 100.0
        ))
    } else if result.boundary {
        Some(format!(
            "over {range} the best fit bends more sharply than the search allows (ln k times \
             the N_S span up to {}): the points do not pin down an exponential",
            CURVATURE_RANGE.1
        ))
    } else {
        match curvature_p {
            Some(p) if p < alpha => None,
            Some(p) => Some(format!(
                "its curvature is not distinguishable from a straight line (F test p = {p:.2}, \
                 need < {alpha:.2}): over {range} the best k^x departs from a line by {:.2}% of \
                 its rise and the paper's k by {:.2}%",
                departure * 100.0,
                paper_departure * 100.0
            )),
            None => Some(format!(
                "its curvature cannot be tested against a straight line over {range}"
            )),
        }
    };
    let points: Vec<(f64, f64)> = fitted
        .iter()
        .copied()
        .filter(|p| !(with_origin && *p == (0.0, 0.0)))
        .collect();
    let line = fit_linear(&points, with_origin, options)
        .ok()
        .map(|(f, _)| f);
    RecallShape {
        identifiable: reason.is_none(),
        curvature_p,
        departure,
        paper_departure,
        x_range: (lo, hi),
        reason,
        line,
    }
}

/// An x in millions of scalars, with enough digits for tiny models.
fn fmt_x(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1.0 {
        format!("{x:.3}")
    } else {
        let digits = (2 - x.abs().log10().floor() as i32).max(3) as usize;
        format!("{x:.digits$}")
    }
}

fn check_points(points: &[(f64, f64)]) -> Result<(), LawError> {
    match points
        .iter()
        .find(|(x, y)| !x.is_finite() || !y.is_finite())
    {
        Some(&(x, y)) => Err(LawError::NonFinite { x, y }),
        None => Ok(()),
    }
}

fn distinct_x(points: &[(f64, f64)]) -> usize {
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs.len()
}

fn resample(points: &[(f64, f64)], rng: &mut ChaCha8Rng) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|_| points[rng.random_range(0..points.len())])
        .collect()
}

/// Coefficient of determination of `model` on `points`.
pub fn r_squared(points: &[(f64, f64)], model: impl Fn(f64) -> f64) -> f64 {
    let n = points.len() as f64;
    let mean = points.iter().map(|p| p.1).sum::<f64>() / n;
    let ss_tot: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let ss_res: f64 = points.iter().map(|p| (p.1 - model(p.0)).powi(2)).sum();
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    }
}

/// Central percentile interval at `confidence` (linear interpolation between order
/// statistics); the point estimate when no resample was usable (reported in the notes).
fn interval(samples: &mut [f64], estimate: f64, confidence: f64) -> (f64, f64) {
    if samples.is_empty() {
        return (estimate, estimate);
    }
    samples.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    (percentile(samples, tail), percentile(samples, 1.0 - tail))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// Which measure of the state size a fit's x is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// N_S: SSM states plus convolution caches (the paper's).
    Total,
    /// The SSM states alone.
    Ssm,
}

impl Measure {
    /// x in millions of scalars.
    fn x(self, total: u64, ssm: Option<u64>) -> Option<f64> {
        match self {
            Measure::Total => Some(total as f64 / SCALARS_PER_M),
            Measure::Ssm => ssm.map(|s| s as f64 / SCALARS_PER_M),
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Measure::Total => "",
            Measure::Ssm => "SSM-only ",
        }
    }
}

/// Whether a forget point enters the T_forget fits.
fn forget_fitted(p: &ForgetPoint, options: &LawOptions) -> bool {
    match p.estimate.map(|e| e.kind) {
        Some(Censoring::Exact) => true,
        Some(Censoring::UpperBound) => options.include_unbracketed,
        _ => false,
    }
}

/// Whether a recall point enters the zero-shot T_recall law.
fn recall_fitted(p: &RecallPoint) -> bool {
    p.retrieval == Retrieval::ZeroShot && p.estimate.is_some_and(|e| e.is_exact())
}

/// The linear and exponential fits against one measure of N_S, each described in `notes`.
fn fit_state(
    measure: Measure,
    forget_points: &[ForgetPoint],
    recall_points: &[RecallPoint],
    options: &LawOptions,
    seed_offset: u64,
    notes: &mut Vec<String>,
) -> StateFits {
    let prefix = measure.prefix();
    let percent = options.confidence * 100.0;
    let seeded = |offset: u64| LawOptions {
        seed: options.seed.wrapping_add(seed_offset + offset),
        ..options.clone()
    };
    let rough = |used: usize, state_sizes: usize| {
        let mut out = String::new();
        if used < ROUGH_BOOTSTRAP {
            out.push_str("; few usable resamples, so the intervals are rough");
        }
        if state_sizes <= ROUGH_FIT_POINTS {
            out.push_str(&format!(
                "; only {state_sizes} state sizes, so the bootstrap interval is rough (few points)"
            ));
        }
        out
    };
    let forget_xy: Vec<(f64, f64)> = forget_points
        .iter()
        .filter(|p| forget_fitted(p, options))
        .filter_map(|p| {
            let x = measure.x(p.state_size, p.ssm_state_size)?;
            p.t_forget.map(|t| (x, t as f64 / TOKENS_PER_K))
        })
        .collect();
    let mut fit_line = |with_origin: bool| -> Option<LinearFit> {
        let primary = with_origin == options.include_origin;
        let name = format!(
            "{prefix}T_forget line{}{}",
            if with_origin { " with (0,0)" } else { "" },
            if primary { " (primary)" } else { "" }
        );
        match fit_linear(&forget_xy, with_origin, &seeded(u64::from(with_origin))) {
            Ok((fit, used)) => {
                notes.push(format!(
                    "{name}: a = {:.3} [{:.3}, {:.3}], b = {:.3} [{:.3}, {:.3}] K \
                     ({percent}% bootstrap intervals), R² = {:.4}, n = {} ({used}/{} bootstrap \
                     resamples usable{}){}{}",
                    fit.a,
                    fit.a_ci.0,
                    fit.a_ci.1,
                    fit.b,
                    fit.b_ci.0,
                    fit.b_ci.1,
                    fit.r2,
                    fit.n,
                    options.bootstrap,
                    rough(used, fit.state_sizes()),
                    if fit.n == 2 {
                        "; exact through 2 points, R² is meaningless"
                    } else {
                        ""
                    },
                    if measure == Measure::Total {
                        format!(
                            "; paper: a = {}, b = {}",
                            PAPER_FORGET_LINE.0, PAPER_FORGET_LINE.1
                        )
                    } else {
                        String::new()
                    }
                ));
                Some(fit)
            }
            Err(e) => {
                // The SSM-only fits fail exactly when the total's do: said once.
                if measure == Measure::Total {
                    notes.push(format!("no {name}: {e}"));
                }
                None
            }
        }
    };
    // The primary line first, so its note leads.
    let (linear, linear_with_origin) = if options.include_origin {
        let origin = fit_line(true);
        (fit_line(false), origin)
    } else {
        let plain = fit_line(false);
        (plain, fit_line(true))
    };

    let recall_xy: Vec<(f64, f64)> = recall_points
        .iter()
        .filter(|p| recall_fitted(p))
        .filter_map(|p| {
            let x = measure.x(p.state_size, p.ssm_state_size)?;
            p.t_recall.map(|t| (x, t as f64 / TOKENS_PER_K))
        })
        .collect();
    let (exponential, recall_shape) = match fit_exponential(&recall_xy, true, &seeded(2)) {
        Err(e) => {
            if measure == Measure::Total {
                notes.push(format!("no T_recall law: {e}"));
            }
            (None, None)
        }
        Ok(result) => {
            let shape = Some(recall_shape(&result, &seeded(3)));
            let fit = result.fit;
            match shape.as_ref().and_then(|s| s.reason.as_deref()) {
                Some(reason) => {
                    let line =
                        shape
                            .as_ref()
                            .and_then(|s| s.line.as_ref())
                            .map_or(String::new(), |l| {
                                format!(
                                    "; the points' own shape is a straight line, T_recall[K] = \
                                 {:.3} N_S {} {:.3} (R² = {:.4})",
                                    l.a,
                                    if l.b < 0.0 { "-" } else { "+" },
                                    l.b.abs(),
                                    l.r2
                                )
                            });
                    notes.push(format!(
                        "{prefix}T_recall law with (0,0): k is not identifiable and not \
                         reported: {reason}{line}"
                    ));
                    (None, shape)
                }
                None => {
                    notes.push(format!(
                        "{prefix}T_recall law with (0,0): c = {:.3}, k = {:.4} [{:.4}, {:.4}] \
                         ({percent}% bootstrap interval), d = {:.3} K, R² = {:.4}, n = {} \
                         ({}/{} bootstrap resamples usable{}){}{}",
                        fit.c,
                        fit.k,
                        fit.k_ci.0,
                        fit.k_ci.1,
                        fit.d,
                        fit.r2,
                        fit.n,
                        result.used,
                        options.bootstrap,
                        rough(result.used, fit.state_sizes()),
                        shape
                            .as_ref()
                            .and_then(|s| s.curvature_p)
                            .map_or(String::new(), |p| format!(
                                "; curvature against a straight line: F test p = {p:.3}"
                            )),
                        if measure == Measure::Total {
                            format!(
                                "; paper: c = {}, k = {}, d = {}",
                                PAPER_RECALL_LAW.0, PAPER_RECALL_LAW.1, PAPER_RECALL_LAW.2
                            )
                        } else {
                            String::new()
                        }
                    ));
                    (Some(fit), shape)
                }
            }
        }
    };
    StateFits {
        linear,
        linear_with_origin,
        exponential,
        recall_shape,
    }
}

/// Builds `law.json` from the runs of an experiment.
pub fn law_report(
    experiment: &str,
    runs: &[RunOutcome],
    options: &LawOptions,
) -> Result<LawReport, LawError> {
    options.validate()?;
    let mut by_size: BTreeMap<u64, Vec<&RunOutcome>> = BTreeMap::new();
    for r in runs {
        by_size.entry(r.state_size).or_default().push(r);
    }
    let mut notes = vec![format!(
        "{} run(s) over {} state size(s); x = N_S in millions of state scalars (SSM states plus \
         convolution caches, the paper's definition), y in K = 1024 tokens; primary T_forget \
         line: {}",
        runs.len(),
        by_size.len(),
        if options.include_origin {
            "with (0,0), as the paper's (`[fit] include_origin = true`)"
        } else {
            "without (0,0) (`[fit] include_origin = false`)"
        }
    )];

    let forget_points: Vec<ForgetPoint> = by_size
        .iter()
        .map(|(&size, group)| forget_point(size, group))
        .collect();
    let count = |kind: Censoring| {
        forget_points
            .iter()
            .filter(|p| p.estimate.is_some_and(|e| e.kind == kind))
            .count()
    };
    let (upper, lower) = (count(Censoring::UpperBound), count(Censoring::LowerBound));
    if upper + lower > 0 {
        notes.push(format!(
            "{} of {} state size(s) have only a bound on T_forget: {upper} upper bound(s) (the \
             shortest length tried already forgets), {lower} lower bound(s) (no length tried \
             forgets); {}",
            upper + lower,
            forget_points.len(),
            match (options.include_unbracketed, upper > 0) {
                (true, true) =>
                    "the upper bounds are fitted as if exact, as requested; lower bounds are not",
                _ if upper > 0 =>
                    "bounds are left out of the fits (--include-unbracketed fits the upper \
                     bounds as if exact)",
                _ => "bounds are left out of the fits",
            }
        ));
    }
    let shares: Vec<f64> = forget_points
        .iter()
        .filter_map(|p| p.conv_share())
        .collect();
    if let (Some(lo), Some(hi)) = (
        shares.iter().copied().reduce(f64::min),
        shares.iter().copied().reduce(f64::max),
    ) {
        let range = if hi - lo < 0.005 {
            format!("{:.0}%", hi * 100.0)
        } else {
            format!("{:.0}-{:.0}%", lo * 100.0, hi * 100.0)
        };
        notes.push(format!(
            "the convolution caches are {range} of N_S here (under 3% in the paper's models); \
             the fits are repeated with x = the SSM states alone (`ssm_only`)"
        ));
    }

    let recall_points: Vec<RecallPoint> = by_size
        .iter()
        .filter_map(|(&size, group)| recall_point(size, group, &mut notes))
        .collect();
    let in_distribution = recall_points
        .iter()
        .filter(|p| p.retrieval == Retrieval::InDistribution && p.passkey_ran == Some(true))
        .count();
    if in_distribution > 0 {
        notes.push(format!(
            "{in_distribution} state size(s) have an in-distribution T_recall (their runs \
             trained on synthetic passkey sequences, `[data.synthetic]`): retrieval was learned, \
             not zero-shot as in the paper, so they are shown but kept out of the T_recall law"
        ));
    }
    let recall_bounds = |kind: Censoring| {
        recall_points
            .iter()
            .filter(|p| p.estimate.is_some_and(|e| e.kind == kind))
            .count()
    };
    let (r_lower, r_upper) = (
        recall_bounds(Censoring::LowerBound),
        recall_bounds(Censoring::UpperBound),
    );
    if r_lower + r_upper > 0 {
        notes.push(format!(
            "{} T_recall point(s) are bounds, not fitted: {r_lower} lower bound(s) (the longest \
             passkey length tried passes), {r_upper} upper bound(s) (no length passes)",
            r_lower + r_upper
        ));
    }

    let total = fit_state(
        Measure::Total,
        &forget_points,
        &recall_points,
        options,
        0,
        &mut notes,
    );
    let ssm_known = !forget_points.is_empty()
        && forget_points.iter().all(|p| p.ssm_state_size.is_some())
        && recall_points.iter().all(|p| p.ssm_state_size.is_some());
    let ssm_only = ssm_known.then(|| {
        fit_state(
            Measure::Ssm,
            &forget_points,
            &recall_points,
            options,
            10,
            &mut notes,
        )
    });

    Ok(LawReport {
        experiment: experiment.to_string(),
        forget_points,
        linear: total.linear,
        linear_with_origin: total.linear_with_origin,
        primary_with_origin: options.include_origin,
        recall_points,
        exponential: total.exponential,
        recall_shape: total.recall_shape,
        ssm_only,
        paper_linear: PAPER_FORGET_LINE,
        paper_exponential: PAPER_RECALL_LAW,
        notes,
    })
}

/// A point's estimate as text: `2K` exact, `≤1K` / `>4K` T_forget bounds, `≥8K` / `<1K`
/// T_recall bounds.
fn estimate_text(estimate: Option<Estimate>, recall: bool) -> String {
    let Some(e) = estimate else {
        return "-".into();
    };
    let mark = match (e.kind, recall) {
        (Censoring::Exact, _) => "",
        (Censoring::UpperBound, false) => "≤",
        (Censoring::LowerBound, false) => ">",
        (Censoring::UpperBound, true) => "<",
        (Censoring::LowerBound, true) => "≥",
    };
    format!("{mark}{}", format_len(e.tokens))
}

/// One line about a T_forget fit: the formula, intervals, R² and n.
fn line_text(fit: &LinearFit) -> String {
    format!(
        "T_forget[K] = {:.3} N_S[M] {} {:.3} (a in [{:.3}, {:.3}], {:.0}% bootstrap), R² = {:.4}, \
         n = {}{}",
        fit.a,
        if fit.b < 0.0 { "-" } else { "+" },
        fit.b.abs(),
        fit.a_ci.0,
        fit.a_ci.1,
        fit.confidence * 100.0,
        fit.r2,
        fit.n,
        if fit.is_rough() {
            format!("; rough interval: only {} state sizes", fit.state_sizes())
        } else {
            String::new()
        }
    )
}

fn origin_text(fit: &LinearFit) -> &'static str {
    if fit.with_origin {
        "through (0,0)"
    } else {
        "without (0,0)"
    }
}

/// The fits against one measure, primary line first.
fn fits_text(
    out: &mut String,
    label: &str,
    primary: Option<&LinearFit>,
    secondary: Option<&LinearFit>,
    exponential: Option<&ExponentialFit>,
    shape: Option<&RecallShape>,
) {
    match primary {
        Some(p) => {
            out.push_str(&format!(
                "{label}primary, {}: {}\n",
                origin_text(p),
                line_text(p)
            ));
            if let Some(s) = secondary {
                out.push_str(&format!(
                    "{label}beside it, {}: {}\n",
                    origin_text(s),
                    line_text(s)
                ));
            }
        }
        None => out.push_str(&format!(
            "{label}T_forget line not fitted (see the notes)\n"
        )),
    }
    match (exponential, shape) {
        (Some(e), _) => out.push_str(&format!(
            "{label}T_recall[K] = {:.3} ({:.4}^N_S[M] - 1) {} {:.3} (zero-shot), R² = {:.4}, n = {}\n",
            e.c,
            e.k,
            if e.d < 0.0 { "-" } else { "+" },
            e.d.abs(),
            e.r2,
            e.n
        )),
        (None, Some(s)) if !s.identifiable => {
            out.push_str(&format!(
                "{label}T_recall: k not identifiable ({}){}\n",
                s.reason.as_deref().unwrap_or("no curvature"),
                s.line.as_ref().map_or(String::new(), |l| format!(
                    "; straight line: {:.3} N_S {} {:.3}",
                    l.a,
                    if l.b < 0.0 { "-" } else { "+" },
                    l.b.abs()
                ))
            ));
        }
        _ => out.push_str(&format!(
            "{label}T_recall law not fitted (see the notes)\n"
        )),
    }
}

/// A plain-text account of a law report: one row per state size, the fits (the primary
/// T_forget line first), then the notes (which say what was fitted, the numbers, and why a fit
/// is missing).
pub fn summary_text(report: &LawReport) -> String {
    let mut out = format!("experiment {}\n", report.experiment);
    out.push_str("  N_S [M]    SSM [M]    T_forget  T_recall  runs\n");
    let mut in_distribution = false;
    for p in &report.forget_points {
        let recall = report
            .recall_points
            .iter()
            .find(|r| r.state_size == p.state_size);
        let recall_text = recall.map_or("-".to_string(), |r| {
            let mut t = estimate_text(r.estimate, true);
            if r.passkey_ran == Some(false) {
                t = "not run".into();
            }
            if r.retrieval == Retrieval::InDistribution && r.passkey_ran == Some(true) {
                in_distribution = true;
                t.push('*');
            }
            t
        });
        out.push_str(&format!(
            "  {:<9}  {:<9}  {:<8}  {:<8}  {}\n",
            fmt_x(p.state_size as f64 / SCALARS_PER_M),
            p.ssm_state_size
                .map_or("-".to_string(), |s| fmt_x(s as f64 / SCALARS_PER_M)),
            estimate_text(p.estimate, false),
            recall_text,
            p.note
        ));
    }
    out.push_str(
        "  (T_forget ≤ upper bound, > lower bound; T_recall ≥ lower bound, < upper bound; only \
         exact values are fitted)\n",
    );
    if in_distribution {
        out.push_str(
            "  (* in-distribution: trained on synthetic passkey, not in the zero-shot law)\n",
        );
    }
    fits_text(
        &mut out,
        "",
        report.primary_linear(),
        report.secondary_linear(),
        report.exponential.as_ref(),
        report.recall_shape.as_ref(),
    );
    if let Some(ssm) = &report.ssm_only {
        let (primary, secondary) = if report.primary_with_origin {
            (&ssm.linear_with_origin, &ssm.linear)
        } else {
            (&ssm.linear, &ssm.linear_with_origin)
        };
        fits_text(
            &mut out,
            "SSM-only: ",
            primary.as_ref().or(secondary.as_ref()),
            primary.as_ref().and(secondary.as_ref()),
            ssm.exponential.as_ref(),
            ssm.recall_shape.as_ref(),
        );
    }
    for note in &report.notes {
        out.push_str(&format!("- {note}\n"));
    }
    out
}

/// Ordinary least squares `y = a x + b`; `None` with fewer than two distinct x.
pub fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let a = sxy / sxx;
    Some((a, my - a * mx))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's six T_forget points (paper.md section 3), N_S from the conv-inclusive formula.
    const PAPER_X: [f64; 5] = [1.079, 1.619, 2.424, 4.848, 12.915];
    const PAPER_FORGET_K: [f64; 5] = [1.0, 2.0, 8.0, 16.0, 64.0];
    const PAPER_RECALL_K: [f64; 5] = [1.0, 2.0, 4.0, 16.0, 256.0];

    fn opts(bootstrap: usize, seed: u64) -> LawOptions {
        LawOptions {
            bootstrap,
            seed,
            ..LawOptions::default()
        }
    }

    fn pts(ys: &[f64]) -> Vec<(f64, f64)> {
        PAPER_X.iter().copied().zip(ys.iter().copied()).collect()
    }

    /// The band is pointwise: it holds the fitted line, reaches past the largest state size,
    /// and near the middle of the data it is narrower than the envelope of all lines with a and
    /// b inside their separate intervals (a and b co-vary, so that envelope overstates it).
    #[test]
    fn the_band_is_pointwise_and_tighter_than_the_coefficient_envelope() {
        let (fit, _) = fit_linear(&pts(&PAPER_FORGET_K), true, &opts(1000, 1)).unwrap();
        assert_eq!(fit.band.len(), BAND_STEPS + 1);
        let last = fit.band.last().unwrap().0;
        assert!(
            (last - 12.915 * BAND_REACH).abs() < 1e-9,
            "band ends at {last}"
        );
        for &(x, low, high) in &fit.band {
            let y = fit.a * x + fit.b;
            assert!(
                low <= y + 1e-9 && y <= high + 1e-9,
                "x = {x}: {low} <= {y} <= {high}"
            );
        }
        let (x, low, high) = fit.band[BAND_STEPS / 4]; // x about 4 M, inside the data
        let corners = [
            fit.a_ci.0 * x + fit.b_ci.0,
            fit.a_ci.0 * x + fit.b_ci.1,
            fit.a_ci.1 * x + fit.b_ci.0,
            fit.a_ci.1 * x + fit.b_ci.1,
        ];
        let envelope = corners.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - corners.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            high - low < envelope,
            "pointwise width {} vs envelope {envelope} at x = {x}",
            high - low
        );
    }

    #[test]
    fn paper_points_with_origin_reproduce_the_published_line() {
        let (fit, used) = fit_linear(&pts(&PAPER_FORGET_K), true, &opts(1000, 1)).unwrap();
        assert!((5.15..=5.17).contains(&fit.a), "a = {}", fit.a);
        // Least squares gives b = -4.492; the paper prints -4.469 (pixel-read inputs).
        assert!((-4.50..=-4.46).contains(&fit.b), "b = {}", fit.b);
        assert!((fit.r2 - 0.9844).abs() < 1e-3, "R² = {}", fit.r2);
        assert_eq!(fit.n, 6);
        assert!(fit.with_origin);
        assert!(fit.a_ci.0 < fit.a && fit.a < fit.a_ci.1, "{:?}", fit.a_ci);
        assert!(used > 990);
        // Without the origin the line is different: the paper's numbers need the origin.
        let (no, _) = fit_linear(&pts(&PAPER_FORGET_K), false, &opts(1000, 1)).unwrap();
        assert!(
            (no.a - 5.370).abs() < 0.01 && (no.b + 6.379).abs() < 0.01,
            "{no:?}"
        );
        assert_eq!(no.n, 5);
    }

    #[test]
    fn linear_fit_recovers_known_parameters() {
        let xs = [0.5, 1.0, 2.0, 3.5, 5.0, 8.0, 13.0];
        let exact: Vec<(f64, f64)> = xs.iter().map(|&x| (x, 3.0 * x - 2.0)).collect();
        let (fit, _) = fit_linear(&exact, false, &opts(200, 0)).unwrap();
        assert!((fit.a - 3.0).abs() < 1e-12 && (fit.b + 2.0).abs() < 1e-12);
        assert!((fit.r2 - 1.0).abs() < 1e-12);
        assert!((fit.a_ci.0 - 3.0).abs() < 1e-9 && (fit.a_ci.1 - 3.0).abs() < 1e-9);
        // With noise, the truth lies in the bootstrap interval and the estimate is close.
        let noisy: Vec<(f64, f64)> = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, 3.0 * x - 2.0 + if i % 2 == 0 { 0.3 } else { -0.3 }))
            .collect();
        let (fit, _) = fit_linear(&noisy, false, &opts(2000, 3)).unwrap();
        assert!((fit.a - 3.0).abs() < 0.1, "{fit:?}");
        assert!(fit.a_ci.0 <= 3.0 && 3.0 <= fit.a_ci.1, "{fit:?}");
        assert!(fit.b_ci.0 <= -2.0 && -2.0 <= fit.b_ci.1, "{fit:?}");
        // A lower confidence level gives a narrower interval from the same resamples.
        let (narrow, _) = fit_linear(
            &noisy,
            false,
            &LawOptions {
                confidence: 0.5,
                ..opts(2000, 3)
            },
        )
        .unwrap();
        assert!(
            narrow.a_ci.0 > fit.a_ci.0 && narrow.a_ci.1 < fit.a_ci.1,
            "{narrow:?}"
        );
        // Seeded: the same seed gives the same intervals.
        let (again, _) = fit_linear(&noisy, false, &opts(2000, 3)).unwrap();
        assert_eq!(fit, again);
    }

    #[test]
    fn linear_fit_needs_two_state_sizes() {
        let err = fit_linear(&[(1.0, 2.0)], true, &opts(100, 0)).unwrap_err();
        assert!(
            matches!(
                err,
                LawError::TooFewPoints {
                    found: 1,
                    need: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = fit_linear(&[(1.0, 2.0), (1.0, 3.0)], false, &opts(100, 0)).unwrap_err();
        assert!(err.to_string().contains("too few points"), "{err}");
        assert!(matches!(
            fit_linear(&[(1.0, 1.0), (2.0, 2.0)], false, &opts(0, 0)),
            Err(LawError::NoResamples)
        ));
        let wide = LawOptions {
            confidence: 1.0,
            ..opts(10, 0)
        };
        assert!(matches!(
            fit_linear(&[(1.0, 1.0), (2.0, 2.0)], false, &wide),
            Err(LawError::BadConfidence(_))
        ));
        assert!(matches!(
            fit_linear(&[(1.0, f64::NAN), (2.0, 2.0)], false, &opts(100, 0)),
            Err(LawError::NonFinite { .. })
        ));
    }

    #[test]
    fn exponential_fit_recovers_known_parameters() {
        let (c, k, d): (f64, f64, f64) = (2.5, 1.6, 0.4);
        let xs = [0.5, 1.0, 2.0, 3.0, 4.5, 6.0, 8.0];
        let points: Vec<(f64, f64)> = xs.iter().map(|&x| (x, c * (k.powf(x) - 1.0) + d)).collect();
        let ExponentialResult {
            fit,
            used,
            boundary,
            ..
        } = fit_exponential(&points, false, &opts(200, 0)).unwrap();
        assert!((fit.k - k).abs() < 1e-6, "{fit:?}");
        assert!((fit.c - c).abs() < 1e-4, "{fit:?}");
        assert!((fit.d - d).abs() < 1e-4, "{fit:?}");
        assert!(fit.r2 > 0.999_999);
        assert!(!boundary);
        assert!(used > 150);
    }

    #[test]
    fn exponential_fit_of_the_paper_recall_points() {
        // paper.md section 4: refitting these gives about (k 1.367, c 4.62, d -0.70).
        let result = fit_exponential(&pts(&PAPER_RECALL_K), true, &opts(300, 0)).unwrap();
        let (fit, boundary) = (result.fit.clone(), result.boundary);
        assert!((fit.k - 1.367).abs() < 0.01, "{fit:?}");
        assert!((fit.c - 4.62).abs() < 0.15, "{fit:?}");
        assert!((fit.d + 0.70).abs() < 0.15, "{fit:?}");
        assert!(!boundary);
        assert!(fit.k_ci.0 <= fit.k && fit.k <= fit.k_ci.1);
        // Over the paper's 0-13M the curvature is unmistakable.
        let shape = recall_shape(&result, &opts(300, 0));
        assert!(shape.identifiable, "{shape:?}");
        assert!(shape.curvature_p.unwrap() < 0.01, "{shape:?}");
        assert!(shape.departure > 0.3, "{shape:?}");
        let err = fit_exponential(&pts(&PAPER_RECALL_K)[..2], true, &opts(100, 0)).unwrap_err();
        assert!(
            matches!(err, LawError::TooFewPoints { need: 3, .. }),
            "{err}"
        );
    }

    fn outcome(size: u64, len: usize, forgets: Option<bool>) -> RunOutcome {
        RunOutcome {
            run: format!("s{size}-l{len}"),
            state_size: size,
            ssm_state_size: size / 2,
            seq_len: len,
            has_verdict: forgets.is_some(),
            forgets,
            has_passkey: false,
            t_recall: None,
            passkey_lengths: Vec::new(),
            passkey_trained: false,
        }
    }

    fn point(pattern: &[(usize, Option<bool>)]) -> ForgetPoint {
        let runs: Vec<RunOutcome> = pattern.iter().map(|&(l, f)| outcome(7, l, f)).collect();
        let refs: Vec<&RunOutcome> = runs.iter().collect();
        forget_point(7, &refs)
    }

    #[test]
    fn forget_points_say_whether_they_are_bracketed() {
        let p = point(&[(2048, Some(true)), (1024, Some(false)), (4096, Some(true))]);
        assert_eq!(p.lengths, vec![1024, 2048, 4096]);
        assert_eq!((p.t_forget, p.bracketed), (Some(2048), true));
        assert!(p.note.contains("T_forget in (1K, 2K]"), "{}", p.note);
        assert!(p.note.starts_with("1K✗ 2K✓ 4K✓"), "{}", p.note);

        let p = point(&[(1024, Some(true)), (2048, Some(true))]);
        assert_eq!((p.t_forget, p.bracketed), (Some(1024), false));
        assert!(p.note.contains("upper bound"), "{}", p.note);

        let p = point(&[(1024, Some(false)), (2048, Some(false))]);
        assert_eq!((p.t_forget, p.bracketed), (None, false));
        assert!(p.note.contains("T_forget > 2K"), "{}", p.note);

        // Undetermined longer runs do not raise the lower bound.
        let p = point(&[(1024, Some(false)), (2048, None), (4096, None)]);
        assert_eq!((p.t_forget, p.bracketed), (None, false));
        assert!(
            p.note.contains("T_forget > 1K (lower bound only);"),
            "{}",
            p.note
        );

        let p = point(&[
            (1024, Some(false)),
            (2048, Some(true)),
            (4096, Some(false)),
            (8192, Some(true)),
        ]);
        assert_eq!((p.t_forget, p.bracketed), (Some(2048), true));
        assert!(
            p.note.contains("inconsistent pattern") && p.note.contains("4K"),
            "{}",
            p.note
        );

        let p = point(&[(1024, Some(false)), (2048, None), (4096, Some(true))]);
        assert_eq!((p.t_forget, p.bracketed), (Some(4096), true));
        assert!(
            p.note.contains("(1K, 4K]") && p.note.contains("2K not evaluated"),
            "{}",
            p.note
        );

        let p = point(&[(1024, None)]);
        assert_eq!(p.t_forget, None);
        assert!(p.note.contains("no determined verdict"), "{}", p.note);
    }

    #[test]
    fn seeds_are_combined_by_majority() {
        let runs = [
            outcome(7, 1024, Some(false)),
            outcome(7, 2048, Some(true)),
            outcome(7, 2048, Some(false)),
            outcome(7, 4096, Some(true)),
            outcome(7, 4096, Some(true)),
            outcome(7, 4096, Some(false)),
        ];
        let refs: Vec<&RunOutcome> = runs.iter().collect();
        let p = forget_point(7, &refs);
        assert_eq!(p.verdicts, vec![Some(false), None, Some(true)]);
        assert_eq!(p.t_forget, Some(4096));
        assert!(
            p.note.contains("2K disagree") && p.note.contains("majority used"),
            "{}",
            p.note
        );
    }

    #[test]
    fn law_report_recovers_a_synthetic_law_from_run_verdicts() {
        // True threshold T_forget[K] = 4 N_S[M]; lengths on a power-of-two grid.
        let sizes = [1_000_000u64, 2_000_000, 4_000_000, 8_000_000];
        let grid = [1024usize, 2048, 4096, 8192, 16384, 32768, 65536];
        let mut runs = Vec::new();
        for &s in &sizes {
            let threshold = 4.0 * s as f64 / 1e6 * 1024.0;
            for &len in &grid {
                let mut r = outcome(s, len, Some(len as f64 >= threshold));
                if len == 65536 {
                    r.has_passkey = true;
                    r.t_recall =
                        Some((1024.0 * 2.0 * (1.5f64.powf(s as f64 / 1e6) - 1.0)) as usize);
                    r.passkey_lengths = vec![512, 1 << 20];
                }
                runs.push(r);
            }
        }
        let report = law_report("exp", &runs, &LawOptions::default()).unwrap();
        let ts: Vec<Option<usize>> = report.forget_points.iter().map(|p| p.t_forget).collect();
        assert_eq!(ts, vec![Some(4096), Some(8192), Some(16384), Some(32768)]);
        let line = report.linear.as_ref().unwrap();
        assert!(
            (line.a - 4.0).abs() < 1e-9 && line.b.abs() < 1e-9,
            "{line:?}"
        );
        assert!(report.linear_with_origin.is_some());
        let exp = report.exponential.as_ref().unwrap();
        assert!((exp.k - 1.5).abs() < 0.01, "{exp:?}");
        assert_eq!(report.recall_points.len(), 4);
        assert_eq!(report.paper_linear, PAPER_FORGET_LINE);
        assert_eq!(report.paper_exponential, PAPER_RECALL_LAW);
    }

    #[test]
    fn law_report_says_when_there_are_too_few_points() {
        let runs = vec![
            outcome(1_000_000, 1024, Some(false)),
            outcome(1_000_000, 2048, Some(true)),
            outcome(2_000_000, 1024, Some(true)),
        ];
        let report = law_report("exp", &runs, &LawOptions::default()).unwrap();
        assert!(report.linear.is_none() && report.linear_with_origin.is_none());
        assert!(report.exponential.is_none());
        let notes = report.notes.join("\n");
        assert!(
            notes.contains("no T_forget line: too few points"),
            "{notes}"
        );
        assert!(
            notes.contains("1 of 2 state size(s) have only a bound on T_forget: 1 upper bound"),
            "{notes}"
        );
        assert!(notes.contains("no passkey summary"), "{notes}");
        // Including unbracketed points gives two sizes, enough for a line.
        let opts = LawOptions {
            include_unbracketed: true,
            ..LawOptions::default()
        };
        let report = law_report("exp", &runs, &opts).unwrap();
        let line = report.linear.unwrap();
        assert_eq!(line.n, 2);
        assert!(report.notes.iter().any(|n| n.contains("R² is meaningless")));
    }

    /// Runs of a true threshold T_forget[K] = 4 N_S[M] on a power-of-two grid, one state size
    /// per entry of `sizes` (in millions).
    fn forget_law_runs(sizes: &[f64]) -> Vec<RunOutcome> {
        let grid = [1024usize, 2048, 4096, 8192, 16384, 32768, 65536];
        let mut runs = Vec::new();
        for &m in sizes {
            let s = (m * 1e6) as u64;
            for &len in &grid {
                runs.push(outcome(s, len, Some(len as f64 >= 4.0 * m * 1024.0)));
            }
        }
        runs
    }

    /// `[fit] include_origin` picks the primary line: law.json records it, its note comes
    /// first, and the text summary leads with it and reports the other beside it.
    #[test]
    fn include_origin_picks_the_primary_line() {
        let runs = forget_law_runs(&[1.0, 2.0, 4.0, 8.0, 16.0]);
        for include_origin in [true, false] {
            let options = LawOptions {
                include_origin,
                bootstrap: 200,
                ..LawOptions::default()
            };
            let report = law_report("exp", &runs, &options).unwrap();
            assert_eq!(report.primary_with_origin, include_origin);
            let primary = report.primary_linear().unwrap();
            assert_eq!(primary.with_origin, include_origin);
            assert_eq!(
                report.secondary_linear().map(|f| f.with_origin),
                Some(!include_origin)
            );
            let first_line = report
                .notes
                .iter()
                .find(|n| n.starts_with("T_forget line"))
                .unwrap();
            assert!(
                first_line.contains("(primary)")
                    && first_line.contains("with (0,0)") == include_origin,
                "{first_line}"
            );
            let text = summary_text(&report);
            let (lead, beside) = if include_origin {
                ("primary, through (0,0)", "beside it, without (0,0)")
            } else {
                ("primary, without (0,0)", "beside it, through (0,0)")
            };
            let (at_lead, at_beside) = (text.find(lead), text.find(beside));
            assert!(
                at_lead.is_some() && at_beside.is_some() && at_lead < at_beside,
                "{text}"
            );
        }
    }

    /// Bounds are marked, left out of the line, and counted in the notes.
    #[test]
    fn bounds_are_marked_and_left_out_of_the_line() {
        let mut runs = forget_law_runs(&[1.0, 2.0, 4.0]);
        // 0.1M already forgets at 1K (upper bound); 32M never forgets up to 64K (lower bound).
        runs.extend(forget_law_runs(&[0.1, 32.0]));
        let report = law_report("exp", &runs, &opts(200, 0)).unwrap();
        let kinds: Vec<(u64, Option<Censoring>, Option<usize>)> = report
            .forget_points
            .iter()
            .map(|p| {
                (
                    p.state_size,
                    p.estimate.map(|e| e.kind),
                    p.estimate.map(|e| e.tokens),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (100_000, Some(Censoring::UpperBound), Some(1024)),
                (1_000_000, Some(Censoring::Exact), Some(4096)),
                (2_000_000, Some(Censoring::Exact), Some(8192)),
                (4_000_000, Some(Censoring::Exact), Some(16384)),
                (32_000_000, Some(Censoring::LowerBound), Some(65536)),
            ]
        );
        // The exact points lie on T = 4 N_S: a bound in the fit would pull the line off it.
        let line = report.linear.as_ref().unwrap();
        assert_eq!(line.n, 3);
        assert!(
            (line.a - 4.0).abs() < 1e-9 && line.b.abs() < 1e-9,
            "{line:?}"
        );
        let notes = report.notes.join("\n");
        assert!(
            notes.contains(
                "2 of 5 state size(s) have only a bound on T_forget: 1 upper bound(s) (the \
                 shortest length tried already forgets), 1 lower bound(s)"
            ),
            "{notes}"
        );
        let text = summary_text(&report);
        assert!(text.contains("≤1K") && text.contains(">64K"), "{text}");
    }

    /// With 2-4 state sizes the notes say plainly that the interval is rough; with more they
    /// do not.
    #[test]
    fn few_state_sizes_make_a_rough_interval() {
        let few = law_report("exp", &forget_law_runs(&[1.0, 2.0, 4.0]), &opts(200, 0)).unwrap();
        let notes = few.notes.join("\n");
        assert!(
            notes.contains("only 3 state sizes, so the bootstrap interval is rough (few points)"),
            "{notes}"
        );
        assert!(few.primary_linear().unwrap().is_rough());
        assert!(summary_text(&few).contains("rough interval: only 3 state sizes"));
        let many = law_report(
            "exp",
            &forget_law_runs(&[1.0, 2.0, 3.0, 4.0, 6.0, 8.0]),
            &opts(200, 0),
        )
        .unwrap();
        let notes = many.notes.join("\n");
        assert!(!notes.contains("rough"), "{notes}");
        assert!(!many.primary_linear().unwrap().is_rough());
    }

    #[test]
    fn chord_departure_measures_curvature() {
        assert_eq!(chord_departure(0.0), 0.0);
        assert_eq!(chord_departure(f64::NAN), 0.0);
        assert!((chord_departure(1e-8) - 1.25e-9).abs() < 1e-15);
        assert!((chord_departure(0.01) - 0.01 / 8.0).abs() < 1e-5);
        // The paper's k over its own 0-13M: strongly curved; over 0-0.009M: a line.
        let paper = 1.365f64.ln();
        assert!(chord_departure(paper * 12.915) > 0.4);
        assert!(chord_departure(paper * 0.009) < 1e-3);
        let mut last = 0.0;
        for u in [0.1, 1.0, 5.0, 50.0, 500.0, 5000.0] {
            let d = chord_departure(u);
            assert!(d > last && d < 1.0, "u = {u}: {d}");
            last = d;
        }
    }

    /// Tiny state sizes with a straight T_recall: k is not identifiable, no k is reported, a
    /// straight line is; real curvature in the same tiny range is found in its own scale.
    #[test]
    fn a_straight_recall_at_tiny_sizes_is_not_an_exponential() {
        let xs = [0.002, 0.0035, 0.005, 0.007, 0.009];
        let linear: Vec<(f64, f64)> = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                (
                    x,
                    (20_000.0 * x + if i % 2 == 0 { 4.0 } else { -4.0 }) / 1024.0,
                )
            })
            .collect();
        let options = opts(200, 0);
        let result = fit_exponential(&linear, true, &options).unwrap();
        let shape = recall_shape(&result, &options);
        assert!(!shape.identifiable, "{shape:?}");
        let reason = shape.reason.as_deref().unwrap();
        assert!(
            reason.contains("not distinguishable from a straight line")
                || reason.contains("is a straight line"),
            "{reason}"
        );
        assert!(shape.paper_departure < 1e-3, "{shape:?}");
        let line = shape.line.as_ref().unwrap();
        assert!((line.a - 20_000.0 / 1024.0).abs() < 1.5, "{line:?}");

        // Through law_report: no exponential, the shape and its line instead.
        let runs: Vec<RunOutcome> = xs
            .iter()
            .zip(&linear)
            .map(|(&x, &(_, y))| RunOutcome {
                has_passkey: true,
                t_recall: Some((y * 1024.0).round() as usize),
                passkey_lengths: vec![16, 4096],
                ..outcome((x * 1e6) as u64, 64, Some(true))
            })
            .collect();
        let report = law_report("tiny", &runs, &options).unwrap();
        assert!(report.exponential.is_none());
        let shape = report.recall_shape.as_ref().unwrap();
        assert!(!shape.identifiable && shape.line.is_some(), "{shape:?}");
        let notes = report.notes.join("\n");
        assert!(
            notes.contains("k is not identifiable and not reported"),
            "{notes}"
        );
        assert!(
            summary_text(&report).contains("T_recall: k not identifiable"),
            "{}",
            summary_text(&report)
        );

        // Exactly straight points: the best fit is the flattest curve searched.
        let straight: Vec<(f64, f64)> = xs.iter().map(|&x| (x, 20.0 * x)).collect();
        let result = fit_exponential(&straight, true, &options).unwrap();
        let shape = recall_shape(&result, &options);
        assert!(!shape.identifiable, "{shape:?}");
        assert!(
            shape
                .reason
                .as_deref()
                .unwrap()
                .contains("is a straight line"),
            "{shape:?}"
        );

        // A real doubling every 0.002M in the same range is curvature the fit can see.
        let curved: Vec<(f64, f64)> = [0.002, 0.004, 0.006, 0.008, 0.010]
            .iter()
            .map(|&x| (x, 0.5 * (2f64.powf(x / 0.002) - 1.0)))
            .collect();
        let result = fit_exponential(&curved, true, &options).unwrap();
        let shape = recall_shape(&result, &options);
        assert!(shape.identifiable, "{shape:?}");
        assert!(
            (result.fit.k.ln() - 2f64.ln() / 0.002).abs() < 1.0,
            "{:?}",
            result.fit
        );
    }

    /// T_recall: in-distribution retrieval and bounds are labelled and kept out of the
    /// zero-shot law; "not run" and "ran, nothing passed" are told apart.
    #[test]
    fn recall_points_say_what_they_are() {
        let recall = |m: f64| (1024.0 * 2.0 * (1.5f64.powf(m) - 1.0)) as usize;
        let mut runs = Vec::new();
        for (m, trained, kind) in [
            (1.0, false, "exact"),
            (2.0, false, "exact"),
            (3.0, false, "exact"),
            (4.0, false, "exact"),
            (5.0, true, "exact"),
            (6.0, false, "at-longest"),
            (7.0, false, "none-passes"),
            (8.0, false, "not-run"),
        ] {
            let mut r = outcome((m * 1e6) as u64, 4096, Some(true));
            r.passkey_trained = trained;
            match kind {
                "exact" => {
                    r.has_passkey = true;
                    r.t_recall = Some(recall(m));
                    r.passkey_lengths = vec![512, 1 << 20];
                }
                "at-longest" => {
                    r.has_passkey = true;
                    r.t_recall = Some(8192);
                    r.passkey_lengths = vec![1024, 8192];
                }
                "none-passes" => {
                    r.has_passkey = true;
                    r.passkey_lengths = vec![2048, 8192];
                }
                _ => {}
            }
            runs.push(r);
        }
        let report = law_report("exp", &runs, &opts(200, 0)).unwrap();
        let p = &report.recall_points;
        assert_eq!(p.len(), 8);
        assert_eq!(p[4].retrieval, Retrieval::InDistribution);
        assert!(
            p.iter()
                .enumerate()
                .all(|(i, r)| (i == 4) == (r.retrieval == Retrieval::InDistribution))
        );
        assert_eq!(
            p[5].estimate,
            Some(Estimate {
                tokens: 8192,
                kind: Censoring::LowerBound
            })
        );
        assert_eq!(
            p[6].estimate,
            Some(Estimate {
                tokens: 2048,
                kind: Censoring::UpperBound
            })
        );
        assert!(p[6].passkey_ran == Some(true) && p[6].t_recall.is_none());
        assert!(p[7].passkey_ran == Some(false) && p[7].estimate.is_none());
        // Only the four zero-shot exact points (and the origin) are fitted, and they follow
        // 2 (1.5^x - 1) exactly; the in-distribution and bound points would pull k away.
        let exp = report.exponential.as_ref().expect("identifiable law");
        assert_eq!(exp.n, 5);
        assert!((exp.k - 1.5).abs() < 0.01, "{exp:?}");
        let notes = report.notes.join("\n");
        for needle in [
            "1 state size(s) have an in-distribution T_recall",
            "2 T_recall point(s) are bounds, not fitted: 1 lower bound(s)",
            "passkey ran on s7000000-l4096 but no length reached the accuracy threshold, so \
             T_recall < 2K",
            "passkey not run on s8000000-l4096",
        ] {
            assert!(notes.contains(needle), "missing {needle:?} in {notes}");
        }
        let text = summary_text(&report);
        for needle in ["≥8K", "<2K", "not run", "* in-distribution"] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
    }

    /// The fits are repeated on the SSM states alone, and the conv share is stated.
    #[test]
    fn ssm_only_fits_sit_beside_the_total() {
        // outcome() gives every run an SSM part of half its N_S.
        let report = law_report(
            "exp",
            &forget_law_runs(&[1.0, 2.0, 4.0, 8.0]),
            &opts(200, 0),
        )
        .unwrap();
        assert!(
            report
                .forget_points
                .iter()
                .all(|p| p.ssm_state_size == Some(p.state_size / 2))
        );
        let total = report.linear.as_ref().unwrap();
        let ssm = report.ssm_only.as_ref().unwrap().linear.as_ref().unwrap();
        assert!((total.a - 4.0).abs() < 1e-9, "{total:?}");
        assert!((ssm.a - 8.0).abs() < 1e-9, "{ssm:?}");
        let notes = report.notes.join("\n");
        assert!(
            notes.contains("the convolution caches are 50% of N_S here"),
            "{notes}"
        );
        assert!(notes.contains("SSM-only T_forget line with (0,0) (primary)"));
        assert!(summary_text(&report).contains("SSM-only: primary, through (0,0)"));
    }

    #[test]
    fn format_len_uses_k() {
        assert_eq!(format_len(16384), "16K");
        assert_eq!(format_len(1000), "1000");
        assert_eq!(format_len(1536), "1536");
    }
}

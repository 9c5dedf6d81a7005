//! The scaling laws over an experiment: T_forget(N_S) and T_recall(N_S).
//!
//! For each state size, T_forget is the smallest training length whose run forgets (paper.md
//! section 3). A power-of-two grid only brackets it, so every point says whether a shorter,
//! non-forgetting length was also tried; only bracketed points are fitted unless asked
//! otherwise. The paper fits `T_forget[K] = a N_S[M] + b` with the (0, 0) point included; we
//! fit both with and without it. T_recall (longest passkey length at the accuracy threshold,
//! from the longest-trained run of each state size) follows `T[K] = c (k^{N_S[M]} - 1) + d`.
//!
//! Units are the paper's: x in millions of state scalars, y in K = 1024 tokens (the paper's
//! "16K" training length is 16384 tokens). Intervals are percentile bootstrap intervals (95%
//! by default, `[fit] confidence`) over resampled state sizes (the origin, when used, is kept
//! in every resample), seeded. The linear fit also carries a pointwise band: at each x, the
//! same percentiles of the resampled lines' values there (tighter than combining the separate
//! intervals of a and b, which co-vary).

use std::collections::BTreeMap;

use forgetlab_runs::FitConfig;
use forgetlab_runs::results::{
    ExponentialFit, ForgetPoint, LawReport, LinearFit, PAPER_FORGET_LINE, PAPER_RECALL_LAW,
    RecallPoint,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
    /// N_S in scalars.
    pub state_size: u64,
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
                    "no run forgets up to {}: T_forget > {}; train longer to bracket it",
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
    ForgetPoint {
        state_size,
        lengths,
        verdicts,
        t_forget,
        bracketed,
        note: format!("{pattern}: {}", notes.join("; ")),
    }
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

/// Search range of ln k: k from about 1.0001 to e^5 (about 148).
const LN_K_RANGE: (f64, f64) = (1e-4, 5.0);
const LN_K_GRID: usize = 400;

/// The best (ln k, c, d, sse) and whether ln k sits on the search boundary. For a fixed k the
/// problem is linear in c and d, so we profile over k: a log-spaced grid over ln k, then a
/// golden-section refinement between the best grid point's neighbours.
fn exp_profile(points: &[(f64, f64)]) -> Option<(f64, f64, f64, f64, bool)> {
    let (lo, hi) = (LN_K_RANGE.0.ln(), LN_K_RANGE.1.ln());
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
    Some((ln_k, c, d, sse, boundary))
}

/// Fits `y = c (k^x - 1) + d` (k > 1) on `points`, adding (0, 0) when `with_origin`.
/// Returns the fit, the usable bootstrap resamples, and whether k hit the search boundary.
pub fn fit_exponential(
    points: &[(f64, f64)],
    with_origin: bool,
    options: &LawOptions,
) -> Result<(ExponentialFit, usize, bool), LawError> {
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
    let (ln_k, c, d, _, boundary) = exp_profile(&fitted).ok_or_else(too_few)?;
    let k = ln_k.exp();
    let r2 = r_squared(&fitted, |x| c * (x * ln_k).exp_m1() + d);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let (mut sk, mut sc, mut sd) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.bootstrap {
        let sample = with(&resample(points, &mut rng));
        if distinct_x(&sample) < 3 {
            continue;
        }
        if let Some((rl, rc, rd, _, _)) = exp_profile(&sample) {
            sk.push(rl.exp());
            sc.push(rc);
            sd.push(rd);
        }
    }
    let used = sk.len();
    Ok((
        ExponentialFit {
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
        boundary,
    ))
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
        "{} run(s) over {} state size(s); x = N_S in millions of state scalars, y in K = 1024 tokens",
        runs.len(),
        by_size.len()
    )];

    let forget_points: Vec<ForgetPoint> = by_size
        .iter()
        .map(|(&size, group)| forget_point(size, group))
        .collect();
    let usable: Vec<(f64, f64)> = forget_points
        .iter()
        .filter(|p| p.bracketed || options.include_unbracketed)
        .filter_map(|p| {
            p.t_forget
                .map(|t| (p.state_size as f64 / SCALARS_PER_M, t as f64 / TOKENS_PER_K))
        })
        .collect();
    let unbracketed = forget_points
        .iter()
        .filter(|p| p.t_forget.is_some() && !p.bracketed)
        .count();
    if unbracketed > 0 {
        notes.push(format!(
            "{unbracketed} state size(s) have only an upper bound on T_forget (the shortest \
             length tried already forgets); {}",
            if options.include_unbracketed {
                "they are included in the fits as requested"
            } else {
                "they are left out of the fits (use --include-unbracketed to fit them anyway)"
            }
        ));
    }
    let percent = options.confidence * 100.0;
    let seeded = |offset: u64| LawOptions {
        seed: options.seed.wrapping_add(offset),
        ..options.clone()
    };
    let rough = |used: usize| {
        if used < ROUGH_BOOTSTRAP {
            "; few usable resamples, so the intervals are rough"
        } else {
            ""
        }
    };
    let mut fit_line = |with_origin: bool, offset: u64| -> Option<LinearFit> {
        match fit_linear(&usable, with_origin, &seeded(offset)) {
            Ok((fit, used)) => {
                notes.push(format!(
                    "T_forget line{}: a = {:.3} [{:.3}, {:.3}], b = {:.3} [{:.3}, {:.3}] K \
                     ({percent}% bootstrap intervals), R² = {:.4}, n = {} ({used}/{} bootstrap \
                     resamples usable{}){}; paper: a = {}, b = {}",
                    if with_origin { " with (0,0)" } else { "" },
                    fit.a,
                    fit.a_ci.0,
                    fit.a_ci.1,
                    fit.b,
                    fit.b_ci.0,
                    fit.b_ci.1,
                    fit.r2,
                    fit.n,
                    options.bootstrap,
                    rough(used),
                    if fit.n == 2 {
                        "; exact through 2 points, R² is meaningless"
                    } else {
                        ""
                    },
                    PAPER_FORGET_LINE.0,
                    PAPER_FORGET_LINE.1
                ));
                Some(fit)
            }
            Err(e) => {
                notes.push(format!(
                    "no T_forget line{}: {e}",
                    if with_origin { " with (0,0)" } else { "" }
                ));
                None
            }
        }
    };
    let linear = fit_line(false, 0);
    let linear_with_origin = fit_line(true, 1);

    // T_recall from the longest-trained run of each state size.
    let mut recall_points = Vec::new();
    for (&size, group) in &by_size {
        let longest = group.iter().map(|r| r.seq_len).max().unwrap_or(0);
        let mut candidates: Vec<&&RunOutcome> =
            group.iter().filter(|r| r.seq_len == longest).collect();
        candidates.sort_by(|a, b| (!a.has_passkey, &a.run).cmp(&(!b.has_passkey, &b.run)));
        let Some(best) = candidates.first() else {
            continue;
        };
        if !best.has_passkey {
            notes.push(format!(
                "N_S = {:.3}M: no passkey summary for {}, no T_recall",
                size as f64 / SCALARS_PER_M,
                best.run
            ));
        } else if best.t_recall.is_none() {
            notes.push(format!(
                "N_S = {:.3}M: no passkey length of {} reaches the accuracy threshold",
                size as f64 / SCALARS_PER_M,
                best.run
            ));
        }
        recall_points.push(RecallPoint {
            state_size: size,
            run: best.run.clone(),
            t_recall: best.t_recall,
        });
    }
    let recall_xy: Vec<(f64, f64)> = recall_points
        .iter()
        .filter_map(|p| {
            p.t_recall
                .map(|t| (p.state_size as f64 / SCALARS_PER_M, t as f64 / TOKENS_PER_K))
        })
        .collect();
    let exponential = match fit_exponential(&recall_xy, true, &seeded(2)) {
        Ok((fit, used, boundary)) => {
            notes.push(format!(
                "T_recall law with (0,0): c = {:.3}, k = {:.4} [{:.4}, {:.4}] ({percent}% \
                 bootstrap interval), d = {:.3} K, R² = {:.4}, n = {} ({used}/{} bootstrap \
                 resamples usable{}); paper: c = {}, k = {}, d = {}",
                fit.c,
                fit.k,
                fit.k_ci.0,
                fit.k_ci.1,
                fit.d,
                fit.r2,
                fit.n,
                options.bootstrap,
                rough(used),
                PAPER_RECALL_LAW.0,
                PAPER_RECALL_LAW.1,
                PAPER_RECALL_LAW.2
            ));
            if boundary {
                notes.push(format!(
                    "the T_recall fit's k = {:.4} sits on the edge of the searched range \
                     (ln k in [{}, {}]): the points do not pin down an exponential",
                    fit.k, LN_K_RANGE.0, LN_K_RANGE.1
                ));
            }
            Some(fit)
        }
        Err(e) => {
            notes.push(format!("no T_recall law: {e}"));
            None
        }
    };

    Ok(LawReport {
        experiment: experiment.to_string(),
        forget_points,
        linear,
        linear_with_origin,
        recall_points,
        exponential,
        paper_linear: PAPER_FORGET_LINE,
        paper_exponential: PAPER_RECALL_LAW,
        notes,
    })
}

/// A plain-text account of a law report: one row per state size, then the notes (which say
/// what was fitted, the numbers, and why a fit is missing).
pub fn summary_text(report: &LawReport) -> String {
    let mut out = format!("experiment {}\n", report.experiment);
    out.push_str("  N_S [M]    T_forget  bracketed  T_recall  runs\n");
    for p in &report.forget_points {
        let recall = report
            .recall_points
            .iter()
            .find(|r| r.state_size == p.state_size)
            .and_then(|r| r.t_recall)
            .map_or("-".to_string(), format_len);
        out.push_str(&format!(
            "  {:<9.3}  {:<8}  {:<9}  {:<8}  {}\n",
            p.state_size as f64 / SCALARS_PER_M,
            p.t_forget.map_or("-".to_string(), format_len),
            if p.bracketed { "yes" } else { "no" },
            recall,
            p.note
        ));
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
        let (fit, used, boundary) = fit_exponential(&points, false, &opts(200, 0)).unwrap();
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
        let (fit, _, boundary) =
            fit_exponential(&pts(&PAPER_RECALL_K), true, &opts(300, 0)).unwrap();
        assert!((fit.k - 1.367).abs() < 0.01, "{fit:?}");
        assert!((fit.c - 4.62).abs() < 0.15, "{fit:?}");
        assert!((fit.d + 0.70).abs() < 0.15, "{fit:?}");
        assert!(!boundary);
        assert!(fit.k_ci.0 <= fit.k && fit.k <= fit.k_ci.1);
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
            seq_len: len,
            has_verdict: forgets.is_some(),
            forgets,
            has_passkey: false,
            t_recall: None,
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
        assert!(p.note.contains("T_forget > 1K;"), "{}", p.note);

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
        assert!(notes.contains("upper bound on T_forget"), "{notes}");
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

    #[test]
    fn format_len_uses_k() {
        assert_eq!(format_len(16384), "16K");
        assert_eq!(format_len(1000), "1000");
        assert_eq!(format_len(1536), "1536");
    }
}

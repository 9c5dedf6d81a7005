//! The law's two curves fitted with bootstrap intervals: the T_forget line `a x + b` with its
//! pointwise band, and the T_recall exponential `c (k^x - 1) + d` with a test of whether its
//! curvature is there at all.
//!
//! The regression itself is generic ([`crate::regression`], [`crate::bootstrap`]); what is the
//! law's is the origin point, the options, the refusals with too few state sizes, and the
//! judgement that a k fitted over a narrow range of N_S is not identifiable.

use forgetlab_runs::results::{ExponentialFit, LinearFit, PAPER_RECALL_LAW, RecallShape};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

use super::{LawError, LawOptions, fmt_x};
use crate::bootstrap::{interval, resample};
use crate::regression::{
    CURVATURE_RANGE, chord_departure, distinct_x, exp_profile, least_squares, r_squared, x_span,
};

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
pub(super) const BAND_REACH: f64 = 1.25;
/// ...in this many steps.
pub(super) const BAND_STEPS: usize = 50;

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

fn check_points(points: &[(f64, f64)]) -> Result<(), LawError> {
    match points
        .iter()
        .find(|(x, y)| !x.is_finite() || !y.is_finite())
    {
        Some(&(x, y)) => Err(LawError::NonFinite { x, y }),
        None => Ok(()),
    }
}

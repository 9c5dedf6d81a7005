//! Least squares on (x, y) points: the straight line and `c (k^x - 1) + d`, and how far a
//! curve departs from a line.
//!
//! The law fits need both shapes on a handful of points, and the same exponential fit inside
//! every bootstrap resample, so they are plain deterministic functions here, with the
//! resampling in [`crate::bootstrap`] and the law's own reading of them in [`crate::law`].

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

/// How many distinct x `points` have.
pub fn distinct_x(points: &[(f64, f64)]) -> usize {
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs.len()
}

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
pub const CURVATURE_RANGE: (f64, f64) = (1e-3, 60.0);
const LN_K_GRID: usize = 400;

/// The searched range of ln k for these points.
fn ln_k_range(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let (lo, hi) = x_span(points)?;
    let span = hi - lo;
    (span > 0.0).then(|| (CURVATURE_RANGE.0 / span, CURVATURE_RANGE.1 / span))
}

/// The smallest and largest x of `points`.
pub fn x_span(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let lo = points.iter().map(|p| p.0).reduce(f64::min)?;
    let hi = points.iter().map(|p| p.0).reduce(f64::max)?;
    Some((lo, hi))
}

/// The best fit of `c (k^x - 1) + d`.
pub struct ExpProfile {
    /// ln k of the best fit.
    pub ln_k: f64,
    /// Scale c.
    pub c: f64,
    /// Offset d.
    pub d: f64,
    /// Residual sum of squares.
    pub sse: f64,
    /// Whether ln k sits on the edge of the searched range.
    pub boundary: bool,
}

/// The best exponential. For a fixed k the problem is linear in c and d, so we profile over k:
/// a log-spaced grid over ln k, then a golden-section refinement between the best grid point's
/// neighbours.
pub fn exp_profile(points: &[(f64, f64)]) -> Option<ExpProfile> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

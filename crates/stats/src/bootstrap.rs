//! The percentile bootstrap: resample the points with replacement, refit, and read an interval
//! off the refits' percentiles.
//!
//! With a handful of state sizes no parametric error model of a law fit can be trusted, and the
//! resampled refits also give the linear fit's pointwise band (its coefficients co-vary). The
//! caller seeds the generator, so every interval is reproducible.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A resample of `points` with replacement, as many as there are.
pub fn resample(points: &[(f64, f64)], rng: &mut ChaCha8Rng) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|_| points[rng.random_range(0..points.len())])
        .collect()
}

/// Central percentile interval at `confidence` (linear interpolation between order
/// statistics); the point estimate when no resample was usable (reported in the notes).
pub fn interval(samples: &mut [f64], estimate: f64, confidence: f64) -> (f64, f64) {
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

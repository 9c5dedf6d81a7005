//! Simulated evaluation windows with a known truth, for testing the verdict's statistics.
//!
//! Each window `w` has a loss level `a_w` shared by all its positions (its text is easier or
//! harder) and, per range or block of width `n`, independent noise of variance
//! `token_sd^2 / n + segment_sd^2` (token-level noise averaged over the range, plus drift of the
//! text's difficulty between distant parts of a window). On top comes the true curve `f(p)`,
//! averaged over the range's positions.
//!
//! [`REAL_NOISE`] is the spread measured on real windows (see its docs); the verdict's
//! calibration tests draw at that level.

use forgetlab_runs::results::{RangeSample, RangeSamples, WindowRanges};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ranges::{dyadic_blocks, range_window_count, verdict_ranges};

/// Noise of simulated windows, in nats.
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    /// Standard deviation of one token's loss around its window's level.
    pub token_sd: f64,
    /// Standard deviation of a whole range's mean around its window's level.
    pub segment_sd: f64,
    /// Standard deviation of window levels.
    pub window_sd: f64,
}

/// The spread of per-window range means measured on real evaluation windows (a 2-layer d_model
/// 64 model trained at T = 16 on 8M tokens, 32 windows of 4097 tokens of the held-out stream;
/// per-window standard deviations 0.78 over 8 tokens, 0.62 over 16, 0.56 over 32, 0.47 over
/// 64, 0.28-0.34 over 128-2048), rounded up: a window-level spread of 0.35 and a token-level one
/// of 2.1 give 0.82, 0.63, 0.50, 0.44 and 0.36-0.37 for those widths.
pub const REAL_NOISE: Noise = Noise {
    token_sd: 2.1,
    segment_sd: 0.0,
    window_sd: 0.35,
};

/// Held-out tokens of the evaluation stream assumed by the simulations (about the fetched
/// corpus's validation split).
pub const STREAM_TOKENS: usize = 900_000;

/// Range samples as the evaluator measures them: each verdict range on its own windows (as
/// many as `range_tokens` asks for, at least `windows`), each window's mean drawn around the
/// true curve `f`.
pub fn range_samples(
    seq_len: usize,
    horizon: usize,
    windows: usize,
    range_tokens: usize,
    f: &dyn Fn(usize) -> f64,
    noise: Noise,
    seed: u64,
) -> RangeSamples {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ranges = verdict_ranges(seq_len, horizon)
        .into_iter()
        .map(|(lo, hi)| {
            let n = range_window_count(hi, windows, range_tokens, STREAM_TOKENS);
            let truth = (lo..hi).map(f).sum::<f64>() / (hi - lo) as f64;
            let sd = (noise.window_sd.powi(2)
                + noise.token_sd.powi(2) / (hi - lo) as f64
                + noise.segment_sd.powi(2))
            .sqrt();
            let values: Vec<f64> = (0..n).map(|_| truth + sd * normal(&mut rng)).collect();
            let mean = values.iter().sum::<f64>() / n as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            RangeSample {
                start: lo,
                end: hi,
                windows: n,
                mean,
                sd: var.sqrt(),
                ngram: None,
            }
        })
        .collect();
    RangeSamples {
        ranges,
        text_id: format!("simulated-{seed}"),
    }
}

/// Per-window means over `ranges` of windows whose true loss at position `p` is `f(p)`.
pub fn windows_over(
    ranges: &[(usize, usize)],
    windows: usize,
    f: &dyn Fn(usize) -> f64,
    noise: Noise,
    seed: u64,
) -> WindowRanges {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let truth: Vec<f64> = ranges
        .iter()
        .map(|&(lo, hi)| (lo..hi).map(f).sum::<f64>() / (hi - lo) as f64)
        .collect();
    let model = (0..windows)
        .map(|_| {
            let level = noise.window_sd * normal(&mut rng);
            ranges
                .iter()
                .zip(&truth)
                .map(|(&(lo, hi), t)| {
                    let sd = (noise.token_sd.powi(2) / (hi - lo) as f64 + noise.segment_sd.powi(2))
                        .sqrt();
                    t + level + sd * normal(&mut rng)
                })
                .collect()
        })
        .collect();
    WindowRanges {
        ranges: ranges.to_vec(),
        model,
        ngram: None,
        windows_id: format!("simulated-{seed}"),
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Simulated dyadic blocks over `[0, horizon)`.
pub fn block_windows(
    horizon: usize,
    windows: usize,
    f: &dyn Fn(usize) -> f64,
    noise: Noise,
    seed: u64,
) -> WindowRanges {
    windows_over(&dyadic_blocks(horizon), windows, f, noise, seed)
}

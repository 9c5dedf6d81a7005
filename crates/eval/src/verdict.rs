//! The forget verdict: does a run's loss stay flat past its training length?
//!
//! paper.md section 3 gives no numeric criterion, so it is made explicit and configurable
//! ([`VerdictConfig`]). On a bucketed curve `v` (excess over the position-matched baseline by
//! default, raw loss optionally), with training length `T`:
//!
//! ```text
//! in_length_mean = width-weighted mean of v over buckets inside [T/2, T)
//! beyond_max     = max of v over buckets starting at >= T
//! passes_max     = beyond_max <= in_length_mean + epsilon
//! slope          = least-squares slope of v against bucket centre over the buckets in the
//!                  last half of the horizon, in nats per 1000 tokens
//! passes_slope   = slope <= max_slope_per_1k
//! forgets        = passes_max && passes_slope
//! ```
//!
//! The max test catches a curve that rises anywhere past `T`; the slope test catches a slow
//! drift that has not yet exceeded epsilon at the horizon. A trailing bucket narrower than
//! half the widest bucket (a horizon that the bucket size does not divide) is ignored, since
//! its few positions would make the max test noisy.
//!
//! The verdict also carries each head's effective memory length: a run none of whose heads
//! remember past `T` forgets trivially and cannot show the effect, so its verdict is
//! undetermined.

use forgetlab_runs::config::{VerdictConfig, VerdictCurve};
use forgetlab_runs::results::{CriterionResult, ForgetVerdict, LossBucket, MemoryLengths};

use crate::bucket::{self, BucketError};

/// Why a verdict could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerdictError {
    #[error("training length must be at least 1 token")]
    ZeroTrainLength,
    #[error("the {curve} curve has no buckets")]
    EmptyCurve { curve: String },
    #[error(
        "the {curve} curve ends at position {horizon}, not beyond the training length {seq_len}: \
         evaluate to a longer horizon (default 8x the training length)"
    )]
    HorizonNotBeyondTrain {
        curve: String,
        horizon: usize,
        seq_len: usize,
    },
    #[error(
        "the {curve} curve has no bucket inside [T/2, T) = [{lo}, {seq_len}): the bucket size is \
         too large for the training length; use buckets of at most T/4 tokens"
    )]
    NoInLengthBucket {
        curve: String,
        lo: usize,
        seq_len: usize,
    },
    #[error("the {curve} curve has no bucket starting at or beyond the training length {seq_len}")]
    NoBucketBeyond { curve: String, seq_len: usize },
    #[error(
        "the {curve} curve has {found} bucket(s) in the last half of the horizon [{from}, \
         {horizon}); the slope needs at least 2"
    )]
    TooFewSlopeBuckets {
        curve: String,
        found: usize,
        from: usize,
        horizon: usize,
    },
    #[error("verdict config: {0}")]
    InvalidConfig(String),
    #[error("memory lengths: {0}")]
    InvalidDecay(String),
    #[error(transparent)]
    Bucket(#[from] BucketError),
}

/// One bucket of the curve a criterion looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub start: usize,
    pub end: usize,
    pub value: f64,
}

impl CurvePoint {
    fn width(&self) -> f64 {
        (self.end - self.start) as f64
    }
    fn centre(&self) -> f64 {
        (self.start + self.end) as f64 / 2.0
    }
}

/// The model loss per bucket.
pub fn raw_curve(buckets: &[LossBucket]) -> Vec<CurvePoint> {
    buckets
        .iter()
        .map(|b| CurvePoint {
            start: b.start,
            end: b.end,
            value: b.loss,
        })
        .collect()
}

/// Model loss minus the n-gram baseline; `None` unless every bucket has a baseline.
pub fn excess_curve(buckets: &[LossBucket]) -> Option<Vec<CurvePoint>> {
    buckets
        .iter()
        .map(|b| {
            b.excess().map(|value| CurvePoint {
                start: b.start,
                end: b.end,
                value,
            })
        })
        .collect()
}

/// The run's loss minus the reference run's loss, bucket by bucket on the boundaries the two
/// curves share (they may have been bucketed with different sizes), over the range both cover.
pub fn reference_curve(
    run: &[LossBucket],
    reference: &[LossBucket],
) -> Result<Vec<CurvePoint>, VerdictError> {
    let (run, reference) = bucket::common_grid(run, reference)?;
    Ok(run
        .iter()
        .zip(&reference)
        .map(|(a, b)| CurvePoint {
            start: a.start,
            end: a.end,
            value: a.loss - b.loss,
        })
        .collect())
}

fn check_config(config: &VerdictConfig) -> Result<(), VerdictError> {
    if !(config.epsilon >= 0.0 && config.epsilon.is_finite()) {
        return Err(VerdictError::InvalidConfig(format!(
            "epsilon must be a finite number >= 0, got {}",
            config.epsilon
        )));
    }
    if !config.max_slope_per_1k.is_finite() {
        return Err(VerdictError::InvalidConfig(format!(
            "max_slope_per_1k must be finite, got {}",
            config.max_slope_per_1k
        )));
    }
    Ok(())
}

/// Runs the forget test on one curve named `curve` (`excess`, `raw` or `reference`).
pub fn criterion(
    curve: &str,
    points: &[CurvePoint],
    seq_len: usize,
    config: &VerdictConfig,
) -> Result<CriterionResult, VerdictError> {
    check_config(config)?;
    if seq_len == 0 {
        return Err(VerdictError::ZeroTrainLength);
    }
    let name = || curve.to_string();
    let as_buckets: Vec<LossBucket> = points
        .iter()
        .map(|p| LossBucket {
            start: p.start,
            end: p.end,
            loss: p.value,
            stderr: 0.0,
            ngram: None,
            reference: None,
        })
        .collect();
    if as_buckets.is_empty() {
        return Err(VerdictError::EmptyCurve { curve: name() });
    }
    bucket::validate_curve(&as_buckets)?;

    let widest = points.iter().map(CurvePoint::width).fold(0.0, f64::max);
    let mut points = points;
    if let Some((last, rest)) = points.split_last()
        && !rest.is_empty()
        && last.width() * 2.0 < widest
    {
        points = rest;
    }
    let horizon = points.last().map_or(0, |p| p.end);
    if horizon <= seq_len {
        return Err(VerdictError::HorizonNotBeyondTrain {
            curve: name(),
            horizon,
            seq_len,
        });
    }

    let in_length: Vec<&CurvePoint> = points
        .iter()
        .filter(|p| 2 * p.start >= seq_len && p.end <= seq_len)
        .collect();
    if in_length.is_empty() {
        return Err(VerdictError::NoInLengthBucket {
            curve: name(),
            lo: seq_len.div_ceil(2),
            seq_len,
        });
    }
    let weight: f64 = in_length.iter().map(|p| p.width()).sum();
    let in_length_mean = in_length.iter().map(|p| p.value * p.width()).sum::<f64>() / weight;

    let (beyond_argmax, beyond_max) = points
        .iter()
        .filter(|p| p.start >= seq_len)
        .map(|p| (p.start, p.value))
        .fold(None, |best: Option<(usize, f64)>, (s, v)| match best {
            Some((_, bv)) if bv >= v => best,
            _ => Some((s, v)),
        })
        .ok_or_else(|| VerdictError::NoBucketBeyond {
            curve: name(),
            seq_len,
        })?;

    let from = horizon / 2;
    let tail: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.start >= from)
        .map(|p| (p.centre(), p.value))
        .collect();
    let slope = least_squares(&tail)
        .map(|(a, _)| a)
        .ok_or(VerdictError::TooFewSlopeBuckets {
            curve: name(),
            found: tail.len(),
            from,
            horizon,
        })?;
    let slope_per_1k = slope * 1000.0;

    let threshold = in_length_mean + config.epsilon;
    let passes_max = beyond_max <= threshold;
    let passes_slope = slope_per_1k <= config.max_slope_per_1k;
    Ok(CriterionResult {
        curve: curve.to_string(),
        in_length_mean,
        beyond_max,
        beyond_argmax,
        threshold,
        slope_per_1k,
        passes_max,
        passes_slope,
        forgets: passes_max && passes_slope,
    })
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

/// Upper bound on a reported memory length, standing for "never forgets" (alpha = 1), since
/// JSON has no infinity.
pub const MEMORY_LENGTH_CAP: f64 = 1e15;

/// Effective memory length of a head whose mean log decay per token is `mean_log_alpha`
/// (= mean of dt * A, <= 0): the number of tokens until the decay product drops below 1/e,
/// `1 / |mean log alpha|`, capped at [`MEMORY_LENGTH_CAP`].
pub fn memory_length(mean_log_alpha: f64) -> f64 {
    if mean_log_alpha >= 0.0 {
        MEMORY_LENGTH_CAP
    } else {
        (1.0 / -mean_log_alpha).min(MEMORY_LENGTH_CAP)
    }
}

/// Memory lengths from a `[layer][head]` matrix of mean log decays (mean of dt * A per token).
pub fn memory_lengths(
    mean_log_decay: &[Vec<f64>],
    seq_len: usize,
) -> Result<MemoryLengths, VerdictError> {
    if mean_log_decay.iter().all(Vec::is_empty) {
        return Err(VerdictError::InvalidDecay("no heads given".into()));
    }
    let mut per_head = Vec::with_capacity(mean_log_decay.len());
    let mut all = Vec::new();
    for (layer, heads) in mean_log_decay.iter().enumerate() {
        let mut row = Vec::with_capacity(heads.len());
        for (head, &v) in heads.iter().enumerate() {
            if !v.is_finite() || v > 0.0 {
                return Err(VerdictError::InvalidDecay(format!(
                    "layer {layer} head {head}: mean log decay is {v}; it must be a finite \
                     number <= 0 (alpha = exp(dt * A) is at most 1)"
                )));
            }
            let m = memory_length(v);
            row.push(m);
            all.push(m);
        }
        per_head.push(row);
    }
    all.sort_by(f64::total_cmp);
    let n = all.len();
    let median = if n % 2 == 1 {
        all[n / 2]
    } else {
        (all[n / 2 - 1] + all[n / 2]) / 2.0
    };
    let max = all[n - 1];
    Ok(MemoryLengths {
        per_head,
        max,
        median,
        any_beyond_train_len: max > seq_len as f64,
    })
}

/// Everything the verdict of one run is decided from.
#[derive(Debug, Clone)]
pub struct VerdictInput<'a> {
    pub run: &'a str,
    /// Training length T_train.
    pub seq_len: usize,
    pub state_size: u64,
    /// Which prompt the buckets come from (`text` normally).
    pub prompt: &'a str,
    /// The bucketed curve, with `ngram` set when the baseline was computed.
    pub buckets: &'a [LossBucket],
    /// Per-head memory lengths, when diagnostics were extracted.
    pub memory: Option<MemoryLengths>,
    pub config: &'a VerdictConfig,
}

/// Decides whether a run forgets and explains why.
pub fn decide(input: VerdictInput<'_>) -> Result<ForgetVerdict, VerdictError> {
    let config = input.config;
    let raw = criterion("raw", &raw_curve(input.buckets), input.seq_len, config)?;
    let excess = excess_curve(input.buckets)
        .map(|points| criterion("excess", &points, input.seq_len, config))
        .transpose()?;

    let mut notes = Vec::new();
    let (decided_on, decisive) = match (config.on, &excess) {
        (VerdictCurve::Excess, Some(e)) => (VerdictCurve::Excess, e),
        (VerdictCurve::Excess, None) => {
            notes.push(
                "No n-gram baseline on these buckets, so the decision uses raw loss, which \
                 also moves with text difficulty."
                    .to_string(),
            );
            (VerdictCurve::Raw, &raw)
        }
        (VerdictCurve::Raw, _) => (VerdictCurve::Raw, &raw),
    };
    let loss_says = decisive.forgets;
    let mut forgets = Some(loss_says);
    if let Some(memory) = &input.memory
        && !memory.any_beyond_train_len
    {
        forgets = None;
        notes.insert(
            0,
            format!(
                "Undetermined: no head remembers past T_train = {} tokens (longest effective \
                 memory {:.0} tokens), so this run forgets trivially and cannot show whether \
                 it learned to forget; the loss test alone says it {}.",
                input.seq_len,
                memory.max,
                if loss_says { "forgets" } else { "does not" }
            ),
        );
    } else {
        notes.insert(
            0,
            if loss_says {
                format!(
                    "Forgets: the {} loss stays flat past T_train = {}.",
                    decisive.curve, input.seq_len
                )
            } else {
                format!(
                    "Does not forget: the {} loss rises past T_train = {}.",
                    decisive.curve, input.seq_len
                )
            },
        );
    }
    notes.push(describe(decisive, config));
    if decided_on == VerdictCurve::Excess && raw.forgets != loss_says {
        notes.push(format!(
            "The raw-loss test disagrees ({}): {}",
            if raw.forgets { "flat" } else { "rising" },
            describe(&raw, config)
        ));
    }
    Ok(ForgetVerdict {
        run: input.run.to_string(),
        seq_len: input.seq_len,
        state_size: input.state_size,
        forgets,
        decided_on,
        prompt: input.prompt.to_string(),
        epsilon: config.epsilon,
        max_slope_per_1k: config.max_slope_per_1k,
        excess,
        raw,
        reference: None,
        memory: input.memory,
        note: notes.join(" "),
    })
}

/// One sentence with the numbers that decided a criterion.
pub fn describe(c: &CriterionResult, config: &VerdictConfig) -> String {
    let ok = |b: bool| if b { "pass" } else { "fail" };
    format!(
        "{} loss: max beyond T_train {:.4} nats at position {} vs in-length mean {:.4} + \
         epsilon {} = {:.4} ({}); slope over the last half of the horizon {:+.4} nats/1K \
         tokens vs limit {} ({}).",
        c.curve,
        c.beyond_max,
        c.beyond_argmax,
        c.in_length_mean,
        config.epsilon,
        c.threshold,
        ok(c.passes_max),
        c.slope_per_1k,
        config.max_slope_per_1k,
        ok(c.passes_slope)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const T: usize = 1024;
    const BUCKET: usize = 128;
    const HORIZON: usize = 8 * T;

    /// A bucketed curve from a function of the bucket centre, with optional Gaussian-ish noise
    /// and an n-gram baseline that varies with position (text difficulty).
    fn curve(
        f: impl Fn(f64) -> f64,
        baseline: impl Fn(f64) -> f64,
        noise: f64,
        seed: u64,
    ) -> Vec<LossBucket> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..HORIZON / BUCKET)
            .map(|i| {
                let (start, end) = (i * BUCKET, (i + 1) * BUCKET);
                let x = (start + end) as f64 / 2.0;
                // Sum of uniforms: roughly normal with standard deviation `noise`.
                let eps: f64 = (0..12).map(|_| rng.random_range(-0.5..0.5)).sum::<f64>() * noise;
                let base = baseline(x);
                LossBucket {
                    start,
                    end,
                    loss: base + f(x) + eps,
                    stderr: noise,
                    ngram: Some(base),
                    reference: None,
                }
            })
            .collect()
    }

    fn flat_text(_x: f64) -> f64 {
        3.0
    }

    fn input<'a>(buckets: &'a [LossBucket], config: &'a VerdictConfig) -> VerdictInput<'a> {
        VerdictInput {
            run: "r",
            seq_len: T,
            state_size: 1000,
            prompt: "text",
            buckets,
            memory: None,
            config,
        }
    }

    #[test]
    fn flat_curve_forgets() {
        let cfg = VerdictConfig::default();
        let b = curve(|_| 0.5, flat_text, 0.0, 0);
        let v = decide(input(&b, &cfg)).unwrap();
        assert_eq!(v.forgets, Some(true), "{}", v.note);
        let e = v.excess.unwrap();
        assert!((e.in_length_mean - 0.5).abs() < 1e-12);
        assert!((e.beyond_max - 0.5).abs() < 1e-12);
        assert!(e.slope_per_1k.abs() < 1e-12);
        assert_eq!(v.decided_on, VerdictCurve::Excess);
        assert!(v.note.starts_with("Forgets"), "{}", v.note);
    }

    #[test]
    fn exploding_curve_does_not_forget() {
        let cfg = VerdictConfig::default();
        // Flat within T, then exponential growth past 2T.
        let b = curve(
            |x| {
                0.5 + if x > 2.0 * T as f64 {
                    ((x - 2.0 * T as f64) / 1500.0).exp() - 1.0
                } else {
                    0.0
                }
            },
            flat_text,
            0.0,
            0,
        );
        let v = decide(input(&b, &cfg)).unwrap();
        assert_eq!(v.forgets, Some(false), "{}", v.note);
        let e = v.excess.unwrap();
        assert!(!e.passes_max && !e.passes_slope);
        assert_eq!(e.beyond_argmax, HORIZON - BUCKET);
        assert!(v.note.starts_with("Does not forget"), "{}", v.note);
    }

    #[test]
    fn noisy_flat_and_noisy_rising_curves_are_told_apart() {
        let cfg = VerdictConfig::default();
        for seed in 0..20 {
            let flat = curve(|_| 0.4, flat_text, 0.01, seed);
            let v = decide(input(&flat, &cfg)).unwrap();
            assert_eq!(v.forgets, Some(true), "seed {seed}: {}", v.note);
            // A slow linear drift of 0.1 nats per 1K tokens past T.
            let rising = curve(
                |x| 0.4 + (x - T as f64).max(0.0) * 1e-4,
                flat_text,
                0.01,
                seed,
            );
            let v = decide(input(&rising, &cfg)).unwrap();
            assert_eq!(v.forgets, Some(false), "seed {seed}: {}", v.note);
        }
    }

    #[test]
    fn slow_drift_is_caught_by_the_slope_alone() {
        // Rises 0.06 nats/1K only in the last half: the max test tolerates it (peak within
        // epsilon), the slope test does not.
        let cfg = VerdictConfig {
            epsilon: 0.5,
            ..VerdictConfig::default()
        };
        let b = curve(|x| 0.4 + (x - 4096.0).max(0.0) * 6e-5, flat_text, 0.0, 0);
        let c = criterion("excess", &excess_curve(&b).unwrap(), T, &cfg).unwrap();
        assert!(c.passes_max && !c.passes_slope, "{c:?}");
        assert!((c.slope_per_1k - 0.06).abs() < 0.01, "{}", c.slope_per_1k);
        assert!(!c.forgets);
    }

    #[test]
    fn baseline_removes_text_difficulty_that_fools_the_raw_test() {
        // Text gets harder with position; the model tracks it exactly (perfect forgetter).
        let cfg = VerdictConfig::default();
        let b = curve(|_| 0.3, |x| 2.5 + x / 4000.0, 0.0, 0);
        let v = decide(input(&b, &cfg)).unwrap();
        assert_eq!(v.forgets, Some(true), "{}", v.note);
        assert!(!v.raw.forgets);
        assert!(v.note.contains("raw-loss test disagrees"), "{}", v.note);
        // Deciding on raw loss gets it wrong, as documented.
        let raw_cfg = VerdictConfig {
            on: VerdictCurve::Raw,
            ..VerdictConfig::default()
        };
        assert_eq!(decide(input(&b, &raw_cfg)).unwrap().forgets, Some(false));
    }

    #[test]
    fn missing_baseline_falls_back_to_raw_and_says_so() {
        let cfg = VerdictConfig::default();
        let mut b = curve(|_| 0.5, flat_text, 0.0, 0);
        b[3].ngram = None;
        let v = decide(input(&b, &cfg)).unwrap();
        assert_eq!(v.decided_on, VerdictCurve::Raw);
        assert!(v.excess.is_none());
        assert!(v.note.contains("No n-gram baseline"), "{}", v.note);
    }

    #[test]
    fn no_long_memory_head_makes_the_verdict_undetermined() {
        let cfg = VerdictConfig::default();
        let b = curve(|_| 0.5, flat_text, 0.0, 0);
        // Memory lengths 10, 100 and 500 tokens, all below T = 1024.
        let memory = memory_lengths(&[vec![-0.1, -0.01], vec![-0.002]], T).unwrap();
        assert!(!memory.any_beyond_train_len);
        let v = decide(VerdictInput {
            memory: Some(memory),
            ..input(&b, &cfg)
        })
        .unwrap();
        assert_eq!(v.forgets, None);
        assert!(v.note.contains("cannot show"), "{}", v.note);
        let long = memory_lengths(&[vec![-0.1, -1e-4]], T).unwrap();
        assert!(long.any_beyond_train_len);
        let v = decide(VerdictInput {
            memory: Some(long),
            ..input(&b, &cfg)
        })
        .unwrap();
        assert_eq!(v.forgets, Some(true));
    }

    #[test]
    fn memory_lengths_are_inverse_log_decays() {
        let m = memory_lengths(&[vec![-0.5, -0.25], vec![-0.01, 0.0]], 50).unwrap();
        assert_eq!(m.per_head[0], vec![2.0, 4.0]);
        assert!((m.per_head[1][0] - 100.0).abs() < 1e-9);
        assert_eq!(m.per_head[1][1], MEMORY_LENGTH_CAP);
        assert_eq!(m.max, MEMORY_LENGTH_CAP);
        assert!((m.median - 52.0).abs() < 1e-9);
        // The decay product really crosses 1/e at the memory length.
        let la: f64 = -0.01;
        let k = memory_length(la);
        assert!(((la * k).exp() - (-1.0f64).exp()).abs() < 1e-12);
        assert!(
            memory_lengths(&[vec![0.1]], 5)
                .unwrap_err()
                .to_string()
                .contains("layer 0 head 0")
        );
        assert!(memory_lengths(&[vec![], vec![f64::NAN]], 5).is_err());
        assert!(memory_lengths(&[vec![]], 5).is_err());
    }

    #[test]
    fn degenerate_curves_get_clear_errors() {
        let cfg = VerdictConfig::default();
        let short: Vec<CurvePoint> = (0..8)
            .map(|i| CurvePoint {
                start: i * 128,
                end: (i + 1) * 128,
                value: 1.0,
            })
            .collect();
        let err = criterion("raw", &short, T, &cfg).unwrap_err();
        assert!(
            matches!(
                err,
                VerdictError::HorizonNotBeyondTrain { horizon: 1024, .. }
            ),
            "{err}"
        );
        let coarse: Vec<CurvePoint> = (0..8)
            .map(|i| CurvePoint {
                start: i * 1024,
                end: (i + 1) * 1024,
                value: 1.0,
            })
            .collect();
        let err = criterion("raw", &coarse, T, &cfg).unwrap_err();
        assert!(
            matches!(err, VerdictError::NoInLengthBucket { lo: 512, .. }),
            "{err}"
        );
        // Horizon 1.5 T with 512-token buckets: only one bucket in the last half.
        let barely: Vec<CurvePoint> = (0..3)
            .map(|i| CurvePoint {
                start: i * 512,
                end: (i + 1) * 512,
                value: 1.0,
            })
            .collect();
        let err = criterion("raw", &barely, T, &cfg).unwrap_err();
        assert!(
            matches!(
                err,
                VerdictError::TooFewSlopeBuckets {
                    found: 1,
                    from: 768,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            criterion("raw", &[], T, &cfg).unwrap_err(),
            VerdictError::EmptyCurve { .. }
        ));
        assert_eq!(
            criterion("raw", &coarse, 0, &cfg).unwrap_err(),
            VerdictError::ZeroTrainLength
        );
        let bad = VerdictConfig {
            epsilon: -1.0,
            ..VerdictConfig::default()
        };
        assert!(matches!(
            criterion("raw", &coarse, T, &bad).unwrap_err(),
            VerdictError::InvalidConfig(_)
        ));
        let mut gap = short.clone();
        gap[2].start += 1;
        assert!(matches!(
            criterion("raw", &gap, 512, &cfg).unwrap_err(),
            VerdictError::Bucket(_)
        ));
    }

    #[test]
    fn narrow_trailing_bucket_is_ignored() {
        let cfg = VerdictConfig::default();
        let mut points: Vec<CurvePoint> = (0..64)
            .map(|i| CurvePoint {
                start: i * 128,
                end: (i + 1) * 128,
                value: 1.0,
            })
            .collect();
        points.push(CurvePoint {
            start: 8192,
            end: 8195,
            value: 9.0,
        });
        let c = criterion("raw", &points, T, &cfg).unwrap();
        assert!(c.forgets, "{c:?}");
        assert_eq!(c.beyond_max, 1.0);
    }

    #[test]
    fn reference_curve_compares_across_bucket_sizes() {
        let cfg = VerdictConfig::default();
        let run = curve(|_| 0.5, flat_text, 0.0, 0); // buckets of 128 to 8192
        // Reference: same text, 2048-token training, buckets of 256 to 16384, loss 0.1 lower.
        let reference: Vec<LossBucket> = (0..64)
            .map(|i| LossBucket {
                start: i * 256,
                end: (i + 1) * 256,
                loss: 3.4,
                stderr: 0.0,
                ngram: None,
                reference: None,
            })
            .collect();
        let points = reference_curve(&run, &reference).unwrap();
        assert_eq!(points.len(), 32);
        assert_eq!(points.last().unwrap().end, 8192);
        assert!(points.iter().all(|p| (p.value - 0.1).abs() < 1e-12));
        let c = criterion("reference", &points, T, &cfg).unwrap();
        assert!(c.forgets);
    }
}

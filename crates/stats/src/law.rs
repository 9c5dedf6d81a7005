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

mod fits;
mod points;
mod report;
mod summary;
#[cfg(test)]
mod tests;

use forgetlab_runs::FitConfig;

pub use fits::{ExponentialResult, fit_exponential, fit_linear, recall_shape};
pub use points::{RunOutcome, forget_point, recall_point};
pub use report::law_report;
pub use summary::summary_text;

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

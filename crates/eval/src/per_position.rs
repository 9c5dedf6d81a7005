//! Per-token loss from position 0 far past the training length, with the streaming forward:
//! each window is processed segment by segment with the recurrent state carried, and each
//! segment's per-token losses go straight into bucket accumulators, so memory does not grow
//! with the horizon (1M tokens works).
//!
//! Evaluation text must not fool the verdict: text difficulty itself changes with position, so
//! the default draws many random windows with a seed shared by every run of an experiment and
//! scores a count n-gram baseline on exactly the same positions ([`crate::ngram`]).

use burn::prelude::*;
use forgetlab_model::loss::token_losses;
use forgetlab_model::{Mamba2, ScanHooks};
use forgetlab_runs::results::{LossBucket, LossCurve};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bucket::{BucketAccumulator, BucketError, PairedAccumulator};
use crate::ngram::NgramModel;

/// How per-position losses are computed.
#[derive(Debug, Clone)]
pub struct PerPositionOptions {
    /// Scored positions per window (a window holds horizon + 1 tokens).
    pub horizon: usize,
    /// Bucket size in tokens.
    pub bucket: usize,
    /// Tokens per streaming segment.
    pub segment_len: usize,
    /// Windows processed together in one batch.
    pub batch: usize,
}

impl PerPositionOptions {
    /// Chooses segment and batch sizes so one segment's logits stay near `budget_floats`.
    pub fn sized(horizon: usize, bucket: usize, vocab: usize, windows: usize) -> Self {
        let budget_floats = 48 * 1024 * 1024;
        let segment_len = horizon.clamp(1, 2048);
        let batch = (budget_floats / (segment_len * vocab).max(1)).clamp(1, windows.max(1));
        Self {
            horizon,
            bucket,
            segment_len,
            batch,
        }
    }
}

/// Draws `count` windows of `len` tokens from `pool` at seeded random offsets. When the pool is
/// shorter than a window, the window wraps around the pool (the paper repeats short prompts the
/// same way).
pub fn draw_windows(pool: &[u32], count: usize, len: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let start = if pool.len() > len {
                rng.random_range(0..=pool.len() - len)
            } else {
                rng.random_range(0..pool.len().max(1))
            };
            (0..len).map(|i| pool[(start + i) % pool.len()]).collect()
        })
        .collect()
}

/// Calls `on_span(window, start, losses)` with the next-token losses of every segment of
/// every window (`windows[i]` holds horizon + 1 tokens).
pub fn stream_losses(
    model: &Mamba2,
    windows: &[Vec<u32>],
    options: &PerPositionOptions,
    hooks: &ScanHooks,
    mut on_span: impl FnMut(usize, usize, &[f32]),
) {
    let device = model.device();
    for (group_index, group) in windows.chunks(options.batch.max(1)).enumerate() {
        let rows = group.len();
        let width = options.horizon + 1;
        let flat: Vec<i64> = group
            .iter()
            .flat_map(|w| w[..width].iter().map(|&t| t as i64))
            .collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [rows, width]), &device);
        let inputs = ids.clone().narrow(1, 0, options.horizon);
        model.forward_streaming(inputs, options.segment_len, None, hooks, |start, logits| {
            let len = logits.dims()[1];
            let targets = ids.clone().narrow(1, start + 1, len);
            let losses = token_losses(logits, targets);
            for (row, chunk) in losses.chunks(len).enumerate() {
                on_span(group_index * options.batch + row, start, chunk);
            }
        });
    }
}

/// Bucketed loss curve over `windows`, with the n-gram baseline on the same positions when
/// given.
pub fn loss_curve(
    model: &Mamba2,
    prompt: &str,
    windows: &[Vec<u32>],
    ngram: Option<&NgramModel>,
    options: &PerPositionOptions,
    hooks: &ScanHooks,
) -> Result<LossCurve, BucketError> {
    let buckets: Vec<LossBucket> = match ngram {
        Some(ngram) => {
            let mut acc = PairedAccumulator::new(options.bucket, options.horizon)?;
            let mut result = Ok(());
            stream_losses(model, windows, options, hooks, |w, start, losses| {
                if result.is_err() {
                    return;
                }
                // The baseline of positions [start, start + n) needs order - 1 tokens of
                // context before `start`; score that slice and drop the context's losses.
                let n = losses.len();
                let lo = start.saturating_sub(ngram.order() - 1);
                let base = ngram
                    .losses(&windows[w][lo..start + n + 1])
                    .expect("window tokens are inside the n-gram vocabulary");
                result = acc.add_span(w, start, losses, &base[start - lo..]);
            });
            result?;
            acc.finish()?
        }
        None => {
            let mut acc = BucketAccumulator::new(options.bucket, options.horizon)?;
            let mut result = Ok(());
            stream_losses(model, windows, options, hooks, |w, start, losses| {
                if result.is_ok() {
                    result = acc.add_span(w, start, losses);
                }
            });
            result?;
            acc.finish()?
        }
    };
    Ok(LossCurve {
        prompt: prompt.to_string(),
        sequences: windows.len(),
        buckets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_seeded_and_wrap_short_pools() {
        let pool: Vec<u32> = (0..100).collect();
        let a = draw_windows(&pool, 4, 30, 7);
        assert_eq!(a, draw_windows(&pool, 4, 30, 7));
        assert_ne!(a, draw_windows(&pool, 4, 30, 8));
        for w in &a {
            assert_eq!(w.len(), 30);
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1));
        }
        let long = draw_windows(&pool, 2, 250, 1);
        assert!(long.iter().all(|w| w.len() == 250 && w[100] == w[0]));
    }
}

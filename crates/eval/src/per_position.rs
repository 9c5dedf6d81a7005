//! Per-token loss from position 0 far past the training length, with the streaming forward:
//! each window is processed segment by segment with the recurrent state carried, and each
//! segment's per-token losses go straight into bucket accumulators, so memory does not grow
//! with the horizon (1M tokens works).
//!
//! Evaluation text must not fool the verdict. Windows are disjoint slices of one fixed stream (the
//! whole held-out split in a seeded document order, rotated by a seeded offset), cut at equal
//! strides: they never wrap, never overlap, every position of a window sees the same
//! distribution of text, and every run of an experiment sees the same windows whatever its
//! horizon (a shorter horizon reads a prefix of each). A count n-gram baseline is scored on
//! exactly the same positions ([`forgetlab_stats::ngram`]); its curve measures what position effect the
//! text still has.

use burn::prelude::*;
use forgetlab_model::loss::token_losses;
use forgetlab_model::{Model, ScanHooks};
use forgetlab_runs::results::{BaselineSample, LossCurve, RangeSample, RangeSamples};
use forgetlab_stats::bucket::{BucketAccumulator, BucketError, PairedAccumulator};
use forgetlab_stats::ngram::NgramModel;
use forgetlab_stats::ranges::{
    RangeAccumulator, dyadic_blocks, range_window_count, verdict_ranges,
};
use forgetlab_stats::verdict::mean_sd;

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

/// Why evaluation windows could not be cut.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "the held-out text has {available} tokens, but {windows} disjoint windows of {len} tokens \
         need {needed}: give more held-out text (data.validation shards or a larger \
         data.validation_fraction), fewer eval.windows or a shorter eval.horizon"
    )]
    TooLittleText {
        available: usize,
        windows: usize,
        len: usize,
        needed: usize,
    },
    #[error(
        "eval.text = \"long-documents\" needs {windows} held-out documents of at least {len} \
         tokens but there are {found}: use \"concatenated\", fewer windows or a shorter horizon"
    )]
    TooFewLongDocuments {
        windows: usize,
        len: usize,
        found: usize,
    },
    #[error("no evaluation windows requested")]
    NoWindows,
}

/// Cuts `count` disjoint windows of `len` tokens from `stream` at stride
/// `stream.len() / count`: window `i` starts at `i * stride`, so for a fixed stream and count
/// the windows of a shorter `len` are prefixes of those of a longer one.
pub fn cut_windows(stream: &[u32], count: usize, len: usize) -> Result<Vec<Vec<u32>>, WindowError> {
    if count == 0 {
        return Err(WindowError::NoWindows);
    }
    let stride = stream.len() / count;
    if len == 0 || stride < len {
        return Err(WindowError::TooLittleText {
            available: stream.len(),
            windows: count,
            len,
            needed: count * len,
        });
    }
    Ok((0..count)
        .map(|i| stream[i * stride..i * stride + len].to_vec())
        .collect())
}

/// Where the verdict's range windows come from.
#[derive(Debug, Clone, Copy)]
pub enum TextSource<'a> {
    /// The evaluation stream: each range cuts its own disjoint windows.
    Stream(&'a [u32]),
    /// Fixed windows (one per long document): every range reads prefixes of the same windows.
    Windows(&'a [Vec<u32>]),
}

/// Measures every verdict range of a run trained at `seq_len` on its own disjoint windows of
/// `end + 1` tokens cut from the evaluation stream ([`range_window_count`] of them), with the
/// n-gram on the same positions when given. The longest range reads the same windows as the
/// per-position curve; narrow early ranges read many more, cheaply.
#[allow(clippy::too_many_arguments)]
pub fn range_samples(
    model: &Model,
    source: TextSource<'_>,
    seq_len: usize,
    horizon: usize,
    min_windows: usize,
    range_tokens: usize,
    ngram: Option<&NgramModel>,
    hooks: &ScanHooks,
    text_id: &str,
) -> Result<RangeSamples, WindowError> {
    let vocab = model.config().padded_vocab_size();
    let mut ranges = Vec::new();
    for (lo, hi) in verdict_ranges(seq_len, horizon) {
        let windows = match source {
            TextSource::Stream(stream) => cut_windows(
                stream,
                range_window_count(hi, min_windows, range_tokens, stream.len()),
                hi + 1,
            )?,
            TextSource::Windows(all) => all.iter().map(|w| w[..=hi].to_vec()).collect(),
        };
        let count = windows.len();
        let options = PerPositionOptions::sized(hi, hi, vocab, count);
        let mut model_sums = vec![0f64; count];
        stream_losses(model, &windows, &options, hooks, |w, start, losses| {
            let (a, b) = (lo.max(start), hi.min(start + losses.len()));
            if a < b {
                model_sums[w] += losses[a - start..b - start]
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum::<f64>();
            }
        });
        let width = (hi - lo) as f64;
        let model_means: Vec<f64> = model_sums.iter().map(|s| s / width).collect();
        let (mean, sd) = mean_sd(model_means.iter().copied());
        let baseline = ngram.map(|ngram| {
            let base_means: Vec<f64> = windows
                .iter()
                .map(|w| {
                    let from = lo.saturating_sub(ngram.order() - 1);
                    let losses = ngram
                        .losses(&w[from..=hi])
                        .expect("window tokens are inside the n-gram vocabulary");
                    losses[lo - from..]
                        .iter()
                        .map(|&v| f64::from(v))
                        .sum::<f64>()
                        / width
                })
                .collect();
            let (mean, sd) = mean_sd(base_means.iter().copied());
            let excess: Vec<f64> = model_means
                .iter()
                .zip(&base_means)
                .map(|(m, b)| m - b)
                .collect();
            BaselineSample {
                mean,
                sd,
                excess_sd: mean_sd(excess.iter().copied()).1,
            }
        });
        ranges.push(RangeSample {
            start: lo,
            end: hi,
            windows: count,
            mean,
            sd,
            ngram: baseline,
        });
    }
    Ok(RangeSamples {
        ranges,
        text_id: text_id.to_string(),
    })
}

/// Calls `on_span(window, start, losses)` with the next-token losses of every segment of
/// every window (`windows[i]` holds horizon + 1 tokens).
pub fn stream_losses(
    model: &Model,
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
/// given. With `windows_id` set, each window's mean over dyadic blocks is kept too (for
/// comparing runs window by window); the verdict's ranges are added by the caller
/// ([`range_samples`]).
pub fn loss_curve(
    model: &Model,
    prompt: &str,
    windows: &[Vec<u32>],
    ngram: Option<&NgramModel>,
    options: &PerPositionOptions,
    hooks: &ScanHooks,
    windows_id: Option<&str>,
) -> Result<LossCurve, BucketError> {
    let mut paired = match ngram {
        Some(_) => Some(PairedAccumulator::new(options.bucket, options.horizon)?),
        None => None,
    };
    let mut single = BucketAccumulator::new(options.bucket, options.horizon)?;
    let mut blocks = windows_id.map(|id| {
        (
            id,
            RangeAccumulator::new(dyadic_blocks(options.horizon), ngram.is_some()),
        )
    });
    let mut result = Ok(());
    let mut base = Vec::new();
    stream_losses(model, windows, options, hooks, |w, start, losses| {
        if result.is_err() {
            return;
        }
        let n = losses.len();
        let baseline = match ngram {
            Some(ngram) => {
                // The baseline of positions [start, start + n) needs order - 1 tokens of
                // context before `start`; score that slice and drop the context's losses.
                let lo = start.saturating_sub(ngram.order() - 1);
                base = ngram
                    .losses(&windows[w][lo..start + n + 1])
                    .expect("window tokens are inside the n-gram vocabulary");
                base.drain(..start - lo);
                Some(base.as_slice())
            }
            None => None,
        };
        result = (|| {
            match (&mut paired, baseline) {
                (Some(acc), Some(b)) => acc.add_span(w, start, losses, b)?,
                _ => single.add_span(w, start, losses)?,
            }
            if let Some((_, b)) = &mut blocks {
                b.add_span(w, start, losses, baseline)?;
            }
            Ok(())
        })();
    });
    result?;
    let buckets = match &paired {
        Some(acc) => acc.finish()?,
        None => single.finish()?,
    };
    let blocks = blocks.map(|(id, b)| b.finish(id)).transpose()?;
    Ok(LossCurve {
        prompt: prompt.to_string(),
        sequences: windows.len(),
        buckets,
        ranges: None,
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_disjoint_prefix_stable_and_never_wrap() {
        let stream: Vec<u32> = (0..1000).collect();
        let long = cut_windows(&stream, 4, 250).unwrap();
        assert_eq!(long.len(), 4);
        for (i, w) in long.iter().enumerate() {
            assert_eq!(w.len(), 250);
            assert_eq!(w[0] as usize, i * 250);
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1));
        }
        // A shorter horizon reads a prefix of the same windows.
        let short = cut_windows(&stream, 4, 30).unwrap();
        for (s, l) in short.iter().zip(&long) {
            assert_eq!(s[..], l[..30]);
        }
        let err = cut_windows(&stream, 4, 251).unwrap_err();
        assert_eq!(
            err,
            WindowError::TooLittleText {
                available: 1000,
                windows: 4,
                len: 251,
                needed: 1004
            }
        );
        assert!(err.to_string().contains("data.validation"), "{err}");
        assert_eq!(cut_windows(&stream, 0, 10), Err(WindowError::NoWindows));
    }
}

//! Bucketing per-position losses.
//!
//! A per-position curve out to 8x the training length is millions of numbers per window, and a
//! single window is far too noisy to judge. We average each bucket of consecutive positions
//! over positions and over windows, and keep the spread *across windows* as the standard
//! error, because windows are the independent samples (positions within a window are not).
//!
//! Position `p` of a window's loss slice is the loss of predicting token `p + 1` after seeing
//! tokens `0..=p`; bucket `[start, end)` covers those positions. The same convention is used by
//! the n-gram baseline ([`crate::ngram`]), so model and baseline buckets line up exactly.

use forgetlab_runs::results::LossBucket;

/// Why losses could not be bucketed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BucketError {
    #[error("bucket size must be at least 1")]
    ZeroBucket,
    #[error("horizon must be at least 1 position")]
    ZeroHorizon,
    #[error("window {window}: span [{start}, {end}) runs past the horizon {horizon}")]
    PastHorizon {
        window: usize,
        start: usize,
        end: usize,
        horizon: usize,
    },
    #[error("window {window}, position {position}: loss is {value}, not a finite number")]
    NonFinite {
        window: usize,
        position: usize,
        value: f64,
    },
    #[error("no losses were added, so there is nothing to bucket")]
    Empty,
    #[error("model and baseline differ: {0}")]
    Mismatch(String),
    #[error("curve is malformed: {0}")]
    Malformed(String),
}

/// Per-window sums of one bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    sum: f64,
    count: usize,
}

/// Accumulates per-position losses of many windows into fixed-size buckets.
///
/// Windows may be fed whole ([`BucketAccumulator::add_window`]) or in consecutive spans as a
/// streaming evaluation produces them ([`BucketAccumulator::add_span`]); memory is
/// `windows x buckets`, independent of the horizon's length in positions.
#[derive(Debug, Clone)]
pub struct BucketAccumulator {
    bucket: usize,
    horizon: usize,
    /// `[window][bucket]`.
    cells: Vec<Vec<Cell>>,
}

impl BucketAccumulator {
    /// Buckets of `bucket` positions over `[0, horizon)`; the last bucket is shorter when
    /// `bucket` does not divide `horizon`.
    pub fn new(bucket: usize, horizon: usize) -> Result<Self, BucketError> {
        if bucket == 0 {
            return Err(BucketError::ZeroBucket);
        }
        if horizon == 0 {
            return Err(BucketError::ZeroHorizon);
        }
        Ok(Self {
            bucket,
            horizon,
            cells: Vec::new(),
        })
    }

    pub fn bucket_size(&self) -> usize {
        self.bucket
    }

    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// Number of buckets covering the horizon.
    pub fn num_buckets(&self) -> usize {
        self.horizon.div_ceil(self.bucket)
    }

    /// Number of windows seen so far (the largest window index plus one).
    pub fn num_windows(&self) -> usize {
        self.cells.len()
    }

    /// Adds a whole window starting at position 0 as a new window; returns its index.
    pub fn add_window<T: Copy + Into<f64>>(&mut self, losses: &[T]) -> Result<usize, BucketError> {
        let window = self.cells.len();
        self.add_span(window, 0, losses)?;
        Ok(window)
    }

    /// Adds losses of positions `[start, start + losses.len())` of window `window`. Spans of
    /// one window may come in any order; window indices need not be dense.
    pub fn add_span<T: Copy + Into<f64>>(
        &mut self,
        window: usize,
        start: usize,
        losses: &[T],
    ) -> Result<(), BucketError> {
        // Validate before touching state, so a bad span leaves the accumulator unchanged.
        self.check_span(window, start, losses)?;
        let buckets = self.num_buckets();
        if self.cells.len() <= window {
            self.cells
                .resize_with(window + 1, || vec![Cell::default(); buckets]);
        }
        let row = &mut self.cells[window];
        for (offset, &value) in losses.iter().enumerate() {
            let cell = &mut row[(start + offset) / self.bucket];
            cell.sum += value.into();
            cell.count += 1;
        }
        Ok(())
    }

    /// Checks that a span fits the horizon and holds only finite losses.
    pub fn check_span<T: Copy + Into<f64>>(
        &self,
        window: usize,
        start: usize,
        losses: &[T],
    ) -> Result<(), BucketError> {
        let end = start + losses.len();
        if end > self.horizon {
            return Err(BucketError::PastHorizon {
                window,
                start,
                end,
                horizon: self.horizon,
            });
        }
        if let Some((offset, value)) = losses
            .iter()
            .map(|&v| v.into())
            .enumerate()
            .find(|(_, v): &(usize, f64)| !v.is_finite())
        {
            return Err(BucketError::NonFinite {
                window,
                position: start + offset,
                value,
            });
        }
        Ok(())
    }

    /// The bucketed curve: mean over positions and windows, and the standard error of the
    /// per-window bucket means across windows (0 when only one window covers a bucket).
    /// Buckets no window reached are left out; `ngram` and `reference` are `None`.
    pub fn finish(&self) -> Result<Vec<LossBucket>, BucketError> {
        let mut out = Vec::new();
        for b in 0..self.num_buckets() {
            let (mut sum, mut count) = (0.0, 0usize);
            let mut window_means = Vec::with_capacity(self.cells.len());
            for row in &self.cells {
                let cell = row[b];
                if cell.count > 0 {
                    sum += cell.sum;
                    count += cell.count;
                    window_means.push(cell.sum / cell.count as f64);
                }
            }
            if count == 0 {
                continue;
            }
            let start = b * self.bucket;
            out.push(LossBucket {
                start,
                end: (start + self.bucket).min(self.horizon),
                loss: sum / count as f64,
                stderr: standard_error(&window_means),
                ngram: None,
                excess_stderr: None,
                reference: None,
            });
        }
        if out.is_empty() {
            return Err(BucketError::Empty);
        }
        Ok(out)
    }
}

/// Standard error of the mean of `values` (sample standard deviation / sqrt(n)); 0 for fewer
/// than two values, where it is undefined.
pub fn standard_error(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (var / n as f64).sqrt()
}

/// Model and position-matched baseline losses accumulated on the same windows.
#[derive(Debug, Clone)]
pub struct PairedAccumulator {
    model: BucketAccumulator,
    baseline: BucketAccumulator,
}

impl PairedAccumulator {
    pub fn new(bucket: usize, horizon: usize) -> Result<Self, BucketError> {
        Ok(Self {
            model: BucketAccumulator::new(bucket, horizon)?,
            baseline: BucketAccumulator::new(bucket, horizon)?,
        })
    }

    /// Adds one window's model and baseline losses (same positions, same length).
    pub fn add_window<M, B>(&mut self, model: &[M], baseline: &[B]) -> Result<usize, BucketError>
    where
        M: Copy + Into<f64>,
        B: Copy + Into<f64>,
    {
        let window = self.model.num_windows().max(self.baseline.num_windows());
        self.add_span(window, 0, model, baseline)?;
        Ok(window)
    }

    /// Adds positions `[start, start + len)` of `window` for both model and baseline.
    pub fn add_span<M, B>(
        &mut self,
        window: usize,
        start: usize,
        model: &[M],
        baseline: &[B],
    ) -> Result<(), BucketError>
    where
        M: Copy + Into<f64>,
        B: Copy + Into<f64>,
    {
        if model.len() != baseline.len() {
            return Err(BucketError::Mismatch(format!(
                "window {window} at {start}: {} model losses but {} baseline losses",
                model.len(),
                baseline.len()
            )));
        }
        // Check both before adding either, so a failure leaves both untouched.
        self.model.check_span(window, start, model)?;
        self.baseline.check_span(window, start, baseline)?;
        self.model.add_span(window, start, model)?;
        self.baseline.add_span(window, start, baseline)
    }

    /// Model buckets with `ngram` set to the baseline's mean on the same positions and
    /// `excess_stderr` to the standard error of the per-window paired difference.
    pub fn finish(&self) -> Result<Vec<LossBucket>, BucketError> {
        let mut buckets = attach_baseline(self.model.finish()?, &self.baseline.finish()?)?;
        for bucket in &mut buckets {
            let b = bucket.start / self.model.bucket;
            let diffs: Vec<f64> = self
                .model
                .cells
                .iter()
                .zip(&self.baseline.cells)
                .filter_map(|(m, base)| {
                    let (m, base) = (m[b], base[b]);
                    (m.count > 0 && base.count > 0)
                        .then(|| m.sum / m.count as f64 - base.sum / base.count as f64)
                })
                .collect();
            bucket.excess_stderr = Some(standard_error(&diffs));
        }
        Ok(buckets)
    }
}

/// Sets `ngram` of each model bucket from the baseline bucket with the same bounds.
pub fn attach_baseline(
    mut model: Vec<LossBucket>,
    baseline: &[LossBucket],
) -> Result<Vec<LossBucket>, BucketError> {
    if model.len() != baseline.len() {
        return Err(BucketError::Mismatch(format!(
            "{} model buckets but {} baseline buckets",
            model.len(),
            baseline.len()
        )));
    }
    for (m, b) in model.iter_mut().zip(baseline) {
        if (m.start, m.end) != (b.start, b.end) {
            return Err(BucketError::Mismatch(format!(
                "model bucket [{}, {}) against baseline bucket [{}, {})",
                m.start, m.end, b.start, b.end
            )));
        }
        m.ngram = Some(b.loss);
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn mean_over_positions_and_windows_with_stderr_across_windows() {
        let mut acc = BucketAccumulator::new(2, 5).unwrap();
        acc.add_window(&[1.0f32, 3.0, 5.0, 7.0, 9.0]).unwrap();
        acc.add_window(&[3.0f32, 5.0, 7.0, 9.0, 11.0]).unwrap();
        let buckets = acc.finish().unwrap();
        assert_eq!(buckets.len(), 3);
        assert_eq!((buckets[0].start, buckets[0].end), (0, 2));
        assert_eq!((buckets[2].start, buckets[2].end), (4, 5));
        assert!(close(buckets[0].loss, 3.0));
        assert!(close(buckets[1].loss, 7.0));
        assert!(close(buckets[2].loss, 10.0));
        // Window means of bucket 0 are 2 and 4: sd = sqrt(2), stderr = sqrt(2)/sqrt(2) = 1.
        assert!(close(buckets[0].stderr, 1.0));
        assert!(
            buckets
                .iter()
                .all(|b| b.ngram.is_none() && b.reference.is_none())
        );
    }

    #[test]
    fn streaming_spans_equal_whole_windows() {
        let w0: Vec<f64> = (0..10).map(|i| (i as f64).sin() + 2.0).collect();
        let w1: Vec<f64> = (0..10).map(|i| (i as f64 * 0.7).cos() + 2.0).collect();
        let mut whole = BucketAccumulator::new(3, 10).unwrap();
        whole.add_window(&w0).unwrap();
        whole.add_window(&w1).unwrap();
        let mut spans = BucketAccumulator::new(3, 10).unwrap();
        // Out of order, uneven chunk sizes, straddling bucket boundaries.
        spans.add_span(1, 4, &w1[4..]).unwrap();
        spans.add_span(0, 0, &w0[..5]).unwrap();
        spans.add_span(1, 0, &w1[..4]).unwrap();
        spans.add_span(0, 5, &w0[5..]).unwrap();
        assert_eq!(whole.finish().unwrap(), spans.finish().unwrap());
    }

    #[test]
    fn single_window_has_zero_stderr_and_bad_input_is_rejected_without_damage() {
        let mut acc = BucketAccumulator::new(4, 8).unwrap();
        acc.add_window(&[1.0f32; 8]).unwrap();
        let before = acc.finish().unwrap();
        assert!(before.iter().all(|b| b.stderr == 0.0));
        let err = acc.add_span(0, 6, &[1.0f32, 2.0, 3.0]).unwrap_err();
        assert!(
            matches!(err, BucketError::PastHorizon { end: 9, .. }),
            "{err}"
        );
        let err = acc.add_span(0, 0, &[1.0f32, f32::NAN]).unwrap_err();
        assert!(err.to_string().contains("position 1"), "{err}");
        assert_eq!(acc.finish().unwrap(), before);
        assert_eq!(
            BucketAccumulator::new(0, 8).unwrap_err(),
            BucketError::ZeroBucket
        );
        assert_eq!(
            BucketAccumulator::new(4, 8).unwrap().finish().unwrap_err(),
            BucketError::Empty
        );
    }

    #[test]
    fn partially_reached_buckets_are_left_out() {
        let mut acc = BucketAccumulator::new(2, 8).unwrap();
        acc.add_span(0, 0, &[1.0f32, 1.0, 1.0]).unwrap();
        let buckets = acc.finish().unwrap();
        assert_eq!(buckets.len(), 2);
        assert_eq!((buckets[1].start, buckets[1].end), (2, 4));
    }

    #[test]
    fn paired_accumulation_sets_the_baseline() {
        let mut acc = PairedAccumulator::new(2, 4).unwrap();
        acc.add_window(&[3.0f32, 3.0, 5.0, 5.0], &[1.0f32, 1.0, 2.0, 2.0])
            .unwrap();
        acc.add_window(&[3.0f32, 3.0, 5.0, 5.0], &[1.0f32, 1.0, 4.0, 4.0])
            .unwrap();
        let buckets = acc.finish().unwrap();
        assert_eq!(buckets[0].ngram, Some(1.0));
        assert_eq!(buckets[1].ngram, Some(3.0));
        assert_eq!(buckets[1].excess(), Some(2.0));
        // The excess's standard error pairs each window's model with its own baseline: the
        // per-window excesses are 3 and 1 (se 1), not the model's spread (0).
        assert_eq!(buckets[1].stderr, 0.0);
        assert_eq!(buckets[1].excess_stderr, Some(1.0));
        assert_eq!(buckets[0].excess_stderr, Some(0.0));
        let err = acc.add_window(&[1.0f32; 4], &[1.0f32; 3]).unwrap_err();
        assert!(matches!(err, BucketError::Mismatch(_)));
        // A bad baseline leaves the model side untouched too.
        let err = acc
            .add_span(2, 0, &[1.0f32, 1.0], &[1.0f32, f32::INFINITY])
            .unwrap_err();
        assert!(matches!(err, BucketError::NonFinite { .. }));
        assert_eq!(acc.finish().unwrap(), buckets);
    }
}

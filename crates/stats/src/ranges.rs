//! The verdict's few wide position ranges, and each window's mean loss over a set of ranges.
//!
//! A decision taken as the max over thousands of narrow buckets is a max over noise. The verdict
//! instead compares a handful of ranges that double in length past T_train with the in-length
//! reference `[T/2, T)`. Windows are the independent samples, so what is kept is one mean per
//! window and range; the spread of those means is the honest noise of every comparison built on
//! them (the verdict's own ranges, and the dyadic blocks that pair two runs window by window).

use forgetlab_runs::results::WindowRanges;

use crate::bucket::BucketError;

/// `[T/2, T)` first, then `[T, 2T)`, `[2T, 4T)`, ... up to `horizon`; a trailing range shorter
/// than half the one before it is merged into it. Only the reference when `horizon <= T`.
pub fn verdict_ranges(seq_len: usize, horizon: usize) -> Vec<(usize, usize)> {
    let seq_len = seq_len.max(1);
    let mut ranges = vec![(seq_len / 2, seq_len)];
    let mut start = seq_len;
    while start < horizon {
        let end = (2 * start).min(horizon);
        ranges.push((start, end));
        start = end;
    }
    if ranges.len() > 2 {
        let (s, e) = ranges[ranges.len() - 1];
        let (ps, pe) = ranges[ranges.len() - 2];
        if 2 * (e - s) < pe - ps {
            ranges.pop();
            let last = ranges.len() - 1;
            ranges[last] = (ps, e);
        }
    }
    ranges
}

/// Dyadic blocks `[0, 1), [1, 2), [2, 4), ...` covering `[0, horizon)`.
pub fn dyadic_blocks(horizon: usize) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    if horizon == 0 {
        return blocks;
    }
    blocks.push((0, 1));
    let mut start = 1;
    while start < horizon {
        let end = (2 * start).min(horizon);
        blocks.push((start, end));
        start = end;
    }
    blocks
}

/// How many windows measure range `[_, end)`: enough for `range_tokens` scored positions, at
/// least `min_windows`, at most what `stream_len` holds.
pub fn range_window_count(
    end: usize,
    min_windows: usize,
    range_tokens: usize,
    stream_len: usize,
) -> usize {
    let wanted = min_windows.max(range_tokens / end.max(1));
    wanted.min(stream_len / (end + 1)).max(min_windows)
}

/// Sums of one window over one range.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    model: f64,
    baseline: f64,
    count: usize,
}

/// Accumulates per-window range means of the model's (and optionally a baseline's) losses, fed
/// in spans as a streaming evaluation produces them.
#[derive(Debug, Clone)]
pub struct RangeAccumulator {
    ranges: Vec<(usize, usize)>,
    with_baseline: bool,
    /// `[window][range]`.
    cells: Vec<Vec<Cell>>,
}

impl RangeAccumulator {
    pub fn new(ranges: Vec<(usize, usize)>, with_baseline: bool) -> Self {
        Self {
            ranges,
            with_baseline,
            cells: Vec::new(),
        }
    }

    /// Adds positions `[start, start + model.len())` of `window`; `baseline` holds the
    /// baseline's losses on the same positions when the accumulator was made with one.
    pub fn add_span(
        &mut self,
        window: usize,
        start: usize,
        model: &[f32],
        baseline: Option<&[f32]>,
    ) -> Result<(), BucketError> {
        match baseline {
            Some(b) if b.len() != model.len() => {
                return Err(BucketError::Mismatch(format!(
                    "window {window} at {start}: {} model losses but {} baseline losses",
                    model.len(),
                    b.len()
                )));
            }
            None if self.with_baseline => {
                return Err(BucketError::Mismatch(format!(
                    "window {window} at {start}: no baseline losses given"
                )));
            }
            _ => {}
        }
        if self.cells.len() <= window {
            self.cells
                .resize_with(window + 1, || vec![Cell::default(); self.ranges.len()]);
        }
        let end = start + model.len();
        for (cell, &(lo, hi)) in self.cells[window].iter_mut().zip(&self.ranges) {
            let (a, b) = (lo.max(start), hi.min(end));
            if a >= b {
                continue;
            }
            let slice = (a - start)..(b - start);
            cell.model += model[slice.clone()]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>();
            if let Some(base) = baseline {
                cell.baseline += base[slice].iter().map(|&v| f64::from(v)).sum::<f64>();
            }
            cell.count += b - a;
        }
        Ok(())
    }

    /// The per-window means; every window must have covered every range completely.
    pub fn finish(&self, windows_id: &str) -> Result<WindowRanges, BucketError> {
        if self.cells.is_empty() {
            return Err(BucketError::Empty);
        }
        let mut model = Vec::with_capacity(self.cells.len());
        let mut ngram = Vec::with_capacity(self.cells.len());
        for (w, row) in self.cells.iter().enumerate() {
            let mut m = Vec::with_capacity(row.len());
            let mut b = Vec::with_capacity(row.len());
            for (cell, &(lo, hi)) in row.iter().zip(&self.ranges) {
                if cell.count != hi - lo {
                    return Err(BucketError::Malformed(format!(
                        "window {w} covered {} of the {} positions of range [{lo}, {hi})",
                        cell.count,
                        hi - lo
                    )));
                }
                m.push(cell.model / cell.count as f64);
                b.push(cell.baseline / cell.count as f64);
            }
            model.push(m);
            ngram.push(b);
        }
        Ok(WindowRanges {
            ranges: self.ranges.clone(),
            model,
            ngram: self.with_baseline.then_some(ngram),
            windows_id: windows_id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dyadic_blocks_cover_the_horizon() {
        assert_eq!(
            dyadic_blocks(12),
            vec![(0, 1), (1, 2), (2, 4), (4, 8), (8, 12)]
        );
        assert_eq!(dyadic_blocks(1), vec![(0, 1)]);
        assert!(dyadic_blocks(0).is_empty());
    }

    #[test]
    fn ranges_double_past_the_training_length() {
        assert_eq!(
            verdict_ranges(16, 128),
            vec![(8, 16), (16, 32), (32, 64), (64, 128)]
        );
        // A short tail is merged into the range before it; a long one stays.
        assert_eq!(verdict_ranges(16, 70), vec![(8, 16), (16, 32), (32, 70)]);
        assert_eq!(
            verdict_ranges(16, 80),
            vec![(8, 16), (16, 32), (32, 64), (64, 80)]
        );
        assert_eq!(verdict_ranges(16, 16), vec![(8, 16)]);
        assert_eq!(verdict_ranges(1, 4), vec![(0, 1), (1, 2), (2, 4)]);
        assert_eq!(verdict_ranges(16, 20), vec![(8, 16), (16, 20)]);
    }

    #[test]
    fn spans_in_any_order_give_each_windows_range_means() {
        let ranges = verdict_ranges(4, 16);
        let mut acc = RangeAccumulator::new(ranges.clone(), true);
        let model: Vec<f32> = (0..16).map(|p| p as f32).collect();
        let base = [1.0f32; 16];
        acc.add_span(0, 8, &model[8..], Some(&base[8..])).unwrap();
        acc.add_span(0, 0, &model[..8], Some(&base[..8])).unwrap();
        for (s, e) in [(0, 5), (5, 16)] {
            acc.add_span(1, s, &vec![2.0; e - s], Some(&base[s..e]))
                .unwrap();
        }
        let r = acc.finish("id").unwrap();
        assert_eq!(r.ranges, vec![(2, 4), (4, 8), (8, 16)]);
        assert_eq!(r.model[0], vec![2.5, 5.5, 11.5]);
        assert_eq!(r.model[1], vec![2.0, 2.0, 2.0]);
        assert_eq!(r.ngram.unwrap()[0], vec![1.0, 1.0, 1.0]);
        assert_eq!(r.windows_id, "id");
        // A window that misses positions is an error, not a biased mean.
        let mut partial = RangeAccumulator::new(ranges, false);
        partial.add_span(0, 0, &model[..10], None).unwrap();
        assert!(matches!(partial.finish(""), Err(BucketError::Malformed(_))));
        assert!(
            partial
                .add_span(0, 10, &model[10..], Some(&base[10..]))
                .is_ok()
        );
        assert!(
            RangeAccumulator::new(verdict_ranges(4, 16), true)
                .add_span(0, 0, &model, None)
                .is_err()
        );
    }
}
